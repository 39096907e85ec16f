"""Softmax along one axis of each example (torch's ``nn.Softmax(dim)``), with its DeepLIFT rules
(``SOFTMAX_RULES``, docs/softmax.md)."""

from __future__ import annotations

import numpy as np

from ._softmax_math import AlongDim, exp_rescale, softmax
from .base import Layer
from .registry import register

__all__ = ["Softmax"]


@register
class Softmax(AlongDim, Layer):
    """s_i = exp(x_i) / Σ_k exp(x_k) over the axis ``dim`` (torch counts the batch axis as 0; a
    negative dim counts from the last axis), evaluated as exp(x - max) / Σ exp(x - max): no
    overflow for any finite logits, as ``torch.softmax``. The batch axis (dim 0) and torch's
    deprecated implicit dim (None) are refused. Any rank; ONNX ``Softmax`` with ``axis`` (opset
    >= 13 semantics: one axis).

    The Jacobian is J = diag(s) - s s^T along the axis: VJP s ⊙ (g - <g, s>), JVP s ⊙ (d - <s, d>).

    DeepLIFT (Shrikumar et al. 2017) defines rules for element-wise non-linearities only, and
    softmax mixes every logit of its axis. refattr's rules (``softmax_rule``, docs/softmax.md)
    apply DeepLIFT's own Linear and Rescale rules to softmax written as exp(x_i - log Σ_k exp x_k):

    - ``"centered"`` (default): after subtracting each example's mean logit (softmax does not
      change), m_ij = r_i (δ_ij - μ_j) - (its mean over j), with μ_j = s'_j φ(Δx̄_j) / φ(ΔL̄),
      r_i = Δs_i / Δz_i and φ(t) = (e^t - 1) / t, x̄ the centered logits, L the log-sum-exp and
      z = log softmax. The multipliers do not change when x and x' are shifted by different
      constants, each row sums to 0 as the Jacobian's does, and two classes reduce to DeepLIFT's
      Rescale on the sigmoid of the logits' difference.
    - ``"logsumexp"``: the same without centering.

    Both keep summation-to-delta exactly (Σ_j m_ij Δx_j = Δs_i, to rounding), tend to the
    Jacobian as Δx -> 0, are closed forms, and give the same multipliers under ``rule="rescale"``
    and ``"reveal_cancel"`` (both parts of a logit get one multiplier, from its total Δx).

    Warnings
    --------
    Captum 0.9.0's DeepLift hooks ``nn.Softmax`` with its own rule: an element-wise quotient
    Δs_i / Δx_i (the gradient below |Δx_i| = 1e-10) minus its mean over every element of the
    batch of inputs and baselines together, so one example's attribution depends on its
    batchmates and summation-to-delta does not hold. It is reproduced, for comparisons only, in
    ``refattr.interop._captum_softmax``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Softmax(dim=1)
    >>> layer.forward(np.log([[1.0, 3.0]]))[0]          # 1 / (1 + 3), 3 / (1 + 3)
    array([[0.25, 0.75]])
    """

    torch_modules = ("Softmax",)
    onnx_ops = ("Softmax",)
    captum = "softmax"          # Captum 0.9.0 hooks nn.Softmax with its own function `softmax`

    def output_bound(self, bound: float) -> float:
        return 1.0              # 0 <= s_i <= 1, and the sum of exp(x - max) is at most the axis's size

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
        axis = self.axis(x.ndim)
        s = softmax(x, axis)
        return s, (s, axis)

    def vjp(self, g: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
        s, axis = cache
        return s * (g - (g * s).sum(axis=axis, keepdims=True))

    def jvp(self, dx: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
        s, axis = cache
        return s * (dx - (s * dx).sum(axis=axis, keepdims=True))

    def _output_rescale(self, s: np.ndarray, s_ref: np.ndarray, dz: np.ndarray) -> np.ndarray:
        return exp_rescale(s, s_ref, dz)
