"""compare_tangermeme on the models of tangermeme's issues #43, #48, #49 (tests/interop/genomics_models.py).

Expected values come from independent computations: tangermeme's own outputs read directly,
refattr's DeepLIFT run pair by pair, and a near-tie whose float32 rounding is worked out by hand.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tangermeme")
torch = pytest.importorskip("torch")

from tangermeme.deep_lift_shap import deep_lift_shap  # noqa: E402
from tangermeme.ersatz import dinucleotide_shuffle  # noqa: E402

from refattr import deeplift  # noqa: E402
from refattr.interop import from_torch  # noqa: E402
from refattr.interop.compare_tangermeme import compare_tangermeme  # noqa: E402

_spec = importlib.util.spec_from_file_location("genomics_models", Path(__file__).with_name("genomics_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)

L = 120


def one_hot(n, length=L, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 4, length))
    x[np.arange(n)[:, None], rng.integers(0, 4, (n, length)), np.arange(length)] = 1.0
    return x


def middle_shuffled(x, k, start=40, end=80):
    """k dinucleotide shuffles of x[:, :, start:end] each, the flanks equal to x (exact zeros in Δx)."""
    return dinucleotide_shuffle(torch.from_numpy(x), start=start, end=end, n=k, random_state=1).double().numpy()


def per_pair(net, x, refs, maxpool_rule="delta_routing", target=0):
    n, k = refs.shape[:2]
    return deeplift(net, np.repeat(x, k, axis=0), refs.reshape((n * k,) + x.shape[1:]), target=target,
                    maxpool_rule=maxpool_rule)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", ["issue48", "issue49", "residual"])
def test_fully_shuffled_float64_agrees_to_rounding(name):
    model, x = gm.build(name, L), one_hot(3)
    report = compare_tangermeme(model, x, n_shuffles=4, random_state=0)
    assert report.all_explained, report.table()
    for quantity in ("contributions", "projected"):
        entry = report[f"deep_lift_shap[{quantity}]"]
        assert entry.verdict == "agree" and entry.max_rel_diff <= 1e-12, report.table()
    for quantity in ("multipliers", "hypothetical"):     # ReLU -> MaxPool can leave exact zeros
        entry = report[f"deep_lift_shap[{quantity}]"]
        assert entry.verdict in ("agree", "convention"), report.table()
        assert entry.causes[0].size <= 1e-12       # the peer against its reproduction
    # independently: tangermeme's own default output (mean hypothetical contributions, its arithmetic)
    torch_x = torch.from_numpy(x)
    raw, refs = deep_lift_shap(model, torch_x, raw_outputs=True, return_references=True, n_shuffles=4,
                               random_state=0, device="cpu")
    hyp = deep_lift_shap(model, torch_x, references=refs, hypothetical=True, device="cpu").numpy()
    refs = refs.numpy()
    net = from_torch(model)
    m = per_pair(net, x, refs, "tangermeme").multipliers.reshape(refs.shape)
    expected = (m - np.sum(refs * m, axis=2, keepdims=True)).mean(axis=1)   # h = m - sum_c x' m, mean over k
    assert rel(hyp, expected) <= 1e-12
    assert rel(raw.numpy(), m) <= 1e-12


def test_middle_shuffled_multipliers_are_its_maxpool_convention():
    model, x = gm.build("issue49", L), one_hot(3, seed=2)
    refs = middle_shuffled(x, 5)
    report = compare_tangermeme(model, x, references=refs)
    assert report.all_explained, report.table()
    m_entry = report["deep_lift_shap[multipliers]"]
    assert m_entry.verdict == "convention", report.table()
    pool = [c for c in m_entry.causes if "max-pool convention" in c.description]
    assert pool and pool[0].size > 1e-3
    assert report["deep_lift_shap[contributions]"].verdict == "agree"
    # reproduced exactly by refattr's named rule, and sized against delta_routing, pair by pair
    raw = deep_lift_shap(model, torch.from_numpy(x), references=torch.from_numpy(refs), raw_outputs=True,
                         device="cpu").numpy()
    net = from_torch(model)
    tangermeme_rule = per_pair(net, x, refs, "tangermeme")
    routing = per_pair(net, x, refs, "delta_routing")
    assert rel(raw, tangermeme_rule.multipliers.reshape(raw.shape)) <= 1e-12
    assert rel(tangermeme_rule.values, routing.values) <= 1e-12            # contributions unchanged
    a, b = tangermeme_rule.multipliers, routing.multipliers     # size: the largest over pairs of max|diff| / max|m|
    per_pair_size = max(np.max(np.abs(a[i] - b[i])) / np.max(np.abs(b[i])) for i in range(a.shape[0]))
    assert pool[0].size == pytest.approx(per_pair_size, rel=1e-12)


def test_tangermeme_rule_differs_only_at_falling_windows_with_zero_delta_winner():
    # MaxPool1d(2) on one channel: window (x0, x1) = (1, 0) against x' = (1, 3): the input's winner
    # x0 has Δx = 0 while the output falls (1 < 3). delta_routing routes 1 - 3 = -2 to x'_1's cell:
    # m = (-2) / (0 - 3) = 2/3 there, 0 at cell 0; tangermeme adds the plain gradient 1 at cell 0.
    from refattr import Flatten, Sequential
    from refattr.layers import MaxPool1D
    net = Sequential([MaxPool1D(2), Flatten()])
    x, ref = np.array([[[1.0, 0.0]]]), np.array([[[1.0, 3.0]]])
    routing = deeplift(net, x, ref, target=0, maxpool_rule="delta_routing")
    tanger = deeplift(net, x, ref, target=0, maxpool_rule="tangermeme")
    np.testing.assert_allclose(routing.multipliers, [[[0.0, 2 / 3]]], rtol=1e-15, atol=0)
    np.testing.assert_allclose(tanger.multipliers, [[[1.0, 2 / 3]]], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(tanger.values, routing.values)        # 1 * 0 adds nothing


def near_tie_model():
    """Conv1d(4, 1, 1) with weights A = 1, C = 1 + 2e-8: in float32 both round to 1.0 (spacing 1.2e-7),
    so a MaxPool1d(2) window holding A then C is a tie there (first cell wins) and C wins in float64."""
    conv = torch.nn.Conv1d(4, 1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([1.0, 1.0 + 2e-8, 0.3, 0.1], dtype=torch.float64).reshape(1, 4, 1)
    torch.manual_seed(3)
    return torch.nn.Sequential(conv, torch.nn.MaxPool1d(2), torch.nn.Flatten(), torch.nn.Linear(4, 1)).double().eval()


def test_float32_rounding_and_a_near_tie_flip_named_and_sized():
    model = near_tie_model()
    x = np.zeros((1, 4, 8))
    x[0, [0, 1, 2, 3, 2, 3, 3, 2], np.arange(8)] = 1.0        # A C | G T | G T | T G
    refs = np.zeros((1, 2, 4, 8))
    refs[0, 0, [2, 3, 3, 2, 0, 1, 2, 3], np.arange(8)] = 1.0    # reference 0: no near-tie anywhere
    refs[0, 1, [3, 2, 2, 3, 2, 3, 3, 2], np.arange(8)] = 1.0
    report = compare_tangermeme(model, x, references=refs, dtype="float32")
    assert report.all_explained, report.table()
    flips = report["float32 winner flips"]
    assert flips.verdict == "winner_flip"
    assert any("window(s) [(1, 'sequence', 0, (0, 0))]" in note for note in flips.notes), flips.notes
    # size: window 0 routes y - y' = C's value 1 + 2e-8 minus reference max to cell 1 in float64 and to cell 0
    # in float32; the pair's contributions change at those two cells; compute both independently
    raw = deep_lift_shap(model.float(), torch.from_numpy(x).float(), references=torch.from_numpy(refs).float(),
                         raw_outputs=True, device="cpu").double().numpy()
    peer_c = raw * (x[:, None] - refs)
    net = from_torch(near_tie_model())
    ref_c = per_pair(net, x, refs).values.reshape(refs.shape)
    expected = max(rel(peer_c[0, k], ref_c[0, k]) for k in (0, 1))
    assert flips.max_rel_diff == pytest.approx(expected, rel=1e-12)   # the same float32 run, read twice
    assert expected > 1e-2                       # visible, while the delta is at float32 rounding
    delta = abs(peer_c[0].reshape(2, -1).sum(axis=1) - (net(x)[0, 0] - net(refs[0])[:, 0]))
    assert np.all(delta < 1e-6)
    contributions = report["deep_lift_shap[contributions]"]
    assert contributions.verdict == "winner_flip", report.table()      # the flip is its largest part
    assert max((c for c in contributions.causes if c.kind != "rounding"), key=lambda c: c.size).kind == "winner_flip"


def test_float32_without_ties_is_rounding():
    model, x = gm.build("issue48", L), one_hot(2, seed=5)
    report = compare_tangermeme(model, x, n_shuffles=3, dtype="float32")
    assert report.all_explained, report.table()
    assert report["deep_lift_shap[contributions]"].verdict == "agree", report.table()


def test_twin_model_says_second_input_not_attributed():
    model, x, y = gm.build("twin", L), one_hot(2, seed=7), one_hot(2, seed=8)
    report = compare_tangermeme(model, x, n_shuffles=3, args=(y,))
    assert report.all_explained, report.table()
    assert any("attributes only the first input" in note and "'y'" in note for note in report.notes), report.notes
    assert report["deep_lift_shap[contributions]"].verdict == "agree", report.table()


def test_functional_relu_is_named_as_treated_linear():
    model, x = gm.build("functional", L), one_hot(2, seed=9)
    report = compare_tangermeme(model, x, n_shuffles=3)
    assert report.all_explained, report.table()
    entry = report["deep_lift_shap[contributions]"]
    assert entry.verdict == "peer_bug"
    assert any("written as a function" in c.description for c in entry.causes)


@pytest.mark.parametrize("name", ["issue48", "issue49", "residual"])
def test_reference_side_sums_to_delta_for_every_pair(name):
    model, x = gm.build(name, L), one_hot(3, seed=11)
    refs = np.concatenate([middle_shuffled(x, 2), dinucleotide_shuffle(torch.from_numpy(x), n=3,
                                                                         random_state=4).double().numpy()], axis=1)
    net = from_torch(model)
    result = per_pair(net, x, refs)
    n, k = refs.shape[:2]
    refs_flat = refs.reshape((n * k,) + x.shape[1:])
    delta_t = net(np.repeat(x, k, axis=0))[:, 0] - net(refs_flat)[:, 0]
    scale = np.maximum(np.abs(delta_t), np.abs(result.values).reshape(n * k, -1).sum(axis=1))
    assert np.all(np.abs(result.completeness_gap) <= 1e-12 * scale)
    # one call with per-sequence reference sets equals the K single-reference calls averaged
    together = deeplift(net, x, baseline_samples=refs, target=0, maxpool_rule="delta_routing")
    assert rel(together.values, result.values.reshape(refs.shape).mean(axis=1)) <= 1e-12


def test_command_line_peer_tangermeme(tmp_path, capsys):
    """``refattr compare --peer tangermeme`` with the user's references (N, K, 4, L): exit 0 on the
    #48 shape in float64 (every difference explained, no peer bug), a JSON report with one entry
    per quantity; several targets are refused with exit 2 (tangermeme explains one output)."""
    import json

    from refattr.cli import main

    x = one_hot(2, seed=3)
    refs = dinucleotide_shuffle(torch.from_numpy(x), n=3, random_state=2).double().numpy()
    torch.save(gm.build("issue48", L), tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "refs.npy", refs)
    argv = ["compare", str(tmp_path / "model.pt"), "--trust-pickle", "--peer", "tangermeme", "--inputs",
            str(tmp_path / "x.npy"), "--baseline-samples", str(tmp_path / "refs.npy")]
    code = main(argv + ["--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report
    assert {e["method"] for e in report["entries"]} >= {f"deep_lift_shap[{q}]" for q in
                                                          ("multipliers", "contributions", "hypothetical", "projected")}
    np.save(tmp_path / "t.npy", np.array([0, 1]))
    code = main(argv + ["--targets", str(tmp_path / "t.npy")])
    assert code == 2 and "one output for the whole batch" in capsys.readouterr().err


def test_references_of_the_wrong_shape_or_not_finite_are_refused_before_the_peer_runs():
    from refattr.errors import NonFiniteError, ShapeError

    model, x = gm.build("issue48", L), one_hot(2)
    with pytest.raises(ShapeError, match=r"references: expected shape \(N, K, 4, 120\) = \(2, K, 4, 120\)"):
        compare_tangermeme(model, x, references=np.zeros((2, 3, 4, 119)))
    refs = np.repeat(x[:, None], 3, axis=1)
    refs[0, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="references"):
        compare_tangermeme(model, x, references=refs)
