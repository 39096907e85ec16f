"""ELU, SELU and Softplus beyond the contract suite: PyTorch's definitions and derivative conventions,
the divided differences at their hard points, and imports from PyTorch and ONNX.

Where every expected number comes from:

- PyTorch 2.13's float64 forward and autograd (the definitions refattr follows), at 0, -0.0, tiny,
  huge and ordinary points; Softplus to |beta x| * 2^-53 relative more, since PyTorch rounds beta x
  before exp and refattr carries that rounding error.
- Closed forms written here (math.exp, math.expm1, math.log1p) for the conventions at ELU's kink and
  Softplus's switch.
- mpmath at 600 digits of definitions written in this file (not the layers' own mp_function), for the
  divided differences; 1e-13 relative, as the contract suite.
- The ONNX reference evaluator (onnx_forward) and the float32 attribute values ONNX stores.
"""

import io
import math
import warnings

import mpmath
import numpy as np
import pytest

from refattr import Dense, Sequential, deeplift, gradient, guided_backprop
from refattr.errors import ArgumentError, UnsupportedLayerError
from refattr.layers.elu import ELU
from refattr.layers.registry import info
from refattr.layers.selu import SELU, SELU_ALPHA, SELU_SCALE
from refattr.layers.softplus import Softplus

EPS = 2.0**-53
POINTS = np.array([0.0, -0.0, 1e-300, -1e-300, 1e-20, -1e-20, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 19.9, 20.0,
                   20.000000000000004, 25.0, -30.0, 700.0, -700.0, -800.0, 1e300, -1e300])

LAYERS = [ELU(), ELU(0.7), SELU(), Softplus(), Softplus(2.0, 5.0), Softplus(0.5, 20.0)]


def _torch_module(layer):
    nn = pytest.importorskip("torch").nn
    if isinstance(layer, ELU):
        return nn.ELU(layer.alpha)
    if isinstance(layer, SELU):
        return nn.SELU()
    return nn.Softplus(layer.beta, layer.threshold)


