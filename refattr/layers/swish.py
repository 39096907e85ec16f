"""Swish (SiLU), x σ(βx): the function, its derivative and a stable divided difference
(:func:`swish_secant`)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import NonFiniteError
from ..kernels import elementwise as fused
from ._secants import _sigmoid, _tanh_secant_parts, _times, _two_product, _two_sum
from .base import ElementwiseLayer
from .registry import register

__all__ = ["Swish", "swish", "swish_derivative", "swish_secant"]

# The functions of this module are the NumPy definitions. The layer evaluates them through the
# fused kernels of refattr.kernels.elementwise, which compute the same operations in the same
# order (one compiled pass around NumPy's vectorised exp) and agree with them bit for bit.


def swish(x: ArrayLike, beta: float = 1.0) -> np.ndarray:
    """s(x) = x σ(βx)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):
        return x * _sigmoid(float(beta) * x)


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
