"""Integrated gradients (docs/conventions.md, section 'Integrated gradients') against hand
derivations and independent integrators.

Where every expected number comes from:

- hand derivations on tiny networks (the arithmetic is in the comments);
- for ReLU MLPs, an independent exact integrator written here from the weights alone (layer by
  layer, each pre-activation is affine between the kinks found so far, so its zero crossings are
  found by linear interpolation; the gradient on each final piece is a product of masked weight
  matrices);
- for ReLU CNNs (convolution, average and max pooling), ``scipy.integrate.quad_vec`` split at
  breakpoints found independently of refattr's walk: the activation pattern (ReLU signs and max-pool
  argmaxes from the ordinary forward pass) is sampled on a fine grid and every change is located by
  bisection to the last bit of alpha.
  Plain adaptive quad on the whole interval is *not* used for the ReLU comparisons: its
  Gauss-Kronrod error estimate cannot see a piece narrower than the gaps between its nodes, and on
  the dense network below it returned an error of 2e-8 while estimating 2e-13 (see
  ``test_exact_finds_a_piece_that_plain_quad_misses``); integrated piecewise it is exact to
  rounding;
- for smooth networks, Gauss-Legendre with many nodes, itself checked for convergence.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.integrate import quad_vec

from refattr import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Swish, Tanh
from refattr.errors import NonFiniteError, RefattrError, RuleError, ShapeError, TargetError
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.testing import random_cnn, random_mlp, random_network

# --------------------------------------------------------------------------------------------
# helpers: independent references
# --------------------------------------------------------------------------------------------


def gradients(net, points, target):
    """The ordinary gradient (ReLU'(0) = 0, first max-pool winner) at each row of ``points``."""
    trace = net.trace(np.asarray(points, dtype=float))
    g = np.zeros_like(trace.output)
    g[:, target] = 1.0
    return net.backward(g, trace)


def mlp_exact_reference(net, x, baseline, target):
    """Exact IG of a Dense/ReLU MLP for one example, from the weights alone (no refattr passes)."""
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    weights = [layer.weight for layer in dense]
    biases = [np.zeros(w.shape[0]) if layer.bias is None else layer.bias for layer, w in zip(dense, weights)]
    d = x - baseline

    def pre_activation(a, depth):
        h = baseline + a * d
        for w, b in zip(weights[:depth], biases[:depth]):
            h = np.maximum(w @ h + b, 0.0)
        return weights[depth] @ h + biases[depth]

    edges = [0.0, 1.0]
    for depth in range(len(weights) - 1):
        new = [0.0]
        for lo, hi in zip(edges[:-1], edges[1:]):
            # on [lo, hi] the layers below have a fixed pattern: z is affine there
            z_lo, z_hi = pre_activation(lo, depth), pre_activation(hi, depth)
            cross = z_lo * z_hi < 0
            points = lo + (hi - lo) * z_lo[cross] / (z_lo[cross] - z_hi[cross])
            new += sorted(p for p in points if lo < p < hi) + [hi]
        edges = new
    total = np.zeros_like(x)
    for lo, hi in zip(edges[:-1], edges[1:]):
        mid = 0.5 * (lo + hi)
        row = np.zeros(weights[-1].shape[0])
        row[target] = 1.0
        g = row @ weights[-1]
        for depth in range(len(weights) - 2, -1, -1):
            g = (g * (pre_activation(mid, depth) > 0)) @ weights[depth]
        total += (hi - lo) * g
    return d * total, np.array(edges[1:-1])


def activation_pattern(net, points):
    """ReLU signs and max-pool argmaxes of the ordinary forward pass, one row per point."""
    trace = net.trace(np.asarray(points, dtype=float))
    n = trace.output.shape[0]
    parts = []
    for layer, cache in zip(net.layers, trace.caches):
        if isinstance(layer, ReLU):
            parts.append((cache > 0).reshape(n, -1).astype(np.int64))
        elif isinstance(layer, MaxPool2D):
            parts.append(cache[0].reshape(n, -1))
    return np.concatenate(parts, axis=1)


def bisected_breakpoints(net, x, baseline, grid=4097):
    """Every alpha where the activation pattern changes, found by sampling and bisection."""
    d = x - baseline
    pattern = lambda a: activation_pattern(net, baseline[None] + np.atleast_1d(a).reshape(-1, *[1] * x.ndim) * d[None])
    alphas = np.linspace(0.0, 1.0, grid)
    patterns = pattern(alphas)
    found = []
    stack = [(alphas[j], alphas[j + 1], patterns[j], patterns[j + 1])
             for j in range(grid - 1) if np.any(patterns[j] != patterns[j + 1])]
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
    return np.array(sorted(found))


def piecewise_quad(net, x, baseline, target, breakpoints):
    """quad_vec of (x - x') * grad over [0, 1], told where the integrand jumps."""
    d = x - baseline
    integrand = lambda a: (d * gradients(net, (baseline + a * d)[None], target)[0]).ravel()
    value, _ = quad_vec(integrand, 0.0, 1.0, epsrel=1e-13, epsabs=1e-300, norm="max", points=list(breakpoints))
    return value.reshape(x.shape)


def assert_exact(result, x, baseline, net, target, rel=1e-12):
    """Completeness gap below rel * |t(x) - t(x')| (and an absolute floor for a tiny difference)."""
    t = lambda z: net(z)[np.arange(len(z)), target]
    delta_t = t(x) - t(np.broadcast_to(baseline, x.shape))
    assert np.all(np.abs(result.completeness_gap) <= rel * np.maximum(np.abs(delta_t), 1e-3))


# --------------------------------------------------------------------------------------------
# hand derivations
# --------------------------------------------------------------------------------------------


def saturating():
    """The tutorial's f(x) = 1 - max(0, 1 - x)."""
    return Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])


