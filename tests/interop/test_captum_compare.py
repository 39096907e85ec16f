"""compare_captum: every difference between Captum 0.9.0 and refattr is classified, and the
documented Captum facts are reproduced.

Expected values: Captum itself (run in float64) and closed forms stated in each test. Tolerances:
EXACT_RTOL (1e-12) for "equal up to float64 rounding"; 1e-13 where the issue states that bar for
Captum's IG against its reproduced convention (both sides do the same float64 arithmetic on the
same float32-rounded nodes and weights, differing only in the order of gradient accumulation).
"""

import warnings

import numpy as np
import pytest

from refattr import Dense, Sequential
from refattr.methods.deeplift import deeplift
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
captum = pytest.importorskip("captum")
nn = torch.nn
from captum.attr import DeepLift, IntegratedGradients  # noqa: E402
from captum.attr._utils.approximation_methods import approximation_parameters  # noqa: E402

from refattr.interop import compare_captum, from_torch  # noqa: E402
from refattr.interop import captum_conventions as cc  # noqa: E402
from refattr.interop.compare import VERDICTS, relative_difference  # noqa: E402

EXPLAINED = {"agree", "convention", "approximation", "peer_bug", "peer_error"}


def _mlp(activation, seed=0, sizes=(4, 6, 6, 3)):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers).double().eval()


def _data(shape, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape), rng.normal(size=(n,) + shape) * 0.3


def _captum(cls, model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's UserWarnings about hooks and requires_grad
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in args]
        tensors[0] = tensors[0].clone().requires_grad_()
        return cls(model).attribute(*tensors, **kwargs).detach().numpy()


@pytest.fixture(scope="module")
def mixed_mlp():
    """An MLP with every activation: ReLU, tanh, sigmoid, swish."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 5), nn.Sigmoid(),
                          nn.Linear(5, 5), nn.SiLU(), nn.Linear(5, 3)).double().eval()
    x, b = _data((4,))
    return model, x, b, np.array([0, 2, 1])


@pytest.fixture(scope="module")
def mlp_report(mixed_mlp):
    model, x, b, t = mixed_mlp
    return compare_captum(model, x, b, t)


@pytest.fixture(scope="module")
def cnn():
    """A piecewise-linear CNN (so the IG reference is the exact integral): conv, BatchNorm, ReLU,
    overlapping max pooling, strided conv, average pooling, linear."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                          nn.Conv2d(3, 4, 2, stride=2), nn.ReLU(), nn.AvgPool2d(2, stride=1, padding=1),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(-2, 2)
    x, b = _data((2, 7, 7), n=2)
    return model.eval(), x, b, np.array([0, 2])


@pytest.fixture(scope="module")
def cnn_report(cnn):
    model, x, b, t = cnn
    return compare_captum(model, x, b, t, ig_methods=("riemann_trapezoid", "gausslegendre"))


def test_every_difference_on_the_mlp_is_classified(mlp_report):
    assert mlp_report.forward_max_rel_diff <= EXACT_RTOL
    names = [e.method for e in mlp_report.entries]
    assert names[:4] == ["Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution"]
    assert len([n for n in names if n.startswith("IntegratedGradients[")]) == 5
    assert names[-2:] == ["DeepLift", "DeepLiftShap"]
    for e in mlp_report.entries:
        assert e.verdict in VERDICTS and e.verdict in EXPLAINED, (e.method, e.verdict, e.causes)
    assert mlp_report.ok, mlp_report.table()
    for name in names[:4]:
        assert mlp_report[name].verdict == "agree"
    # IG: fixed 50-step rules against the adaptive reference (the network has ReLU kinks and smooth parts)
    for method in ("riemann_left", "riemann_right", "riemann_middle", "gausslegendre"):
        assert mlp_report[f"IntegratedGradients[{method}, n_steps=50]"].verdict == "approximation"
    trapezoid = mlp_report["IntegratedGradients[riemann_trapezoid, n_steps=50]"]
    assert trapezoid.verdict == "convention"
    assert any("(n-1)/n" in c.description and c.size > 0.01 for c in trapezoid.causes)
    table = mlp_report.table()
    assert "every difference is explained" in table and "UNEXPLAINED" not in table
    assert '"ok": true' in mlp_report.to_json()
    # SiLU's missing DeepLift rule is documented by Captum: a convention, so no result is called wrong
    assert mlp_report.peer_correct is True and table.splitlines()[-1].startswith("CORRECT: Captum's results")


def test_deeplift_on_swish_differs_and_the_report_says_why(mlp_report):
    for name in ("DeepLift", "DeepLiftShap"):
        entry = mlp_report[name]
        assert entry.verdict == "convention"
        top = max(entry.causes, key=lambda c: c.size)
        assert "nn.SiLU" in top.description and top.size > 1e-3
        # Captum's attributions break summation-to-delta; refattr's Rescale keeps it
        assert entry.peer_completeness_gap > 1e-6
        assert entry.reference_completeness_gap <= 1e-15


