"""GELU(x) = x Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016), in PyTorch's exact
(erf) form and its tanh approximation, each with a divided difference accurate to a few ulps."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from .._typing import Shape
from ..errors import ArgumentError
from ._secants import _two_product, _two_sum
from .base import ElementwiseLayer
from .registry import register

__all__ = ["GELU", "gelu", "gelu_secant", "gelu_tanh", "gelu_tanh_secant", "normal_cdf"]

_SQRT_HALF = 0.7071067811865476          # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327       # 1 / sqrt(2 pi)
#: Gauss-Legendre rule on [0, 1], 12 nodes: the mean of exp(-s (s + 2c) / 2) over [0, w] to ~1e-20
#: relative wherever w (1 + c + w) <= 1 (its 24th derivative times w^24 is then tiny).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(12)
_NODES, _WEIGHTS = 0.5 * (_NODES + 1.0), 0.5 * _WEIGHTS
#: Below this w (1 + max |x|) the secant of two negative ends averages φ by Gauss-Legendre; above
#: it, it differences x Φ(x) at the two ends, which then cancel by at most a factor ~3.
_QUADRATURE_BELOW = 1.0


def _square(x):
    """fl(x²) and its rounding error (:func:`_two_product`)."""
    return _two_product(x, x)


def _gaussian(x, x_lo):
    """(exponent, factor) with exp(-(x + x_lo)² / 2) = exp(exponent) * factor to O(eps²):
    ``exponent`` = -fl(x²) / 2 is an exact float, the rounding of x² and the correction x_lo enter
    ``factor`` to first order. Carrying x² this way keeps exp's relative error at an ulp where
    x² / 2 ~ 700 (rounding x² itself would cost |x|² eps ~ 1e-13)."""
    p, e = _square(x)
    exponent = -0.5 * p
    # below -900 exp(exponent) is 0 even after the e^64 shift of _negative_secant: no correction
    return exponent, np.where(exponent > -900.0, 1.0 - 0.5 * e - x * x_lo, 1.0)


def _lower_tail(x, x_lo=0.0):
    """Φ(x + x_lo) for x <= 0: exp(-x² / 2) erfcx(|x| / sqrt 2) / 2, with erfcx(z) = exp(z²)
    erfc(z) (no cancellation, no premature underflow: erfcx is O(1 / z))."""
    exponent, factor = _gaussian(x, x_lo)
    return 0.5 * np.exp(exponent) * factor * special.erfcx(-x * _SQRT_HALF)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) = erfc(-x / sqrt 2) / 2, to a few ulps relative for x <= 0 (down to the subnormal
    range) and absolute for x > 0 (as 1 - Φ(-x))."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore", over="ignore"):
        tail = _lower_tail(-np.abs(x))
    return np.where(x <= 0, tail, 1.0 - tail)


def gelu(x: np.ndarray) -> np.ndarray:
    """x Φ(x) (PyTorch's ``gelu(x, approximate="none")``, 0.5 x (1 + erf(x / sqrt 2)), evaluated
    without its cancellation at negative x)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):
        return x * normal_cdf(x)


