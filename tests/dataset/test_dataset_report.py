"""write_report / ``refattr dataset report``: the worst examples, verdict counts, valid PNGs,
no peer sections without a peer, damaged stores refused, and the README's one-line command."""

import json
import pathlib
import re

import numpy as np
import pytest

from refattr.dataset import attribute_dataset, open_store
from refattr.dataset.report import write_report
from refattr.errors import ArgumentError
from refattr.models import load_digits_cnn

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG_SIGNATURE and matplotlib.image.imread(path).ndim == 3


@pytest.fixture(scope="module")
def peer_store(tmp_path_factory):
    pytest.importorskip("captum")
    net, images, labels = load_digits_cnn()
    path = tmp_path_factory.mktemp("store") / "ig"
    attribute_dataset(net, images, path, method="ig", target=labels, chunk_size=4, block=2, peer="captum",
                      peer_options={"n_steps": 7}, progress=False)
    return path, images


def test_report_names_the_worst_examples_and_counts_every_verdict(peer_store, tmp_path):
    path, images = peer_store
    store = open_store(path)
    text = pathlib.Path(write_report(path, tmp_path / "r", inputs=images, worst=3)).read_text(encoding="utf-8")
    # worst examples: an argsort of the stored differences, done here
    expected = np.argsort(-store.array("peer_relative_difference"), kind="stable")[:3]
    rows = re.findall(r"^\| (\d) \| (\d+) \| ", text, flags=re.M)
    assert [int(example) for _, example in rows] == expected.tolist()
    # verdict counts add up to N
    verdicts = store.manifest["identity"]["peer"]["verdicts"]
    counts = {v: int(c) for v, c in re.findall(r"^\| (\w+) \| (\d+) \| [\d.]+ % \|$", text, flags=re.M)}
    assert counts.pop("total") == len(images)
    assert set(counts) <= set(verdicts) and sum(counts.values()) == len(images)
    codes = store.array("peer_verdict").astype(int)
    assert counts == {verdicts[c]: int(np.sum(codes == c)) for c in set(codes.tolist())}
    assert store.manifest["identity"]["model_sha256"] in text
    for name in ("peer_error.png", "gaps.png", "worst_1.png", "worst_2.png", "worst_3.png"):
        assert f"({name})" in text and is_png(tmp_path / "r" / name)
    assert not (tmp_path / "r" / "worst_4.png").exists()


def test_same_store_same_bytes(peer_store, tmp_path):
    path, images = peer_store
    for out in ("a", "b"):
        write_report(path, tmp_path / out, inputs=images)
    for name in ("report.md", "peer_error.png", "gaps.png", "worst_1.png", "worst_5.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_without_a_peer_no_peer_sections(tmp_path):
    net, images, labels = load_digits_cnn()
    attribute_dataset(net, images[:4], tmp_path / "s", method="gradient", target=labels[:4], chunk_size=2, block=2,
                      progress=False)
    text = pathlib.Path(write_report(tmp_path / "s", tmp_path / "r")).read_text(encoding="utf-8")
    assert "## Provenance" in text and "Peer" not in text and "verdict" not in text
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.md"]   # the gradient has no gap


def test_damaged_stores_are_refused_with_the_store_message(tmp_path):
    net, images, labels = load_digits_cnn()
    store = attribute_dataset(net, images[:4], tmp_path / "s", method="gradient", target=labels[:4], chunk_size=2,
                              block=2, progress=False)
    (tmp_path / "s" / "chunks" / "values.000001.npy").write_bytes(b"not an npy file")
    with pytest.raises(ArgumentError, match="values.000001.npy.*cannot be read"):
        write_report(tmp_path / "s", tmp_path / "r")
    (tmp_path / "s" / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ArgumentError, match="not a refattr dataset store"):
        write_report(tmp_path / "s", tmp_path / "r")
    with pytest.raises(ArgumentError, match="no manifest.json"):
        write_report(tmp_path / "nothing", tmp_path / "r")
    with pytest.raises(ArgumentError, match=r"inputs: shape \(3, 1, 8, 8\)"):
        write_report(store, tmp_path / "r", inputs=images[:3])


def test_the_readme_command(tmp_path, monkeypatch, capsys):
    pytest.importorskip("captum")
    from refattr.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "run", "digits_cnn", "digits_test", "--out", "store", "--method", "ig", "--peer", "captum",
                 "--quiet"]) == 0
    assert main(["dataset", "report", "store", "--out", "report", "--inputs", "digits_test"]) == 0
    store = open_store(tmp_path / "store")
    _, images, labels = load_digits_cnn()
    assert store.complete and store.array("peer_values").shape == images.shape
    assert store.manifest["identity"]["target"] == {"per_example": True}   # digits_test: the true labels
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "IntegratedGradients" in text and is_png(tmp_path / "report" / "worst_5.png")
    assert main(["dataset", "report", "missing", "--out", "report"]) == 2
    assert "refattr dataset report: error: store: 'missing' holds no manifest.json" in capsys.readouterr().err
