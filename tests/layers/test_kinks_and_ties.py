"""Behaviour exactly at kinks and ties, against the documented conventions (SPEC section 1)."""

import numpy as np

from refattr import MaxPool2D, ReLU, Sigmoid, Swish, Tanh


def test_relu_derivative_at_zero_is_zero():
    relu = ReLU()
    x = np.array([[-1.0, 0.0, -0.0, 2.0]])
    _, cache = relu.forward(x)
    np.testing.assert_array_equal(relu.vjp(np.ones_like(x), cache), [[0.0, 0.0, 0.0, 1.0]])
    # The divided difference at h = 0 is the same convention.
    np.testing.assert_array_equal(relu.secant(x, np.zeros_like(x)), [[0.0, 0.0, 0.0, 1.0]])


def test_maxpool_tie_goes_to_first_cell_in_row_major_order():
    pool = MaxPool2D(2)
    # The window [[1, 3], [3, 3]] has three maxima; the first in row-major order is (0, 1).
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    y, cache = pool.forward(x)
    assert y[0, 0, 0, 0] == 3.0
    grad = pool.vjp(np.ones_like(y), cache)
    np.testing.assert_array_equal(grad, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_maxpool_padding_never_wins():
    # Padding 1 on every side, all inputs negative: padded cells are -inf, not 0.
    pool = MaxPool2D(2, stride=2, padding=1)
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)     # [[-1, -2], [-3, -4]]
    y, _ = pool.forward(x)
    # Each 2x2 window of the padded 4x4 plane holds exactly one input cell.
    np.testing.assert_array_equal(y, x)


def test_saturating_activations_have_no_overflow_and_the_right_limits():
    x = np.array([[-1000.0, -700.0, 0.0, 700.0, 1000.0]])
    for layer in (Tanh(), Sigmoid(), Swish()):
        with np.errstate(all="raise", under="ignore"):
            y, cache = layer.forward(x)
            g = layer.vjp(np.ones_like(x), cache)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    np.testing.assert_array_equal(Sigmoid().forward(x)[0][0, [0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(Tanh().forward(x)[0][0, [0, 2, 4]], [-1.0, 0.0, 1.0])
    # sigmoid'(0) = 1/4, tanh'(0) = 1, swish'(0) = sigmoid(0) = 1/2: exact in binary.
    assert Sigmoid().derivative(np.array(0.0)) == 0.25
    assert Tanh().derivative(np.array(0.0)) == 1.0
    assert Swish().derivative(np.array(0.0)) == 0.5


def test_activation_values_against_mpmath():
    # Forward values to a few ulps over the whole normal range, including sigmoid(-700) = e^-700
    # (about 1e-304), which 1/(1 + exp(700)) would overflow on and tanh-based formulas lose.
    import mpmath

    mpmath.mp.dps = 40
    grid = np.array([-700.0, -300.0, -30.0, -1.5, -1e-8, 0.0, 1e-8, 0.7, 30.0, 700.0])
    cases = {
        Tanh(): lambda v: mpmath.tanh(v),
        Sigmoid(): lambda v: 1 / (1 + mpmath.exp(-v)),
        Swish(): lambda v: v / (1 + mpmath.exp(-v)),
        Swish(beta=1.702): lambda v: v / (1 + mpmath.exp(-mpmath.mpf(1.702) * v)),
    }
    for layer, exact in cases.items():
        expected = np.array([float(exact(mpmath.mpf(float(v)))) for v in grid])
        # Eight ulps; where beta != 1 the product beta * x is rounded before the exponential, so
        # the bound is multiplied by the condition number of that step, about |beta x|.
        beta = getattr(layer, "beta", 1.0)
        condition = np.maximum(1.0, np.abs(beta * grid)) if beta != 1.0 else 1.0
        error = np.abs(layer.function(grid) - expected)
        assert np.all(error <= 8 * np.finfo(float).eps * condition * np.abs(expected)), (layer, error)