def test_tutorial_saturation_example_gives_exactly_one():
    # x' = 0, x = 2: on the path 2a the ReLU input is 1 - 2a, active for a < 1/2 with f' = 1,
    # inactive beyond: IG = 2 * (1/2 * 1 + 1/2 * 0) = 1 = f(2) - f(0) = 1 - 0.
    result = integrated_gradients(saturating(), [[2.0]], baseline=0.0)
    assert result.values[0, 0] == 1.0
    assert result.completeness_gap[0] == 0.0
    assert result.error_estimate[0] == 0.0
    assert result.options["rule"] == "exact" and result.options["requested_rule"] == "auto"
    np.testing.assert_array_equal(result.options["breakpoints"][0], [0.5])
    np.testing.assert_array_equal(result.options["n_pieces"], [2])


def test_tutorial_saturation_example_with_fixed_rules():
    # right, n = 4: nodes 1/4, 1/2, 3/4, 1; gradients 1, 0 (ReLU'(0) = 0 exactly at the kink),
    # 0, 0 -> 2 * 1/4 = 0.5. midpoint, n = 4: nodes 1/8, 3/8, 5/8, 7/8 -> 1, 1, 0, 0 -> 2 * 1/2 = 1.
    # left, n = 4: nodes 0, 1/4, 1/2, 3/4 -> 1, 1, 0, 0 -> 1.
    net = saturating()
    assert integrated_gradients(net, [[2.0]], rule="right", n_steps=4).values[0, 0] == 0.5
    assert integrated_gradients(net, [[2.0]], rule="midpoint", n_steps=4).values[0, 0] == 1.0
    assert integrated_gradients(net, [[2.0]], rule="left", n_steps=4).values[0, 0] == 1.0
    right = integrated_gradients(net, [[2.0]], rule="right", n_steps=4)
    assert right.completeness_gap[0] == -0.5      # 0.5 - (f(2) - f(0))


def test_two_hidden_units_with_a_kink_at_one_third_and_a_unit_starting_on_its_kink():
    # h1 = relu(x1 + x2 - 1), h2 = relu(2 x1 - x2), t = h1 - 3 h2; x' = (0, 0), x = (2, 1).
    # Along the path: z1 = 3a - 1 (kink at a = 1/3), z2 = 4a - a = 3a (exactly 0 at a = 0 and
    # rising, so active from the start). Gradient: a < 1/3: -3 (2, -1) = (-6, 3);
    # a > 1/3: (-6, 3) + (1, 1) = (-5, 4). IG = (2, 1) * (1/3 (-6, 3) + 2/3 (-5, 4))
    # = (2, 1) * (-16/3, 11/3) = (-32/3, 11/3); sum -7 = t(x) - t(x') = (2 - 9) - (0 - 0).
    net = Sequential([Dense([[1.0, 1.0], [2.0, -1.0]], [-1.0, 0.0]), ReLU(), Dense([[1.0, -3.0]])])
    result = integrated_gradients(net, [[2.0, 1.0]])
    np.testing.assert_allclose(result.values, [[-32 / 3, 11 / 3]], rtol=1e-15)
    np.testing.assert_allclose(result.options["breakpoints"][0], [1 / 3], rtol=1e-15)
    assert abs(result.completeness_gap[0]) <= 1e-14


def test_max_pool_winner_change_at_a_known_alpha():
    # y = max(u, v) on a 1x2 window; x' = (1, 0), x = (0, 2): u = 1 - a, v = 2a, equal at a = 1/3.
    # Gradient (1, 0) before, (0, 1) after: IG = (-1 * 1/3, 2 * 2/3) = (-1/3, 4/3); sum 1 = 2 - 1.
    net = Sequential([MaxPool2D((1, 2)), Flatten(), Dense([[1.0]])])
    result = integrated_gradients(net, np.array([0.0, 2.0]).reshape(1, 1, 1, 2),
                                  baseline=np.array([1.0, 0.0]).reshape(1, 1, 2))
    np.testing.assert_allclose(result.values.ravel(), [-1 / 3, 4 / 3], rtol=1e-15)
    np.testing.assert_allclose(result.options["breakpoints"][0], [1 / 3], rtol=1e-15)


def test_a_unit_that_stays_on_its_kink_counts_as_inactive_like_the_gradient():
    # h1 = relu(x1 - x2) is exactly 0 along the path from (0, 0) to (1, 1); h2 = relu(x1 + 10) is
    # active; t = h1 + h2. With ReLU'(0) = 0 the gradient is (1, 0) at every point, so IG = (1, 0)
    # (the other convention would give (2, -1): same sum 1 = 11 - 10, different attributions).
    net = Sequential([Dense([[1.0, -1.0], [1.0, 0.0]], [0.0, 10.0]), ReLU(), Dense([[1.0, 1.0]])])
    exact = integrated_gradients(net, [[1.0, 1.0]], rule="exact")
    np.testing.assert_array_equal(exact.values, [[1.0, 0.0]])
    np.testing.assert_array_equal(exact.options["n_pieces"], [1])
    for rule in ("gauss_legendre", "right", "trapezoid"):
        # the weights sum to 1 up to rounding; the second attribution is exactly 0
        values = integrated_gradients(net, [[1.0, 1.0]], rule=rule, n_steps=7).values
        np.testing.assert_allclose(values, [[1.0, 0.0]], rtol=1e-15, atol=0)


def test_a_max_pool_tie_along_the_whole_path_goes_to_the_first_cell():
    # Both cells equal 2a along the path: the forward pass and the walk give the first cell the
    # whole gradient: IG = (2, 0).
    net = Sequential([MaxPool2D((1, 2)), Flatten(), Dense([[1.0]])])
    x = np.array([2.0, 2.0]).reshape(1, 1, 1, 2)
    np.testing.assert_array_equal(integrated_gradients(net, x).values.ravel(), [2.0, 0.0])
    gl = integrated_gradients(net, x, rule="gauss_legendre", n_steps=3).values.ravel()
    np.testing.assert_allclose(gl, [2.0, 0.0], rtol=1e-15, atol=0)     # GL weights sum to 1 +- 1 ulp


