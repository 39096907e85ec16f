"""The contract every registered layer meets: this suite walks refattr.layers.registry.registered(),
so registering a layer (one file and its ``@register`` line) brings it under every test here with no
per-layer code. What it needs from a layer is declared on the class: ``random(rng, input_shape)``,
``piecewise_linear`` (and then the kink protocol), and for element-wise layers ``mp_function``.

Where every expected number comes from:

- VJP and JVP: central finite differences along random directions (step 1e-5, FD_RTOL = 1e-7:
  truncation and rounding of the difference are ~1e-10 to 1e-9 on O(1) functions), at inputs kept
  away from kinks by the layer's own kink protocol; and the adjoint identity <g, J d> = <J^T g, d>,
  exact up to rounding (1e-12).
- Divided differences of element-wise layers: ``mp_function`` evaluated by mpmath with the precision
  raised until 50 digits are stable (tests/data/mp_secant.py), over a grid with |a| up to 700,
  |h| from 0 and 1e-15 up to 1400, both signs; 1e-13 relative. At h == 0 the reference is the
  one-sided limit, either side at a kink (which side is a convention pinned by
  tests/layers/test_kinks_and_ties.py).
- DeepLIFT: summation-to-delta is an identity of the rule (sum of m * Δ over the layer's input equals
  sum of M * Δy over its output, and Δy+ + Δy- = Δy), checked to rounding (1e-12 of the magnitudes
  summed) under Rescale and RevealCancel, with equal and with unequal multipliers of the output's
  parts, and under every max-pooling rule that conserves it (every rule but "gradient", which by its
  definition does not).
- Exact integrated gradients (piecewise-linear layers): ``scipy.integrate.quad_vec`` split at the
  breakpoints of the path, found independently of refattr's walk by sampling and bisection of the
  network's ordinary gradient: on a piecewise-linear network the backward pass reads only the
  activation pattern, so the gradient is bit-for-bit constant on each piece and every change of it
  is a kink that matters to the integrand (as tests/methods/test_integrated_gradients.py does with
  ReLU signs and max-pool winners).
- Serialisation, batch invariance and determinism: the identity (bit for bit), and a batch against
  its examples alone (1e-13 of the largest magnitude: rounding; an example's results never depend
  on its batchmates beyond that).
"""

import importlib.util
import json
import pathlib

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy.integrate import quad_vec

from refattr import deeplift, integrated_gradients
from refattr.errors import RuleError
from refattr.layers import MAXPOOL_RULES, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from refattr.layers.base import DeltaPair, ElementwiseLayer, Layer, LinearLayer
from refattr.layers.registry import from_config, registered, to_config
from refattr.network import InputShape, Sequential
from refattr.testing import FD_RTOL, central_difference, check_vjp, random_network

_spec = importlib.util.spec_from_file_location(
    "mp_secant", pathlib.Path(__file__).resolve().parents[1] / "data" / "mp_secant.py")
mp_secant = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mp_secant)

#: One-input layers; joins (Add, Concat, Mul) take a tuple of inputs and have their own contract in
#: tests/layers/test_join_contract.py.
ENTRIES = tuple(e for e in registered() if not e.joins)
ELEMENTWISE = [e for e in ENTRIES if issubclass(e.cls, ElementwiseLayer)]
PIECEWISE_LINEAR = [e for e in ENTRIES if e.piecewise_linear]
ids = lambda entry: entry.name
#: Max-pooling rules that keep summation-to-delta: all but "gradient" (the original DeepLIFT code's
#: rule, which by definition does not; a new rule is held to it unless it is named here).
CONSERVING_MAXPOOL_RULES = tuple(r for r in MAXPOOL_RULES if r != "gradient")
FD_STEP = 1e-5
ROUNDING = 1e-12    # identities evaluated in two orders: a few hundred roundings of 1.1e-16 each
BATCH_RTOL = 1e-13  # results of one example do not depend on its batchmates beyond this


# ------------------------------------------------------------------------------------------------
# random layers, inputs and networks, from the layers' own declarations
# ------------------------------------------------------------------------------------------------

