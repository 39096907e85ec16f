"""DeepLIFT (docs/conventions.md, section 'DeepLIFT'; Shrikumar, Greenside & Kundaje 2017,
sections 3.3-3.5).

Every expected number comes from something other than the code under test: a hand derivation
with the arithmetic in a comment, a closed form, an independent computation written here (the
unsplit Rescale backward pass, integrated gradients by Gauss-Legendre quadrature), or another
method of the library that shares no code with DeepLIFT (input x gradient).

Tolerances. Results that are exact up to rounding are compared at 1e-12 to 1e-13 relative. The
scale of "relative" is stated at each use: for summation-to-delta it is the largest of |t(x)|,
|t(x')| and sum |C| over the layer's neurons, the magnitudes whose rounding the two sides carry
(Δt = t(x) - t(x') is itself only known to ~1e-16 of |t(x)|).
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refattr import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Swish,
                     Tanh)
from refattr.errors import NonFiniteError, RefattrError, RuleError, ShapeError, TargetError, UnsupportedLayerError
from refattr.layers.base import DeltaPair, ElementwiseLayer, Layer, LinearLayer
from refattr.methods.deeplift import deeplift, deeplift_layers
from refattr.methods.gradient import gradient
from refattr.methods.input_x_gradient import input_x_gradient
from refattr.testing import random_cnn, random_mlp, random_network

RULES = ("rescale", "reveal_cancel")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "swish")


def one_hot(target, n):
    g = np.zeros((len(target), n))
    g[np.arange(len(target)), target] = 1.0
    return g


def t_of(net, x, target):
    out = net(x)
    return out[np.arange(len(target)), target]


def assert_summation_to_delta(layers, t_x, t_ref, rtol=1e-12):
    """Every layer's contributions sum to Δt, relative to max(|t(x)|, |t(x')|, sum |C|)."""
    delta_t = t_x - t_ref
    for layer in layers:
        c = layer.contributions.reshape(len(delta_t), -1)
        scale = np.maximum.reduce([np.abs(t_x), np.abs(t_ref), np.abs(c).sum(axis=1)])
        gap = c.sum(axis=1) - delta_t
        assert np.all(np.abs(gap) <= rtol * scale), (layer.index, layer.name, gap, scale)
        np.testing.assert_array_equal(gap, layer.completeness_gap)


# Networks with exact zeros ----------------------------------------------------------------------

def dead_delta_mlp(rng, activation):
    """Dense(5 -> 4) -> act -> Dense(4 -> 3) -> act -> Dense(3 -> 2) where, for inputs whose
    features 0 and 1 equal the reference's:

    - hidden unit 0 reads only features 0 and 1, so its Δ is exactly 0 (both forward passes
      compute the same sum of the same products);
    - hidden unit 1 duplicates the weight row and bias of unit 2 (two identical neurons);
    - second-layer unit 0 reads only first-layer unit 0, so its Δ is exactly 0 too.
    """
    act = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}[activation]
    w1 = rng.normal(size=(4, 5))
    w1[0, 2:] = 0.0
    w1[1] = w1[2]
    b1 = rng.normal(size=4)
    b1[1] = b1[2]
    w2 = rng.normal(size=(3, 4))
    w2[0, 1:] = 0.0
    return Sequential([Dense(w1, b1), act(), Dense(w2, rng.normal(size=3)), act(),
                       Dense(rng.normal(size=(2, 3)), rng.normal(size=2))], input_shape=(5,))


def dead_channel_cnn(rng, activation, pool):
    """Conv(2 -> 3, 3x3, pad 1) -> act -> pool -> Conv(3 -> 2, 2x2) -> act -> Flatten -> Dense,
    where conv channel 0 reads only input channel 0; with input channel 0 equal to the
    reference's, that whole channel has Δ exactly 0."""
    act = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}[activation]
    w1 = rng.normal(size=(3, 2, 3, 3)) / 3.0
    w1[0, 1] = 0.0
    layers = [Conv2D(w1, rng.normal(size=3) * 0.3, padding=1), act()]
    layers.append(MaxPool2D(2, stride=1) if pool == "max" else AvgPool2D(2, stride=1))
    layers += [Conv2D(rng.normal(size=(2, 3, 2, 2)) / 2.0, rng.normal(size=2) * 0.3), act(), Flatten()]
    n = Sequential(layers).output_shape((2, 5, 5))[0]
    layers.append(Dense(rng.normal(size=(2, n)) / np.sqrt(n), rng.normal(size=2)))
    return Sequential(layers, input_shape=(2, 5, 5))


def reference_with_ties(rng, x, fraction=0.3):
    """A random reference equal to x at a random subset of features (Δx exactly 0 there)."""
    ref = rng.normal(size=x.shape)
    mask = rng.random(x.shape) < fraction
    return np.where(mask, x, ref)


# Summation-to-delta at every layer --------------------------------------------------------------

@pytest.mark.parametrize("rule", RULES)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["network", "mlp", "cnn"]),
       activation=st.sampled_from(ACTIVATIONS), n_layers=st.integers(1, 5))
