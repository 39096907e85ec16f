"""Behaviour exactly at kinks and ties, against the documented conventions (docs/conventions.md,
section 'Kinks and ties')."""

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


def test_derivatives_against_mpmath():
    # The closed-form derivatives used by every backward pass, against 40-digit values. The bound
    # is eight ulps of the size of the terms summed: for tanh and sigmoid that is |f'| itself (one
    # positive term); for swish, σ(u) (1 + |u| σ(-u)) plus the condition term |x f''(x)| of the
    # rounded u = βx, which dominates only near the root of s' at u = -1.278.
    import mpmath

    mpmath.mp.dps = 40
    eps = np.finfo(float).eps
    grid = np.concatenate([np.linspace(-40, 40, 161), [-700.0, -1.2784645427610738, 1e-300, 700.0]])
    sig = lambda v: 1 / (1 + mpmath.exp(-v))
    swish_prime = lambda beta: (lambda v: sig(beta * v) * (1 + beta * v * sig(-beta * v)))
    cases = [(Tanh(), lambda v: mpmath.sech(v) ** 2), (Sigmoid(), lambda v: sig(v) * sig(-v)),
             (Swish(), swish_prime(mpmath.mpf(1))), (Swish(beta=1.702), swish_prime(mpmath.mpf(1.702)))]
    for layer, exact in cases:
        got = layer.derivative(grid)
        for xi, gi in zip(grid, got):
            v = mpmath.mpf(float(xi))
            d1 = exact(v)
            scale = abs(d1)
            if isinstance(layer, Swish):
                u = layer.beta * v
                scale = sig(u) * (1 + abs(u) * sig(-u)) + abs(v * mpmath.diff(exact, v))
            assert abs(gi - float(d1)) <= 8 * eps * float(scale) + 1e-320, (layer, xi, gi, float(d1))
        # and the same limit as the divided difference at h = 0
        np.testing.assert_allclose(got, layer.secant(grid, np.zeros_like(grid)), rtol=1e-13,
                                   atol=8 * eps * np.max(np.abs(got)) if isinstance(layer, Swish) else 0)
