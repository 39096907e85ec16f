"""High-precision divided differences S(a, h) = (f(a + h) - f(a)) / h of an element-wise f given
in mpmath (a layer's ``mp_function``), the reference for the divided-difference tests.

``reference`` evaluates the definition itself with the working precision raised until 50
significant digits are stable: the subtraction cancels up to ~600 digits for tanh near |a| = 700,
which a fixed 50-digit evaluation would get wrong. At h == 0 it returns the one-sided limits
S(a, +η) and S(a, -η) with η = 1e-60 (their O(η f''/f') error is far below 50 digits for the
functions here); they agree unless a is a kink, where either one is a legitimate convention.

``condition_number`` is κ = (|a ∂S/∂a| + |h ∂S/∂h|) / |S|, the relative condition number of S in
its inputs, with ∂S/∂a = (f'(b) - f'(a)) / h and ∂S/∂h = (f'(b) - S) / h (at h = 0: f''(a) and
f''(a) / 2), the derivatives by mpmath's numerical differentiation at the same precision.

Loaded by the tests with importlib (tests/ is not a package); run alone it prints a few values:
``python tests/data/mp_secant.py``.
"""

import math

import mpmath as mp

ETA = mp.mpf(10) ** -60
STABLE = mp.mpf(10) ** -50


def _dps(a, h):
    """A starting precision: the cancellation of f(a + h) - f(a) (saturation of e^-2|x|, with
    |x| <= |a| + |h|, costs ~0.87 digits per unit) plus the digits of a small |h|."""
    small = int(-math.log10(abs(h))) if 0 < abs(h) < 1 else 0
    return 60 + int((abs(a) + abs(h)) / 1.15) + max(small, 60)


def _secant(f, a, h, dps):
    with mp.workdps(dps):
        a, h = mp.mpf(a), mp.mpf(h)
        return (f(a + h) - f(a)) / h


def _stable(f, a, h):
    dps = _dps(a, h)
    previous = _secant(f, a, h, dps)
    while True:
        dps *= 2
        value = _secant(f, a, h, dps)
        if value == previous or abs(value - previous) <= abs(value) * STABLE:
            return value
        previous = value


def reference(f, a, h):
    """The values S(a, h) may take, to 50 significant digits: one, or at h == 0 the one-sided
    derivatives (two where a is a kink)."""
    if h != 0:
        return [_stable(f, a, h)]
    right, left = _stable(f, a, ETA), _stable(f, a, -ETA)
    if abs(right - left) <= max(abs(right), abs(left)) * mp.mpf(10) ** -40:
        return [right]
    return [right, left]


def condition_number(f, a, h):
    """κ of S at (a, h) (module docstring); inf where S == 0."""
    with mp.workdps(2 * _dps(a, h) + 60):
        df = lambda z: mp.diff(f, z)
        a, h = mp.mpf(a), mp.mpf(h)
        if h == 0:
            s, ds_da = df(a), mp.diff(f, a, 2)
            ds_dh = ds_da / 2
        else:
            s = (f(a + h) - f(a)) / h
            ds_da = (df(a + h) - df(a)) / h
            ds_dh = (df(a + h) - s) / h
        return mp.inf if s == 0 else (abs(a * ds_da) + abs(h * ds_dh)) / abs(s)


if __name__ == "__main__":
    for a, h in [(700.0, 1e-13), (0.0, 0.0), (-3.0, 1.5)]:
        print(a, h, [mp.nstr(v, 20) for v in reference(mp.tanh, a, h)],
              mp.nstr(condition_number(mp.tanh, a, h), 5))
