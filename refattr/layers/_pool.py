"""What the two 2-D pooling layers share: window hyperparameters, output shape, random instances."""

from __future__ import annotations

import numpy as np

from .._typing import Shape
from ..errors import ShapeError
from ._hyper import padding4, pair, window_output_size
from .base import check_rank


class _Pool2D:
    """Shared hyperparameters and shape logic of the two pooling layers."""

    def _init_window(self, kernel, stride, padding):
        name = type(self).__name__
        self.kernel = pair(kernel, f"{name} kernel")
        self.stride = self.kernel if stride is None else pair(stride, f"{name} stride")
        self.padding = padding4(padding, f"{name} padding")
        top, bottom, left, right = self.padding
        if max(top, bottom) > self.kernel[0] // 2 or max(left, right) > self.kernel[1] // 2:
            raise ShapeError(
                f"{name} padding: {self.padding} exceeds half the kernel {self.kernel}; expected each "
                f"side <= kernel // 2 (as PyTorch) so that every window holds at least one input cell"
            )

    def output_shape(self, input_shape: Shape | None) -> Shape:
        check_rank(self, input_shape, 3, "(C, H, W) images")
        if input_shape is None:
            return (None, None, None)
        c, h, w = input_shape
        top, bottom, left, right = self.padding
        oh = window_output_size(h, top, bottom, self.kernel[0], self.stride[0])
        ow = window_output_size(w, left, right, self.kernel[1], self.stride[1])
        if (oh is not None and oh < 1) or (ow is not None and ow < 1):
            raise ShapeError(
                f"{type(self).__name__}: input of size {h}x{w} is smaller than the kernel {self.kernel} "
                f"after padding {self.padding}"
            )
        return (c, oh, ow)

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> _Pool2D:
        _, h, w = input_shape
        kh, kw = min(int(rng.integers(1, 4)), h), min(int(rng.integers(1, 4)), w)
        stride = (int(rng.integers(1, kh + 1)), int(rng.integers(1, kw + 1)))
        return cls((kh, kw), stride=stride)
