"""`refattr compare` and `refattr oracle export` through add_compare_commands (through the refattr console script's main)."""

import json

import numpy as np
import pytest

from refattr.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
nn = torch.nn


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    # piecewise linear, so that the reference integral is the exact one (fast)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double().eval()
    torch.save(model, d / "model.pt")  # a full pickled module: written here, so trusted (--trust-pickle below)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    np.save(d / "x.npy", x)
    np.save(d / "b.npy", rng.normal(size=4) * 0.3)
    np.save(d / "t.npy", np.array([0, 2, 1]))
    from refattr.interop import from_torch
    from refattr.interop.captum_conventions import captum_integrated_gradients
    from refattr.methods.integrated_gradients import integrated_gradients

    net, t, b = from_torch(model), np.array([0, 2, 1]), np.load(d / "b.npy")
    np.save(d / "ig_right.npy", integrated_gradients(net, x, b, target=t, rule="right", n_steps=50).values)
    np.save(d / "ig_captum_trapezoid.npy", captum_integrated_gradients(net, x, b, t, "riemann_trapezoid", 50))
    np.save(d / "ig_wrong.npy", integrated_gradients(net, x, b, target=t, rule="right", n_steps=49).values)
    return d


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_compare_captum_table_and_json(files, capsys):
    code, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--inputs", files / "x.npy", "--baseline",
                    files / "b.npy", "--targets", files / "t.npy", "--methods", "Saliency,DeepLift,IntegratedGradients")
    assert code == 0, out.out
    assert "every difference is explained" in out.out and "IntegratedGradients[riemann_trapezoid" in out.out
    code, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--inputs", files / "x.npy", "--targets",
                    "1", "--json", "--methods", "Saliency")
    report = json.loads(out.out)
    assert code == 0 and report["ok"] and report["entries"][0]["verdict"] == "agree"
    assert report["peer_correct"] is True and report["summary"].startswith("CORRECT: Captum's results are correct")


@pytest.mark.parametrize("attributions, rule, verdict, code", [
    ("ig_right.npy", "right", "approximation", 0),
    ("ig_captum_trapezoid.npy", "riemann_trapezoid", "convention", 0),
    ("ig_wrong.npy", "right", "unexplained", 1),
])
def test_compare_own_attributions(files, capsys, attributions, rule, verdict, code):
    got, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--inputs", files / "x.npy", "--baseline",
                   files / "b.npy", "--targets", files / "t.npy", "--attributions", files / attributions, "--method",
                   "integrated_gradients", "--rule", rule, "--n-steps", "50", "--json")
    report = json.loads(out.out)
    assert got == code and report["entries"][0]["verdict"] == verdict


def test_bad_input_exits_2(files, capsys):
    code, out = run(capsys, "compare", files / "missing.pt", "--inputs", files / "x.npy")
    assert code == 2 and "no such file" in out.err
    code, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--inputs", files / "x.npy",
                    "--attributions", files / "ig_right.npy")
    assert code == 2 and "--method" in out.err


def test_the_ambiguous_baselines_option_is_refused_before_anything_is_read(files, capsys):
    # MODEL does not exist: the refusal comes first, so nothing (not even the model) was read.
    code, out = run(capsys, "compare", files / "missing.pt", "--inputs", files / "x.npy", "--baselines",
                    files / "b.npy")
    assert code == 2 and "no such file" not in out.err
    for phrase in ("--baselines", "one baseline per example", "DeepLiftShap", "--baseline B.npy",
                   "--baseline-samples S.npy", "(1, *example_shape)"):
        assert phrase in out.err, phrase


def test_oracle_export(tmp_path, capsys):
    code, out = run(capsys, "oracle", "export", tmp_path / "oracle")
    assert code == 0 and "manifest.json" in out.out
    assert json.loads((tmp_path / "oracle" / "manifest.json").read_text())["format"] == "refattr-oracle"



def test_compare_with_shap_through_the_command_line(files, capsys):
    # --peer shap: the background is --baseline-samples (required); DeepExplainer on this ReLU MLP is
    # DeepSHAP (verdict agree, the summary says correct: exit 0)
    pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    np.save(files / "background.npy", rng.normal(size=(5, 4)) * 0.3)
    code, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--peer", "shap", "--inputs",
                    files / "x.npy", "--baseline-samples", files / "background.npy", "--targets", files / "t.npy",
                    "--methods", "DeepExplainer", "--json")
    report = json.loads(out.out)
    assert code == 0, out
    assert report["entries"][0]["verdict"] == "agree" and report["peer_correct"] is True
    code, out = run(capsys, "compare", files / "model.pt", "--trust-pickle", "--peer", "shap", "--inputs",
                    files / "x.npy", "--targets", files / "t.npy")
    assert code == 2 and "--baseline-samples: required with --peer shap" in out.err