def test_deeplift_on_a_pure_swish_mlp_is_far_off():
    model = _mlp(nn.SiLU, sizes=(4, 6, 6, 3))
    x, b = _data((4,))
    report = compare_captum(model, x, b, np.array([1, 0, 2]), methods=["DeepLift"])
    entry = report["DeepLift"]
    assert entry.verdict == "convention" and report.ok
    # tens of percent, not rounding: |Δt| is about 1e-2 here and the gap about 1e-3 to 1e-2
    assert entry.max_rel_diff > 0.1 and entry.peer_completeness_gap > 1e-3
    assert entry.reference_completeness_gap <= 1e-15


def test_every_difference_on_the_cnn_is_classified(cnn_report):
    assert cnn_report.ok, cnn_report.table()
    for name in ("Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution"):
        assert cnn_report[name].verdict == "agree"
    assert cnn_report["IntegratedGradients[riemann_trapezoid, n_steps=50]"].verdict == "convention"
    assert cnn_report["IntegratedGradients[gausslegendre, n_steps=50]"].verdict == "approximation"
    assert "'exact'" in cnn_report["IntegratedGradients[gausslegendre, n_steps=50]"].reference
    # ReLU -> MaxPool2d: Captum's adjacent-hook bug (issue #1104) is what separates it from Rescale;
    # a known bug is explained (report.ok) but the result is wrong (peer_correct is False)
    for name in ("DeepLift", "DeepLiftShap"):
        entry = cnn_report[name]
        assert entry.verdict == "peer_bug"
        top = max(entry.causes, key=lambda c: c.size)
        assert top.kind == "peer_bug" and top.issue == "Captum issue #1104"
    assert cnn_report.peer_correct is False
    summary = cnn_report.summary()
    assert summary.startswith("!! WRONG: ") and "Captum's DeepLift is wrong on this model by" in summary


def test_captum_ig_matches_its_reproduced_convention_to_1e13(mixed_mlp):
    model, x, b, t = mixed_mlp
    net = from_torch(model)
    for method in cc.CAPTUM_IG_METHODS:
        for n_steps in (7, 50):
            peer = _captum(IntegratedGradients, model, x, b, target=torch.from_numpy(t), n_steps=n_steps, method=method)
            ours = cc.captum_integrated_gradients(net, x, b, t, method, n_steps)
            assert relative_difference(peer, ours) <= 1e-13, (method, n_steps)


def test_captum_nodes_and_weights_are_reproduced_bit_for_bit():
    for method in cc.CAPTUM_IG_METHODS:
        step_sizes, alphas = approximation_parameters(method)
        for n in range(2, 130):
            nodes, weights = cc.captum_ig_quadrature(method, n)
            np.testing.assert_array_equal(nodes, np.array(alphas(n)))
            # Captum multiplies by torch.tensor(step_sizes).float()
            np.testing.assert_array_equal(weights, torch.tensor(step_sizes(n)).float().double().numpy())


def test_captum_trapezoid_is_biased_by_n_minus_1_over_n():
    # f(x) = w . x is linear, so every correct rule gives phi = w * (x - x') exactly.
    w = np.array([[0.5, -2.0, 1.25]])
    net = Sequential([Dense(w, [0.1])])
    model = nn.Sequential(nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w))
        model[0].bias.fill_(0.1)
    x = np.array([[1.0, 2.0, -3.0]])
    exact = w * x
    for n in (10, 50):
        peer = _captum(IntegratedGradients, model, x, torch.zeros(1, 3, dtype=torch.float64), n_steps=n,
                       method="riemann_trapezoid")
        # the weights are float32(1/n) and float32(1/(2n)): relative error below 6e-8
        np.testing.assert_allclose(peer, (n - 1) / n * exact, rtol=1e-7)
        unrounded = cc.captum_integrated_gradients(net, x, 0.0, None, "riemann_trapezoid", n, float32=False)
        np.testing.assert_allclose(unrounded, (n - 1) / n * exact, rtol=1e-14)
        # refattr's trapezoid rule (weights 1/(n - 1), ends halved) has no bias
        np.testing.assert_allclose(integrated_gradients(net, x, rule="trapezoid", n_steps=n).values, exact, rtol=1e-14)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
def test_captum_deeplift_matches_rescale_on_relu_and_tanh_mlps(activation):
    model = _mlp(activation, sizes=(4, 6, 5, 3))
    x, b = _data((4,))
    t = np.array([1, 0, 2])
    peer = _captum(DeepLift, model, x, b, target=torch.from_numpy(t))
    reference = deeplift(from_torch(model), x, b, target=t, rule="rescale").values
    assert relative_difference(peer, reference) <= EXACT_RTOL
    report = compare_captum(model, x, b, t, methods=["DeepLift"])
    assert report["DeepLift"].verdict == "agree"