SHAPES = (
    lambda rng: (int(rng.integers(1, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7))),   # (C, H, W)
    lambda rng: (int(rng.integers(1, 4)), int(rng.integers(3, 9))),                            # (C, L)
    lambda rng: (int(rng.integers(1, 6)),),                                                   # (features,)
)


def random_layer(cls, rng):
    """(layer, example shape): ``cls.random`` on the first kind of example shape it accepts."""
    for draw in SHAPES:
        shape = draw(rng)
        try:
            layer = cls.random(rng, shape)
            layer.output_shape(shape)
        except ValueError:            # ShapeError, or a shape of another rank that does not unpack
            continue
        return layer, shape
    raise AssertionError(f"{cls.__name__}.random accepts none of the example shapes tried")


def away_from_kinks(rng, shape):
    """Values whose magnitudes are >= 0.05 and pairwise separated by >= 0.05 (no ReLU-like kink at
    0 and no max-pool tie within reach of a finite-difference step)."""
    n = int(np.prod(shape))
    magnitudes = 0.05 * (1 + rng.permutation(n)) + rng.uniform(0, 0.01, size=n)
    return (rng.choice([-1.0, 1.0], size=n) * magnitudes).reshape(shape)


def kink_distance(layer, x, d):
    """Distance along d to the layer's nearest kink, per example (inf for a smooth layer)."""
    if not type(layer).piecewise_linear:
        return np.full(x.shape[0], np.inf)
    _, _, cache = layer.forward_along(x, d)
    return layer.next_kink(x, d, cache)[0]


def mixing_layer(rng, shape):
    """A shape-preserving linear layer, so that the next layer's inputs mix several inputs of both
    signs (both parts Δ+ and Δ- non-zero, cancellation inside); None for other ranks."""
    if len(shape) == 1:
        return Dense(rng.normal(size=(shape[0], shape[0])) / np.sqrt(shape[0]), rng.normal(size=shape[0]) * 0.3)
    if len(shape) == 3:
        c = shape[0]
        return Conv2D(rng.normal(size=(c, c, 3, 3)) / np.sqrt(9 * c), rng.normal(size=c) * 0.3, padding=1)
    return None


def network_with(cls, rng, n_outputs=2):
    """(net, example shape): mixing -> layer -> mixing -> layer (when it accepts the new shape) ->
    Flatten -> Dense(n_outputs)."""
    layer, shape = random_layer(cls, rng)
    layers, current = [], shape
    for i in range(2):
        if i == 1:
            try:
                layer = cls.random(rng, current)
                layer.output_shape(current)
            except ValueError:
                break
        mixing = mixing_layer(rng, current)
        layers += [mixing, layer] if mixing is not None else [layer]
        current = layer.output_shape(current)
    layers.append(Flatten())
    n_in = int(np.prod(current))
    layers.append(Dense(rng.normal(size=(n_outputs, n_in)) / np.sqrt(n_in), rng.normal(size=n_outputs) * 0.3))
    return Sequential(layers, input_shape=shape), shape


# ------------------------------------------------------------------------------------------------
# declarations
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_declarations(entry):
    cls = entry.cls
    assert isinstance(entry.piecewise_linear, bool)
    assert entry.captum in ("linear", "nonlinear", "maxpool", "gradient", "softmax")
    for names in (entry.torch_modules, entry.onnx_ops):
        # may be empty: a layer with no torch module (Reshape) is refused by to_torch by name
        assert isinstance(names, tuple) and all(isinstance(n, str) and n for n in names)
    assert cls.random.__func__ is not Layer.random.__func__, f"{entry.name} declares no random(rng, input_shape)"
    if issubclass(cls, LinearLayer):
        assert entry.piecewise_linear and entry.captum == "linear"
    elif entry.piecewise_linear:
        # True promises the kink protocol of exact integrated gradients: the defaults (no kinks) would
        # make rule="exact" silently wrong
        for name in ("forward_along", "next_kink", "snap_to_kink"):
            assert getattr(cls, name) is not getattr(Layer, name), f"{entry.name} declares no {name}"
    if issubclass(cls, ElementwiseLayer):
        assert cls.mp_function is not ElementwiseLayer.mp_function, f"{entry.name} declares no mp_function"
        assert cls.secant is not ElementwiseLayer.secant and cls.function is not ElementwiseLayer.function


