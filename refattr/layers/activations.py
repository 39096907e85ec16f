"""Element-wise activations: each is f and a stable divided difference of f.

Everything else (VJP, DeepLIFT Rescale and RevealCancel) is derived once in
:class:`~refattr.layers.base.ElementwiseLayer`. ``secant(a, h)`` is (f(a + h) - f(a)) / h without
cancellation, equal to f'(a) at h == 0; it is tested to 1e-13 relative against mpmath.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import GradientRule
from ..errors import NonFiniteError, RuleError
from ..kernels import elementwise as fused
from ..kernels import walk
from .base import GRADIENT_RULES, ElementwiseLayer
from .registry import register

__all__ = [
    "ReLU", "Tanh", "Sigmoid", "Swish", "tanh_secant", "sigmoid_secant", "swish_secant",
    "tanh", "sigmoid", "swish", "tanh_derivative", "sigmoid_derivative", "swish_derivative",
    "relu_forward_along", "relu_next_kink", "relu_snap_to_kink", "relu_backward_signal",
]

# The functions of this module are the NumPy definitions. The layers evaluate them through the
# fused kernels of refattr.kernels.elementwise, which compute the same operations in the same
# order (one compiled pass around NumPy's vectorised exp) and agree with them bit for bit.


# Divided differences -------------------------------------------------------------------------
#
# Inputs a and h are exact floats, but b = a + h and beta * a are rounded. Where a secant is
# exp(-2 m) times O(1) factors with m up to ~700, an absolute error of half an ulp in m (1e-14 at
# m = 350) becomes a relative error of the same size in the result, which would spend most of the
# 1e-13 budget. So every rounded sum and product is split into its float and its exact rounding
# error (TwoSum, TwoProduct), the exponent is kept an exact float, and the rounding error enters
# as a first-order factor (1 + delta), which is exact to O(delta^2) ~ 1e-26.

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


def tanh(x: ArrayLike) -> np.ndarray:
    """tanh(x): NumPy's ``np.tanh`` in float64, the definition (the fused twin calls the same
    loop, on chunks, on every thread)."""
    return np.tanh(np.asarray(x, dtype=np.float64))


def sigmoid(x: ArrayLike) -> np.ndarray:
    """σ(x) = 1 / (1 + exp(-x)) = exp(-|x|) / (1 + exp(-|x|)) for x < 0: no overflow for any
    finite x, and the subnormal values below x = -709 that scipy's expit flushes to zero kept."""
    with np.errstate(under="ignore"):
        return _sigmoid(np.asarray(x, dtype=np.float64))


def swish(x: ArrayLike, beta: float = 1.0) -> np.ndarray:
    """s(x) = x σ(βx)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):
        return x * _sigmoid(float(beta) * x)


def tanh_derivative(x: ArrayLike, g: ArrayLike | None = None) -> np.ndarray:
    """g * sech²(x) (g = 1 when omitted), with sech²(x) = 4 e / (1 + e)², e = exp(-2|x|): no
    cancellation, no overflow (-2|x| may round to -inf, where exp gives the right 0). The limit
    of :func:`tanh_secant` at h = 0."""
    with np.errstate(under="ignore", over="ignore"):
        e = np.exp(-2.0 * np.abs(np.asarray(x, dtype=np.float64)))
        return _times(4.0 * e / ((1.0 + e) * (1.0 + e)), g)


def sigmoid_derivative(x: ArrayLike, g: ArrayLike | None = None) -> np.ndarray:
    """g * σ'(x) (g = 1 when omitted), σ'(x) = σ(x) σ(-x) = e / (1 + e)² with e = exp(-|x|)."""
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(np.asarray(x, dtype=np.float64)))
        return _times(e / ((1.0 + e) * (1.0 + e)), g)


def swish_derivative(x: ArrayLike, beta: float = 1.0, g: ArrayLike | None = None) -> np.ndarray:
    """g * s'(x) (g = 1 when omitted), s'(x) = σ(u) (1 + u σ(-u)) with u = βx.

    For u >= 0 both terms are positive. For u < 0 the bracket cancels near the minimum
    u = -1.278, where s' crosses zero; the absolute error stays a few ulps of σ(u) (1 + |u| σ(-u)),
    the size of the terms, which is what any float64 evaluation at a rounded u can promise.
    """
    u = float(beta) * np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(u))
        sig_u = np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))          # σ(u)
        sig_neg = np.where(u >= 0, e / (1.0 + e), 1.0 / (1.0 + e))        # σ(-u)
        return _times(sig_u * (1.0 + u * sig_neg), g)


def _tanh_secant_parts(a, h, a_lo=0.0, h_lo=0.0):
    """(tanh(A + H) - tanh(A)) / H = exp(exponent) * factor, with A = a + a_lo, H = h + h_lo.

    ``a_lo`` and ``h_lo`` are corrections below an ulp of a and h (0 for exact inputs).
    ``exponent`` is an exact float (0, or -2 min(|a|, |b|) when a and b = a + h have the same
    sign), so exp(exponent) carries only exp's own rounding; the rounding error of b and the
    corrections enter ``factor`` to first order. See :func:`tanh_secant` for the formula.
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