def _negative_secant(lo, hi, lo_lo, hi_lo, w):
    """(f(HI) - f(LO)) / (HI - LO) for LO = lo + lo_lo <= HI = hi + hi_lo <= 0, w = HI - LO >= 0.

    With c = |HI| and r = exp(-(LO² - HI²) / 2) = exp(-w (w + 2c) / 2) (no cancellation)::

        Φ(LO) = exp(-HI² / 2) r erfcx(|LO| / sqrt 2) / 2
        secant = Φ(LO) + HI (Φ(HI) - Φ(LO)) / w                       (Φ(LO) + HI × mean of φ)
               = exp(-HI² / 2) [r erfcx(|LO| / sqrt 2) / 2 - c G / sqrt(2 pi)]     (small w)
               = exp(-HI² / 2) [|LO| r erfcx(|LO| / sqrt 2) - c erfcx(c / sqrt 2)] / (2 w)   (else)

    with G the mean of exp(-s (s + 2c) / 2) over s in [0, w] (φ(HI - s) / φ(HI)) by Gauss-Legendre.
    exp(-HI² / 2) is taken out exactly (:func:`_gaussian`) and applied last, shifted by e^64 where
    it would underflow, so a normal result keeps its relative precision.
    """
    c = -hi
    exponent, factor = _gaussian(hi, hi_lo)
    r = np.exp(-(w * (0.5 * w + c)))     # 0.5 w + c: no overflow, so no 0 * inf at w == 0
    tail_lo = r * special.erfcx(-lo * _SQRT_HALF)
    quadrature = w * (1.0 - lo) <= _QUADRATURE_BELOW
    s = w[..., None] * _NODES
    mean = np.exp(-(s * (0.5 * s + c[..., None]))) @ _WEIGHTS
    near = 0.5 * tail_lo - c * mean * _INV_SQRT_2PI
    safe_w = np.where(quadrature, 1.0, w)
    far = (-lo * tail_lo - c * special.erfcx(c * _SQRT_HALF)) / (2.0 * safe_w)
    bracket = np.where(quadrature, near, far)
    shift = np.where(exponent < -600.0, 64.0, 0.0)   # exponent + 64 is exact for |exponent| >= 600
    return np.exp(exponent + shift) * (factor * bracket * np.exp(-shift))


def gelu_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(f(a + h) - f(a)) / h for f(x) = x Φ(x), with limit f'(a) = Φ(a) + a φ(a) at h == 0.

    With lo = min(a, a + h), hi = max(a, a + h), w = |h|, the sum a + h carried exactly (TwoSum):

    - both ends <= 0: :func:`_negative_secant` (the mean of φ over [lo, hi] by Gauss-Legendre
      relative to φ(hi) when w (1 + |lo|) <= 1, else the difference of x Φ(x) at the two ends;
      every exponential relative to exp(-hi² / 2), taken out exactly);
    - both ends >= 0: from f(x) = x + f(-x), secant(a, h) = 1 - secant(-a, -h), the case above;
    - lo < 0 < hi: Φ(lo) + hi (erf(hi / sqrt 2) + erf(-lo / sqrt 2)) / (2 w), a sum of positive
      terms.

    The result is the secant of the exact a + h to a few ulps relative wherever it is a normal
    float, except near the zeros of the secant (around the minimum of f at x = -0.7518), where
    the problem itself is ill-conditioned (tested against mpmath for |a| up to 700, |h| down to
    1e-15 and h = 0).
    """
    return _by_frames(a, h, _negative_secant, _across_secant)


def _across_secant(lo, hi, lo_lo, hi_lo, w):
    """The secant of x Φ(x) over [lo, hi] with lo < 0 < hi: a sum of positive terms."""
    return (_lower_tail(lo, lo_lo)
            + hi * (0.5 * (special.erf(hi * _SQRT_HALF) + special.erf(-lo * _SQRT_HALF)) / w))


def _by_frames(a, h, negative, across):
    """(f(a + h) - f(a)) / h for an f with f(x) = x + f(-x), from ``negative(lo, hi, lo_lo, hi_lo,
    w)`` (both ends <= 0) and ``across(...)`` (lo < 0 < hi), with lo = min(a, a + h), hi = max,
    w = |h|, a + h carried exactly (TwoSum: its rounding error is lo_lo or hi_lo). Both ends >= 0:
    1 - negative(-hi, -lo, ...), the secant of the mirrored pair."""
    a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
    with np.errstate(under="ignore", over="ignore", invalid="ignore", divide="ignore"):
        b, b_lo = _two_sum(a, h)
        zero = np.zeros_like(a)
        a_is_lo = h >= 0
        lo, hi = np.where(a_is_lo, a, b), np.where(a_is_lo, b, a)
        lo_lo, hi_lo = np.where(a_is_lo, zero, b_lo), np.where(a_is_lo, b_lo, zero)
        w = np.abs(h)
        positive = lo >= 0
        straddle = (lo < 0) & (hi > 0)
        # the negative frame: mirror the ends of a positive pair
        n_lo = np.where(positive, -hi, np.minimum(lo, 0.0))
        n_hi = np.where(positive, -lo, np.minimum(hi, 0.0))
        n_lo_lo = np.where(positive, -hi_lo, lo_lo)
        n_hi_lo = np.where(positive, -lo_lo, hi_lo)
        inside = negative(n_lo, n_hi, n_lo_lo, n_hi_lo, np.where(straddle, 0.0, w))
        crossing = across(np.minimum(lo, 0.0), np.maximum(hi, 0.0), lo_lo, hi_lo, np.where(straddle, w, 1.0))
        out = np.where(straddle, crossing, np.where(positive, 1.0 - inside, inside))
        # a + h beyond float64's range: both ends are far out on one side, where f is x or 0
        return np.where(np.isfinite(b), out, np.where(a > 0, 1.0, 0.0))


# PyTorch's tanh approximation ------------------------------------------------------------------

_K_BETA = 0.7978845608028654      # sqrt(2 / pi) as PyTorch's float64 kernel rounds it
_K_KAPPA = 0.044715


def _tanh_inner(x, x_lo):
    """u(X) = K_BETA (X + K_KAPPA X³) at X = x + x_lo as (u, u_lo), u + u_lo to ~1e-30 relative
    (double-double: every product TwoProduct, the sum TwoSum). |x| is capped at 1e5, where
    tanh(u) is ±1 to all digits already (|u| > 1e13)."""
    x = np.clip(x, -1e5, 1e5)
    x2, x2_lo = _square(x)
    t, t_lo = _two_product(_K_KAPPA, x2)
    t_lo = t_lo + _K_KAPPA * x2_lo
    one, one_lo = _two_sum(1.0, t)
    one_lo = one_lo + t_lo
    q, q_lo = _two_product(x, one)
    q_lo = q_lo + x * one_lo
    u, u_lo = _two_product(_K_BETA, q)
    slope = _K_BETA * (1.0 + 3.0 * _K_KAPPA * x2)          # u'(x), for the correction x_lo
    return u, u_lo + _K_BETA * q_lo + slope * x_lo


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """x (1 + tanh(u)) / 2 = x σ(2u), u = sqrt(2/pi) (x + 0.044715 x³) (PyTorch's
    ``gelu(x, approximate="tanh")``), with u carried in double-double so that e^{2u} keeps its
    relative precision for x < 0."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore", over="ignore"):
        u, u_lo = _tanh_inner(-np.abs(x), 0.0)                   # u <= 0
        e = np.exp(2.0 * u) * (1.0 + 2.0 * u_lo)
        low = e / (1.0 + e)                                       # σ(-2|u|)
    return x * np.where(x <= 0, low, 1.0 - low)