def test_summation_to_delta_at_every_layer(rule, seed, kind, activation, n_layers):
    rng = np.random.default_rng(seed)
    if kind == "network":
        net = random_network(rng, input_shape=(2, 6, 6), n_layers=n_layers)
    elif kind == "mlp":
        net = random_mlp(rng, sizes=(4, 6, 5, 3), activation=activation)
    else:
        net = random_cnn(rng, input_shape=(2, 7, 7), activation=activation, pool="max")
    x = rng.normal(size=(3,) + net.input_shape)
    ref = reference_with_ties(rng, x)
    n_out = net.n_outputs(net.input_shape)
    target = rng.integers(0, n_out, size=3)
    layers = deeplift_layers(net, x, ref, target=target, rule=rule, maxpool_rule="delta_routing")
    assert len(layers) == len(net.layers) + 1
    assert_summation_to_delta(layers, t_of(net, x, target), t_of(net, ref, target))
    result = deeplift(net, x, ref, target=target, rule=rule, maxpool_rule="delta_routing")
    np.testing.assert_array_equal(result.values, layers[0].contributions)
    # Where Δx == 0 exactly the value is exactly 0 (whatever the multiplier).
    assert np.all(result.values[x == ref] == 0.0)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_summation_to_delta_with_hidden_units_whose_delta_is_exactly_zero(rule, activation, rng):
    net = dead_delta_mlp(rng, activation)
    x = rng.normal(size=(4, 5))
    ref = rng.normal(size=(4, 5))
    ref[:, :2] = x[:, :2]
    target = np.array([0, 1, 0, 1])
    layers = deeplift_layers(net, x, ref, target=target, rule=rule)
    # The dead units really are dead: Δ of first-layer unit 0 (trace index 1 and, after the
    # activation, 2) and of second-layer unit 0 (index 3 and 4) is exactly 0.
    trace, trace_ref = net.trace(x), net.trace(ref)
    for i in (1, 2, 3, 4):
        assert np.all(trace.activations[i][:, 0] == trace_ref.activations[i][:, 0])
        assert np.all(layers[i].delta_pos[:, 0] == 0.0) and np.all(layers[i].delta_neg[:, 0] == 0.0)
    assert_summation_to_delta(layers, t_of(net, x, target), t_of(net, ref, target))
    # The 0.5 rule at the first Dense for the tied features 0 and 1: their multiplier is
    # ½ W^T (M+ + M-), with M± the multipliers of the Dense output's two parts.
    w1 = net.layers[0].weight
    expected = 0.5 * (layers[1].m_pos + layers[1].m_neg) @ w1
    np.testing.assert_allclose(layers[0].m_pos[:, :2], expected[:, :2], rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(layers[0].m_pos, layers[0].m_neg)   # Linear rule: equal
    # The two duplicate neurons (units 1 and 2) have identical Δ parts and multipliers.
    for i in (1, 2):
        np.testing.assert_array_equal(layers[i].delta_pos[:, 1], layers[i].delta_pos[:, 2])
        np.testing.assert_array_equal(layers[i].delta_neg[:, 1], layers[i].delta_neg[:, 2])


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_summation_to_delta_with_a_dead_conv_channel(rule, pool, activation, rng):
    net = dead_channel_cnn(rng, activation, pool)
    x = rng.normal(size=(3, 2, 5, 5))
    ref = rng.normal(size=(3, 2, 5, 5))
    ref[:, 0] = x[:, 0]
    layers = deeplift_layers(net, x, ref, target=1, rule=rule, maxpool_rule="delta_routing")
    assert np.all(layers[1].delta_pos[:, 0] == 0.0) and np.all(layers[1].delta_neg[:, 0] == 0.0)
    target = np.ones(3, dtype=int)
    assert_summation_to_delta(layers, t_of(net, x, target), t_of(net, ref, target))


# Rescale: the split computation equals the unsplit one ------------------------------------------

def unsplit_rescale(net, x, ref, target):
    """The tutorial's unsplit chain rule: ordinary backprop with each element-wise layer's
    derivative replaced by its divided difference Δy / Δx (secant at the reference)."""
    acts, acts_ref = net.trace(x).activations, net.trace(ref).activations
    m = one_hot(target, acts[-1].shape[1])
    for i in reversed(range(len(net.layers))):
        layer = net.layers[i]
        if isinstance(layer, LinearLayer):
            m = layer.linear_vjp(m, acts[i].shape)
        elif isinstance(layer, ElementwiseLayer):
            m = m * layer.secant(acts_ref[i], acts[i] - acts_ref[i])
        else:
            raise AssertionError(f"no unsplit rule for {layer!r}")
    return m, m * (x - ref)


def forced_split(net, x, ref, target, rule):
    """Run the layer rules with the two multipliers always passed as distinct arrays, so that
    every layer takes its split (sign-routing) path, never the m+ is m- shortcut."""
    trace, trace_ref = net.trace(x), net.trace(ref)
    delta = x - ref
    pos, neg = np.maximum(delta, 0.0), np.minimum(delta, 0.0)
    caches = []
    for i, layer in enumerate(net.layers):
        inp = DeltaPair(trace.activations[i], trace_ref.activations[i], pos, neg)
        pos, neg, cache = layer.deeplift_forward(inp, trace.activations[i + 1], trace_ref.activations[i + 1],
                                                 trace.caches[i], trace_ref.caches[i], rule=rule,
                                                 maxpool_rule="delta_routing")
        caches.append(cache)
    m_pos = one_hot(target, trace.output.shape[1])
    m_neg = m_pos.copy()
    for layer, cache in zip(reversed(net.layers), reversed(caches)):
        m_pos, m_neg = layer.deeplift_backward(m_pos, m_neg.copy(), cache)
    return m_pos * np.maximum(delta, 0.0) + m_neg * np.minimum(delta, 0.0)


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["network", "mlp", "cnn"]),
       activation=st.sampled_from(ACTIVATIONS))
