"""tanh: the function, its derivative and a stable divided difference (:func:`tanh_secant`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..kernels import elementwise as fused
from ._secants import _tanh_secant_parts, _times
from .base import ElementwiseLayer
from .registry import register

__all__ = ["Tanh", "tanh", "tanh_derivative", "tanh_secant"]

# The functions of this module are the NumPy definitions. The layer evaluates them through the
# fused kernels of refattr.kernels.elementwise, which compute the same operations in the same
# order (one compiled pass around NumPy's vectorised exp) and agree with them bit for bit.


def tanh(x: ArrayLike) -> np.ndarray:
    """tanh(x): NumPy's ``np.tanh`` in float64, the definition (the fused twin calls the same
    loop, on chunks, on every thread)."""
    return np.tanh(np.asarray(x, dtype=np.float64))


def tanh_derivative(x: ArrayLike, g: ArrayLike | None = None) -> np.ndarray:
    """g * sech²(x) (g = 1 when omitted), with sech²(x) = 4 e / (1 + e)², e = exp(-2|x|): no
    cancellation, no overflow (-2|x| may round to -inf, where exp gives the right 0). The limit
    of :func:`tanh_secant` at h = 0."""
    with np.errstate(under="ignore", over="ignore"):
        e = np.exp(-2.0 * np.abs(np.asarray(x, dtype=np.float64)))
        return _times(4.0 * e / ((1.0 + e) * (1.0 + e)), g)


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