# ------------------------------------------------------------------------------------------------
# PyTorch's definitions
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_function_and_vjp_match_torch_float64(layer):
    torch = pytest.importorskip("torch")
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    y = _torch_module(layer)(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    y, grad = y.detach().numpy(), grad.numpy()
    ours, cache = layer.forward(POINTS[None])
    vjp = layer.vjp(np.ones((1, POINTS.size)), cache)[0]
    ours = ours[0]
    # Softplus: PyTorch's log1p(exp(fl(beta x))) is off by up to |beta x| eps relative (refattr carries
    # the rounding of beta x); elsewhere both are a couple of roundings from the exact value
    beta = getattr(layer, "beta", 1.0)
    allowed = 4 * EPS * (1 + (np.minimum(np.abs(beta * POINTS), 800.0) if isinstance(layer, Softplus) else 0.0))
    np.testing.assert_array_less(np.abs(ours - y), allowed * np.abs(y) + 1e-320)
    np.testing.assert_array_less(np.abs(vjp - grad), allowed * np.abs(grad) + 1e-320)
    # (beyond |beta x| = 800 Softplus is switched or 0 in both, so the cap costs nothing)
    # the sign of zero: ELU(-0.0) = alpha * expm1(-0.0) = -0.0 in both
    np.testing.assert_array_equal(np.signbit(ours[y == 0]), np.signbit(y[y == 0]))


def test_elu_and_selu_slope_at_zero_is_the_exponential_side_as_torch():
    torch = pytest.importorskip("torch")
    for layer, module, slope in ((ELU(0.7), torch.nn.ELU(0.7), 0.7),
                                 (SELU(), torch.nn.SELU(), SELU_ALPHA * SELU_SCALE)):
        x = torch.tensor([0.0, -0.0], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(module(x).sum(), x)
        assert grad.tolist() == [slope, slope]          # the measured convention: x <= 0 is the exp side
        np.testing.assert_array_equal(layer.derivative(np.array([0.0, -0.0])), [slope, slope])
        np.testing.assert_array_equal(layer.secant(np.zeros(2), np.zeros(2)), [slope, slope])
    # 1.6732632423543772 * 1.0507009873554805 rounded once, as PyTorch's negcoef
    assert SELU_ALPHA * SELU_SCALE == 1.7580993408473766
    # across the kink: (f(2) - f(-1)) / 3 = (2 - 0.7 (e^-1 - 1)) / 3
    assert ELU(0.7).secant(np.array([-1.0]), np.array([3.0]))[0] == pytest.approx(
        (2 - 0.7 * math.expm1(-1.0)) / 3, rel=4 * EPS)


def test_softplus_switch_follows_torch_value_and_slope():
    # beta x == threshold is still the logarithm: f(20) = log1p(e^20), f'(20) = sigmoid(20); the
    # next float switches to x with slope 1
    above = np.nextafter(20.0, 30.0)
    layer = Softplus()
    np.testing.assert_allclose(layer.function(np.array([20.0, above])), [math.log1p(math.exp(20.0)), above],
                               rtol=2 * EPS)
    np.testing.assert_allclose(layer.derivative(np.array([20.0, above])), [1 / (1 + math.exp(-20.0)), 1.0],
                               rtol=2 * EPS)
    # beta = 2, threshold = 5: at x = 2.5 beta x == 5 (log side), just above: x
    layer = Softplus(2.0, 5.0)
    x = np.array([2.5, np.nextafter(2.5, 3.0)])
    np.testing.assert_allclose(layer.function(x), [math.log1p(math.exp(5.0)) / 2, x[1]], rtol=2 * EPS)
    np.testing.assert_allclose(layer.derivative(x), [1 / (1 + math.exp(-5.0)), 1.0], rtol=2 * EPS)
    # threshold = inf never switches: f(30) = 30 + log1p(e^-30), not 30
    assert Softplus(1.0, math.inf).function(np.array([30.0]))[0] == 30.0 + math.log1p(math.exp(-30.0))
    # far beyond exp's range (beta x = 1000) with no switch: finite, x + log1p(e^-1000) = x
    assert Softplus(1.0, math.inf).function(np.array([1000.0]))[0] == 1000.0


def test_arguments_are_checked():
    for bad in (math.nan, math.inf, True, "1"):
        with pytest.raises(ArgumentError, match="ELU alpha"):
            ELU(bad)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ArgumentError, match="Softplus beta: expected a positive finite"):
            Softplus(beta=bad)
    for bad in (math.nan, -math.inf, None):
        with pytest.raises(ArgumentError, match="Softplus threshold"):
            Softplus(threshold=bad)
    with pytest.raises(ArgumentError, match="SELU scale"):
        SELU(scale=math.nan)


def test_captum_declarations_match_captums_list():
    """ELU and Softplus are in Captum 0.9.0's SUPPORTED_NON_LINEAR (hooked, Rescale); SELU is not
    (plain gradient)."""
    torch = pytest.importorskip("torch")
    deep_lift = pytest.importorskip("captum.attr._core.deep_lift")
    for cls, module in ((ELU, torch.nn.ELU), (SELU, torch.nn.SELU), (Softplus, torch.nn.Softplus)):
        hooked = module in deep_lift.SUPPORTED_NON_LINEAR
        assert info(cls).captum == ("nonlinear" if hooked else "gradient")
        assert not info(cls).piecewise_linear


# ------------------------------------------------------------------------------------------------
# divided differences at the hard points, against mpmath
# ------------------------------------------------------------------------------------------------

def _exp_linear_mp(z, positive, negative):
    return positive * z if z > 0 else negative * mpmath.expm1(z)


def _softplus_mp(z, beta, threshold):
    """PyTorch's f: x where fl(beta x) > threshold (the product rounded to 53 bits), else
    log(1 + e^(beta x)) / beta from the exact product."""
    beta = mpmath.mpf(beta)
    with mpmath.workprec(53):
        rounded = beta * z
    return z if rounded > threshold else mpmath.log1p(mpmath.exp(beta * z)) / beta


def _definition(layer):
    if isinstance(layer, ELU):
        return lambda z: _exp_linear_mp(z, 1, mpmath.mpf(layer.alpha))
    if isinstance(layer, SELU):
        return lambda z: _exp_linear_mp(z, mpmath.mpf(SELU_SCALE), mpmath.mpf(SELU_ALPHA * SELU_SCALE))
    return lambda z: _softplus_mp(z, layer.beta, layer.threshold)


def _reference(f, a, h):
    with mpmath.workdps(600):
        a, h = mpmath.mpf(a), mpmath.mpf(h)
        if h == 0:
            eta = mpmath.mpf(10) ** -200   # one-sided (left) limit: the x <= 0 side at ELU's kink
            return float((f(a) - f(a - eta)) / eta)
        return float((f(a + h) - f(a)) / h)


HARD = {
    "two negatives close": [(-30.0, 1e-13), (-700.0, -1e-15), (-5.0, 3e-16), (-1e-300, -1e-300), (-20.0, 0.0)],
    "straddling 0": [(-1e-13, 3e-13), (2e-13, -5e-13), (-1e-300, 2e-300), (0.0, 1e-15), (0.0, -1e-15), (-3.0, 700.0)],
    "far out": [(700.0, -1400.0), (-700.0, 1400.0), (699.9, 1e-15), (-699.9, -1e-13)],
}
SOFTPLUS_HARD = {
    "across the switch": [(20.0, 4e-15), (np.nextafter(20.0, 30.0), -4e-15), (19.999999999999, 2e-12),
                          (20.5, -1.0), (2.5, 1e-15), (2.5000000000000004, -1e-15), (2.4, 0.2)],
    "tiny h below the switch": [(19.9, 1e-15), (-700.0, 1e-15), (0.0, -1e-13), (10.0, -1e-13), (-19.0, 1e-12)],
}


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_secant_at_hard_points_against_mpmath(layer):
    points = [p for group in HARD.values() for p in group]
    if isinstance(layer, Softplus):
        # the same places in units of the switch (beta x = threshold)
        scale = layer.threshold / layer.beta / 20.0
        points += [(a * scale, h * scale) for group in SOFTPLUS_HARD.values() for a, h in group]
    f = _definition(layer)
    a = np.array([p[0] for p in points])
    h = np.array([p[1] for p in points])
    got = layer.secant(a, h)
    for (ai, hi), value in zip(points, got):
        exact = _reference(f, ai, hi)
        assert value == pytest.approx(exact, rel=1e-13, abs=1e-300), (ai, hi, value, exact)


def test_softplus_secant_across_the_switch_is_the_jump_over_h():
    # a = 20 (log side), b = 20 + h the next float (switched): (b - log1p(e^20)) / h = 1 - log1p(e^-20) / h
    h = 2.0**-48                         # the spacing of floats at 20, so 20 + h is exact
    value = Softplus().secant(np.array([20.0]), np.array([h]))[0]
    assert value == pytest.approx(1 - math.log1p(math.exp(-20.0)) / h, rel=1e-13)
    assert value < -1e5                  # the jump of 2.06e-9 over h = 3.6e-15
    # half that h: beta (a + h) rounds to 20, not above it, so both ends are on the log side
    assert Softplus().secant(np.array([20.0]), np.array([h / 2]))[0] == pytest.approx(
        1 / (1 + math.exp(-20.0)), rel=1e-13)


def test_layer_mp_function_is_the_definition_written_here():
    """The contract suite holds secant to the layers' mp_function: it must be these definitions."""
    for layer in LAYERS + [Softplus(1.0, math.inf)]:
        f = _definition(layer)
        with mpmath.workdps(50):
            for z in (-700.0, -3.0, -1e-8, 0.0, 1e-8, 2.5, 2.5000000000000004, 20.0, 20.000000000000004, 50.0):
                assert layer.mp_function(mpmath.mpf(z)) == f(mpmath.mpf(z)), (layer, z)


# ------------------------------------------------------------------------------------------------
# networks: guided backprop, DeepLIFT, imports
# ------------------------------------------------------------------------------------------------

def _net(layer, rng):
    return Sequential([Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), layer,
                       Dense(rng.normal(size=(2, 4)), rng.normal(size=2))])


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_deeplift_rescale_sums_to_delta_and_guided_backprop_is_the_gradient(layer):
    rng = np.random.default_rng(5)
    net = _net(layer, rng)
    # inputs spread so that hidden units cross 0 and, for Softplus, its switch
    x = rng.normal(size=(6, 3)) * 8.0
    baseline = rng.normal(size=3)
    result = deeplift(net, x, baseline, target=1, rule="rescale")
    delta = net(x)[:, 1] - net(baseline[None])[0, 1]
    scale = np.abs(result.values).sum(axis=1) + np.abs(delta)
    assert np.all(np.abs(result.completeness_gap) <= 1e-12 * scale)
    np.testing.assert_allclose(result.values.sum(axis=1), delta, rtol=1e-12, atol=1e-12 * scale.max())
    # only ReLU masks under guided backprop: elsewhere the ordinary VJP
    np.testing.assert_array_equal(guided_backprop(net, x, target=1).values, gradient(net, x, target=1).values)


