"""2-D convolution (cross-correlation, as PyTorch and ONNX), NCHW."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import kernels
from .._typing import Shape
from ..errors import ShapeError
from ..validation import as_float64
from ._hyper import _int, padding4, pair, window_output_size
from .base import LinearLayer, _check_part, check_rank, readonly
from .registry import register

__all__ = ["Conv2D"]


@register
class Conv2D(LinearLayer):
    """2-D convolution ``y[n, o] = b[o] + sum_{c, i, j} W[o, c, i, j] x[n, g*C/G + c, s*p + d*i, ...]``.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in // groups, kH, kW)
    bias : array_like, shape (C_out,), or None
    stride, dilation : int or (int, int)
    padding : int, (int, int) or (top, bottom, left, right)
        Zero padding; four ints allow the asymmetric padding ONNX models carry.
    groups : int
        C_out and C_in must both be divisible by it; output channel o reads the input channels of
        group o // (C_out // groups). ``groups == C_in == C_out`` is a depthwise convolution.

    Notes
    -----
    The output size along each axis is floor((H + top + bottom - dilation * (kH - 1) - 1) / stride) + 1.
    The loops run in numba kernels (``refattr.kernels``), each with a NumPy twin tested against it.
    """

    torch_modules = ("Conv2d",)
    onnx_ops = ("Conv",)

    def __init__(self, weight: ArrayLike, bias: ArrayLike | None = None, stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> None:
        self.weight = as_float64(weight, "Conv2D weight", ndim=4)
        if 0 in self.weight.shape:
            raise ShapeError(f"Conv2D weight: expected (C_out, C_in // groups, kH, kW) with no zero size, got {self.weight.shape}")
        self.stride = pair(stride, "Conv2D stride")
        self.padding = padding4(padding, "Conv2D padding")
        self.dilation = pair(dilation, "Conv2D dilation")
        self.groups = _int(groups, "Conv2D groups", 1)
        if self.weight.shape[0] % self.groups:
            raise ShapeError(
                f"Conv2D groups: {self.groups} does not divide C_out = {self.weight.shape[0]} "
                f"(weight shape {self.weight.shape})"
            )
        self.bias = None
        if bias is not None:
            self.bias = as_float64(bias, "Conv2D bias", ndim=1)
            if self.bias.shape != (self.weight.shape[0],):
                raise ShapeError(f"Conv2D bias: expected shape ({self.weight.shape[0]},), got {self.bias.shape}")
        # private copies for the kernels, read-only views for everyone else
        weight, self._bias = self.weight.copy(), None if self.bias is None else self.bias.copy()
        self.weight, self.bias = readonly(weight), None if self._bias is None else readonly(self._bias)
        self._signed = {None: weight, "pos": np.maximum(weight, 0.0), "neg": np.minimum(weight, 0.0)}
        # |y| <= sum over one output channel's taps of |W| |x| + |b| (padded cells are 0)
        self._gain = float(np.abs(self.weight).sum(axis=(1, 2, 3)).max())
        self._bias_bound = 0.0 if self.bias is None else float(np.abs(self.bias).max())

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def output_shape(self, input_shape: Shape | None) -> Shape:
        check_rank(self, input_shape, 3, "(C, H, W) images")
        if input_shape is None:
            return (self.out_channels, None, None)
        c, h, w = input_shape
        if c is not None and c != self.in_channels:
            raise ShapeError(
                f"Conv2D: expected {self.in_channels} input channels (weight {self.weight.shape}, "
                f"groups={self.groups}), got {c}"
            )
        kh, kw = self.weight.shape[2:]
        top, bottom, left, right = self.padding
        oh = window_output_size(h, top, bottom, self.dilation[0] * (kh - 1) + 1, self.stride[0])
        ow = window_output_size(w, left, right, self.dilation[1] * (kw - 1) + 1, self.stride[1])
        if (oh is not None and oh < 1) or (ow is not None and ow < 1):
            raise ShapeError(
                f"Conv2D: input of size {h}x{w} is smaller than the dilated kernel "
                f"{self.dilation[0] * (kh - 1) + 1}x{self.dilation[1] * (kw - 1) + 1} after padding {self.padding}"
            )
        return (self.out_channels, oh, ow)

    def output_bound(self, bound: float) -> float:
        return self._gain * bound + self._bias_bound

    # forward -------------------------------------------------------------------------------
    def _convolve(self, x, weight, bias=None):
        return kernels.conv2d_forward(np.ascontiguousarray(x), weight, self.stride, self.padding,
                                      self.dilation, self.groups, bias)

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        return self._convolve(x, self._signed[part])

    def affine(self, x: np.ndarray) -> np.ndarray:
        """L(x) + b: the kernel adds the bias to each finished sum as it writes the output."""
        return self._convolve(x, self._signed[None], self._bias)

    # backward ------------------------------------------------------------------------------
    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        return kernels.conv2d_input_vjp(np.ascontiguousarray(g), self._signed[part],
                                        (int(input_shape[2]), int(input_shape[3])),
                                        self.stride, self.padding, self.dilation, self.groups)

    def param_vjp(self, g: np.ndarray, cache: np.ndarray) -> dict[str, np.ndarray | None]:
        """Gradients of <g, y> with respect to weight and bias (for training)."""
        gw = kernels.conv2d_weight_vjp(np.ascontiguousarray(cache), np.ascontiguousarray(g),
                                       self.weight.shape[2:], self.stride, self.padding,
                                       self.dilation, self.groups)
        return {"weight": gw, "bias": None if self.bias is None else g.sum(axis=(0, 2, 3))}

    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels} -> {self.out_channels}, kernel={tuple(self.weight.shape[2:])}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups})")

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Conv2D:
        c, h, w = input_shape
        groups = int(rng.choice([g for g in (1, 2, c) if c % g == 0]))
        c_out = groups * int(rng.integers(1, 3))
        kh, kw = (int(k) for k in rng.integers(1, 4, size=2))
        kh, kw = min(kh, h), min(kw, w)
        padding = tuple(int(p) for p in rng.integers(0, 2, size=4))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        weight = rng.normal(size=(c_out, c // groups, kh, kw)) / np.sqrt(c // groups * kh * kw)
        return cls(weight, rng.normal(size=c_out) * 0.3, stride=stride, padding=padding, groups=groups)
