"""Verdicts that cannot mislead: a known peer bug is named and sized, a user's attributions are
matched against every known computation, and torch tensors are accepted where arrays are.

Expected values: Captum 0.9.0 itself (run in float64 in each test) against refattr's reference,
with the relative difference written out in the test (max over examples of
max |peer - reference| / max |reference|); EXACT_RTOL (1e-12) for "equal up to float64 rounding".
"""

import json
import warnings

import numpy as np
import pytest

from refattr.cli import main
from refattr.methods.deeplift import deeplift
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
nn = torch.nn
from captum.attr import DeepLift, IntegratedGradients  # noqa: E402

from refattr.interop import compare_attributions, compare_captum, from_torch  # noqa: E402


def _captum(cls, model, x, baseline=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's UserWarnings about hooks
        inputs = torch.from_numpy(x).clone().requires_grad_()
        args = () if baseline is None else (torch.from_numpy(np.ascontiguousarray(baseline)),)
        return cls(model).attribute(inputs, *args, **kwargs).detach().numpy()


def _relative(actual, expected):
    """max over examples of max_i |actual - expected| / max_i |expected| (written out, not refattr's)."""
    n = actual.shape[0]
    diff = np.abs(actual - expected).reshape(n, -1).max(axis=1)
    return float(np.max(diff / np.abs(expected).reshape(n, -1).max(axis=1)))


def _relu_maxpool(separated=False):
    """Conv -> ReLU -> MaxPool2d (non-overlapping) -> Linear: ReLU and MaxPool2d are adjacent hooked
    modules. ``separated``: an AvgPool2d(1) (the identity, computed into a new tensor, not hooked by
    Captum) between them."""
    torch.manual_seed(0)
    middle = [nn.AvgPool2d(1)] if separated else []
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), *middle, nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(2 * 3 * 3, 2)).double().eval()


@pytest.fixture(scope="module")
def relu_maxpool():
    rng = np.random.default_rng(0)
    return _relu_maxpool(), rng.normal(size=(2, 1, 6, 6)), rng.normal(size=(2, 1, 6, 6)) * 0.3


def test_captum_deeplift_on_relu_maxpool_is_reported_wrong_with_its_issue_and_size(relu_maxpool):
    model, x, b = relu_maxpool
    report = compare_captum(model, x, b, 0, methods=["DeepLift"])
    # the size, computed here: Captum's output against refattr's Rescale with delta routing
    peer = _captum(DeepLift, model, x, b, target=0)
    reference = deeplift(from_torch(model), x, b, target=0, rule="rescale", maxpool_rule="delta_routing").values
    size = _relative(peer, reference)
    assert size > 0.05  # tens of percent here, not rounding
    entry = report["DeepLift"]
    assert entry.verdict == "peer_bug"
    np.testing.assert_allclose(entry.max_rel_diff, size, rtol=EXACT_RTOL)
    summary = report.summary()
    assert summary == report.table().splitlines()[-1]
    assert f"Captum's DeepLift is wrong on this model by {100 * size:.2g} % (Captum issue #1104, reproduced exactly)" \
        in summary, summary
    assert "CORRECT" not in summary and "every difference is explained" not in summary
    # nothing is unexplained, yet the peer is not right: ok says only the former
    assert report.all_explained and report.ok and report.peer_correct is False
    as_json = json.loads(report.to_json())
    assert as_json["summary"] == summary and as_json["ok"] is True and as_json["peer_correct"] is False
    assert as_json["peer_bugs"] == [{"method": "DeepLift", "max_rel_diff": entry.max_rel_diff,
                                     "issues": ["Captum issue #1104"]}]


def test_the_bug_is_the_adjacent_hooks(relu_maxpool):
    # AvgPool2d(1) between ReLU and MaxPool2d computes the same function but separates the two
    # hooked modules; Captum then records the rewritten gradient and agrees with refattr's Rescale.
    model, x, b = relu_maxpool
    separated = _relu_maxpool(separated=True)
    peer = _captum(DeepLift, separated, x, b, target=0)
    reference = deeplift(from_torch(model), x, b, target=0, rule="rescale", maxpool_rule="delta_routing").values
    assert _relative(peer, reference) <= EXACT_RTOL


