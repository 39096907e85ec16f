"""Captum's DeepLiftShap in the genomics workflow: one set of shuffled references per sequence, and
hypothetical contributions through Captum's ``custom_attribution_func``.

Models are written here in plain torch: Conv1d on one-hot DNA (4 x L), with and without the
ReLU -> MaxPool1d pair of tangermeme issue #49 (Captum issue #1104 on adjacent hooked modules).
Independent checks: Captum is run in the test itself, once per sequence with its own references,
and compared with K separate refattr calls; a closed form (the linear model's multipliers are its
weights) for hypothetical contributions.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
from torch import nn  # noqa: E402

from refattr.interop import compare_captum, from_torch  # noqa: E402
from refattr.methods.deeplift import deeplift  # noqa: E402
from refattr.methods.hypothetical import hypothetical_contributions  # noqa: E402

_spec = importlib.util.spec_from_file_location("genomics_models", Path(__file__).with_name("genomics_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)

L, N, K = 20, 3, 4


def PoolModel():
    """The #49 shape at a small size (genomics_models.SmallPool)."""
    return gm.SmallPool(L)


class ReluModel(nn.Module):
    """Conv1d -> ReLU -> Linear: no pooling, no adjacent hooked modules."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.flat, self.fc = nn.Conv1d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * L, 2)

    def forward(self, x):
        return self.fc(self.flat(self.relu(self.conv(x))))


def one_hot(rng, n):
    return np.eye(4)[rng.integers(0, 4, size=(n, L))].transpose(0, 2, 1).copy()


def shuffled(rng, seq, k, middle=None):
    """k references: seq with its positions permuted (all, or only inside ``middle`` = (a, b))."""
    a, b = middle or (0, L)
    out = np.repeat(seq[None], k, axis=0)
    for j in range(k):
        out[j][:, a:b] = seq[:, a + rng.permutation(b - a)]
    return out


def model(cls, seed=0):
    torch.manual_seed(seed)
    return cls().double().eval()


def entry(report, name):
    (e,) = [e for e in report.entries if e.method == name]
    return e


def cause(e, issue_or_kind):
    return [c for c in e.causes if c.issue is not None and issue_or_kind in c.issue or c.kind == issue_or_kind]


def test_per_sequence_references_agree_with_captum_called_per_sequence():
    """No pooling: Captum's DeepLiftShap, called once per sequence with its own references, equals
    refattr's deeplift with (N, K, 4, L) sets, which equals K separate calls averaged."""
    from captum.attr import DeepLiftShap

    rng = np.random.default_rng(1)
    m, x = model(ReluModel), one_hot(rng, N)
    sets = np.stack([shuffled(rng, x[n], K) for n in range(N)])
    net = from_torch(m, input_shape=(4, L))
    ours = deeplift(net, x, target=1, baseline_samples=sets).values
    separate = np.mean([deeplift(net, x, sets[:, j], target=1).values for j in range(K)], axis=0)
    np.testing.assert_allclose(ours, separate, rtol=0, atol=1e-14)
    with pytest.warns(UserWarning, match="hooks"):          # Captum warns on every call
        captum = np.concatenate([
            DeepLiftShap(m).attribute(torch.tensor(x[n:n + 1], requires_grad=True), torch.tensor(sets[n]),
                                      target=1).detach().numpy()
            for n in range(N)])
    assert np.max(np.abs(captum - ours)) <= 1e-12 * np.max(np.abs(ours))

    report = compare_captum(m, x, targets=1, methods=["DeepLiftShap"], baseline_samples=sets, hypothetical=True)
    for name in ("DeepLiftShap", "DeepLiftShap[hypothetical]"):
        e = entry(report, name)
        assert e.verdict in ("agree", "rounding"), report.table()
        assert e.max_rel_diff <= 1e-12
    assert "4 references per example" in entry(report, "DeepLiftShap").reference


def test_hypothetical_contributions_of_a_linear_model_through_captum():
    """Conv1d -> Flatten -> Linear: the multiplier of base c at position j is the weight w[c, j]
    (the network is linear), so the hypothetical contribution is w[c, j] - sum_c' x'[c', j] w[c', j]
    averaged over the references, written here from the weights alone."""
    class Linear1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.flat, self.fc = nn.Conv1d(4, 3, 5, padding=2), nn.Flatten(), nn.Linear(3 * L, 1)

        def forward(self, x):
            return self.fc(self.flat(self.conv(x)))

    rng = np.random.default_rng(2)
    m, x = model(Linear1d), one_hot(rng, 2)
    sets = np.stack([shuffled(rng, x[n], K) for n in range(2)])
    probe = torch.zeros(1, 4, L, dtype=torch.float64, requires_grad=True)
    (w,) = torch.autograd.grad(m(probe).sum(), probe)      # the input weights of the linear map
    w = w[0].numpy()
    expected = np.stack([np.mean([w - (ref * w).sum(axis=0) for ref in sets[n]], axis=0) for n in range(2)])
    net = from_torch(m, input_shape=(4, L))
    np.testing.assert_allclose(hypothetical_contributions(net, x, baseline_samples=sets).hypothetical, expected,
                               rtol=0, atol=1e-13)
    report = compare_captum(m, x, methods=["DeepLiftShap"], baseline_samples=sets, hypothetical=True)
    assert entry(report, "DeepLiftShap[hypothetical]").max_rel_diff <= 1e-12, report.table()


