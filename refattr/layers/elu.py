"""ELU (Clevert et al. 2016): x for x > 0, alpha (e^x - 1) otherwise; and the exponential-linear
family it shares with SELU, f(x) = positive x for x > 0 and negative (e^x - 1) for x <= 0, with a
divided difference free of cancellation (:func:`exponential_linear_secant`)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from ._secants import _two_sum
from .base import ElementwiseLayer
from .registry import register

__all__ = ["ELU", "exponential_linear", "exponential_linear_derivative", "exponential_linear_secant",
           "exponential_linear_bound"]


def _real(layer: str, name: str, value: Any, example: str) -> float:
    """``value`` as a float when it is a finite real number (not a bool), else ArgumentError naming
    the layer, the argument, what was seen and an example of what is expected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ArgumentError(f"{layer} {name}: expected a finite real number, got {value!r}; pass e.g. {example}")
    return float(value)


def exponential_linear(x: np.ndarray, positive: float, negative: float) -> np.ndarray:
    """positive * x for x > 0, negative * expm1(x) for x <= 0 (PyTorch's ``elu`` kernel with
    ``poscoef`` = positive and ``negcoef`` = negative; -0.0 is on the exponential side)."""
    x = np.asarray(x, dtype=np.float64)
    up = x > 0
    return np.where(up, positive * x, negative * np.expm1(np.where(up, 0.0, x)))


def exponential_linear_derivative(x: np.ndarray, positive: float, negative: float,
                                  g: np.ndarray | None = None) -> np.ndarray:
    """g * f'(x): positive for x > 0, negative * e^x for x <= 0 (at 0 the exponential side's
    negative, as PyTorch's autograd: its ``elu_backward`` tests x <= 0)."""
    x = np.asarray(x, dtype=np.float64)
    up = x > 0
    d = np.where(up, positive, negative * np.exp(np.where(up, 0.0, x)))
    return d if g is None else np.asarray(g, dtype=np.float64) * d


def exponential_linear_secant(a: np.ndarray, h: np.ndarray, positive: float, negative: float) -> np.ndarray:
    """(f(a + h) - f(a)) / h for f = :func:`exponential_linear`, with limit f'(a) at h == 0.

    With lo = min(a, a + h), hi = max(a, a + h), w = |h| (exact), and a + h carried exactly
    (TwoSum; its rounding error is hi_lo or lo_lo):

    - both ends > 0: positive;
    - both ends <= 0: negative (e^hi - e^lo) / w = negative e^hi (1 - e^-w) / w, every factor
      without cancellation (-expm1(-w) / w, 1 at w = 0), e^hi times (1 + hi_lo);
    - lo <= 0 < hi: (positive hi - negative expm1(lo)) / w, two terms of the same sign when
      positive and negative are >= 0 (ELU with alpha >= 0, SELU).

    Exact to a few ulps relative wherever the result is a normal float (tested against mpmath for
    |a| up to 700, |h| down to 1e-15 and h = 0).
    """
    a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
    with np.errstate(over="ignore", under="ignore"):
        b, b_lo = _two_sum(a, h)
        a_is_lo = h >= 0
        lo, hi = np.where(a_is_lo, a, b), np.where(a_is_lo, b, a)
        lo_lo, hi_lo = np.where(a_is_lo, 0.0, b_lo), np.where(a_is_lo, b_lo, 0.0)
        w = np.abs(h)
        safe_w = np.where(w > 0, w, 1.0)
        ratio = np.where(w > 0, -np.expm1(-w) / safe_w, 1.0)              # (1 - e^-w) / w
        negative_side = negative * (np.exp(np.minimum(hi, 0.0)) * (1.0 + hi_lo)) * ratio
        lo_neg = np.minimum(lo, 0.0)      # = lo where it is used
        across = (positive * (hi + hi_lo) - negative * (np.expm1(lo_neg) + np.exp(lo_neg) * lo_lo)) / safe_w
        return np.where(hi <= 0, negative_side, np.where(lo > 0, positive, across))


def exponential_linear_bound(bound: float, positive: float, negative: float) -> float:
    """max |f(x)| over |x| <= bound: |positive| bound, or |negative| min(bound, 1) (|e^x - 1| <=
    min(|x|, 1) for x <= 0)."""
    return max(abs(positive) * bound, abs(negative) * min(bound, 1.0))


@register
class ELU(ElementwiseLayer):
    """f(x) = x for x > 0 and alpha (e^x - 1) for x <= 0 (Clevert et al. 2016; PyTorch's ``nn.ELU``,
    ONNX's ``Elu``).

    Convention at 0: f'(0) = alpha, the exponential side's slope alpha e^0, as PyTorch's autograd
    gives at 0.0 and -0.0 (its ``elu_backward`` tests x <= 0); f is smooth at 0 only when
    alpha = 1. e^x - 1 is evaluated as expm1(x), as PyTorch does. alpha may be any finite real, as
    in PyTorch (a negative one makes f non-monotonic). The divided difference is
    :func:`exponential_linear_secant`.

    Captum 0.9.0's DeepLift hooks ``nn.ELU`` (its Rescale rule from forward differences).

    References
    ----------
    Clevert, Unterthiner, Hochreiter, "Fast and accurate deep network learning by exponential
    linear units (ELUs)", ICLR 2016, equation (2).

    Examples
    --------
    >>> import numpy as np
    >>> ELU(0.5).forward(np.array([[-1.0, 0.0, 2.0]]))[0]     # 0.5 (e^-1 - 1) = -0.316060..., 0, 2
    array([[-0.31606028,  0.        ,  2.        ]])
    >>> ELU(0.5).derivative(np.array([0.0, 2.0]))            # alpha e^0 at 0, 1 above
    array([0.5, 1. ])
    """

    piecewise_linear = False
    torch_modules = ("ELU",)
    onnx_ops = ("Elu",)
    onnx_attributes = {"alpha": "alpha"}
    captum = "nonlinear"          # in Captum 0.9.0's SUPPORTED_NON_LINEAR: the Rescale rule

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = _real("ELU", "alpha", alpha, "alpha=1.0 (PyTorch's default)")

    def function(self, x: np.ndarray) -> np.ndarray:
        return exponential_linear(x, 1.0, self.alpha)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        import mpmath

        return z if z > 0 else mpmath.mpf(self.alpha) * mpmath.expm1(z)

    def output_bound(self, bound: float) -> float:
        return exponential_linear_bound(bound, 1.0, self.alpha)

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return exponential_linear_secant(a, h, 1.0, self.alpha)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        return exponential_linear_derivative(x, 1.0, self.alpha, g)

    def __repr__(self) -> str:
        return f"ELU(alpha={self.alpha})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> ELU:
        """alpha drawn from [0.1, 2) (PyTorch's default 1 lies inside)."""
        return cls(float(rng.uniform(0.1, 2.0)))
