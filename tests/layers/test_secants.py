"""Divided differences S(a, h) = (f(a + h) - f(a)) / h: the layer-specific cases beyond the
contract suite (tests/layers/test_layer_contract.py holds every registered element-wise layer's
``secant`` to 1e-13 of its mpmath ``mp_function`` over a grid with |a| up to 700, |h| < 1e-12 and
h == 0).

Here: swish for several beta, with points placed on and near the curve where S vanishes; ReLU's
exactness; exact derivatives at 0; no floating-point errors at extremes. The reference is
tests/data/mp_secant.py (the definition in mpmath, precision raised until 50 digits are stable).

Ill-conditioned points. For swish (non-monotonic) S vanishes on the curve s(a) = s(a + h), which
lies where both a and a + h are negative (around the minimum at -1.2785 / beta). Near it,
relative accuracy is ill-conditioned: with κ = (|a ∂S/∂a| + |h ∂S/∂h|) / |S| the relative
condition number of S in its inputs, rounding at the level of eps in any evaluation moves S by
~eps κ relative. Those points (swish, a <= 0 and a + h <= 0, |S| under 1% of the larger of
σ(βa), σ(β(a + h)), and κ > 1e3) are held to 4 eps κ instead (the worst seen is 1.3 eps κ);
every other point is held to 1e-13. Results below the smallest normal float are compared with
an absolute floor of that size (underflow to zero or to a subnormal is the correct float64 answer).
"""

import importlib.util
import pathlib

import mpmath as mp
import numpy as np
import pytest

from refattr import ReLU, Sigmoid, Swish, Tanh
from refattr.layers.activations import sigmoid_secant, swish_secant, tanh_secant

_spec = importlib.util.spec_from_file_location(
    "mp_secant", pathlib.Path(__file__).resolve().parents[1] / "data" / "mp_secant.py")
mp_secant = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mp_secant)

EPS = 2.0 ** -52
TINY = 2.2250738585072014e-308        # smallest normal float64
SWISH_MIN = 1.2784645427610738        # s'(x) = 0 at x = -1.27846... / beta (root of 1 + x (1 - σ(x)) = 0)

A_GRID = [0.0, 1e-300, -1e-300, 1e-15, -1e-15, 0.3, -0.3, 1.0, -1.0, 2.0, -2.5, 5.0, -5.0, 17.3, -20.0,
          40.0, -40.0, 300.0, -300.0, 354.0, -354.0, 354.5, 700.0, -700.0, 699.9]
H_GRID = [0.0, 1e-15, -1e-15, 1e-13, -1e-13, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 30.0, 700.0, -700.0,
          1400.0, -1400.0, -699.9]


def mp_sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def grid(beta):
    """The contract's grid, the minimum, and a point (a, h*) on the curve s(a) = s(a + h*)."""
    points = [(a, h) for a in A_GRID for h in H_GRID]
    x_min = -SWISH_MIN / beta
    points += [(x_min, h) for h in (0.0, 1e-15, -1e-15, 1e-13, 1e-8, 0.5, -0.5)]
    f = Swish(beta).mp_function
    a = -2.5 / beta
    with mp.workdps(50):
        b_star = mp.findroot(lambda b: f(b) - f(mp.mpf(a)), -0.5 / beta)
    points += [(a, float(b_star - a)), (a, float(b_star - a) * (1 + 1e-9))]
    return points


