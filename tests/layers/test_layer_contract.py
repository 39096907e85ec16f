"""Every registered layer: forward/VJP agree with central finite differences, shapes, determinism.

Registering a layer (refattr.layers.registry.register) brings it under these tests with no other change, as long
as it implements ``random(rng, input_shape)``.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refattr.layers import LAYERS, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from refattr.network import InputShape, Sequential
from refattr.testing import FD_RTOL, check_vjp, random_network


def _input_shape(cls, rng):
    if cls is Dense:
        return (int(rng.integers(1, 6)),)
    return (int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 7)))


def _away_from_kinks(rng, shape):
    """Values whose magnitudes are >= 0.05 and pairwise separated by >= 0.05 (no ReLU kink within
    reach of the finite-difference step 1e-5 * |d|, no max-pool tie)."""
    n = int(np.prod(shape))
    magnitudes = 0.05 * (1 + rng.permutation(n)) + rng.uniform(0, 0.01, size=n)
    signs = rng.choice([-1.0, 1.0], size=n)
    # Separation holds for magnitudes; opposite signs are separated by at least 0.1.
    return (signs * magnitudes).reshape(shape)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@given(seed=st.integers(0, 2**32 - 1))
def test_vjp_matches_central_differences(cls, seed):
    rng = np.random.default_rng(seed)
    shape = _input_shape(cls, rng)
    layer = cls.random(rng, shape)
    x = _away_from_kinks(rng, (int(rng.integers(1, 4)),) + shape)
    _, cache = layer.forward(x)
    check_vjp(lambda v: layer.forward(v)[0], lambda g: layer.vjp(g, cache), x, rng, rtol=FD_RTOL)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_output_shape_and_determinism(cls, rng):
    shape = _input_shape(cls, rng)
    layer = cls.random(rng, shape)
    x = rng.normal(size=(3,) + shape)
    y1, _ = layer.forward(x)
    y2, _ = layer.forward(x.copy())
    assert y1.shape == (3,) + tuple(layer.output_shape(shape))
    assert y1.dtype == np.float64
    np.testing.assert_array_equal(y1, y2)


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
    x = _away_from_kinks(rng, (2, 2, 5, 6))
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