def test_rescale_split_equals_unsplit(seed, kind, activation):
    rng = np.random.default_rng(seed)
    no_max = (Conv2D, ReLU, Tanh, Sigmoid, Swish, AvgPool2D)
    if kind == "network":
        net = random_network(rng, input_shape=(2, 6, 6), n_layers=4, layer_types=no_max)
    elif kind == "mlp":
        net = random_mlp(rng, sizes=(5, 7, 6, 3), activation=activation)
    else:
        net = random_cnn(rng, input_shape=(2, 6, 6), activation=activation, pool="avg")
    x = rng.normal(size=(3,) + net.input_shape)
    ref = reference_with_ties(rng, x)
    target = rng.integers(0, net.n_outputs(net.input_shape), size=3)
    m_unsplit, v_unsplit = unsplit_rescale(net, x, ref, target)
    result = deeplift(net, x, ref, target=target, rule="rescale")
    split = forced_split(net, x, ref, target, "rescale")
    # Both computations are exact up to rounding; the split one adds L+^T M and L-^T M where
    # the unsplit one forms L^T M, so the scale is max |C| (1e-13 of it).
    scale = np.abs(v_unsplit).max()
    np.testing.assert_allclose(result.values, v_unsplit, rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_allclose(split, v_unsplit, rtol=1e-13, atol=1e-13 * scale)
    np.testing.assert_allclose(result.multipliers, m_unsplit, rtol=1e-13,
                               atol=1e-13 * np.abs(m_unsplit).max())


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["network", "mlp", "cnn"]))
def test_reveal_cancel_shortcut_equals_forced_split(seed, kind):
    # The driver passes one array for both multipliers where they are equal (the layers then
    # skip the sign routing, an exact identity); forcing the split path changes only rounding.
    rng = np.random.default_rng(seed)
    if kind == "network":
        net = random_network(rng, input_shape=(2, 6, 6), n_layers=4)
    elif kind == "mlp":
        net = random_mlp(rng, sizes=(5, 7, 6, 3), activation="swish")
    else:
        net = random_cnn(rng, input_shape=(2, 6, 6), activation="tanh", pool="max")
    x = rng.normal(size=(2,) + net.input_shape)
    ref = reference_with_ties(rng, x)
    target = rng.integers(0, net.n_outputs(net.input_shape), size=2)
    result = deeplift(net, x, ref, target=target, rule="reveal_cancel", maxpool_rule="delta_routing")
    split = forced_split(net, x, ref, target, "reveal_cancel")
    np.testing.assert_allclose(result.values, split, rtol=1e-13, atol=1e-13 * np.abs(split).max())


# Rescale equals integrated gradients through one layer of nonlinearities ------------------------

