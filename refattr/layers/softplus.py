"""Softplus as PyTorch defines it: log(1 + e^(beta x)) / beta, and x itself where beta x exceeds a
threshold; with a divided difference free of cancellation on either side and across the switch."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from ._secants import _sigmoid, _two_product, _two_sum
from .base import ElementwiseLayer
from .registry import register

__all__ = ["Softplus", "softplus_secant"]


def _log1p_exp(z):
    """s(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|), to an ulp or two for any z."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _scaled(x, beta):
    """(z, z_lo): z = fl(beta x), the product PyTorch compares with the threshold, and its rounding
    error (beta x = z + z_lo, TwoProduct). An overflow to +-inf stays on its side."""
    return _two_product(x, beta)


def _switched(z, threshold):
    """Where f is x: beta x > threshold as float64 rounds beta x (PyTorch's test); also where beta x
    overflows to +inf, where log(1 + e^(beta x)) / beta equals x to every digit."""
    return (z > threshold) | (z == np.inf)


def _negative_form(lo, hi, lo_lo, hi_lo, w):
    """(s(HI) - s(LO)) / w for LO = lo + lo_lo <= HI = hi + hi_lo <= 1, w = HI - LO >= 0:

        s(HI) - s(LO) = log1p(D),  D = e^HI (1 - e^-w) / (1 + e^LO)
        secant = e^HI / (1 + e^LO) * (1 - e^-w) / w * log1p(D) / D

    every factor without cancellation (1 at w = 0 and D = 0; the limit is σ(HI)); HI's rounding
    error enters e^HI as the factor 1 + hi_lo."""
    e_hi = np.exp(hi) * (1.0 + hi_lo)
    one_lo = 1.0 + np.exp(lo) * (1.0 + lo_lo)
    safe_w = np.where(w > 0, w, 1.0)
    ratio = np.where(w > 0, -np.expm1(-w) / safe_w, 1.0)
    d = e_hi * -np.expm1(-w) / one_lo
    safe_d = np.where(d > 0, d, 1.0)
    log_ratio = np.where(d > 0, np.log1p(safe_d) / safe_d, 1.0)
    return e_hi / one_lo * ratio * log_ratio


def _log1p_exp_secant(lo, hi, lo_lo, hi_lo, w):
    """(s(HI) - s(LO)) / w for s(z) = log(1 + e^z), LO = lo + lo_lo <= HI = hi + hi_lo, w = HI - LO:

    - HI <= 0: :func:`_negative_form`;
    - LO >= 0: from s(z) = z + s(-z), 1 - the negative form of the mirrored pair (>= 1/2);
    - LO < 0 < HI, w <= 1 (so HI <= 1): the negative form, valid while e^HI cannot overflow;
    - LO < 0 < HI, w > 1: (s(HI) - s(LO)) / w directly; s(HI) > log 2 + σ(0) HI and s(LO) < log 2,
      so the difference is at least a third of s(HI) (no real cancellation)."""
    negative = _negative_form(lo, np.minimum(hi, 1.0), lo_lo, hi_lo, w)
    mirrored = 1.0 - _negative_form(-hi, -np.maximum(lo, 0.0), -hi_lo, -lo_lo, w)
    safe_w = np.where(w > 0, w, 1.0)
    direct = ((_log1p_exp(hi) + _sigmoid(hi) * hi_lo) - (_log1p_exp(lo) + _sigmoid(lo) * lo_lo)) / safe_w
    return np.where(lo >= 0, mirrored, np.where((hi <= 0) | (w <= 1.0), negative, direct))


