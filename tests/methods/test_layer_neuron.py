"""Layer and neuron attributions: completeness where the theory promises it (conductance and the
layer-space path over a cut, DeepLIFT at every value), the input layer giving input IG, closed
forms worked out by hand, and central differences for the gradient at a layer.
"""

import numpy as np
import pytest

from refattr import Add, Conv2D, Dense, Flatten, Graph, ReLU, Sequential, Tanh, integrated_gradients
from refattr.errors import ArgumentError
from refattr.methods.layer_attribution import (layer_conductance, layer_deeplift, layer_gradient_x_activation,
                                              layer_integrated_gradients)
from refattr.methods.neuron_attribution import neuron_deeplift, neuron_gradient, neuron_integrated_gradients


def resnet_block(rng):
    def conv(c_out, c_in, k, **kw):
        return Conv2D(rng.normal(size=(c_out, c_in, k, k)) / np.sqrt(c_in * k * k), rng.normal(size=c_out) * 0.3, **kw)

    return Graph("x", [("c1", conv(4, 2, 3, stride=2, padding=1), "x"), ("r1", ReLU(), "c1"),
                       ("c2", conv(4, 4, 3, padding=1), "r1"), ("down", conv(4, 2, 1, stride=2), "x"),
                       ("sum", Add(), ("c2", "down")), ("r2", ReLU(), "sum"), ("f", Flatten(), "r2"),
                       ("y", Dense(rng.normal(size=(3, 36)) / 6), "f")], input_shape=(2, 6, 6))


CUTS = ("x", "sum", "r2", "f", "y")          # every path from x to y crosses these


@pytest.fixture
def block(rng):
    net = resnet_block(rng)
    x, b, t = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(3, 2, 6, 6)) * 0.3, np.array([0, 2, 1])
    delta = net(x)[np.arange(3), t] - net(b)[np.arange(3), t]
    return net, x, b, t, delta


def test_summation_to_delta_at_every_node_of_a_resnet_block(block):
    net, x, b, t, delta = block
    scale = np.max(np.abs(delta))
    for name in net.value_names():
        for rule in ("rescale", "reveal_cancel"):
            gap = layer_deeplift(net, x, name, b, target=t, rule=rule).completeness_gap
            assert np.max(np.abs(gap)) <= 1e-12 * scale, (name, rule)
        conductance = layer_conductance(net, x, name, b, target=t)
        assert conductance.options["cut"] == (name in CUTS)
        if name in CUTS:
            assert np.max(np.abs(conductance.completeness_gap)) <= 1e-12 * scale, name
            layer_path = layer_integrated_gradients(net, x, name, b, target=t, path="layer")
            assert np.max(np.abs(layer_path.completeness_gap)) <= 1e-12 * scale, name
    # a cut of two values: the residual branch and the shortcut carry all of Δt together
    parts = [layer_conductance(net, x, name, b, target=t).values for name in ("c2", "down")]
    total = sum(p.reshape(3, -1).sum(axis=1) for p in parts)
    assert np.max(np.abs(total - delta)) <= 1e-12 * scale


def test_layer_ig_at_the_input_is_input_ig(block):
    net, x, b, t, _ = block
    reference = integrated_gradients(net, x, b, target=t, rule="exact").values
    for path in ("input", "layer"):
        values = layer_integrated_gradients(net, x, "x", b, target=t, path=path).values
        np.testing.assert_allclose(values, reference, rtol=1e-12, atol=1e-14)


def test_where_the_layer_is_linear_in_x_captums_layer_ig_is_conductance(rng):
    # a = W x + c: da/dα = Δa on the whole path, so (a(x) - a(x')) ∫ dt/da dα = ∫ dt/da da/dα dα
    net = Sequential([Dense(rng.normal(size=(5, 3)), rng.normal(size=5)), ReLU(), Dense(rng.normal(size=(4, 5))),
                      Tanh(), Dense(rng.normal(size=(2, 4)))])
    x, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    for rule in ("gauss_legendre", "midpoint"):
        lig = layer_integrated_gradients(net, x, 1, b, target=1, rule=rule, n_steps=40).values
        cond = layer_conductance(net, x, 1, b, target=1, rule=rule, n_steps=40).values
        np.testing.assert_allclose(lig, cond, rtol=1e-12, atol=1e-14)
    # a smooth network (tanh only), a cut, Gauss-Legendre: complete to its quadrature error, which
    # 64 nodes make negligible on an analytic integrand of this size
    smooth = Sequential([Dense(rng.normal(size=(5, 3)), rng.normal(size=5)), Tanh(), Dense(rng.normal(size=(2, 5)))])
    gap = layer_conductance(smooth, x, 2, b, target=1, rule="gauss_legendre", n_steps=64).completeness_gap
    assert np.max(np.abs(gap)) <= 1e-12