DERIVATIVES = {
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "sigmoid": lambda z: 1.0 / (2.0 + 2.0 * np.cosh(z)),            # σ(1 - σ) = 1 / (2 + 2 cosh z)
    "swish": lambda z: (1.0 + np.exp(-z) * (1.0 + z)) / (1.0 + np.exp(-z)) ** 2,   # β = 1
}


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "swish"])
def test_rescale_equals_integrated_gradients_with_one_nonlinear_layer(activation, rng):
    """f(x) = w2 · g(W1 x + b1) + b2 with g element-wise. On the straight path
    x(α) = x' + α Δx, hidden unit j sees the scalar z_j(α) = z'_j + α Δz_j, so

        IG_i = Δx_i Σ_j w2_j W1_ji ∫_0^1 g'(z'_j + α Δz_j) dα
             = Δx_i Σ_j w2_j W1_ji (g(z_j) - g(z'_j)) / Δz_j,

    which is Rescale's multiplier chain exactly. (Ancona et al. 2018, section 3, read Rescale as
    replacing each nonlinearity's gradient by its average over the path; the two coincide when
    every input reaches the output through a single nonlinearity with a scalar argument, as
    here, for any number of hidden units.) IG is computed independently by 200-point
    Gauss-Legendre quadrature of the hand-written gradient; the integrand is analytic in α, so
    the quadrature error is far below rounding.
    """
    n_in, n_hidden = 4, 6
    w1, b1 = rng.normal(size=(n_hidden, n_in)), rng.normal(size=n_hidden)
    w2, b2 = rng.normal(size=(2, n_hidden)), rng.normal(size=2)
    act = {"tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}[activation]()
    net = Sequential([Dense(w1, b1), act, Dense(w2, b2)])
    x, ref = rng.normal(size=(3, n_in)), rng.normal(size=(3, n_in))
    target = 1
    nodes, weights = np.polynomial.legendre.leggauss(200)
    alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
    ig = np.zeros_like(x)
    for a, w in zip(alphas, weights):
        z = (ref + a * (x - ref)) @ w1.T + b1
        ig += w * ((w2[target] * DERIVATIVES[activation](z)) @ w1)
    ig *= x - ref
    result = deeplift(net, x, ref, target=target, rule="rescale")
    np.testing.assert_allclose(result.values, ig, rtol=1e-12, atol=1e-12 * np.abs(ig).max())
    # With two nonlinear layers the identity fails (a hidden unit's argument no longer moves
    # linearly along the path), which shows the check above is not vacuous.
    deep = Sequential([Dense(w1, b1), Tanh(), Dense(rng.normal(size=(3, n_hidden)), rng.normal(size=3)),
                       Tanh(), Dense(rng.normal(size=(1, 3)))])
    w_mid = deep.layers[2]
    ig_deep = np.zeros_like(x)
    for a, w in zip(alphas, weights):
        z1 = (ref + a * (x - ref)) @ w1.T + b1
        z2 = np.tanh(z1) @ w_mid.weight.T + w_mid.bias
        g2 = deep.layers[4].weight[0] * (1 - np.tanh(z2) ** 2)
        ig_deep += w * (((g2 @ w_mid.weight) * (1 - np.tanh(z1) ** 2)) @ w1)
    ig_deep *= x - ref
    assert np.abs(deeplift(deep, x, ref).values - ig_deep).max() > 1e-6


# Bias-free ReLU networks, zero baseline: Rescale = input x gradient = integrated gradients ------

@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@given(seed=st.integers(0, 2**32 - 1))
def test_bias_free_relu_network_rescale_equals_input_times_gradient(kind, seed):
    """Ancona et al. 2018 (section 3): for a network of linear layers without bias and ReLUs,
    with reference 0, every hidden reference activation is 0, so Rescale's multiplier at a ReLU
    is (relu(z) - relu(0)) / z = 1(z > 0) = relu'(z): Rescale is the gradient chain and
    C = x * ∂t/∂x. Integrated gradients agree: f is positively homogeneous (f(αx) = α f(x)), so
    ∇f(αx) = ∇f(x) for α > 0, the integrand is constant on (0, 1] and IG = x * ∇f(x). The test
    checks the constancy of the gradient on the path too, at a few α.
    """
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        net = random_mlp(rng, sizes=(5, 8, 6, 3), activation="relu", bias=False)
    else:
        net = random_cnn(rng, input_shape=(2, 6, 6), activation="relu", pool="avg", bias=False)
    x = rng.normal(size=(3,) + net.input_shape)
    target = rng.integers(0, 3, size=3)
    ixg = input_x_gradient(net, x, target).values
    result = deeplift(net, x, 0.0, target=target, rule="rescale")
    np.testing.assert_allclose(result.values, ixg, rtol=1e-12, atol=1e-12 * np.abs(ixg).max())
    # The integrand of integrated gradients is constant on the path: ∇f(αx) = ∇f(x), α in (0, 1].
    grad = gradient(net, x, target).values
    for alpha in (0.25, 0.5, 0.9):
        np.testing.assert_allclose(gradient(net, alpha * x, target).values, grad, rtol=1e-12,
                                   atol=1e-12 * np.abs(grad).max())


# Worked examples from the DeepLIFT paper -------------------------------------------------------

def test_thresholded_relu_is_continuous():
    """Shrikumar et al. 2017, section 2.2 and figure 2: y = relu(x - 10), reference x' = 0 (so
    y' = relu(-10) = 0). DeepLIFT gives C = Δy = max(0, x - 10), continuous in x, with
    multiplier Δy / Δx = max(0, x - 10) / x; gradient x input jumps from 0 to ~10 at x = 10."""
    net = Sequential([Dense([[1.0]], [-10.0]), ReLU()])
    xs = np.array([[5.0], [9.999], [10.0], [10.001], [10.5], [15.0], [25.0]])
    for rule in RULES:
        result = deeplift(net, xs, 0.0, rule=rule)
        np.testing.assert_allclose(result.values, np.maximum(0.0, xs - 10.0), rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(result.multipliers, np.maximum(0.0, xs - 10.0) / xs, rtol=1e-15)
        assert np.all(result.completeness_gap == 0.0)
    ixg = input_x_gradient(net, xs).values[:, 0]
    assert ixg[2] == 0.0 and ixg[3] == 10.001        # relu'(0) = 0; relu'(0.001) = 1


def min_network():
    """min(i1, i2) = i1 - relu(i1 - i2) as a Sequential: a pass-through for i1 needs
    i1 = relu(i1) - relu(-i1), so the hidden layer is (i1, -i1, i1 - i2) and the output weights
    are (1, -1, -1). Shrikumar et al. 2017, section 3.5.3 and figure 3."""
    return Sequential([Dense([[1.0, 0.0], [-1.0, 0.0], [1.0, -1.0]]), ReLU(), Dense([[1.0, -1.0, -1.0]])])


def test_min_example_rescale_versus_reveal_cancel():
    net = min_network()
    x = np.array([[3.0, 1.0], [1.0, 3.0]])
    # Rescale, reference (0, 0), all hidden references 0.
    # x = (3, 1): h = (3, -3, 2), relu multipliers Δa/Δh = (1, 0, 1). Output multipliers
    #   back through the Dense: m_h = (1, -1, -1) * (1, 0, 1) = (1, 0, -1);
    #   m_x1 = 1*1 + (-1)*0 + 1*(-1) = 0, m_x2 = (-1)*(-1) = 1  ->  C = (0, 1), sum 1 = min.
    # x = (1, 3): h = (1, -1, -2), multipliers (1, 0, 0): m_h = (1, 0, 0) -> m_x = (1, 0),
    #   C = (1, 0), sum 1 = min.
    rescale = deeplift(net, x, 0.0, rule="rescale")
    np.testing.assert_array_equal(rescale.values, [[0.0, 1.0], [1.0, 0.0]])
    # RevealCancel at the unit h3 = i1 - i2 (the only one with both parts non-zero):
    # x = (3, 1): Linear rule: Δh3+ = 1 * 3 = 3 (from i1), Δh3- = -1 * 1 = -1 (from i2).
    #   Δa+ = ½ (relu(3) - relu(0)) + ½ (relu(3 - 1) - relu(-1)) = ½ 3 + ½ 2 = 2.5
    #   Δa- = ½ (relu(-1) - relu(0)) + ½ (relu(3 - 1) - relu(3)) = 0 + ½ (-1) = -0.5
    #   m+ = 2.5 / 3 = 5/6, m- = -0.5 / -1 = 1/2. Units h1 = i1 (Δ+ = 3, Δ- = 0): m+ = 1;
    #   h2 = -i1 (Δ+ = 0, Δ- = -3): m- = ½ (relu'(0) + relu'(0)) ... its Δ- part:
    #   ½ (relu(-3) - relu(0)) / -3 + ½ (relu(-3) - relu(0)) / -3 = 0.
    #   C_i1 = 3 * (1 * 1 + (-1) * 0 * ... + (-1) * 5/6) = 3 * 1/6 = 0.5  (i1 feeds Δh3+)
    #   C_i2 = 1 * ((-1) * (-1) * 1/2) = 0.5                               (i2 feeds Δh3-)
    #   Sum 1 = min(3, 1): RevealCancel splits the credit equally, Rescale gives it all to i2.
    # x = (1, 3): Δh3+ = 1, Δh3- = -3.
    #   Δa+ = ½ (relu(1) - 0) + ½ (relu(-2) - relu(-3)) = ½, m+ = ½
    #   Δa- = ½ (relu(-3) - 0) + ½ (relu(-2) - relu(1)) = -½, m- = (-½) / (-3) = 1/6
    #   C_i1 = 1 * (1 - ½) = 0.5, C_i2 = 3 * ((-1) * (-1) * 1/6) = 0.5.
    reveal = deeplift(net, x, 0.0, rule="reveal_cancel")
    np.testing.assert_allclose(reveal.values, [[0.5, 0.5], [0.5, 0.5]], rtol=1e-15)
    # The multipliers at the input of the ReLU (trace index 1) for unit h3, example 0:
    # m+ = (output weight -1) * 5/6, m- = (-1) * 1/2: RevealCancel's two multipliers differ.
    layers = deeplift_layers(net, x[:1], 0.0, rule="reveal_cancel")
    assert layers[1].delta_pos[0, 2] == 3.0 and layers[1].delta_neg[0, 2] == -1.0
    np.testing.assert_allclose([layers[1].m_pos[0, 2], layers[1].m_neg[0, 2]], [-5.0 / 6.0, -0.5], rtol=1e-15)
    # ... and the ReLU's output parts are Δa+ = 2.5, Δa- = -0.5 (sum Δa = relu(2) - relu(0) = 2).
    np.testing.assert_allclose([layers[2].delta_pos[0, 2], layers[2].delta_neg[0, 2]], [2.5, -0.5], rtol=1e-15)


def test_dense_relu_reveal_cancel_multipliers_by_hand():
    """y = relu(2 x1 - x2 + x3 - 1) with reference 0 (z' = -1) at x = (1, 2, 0.5).

    Linear rule: terms 2*1 = 2 > 0, -1*2 = -2 < 0, 1*0.5 = 0.5 > 0, so Δz+ = 2.5, Δz- = -2
    (Δz = 0.5, z = -0.5).
    Δy+ = ½ (relu(-1 + 2.5) - relu(-1)) + ½ (relu(-1 - 2 + 2.5) - relu(-1 - 2)) = ½ 1.5 + 0 = 0.75
    Δy- = ½ (relu(-3) - relu(-1)) + ½ (relu(-0.5) - relu(1.5)) = 0 - 0.75 = -0.75
    (Δy = relu(-0.5) - relu(-1) = 0). m+ = 0.75 / 2.5 = 0.3, m- = -0.75 / -2 = 0.375.
    Inputs: x1, x3 feed Δz+ (m = 0.3 w), x2 feeds Δz- (m = 0.375 w):
    C = (2 * 0.3 * 1, -1 * 0.375 * 2, 1 * 0.3 * 0.5) = (0.6, -0.75, 0.15), sum 0 = Δy.
    Rescale: Δz = 0.5, Δy = 0, so every multiplier is 0 and C = (0, 0, 0).
    """
    net = Sequential([Dense([[2.0, -1.0, 1.0]], [-1.0]), ReLU()])
    x = np.array([[1.0, 2.0, 0.5]])
    reveal = deeplift(net, x, 0.0, rule="reveal_cancel")
    np.testing.assert_allclose(reveal.values, [[0.6, -0.75, 0.15]], rtol=1e-15)
    np.testing.assert_allclose(reveal.multipliers, [[0.6, -0.375, 0.3]], rtol=1e-15)
    assert abs(reveal.completeness_gap[0]) < 1e-15
    at_relu = deeplift_layers(net, x, 0.0, rule="reveal_cancel")[1]      # the ReLU's input h
    assert at_relu.delta_pos[0, 0] == 2.5 and at_relu.delta_neg[0, 0] == -2.0
    np.testing.assert_allclose([at_relu.m_pos[0, 0], at_relu.m_neg[0, 0]], [0.3, 0.375], rtol=1e-15)
    np.testing.assert_array_equal(deeplift(net, x, 0.0, rule="rescale").values, [[0.0, 0.0, 0.0]])


def test_first_layer_activation_multiplier_at_a_zero_delta():
    """A network that starts with tanh: at a feature with Δx == 0 the reported multiplier is the
    mean of m+ and m-, both ½ (tanh'(x') + tanh'(x' + 0)) = sech²(x') under RevealCancel and
    the secant limit sech²(x') under Rescale."""
    net = Sequential([Tanh(), Dense([[1.0, -2.0]])])
    x = np.array([[0.3, 1.2]])
    ref = np.array([0.3, -0.4])
    for rule in RULES:
        result = deeplift(net, x, ref, rule=rule)
        assert result.values[0, 0] == 0.0
        np.testing.assert_allclose(result.multipliers[0, 0], 1.0 / np.cosh(0.3) ** 2, rtol=1e-15)
        # Feature 1: (tanh(1.2) - tanh(-0.4)) * -2 exactly its own contribution.
        np.testing.assert_allclose(result.values[0, 1], -2.0 * (np.tanh(1.2) - np.tanh(-0.4)), rtol=1e-14)


# Max pooling ----------------------------------------------------------------------------------

def test_maxpool_rules_by_hand():
    """One 2x2 window, then Flatten -> Dense([[1]]): t = max of the window.

    Example 0: x = [[1, 5], [3, 2]] (y = 5 at (0, 1)), x' = [[4, 0], [0, 0]] (y' = 4 at (0, 0)).
      delta_routing: y >= y', so Δt = 1 goes to the input's winner (0, 1), Δx = 5 - 0 = 5,
      multiplier 1/5, contribution 1. gradient rule: multiplier 1 at (0, 1), contribution 5,
      completeness gap 5 - 1 = 4.
    Example 1: x = [[1, 2], [3, 0]] (y = 3 at (1, 0)), same x' (y' = 4).
      delta_routing: y < y', so Δt = -1 goes to the reference's winner (0, 0), Δx = 1 - 4 = -3,
      multiplier 1/3, contribution -1. gradient rule: (1, 0) with Δx = 3: contribution 3,
      gap 3 - (-1) = 4.
    """
    net = Sequential([MaxPool2D(2), Flatten(), Dense([[1.0]])])
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]], [[[1.0, 2.0], [3.0, 0.0]]]])
    ref = np.array([[[4.0, 0.0], [0.0, 0.0]]])
    routed = deeplift(net, x, ref, maxpool_rule="delta_routing")
    np.testing.assert_allclose(routed.values, [[[[0, 1], [0, 0]]], [[[-1, 0], [0, 0]]]], rtol=1e-15)
    np.testing.assert_allclose(routed.multipliers[0, 0, 0, 1], 0.2, rtol=1e-15)
    np.testing.assert_allclose(routed.multipliers[1, 0, 0, 0], 1.0 / 3.0, rtol=1e-15)
    assert np.all(routed.completeness_gap == 0.0)
    grad_rule = deeplift(net, x, ref, maxpool_rule="gradient")
    np.testing.assert_array_equal(grad_rule.values, [[[[0, 5], [0, 0]]], [[[0, 0], [3, 0]]]])
    np.testing.assert_array_equal(grad_rule.completeness_gap, [4.0, 4.0])


