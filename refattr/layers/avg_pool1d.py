"""1-D average pooling on (N, C, L), floor mode (PyTorch's AvgPool1d with ceil_mode False): a linear layer."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._typing import Shape
from ._oned import OneD, pool_padding, padding2, single
from .avg_pool import AvgPool2D
from .base import LinearLayer
from .registry import register

__all__ = ["AvgPool1D"]


@register
class AvgPool1D(OneD, LinearLayer):
    """Average pooling: the mean of each window of ``kernel`` cells, every ``stride`` cells.

    Parameters
    ----------
    kernel : int
    stride : int, optional
        Defaults to ``kernel``.
    padding : int or (left, right)
        Zero padding, at most kernel // 2 on each side.
    count_include_pad : bool
        If True (PyTorch's default) every window is divided by ``kernel``, padded cells counting as
        zeros; if False (ONNX's default) by the number of input cells in the window.

    The layer is :class:`~refattr.layers.AvgPool2D` with kernel (1, kernel) on the view
    (N, C, 1, L) of its input. All weights are positive: for DeepLIFT ``L+`` is the pooling and
    ``L-`` is zero.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool1D(2, padding=1).forward(np.array([[[2.0, 4.0, 6.0]]]))[0]  # (0 + 2) / 2, (4 + 6) / 2
    array([[[1., 5.]]])
    """

    torch_modules = ("AvgPool1d",)
    torch_arguments = {"kernel": "kernel_size"}
    torch_requires = {"ceil_mode": False}

    def __init__(self, kernel: int, stride: int | None = None, padding: int | Sequence[int] = 0,
                 count_include_pad: bool = True) -> None:
        self.kernel = single(kernel, "AvgPool1D kernel")
        self.stride = self.kernel if stride is None else single(stride, "AvgPool1D stride")
        self.padding = padding2(padding, "AvgPool1D padding")
        pool_padding("AvgPool1D", self.kernel, self.padding)
        self.plane = AvgPool2D((1, self.kernel), stride=(1, self.stride), padding=(0, 0) + self.padding,
                               count_include_pad=count_include_pad)
        self.count_include_pad = self.plane.count_include_pad

    def __repr__(self) -> str:
        return (f"AvgPool1D(kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad})")

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> AvgPool1D:
        _, length = input_shape
        kernel = min(int(rng.integers(1, 4)), length)
        return cls(kernel, stride=int(rng.integers(1, kernel + 1)), padding=int(rng.integers(0, kernel // 2 + 1)),
                   count_include_pad=bool(rng.random() < 0.5))