# ------------------------------------------------------------------------------------------------
# VJP and JVP against central differences
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1))
def test_vjp_and_jvp_match_central_differences(entry, seed):
    rng = np.random.default_rng(seed)
    layer, shape = random_layer(entry.cls, rng)
    x = away_from_kinks(rng, (int(rng.integers(1, 4)),) + shape)
    y, cache = layer.forward(x)
    f = lambda v: layer.forward(v)[0]
    for _ in range(3):
        d, g = rng.normal(size=x.shape), rng.normal(size=y.shape)
        assume(np.all(kink_distance(layer, x, d) > 2 * FD_STEP) and np.all(kink_distance(layer, x, -d) > 2 * FD_STEP))
        fd = central_difference(f, x, d, FD_STEP)
        jvp, vjp = layer.jvp(d, cache), layer.vjp(g, cache)
        assert jvp.shape == y.shape and vjp.shape == x.shape
        scale = max(np.abs(fd).max(), np.abs(jvp).max(), 1e-300)
        assert np.abs(jvp - fd).max() <= FD_RTOL * scale
        # <J^T g, d> against <g, fd>, and the adjoint identity <g, J d> == <J^T g, d> to rounding
        scale = max(np.sum(np.abs(g * fd)), np.sum(np.abs(vjp * d)), 1e-300)
        assert abs(np.sum(vjp * d) - np.sum(g * fd)) <= FD_RTOL * scale
        assert abs(np.sum(vjp * d) - np.sum(g * jvp)) <= ROUNDING * max(np.sum(np.abs(g * jvp)), scale)


# ------------------------------------------------------------------------------------------------
# divided differences of element-wise layers against mpmath
# ------------------------------------------------------------------------------------------------

TINY = 2.2250738585072014e-308        # smallest normal float64: an absolute floor for underflow
A_GRID = [0.0, 1e-300, -1e-300, 1e-15, -1e-15, 0.3, -0.3, 1.0, -1.0, 2.0, -2.5, 5.0, -5.0, 17.3, -20.0,
          40.0, -40.0, 300.0, -300.0, 354.0, -354.0, 354.5, 700.0, -700.0, 699.9]
H_GRID = [0.0, 1e-15, -1e-15, 1e-13, -1e-13, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 30.0, 700.0, -700.0,
          1400.0, -1400.0, -699.9]


@pytest.mark.parametrize("entry", ELEMENTWISE, ids=ids)
def test_divided_difference_matches_mpmath(entry):
    """secant(a, h) to 1e-13 of (f(a + h) - f(a)) / h, and secant(a, 0) and derivative(a) to 1e-13
    of f'(a). Points where S is ill-conditioned in its inputs (κ > 1e4, which on this grid only
    happens near a zero of S of a non-monotonic f: saturation gives κ ~ |a f''/f'| <= 1400) are
    held to 4 eps κ instead; every current layer meets 1e-13 at every point."""
    layer = entry.cls.random(np.random.default_rng(0), (len(A_GRID),))
    points = [(a, h) for a in A_GRID for h in H_GRID]
    a = np.array([p[0] for p in points])
    h = np.array([p[1] for p in points])
    got = layer.secant(a, h)                      # one vectorised call over the whole grid
    derivative = layer.derivative(np.array(A_GRID))
    failures, relaxed = [], []
    for i, (ai, hi) in enumerate(points):
        exact = mp_secant.reference(layer.mp_function, ai, hi)
        values = [got[i]] + ([derivative[A_GRID.index(ai)]] if hi == 0 else [])
        for value in values:
            err = min(float(abs(mp.mpf(value) - e) / max(abs(e), TINY)) for e in exact)
            if err <= 1e-13:
                continue
            kappa = float(mp_secant.condition_number(layer.mp_function, ai, hi))
            if kappa > 1e4 and err <= 4 * 2.0**-52 * kappa:
                relaxed.append((ai, hi, kappa))
            else:
                failures.append((ai, hi, float(value), [float(e) for e in exact], err, f"kappa={kappa:.3g}"))
    assert not failures, failures
    assert len(relaxed) <= len(points) // 20, relaxed