def softplus_secant(a: np.ndarray, h: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """(f(a + h) - f(a)) / h for :class:`Softplus`'s f, with limit f'(a) at h == 0.

    With z = beta x carried exactly (z_a, z_h by TwoProduct, z_b = z_a + z_h by TwoSum, rounded as
    float64 rounds beta (a + h) to decide the branch):

    - both ends switched (f = x): 1;
    - neither: the secant of s(z) = log(1 + e^z) over [beta a, beta (a + h)]
      (:func:`_log1p_exp_secant`; (s(beta b) - s(beta a)) / (beta h) is f's secant);
    - across the switch, with p the end on the log side: f(q) - f(p) = (q - p) - s(-beta p) / beta,
      so the secant is 1 - s(-beta a) / (beta h) (a on the log side) or 1 + s(-beta b) / (beta h)
      (b on it): the jump of about e^-threshold / beta divided by h, exactly.
    """
    a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
    beta = float(beta)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        z_a, z_a_lo = _scaled(a, beta)
        z_h, z_h_lo = _scaled(h, beta)
        z_b, z_b_lo = _two_sum(z_a, z_h)
        z_b, carry = _two_sum(z_b, z_b_lo + z_a_lo + z_h_lo)   # z_b = beta (a + h) rounded once
        z_b_lo = carry
        on_a, on_b = _switched(z_a, threshold), _switched(z_b, threshold)
        a_is_lo = h >= 0                                     # beta > 0: z keeps the order of x
        lo, hi = np.where(a_is_lo, z_a, z_b), np.where(a_is_lo, z_b, z_a)
        lo_lo, hi_lo = np.where(a_is_lo, z_a_lo, z_b_lo), np.where(a_is_lo, z_b_lo, z_a_lo)
        w = np.abs(z_h)                                      # beta |h| to half an ulp
        log_side = _log1p_exp_secant(lo, hi, lo_lo, hi_lo, w)
        safe_h = np.where(z_h != 0, z_h, 1.0)
        # s(-(z + z_lo)) = s(-z) - σ(-z) z_lo, for the end on the log side
        from_a = 1.0 - (_log1p_exp(-z_a) - _sigmoid(-z_a) * z_a_lo) / safe_h
        from_b = 1.0 + (_log1p_exp(-z_b) - _sigmoid(-z_b) * z_b_lo) / safe_h
        across = np.where(on_b, from_a, from_b)
        out = np.where(on_a & on_b, 1.0, np.where(on_a | on_b, across, log_side))
        # beta x beyond float64's range at an end: f there is max(x, 0) to every digit, and z_b may be
        # inf - inf; divide the halved difference of max(x, 0) (x or 0 at both ends: 1 or 0)
        far = ~(np.isfinite(z_a) & np.isfinite(z_h) & np.isfinite(z_b))
        if np.any(far):
            half_b = 0.5 * a + 0.5 * h
            ends = (np.maximum(half_b, 0.0) - np.maximum(0.5 * a, 0.0)) / np.where(h != 0, 0.5 * h, 1.0)
            out = np.where(far, np.where(on_a & on_b, 1.0, np.where((z_a == -np.inf) & (z_b == -np.inf), 0.0, ends)),
                           out)
        return out


@register
class Softplus(ElementwiseLayer):
    """f(x) = log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's
    ``nn.Softplus(beta, threshold)``; Dugas et al. 2001).

    The switch follows PyTorch exactly: the product beta x is rounded to float64 before the
    comparison, and at beta x == threshold f is still the logarithm. f is then discontinuous where
    beta x crosses the threshold, by log(1 + e^-threshold) / beta (about 2.1e-9 at PyTorch's
    defaults): f is the function PyTorch computes, jump included, its derivative is sigmoid(beta x)
    below the switch and 1 above it (PyTorch's autograd), and its divided difference
    :func:`softplus_secant` is the difference quotient of that function, the jump over h when a
    pair straddles the switch (large for a small h).

    ``threshold=math.inf`` never switches: log(1 + e^(beta x)) / beta everywhere, which is ONNX's
    ``Softplus`` (it has no beta and no threshold). An ONNX Softplus imports as
    ``Softplus(1.0, math.inf)`` (``onnx_arguments``); ``torch.onnx.export`` writes PyTorch's
    ``Softplus()`` as that op and so drops the switch (a change of at most 2.1e-9 absolute, for
    inputs above 20).

    The logarithm is evaluated as max(z, 0) + log1p(e^-|z|), z = beta x, with the rounding error of
    beta x carried to first order. PyTorch computes log1p(exp(beta x)) / beta from the rounded
    product: the two agree to |beta x| * 2^-53 relative, and PyTorch overflows to inf (its
    gradient to nan) where beta x > 709.78 without switching (a threshold above that), where refattr
    stays finite.

    ``beta`` must be positive and finite (PyTorch does not check; beta <= 0 is not a softplus), and
    ``threshold`` a real number or ``math.inf``.

    References
    ----------
    Dugas, Bengio, Belisle, Nadeau, Garcia, "Incorporating second-order functional knowledge for
    better option pricing", NeurIPS 2001.

    Examples
    --------
    >>> import numpy as np
    >>> Softplus().forward(np.array([[0.0, 21.0]]))[0]      # log 2 = 0.693147..., 21 (switched)
    array([[ 0.69314718, 21.        ]])
    >>> Softplus().derivative(np.array([0.0, 21.0]))        # sigmoid(0), 1
    array([0.5, 1. ])
    """

    piecewise_linear = False
    torch_modules = ("Softplus",)
    onnx_ops = ("Softplus",)
    #: The constructor arguments an ONNX import sets (ONNX's Softplus never switches).
    onnx_arguments = {"threshold": math.inf}
    captum = "nonlinear"          # in Captum 0.9.0's SUPPORTED_NON_LINEAR: the Rescale rule

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        if (isinstance(beta, (bool, np.bool_)) or not isinstance(beta, numbers.Real) or not np.isfinite(beta)
                or not beta > 0):
            raise ArgumentError(f"Softplus beta: expected a positive finite real number, got {beta!r}; "
                                f"pass e.g. beta=1.0 (PyTorch's default)")
        if (isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real)
                or np.isnan(threshold) or threshold == -math.inf):
            raise ArgumentError(f"Softplus threshold: expected a real number or math.inf (no switch), got "
                                f"{threshold!r}; pass e.g. threshold=20.0 (PyTorch's default)")
        self.beta = float(beta)
        self.threshold = float(threshold)

    def function(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            z, z_lo = _scaled(x, self.beta)
            log_side = (_log1p_exp(z) + _sigmoid(z) * z_lo) / self.beta
            return np.where(_switched(z, self.threshold), x, log_side)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests: the branch from beta z rounded to 53 bits (as
        float64 rounds it), the logarithm from the exact beta z."""
        import mpmath

        beta = mpmath.mpf(self.beta)
        with mpmath.workprec(53):
            rounded = beta * z
        if rounded > self.threshold:
            return z
        return mpmath.log1p(mpmath.exp(beta * z)) / beta

    def output_bound(self, bound: float) -> float:
        return bound + math.log(2.0) / self.beta     # 0 < s(z) <= max(z, 0) + log 2

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return softplus_secant(a, h, self.beta, self.threshold)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """g * f'(x): sigmoid(beta x) on the log side (its rounding error carried), 1 where switched."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            z, z_lo = _scaled(x, self.beta)
            d = np.where(_switched(z, self.threshold), 1.0, _sigmoid(z) * (1.0 + _sigmoid(-z) * z_lo))
        return d if g is None else np.asarray(g, dtype=np.float64) * d

    def __repr__(self) -> str:
        return f"Softplus(beta={self.beta}, threshold={self.threshold})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Softplus:
        """beta from [0.5, 1) and threshold from [20, 30) (PyTorch's defaults are 1 and 20): the switch
        stays beyond |x| = 20, where random networks' activations do not reach, so that
        finite-difference checks never straddle its jump."""
        return cls(float(rng.uniform(0.5, 1.0)), float(rng.uniform(20.0, 30.0)))