@pytest.mark.parametrize("beta", [1.0, 0.5, 1.702, 2.0])
def test_swish_secant_matches_mpmath_for_several_beta(beta):
    layer = Swish(beta)
    f = layer.mp_function
    points = grid(beta)
    a = np.array([p[0] for p in points])
    h = np.array([p[1] for p in points])
    got = layer.secant(a, h)               # one vectorised call over the whole grid
    failures, ill_conditioned = [], []
    for i, (ai, hi) in enumerate(points):
        (exact,) = mp_secant.reference(f, ai, hi)      # smooth: one value, also at h == 0
        err = float(abs(mp.mpf(got[i]) - exact) / max(abs(exact), TINY))
        near_zero = ai <= 0 and ai + hi <= 0 and \
            abs(exact) < 1e-2 * max(mp_sigmoid(beta * ai), mp_sigmoid(beta * (ai + hi)))
        kappa = float(mp_secant.condition_number(f, ai, hi)) if near_zero else 0.0
        if near_zero and kappa > 1e3:
            ill_conditioned.append((ai, hi, float(exact), kappa))
            if err > 4 * EPS * kappa:
                failures.append((ai, hi, float(got[i]), float(exact), err, f"kappa={kappa:.3g}"))
        elif err > 1e-13:
            failures.append((ai, hi, float(got[i]), float(exact), err))
    assert not failures, failures
    # Only the points placed near the zero curve (and a + h = 0 from -700, where S is
    # σ(-700) ~ 1e-304 against terms of size 1/2) are classed ill-conditioned.
    assert 0 < len(ill_conditioned) <= 12, ill_conditioned


def test_module_functions_are_the_layer_secants():
    a = np.array([-3.0, 0.0, 2.0])
    h = np.array([1.5, 0.0, -1e-14])
    np.testing.assert_array_equal(Tanh().secant(a, h), tanh_secant(a, h))
    np.testing.assert_array_equal(Sigmoid().secant(a, h), sigmoid_secant(a, h))
    np.testing.assert_array_equal(Swish(0.7).secant(a, h), swish_secant(a, h, 0.7))


def test_relu_secant_is_exact():
    """ReLU's divided difference is a ratio of exact quantities: 1 when both ends are > 0, 0
    when both are <= 0 (and at h == 0 the convention relu'(0) = 0), (relu(a + h) - relu(a)) / h
    across the kink: e.g. a = -1, h = 3: (2 - 0) / 3; a = 2, h = -5: (0 - 2) / -5 = 0.4."""
    relu = ReLU()
    a = np.array([-1.0, 2.0, 3.0, -3.0, 0.0, 0.0, 1e-300, -1e-300, 0.5, 0.0])
    h = np.array([3.0, -5.0, 1e-15, -1e-15, 0.0, 1e-300, -2e-300, -0.5, 0.0, -1.0])
    expected = [2.0 / 3.0, 0.4, 1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0]
    np.testing.assert_array_equal(relu.secant(a, h), expected)
    a, h = np.meshgrid(np.array(A_GRID), np.array(H_GRID))
    got = relu.secant(a, h)
    for ai, hi, gi in zip(a.ravel(), h.ravel(), got.ravel()):
        with mp.workdps(700):          # a + h exactly, for |a| <= 700 and |h| >= 1e-15
            if hi == 0:
                exact = mp.mpf(1 if ai > 0 else 0)
            else:
                exact = (max(mp.mpf(ai) + mp.mpf(hi), 0) - max(mp.mpf(ai), 0)) / mp.mpf(hi)
        assert abs(mp.mpf(gi) - exact) <= 2 * EPS * abs(exact), (ai, hi, gi, exact)


def test_derivatives_at_zero_are_exact():
    # tanh'(0) = 1, σ'(0) = 1/4, swish'(0) = σ(0) = 1/2, relu'(0) = 0: exact in binary.
    zero = np.zeros(1)
    assert Tanh().secant(zero, zero)[0] == 1.0
    assert Sigmoid().secant(zero, zero)[0] == 0.25
    assert Swish(1.7).secant(zero, zero)[0] == 0.5
    assert ReLU().secant(zero, zero)[0] == 0.0


def test_no_floating_point_errors_at_extremes():
    # The conftest turns overflow / invalid into errors; saturation must be handled, not hit.
    a = np.array([-1e5, 1e5, -745.0, 745.0, 0.0, 1e-320])
    h = np.array([2e5, -2e5, 1e-16, -1e-16, 1e5, -2e-320])
    for secant in (Tanh().secant, Sigmoid().secant, Swish().secant, Swish(3.0).secant, ReLU().secant):
        out = secant(a, h)
        assert np.all(np.isfinite(out))