# ------------------------------------------------------------------------------------------------
# DeepLIFT: summation-to-delta at the layer, and through a network
# ------------------------------------------------------------------------------------------------

def deeplift_inputs(rng, shape, n=3):
    """x, x', and parts Δ+ >= 0, Δ- <= 0 with Δ+ + Δ- = Δ, each non-zero where another layer's
    split would make them so; a fifth of the differences exactly zero (the 0.5 rule's case)."""
    x_ref = away_from_kinks(rng, (n,) + shape)
    x = x_ref + rng.normal(size=x_ref.shape) * 2
    zero = rng.random(x.shape) < 0.2
    x[zero] = x_ref[zero]
    delta = x - x_ref
    spread = rng.uniform(0, 1, size=x.shape) * np.abs(delta) * (rng.random(x.shape) < 0.5)
    return DeltaPair(x, x_ref, np.maximum(delta, 0.0) + spread, np.minimum(delta, 0.0) - spread)


def maxpool_rules(layer, inp, rule):
    """[None] for a layer that needs no max-pooling rule, else every conserving one."""
    y, cache = layer.forward(inp.x)
    y_ref, cache_ref = layer.forward(inp.x_ref)
    try:
        layer.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule, maxpool_rule=None)
    except RuleError:
        return list(CONSERVING_MAXPOOL_RULES)
    return [None]


def per_example(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1))
def test_deeplift_summation_to_delta_at_the_layer(entry, rule, seed):
    rng = np.random.default_rng(seed)
    layer, shape = random_layer(entry.cls, rng)
    inp = deeplift_inputs(rng, shape)
    y, cache = layer.forward(inp.x)
    y_ref, cache_ref = layer.forward(inp.x_ref)
    for maxpool_rule in maxpool_rules(layer, inp, rule):
        pos, neg, dl_cache = layer.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule,
                                                    maxpool_rule=maxpool_rule)
        magnitude = np.abs(y) + np.abs(y_ref)
        assert np.all(pos >= 0) or rule == "reveal_cancel"      # RevealCancel's Δy+ is Δx+'s contribution
        np.testing.assert_allclose(pos + neg, y - y_ref, rtol=0, atol=ROUNDING * max(magnitude.max(), 1e-300))
        m_out = rng.normal(size=y.shape)
        for m_pos_out, m_neg_out in ((m_out, m_out), (m_out, rng.normal(size=y.shape))):
            m_pos, m_neg = layer.deeplift_backward(m_pos_out, m_neg_out, dl_cache)
            into = per_example(m_pos * inp.pos + m_neg * inp.neg)
            out = per_example(m_pos_out * pos + m_neg_out * neg)
            scale = (per_example(np.abs(m_pos * inp.pos) + np.abs(m_neg * inp.neg))
                     + per_example((np.abs(m_pos_out) + np.abs(m_neg_out)) * magnitude))
            assert np.all(np.abs(into - out) <= ROUNDING * scale), (maxpool_rule, into, out)


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("maxpool_rule", CONSERVING_MAXPOOL_RULES)
def test_deeplift_completeness_on_networks_containing_the_layer(entry, rule, maxpool_rule):
    rng = np.random.default_rng(7)
    for _ in range(3):
        net, shape = network_with(entry.cls, rng)
        x, baseline = rng.normal(size=(3,) + shape) * 2, rng.normal(size=shape) * 0.5
        result = deeplift(net, x, baseline, target=1, rule=rule, maxpool_rule=maxpool_rule)
        t, t_ref = net(x)[:, 1], net(baseline[None])[0, 1]
        scale = per_example(np.abs(result.values)) + np.abs(t) + np.abs(t_ref)
        assert np.all(np.abs(result.completeness_gap) <= ROUNDING * scale)