def _tanh_negative_secant(lo, hi, lo_lo, hi_lo, w):
    """As :func:`_negative_secant`, for f(x) = x σ(2 u(x)). With u_lo <= u_hi <= 0 the values of u
    at the ends, Δu = u_hi - u_lo = w g, g = K_BETA (1 + K_KAPPA (hi² + hi lo + lo²)) > 0, and
    tanh B - tanh A = 2 e^{2B} (1 - e^{-2(B - A)}) / ((1 + e^{2A}) (1 + e^{2B})) for A <= B <= 0::

        secant = σ(2 u_lo) + hi (tanh u_hi - tanh u_lo) / (2 w)
               = e^{2 u_hi} / (1 + e^{2 u_lo}) [e^{-2 Δu} + hi R / (1 + e^{2 u_hi})]

    R = (1 - e^{-2 w g}) / w (2 g at w = 0). e^{2 u_hi} is the only exponential of a large
    argument: u_hi is carried in double-double, applied last and shifted by e^64 where it
    would underflow."""
    u_hi, u_hi_lo = _tanh_inner(hi, hi_lo)
    u_lo, _ = _tanh_inner(lo, lo_lo)
    g = _K_BETA * (1.0 + _K_KAPPA * (hi * hi + hi * lo + lo * lo))
    du = w * g
    safe_w = np.where(w > 0, w, 1.0)
    ratio = np.where(w > 0, -np.expm1(-2.0 * du) / safe_w, 2.0 * g)
    bracket = (np.exp(-2.0 * du) + hi * ratio / (1.0 + np.exp(2.0 * u_hi))) / (1.0 + np.exp(2.0 * u_lo))
    exponent = 2.0 * u_hi
    shift = np.where(exponent < -600.0, 64.0, 0.0)
    out = np.exp(exponent + shift) * ((1.0 + 2.0 * u_hi_lo) * bracket * np.exp(-shift))
    return np.where(exponent < -900.0, 0.0, out)             # beyond: below the smallest float