def test_one_feature_differing_from_the_baseline_gets_everything():
    # The tutorial: if x and x' differ only in feature k, phi_k = t(x) - t(x') and the others are 0.
    rng = np.random.default_rng(3)
    net = random_mlp(rng, sizes=(5, 8, 8, 2))
    baseline = rng.normal(size=5)
    x = np.tile(baseline, (5, 1))
    x[np.arange(5), np.arange(5)] += rng.normal(size=5) * 2
    result = integrated_gradients(net, x, baseline, target=1)
    off = ~np.eye(5, dtype=bool)
    assert np.all(result.values[off] == 0.0)
    delta_t = net(x)[:, 1] - net(baseline[None])[:, 1]
    np.testing.assert_allclose(np.diag(result.values), delta_t, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# exact against independent integrators on random ReLU networks
# --------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2 ** 32 - 1), depth=st.integers(1, 3), width=st.integers(2, 12))
def test_exact_matches_an_independent_exact_integrator_on_relu_mlps(seed, depth, width):
    rng = np.random.default_rng(seed)
    net = random_mlp(rng, sizes=(4,) + (width,) * depth + (3,))
    x, baseline = rng.normal(size=(3, 4)) * 2, rng.normal(size=4)
    result = integrated_gradients(net, x, baseline, target=2)
    for i in range(3):
        expected, edges = mlp_exact_reference(net, x[i], baseline, 2)
        scale = np.abs(expected).max() + 1e-300
        assert np.abs(result.values[i] - expected).max() <= 1e-12 * scale
        np.testing.assert_allclose(result.options["breakpoints"][i], edges, rtol=1e-12, atol=1e-15)
    assert_exact(result, x, baseline, net, 2)


@pytest.mark.parametrize("pool", [None, "avg", "max"])
def test_exact_matches_piecewise_quad_on_relu_cnns(pool):
    rng = np.random.default_rng({None: 11, "avg": 12, "max": 13}[pool])
    net = random_cnn(rng, input_shape=(2, 6, 6), pool=pool)
    x, baseline = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 6, 6)) * 0.5
    result = integrated_gradients(net, x, baseline, target=1)
    assert result.options["rule"] == "exact"
    for i in range(2):
        breaks = bisected_breakpoints(net, x[i], baseline)
        # the walk and the bisection find the same kinks (bisection brackets them to ~1 ulp)
        np.testing.assert_allclose(result.options["breakpoints"][i], breaks, rtol=0, atol=1e-14)
        expected = piecewise_quad(net, x[i], baseline, 1, breaks)
        scale = np.abs(expected).max()
        assert np.abs(result.values[i] - expected).max() <= 1e-12 * scale
    assert_exact(result, x, baseline, net, 1)


def test_exact_finds_a_piece_that_plain_quad_misses():
    # Why the ReLU comparisons above integrate piecewise: on this network (example 1) adaptive
    # Gauss-Kronrod over the whole of [0, 1] (rule="quad", rtol=1e-12) was seen to return an error
    # of 2e-8 while estimating 2e-13: its error estimate cannot see a piece narrower than the gaps
    # between its nodes. The exact walk agrees with the independent integrator to rounding.
    rng = np.random.default_rng(0)
    net = random_mlp(rng, sizes=(6, 20, 20, 3))
    x, baseline = rng.normal(size=(4, 6)), rng.normal(size=6)
    exact = integrated_gradients(net, x, baseline, target=1)
    expected, edges = mlp_exact_reference(net, x[1], baseline, 1)
    assert np.abs(exact.values[1] - expected).max() <= 1e-15
    np.testing.assert_allclose(exact.options["breakpoints"][1], edges, rtol=1e-13)
    assert np.diff(edges).min() < 2e-3         # the narrowest piece is 1.2e-3 long


def test_max_pool_with_padding_and_overlapping_windows_matches_piecewise_quad():
    rng = np.random.default_rng(21)
    net = Sequential([Conv2D(rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2) * 0.3, padding=1), ReLU(),
                      MaxPool2D(3, stride=2, padding=1), Flatten(), Dense(rng.normal(size=(2, 18)), [0.1, -0.2])],
                     input_shape=(1, 6, 6))
    x, baseline = rng.normal(size=(2, 1, 6, 6)), rng.normal(size=(1, 6, 6))
    result = integrated_gradients(net, x, baseline, target=0)
    for i in range(2):
        breaks = bisected_breakpoints(net, x[i], baseline)
        np.testing.assert_allclose(result.options["breakpoints"][i], breaks, rtol=0, atol=1e-14)
        expected = piecewise_quad(net, x[i], baseline, 0, breaks)
        assert np.abs(result.values[i] - expected).max() <= 1e-12 * np.abs(expected).max()
    assert_exact(result, x, baseline, net, 0)


def test_kinks_closer_than_one_ulp_of_alpha_are_all_taken():
    # The second ReLU's input is relu(a - 1/2) - 5e-324: it reaches 0 at 1/2 + 5e-324, which
    # rounds to the first kink at 1/2 (a step of zero length, after which both units are snapped
    # onto their kinks). t = 2 relu(relu(a - 1/2) - 5e-324) has gradient 2 for a > 1/2: IG = 1.
    net = Sequential([Dense([[1.0]], [-0.5]), ReLU(), Dense([[1.0]], [-5e-324]), ReLU(), Dense([[2.0]])])
    result = integrated_gradients(net, [[1.0]])
    assert result.values[0, 0] == 1.0
    np.testing.assert_array_equal(result.options["breakpoints"][0], [0.5])
    np.testing.assert_array_equal(result.options["n_pieces"], [2])


