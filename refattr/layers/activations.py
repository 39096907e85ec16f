"""Element-wise activations: each is f and a stable divided difference of f.

Everything else (VJP, DeepLIFT Rescale and RevealCancel) is derived once in
:class:`~refattr.layers.base.ElementwiseLayer`. ``secant(a, h)`` is (f(a + h) - f(a)) / h without
cancellation, equal to f'(a) at h == 0; it is tested to 1e-13 relative against mpmath.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import expit

from ..errors import NonFiniteError, RuleError
from .base import GRADIENT_RULES, ElementwiseLayer

__all__ = ["ReLU", "Tanh", "Sigmoid", "Swish", "tanh_secant", "sigmoid_secant"]


def tanh_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(tanh(a + h) - tanh(a)) / h, with limit sech²(a) at h == 0.

    From tanh b - tanh a = sinh(b - a) / (cosh a cosh b), written with b = a + h as::

        E * 2 * ((1 - exp(-2|h|)) / |h|) / ((1 + exp(-2|a|)) (1 + exp(-2|b|)))

    where E = exp(|h| - |a| - |b|) is 1 when a and b have opposite signs and exp(-2 min(|a|, |b|))
    otherwise. Every factor is computed without cancellation (expm1 for the middle one) and
    without overflow for any finite a, h.
    """
    a = np.asarray(a, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    b = a + h
    abs_a, abs_b, abs_h = np.abs(a), np.abs(b), np.abs(h)
    with np.errstate(under="ignore", over="ignore"):
        safe_h = np.where(abs_h > 0, abs_h, 1.0)
        ratio = np.where(abs_h > 0, -np.expm1(-2.0 * abs_h) / safe_h, 2.0)
        opposite = np.sign(a) * np.sign(b) <= 0
        scale = np.exp(np.where(opposite, 0.0, -2.0 * np.minimum(abs_a, abs_b)))
        return 2.0 * scale * ratio / ((1.0 + np.exp(-2.0 * abs_a)) * (1.0 + np.exp(-2.0 * abs_b)))


def sigmoid_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(σ(a + h) - σ(a)) / h; from σ(x) = (1 + tanh(x / 2)) / 2 it is tanh_secant(a/2, h/2) / 4."""
    return 0.25 * tanh_secant(np.asarray(a) * 0.5, np.asarray(h) * 0.5)


class ReLU(ElementwiseLayer):
    """max(x, 0), with ReLU'(0) = 0 (as PyTorch and JAX).

    The divided difference is exact: 1 when both ends are positive, 0 when both are <= 0, and
    (max(a + h, 0) - max(a, 0)) / h across the kink.

    The gradient family differs only here (SPEC section 4; Springenberg et al. 2015, eq. for
    guided backpropagation; Zeiler & Fergus 2014): with z the forward input and g the signal at
    the output, the signal passed down is g * 1(z > 0) (gradient), g * 1(g > 0) (deconvnet) or
    g * 1(z > 0) * 1(g > 0) (guided backprop).
    """

    piecewise_linear = True

    def function(self, x):
        return np.maximum(x, 0.0)

    def secant(self, a, h):
        a = np.asarray(a, dtype=np.float64)
        h = np.asarray(h, dtype=np.float64)
        b = a + h
        out = (a > 0).astype(np.float64)
        crossing = ((a > 0) != (b > 0)) & (h != 0)
        if np.any(crossing):
            safe_h = np.where(crossing, h, 1.0)
            out = np.where(crossing, (np.maximum(b, 0.0) - np.maximum(a, 0.0)) / safe_h, out)
        return out

    def backward_signal(self, g, cache, rule):
        if rule == "gradient":
            return g * (cache > 0)
        if rule == "deconvnet":
            return g * (g > 0)
        if rule == "guided_backprop":
            return g * ((cache > 0) & (g > 0))
        raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")


class Tanh(ElementwiseLayer):
    """tanh(x); its divided difference is :func:`tanh_secant`."""

    def function(self, x):
        return np.tanh(x)

    def secant(self, a, h):
        return tanh_secant(a, h)


class Sigmoid(ElementwiseLayer):
    """σ(x) = 1 / (1 + exp(-x)), evaluated without overflow for any finite x (scipy's expit)."""

    def function(self, x):
        return expit(x)

    def secant(self, a, h):
        return sigmoid_secant(a, h)


class Swish(ElementwiseLayer):
    """x * σ(beta * x) (SiLU when beta == 1, the default; Ramachandran et al. 2017).

    Non-monotonic: it falls to its minimum near x = -1.278 (for beta = 1) before rising. The divided
    difference uses f(b) - f(a) = h σ(βb) + a (σ(βb) - σ(βa)), so
    secant(a, h) = σ(β(a + h)) + a β sigmoid_secant(βa, βh).
    """

    def __init__(self, beta: float = 1.0):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not np.isfinite(beta):
            raise NonFiniteError(f"Swish beta: expected a finite real number, got {beta!r}")
        self.beta = float(beta)

    def function(self, x):
        return x * expit(self.beta * x)

    def secant(self, a, h):
        a = np.asarray(a, dtype=np.float64)
        h = np.asarray(h, dtype=np.float64)
        beta = self.beta
        return expit(beta * (a + h)) + a * beta * sigmoid_secant(beta * a, beta * h)

    def __repr__(self):
        return f"Swish(beta={self.beta})"
