"""compare_captum(multiply_by_inputs=False): Captum's DeepLift and DeepLiftShap multipliers.

Independent checks: Captum's own default attributions equal its multipliers times Δx (so the
entry compares the quantity Captum documents), refattr's multipliers times Δx are its contributions,
and a closed form: on a linear model the multipliers are the weights.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
from torch import nn  # noqa: E402

from refattr.interop import compare_captum, from_torch  # noqa: E402
from refattr.methods.deeplift import deeplift  # noqa: E402

_spec = importlib.util.spec_from_file_location("genomics_models", Path(__file__).with_name("genomics_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)

L = 20


class TanhModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.flat, self.fc = nn.Conv1d(4, 5, 5, padding=2), nn.Tanh(), nn.Flatten(), nn.Linear(5 * L, 2)

    def forward(self, x):
        return self.fc(self.flat(self.act(self.conv(x))))


def PoolModel():
    return gm.SmallPool(L)


def data(seed, n=3, middle=None):
    rng = np.random.default_rng(seed)
    x = np.eye(4)[rng.integers(0, 4, size=(n, L))].transpose(0, 2, 1).copy()
    a, b = middle or (0, L)
    ref = x.copy()
    ref[:, :, a:b] = x[:, :, a + rng.permutation(b - a)]
    return x, ref


def entry(report, name):
    (e,) = [e for e in report.entries if e.method == name]
    return e


def test_multipliers_agree_on_a_smooth_model_and_are_what_captum_multiplies():
    from captum.attr import DeepLift

    torch.manual_seed(0)
    model = TanhModel().double().eval()
    x, ref = data(0)
    tx, tr = torch.tensor(x, requires_grad=True), torch.tensor(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DeepLift(model, multiply_by_inputs=False).attribute(tx, tr, target=1).detach().numpy()
        phi = DeepLift(model).attribute(tx, tr, target=1).detach().numpy()
    np.testing.assert_allclose(m * (x - ref), phi, rtol=0, atol=1e-15)
    ours = deeplift(from_torch(model, input_shape=(4, L)), x, ref, target=1)
    np.testing.assert_allclose(ours.multipliers * (x - ref), ours.values, rtol=0, atol=1e-15)
    report = compare_captum(model, x, ref, targets=1, methods=["DeepLift", "DeepLiftShap"], multiply_by_inputs=False)
    for name in ("DeepLift[multiply_by_inputs=False]", "DeepLiftShap[multiply_by_inputs=False]"):
        assert entry(report, name).verdict == "agree" and entry(report, name).max_rel_diff <= 1e-12, report.table()


def test_linear_model_multipliers_are_the_weights():
    class Linear1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.flat, self.fc = nn.Conv1d(4, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * L, 1)

        def forward(self, x):
            return self.fc(self.flat(self.conv(x)))

    torch.manual_seed(1)
    model = Linear1d().double().eval()
    x, ref = data(1, n=2)
    probe = torch.zeros(1, 4, L, dtype=torch.float64, requires_grad=True)
    (w,) = torch.autograd.grad(model(probe).sum(), probe)
    net = from_torch(model, input_shape=(4, L))
    np.testing.assert_allclose(deeplift(net, x, ref).multipliers, np.broadcast_to(w.numpy(), x.shape), rtol=0,
                               atol=1e-14)
    report = compare_captum(model, x, ref, methods=["DeepLift"], multiply_by_inputs=False)
    assert entry(report, "DeepLift[multiply_by_inputs=False]").max_rel_diff <= 1e-12, report.table()


def test_multipliers_where_delta_is_zero_are_a_named_convention():
    """References equal to x outside the middle: Δx == 0 on the flanks, where DeepLIFT's multiplier
    is undefined; the ReLU -> MaxPool1d pair also carries Captum #1104, and the max-pool fallback
    (#1276) acts at the flanks' Δz == 0. Captum is reproduced exactly and each part is named."""
    torch.manual_seed(2)
    model = PoolModel().double().eval()
    x, ref = data(2, middle=(6, 14))
    report = compare_captum(model, x, ref, targets=0, methods=["DeepLift"], multiply_by_inputs=False)
    e = entry(report, "DeepLift[multiply_by_inputs=False]")
    assert report.all_explained and e.verdict == "peer_bug", report.table()
    (reproduced,) = [c for c in e.causes if c.description.startswith("peer vs Captum")]
    assert reproduced.size <= 1e-12
    (undefined,) = [c for c in e.causes if "undefined where Δx == 0" in c.description]
    assert undefined.kind == "convention" and undefined.size > 1e-2
    # the row-0 fallback acts where Δx == 0: invisible in contributions, visible in multipliers
    for issue in ("#1104", "#1276"):
        assert any(c.issue and issue in c.issue and c.size > 1e-2 for c in e.causes), issue


def test_integrated_gradients_mean_gradient_is_skipped_on_a_smooth_network():
    torch.manual_seed(3)
    model = TanhModel().double().eval()
    x, ref = data(3, n=2)
    report = compare_captum(model, x, ref, targets=0, methods=["IntegratedGradients"], multiply_by_inputs=False,
                            ig_methods=["gausslegendre"])
    (e,) = report.entries
    assert e.verdict == "skipped" and "piecewise-linear networks only" in e.notes[0]


def test_integrated_gradients_mean_gradient_on_a_relu_network():
    """Linear -> ReLU -> Linear: the mean gradient along the path written here from the weights
    (each hidden unit switches at a known α; the gradient is constant between switches), against
    refattr's exact reference; Captum's multiply_by_inputs=False reproduced to rounding, its
    difference an approximation (its quadrature over the kinks) plus float32 weights."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()
    rng = np.random.default_rng(4)
    x, ref = rng.normal(size=(3, 3)) * 2, rng.normal(size=(3, 3))
    w1, c1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w2 = model[2].weight.detach().numpy()[1]
    expected = np.zeros_like(x)
    for n in range(3):
        h0, h1 = w1 @ ref[n] + c1, w1 @ (x[n] - ref[n])
        edges = np.array(sorted({0.0, 1.0} | {float(-u / v) for u, v in zip(h0, h1) if v != 0 and 0 < -u / v < 1}))
        for lo, hi in zip(edges[:-1], edges[1:]):
            on = (h0 + (lo + hi) / 2 * h1) > 0
            expected[n] += (hi - lo) * (w2 * on) @ w1
    from refattr.interop.compare import _exact_mean_gradient

    net = from_torch(model, input_shape=(3,))
    np.testing.assert_allclose(_exact_mean_gradient(net, x, ref, np.full(3, 1)), expected, rtol=0, atol=1e-14)
    report = compare_captum(model, x, ref, targets=1, methods=["IntegratedGradients"], multiply_by_inputs=False,
                            ig_methods=["gausslegendre", "riemann_trapezoid"])
    assert report.all_explained, report.table()
    for e in report.entries:
        assert "multiply_by_inputs=False" in e.method
        (reproduced,) = [c for c in e.causes if c.description.startswith("peer vs")]
        assert reproduced.size <= 1e-12
        assert any(c.kind == "approximation" and c.size > 0 for c in e.causes)


def test_command_line_multipliers(tmp_path, capsys):
    import json

    from refattr.cli import main

    torch.manual_seed(0)
    model = TanhModel().double().eval()
    x, ref = data(0)
    torch.save(model, tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", ref)
    code = main(["compare", str(tmp_path / "model.pt"), "--trust-pickle", "--inputs", str(tmp_path / "x.npy"),
                 "--baseline", str(tmp_path / "ref.npy"), "--targets", "1", "--methods", "DeepLift", "--multipliers",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["entries"][0]["method"] == "DeepLift[multiply_by_inputs=False]"