def _tanh_across_secant(lo, hi, lo_lo, hi_lo, w):
    """As :func:`_across_secant` for the tanh form: σ(2 u_lo) + hi (tanh u_hi + tanh |u_lo|) / (2 w),
    positive terms."""
    u_hi, _ = _tanh_inner(hi, hi_lo)
    u_lo, u_lo_lo = _tanh_inner(lo, lo_lo)
    e = np.exp(2.0 * u_lo) * (1.0 + 2.0 * u_lo_lo)
    return e / (1.0 + e) + hi * ((np.tanh(u_hi) + np.tanh(-u_lo)) / (2.0 * w))


def gelu_tanh_secant(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(f(a + h) - f(a)) / h for PyTorch's tanh approximation f(x) = x (1 + tanh(u(x))) / 2, with
    limit f'(a) at h == 0; organised as :func:`gelu_secant` (f(x) = x + f(-x) holds here too),
    the negative side by :func:`_tanh_negative_secant`."""
    return _by_frames(a, h, _tanh_negative_secant, _tanh_across_secant)


@register
class GELU(ElementwiseLayer):
    """f(x) = x Φ(x) = x (1 + erf(x / sqrt 2)) / 2 (Hendrycks & Gimpel 2016; PyTorch's ``nn.GELU``,
    ONNX's ``Gelu``), or with ``approximate="tanh"`` PyTorch's approximation
    f(x) = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))) / 2, a different function (its float64
    constants as PyTorch's kernel rounds them).

    Smooth and non-monotonic: the erf form falls to its minimum f(-0.7518) = -0.1700 before
    rising, and f'(x) = Φ(x) + x φ(x). The divided differences are :func:`gelu_secant` and
    :func:`gelu_tanh_secant`.

    .. warning:: Captum 0.9.0's DeepLift does not list ``nn.GELU`` among its non-linearities and
       passes the plain gradient through it, not the Rescale multiplier refattr uses.

    Examples
    --------
    >>> import numpy as np
    >>> GELU().forward(np.array([[0.0, 1.0]]))[0]    # 0 * 1/2, 1 * Φ(1) = 0.841344746...
    array([[0.        , 0.84134475]])
    >>> GELU().derivative(np.array([0.0]))           # Φ(0) + 0 = 1/2
    array([0.5])
    """

    piecewise_linear = False
    torch_modules = ("GELU",)
    onnx_ops = ("Gelu",)
    onnx_attributes = {"approximate": "approximate"}
    onnx_runtime_rtol = 1e-5  # onnxruntime / onnx.reference expand Gelu with float32 pieces (float32 erf)
    captum = "gradient"    # not in Captum 0.9.0's list of non-linearities

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ArgumentError(f"GELU approximate: expected 'none' (the erf form) or 'tanh' (PyTorch's "
                                f"approximation), got {approximate!r}")
        self.approximate = str(approximate)

    def function(self, x: np.ndarray) -> np.ndarray:
        return gelu(x) if self.approximate == "none" else gelu_tanh(x)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        import mpmath

        if self.approximate == "none":
            return z * mpmath.erfc(-z / mpmath.sqrt(2)) / 2
        u = mpmath.mpf(_K_BETA) * (z + mpmath.mpf(_K_KAPPA) * z ** 3)
        return z * (1 + mpmath.tanh(u)) / 2

    def output_bound(self, bound: float) -> float:
        return bound                      # |f(x)| <= |x|: the factor is in [0, 1]

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return gelu_secant(a, h) if self.approximate == "none" else gelu_tanh_secant(a, h)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        d = self.secant(x, np.zeros_like(x))
        return d if g is None else np.asarray(g, dtype=np.float64) * d

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> GELU:
        """The erf form or the tanh approximation, with equal chance."""
        return cls(("tanh", "none")[int(rng.integers(2))])
