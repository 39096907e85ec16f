"""What several activations' definitions share: error-free sums and products, a stable σ, and
the exponent / factor split of tanh's divided difference (used by tanh, sigmoid and swish).

Inputs a and h are exact floats, but b = a + h and beta * a are rounded. Where a secant is
exp(-2 m) times O(1) factors with m up to ~700, an absolute error of half an ulp in m (1e-14 at
m = 350) becomes a relative error of the same size in the result, which would spend most of the
1e-13 budget. So every rounded sum and product is split into its float and its exact rounding
error (TwoSum, TwoProduct), the exponent is kept an exact float, and the rounding error enters
as a first-order factor (1 + delta), which is exact to O(delta^2) ~ 1e-26.
"""

from __future__ import annotations

import numpy as np


def _two_sum(a, b):
    """s = fl(a + b) and its rounding error e: s + e == a + b exactly (Knuth's TwoSum).

    If a + b overflows, e is returned as 0 (s is then +-inf and no correction applies).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bb = s - a
        e = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(s), e, 0.0)


_VELTKAMP = 134217729.0  # 2**27 + 1 splits a float64 into two 26-bit halves


def _two_product(a, b):
    """p = fl(a * b) and its rounding error e: p + e == a * b exactly (Dekker's TwoProduct).

    Exact for |a|, |b| < 1e150 and |a b| > 1e-250; elsewhere e is returned as 0, where the
    correction is far below any result that uses it (exp(p) has already saturated, or p ~ 0).
    """
    p = a * b
    ok = (np.abs(a) < 1e150) & (np.abs(b) < 1e150) & (np.abs(p) > 1e-250)
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    ca, cb = _VELTKAMP * a, _VELTKAMP * b
    a_hi = ca - (ca - a)
    b_hi = cb - (cb - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    e = (((a_hi * b_hi - a * b) + a_hi * b_lo) + a_lo * b_hi) + a_lo * b_lo
    return p, np.where(ok, e, 0.0)


def _sigmoid(x):
    """σ(x) for any finite x, keeping subnormal results (scipy's expit flushes x < -709 to 0)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _times(d, g):
    return d if g is None else np.asarray(g, dtype=np.float64) * d


def _tanh_secant_parts(a, h, a_lo=0.0, h_lo=0.0):
    """(tanh(A + H) - tanh(A)) / H = exp(exponent) * factor, with A = a + a_lo, H = h + h_lo.

    ``a_lo`` and ``h_lo`` are corrections below an ulp of a and h (0 for exact inputs).
    ``exponent`` is an exact float (0, or -2 min(|a|, |b|) when a and b = a + h have the same
    sign), so exp(exponent) carries only exp's own rounding; the rounding error of b and the
    corrections enter ``factor`` to first order. See :func:`~refattr.layers.tanh.tanh_secant` for the formula.
    """
    b, b_lo = _two_sum(a, h)
    b_lo = b_lo + a_lo + h_lo
    abs_a, abs_b, abs_h = np.abs(a), np.abs(b), np.abs(h)
    same_sign = np.sign(a) * np.sign(b) > 0
    # Exact |B| - |b| (or |A| - |a|) for the endpoint that sets the exponent.
    m_lo = np.where(abs_a <= abs_b, np.sign(a) * a_lo, np.sign(b) * b_lo)
    exponent = np.where(same_sign, -2.0 * np.minimum(abs_a, abs_b), 0.0)
    correction = np.where(same_sign, 1.0 - 2.0 * m_lo, 1.0)
    safe_h = np.where(abs_h > 0, abs_h, 1.0)
    ratio = np.where(abs_h > 0, -np.expm1(-2.0 * abs_h) / safe_h, 2.0)
    factor = 2.0 * correction * ratio / ((1.0 + np.exp(-2.0 * abs_a)) * (1.0 + np.exp(-2.0 * abs_b)))
    return exponent, factor