# ------------------------------------------------------------------------------------------------
# exact integrated gradients against an independent integrator (piecewise-linear layers)
# ------------------------------------------------------------------------------------------------

def gradients(net, points, target):
    """The network's ordinary gradient of output ``target`` at each row of ``points``."""
    trace = net.trace(np.asarray(points, dtype=float))
    g = np.zeros_like(trace.output)
    g[:, target] = 1.0
    return net.backward(g, trace)


def bisected_breakpoints(net, x, baseline, target, grid=1025):
    """Every alpha where the gradient on the path changes, by sampling and bisection to the last bit."""
    d = x - baseline
    pattern = lambda a: gradients(net, baseline[None] + np.atleast_1d(a).reshape((-1,) + (1,) * x.ndim) * d[None],
                                  target).reshape(np.size(a), -1)
    alphas = np.linspace(0.0, 1.0, grid)
    patterns = pattern(alphas)
    found = []
    stack = [(alphas[j], alphas[j + 1], patterns[j], patterns[j + 1])
             for j in range(grid - 1) if not np.array_equal(patterns[j], patterns[j + 1])]
    while stack:
        lo, hi, p_lo, p_hi = stack.pop()
        while True:
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            p_mid = pattern(mid)[0]
            if np.array_equal(p_mid, p_lo):
                lo = mid
            else:
                if not np.array_equal(p_mid, p_hi):
                    stack.append((mid, hi, p_mid, p_hi))   # another change further right
                hi, p_hi = mid, p_mid
        found.append(hi)
    return sorted(found)


@pytest.mark.parametrize("entry", PIECEWISE_LINEAR, ids=ids)
@settings(max_examples=4)
@given(seed=st.integers(0, 2**32 - 1))
def test_exact_integrated_gradients_matches_an_independent_integrator(entry, seed):
    # a few examples only: quad_vec evaluates the gradient one point at a time, ~15 per piece
    rng = np.random.default_rng(seed)
    net, shape = network_with(entry.cls, rng)
    x, baseline = rng.normal(size=(2,) + shape) * 2, rng.normal(size=shape) * 0.5
    result = integrated_gradients(net, x, baseline, target=0)       # rule="auto"
    assert result.options["rule"] == "exact" and np.all(result.error_estimate == 0)
    for i in range(1):
        d = x[i] - baseline
        integrand = lambda a: (d * gradients(net, (baseline + a * d)[None], 0)[0]).ravel()
        expected, _ = quad_vec(integrand, 0.0, 1.0, epsrel=1e-13, epsabs=1e-300, norm="max",
                               points=bisected_breakpoints(net, x[i], baseline, 0))
        scale = np.abs(expected).max() + 1e-300
        assert np.abs(result.values[i].ravel() - expected).max() <= 1e-12 * scale


# ------------------------------------------------------------------------------------------------
# serialisation, batch invariance, determinism, shapes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_serialisation_round_trip_through_json(entry):
    rng = np.random.default_rng(3)
    layer, shape = random_layer(entry.cls, rng)
    config = to_config(layer)
    text = json.dumps({**config, "arrays": {k: v.tolist() for k, v in config["arrays"].items()}})
    loaded = json.loads(text)
    again = from_config({**loaded, "arrays": {k: np.array(v) for k, v in loaded["arrays"].items()}})
    assert type(again) is entry.cls and repr(again) == repr(layer)
    x = rng.normal(size=(2,) + shape)
    np.testing.assert_array_equal(again.forward(x)[0], layer.forward(x)[0])
    second = to_config(again)
    assert second["params"] == config["params"] and second["arrays"].keys() == config["arrays"].keys()
    for name, array in config["arrays"].items():
        np.testing.assert_array_equal(second["arrays"][name], array)