@given(seed=st.integers(0, 2 ** 32 - 1), n_layers=st.integers(1, 5))
def test_exact_completeness_on_random_piecewise_linear_networks(seed, n_layers):
    rng = np.random.default_rng(seed)
    net = random_network(rng, input_shape=(2, 6, 6), n_layers=n_layers,
                         layer_types=(Conv2D, ReLU, AvgPool2D, MaxPool2D), n_outputs=2)
    assert net.piecewise_linear
    x, baseline = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(3, 2, 6, 6))
    result = integrated_gradients(net, x, baseline, target=np.array([0, 1, 0]))
    assert_exact(result, x, baseline, net, np.array([0, 1, 0]))
    assert np.all(result.error_estimate == 0.0)
    for i, breaks in enumerate(result.options["breakpoints"]):
        assert np.all(np.diff(breaks) > 0) and np.all((breaks > 0) & (breaks < 1))
        assert result.options["n_pieces"][i] == breaks.size + 1


def test_exact_agrees_with_fixed_rules_as_n_grows_on_relu_networks():
    # every fixed rule converges to the exact value (O(1/n) on kinked integrands)
    rng = np.random.default_rng(5)
    net = random_cnn(rng, pool="max")
    x = rng.normal(size=(2, 2, 7, 7))
    exact = integrated_gradients(net, x, target=0)
    for rule in ("midpoint", "gauss_legendre"):
        coarse = integrated_gradients(net, x, target=0, rule=rule, n_steps=16)
        fine = integrated_gradients(net, x, target=0, rule=rule, n_steps=1024)
        err_fine = np.abs(fine.values - exact.values).max()
        assert err_fine < np.abs(coarse.values - exact.values).max()
        assert err_fine < 2e-2 * np.abs(exact.values).max()


# --------------------------------------------------------------------------------------------
# smooth networks: quad and the fixed rules' error estimates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "swish"])
def test_quad_reaches_its_tolerance_and_bounds_its_error_on_smooth_networks(activation):
    rng = np.random.default_rng({"tanh": 1, "sigmoid": 2, "swish": 3}[activation])
    net = random_cnn(rng, input_shape=(1, 6, 6), activation=activation, pool="avg")
    x, baseline = rng.normal(size=(3, 1, 6, 6)) * 2, rng.normal(size=(1, 6, 6))
    # reference: Gauss-Legendre with 160 nodes, converged (it agrees with 240 nodes to 1e-15)
    ref = integrated_gradients(net, x, baseline, target=2, rule="gauss_legendre", n_steps=160).values
    ref2 = integrated_gradients(net, x, baseline, target=2, rule="gauss_legendre", n_steps=240).values
    assert np.abs(ref - ref2).max() <= 1e-15 * max(1.0, np.abs(ref).max()) * 10
    result = integrated_gradients(net, x, baseline, target=2, rule="quad", rtol=1e-10)
    assert result.options["rule"] == "quad" and result.options["quad_converged"].all()
    observed = np.abs(result.values - ref).reshape(3, -1).max(axis=1)
    scale = result.options["error_scale"]
    assert np.all(observed <= 1e-10 * scale)
    assert np.all(observed <= result.error_estimate)
    assert np.all(result.error_estimate <= 1e-10 * scale)
    # completeness holds to the tolerance (sum of 36 values, each within the estimate)
    assert np.all(np.abs(result.completeness_gap) <= 36 * result.error_estimate + 1e-13)
    # auto picks quad for a smooth network
    assert integrated_gradients(net, x[:1], baseline, target=2).options["rule"] == "quad"


@pytest.mark.parametrize("rule, n, asymptotic", [("left", 1024, 8), ("right", 1024, 8), ("midpoint", 63, 32),
                                                 ("trapezoid", 65, 12), ("gauss_legendre", 16, None)])
def test_fixed_rule_error_estimates_on_a_smooth_network(rule, n, asymptotic):
    # Once the rule resolves the integrand, its estimate is the companion difference times the
    # safety factor, asymptotically (factor x 1, 3 and 8 for left/right, trapezoid, midpoint) times
    # the error: at least the error, and for the Riemann sums within twice that ratio. With 16
    # nodes left/right do not resolve it (bound above 1 % of the integrand's scale): no bound.
    # The true error is taken against GL with 120 nodes.
    rng = np.random.default_rng(7)
    net = random_mlp(rng, sizes=(5, 16, 16, 2), activation="tanh")
    x, baseline = rng.normal(size=(4, 5)) * 2, rng.normal(size=5)
    ref = integrated_gradients(net, x, baseline, target=0, rule="gauss_legendre", n_steps=120).values
    result = integrated_gradients(net, x, baseline, target=0, rule=rule, n_steps=n)
    observed = np.abs(result.values - ref).max(axis=1)
    assert np.all(np.isfinite(result.error_estimate)) and np.all(result.options["error_estimate_note"] == "")
    assert np.all(result.error_estimate >= observed)
    if asymptotic is not None:
        assert np.all(result.error_estimate <= 2 * asymptotic * observed)
    if rule in ("left", "right"):
        coarse = integrated_gradients(net, x, baseline, target=0, rule=rule, n_steps=16)
        assert np.all(coarse.error_estimate == np.inf)
        assert all("does not resolve" in note for note in coarse.options["error_estimate_note"])


@pytest.mark.parametrize("rule, n", [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2),
                                     ("gauss_legendre", 1)])
def test_fixed_rules_without_a_companion_report_no_error_estimate(rule, n):
    assert integrated_gradients(NET, X, rule=rule, n_steps=n).error_estimate is None


