"""What Softmax and LogSoftmax share: the axis (torch's ``dim``), the max-shifted forward passes, and
their DeepLIFT rules (``SOFTMAX_RULES``), derived in docs/softmax.md.

DeepLIFT (Shrikumar et al. 2017) defines rules for element-wise non-linearities only; softmax mixes
every logit of its axis. refattr writes it as the network DeepLIFT does define rules for,

    LogSoftmax(x)_i = x_i - L(x),   L(x) = log Σ_k exp(x_k)   (exp -> sum -> log),
    Softmax(x)_i    = exp(LogSoftmax(x)_i),

and applies the Linear rule to the linear steps and Rescale to exp and log. The multipliers are
closed forms (no quadrature), with φ(t) = (e^t - 1) / t (φ(0) = 1):

    μ_j = s'_j φ(Δx_j) / φ(ΔL) = s_j φ(-Δx_j) / φ(-ΔL)     (the split of ΔL: Σ_j μ_j Δx_j = ΔL)
    r_i = s'_i φ(Δz_i)         = s_i φ(-Δz_i)              (exp's Rescale: r_i Δz_i = Δs_i)
    LogSoftmax: m_ij = δ_ij - μ_j            Softmax: m_ij = r_i (δ_ij - μ_j)

with s = softmax(x), s' = softmax(x'), z = log_softmax(x). ``"centered"`` (the default) first
subtracts each example's mean logit (a linear step, softmax(x) = softmax(x - mean x)); ``"logsumexp"``
does not. Both keep summation-to-delta exactly and tend to the Jacobian as Δx -> 0.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._typing import DeepLiftRule, MaxPoolRule, Shape
from ..errors import ArgumentError, RuleError, ShapeError
from .base import DeltaPair, select_by_sign

__all__ = ["SOFTMAX_RULES", "softmax", "log_softmax", "logsumexp", "phi_nonpositive", "split_of_logsumexp",
           "exp_rescale"]

#: DeepLIFT rules for Softmax and LogSoftmax (docs/softmax.md); the first is the default.
SOFTMAX_RULES = ("centered", "logsumexp")


def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log Σ_k exp(x_k) along ``axis`` (kept, size 1), shifted by the maximum: no overflow."""
    top = x.max(axis=axis, keepdims=True)
    with np.errstate(over="ignore", under="ignore"):   # x - top may round to -inf: exp gives the exact 0
        return top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - max - log Σ exp(x - max) along ``axis`` (as torch.log_softmax; not log(softmax(x)),
    which underflows to -inf for logits more than ~745 below the largest)."""
    with np.errstate(over="ignore", under="ignore"):
        z = x - x.max(axis=axis, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """exp(x - max) / Σ exp(x - max) along ``axis`` (as torch.softmax)."""
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def phi_nonpositive(t: np.ndarray) -> np.ndarray:
    """φ(t) = (e^t - 1) / t for t <= 0, with φ(0) = 1 (its limit); values in (0, 1].

    ``expm1(t) / t`` has a relative error of a few ulps for every t != 0 (no cancellation:
    expm1 is accurate to an ulp, and the division adds one rounding). Only t <= 0 is ever
    needed: φ(t) = e^t φ(-t) turns a positive argument into this range without overflow.
    """
    out = np.ones_like(t)
    np.divide(np.expm1(t), t, out=out, where=t != 0)
    return out


def split_of_logsumexp(s: np.ndarray, s_ref: np.ndarray, dx: np.ndarray, dl: np.ndarray) -> np.ndarray:
    """μ_j = s'_j φ(Δx_j) / φ(ΔL), the multipliers of Rescale through exp -> sum -> log.

    ``dl`` is ΔL = L(x) - L(x') (shape broadcasting against ``dx``). Σ_j μ_j Δx_j = ΔL exactly:
    Σ_j s'_j (e^{Δx_j} - 1) = e^{ΔL} - 1. Evaluated without overflow from φ(t) = e^t φ(-t) and
    s'_j e^{Δx_j} = s_j e^{ΔL}: with a = Δx_j, b = ΔL,

        μ_j = φ(-|a|) · (s'_j if a <= 0 else s_j) · (1 if (a <= 0) == (b <= 0) else e^{-|b|}) / φ(-|b|),

    every factor in [0, 1] except 1/φ(-|b|) <= 1 + |b|.
    """
    a_low = dx <= 0
    b_low = dl <= 0
    with np.errstate(under="ignore"):
        numerator = phi_nonpositive(-np.abs(dx)) * np.where(a_low, s_ref, s)
        numerator = np.where(a_low == b_low, numerator, numerator * np.exp(-np.abs(dl)))
        return numerator / phi_nonpositive(-np.abs(dl))


def exp_rescale(s: np.ndarray, s_ref: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """r = (e^z - e^z') / (z - z') = s' φ(Δz) = s φ(-Δz) (s = e^z): Rescale's multiplier of exp,
    s'_i at Δz == 0; never above max(s, s') <= 1."""
    with np.errstate(under="ignore"):
        return phi_nonpositive(-np.abs(dz)) * np.where(dz <= 0, s_ref, s)


def _check_dim(cls_name: str, dim: Any) -> int:
    if dim is None:
        raise ArgumentError(f"{cls_name} dim: None is torch's deprecated implicit dim (chosen from the input's rank "
                            f"with a warning); pass the axis explicitly, e.g. {cls_name}(dim=1) for (N, classes) "
                            f"logits or dim=-1 for the last axis")
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise ArgumentError(f"{cls_name} dim: expected an int (an axis, the batch axis being 0, as in torch), got "
                            f"{dim!r}; e.g. {cls_name}(dim=1)")
    if dim == 0:
        raise ArgumentError(f"{cls_name} dim: 0 is the batch axis, and a softmax across examples would make each "
                            f"example's output depend on its batchmates; pass an axis of the example, dim >= 1 or "
                            f"a negative index counting from the last axis, e.g. {cls_name}(dim=1)")
    return int(dim)


class AlongDim:
    """The shared part of Softmax and LogSoftmax: ``dim`` as torch counts it, shapes, random
    instances, and the DeepLIFT plumbing. A subclass defines ``_multipliers(g, dl_cache)``."""

    piecewise_linear = False
    torch_modules: tuple[str, ...] = ()
    onnx_attributes = {"axis": "dim"}      # ONNX (opset >= 13): one axis, the batch axis being 0

    def __init__(self, dim: int = 1) -> None:
        self.dim = _check_dim(type(self).__name__, dim)

    def axis(self, ndim: int) -> int:
        """``dim`` as an axis of a batch of rank ``ndim`` (ShapeError if it is not an example's axis)."""
        axis = self.dim + ndim if self.dim < 0 else self.dim
        if not 1 <= axis < ndim:
            raise ShapeError(f"{self!r}: a batch of rank {ndim} has axes 0 (the batch) to {ndim - 1}, and dim "
                             f"{self.dim} is axis {axis}; expected an axis of the example, 1 to {ndim - 1} "
                             f"(or -1 to {1 - ndim}); pass e.g. dim=-1 for the last axis")
        return axis

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is not None:
            self.axis(len(input_shape) + 1)
        return input_shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Any:
        """A random axis of the example, written from the front or from the end at random."""
        rank = len(input_shape) + 1
        axis = int(rng.integers(1, rank))
        return cls(axis - rank if rng.random() < 0.5 else axis)

    # DeepLIFT ------------------------------------------------------------------------------------
    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return False     # the rule reads the total Δx of every logit, not its parts

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None, parts: bool = True,
                         softmax_rule: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        """The same multipliers under ``rule="rescale"`` and ``"reveal_cancel"`` (RevealCancel is
        defined for element-wise layers only): Δy+ = max(Δy, 0), Δy- = min(Δy, 0), and both parts of
        every logit get one multiplier, from its total Δx. ``softmax_rule``: one of ``SOFTMAX_RULES``,
        None for the first ("centered")."""
        chosen = SOFTMAX_RULES[0] if softmax_rule is None else softmax_rule
        if not isinstance(chosen, str) or chosen not in SOFTMAX_RULES:
            raise RuleError(f"softmax_rule: unknown rule {softmax_rule!r} for {self!r}; expected None or one of "
                            f"{SOFTMAX_RULES} (docs/softmax.md)")
        axis = self.axis(inp.x.ndim)
        x, x_ref = inp.x, inp.x_ref
        dx = inp.delta
        z, z_ref = log_softmax(x, axis), log_softmax(x_ref, axis)
        s, s_ref = softmax(x, axis), softmax(x_ref, axis)
        dl = logsumexp(x, axis) - logsumexp(x_ref, axis)
        centered = chosen == "centered"
        if centered:           # L(x - mean x) - L(x' - mean x') = ΔL - mean Δx, and Δx - mean Δx
            shift = dx.mean(axis=axis, keepdims=True)
            dx, dl = dx - shift, dl - shift
        mu = split_of_logsumexp(s, s_ref, dx, dl)
        dy = y - y_ref
        dl_cache = (axis, mu, self._output_rescale(s, s_ref, z - z_ref), dy, centered)
        if not parts:
            return None, None, dl_cache
        return np.maximum(dy, 0.0), np.minimum(dy, 0.0), dl_cache

    def _output_rescale(self, s: np.ndarray, s_ref: np.ndarray, dz: np.ndarray) -> np.ndarray | None:
        """The Rescale multiplier of the step after LogSoftmax: exp's for Softmax, None for none."""
        raise NotImplementedError

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        """m_j = r_j G_j - μ_j Σ_i r_i G_i (r = 1 for LogSoftmax), G the output's multiplier (M+
        where Δy > 0, M- where Δy < 0, their mean where Δy == 0); minus its mean over the axis
        under "centered" (the transpose of the centering)."""
        axis, mu, r, dy, centered = dl_cache
        g = m_pos if m_pos is m_neg else select_by_sign(dy, m_pos, m_neg)
        if r is not None:
            g = r * g
        m = g - mu * g.sum(axis=axis, keepdims=True)
        if centered:
            m = m - m.mean(axis=axis, keepdims=True)
        return m, m