# Several references (baseline_samples) ---------------------------------------------------------

@pytest.mark.parametrize("rule", RULES)
def test_baseline_samples_average_single_reference_attributions(rule, rng):
    net = random_cnn(rng, input_shape=(2, 5, 5), activation="swish", pool="max")
    x = rng.normal(size=(3, 2, 5, 5))
    refs = rng.normal(size=(4, 2, 5, 5))
    target = np.array([0, 2, 1])
    singles = [deeplift(net, x, r, target=target, rule=rule, maxpool_rule="delta_routing") for r in refs]
    result = deeplift(net, x, target=target, rule=rule, baseline_samples=refs, maxpool_rule="delta_routing")
    mean_values = np.mean([s.values for s in singles], axis=0)
    np.testing.assert_allclose(result.values, mean_values, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result.multipliers, np.mean([s.multipliers for s in singles], axis=0),
                               rtol=1e-13, atol=1e-15)
    t_x = t_of(net, x, target)
    delta_t = np.mean([t_x - t_of(net, np.broadcast_to(r, x.shape), target) for r in refs], axis=0)
    gap = result.values.reshape(3, -1).sum(axis=1) - delta_t
    assert np.all(np.abs(gap) <= 1e-12 * np.maximum(1.0, np.abs(t_x)))
    np.testing.assert_allclose(result.completeness_gap, gap, atol=1e-15)
    assert result.options["n_baselines"] == 4
    # One reference in baseline_samples= is the same as baseline=.
    one = deeplift(net, x, target=target, rule=rule, baseline_samples=refs[:1], maxpool_rule="delta_routing")
    np.testing.assert_array_equal(one.values, singles[0].values)


