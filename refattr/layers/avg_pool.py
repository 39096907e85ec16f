"""2-D average pooling, NCHW, floor mode (no ceil_mode): a linear layer."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from .. import kernels
from ..errors import ArgumentError
from ._pool import _Pool2D
from .base import LinearLayer, _check_part
from .registry import register

__all__ = ["AvgPool2D"]


@register
class AvgPool2D(_Pool2D, LinearLayer):
    """Average pooling: the mean of each kernel window.

    Parameters
    ----------
    kernel : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel``.
    padding : int, (int, int) or (top, bottom, left, right)
        Zero padding, at most kernel // 2 on each side.
    count_include_pad : bool
        If True (PyTorch's default) every window is divided by kH * kW, padded cells counting as
        zeros; if False (ONNX's default) by the number of input cells in the window.

    All weights are positive, so for DeepLIFT ``L+`` is the pooling itself and ``L-`` is zero.
    """

    torch_modules = ("AvgPool2d",)
    onnx_ops = ("AveragePool",)

    def output_bound(self, bound: float) -> float:
        # the kernel sums a window's kH * kW cells before dividing
        return self.kernel[0] * self.kernel[1] * bound

    def __init__(self, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0, count_include_pad: bool = True) -> None:
        self._init_window(kernel, stride, padding)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            # bool() would turn any non-empty string, 'no' and 'False' included, into True
            raise ArgumentError(
                f"AvgPool2D count_include_pad: expected True or False, got {count_include_pad!r} "
                f"({type(count_include_pad).__name__}); True divides every window by kH * kW (PyTorch's "
                f"default), False by the number of input cells in the window (ONNX's default)"
            )
        self.count_include_pad = bool(count_include_pad)

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        out = kernels.avgpool2d_forward(np.ascontiguousarray(x), self.kernel, self.stride, self.padding,
                                        self.count_include_pad)
        return np.zeros_like(out) if part == "neg" else out

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        out = kernels.avgpool2d_vjp(np.ascontiguousarray(g), (int(input_shape[2]), int(input_shape[3])),
                                    self.kernel, self.stride, self.padding, self.count_include_pad)
        return np.zeros_like(out) if part == "neg" else out

    def __repr__(self) -> str:
        return (f"AvgPool2D(kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad})")