def test_deeplift_epsilon_fallback_is_recognised():
    # z = x1 - x2 crosses the ReLU kink with |Δz| = 9e-11 < 1e-10: Captum uses relu'(z) = 1, the
    # Rescale multiplier is (relu(4e-11) - relu(-5e-11)) / 9e-11 = 4/9. Both attributions sum to
    # Δt = 4e-11, but they differ by a factor 9/4: Captum (1, -(1 - 4e-11)), refattr 4/9 of that.
    net = Sequential([Dense([[1.0, -1.0]]), nn_relu(), Dense([[1.0]])])
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.ReLU(), nn.Linear(1, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
        model[2].weight.fill_(1.0)
    x = np.array([[1.0, 1.0 - 4e-11]])
    b = np.array([[0.0, 5e-11]])
    report = compare_captum(model, x, b, None, methods=["DeepLift"])
    entry = report["DeepLift"]
    assert entry.verdict == "convention", report.table()
    top = max(entry.causes, key=lambda c: c.size)
    assert "|Δz| < 1e-10" in top.description and "1 neuron" in top.description
    np.testing.assert_allclose(deeplift(net, x, b).values, 4 / 9 * np.array([[1.0, -(1 - 4e-11)]]), rtol=1e-5)


def nn_relu():
    from refattr import ReLU

    return ReLU()


def test_reused_relu_module_is_a_documented_captum_refusal():
    relu = nn.ReLU()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2)).double().eval()
    x, b = _data((3,), n=2)
    report = compare_captum(model, x, b, 1, methods=["DeepLift", "Saliency"])
    assert report["DeepLift"].verdict == "peer_error"
    assert "used more than once" in report["DeepLift"].notes[0]
    assert report["Saliency"].verdict == "agree"
    assert report.ok


def test_an_unknown_difference_is_flagged_loudly(mixed_mlp, monkeypatch):
    # Pretend the convention were float64 nodes and weights: Captum then matches no explanation.
    model, x, b, t = mixed_mlp
    real = cc.captum_ig_quadrature
    monkeypatch.setattr(cc, "captum_ig_quadrature", lambda method, n, float32=True: real(method, n, float32=False))
    report = compare_captum(model, x, b, t, methods=["IntegratedGradients"], ig_methods=["riemann_right"])
    entry = report.entries[0]
    assert entry.verdict == "unexplained" and not report.ok
    assert "!! UNEXPLAINED: IntegratedGradients[riemann_right, n_steps=50]" in report.table()
    # nothing is known about whether Captum is right there: neither True nor False
    assert report.peer_correct is None and "is unknown" in report.summary()


def test_compare_an_onnx_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(size=(3, 4)), "W1"), numpy_helper.from_array(rng.normal(size=3), "b1"),
             numpy_helper.from_array(rng.normal(size=(2, 3)), "W2")]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1), helper.make_node("Tanh", ["h"], ["a"]),
         helper.make_node("Gemm", ["a", "W2"], ["y"], transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    x, b = _data((4,), n=2)
    report = compare_captum(str(path), x, b, 0, methods=["Saliency", "IntegratedGradients", "DeepLift"],
                            ig_methods=["gausslegendre"])
    assert report.ok, report.table()
    assert report.forward_max_rel_diff <= EXACT_RTOL
    assert report["Saliency"].verdict == "agree" and report["DeepLift"].verdict == "agree"
    assert report["IntegratedGradients[gausslegendre, n_steps=50]"].verdict in ("approximation", "convention")


def test_compare_own_attributions_recognises_conventions():
    from refattr.interop import compare_attributions

    model = _mlp(nn.SiLU, sizes=(4, 6, 6, 3))
    x, b = _data((4,))
    t = np.array([1, 0, 2])
    peer = _captum(DeepLift, model, x, b, target=torch.from_numpy(t))
    report = compare_attributions(model, x, peer, "deeplift", b, t)
    assert report.entries[0].verdict == "convention" and report.ok
    assert report.forward_max_rel_diff <= EXACT_RTOL
    net = from_torch(model)
    saliency = np.abs(_captum(__import__("captum.attr", fromlist=["Saliency"]).Saliency, model, x,
                              target=torch.from_numpy(t)))
    assert compare_attributions(net, x, saliency, "gradient", targets=t).entries[0].verdict == "convention"
    ours = integrated_gradients(net, x, b, target=t, rule="midpoint", n_steps=20).values
    report = compare_attributions(net, x, ours.astype(np.float32), "integrated_gradients", b, t, rule="midpoint",
                                  n_steps=20)
    assert report.rtol == 1e-5 and report.entries[0].verdict == "approximation"
    report = compare_attributions(net, x, ours * 1.01, "integrated_gradients", b, t, rule="midpoint", n_steps=20)
    assert report.entries[0].verdict == "unexplained" and not report.ok
    assert "largest difference at index" in report.table()