@pytest.mark.parametrize("rule", RULES)
def test_a_baseline_of_shape_one_by_example_is_one_example_broadcast_bit_for_bit(rule, rng):
    # Captum and NumPy read a (1, *example_shape) baseline as one reference for the whole batch:
    # the same arithmetic as the example-shaped baseline and as that baseline written out per
    # example, so every field is equal bit for bit (a broadcast to example 0 only, or a reading as
    # a one-sample distribution with n_baselines = 1, would show here).
    net = random_cnn(rng, input_shape=(2, 5, 5), activation="swish", pool="max")
    x, ref = rng.normal(size=(3, 2, 5, 5)), rng.normal(size=(2, 5, 5))
    target = np.array([0, 2, 1])
    as_example = deeplift(net, x, ref, target=target, rule=rule, maxpool_rule="delta_routing")
    for baseline in (ref[None], np.broadcast_to(ref, x.shape).copy()):
        result = deeplift(net, x, baseline, target=target, rule=rule, maxpool_rule="delta_routing")
        np.testing.assert_array_equal(result.values, as_example.values)
        np.testing.assert_array_equal(result.multipliers, as_example.multipliers)
        np.testing.assert_array_equal(result.completeness_gap, as_example.completeness_gap)
        assert result.options["n_baselines"] is None
    layers = deeplift_layers(net, x, ref[None], target=target, rule=rule, maxpool_rule="delta_routing")
    np.testing.assert_array_equal(layers[0].contributions, as_example.values)


