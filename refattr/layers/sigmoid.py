"""The logistic sigmoid σ: the function, its derivative and a stable divided difference
(:func:`sigmoid_secant`, from tanh's)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..kernels import elementwise as fused
from ._secants import _sigmoid, _times
from .base import ElementwiseLayer
from .registry import register
from .tanh import tanh_secant

__all__ = ["Sigmoid", "sigmoid", "sigmoid_derivative", "sigmoid_secant"]

# The functions of this module are the NumPy definitions. The layer evaluates them through the
# fused kernels of refattr.kernels.elementwise, which compute the same operations in the same
# order (one compiled pass around NumPy's vectorised exp) and agree with them bit for bit.


def sigmoid(x: ArrayLike) -> np.ndarray:
    """σ(x) = 1 / (1 + exp(-x)) = exp(-|x|) / (1 + exp(-|x|)) for x < 0: no overflow for any
    finite x, and the subnormal values below x = -709 that scipy's expit flushes to zero kept."""
    with np.errstate(under="ignore"):
        return _sigmoid(np.asarray(x, dtype=np.float64))


def sigmoid_derivative(x: ArrayLike, g: ArrayLike | None = None) -> np.ndarray:
    """g * σ'(x) (g = 1 when omitted), σ'(x) = σ(x) σ(-x) = e / (1 + e)² with e = exp(-|x|)."""
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(np.asarray(x, dtype=np.float64)))
        return _times(e / ((1.0 + e) * (1.0 + e)), g)


def sigmoid_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(σ(a + h) - σ(a)) / h; from σ(x) = (1 + tanh(x / 2)) / 2 it is tanh_secant(a/2, h/2) / 4.

    Halving is exact (above the subnormal range), so the accuracy is :func:`tanh_secant`'s.
    """
    return 0.25 * tanh_secant(np.asarray(a, dtype=np.float64) * 0.5, np.asarray(h, dtype=np.float64) * 0.5)


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