def test_closed_forms_by_hand():
    # y = 3 relu(x1 + x2) at (2, 1) from 0: the hidden neuron carries all of Δy = 9 under every
    # method; its gradient x activation is relu(3) * 3 = 9
    net = Sequential([Dense([[1.0, 1.0]]), ReLU(), Dense([[3.0]])])
    x = np.array([[2.0, 1.0]])
    for fn in (layer_conductance, layer_integrated_gradients, layer_deeplift):
        assert fn(net, x, 2).values.item() == pytest.approx(9.0, rel=1e-15)
    assert layer_gradient_x_activation(net, x, 2).values.item() == 9.0
    # n = relu(x1 - 2 x2 + 0.5): on the path a (3, 1) from 0 its input a + 0.5 > 0, so the neuron is
    # linear there with gradient (1, -2): IG = (3, -2), summing to n(x) - n(0) = 1.5 - 0.5
    net = Graph("x", [("h", Dense([[1.0, -2.0], [0.5, 0.5]], [0.5, -0.25]), "x"), ("a", ReLU(), "h"),
                      ("y", Dense([[1.0, 1.0]]), "a")])
    ig = neuron_integrated_gradients(net, np.array([[3.0, 1.0]]), "a", 0)
    np.testing.assert_array_equal(ig.values, [[3.0, -2.0]])
    assert ig.completeness_gap.item() == 0.0
    np.testing.assert_array_equal(neuron_gradient(net, np.array([[3.0, 1.0]]), "a", 0).values, [[1.0, -2.0]])
    # neuron 1 = relu(0.5 x1 + 0.5 x2 - 0.25) from 0: Δ = 1.75 - 0 (the reference's input is -0.25 <
    # 0); Rescale's multiplier 1.75 / 2 splits it 0.5 * 3 * 1.75/2 and 0.5 * 1 * 1.75/2
    dl = neuron_deeplift(net, np.array([[3.0, 1.0]]), "a", (1,))
    np.testing.assert_allclose(dl.values, [[1.3125, 0.4375]], rtol=1e-15)


def test_the_gradient_at_a_layer_against_central_differences(rng):
    net = Sequential([Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), Tanh(), Dense(rng.normal(size=(3, 4))),
                      Tanh(), Dense(rng.normal(size=(2, 3)))])
    x = rng.normal(size=(2, 3))
    a = net.trace(x).activations[2]
    above = Sequential(list(net.layers[2:]))
    h, fd = 1e-6, np.zeros_like(a)
    for i in range(a.shape[1]):
        e = np.zeros_like(a)
        e[:, i] = h
        fd[:, i] = (above(a + e)[:, 1] - above(a - e)[:, 1]) / (2 * h)
    np.testing.assert_allclose(layer_gradient_x_activation(net, x, 2, target=1).values, a * fd, rtol=1e-8, atol=1e-10)


def test_errors_name_the_problem(block, rng):
    net, x, b, t, _ = block
    with pytest.raises(ArgumentError, match=r"'nope' is not a value of the graph"):
        layer_conductance(net, x, "nope", b, target=t)
    with pytest.raises(ArgumentError, match=r"path: expected one of \('input', 'layer'\)"):
        layer_integrated_gradients(net, x, "r2", b, target=t, path="output")
    with pytest.raises(ArgumentError, match=r"neuron: 99 is out of range; the value has 36 neurons \(shape \(4, 3, 3\)\)"):
        neuron_gradient(net, x, "r2", 99)
    with pytest.raises(ArgumentError, match=r"layer: 7 is out of range"):
        layer_gradient_x_activation(Sequential([Dense(np.ones((1, 2)))]), np.ones((1, 2)), 7)