# Result fields, batch invariance, determinism ------------------------------------------------

def test_result_fields(rng):
    net = random_mlp(rng, activation="tanh")
    x = rng.normal(size=(2, 4))
    result = deeplift(net, x, 0.5, target=np.array([0, 2]), rule="reveal_cancel")
    assert result.method == "deeplift"
    assert result.values.shape == x.shape and result.multipliers.shape == x.shape
    assert result.values.dtype == np.float64
    np.testing.assert_array_equal(result.error_estimate, np.zeros(2))
    assert result.completeness_gap.shape == (2,)
    assert result.options["rule"] == "reveal_cancel" and result.options["maxpool_rule"] is None
    np.testing.assert_array_equal(result.options["target"], [0, 2])
    np.testing.assert_array_equal(np.asarray(result), result.values)
    # values = multipliers * Δx where Δx != 0 (the Linear rule gives m+ == m- at the input).
    np.testing.assert_allclose(result.values, result.multipliers * (x - 0.5), rtol=1e-15)


@pytest.mark.parametrize("rule", RULES)
def test_batch_invariance(rule, rng):
    # Each example's result depends on that example (and its reference) only. BLAS may block a
    # matrix product differently for different batch sizes, so agreement is to rounding.
    net = random_network(rng, input_shape=(2, 6, 6), n_layers=5)
    x = rng.normal(size=(5, 2, 6, 6))
    ref = reference_with_ties(rng, x)
    target = np.array([0, 1, 1, 0, 1])
    batch = deeplift(net, x, ref, target=target, rule=rule, maxpool_rule="delta_routing")
    for i in range(5):
        alone = deeplift(net, x[i:i + 1], ref[i:i + 1], target=int(target[i]), rule=rule,
                         maxpool_rule="delta_routing")
        scale = np.abs(alone.values).max()
        np.testing.assert_allclose(batch.values[i:i + 1], alone.values, rtol=1e-13, atol=1e-13 * scale)