def passes(layer, inp, d, g, m):
    """Every pass of the layer on one batch: forward, VJP, JVP, and the DeepLIFT multipliers under
    both rules (with a conserving max-pooling rule where one is needed)."""
    y, cache = layer.forward(inp.x)
    y_ref, cache_ref = layer.forward(inp.x_ref)
    out = {"forward": y, "vjp": layer.vjp(g, cache), "jvp": layer.jvp(d, cache)}
    for rule in ("rescale", "reveal_cancel"):
        maxpool_rule = maxpool_rules(layer, inp, rule)[0]
        pos, neg, dl_cache = layer.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule,
                                                    maxpool_rule=maxpool_rule)
        out[f"{rule} parts"] = np.concatenate([pos, neg])
        out[f"{rule} multipliers"] = np.concatenate(layer.deeplift_backward(m, m, dl_cache))
    if isinstance(layer, ElementwiseLayer):
        out["secant"] = layer.secant(inp.x_ref, inp.delta)
    return out


def rows(inp, i):
    return DeltaPair(*(a[i:i + 1] for a in (inp.x, inp.x_ref, inp.pos, inp.neg)))


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1))
def test_batch_invariance_determinism_and_shapes(entry, seed):
    rng = np.random.default_rng(seed)
    layer, shape = random_layer(entry.cls, rng)
    n = 4
    inp = deeplift_inputs(rng, shape, n)
    out_shape = (n,) + tuple(layer.output_shape(shape))
    d, g, m = rng.normal(size=inp.x.shape), rng.normal(size=out_shape), rng.normal(size=out_shape)
    batch = passes(layer, inp, d, g, m)
    assert batch["forward"].shape == out_shape and batch["forward"].dtype == np.float64
    again = passes(layer, DeltaPair(*(a.copy() for a in (inp.x, inp.x_ref, inp.pos, inp.neg))), d.copy(), g, m)
    for key in batch:                                   # determinism: the same bits
        np.testing.assert_array_equal(again[key], batch[key], err_msg=key)
    for i in range(n):                                  # an example alone agrees with its batch
        alone = passes(layer, rows(inp, i), d[i:i + 1], g[i:i + 1], m[i:i + 1])
        for key, value in alone.items():
            part = batch[key].reshape((-1, n) + batch[key].shape[1:])[:, i] if key.startswith(("rescale", "reveal")) \
                else batch[key][i:i + 1]
            value = value.reshape(part.shape)
            scale = max(np.abs(batch[key]).max(), 1e-300)
            np.testing.assert_allclose(value, part, rtol=0, atol=BATCH_RTOL * scale, err_msg=key)


# ------------------------------------------------------------------------------------------------
# beyond the contract: hyperparameter sweeps and whole networks
# ------------------------------------------------------------------------------------------------

@given(
    seed=st.integers(0, 2**32 - 1),
    c_per_group=st.integers(1, 3), groups=st.integers(1, 3), out_per_group=st.integers(1, 2),
    h=st.integers(3, 8), w=st.integers(3, 8), kh=st.integers(1, 3), kw=st.integers(1, 3),
    sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.tuples(*[st.integers(0, 2)] * 4),
)
def test_conv_vjp_over_hyperparameters(seed, c_per_group, groups, out_per_group, h, w, kh, kw, sh, sw,
                                       dh, dw, padding):
    rng = np.random.default_rng(seed)
    c_in, c_out = c_per_group * groups, out_per_group * groups
    if h + padding[0] + padding[1] < dh * (kh - 1) + 1 or w + padding[2] + padding[3] < dw * (kw - 1) + 1:
        return
    layer = Conv2D(rng.normal(size=(c_out, c_per_group, kh, kw)), rng.normal(size=c_out),
                   stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups)
    x = rng.normal(size=(2, c_in, h, w))
    _, cache = layer.forward(x)
    check_vjp(lambda v: layer.forward(v)[0], lambda g: layer.vjp(g, cache), x, rng)


