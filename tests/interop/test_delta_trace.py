"""trace_delta: Captum's DeepLift convergence delta traced layer by layer.

Independent checks: Captum itself. Its convergence delta (float64 and float32) is read from
``attribute(..., return_convergence_delta=True)``, and the sum of contributions at a hidden cut from
Captum's own ``LayerDeepLift`` at that module (``attribute_to_layer_input=False``: Δa times the
gradient Captum's hooks deliver there), which the float64 replay must equal at every cut.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
from torch import nn  # noqa: E402

from refattr.interop.delta_trace import trace_delta  # noqa: E402

_spec = importlib.util.spec_from_file_location("genomics_models", Path(__file__).with_name("genomics_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)

L = 20


def PoolModel():
    """The #49 shape at a small size (genomics_models.SmallPool)."""
    return gm.SmallPool(L)


class ResidualModel(nn.Module):
    """conv -> ReLU -> (conv -> ReLU) + skip -> Linear: the values inside the block are not cuts."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv1d(4, 3, 3, padding=1), nn.ReLU()
        self.inner, self.relu2 = nn.Conv1d(3, 3, 3, padding=1), nn.ReLU()
        self.flat, self.fc = nn.Flatten(), nn.Linear(3 * L, 1)

    def forward(self, x):
        h = self.relu(self.conv(x))
        return self.fc(self.flat(self.relu2(self.inner(h)) + h))


def setup(cls, n=3, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.eye(4)[rng.integers(0, 4, size=(n, L))].transpose(0, 2, 1).copy()
    ref = x[:, :, rng.permutation(L)]
    return cls().double().eval(), x, ref


def captum(cls_name, model, *args, **kwargs):
    import captum.attr as ca

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(ca, cls_name)(model, *kwargs.pop("init", ())).attribute(*args, **kwargs)


def test_the_first_break_is_the_relu_before_the_pool_and_captum_agrees_at_every_cut():
    model, x, ref = setup(PoolModel)
    trace = trace_delta(model, x, ref, targets=0)
    tx, tr = torch.tensor(x, requires_grad=True), torch.tensor(ref)
    _, delta = captum("DeepLift", model, tx, tr, target=0, return_convergence_delta=True)
    assert trace.delta_peer == pytest.approx(float(delta.abs().max()), rel=1e-12)
    assert trace.delta_peer > 1e-3 and trace.replay_diff <= 1e-12
    broken = trace.accounts[trace.first_break]
    assert "'relu' (ReLU)" in broken.layers and broken.leak == pytest.approx(trace.delta_peer, rel=1e-12)
    assert "#1104" in broken.rules and "closes the leak" in broken.rules
    assert "pooling windows whose winner differs" in broken.cells
    assert all(a.leak <= trace.tolerance for k, a in enumerate(trace.accounts) if k != trace.first_break)
    # the sum at each hidden cut equals Captum's own LayerDeepLift there
    dt = (model(tx)[:, 0] - model(tr)[:, 0]).detach().numpy()
    for module, label in ((model.relu, "'relu' (ReLU output)"), (model.conv, "'conv' (Conv1D output)")):
        layer = captum("LayerDeepLift", model, tx, tr, target=0, init=(module,)).detach().numpy()
        (account,) = [a for a in trace.accounts if a.value == label]
        gap = np.max(np.abs(layer.reshape(layer.shape[0], -1).sum(axis=1) - dt))
        assert account.gap == pytest.approx(gap, rel=1e-12, abs=1e-15)


def test_float32_part_is_the_change_of_captums_own_delta():
    model, x, ref = setup(PoolModel, seed=1)
    trace = trace_delta(model, x, ref, targets=1)
    m32 = PoolModel()
    m32.load_state_dict(model.state_dict())
    m32 = m32.float().eval()
    _, d32 = captum("DeepLift", m32, torch.tensor(x, dtype=torch.float32, requires_grad=True),
                    torch.tensor(ref, dtype=torch.float32), target=1, return_convergence_delta=True)
    _, d64 = captum("DeepLift", model, torch.tensor(x, requires_grad=True), torch.tensor(ref), target=1,
                    return_convergence_delta=True)
    expected = float((d32.double() - d64).abs().max())
    assert trace.float32_part == pytest.approx(expected, rel=1e-12)    # the same Captum runs, read twice
    assert 0 < trace.float32_part < 1e-5       # float32 rounding, far below the #1104 leak


def test_no_break_on_a_model_captum_handles_and_cuts_skip_the_residual_block():
    model, x, ref = setup(ResidualModel, seed=2)
    trace = trace_delta(model, x, ref, targets=0, float32=False)
    assert trace.first_break is None and trace.delta_peer <= 1e-12 and trace.float32_part is None
    assert "no layer breaks" in trace.summary()
    labels = [a.value for a in trace.accounts]
    assert labels[0].startswith("output") and labels[-1] == "input"
    assert not any("'inner'" in v or "'relu2'" in v for v in labels)   # inside the block: not cuts
    assert any("'relu' (ReLU output)" == v for v in labels)            # the block's input: a cut


def test_deeplift_shap_with_one_set_per_sequence():
    model, x, _ = setup(PoolModel, seed=3)
    rng = np.random.default_rng(3)
    sets = np.stack([np.stack([x[n][:, rng.permutation(L)] for _ in range(4)]) for n in range(3)])
    trace = trace_delta(model, x, targets=0, baseline_samples=sets, float32=False)
    assert trace.method == "DeepLiftShap" and trace.n_pairs == 12
    deltas = [captum("DeepLiftShap", model, torch.tensor(x[n:n + 1], requires_grad=True), torch.tensor(sets[n]),
                     target=0, return_convergence_delta=True)[1] for n in range(3)]
    assert trace.delta_peer == pytest.approx(float(torch.cat(deltas).abs().max()), rel=1e-12)
    assert "#1104" in trace.accounts[trace.first_break].rules
    assert "first breaks at 'relu' (ReLU)" in trace.table().splitlines()[-1]


def test_tangermeme_exact_in_float64_and_its_delta_traced_to_functions_it_treats_as_linear():
    """tangermeme 1.6.0 on the #49 model: no layer breaks summation-to-delta, its own delta is
    rounding and float32 adds the rest. The same model written with F.relu (Functional49): the
    first break is the first ReLU function from the output, and switching off "treated as linear"
    closes it. tangermeme's delta is checked against its raw multipliers read here directly."""
    pytest.importorskip("tangermeme")
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    length = 120
    rng = np.random.default_rng(0)
    x = np.zeros((2, 4, length))
    x[np.arange(2)[:, None], rng.integers(0, 4, (2, length)), np.arange(length)] = 1.0
    refs = dinucleotide_shuffle(torch.from_numpy(x), n=3, random_state=1).double().numpy()
    exact = trace_delta(gm.build("issue49", length), x, targets=0, baseline_samples=refs, peer="tangermeme")
    assert exact.first_break is None and exact.delta_peer <= 1e-12 and exact.n_pairs == 6
    assert exact.float32_part is not None and 1e-12 < exact.float32_part < 1e-5

    torch.manual_seed(0)
    functional = gm.Functional49(length).double().eval()
    trace = trace_delta(functional, x, targets=0, baseline_samples=refs, peer="tangermeme", float32=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = deep_lift_shap(functional, torch.tensor(x), target=0, references=torch.tensor(refs), raw_outputs=True,
                           device="cpu", warning_threshold=float("inf")).double().numpy()
    with torch.no_grad():
        fx = functional(torch.tensor(x))[:, 0].numpy()
        fr = functional(torch.tensor(refs.reshape(-1, 4, length)))[:, 0].numpy().reshape(2, 3)
    own = (m * (x[:, None] - refs)).reshape(2, 3, -1).sum(axis=2) - (fx[:, None] - fr)
    assert trace.delta_peer == pytest.approx(float(np.max(np.abs(own))), rel=1e-12)
    assert trace.delta_peer > 1e-3 and trace.replay_diff <= 1e-12
    broken = trace.accounts[trace.first_break]
    assert "(ReLU)" in broken.layers and "treats the module (or a function in forward) as linear" in broken.rules


def test_command_line_trace_delta(tmp_path, capsys):
    """``refattr compare ... --trace-delta`` prints the account after the comparison's table."""
    from refattr.cli import main

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(4),
                                torch.nn.Flatten(), torch.nn.Linear(6 * (L // 4), 2)).double().eval()
    _, x, ref = setup(PoolModel)
    torch.save(model, tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", ref)
    code = main(["compare", str(tmp_path / "model.pt"), "--trust-pickle", "--inputs", str(tmp_path / "x.npy"),
                 "--baseline", str(tmp_path / "ref.npy"), "--targets", "0", "--methods", "DeepLift", "--trace-delta"])
    out = capsys.readouterr().out
    assert code == 3 and "Captum DeepLift replayed in float64" in out and "<- first break" in out
    assert out.rstrip().splitlines()[-1].startswith("Captum DeepLift: delta")
