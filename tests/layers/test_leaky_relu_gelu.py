"""Conventions of LeakyReLU and GELU pinned by hand (slopes at the kink, the side a path takes,
exact IG, values), and GELU's tanh form against mpmath (the contract suite draws one GELU form per
seed). Expected values: the arithmetic in the comments, math.erfc / math.tanh, and mpmath at 600
digits."""
import math

import numpy as np
import pytest

from refattr import Dense, Sequential, integrated_gradients
from refattr.layers.gelu import GELU
from refattr.layers.leaky_relu import LeakyReLU


def test_leaky_relu_slope_at_the_kink_is_the_negative_slope_as_torch():
    layer = LeakyReLU(0.1)
    x = np.array([[0.0, -0.0, 2.0, -3.0]])
    _, cache = layer.forward(x)
    # f'(0) = f'(-0) = 0.1 (torch's grad of leaky_relu at 0.0 and -0.0), 1 at 2, 0.1 at -3
    np.testing.assert_array_equal(layer.vjp(np.ones_like(x), cache), [[0.1, 0.1, 1.0, 0.1]])
    np.testing.assert_array_equal(layer.secant(np.zeros(2), np.zeros(2)), [0.1, 0.1])
    # across the kink: (f(2) - f(-1)) / 3 = (2 + 0.1) / 3 = 0.7
    assert layer.secant(np.array([-1.0]), np.array([3.0]))[0] == pytest.approx(0.7, rel=1e-15)


def test_leaky_relu_on_a_path_takes_the_piece_it_moves_into():
    layer = LeakyReLU(0.25)
    x, dx = np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, -1.0, 0.0]])
    y, dy, cache = layer.forward_along(x, dx)
    np.testing.assert_array_equal(dy, [[1.0, -0.25, 0.0]])          # up: identity; down and still: 0.25
    np.testing.assert_array_equal(layer.backward_signal(np.ones((1, 3)), cache, "gradient"), [[1.0, 0.25, 0.25]])


def test_exact_integrated_gradients_of_leaky_relu_by_hand():
    # f(x) = LeakyReLU_0.5(x - 1) from 0 to 3: slope 0.5 on [0, 1/3], 1 on [1/3, 1] of the path,
    # so IG = 3 * (0.5 * 1/3 + 1 * 2/3) = 2.5 = f(3) - f(0) = 2 - (-0.5)
    net = Sequential([Dense([[1.0]], [-1.0]), LeakyReLU(0.5)])
    result = integrated_gradients(net, np.array([[3.0]]), np.array([0.0]), target=0)
    assert result.options["rule"] == "exact"
    assert result.values[0, 0] == pytest.approx(2.5, rel=1e-15)


def test_gelu_values_by_hand():
    phi1 = 0.5 * math.erfc(-1 / math.sqrt(2))                        # Φ(1)
    layer = GELU()
    np.testing.assert_allclose(layer.function(np.array([1.0, -1.0])), [phi1, -(1 - phi1)], rtol=1e-15)
    # f'(1) = Φ(1) + φ(1), f'(-1) = Φ(-1) - φ(-1)
    dens = math.exp(-0.5) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(layer.derivative(np.array([1.0, -1.0])), [phi1 + dens, 1 - phi1 - dens], rtol=1e-14)
    # tanh form at 1: 0.5 (1 + tanh(sqrt(2/pi) * 1.044715))
    t = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))
    assert GELU("tanh").function(np.array([1.0]))[0] == pytest.approx(t, rel=1e-15)


@pytest.mark.parametrize("a", [-20.0, -5.0, -2.0, 0.3, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("h", [0.0, 1e-13, 1e-4, 0.5, 3.0])
def test_gelu_tanh_form_divided_difference_against_mpmath(a, h):
    mpmath = pytest.importorskip("mpmath")
    layer = GELU("tanh")
    # 1 + tanh(u) cancels to ~1e-242 at a = -20: 600 digits keep 350 after the cancellation
    with mpmath.workdps(600):
        A, H = mpmath.mpf(a), mpmath.mpf(h)
        if h == 0:
            expected = mpmath.diff(layer.mp_function, A)
        else:
            expected = (layer.mp_function(A + H) - layer.mp_function(A)) / H
        expected = float(expected)
    got = layer.secant(np.array([a]), np.array([h]))[0]
    # away from the secant's zero (near a = -0.75) the bar is 1e-13 relative, also at a = -20 where
    # the value is ~1e-242 (still a normal float)
    assert got == pytest.approx(expected, rel=1e-13, abs=1e-300)
