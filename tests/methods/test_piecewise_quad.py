"""Integrated gradients with rule="piecewise" on networks mixing kinked and smooth layers.

Where every expected number comes from:

- an independent integrator written here (``reference_ig``): the activation pattern (the sign of
  every ReLU / LeakyReLU input and every max-pool argmax, from the ordinary forward pass) is sampled on
  a grid of 2,000 intervals, every change is located by bisection to the last bit of alpha, and each
  piece between changes is integrated by Gauss-Legendre with 40 nodes, itself checked against 50
  nodes. It shares no code with refattr's piecewise rule (no probes, no tangents, no Newton steps);
- the closed form of a ReLU unit that opens and closes again between two nodes of adaptive quad
  (``test_quad_converges_to_a_wrong_answer_that_piecewise_gets_right``).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refattr import Add, Dense, Graph, Mul, ReLU, Sequential, Sigmoid, Tanh
from refattr.errors import RuleError
from refattr.layers.leaky_relu import LeakyReLU
from refattr.layers.max_pool import MaxPool2D
from refattr.layers.max_pool1d import MaxPool1D
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.quadrature import gauss_legendre
from refattr.testing import random_cnn
from refattr.testing.networks import ACTIVATIONS

KINKED = ("relu", "leakyrelu")
SMOOTH = ("tanh", "sigmoid", "swish", "gelu", "softplus")


# --------------------------------------------------------------------------------------------
# the independent integrator
# --------------------------------------------------------------------------------------------
def _pattern(net, points):
    trace = net.trace(points)
    parts = []
    for j, layer in enumerate(net.layers):
        if isinstance(layer, (ReLU, LeakyReLU)):
            z = trace.activations[net.node_args[j][0]]
            parts.append((z > 0).reshape(len(points), -1).astype(np.int64))
        elif isinstance(layer, (MaxPool2D, MaxPool1D)):
            parts.append(np.asarray(trace.caches[j][0]).reshape(len(points), -1))
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(points), 0), dtype=np.int64)


def _column(alphas, x):
    return alphas.reshape((-1,) + (1,) * x.ndim)


def _integrand(net, x, baseline, target, alphas):
    points = baseline[None] + _column(alphas, x) * (x - baseline)[None]
    trace = net.trace(points)
    g = np.zeros_like(trace.output)
    g[:, target] = 1.0
    return net.backward(g, trace) * (x - baseline)[None]


def reference_ig(net, x, baseline, target, n_grid=2000):
    """IG of one (flat) example: the path split at every pattern change, Gauss-Legendre on each piece."""
    def at(a):
        return _pattern(net, baseline[None] + _column(np.atleast_1d(a), x) * (x - baseline)[None])

    grid = np.linspace(0.0, 1.0, n_grid + 1)
    pats = at(grid)
    edges = [0.0]
    for k in range(n_grid):
        lo, p_lo, hi_end, p_end = grid[k], pats[k], grid[k + 1], pats[k + 1]
        while not np.array_equal(p_lo, p_end):          # changes in (lo, hi_end]: find them left to right
            lo_b, hi_b = lo, hi_end
            while True:
                mid = 0.5 * (lo_b + hi_b)
                if not lo_b < mid < hi_b:
                    break
                if np.array_equal(at(mid)[0], p_lo):
                    lo_b = mid
                else:
                    hi_b = mid
            edges.append(0.5 * (lo_b + hi_b))
            lo, p_lo = hi_b, at(hi_b)[0]
    edges.append(1.0)
    total40, total50 = np.zeros_like(x), np.zeros_like(x)
    for a, b in zip(edges[:-1], edges[1:]):
        for n, total in ((40, total40), (50, total50)):
            nodes, weights = gauss_legendre(n)
            total += (b - a) * np.tensordot(weights, _integrand(net, x, baseline, target, a + (b - a) * nodes), 1)
    scale = np.abs(total50).max()
    assert np.abs(total40 - total50).max() <= 1e-13 * scale + 1e-300, "the reference has not converged"
    return total50


def _check_against_reference(net, x, baseline, target):
    result = integrated_gradients(net, x, baseline, target=target, rule="piecewise")
    assert result.options["rule"] == "piecewise"
    for i in range(x.shape[0]):
        ref = reference_ig(net, x[i].ravel() if x.ndim == 2 else x[i], baseline[i], target)
        err = np.abs(result.values[i] - ref).max()
        # the estimate bounds the error; 1e-13 x the attributions' scale is the reference's own rounding
        assert err <= result.error_estimate[i] + 1e-13 * np.abs(ref).max(), (err, result.error_estimate[i])
        assert result.error_estimate[i] <= 1e-8 * max(np.abs(ref).max(), 1.0)
    return result


def _mixed_mlp(rng, sizes, activations):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in) * 2.0, rng.normal(size=n_out) * 0.5))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activations[i]]())
    return Sequential(layers, input_shape=(sizes[0],))


# --------------------------------------------------------------------------------------------
# agreement with the independent integrator
# --------------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kinked=st.sampled_from(KINKED), smooth=st.sampled_from(SMOOTH),
       kinked_first=st.booleans(), width=st.integers(3, 7))
def test_random_mixed_chains_agree_with_the_independent_integrator(seed, kinked, smooth, kinked_first, width):
    rng = np.random.default_rng(seed)
    acts = (kinked, smooth) if kinked_first else (smooth, kinked)
    net = _mixed_mlp(rng, (3, width, width, 2), acts)
    x, baseline = rng.normal(size=(2, 3)) * 2.0, rng.normal(size=(2, 3)) * 0.5
    _check_against_reference(net, x, baseline, target=int(rng.integers(2)))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), smooth=st.sampled_from(SMOOTH))
def test_random_mixed_graphs_agree_with_the_independent_integrator(seed, smooth):
    # a gated residual block: relu(h) * smooth(h) + h, and a head
    rng = np.random.default_rng(seed)
    net = Graph("x", [
        ("h", Dense(rng.normal(size=(5, 3)), rng.normal(size=5) * 0.5), "x"),
        ("a", ReLU(), "h"),
        ("s", ACTIVATIONS[smooth](), "h"),
        ("m", Mul(), ("a", "s")),
        ("r", Add(), ("m", "h")),
        ("y", Dense(rng.normal(size=(2, 5))), "r"),
    ])
    x, baseline = rng.normal(size=(2, 3)) * 2.0, np.zeros((2, 3))
    _check_against_reference(net, x, baseline, target=1)


def test_a_small_max_pool_sigmoid_cnn_agrees_with_the_independent_integrator():
    rng = np.random.default_rng(7)
    net = random_cnn(rng, input_shape=(1, 5, 5), activation="sigmoid", pool="max", n_outputs=2)
    x = rng.normal(size=(1, 1, 5, 5)) * 2.0
    baseline = np.zeros_like(x)
    result = integrated_gradients(net, x, baseline, target=1, rule="piecewise")
    assert result.options["n_pieces"][0] > 1                 # max-pool winners change on the path
    flat = Sequential(net.layers)
    ref = reference_ig(flat, x[0], baseline[0], 1)
    err = np.abs(result.values[0] - ref).max()
    assert err <= result.error_estimate[0] + 1e-13 * np.abs(ref).max()


def test_several_inputs_go_through_the_packing():
    rng = np.random.default_rng(3)
    net = Graph(("u", "v"), [
        ("hu", Dense(rng.normal(size=(4, 2))), "u"),
        ("hv", Dense(rng.normal(size=(4, 3))), "v"),
        ("s", Add(), ("hu", "hv")),
        ("a", ReLU(), "s"),
        ("t", Tanh(), "a"),
        ("y", Dense(rng.normal(size=(1, 4))), "t"),
    ])
    u, v = rng.normal(size=(2, 2)) * 2, rng.normal(size=(2, 3)) * 2
    result = integrated_gradients(net, (u, v), rule="piecewise")
    packed = net.packed(((2,), (3,)))
    for i in range(2):
        ref = reference_ig(packed, np.concatenate([u[i], v[i]]), np.zeros(5), 0)
        got = np.concatenate([result.values[0][i], result.values[1][i]])
        assert np.abs(got - ref).max() <= result.error_estimate[i] + 1e-13 * np.abs(ref).max()


# --------------------------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------------------------
def test_batch_invariance_and_completeness_within_the_estimate():
    rng = np.random.default_rng(11)
    net = _mixed_mlp(rng, (4, 8, 6, 3), ("relu", "tanh"))
    x = rng.normal(size=(5, 4)) * 2.0
    together = integrated_gradients(net, x, target=2, rule="piecewise")
    for i in range(5):
        alone = integrated_gradients(net, x[i:i + 1], target=2, rule="piecewise")
        scale = np.abs(alone.values).max()
        np.testing.assert_allclose(together.values[i], alone.values[0], rtol=0, atol=1e-13 * scale)
        assert together.options["n_evaluations"][i] == alone.options["n_evaluations"][0]
        np.testing.assert_array_equal(together.options["breakpoints"][i], alone.options["breakpoints"][0])
    # the gap is the error of the sum: at most the sum over features of their errors
    assert np.all(np.abs(together.completeness_gap) <= 4 * together.error_estimate + 1e-12 * np.abs(x).sum())
    assert np.all(together.options["piecewise_converged"])


def test_quad_converges_to_a_wrong_answer_that_piecewise_gets_right():
    # Along x = (a, a), a in [0, 1], the ReLU input is
    #     z(a) = 10 (sigmoid(40 a - 14) - sigmoid(20 a - 7)) - 1.5,
    # positive only on (a1, a2) ~ (0.4012, 0.4049): between the Kronrod nodes 0.3961 and 0.5 of
    # quad's first interval, so quad sees a zero integrand at all 17 points and stops there.
    # There t = relu(z) and the gradient is 1(z > 0) (10 * 40 sigmoid'(40 a - 14), -10 * 20 sigmoid'(20 a - 7)),
    # so phi_1 = 10 (sigmoid(40 a2 - 14) - sigmoid(40 a1 - 14)) and phi_2 = -10 (sigmoid(20 a2 - 7) -
    # sigmoid(20 a1 - 7)) = -phi_1 (z(a1) = z(a2) = 0); the sum is 0, so completeness cannot tell.
    net = Sequential([Dense([[40.0, 0.0], [0.0, 20.0]], [-14.0, -7.0]), Sigmoid(), Dense([[10.0, -10.0]], [-1.5]),
                      ReLU(), Dense([[1.0]])])
    sig = lambda t: 1.0 / (1.0 + np.exp(-t))      # noqa: E731
    z = lambda a: 10.0 * (sig(40 * a - 14) - sig(20 * a - 7)) - 1.5   # noqa: E731

    def root(lo, hi):                               # bisection to the last bit
        while lo < 0.5 * (lo + hi) < hi:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if (z(mid) > 0) == (z(lo) > 0) else (lo, mid)
        return 0.5 * (lo + hi)

    a1, a2 = root(0.39, 0.403), root(0.403, 0.42)
    assert z(0.403) > 0 and z(0.39) < 0 and z(0.42) < 0
    phi1 = 10.0 * (sig(40 * a2 - 14) - sig(40 * a1 - 14))
    expected = np.array([[phi1, -10.0 * (sig(20 * a2 - 7) - sig(20 * a1 - 7))]])
    assert phi1 > 0.1

    x = np.array([[1.0, 1.0]])
    quad = integrated_gradients(net, x, rule="quad")
    assert quad.options["quad_converged"][0] and quad.error_estimate[0] <= 1e-10
    assert np.abs(quad.values - expected).max() > 0.1             # converged, and wrong by 0.14

    piecewise = integrated_gradients(net, x, rule="piecewise")
    np.testing.assert_allclose(piecewise.options["breakpoints"][0], [a1, a2], rtol=0, atol=1e-14)
    err = np.abs(piecewise.values - expected).max()
    assert err <= piecewise.error_estimate[0] + 1e-14 and piecewise.error_estimate[0] <= 1e-10


# --------------------------------------------------------------------------------------------
# options and errors
# --------------------------------------------------------------------------------------------
def test_options_count_evaluations_per_example_and_per_baseline():
    rng = np.random.default_rng(5)
    net = _mixed_mlp(rng, (3, 5, 2), ("relu",))
    net = Sequential(list(net.layers[:2]) + [Tanh()] + list(net.layers[2:]))
    x = rng.normal(size=(2, 3))
    samples = rng.normal(size=(3, 3))
    result = integrated_gradients(net, x, baseline_samples=samples, target=0, rule="piecewise")
    opts = result.options
    for key in ("n_evaluations", "n_gradients", "n_probes", "n_pieces", "n_intervals"):
        assert opts[key].shape == (2, 3)
    np.testing.assert_array_equal(opts["n_evaluations"], opts["n_gradients"] + opts["n_probes"])
    assert len(opts["breakpoints"]) == 2 and len(opts["breakpoints"][0]) == 3
    assert opts["piecewise_converged"].shape == (2,)
    # a smooth network: one piece, no probes
    smooth = Sequential([Dense(rng.normal(size=(4, 3))), Tanh(), Dense(rng.normal(size=(1, 4)))])
    r = integrated_gradients(smooth, x, rule="piecewise")
    np.testing.assert_array_equal(r.options["n_probes"], 0)
    np.testing.assert_array_equal(r.options["n_pieces"], 1)


def test_an_undeclared_layer_is_refused_naming_it():
    from refattr.layers.base import ElementwiseLayer

    class Odd(ElementwiseLayer):
        piecewise_linear = None

        def function(self, x):
            return x

    net = Sequential([Dense(np.eye(2)), Odd(), Dense(np.ones((1, 2)))])
    with pytest.raises(RuleError, match=r"'piecewise'.*layers\[1\] Odd\(\)"):
        integrated_gradients(net, np.ones((1, 2)), rule="piecewise")