def test_captum_bugs_in_hypothetical_contributions_are_named_and_sized():
    """The #49 shape, sequences sharing their flanks and references shuffled only in the middle
    (exact zeros of Δ in the flanks), one shared set for the batch (one Captum call): #1104 breaks
    summation-to-delta (the peer's gap, refattr's below 1e-12); #1276's row-0 fallback changes
    nothing in the contributions (Δx = 0 where it acts) and a measurable part of the hypothetical
    contributions; the multipliers at Δx == 0 differ by convention only."""
    rng = np.random.default_rng(0)
    m, x = model(PoolModel), one_hot(rng, N)
    x[:, :, :6], x[:, :, 14:] = x[0, :, :6], x[0, :, 14:]
    refs = shuffled(rng, x[0], K, middle=(6, 14))
    report = compare_captum(m, x, targets=0, methods=["DeepLiftShap"], baseline_samples=refs, hypothetical=True)
    plain, hyp = entry(report, "DeepLiftShap"), entry(report, "DeepLiftShap[hypothetical]")
    assert plain.verdict == hyp.verdict == "peer_bug", report.table()
    assert plain.reference_completeness_gap <= 1e-12 and plain.peer_completeness_gap > 1e-3
    for e in (plain, hyp):
        (reproduced,) = [c for c in e.causes if c.description.startswith("peer vs Captum")]
        assert reproduced.size <= 1e-12                       # Captum's numbers reproduced exactly
        assert cause(e, "#1104")[0].size > 1e-2
    assert cause(plain, "#1276")[0].size == 0.0
    assert cause(hyp, "#1276")[0].size > 1e-3
    (undefined,) = [c for c in hyp.causes if c.description.startswith("DeepLIFT's multiplier")]
    assert undefined.kind == "convention" and undefined.size > 1e-3
    assert "#1276" in report.summary() and "DeepLiftShap[hypothetical]" in report.summary()


def test_per_sequence_sets_with_pooling_reproduce_captum_called_per_sequence():
    """The #49 shape with one set per sequence: Captum is called once per sequence (its first row
    is then that sequence with its reference 0); every difference is a named cause."""
    rng = np.random.default_rng(3)
    m, x = model(PoolModel, seed=1), one_hot(rng, N)
    sets = np.stack([shuffled(rng, x[n], K, middle=(4, 16)) for n in range(N)])
    report = compare_captum(m, x, targets=1, methods=["DeepLiftShap"], baseline_samples=sets, hypothetical=True)
    assert report.all_explained, report.table()
    for name in ("DeepLiftShap", "DeepLiftShap[hypothetical]"):
        (reproduced,) = [c for c in entry(report, name).causes if c.description.startswith("peer vs Captum")]
        assert reproduced.size <= 1e-12


def test_per_sequence_sets_of_the_wrong_size_are_refused():
    rng = np.random.default_rng(4)
    m, x = model(ReluModel), one_hot(rng, N)
    sets = np.stack([shuffled(rng, x[n], K) for n in range(N - 1)])
    with pytest.raises(ValueError, match=r"baseline_samples.*\(N, K"):
        compare_captum(m, x, targets=0, methods=["DeepLiftShap"], baseline_samples=sets)


def test_command_line_per_sequence_sets_and_hypothetical(tmp_path, capsys):
    """``refattr compare --baseline-samples SETS.npy --hypothetical`` on the #49 shape: Captum's
    bugs found (exit 3: the peer is wrong, every difference explained)."""
    import json

    from refattr.cli import main

    rng = np.random.default_rng(5)
    torch.manual_seed(0)          # the #49 shape as an nn.Sequential, which torch.save can pickle by reference
    m = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4), nn.Flatten(),
                      nn.Linear(6 * (L // 4), 2)).double().eval()
    x = one_hot(rng, 2)
    sets = np.stack([shuffled(rng, x[n], K) for n in range(2)])
    torch.save(m, tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "sets.npy", sets)
    code = main(["compare", str(tmp_path / "model.pt"), "--trust-pickle", "--inputs", str(tmp_path / "x.npy"),
                 "--targets", "0", "--methods", "DeepLiftShap", "--baseline-samples", str(tmp_path / "sets.npy"),
                 "--hypothetical", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3 and report["ok"] and report["peer_correct"] is False
    assert [e["method"] for e in report["entries"]] == ["DeepLiftShap", "DeepLiftShap[hypothetical]"]
    assert all("#1104" in " ".join(c["description"] for c in e["causes"]) for e in report["entries"])


def test_shap_deep_explainer_with_one_background_per_sequence():
    """SHAP fixes its background when a DeepExplainer is built, so with one set of shuffled
    references per sequence compare_shap builds one explainer per sequence. Checked here: SHAP
    run that way in the test equals refattr's deeplift with the (N, K, 4, L) sets (the #49 shape:
    SHAP's full backward hooks have no #1104), and compare_shap reproduces it."""
    shap = pytest.importorskip("shap")
    from refattr.interop import compare_shap

    rng = np.random.default_rng(6)
    m, x = model(PoolModel, seed=2), one_hot(rng, 2)
    sets = np.stack([shuffled(rng, x[n], K) for n in range(2)])
    net = from_torch(m, input_shape=(4, L))
    ours = deeplift(net, x, target=1, baseline_samples=sets, maxpool_rule="delta_routing").values
    theirs = np.concatenate([np.asarray(shap.DeepExplainer(m, torch.tensor(sets[n])).shap_values(
        torch.tensor(x[n:n + 1]), check_additivity=False))[..., 1] for n in range(2)])
    assert np.max(np.abs(theirs - ours)) <= 1e-12 * np.max(np.abs(ours))
    report = compare_shap(m, x, sets, targets=1)
    deep, gradient = report.entries
    assert deep.verdict in ("agree", "rounding") and deep.max_rel_diff <= 1e-12, report.table()
    assert f"{K} references per example" in deep.reference
    assert gradient.verdict == "skipped" and "DeepExplainer only" in gradient.notes[0]
