"""``refattr dataset run`` on the bundled digits model."""

import argparse

import numpy as np

from refattr.dataset import open_store
from refattr.dataset.cli import add_dataset_commands
from refattr.methods import integrated_gradients
from refattr.models import load_digits_cnn


def run(argv):
    parser = argparse.ArgumentParser(prog="refattr")
    add_dataset_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_run_on_the_digits_model_writes_a_readable_store(tmp_path, capsys):
    net, images, labels = load_digits_cnn()
    np.save(tmp_path / "x.npy", images[:6])
    np.save(tmp_path / "t.npy", labels[:6])
    out = tmp_path / "store"
    code = run(["dataset", "run", "digits_cnn", str(tmp_path / "x.npy"), "--out", str(out), "--method", "ig",
                "--target", str(tmp_path / "t.npy"), "--rule", "exact", "--chunk-size", "4", "--block", "2",
                "--quiet"])
    assert code == 0
    assert "2/2 chunks done" in capsys.readouterr().out
    store = open_store(out)
    blocks = [integrated_gradients(net, images[i:i + 2], target=labels[i:i + 2], rule="exact") for i in (0, 2, 4)]
    assert np.array_equal(store.array(), np.concatenate([b.values for b in blocks]))
    assert store.manifest["identity"]["options"] == {"rule": "exact"}


def test_bad_input_exits_2_with_the_message(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8)))
    code = run(["dataset", "run", "digits_cnn", str(tmp_path / "x.npy"), "--out", str(tmp_path / "s"), "--method",
                "ig", "--target", "3", "--chunk-size", "5", "--block", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("refattr dataset run: error: chunk_size: 5 is not a multiple of block=2")
    code = run(["dataset", "run", "digits_cnn", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "s"),
                "--method", "gradient", "--target", "3"])
    assert code == 2 and "INPUTS: no such file" in capsys.readouterr().err
    np.save(tmp_path / "wrong.npy", np.zeros((3, 1, 7, 7)))
    code = run(["dataset", "run", "digits_cnn", str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "s"),
                "--method", "gradient", "--target", "3"])
    assert code == 2 and "(1, 8, 8)" in capsys.readouterr().err