@pytest.mark.parametrize("rule", RULES)
def test_determinism(rule, rng):
    net = random_network(rng, input_shape=(2, 6, 6), n_layers=5)
    x = rng.normal(size=(3, 2, 6, 6))
    ref = rng.normal(size=(2, 6, 6))
    a = deeplift(net, x, ref, target=1, rule=rule, maxpool_rule="delta_routing")
    b = deeplift(net, x.copy(), ref.copy(), target=1, rule=rule, maxpool_rule="delta_routing")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.multipliers, b.multipliers)
    np.testing.assert_array_equal(a.completeness_gap, b.completeness_gap)


# Bad input ------------------------------------------------------------------------------------

class _NoRule(Layer):
    """A layer with a forward pass but no DeepLIFT rule."""

    def output_shape(self, input_shape):
        return input_shape

    def forward(self, x):
        return x, None


def _tiny():
    return Sequential([Dense([[1.0, 2.0], [0.5, -1.0]], [0.1, 0.2]), Tanh(), Dense([[1.0, 1.0], [1.0, -1.0]])],
                      input_shape=(2,))


@pytest.mark.parametrize("kwargs, error, words", [
    ({"rule": "Rescale"}, RuleError, ["rule", "'Rescale'", "rescale", "reveal_cancel"]),
    ({"rule": "revealcancel"}, RuleError, ["rule", "'revealcancel'", "reveal_cancel"]),
    ({"rule": 3}, RuleError, ["rule", "3", "rescale"]),
    ({"maxpool_rule": "max"}, RuleError, ["maxpool_rule", "'max'", "delta_routing", "gradient"]),
    ({"baseline": np.zeros(3)}, ShapeError, ["baseline", "(3,)", "(2,)"]),
    ({"baseline": np.array([0.0, np.nan])}, NonFiniteError, ["baseline", "non-finite"]),
    ({"baseline": np.inf}, NonFiniteError, ["baseline", "non-finite"]),
    ({"baseline_samples": np.zeros((3, 5))}, ShapeError, ["baseline_samples", "(3, 5)", "(K, 2)"]),
    ({"baseline_samples": np.zeros(2)}, ShapeError, ["baseline_samples", "(K, 2)"]),
    ({"baseline_samples": np.full((2, 2), np.nan)}, NonFiniteError, ["baseline_samples", "non-finite"]),
    ({"baseline_samples": np.zeros((2, 2)), "baseline": 1.0}, RefattrError, ["baseline", "baseline_samples", "1.0"]),
    ({"target": 2}, TargetError, ["target", "2", "out of range"]),
    ({"target": None}, TargetError, ["target", "None", "2 outputs"]),
    ({"target": 0.0}, TargetError, ["target", "float"]),
])
def test_bad_arguments_raise_with_a_message_naming_them(kwargs, error, words):
    args = {"target": 0, **kwargs}
    with pytest.raises(error) as info:
        deeplift(_tiny(), [[1.0, 2.0]], **args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_input_raises():
    with pytest.raises(NonFiniteError, match="x: holds 1 non-finite"):
        deeplift(_tiny(), [[1.0, np.nan]], target=0)
    with pytest.raises(ShapeError, match=r"x: expected examples of shape \(2,\)"):
        deeplift(_tiny(), [[1.0, 2.0, 3.0]], target=0)
    with pytest.raises(UnsupportedLayerError, match=r"net: expected a refattr network \(Sequential or Graph\)"):
        deeplift(lambda v: v, [[1.0, 2.0]])


def test_layer_without_a_rule_is_named():
    net = Sequential([Dense([[1.0, 2.0]]), _NoRule()], input_shape=(2,))
    with pytest.raises(UnsupportedLayerError, match=r"layers\[1\] _NoRule has no DeepLIFT rule"):
        deeplift(net, [[1.0, 2.0]])


def test_maxpool_without_a_rule_fails_before_any_computation(rng, monkeypatch):
    net = random_cnn(rng, input_shape=(2, 5, 5), pool="max")
    calls = []
    monkeypatch.setattr(net, "trace", lambda x: calls.append(x))
    with pytest.raises(RuleError) as info:
        deeplift(net, rng.normal(size=(2, 2, 5, 5)), target=0)
    message = str(info.value)
    for word in ("maxpool_rule", "MaxPool2D", "layers[2]", "'delta_routing'", "'gradient'"):
        assert word in message, (word, message)
    assert calls == []   # raised before either forward pass
    with pytest.raises(RuleError, match="maxpool_rule"):
        deeplift_layers(net, rng.normal(size=(2, 2, 5, 5)), target=0)
    assert calls == []