@pytest.mark.parametrize("cls", [AvgPool2D, MaxPool2D], ids=lambda c: c.__name__)
@given(seed=st.integers(0, 2**32 - 1), kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3),
       sw=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 1)] * 4), include=st.booleans())
def test_pool_vjp_over_hyperparameters(cls, seed, kh, kw, sh, sw, pads, include):
    rng = np.random.default_rng(seed)
    padding = (min(pads[0], kh // 2), min(pads[1], kh // 2), min(pads[2], kw // 2), min(pads[3], kw // 2))
    kwargs = {"count_include_pad": include} if cls is AvgPool2D else {}
    layer = cls((kh, kw), stride=(sh, sw), padding=padding, **kwargs)
    x = away_from_kinks(rng, (2, 2, 5, 6))
    _, cache = layer.forward(x)
    check_vjp(lambda v: layer.forward(v)[0], lambda g: layer.vjp(g, cache), x, rng)


@given(seed=st.integers(0, 2**32 - 1), n_layers=st.integers(1, 5))
def test_whole_random_networks_pass_the_gradient_check(seed, n_layers):
    rng = np.random.default_rng(seed)
    net = random_network(rng, input_shape=(2, 6, 6), n_layers=n_layers)
    x = rng.normal(size=(2, 2, 6, 6))
    trace = net.trace(x)
    check_vjp(lambda v: net.trace(v).output, lambda g: net.backward(g, trace), x, rng)


@given(seed=st.integers(0, 2**32 - 1), n_layers=st.integers(0, 5), rule=st.sampled_from(
    ["gradient", "guided_backprop", "deconvnet"]))
def test_backward_from_a_trace_without_outputs_is_the_same(seed, n_layers, rule):
    """trace(x, outputs=False) stops at the last layer whose backward reads its input; the
    layers after it get only their input's shape (a layer that declares backward_reads_input =
    False but reads values fails here on the InputShape stand-in), and backward gives the same
    bits as from a full trace."""
    rng = np.random.default_rng(seed)
    layers = list(random_network(rng, input_shape=(2, 6, 6), n_layers=n_layers).layers)
    if rng.random() < 0.5:   # drop the last activation: the tail is Dense, Dense
        layers = layers[:-2] + [Dense(rng.normal(size=(3, layers[-3].weight.shape[0])))]
    net = Sequential(layers, input_shape=(2, 6, 6))
    x = rng.normal(size=(3, 2, 6, 6))
    g = rng.normal(size=(3, net.n_outputs((2, 6, 6))))
    full, lean = net.trace(x), net.trace(x, outputs=False)
    readers = [i for i, layer in enumerate(net.layers) if layer.backward_reads_input]
    k = readers[-1] if readers else -1
    assert lean.activations[0] is x and all(a is not None for a in lean.activations[: k + 1])
    assert all(a is None for a in lean.activations[max(k + 1, 1):])
    for i in range(k + 1, len(net.layers)):
        assert isinstance(lean.caches[i], InputShape) and lean.caches[i].shape == full.activations[i].shape
    np.testing.assert_array_equal(net.backward(g, lean, rule=rule), net.backward(g, full, rule=rule))


def test_trace_without_outputs_on_a_linear_network_keeps_only_shapes():
    net = Sequential([Conv2D(np.ones((2, 1, 2, 2))), Flatten(), Dense(np.ones((1, 18)))],
                     input_shape=(1, 4, 4))
    x = np.arange(32.0).reshape(2, 1, 4, 4)
    lean = net.trace(x, outputs=False)
    assert [type(c) for c in lean.caches] == [InputShape] * 3
    assert [c.shape for c in lean.caches] == [(2, 1, 4, 4), (2, 2, 3, 3), (2, 18)]
    # d(sum of all 18 conv outputs)/dx: each input pixel counted once per window that covers it,
    # times the two all-ones channels
    windows = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]], dtype=float)
    np.testing.assert_array_equal(net.backward(np.ones((2, 1)), lean),
                                  np.broadcast_to(2 * windows, (2, 1, 4, 4)))
