"""Gradient, input x gradient, guided backprop and deconvnet on hand-built networks.

Expected values are derived in the comments; the rules are those of docs/conventions.md, section
'Gradient family' (Springenberg et al. 2015; Zeiler & Fergus 2014), not the tutorial's erratum.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refattr import Dense, ReLU, Sequential, deconvnet, gradient, guided_backprop, input_x_gradient
from refattr.methods import GRADIENT_FAMILY, METHODS
from refattr.testing import random_cnn, random_network


def saturating():
    """The tutorial's f(x) = 1 - max(0, 1 - x) = Dense(-1, +1) -> ReLU -> Dense(-1, +1)."""
    return Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])


def test_tutorial_saturation_example():
    # f'(x) = 1 for x < 1 and 0 for x > 1: the gradient is 1 at 0.5 and 0 at 2, although
    # f(2) - f(0) = 1 (the gradient saturates).
    np.testing.assert_array_equal(gradient(saturating(), [[0.5], [2.0]]).values, [[1.0], [0.0]])


def test_guided_backprop_and_deconvnet_drop_a_negative_signal_at_the_relu():
    # At x = 0.5: z = 1 - 0.5 = 0.5 > 0 (mask of the gradient open); the signal arriving at the
    # ReLU is the output weight -1 < 0. Gradient: -1 * 1 * -1 = 1. Guided backprop and deconvnet
    # zero the negative signal, so both give 0.
    net = saturating()
    assert gradient(net, [[0.5]]).values[0, 0] == 1.0
    assert guided_backprop(net, [[0.5]]).values[0, 0] == 0.0
    assert deconvnet(net, [[0.5]]).values[0, 0] == 0.0


def test_deconvnet_ignores_the_forward_input():
    # f(x) = relu(x) at x = -1: z < 0 closes the gradient's and guided backprop's mask; the
    # signal +1 is positive, so deconvnet passes it: 1.
    net = Sequential([Dense([[1.0]]), ReLU()])
    assert gradient(net, [[-1.0]]).values[0, 0] == 0.0
    assert guided_backprop(net, [[-1.0]]).values[0, 0] == 0.0
    assert deconvnet(net, [[-1.0]]).values[0, 0] == 1.0


def test_negative_gradient_is_not_clipped_by_guided_backprop():
    # f(x) = 1 * relu(-x) at x = -2: z = 2 > 0 and the signal at the ReLU is +1, so no mask acts;
    # the first Dense's VJP multiplies by -1. Masks act only at ReLUs, so all three give -1.
    net = Sequential([Dense([[-1.0]]), ReLU(), Dense([[1.0]])])
    for method in (gradient, guided_backprop, deconvnet):
        assert method(net, [[-2.0]]).values[0, 0] == -1.0


def test_two_relu_layers_by_hand():
    # x = (1, 2). Layer 1: z1 = (x1 - x2, x1 + x2) = (-1, 3); a1 = (0, 3).
    # Layer 2: z2 = (a11 - a12, 2 a12) = (-3, 6); a2 = (0, 6). Output: t = a21 + a22 = 6.
    # Gradient: dt/da2 = (1, 1); mask z2 > 0 -> (0, 1); dt/da1 = (0, 1) @ W2 = (0 * 1 + 1 * 0,
    # 0 * -1 + 1 * 2) = (0, 2); mask z1 > 0 -> (0, 2); dt/dx = (0, 2) @ W1 = (2, 2).
    # Guided: signals (0, 1) >= 0 and (0, 2) >= 0 are never negative here, so the same (2, 2).
    # Deconvnet: at layer 2 the signal (1, 1) passes unmasked: (1, 1) @ W2 = (1, -1 + 2) = (1, 1);
    # both positive, pass: (1, 1) @ W1 = (1 + 1, -1 + 1) = (2, 0).
    w1 = np.array([[1.0, -1.0], [1.0, 1.0]])
    w2 = np.array([[1.0, -1.0], [0.0, 2.0]])
    net = Sequential([Dense(w1), ReLU(), Dense(w2), ReLU(), Dense([[1.0, 1.0]])])
    x = [[1.0, 2.0]]
    assert net(x)[0, 0] == 6.0
    np.testing.assert_array_equal(gradient(net, x).values, [[2.0, 2.0]])
    np.testing.assert_array_equal(guided_backprop(net, x).values, [[2.0, 2.0]])
    np.testing.assert_array_equal(deconvnet(net, x).values, [[2.0, 0.0]])
    np.testing.assert_array_equal(input_x_gradient(net, x).values, [[2.0, 4.0]])


def test_gradient_is_the_finite_difference_of_the_target(rng):
    net = random_cnn(rng, input_shape=(2, 6, 6), activation="tanh", n_outputs=3)
    x = rng.normal(size=(2, 2, 6, 6))
    target = np.array([2, 0])
    g = gradient(net, x, target=target).values
    d = rng.normal(size=x.shape)
    h = 1e-5
    fd = (net(x + h * d)[[0, 1], target] - net(x - h * d)[[0, 1], target]) / (2 * h)
    an = np.sum((g * d).reshape(2, -1), axis=1)
    np.testing.assert_allclose(an, fd, rtol=1e-8)


@pytest.mark.parametrize("name", GRADIENT_FAMILY)
@given(seed=st.integers(0, 2**32 - 1))
def test_batch_invariance_and_determinism(name, seed):
    method = METHODS[name]
    rng = np.random.default_rng(seed)
    net = random_network(rng, input_shape=(2, 5, 5), n_layers=3, n_outputs=2)
    x = rng.normal(size=(4, 2, 5, 5))
    target = np.array([0, 1, 1, 0])
    whole = method(net, x, target=target).values
    for n in range(4):
        alone = method(net, x[n:n + 1], target=int(target[n])).values
        np.testing.assert_allclose(alone[0], whole[n], rtol=1e-14, atol=1e-14 * np.max(np.abs(whole[n])))
    np.testing.assert_array_equal(method(net, x, target=target).values, whole)


@pytest.mark.parametrize("name", GRADIENT_FAMILY)
def test_result_type(name, rng):
    net = random_network(rng, input_shape=(1, 4, 4), n_layers=2, n_outputs=2)
    x = rng.normal(size=(2, 1, 4, 4)).astype(np.float32)   # converted to float64
    result = METHODS[name](net, x, target=1)
    assert result.values.dtype == np.float64 and result.values.shape == x.shape
    np.testing.assert_array_equal(np.asarray(result), result.values)
    assert result.method == name
    assert result.completeness_gap is None and result.error_estimate is None
