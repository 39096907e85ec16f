"""Divided differences S(a, h) = (f(a + h) - f(a)) / h of the element-wise layers against mpmath.

DeepLIFT's Rescale and RevealCancel multipliers are these secants (docs/conventions.md, section
'Rescale rule'): the bar is 1e-13 relative to a high-precision value, including |h| < 1e-12 (where
S tends to f'(a)), h == 0 exactly, |a| up to 700, and both signs. The reference is the definition
itself, (f(a + h) - f(a)) / h, or the closed-form derivative at h == 0, evaluated in mpmath with the
working precision raised until 50 significant digits are stable (the subtraction cancels up to
~600 digits for tanh near |a| = 700, which a fixed 50-digit evaluation would get wrong).

Ill-conditioned points. For swish (non-monotonic) S vanishes on the curve s(a) = s(a + h), which
lies where both a and a + h are negative (around the minimum at -1.2785 / beta). Near it,
relative accuracy is ill-conditioned: with κ = (|a ∂S/∂a| + |h ∂S/∂h|) / |S| the relative
condition number of S in its inputs, rounding at the level of eps in any evaluation moves S by
~eps κ relative. Those points (swish, a <= 0 and a + h <= 0, |S| under 1% of the larger of
σ(βa), σ(β(a + h)), and κ > 1e3) are held to 4 eps κ instead (the worst seen is 1.3 eps κ);
every other point, including tanh and sigmoid deep in saturation where κ reaches ~1400
but the implementation keeps the exponent exact, is held to 1e-13. Results below the smallest
normal float are compared with an absolute floor of that size (underflow to zero or to a
subnormal is the correct float64 answer).
"""

import mpmath as mp
import numpy as np
import pytest

from refattr import ReLU, Sigmoid, Swish, Tanh
from refattr.layers.activations import sigmoid_secant, swish_secant, tanh_secant

EPS = 2.0 ** -52
TINY = 2.2250738585072014e-308        # smallest normal float64
SWISH_MIN = 1.2784645427610738        # s'(x) = 0 at x = -1.27846... / beta (root of 1 + x (1 - σ(x)) = 0)

A_GRID = [0.0, 1e-300, -1e-300, 1e-15, -1e-15, 0.3, -0.3, 1.0, -1.0, 2.0, -2.5, 5.0, -5.0, 17.3, -20.0,
          40.0, -40.0, 300.0, -300.0, 354.0, -354.0, 354.5, 700.0, -700.0, 699.9]
H_GRID = [0.0, 1e-15, -1e-15, 1e-13, -1e-13, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 30.0, 700.0, -700.0,
          1400.0, -1400.0, -699.9]


def mp_sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def mp_function(name, beta):
    """(f, f') in mpmath."""
    if name == "tanh":
        return mp.tanh, lambda z: mp.sech(z) ** 2
    if name == "sigmoid":
        return mp_sigmoid, lambda z: mp_sigmoid(z) * (1 - mp_sigmoid(z))
    b = mp.mpf(beta)
    return (lambda z: z * mp_sigmoid(b * z),
            lambda z: mp_sigmoid(b * z) + b * z * mp_sigmoid(b * z) * (1 - mp_sigmoid(b * z)))


def _secant(f, df, a, h, dps):
    with mp.workdps(dps):
        a, h = mp.mpf(a), mp.mpf(h)
        return +df(a) if h == 0 else (f(a + h) - f(a)) / h


def reference(f, df, a, h):
    """S(a, h) to 50 significant digits: raise the precision until the value is stable."""
    dps = 60 + int((abs(a) + abs(h)) / 1.15) + (int(-np.log10(abs(h))) if h else 0)
    previous = _secant(f, df, a, h, dps)
    while True:
        dps *= 2
        value = _secant(f, df, a, h, dps)
        if value == previous or abs(value - previous) <= abs(value) * mp.mpf(10) ** -50:
            return value
        previous = value


def condition_number(f, df, a, h):
    """κ = (|a ∂S/∂a| + |h ∂S/∂h|) / |S|, with ∂S/∂a = (f'(b) - f'(a)) / h and
    ∂S/∂h = (f'(b) - S) / h (at h = 0: f''(a) and f''(a) / 2)."""
    with mp.workdps(120 + int((abs(a) + abs(h)) / 1.15) + (int(-np.log10(abs(h))) if h else 0)):
        a, h = mp.mpf(a), mp.mpf(h)
        if h == 0:
            s, ds_da = df(a), mp.diff(df, a)
            ds_dh = ds_da / 2
        else:
            s = (f(a + h) - f(a)) / h
            ds_da = (df(a + h) - df(a)) / h
            ds_dh = (df(a + h) - s) / h
        return mp.inf if s == 0 else (abs(a * ds_da) + abs(h * ds_dh)) / abs(s)


def grid(beta):
    points = [(a, h) for a in A_GRID for h in H_GRID]
    if beta is not None:
        # The minimum and a point (a, h*) on the curve s(a) = s(a + h*): ill-conditioned.
        x_min = -SWISH_MIN / beta
        points += [(x_min, h) for h in (0.0, 1e-15, -1e-15, 1e-13, 1e-8, 0.5, -0.5)]
        f = mp_function("swish", beta)[0]
        a = -2.5 / beta
        with mp.workdps(50):
            b_star = mp.findroot(lambda b: f(b) - f(mp.mpf(a)), -0.5 / beta)
        points += [(a, float(b_star - a)), (a, float(b_star - a) * (1 + 1e-9))]
    return points


CASES = [("tanh", None, Tanh().secant), ("sigmoid", None, Sigmoid().secant)]
CASES += [(f"swish-{beta}", beta, Swish(beta).secant) for beta in (1.0, 0.5, 1.702, 2.0)]


@pytest.mark.parametrize("name, beta, secant", CASES, ids=[c[0] for c in CASES])
def test_secant_matches_mpmath(name, beta, secant):
    f, df = mp_function(name.split("-")[0], beta)
    points = grid(beta)
    a = np.array([p[0] for p in points])
    h = np.array([p[1] for p in points])
    got = secant(a, h)                     # one vectorised call over the whole grid
    failures, ill_conditioned = [], []
    for i, (ai, hi) in enumerate(points):
        exact = reference(f, df, ai, hi)
        err = float(abs(mp.mpf(got[i]) - exact) / max(abs(exact), TINY))
        kappa = float(condition_number(f, df, ai, hi)) if beta is not None else 0.0
        near_zero = beta is not None and ai <= 0 and ai + hi <= 0 and \
            abs(exact) < 1e-2 * max(mp_sigmoid(beta * ai), mp_sigmoid(beta * (ai + hi)))
        if near_zero and kappa > 1e3:
            ill_conditioned.append((ai, hi, float(exact), kappa))
            if err > 4 * EPS * kappa:
                failures.append((ai, hi, float(got[i]), float(exact), err, f"kappa={kappa:.3g}"))
        elif err > 1e-13:
            failures.append((ai, hi, float(got[i]), float(exact), err))
    assert not failures, failures
    if beta is None:
        assert not ill_conditioned
    else:
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
