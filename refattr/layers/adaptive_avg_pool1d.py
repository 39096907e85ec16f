"""1-D adaptive average pooling on (N, C, L) (PyTorch's AdaptiveAvgPool1d): a linear layer."""

from __future__ import annotations

import numpy as np

from .._typing import Shape
from ._oned import OneD, single
from .adaptive_avg_pool import AdaptiveAvgPool2D
from .base import LinearLayer
from .registry import register

__all__ = ["AdaptiveAvgPool1D"]


@register
class AdaptiveAvgPool1D(OneD, LinearLayer):
    """Adaptive average pooling to ``output_size`` cells: output i is the mean of the input cells
    floor(i L / out) ... ceil((i + 1) L / out) - 1, as PyTorch's ``nn.AdaptiveAvgPool1d``.
    ``AdaptiveAvgPool1D(1)`` is global average pooling over the sequence.

    The layer is :class:`~refattr.layers.AdaptiveAvgPool2D` with output (1, output_size) on the
    view (N, C, 1, L) of its input.

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveAvgPool1D(2).forward(np.array([[[0.0, 3.0, 6.0]]]))[0]   # windows [0, 3], [3, 6]
    array([[[1.5, 4.5]]])
    """

    torch_modules = ("AdaptiveAvgPool1d",)

    def __init__(self, output_size: int) -> None:
        self.output_size = single(output_size, "AdaptiveAvgPool1D output_size")
        self.plane = AdaptiveAvgPool2D((1, self.output_size))

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool1D(output_size={self.output_size})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> AdaptiveAvgPool1D:
        _, length = input_shape
        return cls(int(rng.integers(1, length + 2)))
