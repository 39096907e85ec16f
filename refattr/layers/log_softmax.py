"""LogSoftmax along one axis of each example (torch's ``nn.LogSoftmax(dim)``), with its DeepLIFT rules
(``SOFTMAX_RULES``, docs/softmax.md)."""

from __future__ import annotations

import numpy as np

from ._softmax_math import AlongDim, log_softmax
from .base import Layer
from .registry import register

__all__ = ["LogSoftmax"]


@register
class LogSoftmax(AlongDim, Layer):
    """z_i = x_i - log Σ_k exp(x_k) over the axis ``dim`` (torch counts the batch axis as 0; a
    negative dim counts from the last axis), evaluated as (x - max) - log Σ exp(x - max), as
    ``torch.log_softmax``: never log(softmax(x)), which is -inf for logits ~745 below the largest.
    The batch axis (dim 0) and torch's deprecated implicit dim (None) are refused. Any rank; ONNX
    ``LogSoftmax`` with ``axis`` (opset >= 13 semantics: one axis).

    The Jacobian is J = I - 1 s^T (s = softmax(x)): VJP g - s Σ_i g_i, JVP d - <s, d>.

    DeepLIFT (Shrikumar et al. 2017) defines rules for element-wise non-linearities only;
    refattr's rules (``softmax_rule``, docs/softmax.md) split z_i = x_i - L(x) as DeepLIFT's Linear
    rule splits a difference, and L = log Σ exp by Rescale through exp -> sum -> log:

    - ``"centered"`` (default): on the logits minus each example's mean (which z does not see),
      m_ij = δ_ij - μ_j - (its mean over j), μ_j = s'_j φ(Δx̄_j) / φ(ΔL̄), φ(t) = (e^t - 1) / t.
    - ``"logsumexp"``: m_ij = δ_ij - μ_j with the logits as they are.

    Both keep summation-to-delta exactly, tend to the Jacobian as Δx -> 0, and give the same
    multipliers under ``rule="rescale"`` and ``"reveal_cancel"``.

    Warnings
    --------
    Captum 0.9.0's DeepLift does not hook ``nn.LogSoftmax`` (it is not in its list of supported
    non-linearities): the plain gradient at the input passes through it, and summation-to-delta
    does not hold.

    Examples
    --------
    >>> import numpy as np
    >>> layer = LogSoftmax(dim=-1)
    >>> np.exp(layer.forward(np.log([[1.0, 3.0]]))[0])  # 1 / (1 + 3), 3 / (1 + 3)
    array([[0.25, 0.75]])
    """

    torch_modules = ("LogSoftmax",)
    onnx_ops = ("LogSoftmax",)
    captum = "gradient"         # not in Captum 0.9.0's SUPPORTED_NON_LINEAR: the plain gradient

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
        axis = self.axis(x.ndim)
        z = log_softmax(x, axis)
        with np.errstate(under="ignore"):
            return z, (np.exp(z), axis)

    def vjp(self, g: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
        s, axis = cache
        return g - s * g.sum(axis=axis, keepdims=True)

    def jvp(self, dx: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
        s, axis = cache
        return dx - (s * dx).sum(axis=axis, keepdims=True)

    def _output_rescale(self, s: np.ndarray, s_ref: np.ndarray, dz: np.ndarray) -> None:
        return None             # nothing after x - L(x)