@pytest.mark.parametrize("rule, order", [("right", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_fixed_rules_converge_with_their_order_on_a_tanh_network(rule, order):
    # error(n) / error(2n) -> 2^order on a smooth integrand; allow +-20% at n = 32 -> 64
    rng = np.random.default_rng(8)
    net = random_mlp(rng, sizes=(3, 8, 1), activation="tanh")
    x, baseline = np.array([[1.5, -2.0, 0.7]]), np.zeros(3)
    ref = integrated_gradients(net, x, baseline, rule="gauss_legendre", n_steps=80).values
    e32 = np.abs(integrated_gradients(net, x, baseline, rule=rule, n_steps=32).values - ref).max()
    e64 = np.abs(integrated_gradients(net, x, baseline, rule=rule, n_steps=64).values - ref).max()
    assert 0.8 * 2 ** order < e32 / e64 < 1.2 * 2 ** order


# --------------------------------------------------------------------------------------------
# invariances
# --------------------------------------------------------------------------------------------

RULES_TO_CHECK = [("exact", {}), ("gauss_legendre", {"n_steps": 9}), ("trapezoid", {"n_steps": 5}),
                  ("quad", {"rtol": 1e-8})]


@pytest.mark.parametrize("rule, kwargs", RULES_TO_CHECK)
def test_inputs_equal_to_the_baseline_get_exactly_zero(rule, kwargs):
    rng = np.random.default_rng(9)
    # quad on a kinked integrand has to chase every jump (slow); give it a smooth network
    net = random_cnn(rng, pool="max") if rule != "quad" else random_cnn(rng, pool="avg", activation="tanh")
    baseline = rng.normal(size=(2, 7, 7))
    x = np.stack([baseline, rng.normal(size=(2, 7, 7))])
    x[1, 0, :3] = baseline[0, :3]                        # some features of example 1 equal too
    result = integrated_gradients(net, x, baseline, target=1, rule=rule, **kwargs)
    assert np.all(result.values[0] == 0.0)
    assert np.all(result.values[1, 0, :3] == 0.0)


@pytest.mark.parametrize("rule, kwargs", [("exact", {}), ("gauss_legendre", {"n_steps": 13}),
                                          ("right", {"n_steps": 6}), ("quad", {"rtol": 1e-8})])
def test_result_does_not_depend_on_chunk_size(rule, kwargs):
    rng = np.random.default_rng(10)
    net = random_cnn(rng, pool="max") if rule == "exact" else random_cnn(rng, activation="swish")
    x = rng.normal(size=(5, 2, 7, 7))
    big = integrated_gradients(net, x, target=2, rule=rule, **kwargs)
    for chunk in (1, 3, 7):
        small = integrated_gradients(net, x, target=2, rule=rule, chunk_size=chunk, **kwargs)
        assert np.abs(small.values - big.values).max() <= 1e-14 * np.abs(big.values).max()


@pytest.mark.parametrize("rule, kwargs", [("exact", {}), ("gauss_legendre", {"n_steps": 11})])
def test_batch_invariance(rule, kwargs):
    rng = np.random.default_rng(11)
    net = random_cnn(rng, pool="avg")
    x, baseline = rng.normal(size=(4, 2, 7, 7)), rng.normal(size=(4, 2, 7, 7))
    target = np.array([0, 2, 1, 2])
    batch = integrated_gradients(net, x, baseline, target=target, rule=rule, **kwargs)
    for i in range(4):
        one = integrated_gradients(net, x[i:i + 1], baseline[i:i + 1], target=int(target[i]), rule=rule, **kwargs)
        assert np.abs(one.values[0] - batch.values[i]).max() <= 1e-14 * np.abs(batch.values[i]).max()
        if rule == "exact":
            np.testing.assert_array_equal(one.options["breakpoints"][0], batch.options["breakpoints"][i])


@pytest.mark.parametrize("activation", ["sigmoid", "relu_tanh"])
def test_quad_gives_an_example_the_same_result_whatever_its_batchmates(activation):
    # quad adapts every example on its own: a batch and its examples alone agree to rounding (the
    # gradients' BLAS blocking), also where the batchmates need far finer subdivisions
    rng = np.random.default_rng(12)
    if activation == "sigmoid":
        net = random_mlp(rng, sizes=(4, 10, 2), activation="sigmoid")
    else:
        net = Sequential([Dense(rng.normal(size=(8, 4)), rng.normal(size=8)), ReLU(),
                          Dense(rng.normal(size=(6, 8)) / 3, rng.normal(size=6)), Tanh(),
                          Dense(rng.normal(size=(2, 6)))])
    x = rng.normal(size=(3, 4)) * 3
    x[2] *= 40                                   # a much harder path
    batch = integrated_gradients(net, x, target=1, rule="quad", rtol=1e-9)
    for i in range(3):
        one = integrated_gradients(net, x[i:i + 1], target=1, rule="quad", rtol=1e-9)
        assert np.abs(one.values[0] - batch.values[i]).max() <= 1e-13 * np.abs(batch.values[i]).max()
        assert one.options["n_intervals"][0] == batch.options["n_intervals"][i]


@pytest.mark.parametrize("rule", ["exact", "midpoint"])
def test_baseline_samples_give_the_mean_of_the_single_baseline_attributions(rule):
    rng = np.random.default_rng(13)
    net = random_mlp(rng, sizes=(4, 7, 3))
    x, refs = rng.normal(size=(2, 4)), rng.normal(size=(3, 4))
    result = integrated_gradients(net, x, target=1, rule=rule, n_steps=8, baseline_samples=refs)
    singles = [integrated_gradients(net, x, refs[k], target=1, rule=rule, n_steps=8) for k in range(3)]
    np.testing.assert_allclose(result.values, np.mean([s.values for s in singles], axis=0), rtol=1e-13, atol=1e-15)
    # completeness against mean_k (t(x) - t(x'_k))
    delta_t = net(x)[:, 1] - np.mean(net(refs)[:, 1])
    np.testing.assert_allclose(result.completeness_gap, result.values.sum(axis=1) - delta_t, atol=1e-14)
    assert result.options["n_baselines"] == 3
    if rule == "exact":
        assert np.all(np.abs(result.completeness_gap) <= 1e-13)
        assert len(result.options["breakpoints"]) == 2 and len(result.options["breakpoints"][0]) == 3
        assert result.options["n_pieces"].shape == (2, 3)
        np.testing.assert_array_equal(result.options["breakpoints"][1][2], singles[2].options["breakpoints"][1])


@pytest.mark.parametrize("rule", ["exact", "gauss_legendre", "quad"])
def test_a_baseline_of_shape_one_by_example_is_one_example_broadcast_bit_for_bit(rule):
    # (1, *example_shape) is one reference for the whole batch (Captum's and NumPy's reading): the
    # same arithmetic as the example-shaped baseline and as that baseline written out per example,
    # so the results are equal bit for bit (a broadcast to example 0 only, or a reading as a
    # one-sample distribution with n_baselines = 1, would show here).
    rng = np.random.default_rng(15)
    net = random_mlp(rng, sizes=(4, 7, 3), activation="relu" if rule == "exact" else "tanh")
    x, ref = rng.normal(size=(3, 4)), rng.normal(size=4)
    as_example = integrated_gradients(net, x, ref, target=1, rule=rule, n_steps=8)
    for baseline in (ref[None], np.broadcast_to(ref, x.shape).copy()):
        result = integrated_gradients(net, x, baseline, target=1, rule=rule, n_steps=8)
        np.testing.assert_array_equal(result.values, as_example.values)
        np.testing.assert_array_equal(result.completeness_gap, as_example.completeness_gap)
        np.testing.assert_array_equal(result.error_estimate, as_example.error_estimate)
        assert result.options["n_baselines"] is None


def test_deterministic():
    rng = np.random.default_rng(14)
    relu_net, smooth_net = random_cnn(rng, pool="max"), random_cnn(rng, pool="avg", activation="swish")
    x = rng.normal(size=(3, 2, 7, 7))
    for rule, net in (("exact", relu_net), ("quad", smooth_net)):
        a = integrated_gradients(net, x, target=0, rule=rule, rtol=1e-6)
        b = integrated_gradients(net, x, target=0, rule=rule, rtol=1e-6)
        np.testing.assert_array_equal(a.values, b.values)


def test_an_affine_network_is_one_piece():
    # no nonlinearity: IG = (x - x') * W[target], exactly
    net = Sequential([Dense([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0]], [0.1, 0.2])])
    result = integrated_gradients(net, [[1.0, 2.0, 3.0]], baseline=[0.5, 0.5, 0.5], target=0)
    np.testing.assert_array_equal(result.values, [[0.5, -3.0, 1.25]])
    np.testing.assert_array_equal(result.options["n_pieces"], [1])


def test_docstring_example_of_the_module_prints_what_it_claims():
    result = integrated_gradients(saturating(), [[2.0]])
    assert repr((result.values, result.options["breakpoints"])) == "(array([[1.]]), [array([0.5])])"


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------

NET = Sequential([Dense([[1.0, 2.0]], [0.0]), ReLU(), Dense([[1.0]], [0.0])])
SMOOTH = Sequential([Dense([[1.0, 2.0]], [0.0]), Tanh(), Dense([[1.0]], [0.0])])
X = np.array([[1.0, 2.0]])


@pytest.mark.parametrize("kwargs, error, words", [
    ({"x": [[np.nan, 1.0]]}, NonFiniteError, ["x", "non-finite"]),
    ({"x": [[1.0, 2.0, 3.0]]}, ShapeError, ["x", "(1, 3)"]),
    ({"baseline": [np.inf, 0.0]}, NonFiniteError, ["baseline", "non-finite"]),
    ({"baseline": [0.0, 0.0, 0.0]}, ShapeError, ["baseline", "(3,)", "(2,)"]),
    ({"baseline_samples": [0.0, 0.0]}, ShapeError, ["baseline_samples", "(K, 2)", "(2,)"]),
    ({"baseline_samples": [[0.0, np.nan]]}, NonFiniteError, ["baseline_samples"]),
    ({"baseline": 1.0, "baseline_samples": [[0.0, 0.0]]}, ShapeError, ["baseline", "baseline_samples", "both"]),
    ({"target": 3}, TargetError, ["target", "3"]),
    ({"rule": "simpson"}, RuleError, ["rule", "simpson", "exact", "gauss_legendre"]),
    ({"rule": None}, RuleError, ["rule", "None"]),
    ({"n_steps": 0}, RuleError, ["n_steps", "0", ">= 1"]),
    ({"n_steps": 2.5}, RuleError, ["n_steps", "2.5", "int"]),
    ({"n_steps": True}, RuleError, ["n_steps", "True"]),
    ({"rule": "trapezoid", "n_steps": 1}, RuleError, ["n_steps", "trapezoid", "2"]),
    ({"rtol": 0.0}, RuleError, ["rtol", "0.0", "0 < rtol < 1"]),
    ({"rtol": -1e-3}, RuleError, ["rtol", "-0.001"]),
    ({"rtol": float("nan")}, RuleError, ["rtol", "nan"]),
    ({"rtol": "small"}, RuleError, ["rtol", "small"]),
    ({"chunk_size": 0}, RefattrError, ["chunk_size", "0", ">= 1"]),
    ({"chunk_size": 2.0}, RefattrError, ["chunk_size", "2.0"]),
])
def test_bad_input_gets_a_message_naming_the_argument(kwargs, error, words):
    args = {"x": X, **kwargs}
    with pytest.raises(error) as info:
        integrated_gradients(NET, **args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_exact_on_a_smooth_network_names_the_layer():
    with pytest.raises(RuleError) as info:
        integrated_gradients(SMOOTH, X, rule="exact")
    message = str(info.value)
    assert "exact" in message and "layers[1]" in message and "Tanh" in message and "quad" in message
    for layer in (Sigmoid(), Swish()):
        net = Sequential([Dense([[1.0, 2.0]]), layer, Dense([[1.0]])])
        with pytest.raises(RuleError, match=type(layer).__name__):
            integrated_gradients(net, X, rule="exact")


def test_an_explicit_zero_baseline_with_baseline_samples_is_refused_too():
    with pytest.raises(ShapeError, match="both"):
        integrated_gradients(NET, X, baseline=0.0, baseline_samples=[[0.0, 0.0]])


# --------------------------------------------------------------------------------------------
# the layer methods behind the walk
# --------------------------------------------------------------------------------------------


def test_relu_pattern_on_a_path_is_read_from_value_then_slope():
    x = np.array([[0.0, 0.0, 0.0, 1.0, -1.0, 0.0]])
    dx = np.array([[1.0, -1.0, 0.0, -1.0, 1.0, -0.0]])
    y, dy, active = ReLU().forward_along(x, dx)
    np.testing.assert_array_equal(active, [[True, False, False, True, False, False]])
    np.testing.assert_array_equal(dy, [[1.0, 0.0, 0.0, -1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])


def test_relu_next_kink_distances_and_events():
    # units: 1 - 4s (kink at 1/4), -1 + 2s (1/2), 3 - 12s (1/4, the same distance bit for bit),
    # 2 + s (none), 0 + s (at its kink already: none), 5e-324 - 10 s (z / dz underflows: a kink at
    # the smallest positive distance, so it is still reached)
    relu = ReLU()
    x = np.array([[1.0, -1.0, 3.0, 2.0, 0.0], [5e-324, 1.0, 1.0, 1.0, 1.0]])
    dx = np.array([[-4.0, 2.0, -12.0, 1.0, 1.0], [-10.0, 1.0, 1.0, 1.0, 1.0]])
    _, _, cache = relu.forward_along(x, dx)
    distance, events = relu.next_kink(x, dx, cache)
    np.testing.assert_array_equal(distance, [0.25, 5e-324])
    np.testing.assert_array_equal(events, [[True, False, True, False, False], [True, False, False, False, False]])
    snapped = relu.snap_to_kink(x.copy(), events, np.array([True, False]))
    np.testing.assert_array_equal(snapped, [[0.0, -1.0, 0.0, 2.0, 0.0], x[1]])
    no_kink, _ = relu.next_kink(np.ones((1, 3)), np.ones((1, 3)), None)
    assert no_kink[0] == np.inf


def test_max_pool_winner_on_a_path_and_its_next_change():
    # one 1x3 window: values (1, 1, 0.5), slopes (0, 2, 5). Lexicographic winner: cell 1 (tied
    # value, steeper). Cell 2 overtakes it at s = (1 - 0.5) / (5 - 2) = 1/6; cell 0 never does.
    pool = MaxPool2D((1, 3))
    x = np.array([1.0, 1.0, 0.5]).reshape(1, 1, 1, 3)
    dx = np.array([0.0, 2.0, 5.0]).reshape(1, 1, 1, 3)
    y, dy, cache = pool.forward_along(x, dx)
    assert y.ravel()[0] == 1.0 and dy.ravel()[0] == 2.0 and cache[0].ravel()[0] == 1
    distance, events = pool.next_kink(x, dx, cache)
    assert distance[0] == 0.5 / 3
    np.testing.assert_array_equal(events.ravel(), [False, False, True])
    moved = x + distance[0] * dx                  # cells 1 and 2 meet (up to rounding)
    snapped = pool.snap_to_kink(moved.copy(), events, np.array([True]))
    assert snapped.ravel()[2] == max(moved.ravel()[1], moved.ravel()[2])      # raised, never lowered
    _, _, cache = pool.forward_along(snapped, dx)
    assert cache[0].ravel()[0] == 2


def test_layers_without_kinks_report_none():
    dense = Dense([[1.0, 2.0]])
    x, dx = np.ones((3, 2)), np.ones((3, 2))
    y, dy, cache = dense.forward_along(x, dx)
    np.testing.assert_array_equal(dy, [[3.0]] * 3)
    distance, events = dense.next_kink(x, dx, cache)
    assert np.all(distance == np.inf) and events is None


# --------------------------------------------------------------------------------------------
# error estimates never claim more accuracy than the evidence allows
# --------------------------------------------------------------------------------------------


def independent_ig(net, x, baseline, target):
    """IG of one example by quad_vec split at independently bisected kinks (see the module docstring)."""
    breaks = bisected_breakpoints(net, x, baseline) if any(
        isinstance(layer, (ReLU, MaxPool2D)) for layer in net.layers) else []
    return piecewise_quad(net, x, baseline, target, breaks)


@pytest.mark.filterwarnings("ignore::refattr.errors.RefattrWarning")   # quad on ReLU on purpose
def test_quad_brackets_the_saturation_kink_and_bounds_its_error():
    # f(x) = 1 - relu(1 - x) at x = 16.033 from 0: the integrand is 16.033 on [0, 1/16.033) and 0
    # after, so IG = 1 exactly. Plain Gauss-Kronrod returned 1.0020625 with an estimate of 6.4e-14.
    result = integrated_gradients(saturating(), [[16.033]], rule="quad")
    error = abs(result.values[0, 0] - 1.0)
    assert error <= result.error_estimate[0] <= 1e-9
    assert result.options["quad_converged"][0]


@pytest.mark.parametrize("rule", ["left", "right", "midpoint", "trapezoid", "gauss_legendre"])
def test_fixed_rules_report_no_bound_where_the_pattern_changes_between_nodes(rule):
    # the same kink: every fixed rule with 50 nodes misses IG = 1 by up to 0.3 (right sum: 16 of
    # 50 nodes... only nodes a < 1/16.033 see the gradient: 3 nodes, 3 * 16.033 / 50 = 0.962);
    # its companion difference is no bound there, so the estimate is inf with the reason
    result = integrated_gradients(saturating(), [[16.033]], rule=rule, n_steps=50)
    assert result.error_estimate[0] == np.inf
    assert "pattern changes" in result.options["error_estimate_note"][0]
    if rule == "right":
        assert result.values[0, 0] == pytest.approx(3 * 16.033 / 50, rel=1e-14)


def test_quad_that_misses_a_spike_is_caught_by_completeness():
    # Dense -> Tanh -> Dense at x = 1e6: the integrand 1e6 tanh'(1e6 a) is a spike of width 1e-6 at
    # a = 0 that no Kronrod node sees (tanh' underflows at every node), so the integral looks like
    # 0; the exact value is tanh(1e6) - tanh(0) = 1. The gap of -1 disproves the estimate.
    net = Sequential([Dense([[1.0]]), Tanh(), Dense([[1.0]])])
    result = integrated_gradients(net, [[1e6]], rule="quad")
    assert result.completeness_gap[0] == pytest.approx(-1.0, abs=1e-12)
    assert result.error_estimate[0] == np.inf
    assert not result.options["quad_converged"][0]
    assert "completeness gap" in result.options["error_estimate_note"][0]


def test_a_fixed_rule_that_does_not_resolve_the_integrand_claims_no_bound():
    # tanh(20 x) from 0 to 1 with Gauss-Legendre, 4 nodes: the integrand 20 / cosh^2(20 a) is a
    # boundary layer no node resolves (the value 0.767 misses tanh(20) = 1 by 0.23); the bound
    # exceeds 1 % of the integrand's scale, so none is claimed
    net = Sequential([Dense([[20.0]]), Tanh(), Dense([[1.0]])])
    result = integrated_gradients(net, [[1.0]], rule="gauss_legendre", n_steps=4)
    assert abs(result.values[0, 0] - np.tanh(20.0)) > 0.1
    assert result.error_estimate[0] == np.inf
    assert "does not resolve the integrand" in result.options["error_estimate_note"][0]


def test_the_completeness_check_of_an_estimate_by_hand():
    # The exact integral is complete, so |gap| <= sum_i |error_i| <= sum_i bound_i. Row 0: values
    # (0.6, 0.3), t(x) - t(x') = 1, gap -0.1, bounds (0.01, 0.02) sum to 0.03 < 0.1: disproved, inf.
    # Row 1: the same values against t(x) - t(x') = 0.92, gap -0.02 <= 0.03: the bound stands and
    # the estimate is its largest entry, 0.02. Row 2: flagged untrusted beforehand: inf, not counted
    # as contradicted.
    from refattr.methods.integrated_gradients import _honest
    values = np.array([[0.6, 0.3]] * 3)
    bounds = np.array([[0.01, 0.02]] * 3)
    error, contradicted = _honest(values, bounds, np.array([False, False, True]), np.array([1.0, 0.92, 1.0]),
                                  np.ones(3))
    np.testing.assert_array_equal(error, [np.inf, 0.02, np.inf])
    np.testing.assert_array_equal(contradicted, [True, False, False])


MIXED = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}


@pytest.mark.filterwarnings("ignore::refattr.errors.RefattrWarning")   # quad on ReLU on purpose
@given(seed=st.integers(0, 2**32 - 1), first=st.sampled_from(sorted(MIXED)), second=st.sampled_from(sorted(MIXED)),
       size=st.sampled_from([0.5, 2.0, 8.0]),
       rule=st.sampled_from([("quad", 0), ("gauss_legendre", 6), ("gauss_legendre", 24), ("left", 16),
                             ("right", 16), ("midpoint", 9), ("trapezoid", 17)]))
def test_error_estimates_bound_the_true_error_on_random_networks(seed, first, second, size, rule):
    # For every method with an error estimate: where the estimate is finite it is at least the
    # true error (against quad_vec split at independently bisected kinks, converged to 1e-13), and
    # quad never says converged while its error exceeds the tolerance it was given.
    rng = np.random.default_rng(seed)
    net = Sequential([Dense(rng.normal(size=(6, 3)), rng.normal(size=6)), MIXED[first](),
                      Dense(rng.normal(size=(5, 6)) / 2, rng.normal(size=5)), MIXED[second](),
                      Dense(rng.normal(size=(2, 5)) / 2)])
    x, baseline = rng.normal(size=(2, 3)) * size, rng.normal(size=3)
    name, n = rule
    result = (integrated_gradients(net, x, baseline, target=1, rule="quad", rtol=1e-8) if name == "quad" else
              integrated_gradients(net, x, baseline, target=1, rule=name, n_steps=n))
    for i in range(2):
        exact = independent_ig(net, x[i], baseline, 1)
        true_error = np.abs(result.values[i] - exact).max()
        rounding = 1e-13 * max(np.abs(exact).max(), 1e-300)   # of the two integrators
        if np.isfinite(result.error_estimate[i]):
            assert true_error <= result.error_estimate[i] + rounding, (true_error, result.error_estimate[i])
        if name == "quad" and result.options["quad_converged"][i]:
            tolerance = max(1e-8 * np.abs(exact).max(), 1e-15 * result.options["error_scale"][i])
            assert true_error <= tolerance * (1 + 1e-6) + rounding


def test_n_steps_that_cannot_fit_in_memory_is_refused_before_allocating():
    from refattr.errors import ResourceError
    with pytest.raises(ResourceError, match=r"n_steps.*GiB.*quad"):
        integrated_gradients(NET, X, rule="right", n_steps=10**9)
    with pytest.raises(ResourceError, match=r"n_steps.*Gauss-Legendre.*10000"):
        integrated_gradients(NET, X, rule="gauss_legendre", n_steps=10**5)