def test_deeplift_rescale_multiplier_of_one_unit_by_hand():
    # Dense(1) -> ELU(1) -> Dense(1) from x' = -1 to x = 1: C = f(1) - f(-1) = 1 - (e^-1 - 1) = 1.632...,
    # m = C / 2
    net = Sequential([Dense([[1.0]]), ELU(), Dense([[1.0]])])
    result = deeplift(net, np.array([[1.0]]), np.array([-1.0]), target=0, rule="rescale")
    assert result.values[0, 0] == pytest.approx(1 - math.expm1(-1.0), rel=1e-15)
    assert result.multipliers[0, 0] == pytest.approx((1 - math.expm1(-1.0)) / 2, rel=1e-15)


def _torch_net(activation):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), activation, torch.nn.Linear(4, 2)).double().eval()


@pytest.mark.parametrize("make, kind, arguments", [
    (lambda nn: nn.ELU(0.7), ELU, {"alpha": 0.7}),
    (lambda nn: nn.SELU(), SELU, {"alpha": SELU_ALPHA, "scale": SELU_SCALE}),
    (lambda nn: nn.Softplus(beta=2, threshold=5), Softplus, {"beta": 2.0, "threshold": 5.0}),
], ids=["ELU", "SELU", "Softplus"])
def test_from_torch_imports_and_matches_torch(make, kind, arguments):
    torch = pytest.importorskip("torch")
    from refattr.interop import from_torch, to_torch, torch_forward

    module = _torch_net(make(torch.nn))
    net = from_torch(module)
    layer = net.layers[1]
    assert type(layer) is kind and all(getattr(layer, k) == v for k, v in arguments.items())
    x = np.random.default_rng(1).normal(size=(8, 3)) * 6.0     # hidden values across 0 and the switch
    expected = torch_forward(module, x)
    np.testing.assert_allclose(net(x), expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    again = to_torch(net)                                       # and back: the same module kind
    assert type(again[1]) is type(module[1])
    np.testing.assert_allclose(torch_forward(again, x), expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())


def test_to_torch_refuses_selu_constants_torch_does_not_have():
    pytest.importorskip("torch")
    from refattr.interop import to_torch

    with pytest.raises(UnsupportedLayerError, match=r"SELU\(alpha=1.5\) has no PyTorch module"):
        to_torch(Sequential([Dense(np.eye(2)), SELU(alpha=1.5)]))


def test_from_torch_refuses_a_softplus_beta_that_is_not_positive():
    torch = pytest.importorskip("torch")
    from refattr.interop import from_torch

    with pytest.raises(UnsupportedLayerError, match="Softplus beta: expected a positive finite"):
        from_torch(_torch_net(torch.nn.Softplus(beta=-1.0)))


def _onnx_round_trip(activation):
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    module = _torch_net(activation)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter (dynamo=False) is deprecated
        torch.onnx.export(module, (torch.zeros(1, 3, dtype=torch.float64),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    return module, onnx.load_from_string(buffer.getvalue())


def test_onnx_round_trip_of_elu_reads_the_float32_alpha():
    pytest.importorskip("torch")
    from refattr.interop import from_onnx, onnx_forward, torch_forward

    module, model = _onnx_round_trip(pytest.importorskip("torch").nn.ELU(0.7))
    net = from_onnx(model, check=True)
    layer = net.layers[1]
    assert type(layer) is ELU and layer.alpha == float(np.float32(0.7))      # ONNX stores float32
    x = np.random.default_rng(2).normal(size=(8, 3)) * 4.0
    np.testing.assert_allclose(net(x), onnx_forward(model, x), rtol=1e-13, atol=1e-13)
    # against the torch module: alpha differs by 1.2e-8 / 0.7 relative
    np.testing.assert_allclose(net(x), torch_forward(module, x), rtol=0, atol=2e-8 * np.abs(net(x)).max())


def test_onnx_round_trip_of_selu_reads_onnx_constants():
    torch = pytest.importorskip("torch")
    from refattr.interop import from_onnx, onnx_forward, torch_forward

    module, model = _onnx_round_trip(torch.nn.SELU())
    assert [a.name for a in model.graph.node[1].attribute] == []    # PyTorch writes the op's defaults
    net = from_onnx(model, check=True)
    layer = net.layers[1]
    # ONNX's defaults: PyTorch's constants rounded to float32
    assert type(layer) is SELU
    assert (layer.alpha, layer.scale) == (float(np.float32(SELU_ALPHA)), float(np.float32(SELU_SCALE)))
    x = np.random.default_rng(3).normal(size=(8, 3)) * 4.0
    np.testing.assert_allclose(net(x), onnx_forward(model, x), rtol=1e-13, atol=1e-13)
    # against PyTorch's float64 constants: 3.3e-8 relative in scale, 3.0e-8 in alpha
    np.testing.assert_allclose(net(x), torch_forward(module, x), rtol=0, atol=1e-7 * np.abs(net(x)).max())


def test_onnx_round_trip_of_softplus():
    torch = pytest.importorskip("torch")
    from refattr.interop import from_onnx, onnx_forward, torch_forward

    module, model = _onnx_round_trip(torch.nn.Softplus())
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Softplus", "Gemm"]   # the switch is dropped
    net = from_onnx(model, check=True)
    assert type(net.layers[1]) is Softplus and net.layers[1].beta == 1.0
    x = np.random.default_rng(4).normal(size=(8, 3)) * 4.0
    np.testing.assert_allclose(net(x), onnx_forward(model, x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net(x), torch_forward(module, x), rtol=1e-13, atol=1e-13)


def test_onnx_softplus_imports_without_the_switch():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from refattr.interop import from_onnx, onnx_forward

    node = helper.make_node("Softplus", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    net = from_onnx(model, check=True)
    assert net.layers[0].threshold == math.inf
    # above 20, ONNX's log(1 + e^x) = x + log1p(e^-x) differs from x by 1e-9 .. 1e-12
    x = np.array([[20.5, 21.0, 24.0, 27.0]])
    expected = x + np.log1p(np.exp(-x))
    np.testing.assert_allclose(onnx_forward(model, x), expected, rtol=2 * EPS)
    np.testing.assert_allclose(net(x), expected, rtol=2 * EPS)


def test_softplus_secant_where_beta_x_overflows():
    # beta x beyond float64's range: f is max(x, 0) to every digit there, so (f(b) - f(a)) / h is
    # (0 - 1e308) / -1.7e308, (1e308 - 0) / 1.7e308 + ..., 1 (both ends linear), 0 (both at 0)
    a = np.array([1e308, -1e308, 1e10, -1e308])
    h = np.array([-1.7e308, 1.7e308, 1.0, -1e300])
    got = Softplus(1e300, 20.0).secant(a, h)
    np.testing.assert_allclose(got, [1e308 / 1.7e308, 0.7e308 / 1.7e308, 1.0, 0.0], rtol=4 * EPS)
    got = Softplus(2.0, math.inf).secant(a[:2], h[:2])
    np.testing.assert_allclose(got, [1e308 / 1.7e308, 0.7e308 / 1.7e308], rtol=4 * EPS)