def tanh_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(tanh(a + h) - tanh(a)) / h, with limit sech²(a) at h == 0.

    From tanh b - tanh a = sinh(b - a) / (cosh a cosh b), written with b = a + h as::

        E * 2 * ((1 - exp(-2|h|)) / |h|) / ((1 + exp(-2|a|)) (1 + exp(-2|b|)))

    where E = exp(|h| - |a| - |b|) is 1 when a and b have opposite signs and exp(-2 min(|a|, |b|))
    otherwise. Every factor is computed without cancellation (expm1 for the middle one) and
    without overflow for any finite a, h. The rounding of b = a + h is corrected to first order
    (TwoSum), so the result is the secant of the exact a + h, to a few ulps relative wherever it
    is a normal float (tested against mpmath for |a|, |a + h| up to 700 and |h| down to 1e-15).
    """
    a = np.asarray(a, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(under="ignore", over="ignore"):
        exponent, factor = _tanh_secant_parts(a, h)
        return np.exp(exponent) * factor


def sigmoid_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(σ(a + h) - σ(a)) / h; from σ(x) = (1 + tanh(x / 2)) / 2 it is tanh_secant(a/2, h/2) / 4.

    Halving is exact (above the subnormal range), so the accuracy is :func:`tanh_secant`'s.
    """
    return 0.25 * tanh_secant(np.asarray(a, dtype=np.float64) * 0.5, np.asarray(h, dtype=np.float64) * 0.5)