def test_the_layer_path_at_a_value_a_skip_connection_bypasses(block):
    # path="layer" at c2 (not a cut: the 1x1 shortcut bypasses it) moves c2 from c2(x') to c2(x)
    # while the shortcut stays at down(x); the exact sum is t(x) - t(x with c2 := c2(x')), written
    # out here layer by layer
    net, x, b, t, delta = block
    layers = {node.name: node.layer for node in net.nodes}

    def run(name, value):
        return layers[name].forward(value)[0]

    def head(c2, down):
        return run("y", run("f", run("r2", c2 + down)))

    c2_ref = run("c2", run("r1", run("c1", b)))
    expected = net(x)[np.arange(3), t] - head(c2_ref, run("down", x))[np.arange(3), t]
    result = layer_integrated_gradients(net, x, "c2", b, target=t)
    assert result.options["cut"] is False
    total = result.values.reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(total, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))
    assert np.max(np.abs(total - delta)) > 1e-3      # and so not t(x) - t(x')


def test_layer_methods_on_a_graph_of_two_inputs(rng):
    """Two inputs a (2) and b (4), joined: s = relu(A a + c) + B b, r = relu(s), y = W r. Layer IG at
    the input 'a' (path in a's own space, b held at x_b, Captum's semantics) against a midpoint
    sum over the path's linear pieces (below); summation-to-delta of
    layer DeepLIFT and conductance at the cut 'r'; a value given by name or number alike.

    The reference integral is written here from the weights: every kink on the path located in
    closed form, the constant gradient of each piece times its length."""
    from refattr import gradient

    g = Graph(("a", "b"), [("ha", Dense(rng.normal(size=(5, 2)), rng.normal(size=5)), "a"), ("ra", ReLU(), "ha"),
                           ("pa", Dense(rng.normal(size=(3, 5))), "ra"), ("hb", Dense(rng.normal(size=(3, 4))), "b"),
                           ("s", Add(), ("pa", "hb")), ("r", ReLU(), "s"), ("y", Dense(rng.normal(size=(2, 3))), "r")],
              input_shape=[(2,), (4,)])
    xa, xb = rng.normal(size=(3, 2)) * 2, rng.normal(size=(3, 4))
    ra, rb = rng.normal(size=(3, 2)), rng.normal(size=(3, 4)) * 0.5
    ours = layer_integrated_gradients(g, (xa, xb), "a", (ra, rb), target=1).values
    A, c = g.nodes[0].layer.weight, g.nodes[0].layer.bias
    P, B = g.nodes[2].layer.weight, g.nodes[3].layer.weight
    for n in range(3):
        # the path a(α) = ra + α Δa with b = xb: ha is affine in α, so its units switch at known α;
        # between those, s = P relu(ha) + B xb is affine too and its units switch at known α; the
        # gradient is constant between consecutive switches: the integral is a sum over pieces
        da = xa[n] - ra[n]
        h0, h1 = A @ ra[n] + c, A @ da
        cuts = {0.0, 1.0} | {float(-u / v) for u, v in zip(h0, h1) if v != 0 and 0 < -u / v < 1}
        edges = sorted(cuts)
        for lo, hi in zip(edges[:-1], edges[1:]):
            on = (h0 + (lo + hi) / 2 * h1) > 0
            s0, s1 = P @ (on * h0) + B @ xb[n], P @ (on * h1)
            cuts |= {float(-u / v) for u, v in zip(s0, s1) if v != 0 and lo < -u / v < hi}
        edges = np.array(sorted(cuts))
        mids = (edges[:-1] + edges[1:]) / 2
        grads = gradient(g, (ra[n] + mids[:, None] * da, np.repeat(xb[n:n + 1], mids.size, axis=0)),
                         target=1).values[0]
        exact = da * (np.diff(edges)[:, None] * grads).sum(axis=0)
        np.testing.assert_allclose(ours[n], exact, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(exact))))
    for method in (layer_deeplift, layer_conductance):
        result = method(g, (xa, xb), "r", (ra, rb), target=1)
        assert result.values.shape == (3, 3) and np.max(np.abs(result.completeness_gap)) <= 1e-12
    by_number = layer_conductance(g, (xa, xb), g.value_names().index("r"), (ra, rb), target=1).values
    np.testing.assert_array_equal(by_number, layer_conductance(g, (xa, xb), "r", (ra, rb), target=1).values)
    assert layer_gradient_x_activation(g, (xa, xb), "s", target=0).values.shape == (3, 3)