def test_a_correct_peer_is_called_correct():
    # linear: IG is exactly w * x, so Captum's trapezoid result is ((n-1)/n) w * x, 2 % off at n = 50
    # (its weights, float32(1/50) and float32(1/100), are within 6e-8 relative of the exact ones)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 2)).double().eval()
    x = np.random.default_rng(1).normal(size=(2, 4))
    report = compare_captum(model, x, 0.0, 1, methods=["Saliency", "DeepLift", "IntegratedGradients"],
                            ig_methods=["riemann_trapezoid"])
    assert report.peer_correct is True and report.ok
    summary = report.summary()
    assert summary.startswith("CORRECT: Captum's results are correct on this model: every difference is explained")
    # the trapezoid weights sum to (n-1)/n = 0.98: a 2 % convention, named with its size
    assert "largest 2 % in IntegratedGradients[riemann_trapezoid, n_steps=50]" in summary, summary


# A user's attributions: every known computation is searched -------------------------------------
@pytest.fixture(scope="module")
def tanh_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("verdicts")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    torch.save(model, d / "model.pt")  # a full pickled module written here, so trusted (--trust-pickle)
    x = np.random.default_rng(0).normal(size=(3, 4))
    np.save(d / "x.npy", x)
    # Captum's default: IntegratedGradients(model).attribute(x, target=1) (Gauss-Legendre, 50 steps)
    np.save(d / "ig_captum.npy", _captum(IntegratedGradients, model, x, target=1))
    return d


def _compare(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_captum_default_ig_through_the_cli_is_explained_without_rule(tanh_files, capsys):
    d = tanh_files
    code, out = _compare(capsys, "compare", d / "model.pt", "--trust-pickle", "--inputs", d / "x.npy", "--targets", "1",
                         "--attributions", d / "ig_captum.npy", "--method", "integrated_gradients", "--json")
    report = json.loads(out.out)
    assert code == 0, out.out
    entry = report["entries"][0]
    assert entry["verdict"] in ("convention", "approximation")
    matched = [c["description"] for c in entry["causes"] if c["description"].startswith("equal (to")]
    assert len(matched) == 1 and "Captum's IntegratedGradients(method='gausslegendre', n_steps=50)" in matched[0]
    assert report["peer_correct"] is True


def test_rule_narrows_the_search_and_a_note_says_what_else_matches(tanh_files, capsys):
    d = tanh_files
    code, out = _compare(capsys, "compare", d / "model.pt", "--trust-pickle", "--inputs", d / "x.npy", "--targets", "1",
                         "--attributions", d / "ig_captum.npy", "--method", "integrated_gradients", "--rule",
                         "riemann_right")
    assert code == 1 and "!! UNEXPLAINED" in out.out
    assert "outside the rule asked for" in out.out and "method='gausslegendre'" in out.out


def test_user_deeplift_equal_to_captums_is_reported_as_captums_bug():
    # MaxPool2d -> Tanh: Captum's max-pool rule multiplies tanh's derivative, not its secant (#1104),
    # which no legitimate DeepLIFT rule does
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Tanh(), nn.Flatten(),
                          nn.Linear(2 * 3 * 3, 2)).double().eval()
    rng = np.random.default_rng(3)
    x, b = rng.normal(size=(2, 1, 6, 6)), rng.normal(size=(2, 1, 6, 6)) * 0.3
    peer = _captum(DeepLift, model, x, b, target=1)
    report = compare_attributions(model, x, peer, "deeplift", b, 1)
    entry = report.entries[0]
    assert entry.verdict == "peer_bug" and report.peer_correct is False and report.ok
    reference = deeplift(from_torch(model), x, b, target=1, rule="rescale", maxpool_rule="delta_routing").values
    size = _relative(peer, reference)
    assert size > 1e-3
    assert f"the user's deeplift[rescale] is wrong on this model by {100 * size:.2g} % (Captum issue #1104" \
        in report.summary(), report.summary()