def swish_secant(a: np.ndarray, h: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """(s(a + h) - s(a)) / h for s(x) = x σ(βx), with limit s'(a) at h == 0.

    With lo = min(a, b), hi = max(a, b), b = a + h, and the identity
    s(hi) - s(lo) = (hi - lo) σ(β lo) + hi (σ(β hi) - σ(β lo))::

        secant = σ(β lo) + β hi · sigmoid_secant(β a, β h)

    Anchoring the product at hi (the endpoint nearer +inf) means both terms are >= 0 whenever
    hi >= 0, so there is no cancellation there. When both ends are negative the two terms have
    opposite signs and cancel near the curve s(a) = s(a + h) (e.g. around the minimum at
    x = -1.278 / β, where the secant is 0); that is the problem's own ill-conditioning (its
    relative condition number is large there), not the formula's. The products β a, β h and the
    sum a + h are carried with their exact rounding errors, and the second term's exponent is
    shifted by an exact 64 when it would underflow, so a result in the normal range keeps full
    relative precision even when sigmoid_secant(β a, β h) alone would be subnormal.
    """
    a = np.asarray(a, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    beta = float(beta)
    with np.errstate(under="ignore", over="ignore"):
        b, _ = _two_sum(a, h)
        beta_a, beta_a_lo = _two_product(a, beta)
        beta_h, beta_h_lo = _two_product(h, beta)
        # Halves of β a, β h, β b with their rounding errors: β b / 2 = half_a + half_h exactly,
        # carried as half_b + half_b_lo (TwoSum). sigmoid_secant(β a, β h) below works on the
        # same halves, so σ(β lo) = σ(2 half) needs no exponential of its own: exp(-|2 half|)
        # is the exp(-2|half|) of the secant's parts (a doubling is exact).
        half_a, half_h = 0.5 * beta_a, 0.5 * beta_h
        half_a_lo, half_h_lo = 0.5 * beta_a_lo, 0.5 * beta_h_lo
        half_b, half_b_lo = _two_sum(half_a, half_h)
        half_b_lo = half_b_lo + half_a_lo + half_h_lo
        a_is_lo = a <= b
        lo = 2.0 * np.where(a_is_lo, half_a, half_b)               # β min(a, b)
        lo_lo = 2.0 * np.where(a_is_lo, half_a_lo, half_b_lo)      # and its rounding error
        hi = np.where(a_is_lo, b, a)
        first = _sigmoid(lo) * (1.0 + _sigmoid(-lo) * lo_lo)
        # sigmoid_secant(βa, βh) = tanh_secant(βa / 2, βh / 2) / 4 = exp(exponent) * factor / 4.
        exponent, factor = _tanh_secant_parts(half_a, half_h, half_a_lo, half_h_lo)
        shift = np.where(exponent < -600.0, 64.0, 0.0)   # exponent + 64 is exact for |exponent| >= 600
        second = (0.25 * beta * hi * np.exp(-shift)) * np.exp(exponent + shift) * factor
        return first + second


def relu_backward_signal(g: np.ndarray, cache: np.ndarray, rule: GradientRule) -> np.ndarray:
    """The signal ReLU passes down under a gradient-family rule (docs/conventions.md, section
    'Gradient family').

    With z the forward input (``cache``: z itself, or the boolean pattern of the exact walk):
    g * 1(z > 0) (gradient), g * 1(g > 0) (deconvnet), g * 1(z > 0) * 1(g > 0) (guided
    backprop). A masked entry is g * 0.0 (so -0.0 where g < 0).
    """
    if rule == "gradient":
        return g * (cache > 0)
    if rule == "deconvnet":
        return g * (g > 0)
    if rule == "guided_backprop":
        return g * ((cache > 0) & (g > 0))
    raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")


# ReLU on straight-line paths (exact integrated gradients, docs/conventions.md) ------------------

def relu_forward_along(x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, dy, active) of ReLU on the path x + s dx just after s = 0.

    A unit is active just after s = 0 iff x > 0, or x == 0 and dx > 0. Exact comparisons, no
    tolerance. A unit with x == 0 and dx == 0 stays at 0 along the whole stretch and counts as
    inactive, as ReLU'(0) = 0 does at every point of it. ``active`` is the boolean activation
    pattern (``backward_signal`` masks with ``cache > 0``); dy = dx where active, else 0.
    """
    active = x > 0
    at_kink = np.flatnonzero(x == 0)                  # few: units snapped onto their kink
    if at_kink.size:
        active.flat[at_kink] = dx.reshape(-1)[at_kink] > 0
    return np.maximum(x, 0.0), np.where(active, dx, 0.0), active


def relu_next_kink(x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, events): a unit with x and dx of opposite signs (both non-zero) reaches 0 at
    s = -x / dx; ``distance`` (N,) is the nearest such s of each example (inf if none).

    ``events`` is the boolean mask of the units whose crossing lies at exactly the nearest
    distance of their example (several when they coincide bit for bit). Where x / dx
    underflows to 0 (|x| < 5e-324 |dx|) the kink is taken to lie at the smallest positive
    distance, 5e-324, so that it is still reached (and snapped) before the path moves on.
    """
    n = x.shape[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        ratio = x / dx                                # negative exactly where x heads for 0
    zeros = np.flatnonzero(ratio == 0)               # x == 0 (no kink), or an underflow
    if zeros.size:
        z, dz = x.reshape(-1)[zeros], dx.reshape(-1)[zeros]
        under = zeros[((z > 0) & (dz < 0)) | ((z < 0) & (dz > 0))]
        ratio.flat[under] = -np.finfo(np.float64).smallest_subnormal
    ratio = np.where(ratio < 0, ratio, -np.inf)      # -inf: no kink ahead (nan: x == dx == 0)
    nearest = ratio.reshape(n, -1).max(axis=1)
    ahead = nearest > -np.inf
    events = (ratio == nearest.reshape((n,) + (1,) * (x.ndim - 1))) & ahead.reshape((n,) + (1,) * (x.ndim - 1))
    return -nearest, events


def relu_snap_to_kink(x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Set the inputs of the units that reached their kink (``events``, in the examples where
    ``rows`` is True) to exactly 0; modifies and returns x."""
    x[events & rows.reshape((-1,) + (1,) * (x.ndim - 1))] = 0.0
    return x


@register
class ReLU(ElementwiseLayer):
    """max(x, 0), with ReLU'(0) = 0 (as PyTorch and JAX).

    The divided difference is exact: 1 when both ends are positive, 0 when both are <= 0, and
    (max(a + h, 0) - max(a, 0)) / h across the kink. For DeepLIFT's Rescale rule the multiplier
    is taken straight from the two forward passes, Δy / Δx (see
    :meth:`deeplift_rescale_multiplier`), which is exact for a piecewise-linear f.

    The gradient family differs only here (docs/conventions.md, section 'Gradient family';
    Springenberg et al. 2015, eq. for guided backpropagation; Zeiler & Fergus 2014): with z the
    forward input and g the signal at the output, the signal passed down is g * 1(z > 0)
    (gradient), g * 1(g > 0) (deconvnet) or g * 1(z > 0) * 1(g > 0) (guided backprop).
    """

    piecewise_linear = True       # one kink, at 0
    torch_modules = ("ReLU",)
    onnx_ops = ("Relu",)
    captum = "nonlinear"

    def function(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        return max(z, 0 * z)

    def output_bound(self, bound: float) -> float:
        return bound                      # |max(x, 0)| <= |x|

    def piece(self, x: np.ndarray) -> np.ndarray:
        return x > 0                      # the open piece; x == 0 is on the closed one (ReLU'(0) = 0)

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
        b = a + h
        a_pos, b_pos = a > 0, b > 0
        out = np.array(a_pos & b_pos, dtype=np.float64, order="C")   # 1 on both sides > 0, else 0
        # Across the kink (a crossing implies h != 0), (relu(b) - relu(a)) / h, on those elements
        # only: they are usually few, and gathering them is cheaper than arithmetic on all.
        crossing = np.flatnonzero(a_pos != b_pos)
        if crossing.size:
            a_c, b_c, h_c = a.ravel()[crossing], b.ravel()[crossing], h.ravel()[crossing]
            out.ravel()[crossing] = (np.maximum(b_c, 0.0) - np.maximum(a_c, 0.0)) / h_c
        return out

    def deeplift_rescale_multiplier(self, x_ref: np.ndarray, delta: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Δy / Δx from the forward passes, exact for relu: where both ends are > 0, y - y' and
        x - x' are the same float operation on the same operands, so the ratio is exactly 1;
        where both are <= 0 it is 0; across the kink it is the divided difference of the two
        forward values; where Δx == 0 it is the limit relu'(x') = 1(x' > 0)."""
        zero = delta == 0
        return dy / (delta + zero) + (zero & (x_ref > 0))

    def backward_signal(self, g: np.ndarray, cache: np.ndarray, rule: GradientRule) -> np.ndarray:
        """See :func:`relu_backward_signal` (evaluated by its fused twin)."""
        if rule not in GRADIENT_RULES:
            raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")
        return fused.relu_backward_signal(g, cache, rule)

    # straight-line paths (exact integrated gradients) ----------------------------------------
    # The definitions are the module functions relu_forward_along, relu_next_kink and
    # relu_snap_to_kink below; the walk runs their fused twins (refattr.kernels.walk).
    def forward_along(self, x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :func:`relu_forward_along`; the cache is the boolean activation pattern."""
        return walk.relu_forward_along(x, dx)

    def next_kink(self, x: np.ndarray, dx: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`relu_next_kink`."""
        return walk.relu_next_kink(x, dx)

    def snap_to_kink(self, x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """See :func:`relu_snap_to_kink`."""
        if x.dtype == np.float64 and x.flags.c_contiguous:
            return walk.relu_snap_to_kink(x, events, rows)
        return relu_snap_to_kink(x, events, rows)


@register
class Tanh(ElementwiseLayer):
    """tanh(x); its divided difference is :func:`tanh_secant`, its derivative :func:`tanh_derivative`."""

    torch_modules = ("Tanh",)
    onnx_ops = ("Tanh",)
    captum = "nonlinear"

    def function(self, x: np.ndarray) -> np.ndarray:
        return fused.tanh(x)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        import mpmath

        return mpmath.tanh(z)

    def output_bound(self, bound: float) -> float:
        return min(bound, 1.0)            # |tanh x| <= min(|x|, 1)

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return fused.tanh_secant(a, h)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        return fused.tanh_derivative(x, g)


@register
class Sigmoid(ElementwiseLayer):
    """σ(x) (:func:`sigmoid`); its divided difference is :func:`sigmoid_secant`, its derivative
    :func:`sigmoid_derivative`."""

    torch_modules = ("Sigmoid",)
    onnx_ops = ("Sigmoid",)
    captum = "nonlinear"

    def function(self, x: np.ndarray) -> np.ndarray:
        return fused.sigmoid(x)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        import mpmath

        return 1 / (1 + mpmath.exp(-z))

    def output_bound(self, bound: float) -> float:
        return 1.0                        # 0 < σ(x) < 1

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return fused.sigmoid_secant(a, h)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        return fused.sigmoid_derivative(x, g)


@register
class Swish(ElementwiseLayer):
    """x * σ(beta * x) (SiLU when beta == 1, the default; Ramachandran et al. 2017).

    Non-monotonic: it falls to its minimum near x = -1.278 (for beta = 1) before rising. Its divided
    difference is :func:`swish_secant`, its derivative :func:`swish_derivative`.
    """

    torch_modules = ("SiLU",)
    torch_arguments = {"beta": None}    # nn.SiLU is beta = 1: exports only then
    onnx_ops = ("Swish",)
    onnx_attributes = {"alpha": "beta"}
    captum = "gradient"    # not in Captum's list of non-linearities

    def __init__(self, beta: float = 1.0) -> None:
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not np.isfinite(beta):
            raise NonFiniteError(f"Swish beta: expected a finite real number, got {beta!r}")
        self.beta = float(beta)

    def function(self, x: np.ndarray) -> np.ndarray:
        return fused.swish(x, self.beta)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        import mpmath

        return z / (1 + mpmath.exp(-mpmath.mpf(self.beta) * z))

    def output_bound(self, bound: float) -> float:
        return bound                      # |x σ(beta x)| <= |x|, since 0 < σ < 1

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return fused.swish_secant(a, h, self.beta)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        return fused.swish_derivative(x, self.beta, g)

    def __repr__(self) -> str:
        return f"Swish(beta={self.beta})"
