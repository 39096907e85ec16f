"""1-D convolution (cross-correlation, as PyTorch's Conv1d and ONNX's Conv on (N, C, L))."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Shape
from ..errors import ShapeError
from ..validation import as_float64
from ._hyper import _int
from ._oned import OneD, padding2, single
from .base import LinearLayer
from .conv import Conv2D
from .registry import register

__all__ = ["Conv1D"]


@register
class Conv1D(OneD, LinearLayer):
    """1-D convolution ``y[n, o, t] = b[o] + sum_{c, i} W[o, c, i] x[n, g*C/G + c, s*t - left + d*i]``.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in // groups, k)
    bias : array_like, shape (C_out,), or None
    stride, dilation : int
    padding : int or (left, right)
        Zero padding; a pair allows the asymmetric padding of ONNX models and of torch's
        ``padding='same'`` with an even dilated kernel.
    groups : int
        C_out and C_in must both be divisible by it (``groups == C_in == C_out``: depthwise).

    Notes
    -----
    The output length is floor((L + left + right - dilation * (k - 1) - 1) / stride) + 1. The layer
    is :class:`~refattr.layers.Conv2D` with kernel (1, k) on the view (N, C, 1, L) of its input, so
    every pass (and the DeepLIFT Linear rule) is the 2-D layer's, bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv1D([[[1.0, -1.0]]])          # y[t] = x[t] - x[t + 1]
    >>> layer.forward(np.array([[[1.0, 4.0, 9.0]]]))[0]
    array([[[-3., -5.]]])
    """

    torch_modules = ("Conv1d",)

    def __init__(self, weight: ArrayLike, bias: ArrayLike | None = None, stride: int = 1,
                 padding: int | Sequence[int] = 0, dilation: int = 1, groups: int = 1) -> None:
        weight = as_float64(weight, "Conv1D weight", ndim=3)
        if 0 in weight.shape:
            raise ShapeError(f"Conv1D weight: expected (C_out, C_in // groups, k) with no zero size, got {weight.shape}")
        self.stride = single(stride, "Conv1D stride")
        self.padding = padding2(padding, "Conv1D padding")
        self.dilation = single(dilation, "Conv1D dilation")
        self.groups = _int(groups, "Conv1D groups", 1)
        if weight.shape[0] % self.groups:
            raise ShapeError(f"Conv1D groups: {self.groups} does not divide C_out = {weight.shape[0]} "
                             f"(weight shape {weight.shape})")
        if bias is not None:
            bias = as_float64(bias, "Conv1D bias", ndim=1)
            if bias.shape != (weight.shape[0],):
                raise ShapeError(f"Conv1D bias: expected shape ({weight.shape[0]},), got {bias.shape}")
        self.plane = Conv2D(weight[:, :, None, :], bias, stride=(1, self.stride),
                            padding=(0, 0) + self.padding, dilation=(1, self.dilation), groups=self.groups)
        self.weight = self.plane.weight[:, :, 0, :]       # read-only views of the 2-D layer's parameters
        self.bias = self.plane.bias

    @property
    def in_channels(self) -> int:
        return self.plane.in_channels

    @property
    def out_channels(self) -> int:
        return self.plane.out_channels

    def param_vjp(self, g: np.ndarray, cache: np.ndarray) -> dict[str, np.ndarray | None]:
        """Gradients of <g, y> with respect to weight and bias (for training)."""
        grads = self.plane.param_vjp(g[:, :, None, :], cache[:, :, None, :])
        return {"weight": grads["weight"][:, :, 0, :], "bias": grads["bias"]}

    def __repr__(self) -> str:
        return (f"Conv1D({self.in_channels} -> {self.out_channels}, kernel={self.weight.shape[2]}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups})")

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Conv1D:
        c, length = input_shape
        groups = int(rng.choice([g for g in (1, 2, c) if c % g == 0]))
        c_out = groups * int(rng.integers(1, 3))
        dilation = int(rng.integers(1, 3))
        k = max(1, min(int(rng.integers(1, 4)), (length - 1) // dilation + 1))
        padding = tuple(int(p) for p in rng.integers(0, 2, size=2))
        weight = rng.normal(size=(c_out, c // groups, k)) / np.sqrt(c // groups * k)
        return cls(weight, rng.normal(size=c_out) * 0.3, stride=int(rng.integers(1, 3)), padding=padding,
                   dilation=dilation, groups=groups)