def test_user_deeplift_that_a_legitimate_rule_explains_is_not_called_wrong(relu_maxpool):
    # On ReLU -> MaxPool2d Captum's bug gives exactly DeepLIFT's 'gradient' max-pool rule (the
    # ReLU's Rescale multiplier times the max-pool gradient): the values are that convention's, and
    # a note says they are Captum's as well.
    model, x, b = relu_maxpool
    peer = _captum(DeepLift, model, x, b, target=0)
    report = compare_attributions(model, x, peer, "deeplift", b, 0)
    entry = report.entries[0]
    assert entry.verdict == "convention" and report.peer_correct is True
    assert any("maxpool_rule='gradient'" in c.description for c in entry.causes)
    assert any(n.startswith("also equal") and "Captum 0.9.0's DeepLift" in n for n in entry.notes)


def test_user_deeplift_with_the_gradient_maxpool_rule_is_that_convention(relu_maxpool):
    model, x, b = relu_maxpool
    ours = deeplift(from_torch(model), x, b, target=0, maxpool_rule="gradient").values
    report = compare_attributions(model, x, ours, "deeplift", b, 0)
    entry = report.entries[0]
    assert entry.verdict == "convention" and report.peer_correct is True
    assert any("maxpool_rule='gradient'" in c.description for c in entry.causes)


# torch tensors wherever compare takes arrays ------------------------------------------------------
def test_requires_grad_tensors_are_accepted(relu_maxpool):
    model, x, b = relu_maxpool
    tx = torch.from_numpy(x).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    from_tensors = compare_captum(model, tx, tb, torch.tensor([0, 1]), methods=["Saliency", "DeepLift"])
    from_arrays = compare_captum(model, x, b, np.array([0, 1]), methods=["Saliency", "DeepLift"])
    for a, c in zip(from_tensors.entries, from_arrays.entries):
        assert (a.method, a.verdict, a.max_abs_diff) == (c.method, c.verdict, c.max_abs_diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attributions = DeepLift(model).attribute(torch.from_numpy(x).clone().requires_grad_(),
                                                 torch.from_numpy(b), target=0)
    assert attributions.requires_grad  # Captum's output as a user gets it
    report = compare_attributions(model, tx, attributions, "deeplift", tb, torch.tensor(0))
    expected = compare_attributions(model, x, attributions.detach().numpy(), "deeplift", b, 0)
    assert report.entries[0].verdict == expected.entries[0].verdict == "convention"
    assert report.entries[0].max_abs_diff == expected.entries[0].max_abs_diff
    # a float32 tensor keeps its dtype until the verdict: float32 rounding tolerance
    report = compare_attributions(model, tx, attributions.float(), "deeplift", tb, 0)
    assert report.rtol == 1e-5 and report.entries[0].verdict == "convention"


def test_the_cli_exits_3_when_every_difference_is_explained_but_the_peer_is_wrong(relu_maxpool, tmp_path, capsys):
    # exit 0 must not read as "Captum is right": Captum #1104 on ReLU -> MaxPool2d is explained
    # (reproduced exactly) yet wrong, so the command exits 3 and its last line says WRONG
    model, x, b = relu_maxpool
    torch.save(model, tmp_path / "model.pt")  # written here, so trusted (--trust-pickle)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "b.npy", b)
    code, out = _compare(capsys, "compare", tmp_path / "model.pt", "--trust-pickle", "--inputs", tmp_path / "x.npy",
                         "--baseline", tmp_path / "b.npy", "--targets", "0", "--methods", "DeepLift")
    assert code == 3, out.out
    assert "WRONG" in out.out.splitlines()[-1] and "#1104" in out.out.splitlines()[-1]
