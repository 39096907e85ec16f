"""2-D adaptive average pooling, NCHW (PyTorch's AdaptiveAvgPool2d, ONNX's GlobalAveragePool): a linear layer."""

from __future__ import annotations

import numbers
from typing import Literal, Sequence

import numpy as np

from .._typing import Shape
from ..errors import ShapeError
from ._hyper import _int
from .base import LinearLayer, _check_part, check_rank
from .registry import register

__all__ = ["AdaptiveAvgPool2D", "adaptive_windows"]


def adaptive_windows(size: int, out: int) -> np.ndarray:
    """The averaging matrix (out, size) of one axis: row i is 1 / (e_i - s_i) on the cells
    s_i = floor(i size / out) <= j < e_i = ceil((i + 1) size / out), 0 elsewhere (PyTorch's windows:
    they cover the axis, overlap by at most one cell when ``out`` does not divide ``size``, and
    repeat cells when out > size)."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    j = np.arange(size)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return inside / (end - start)[:, None].astype(np.float64)


def _size(value, name):
    if value is None:
        return None
    return _int(value, name, 1)


@register
class AdaptiveAvgPool2D(LinearLayer):
    """Adaptive average pooling to a fixed output size (OH, OW): output (i, j) is the mean of the
    input cells in rows floor(i H / OH) ... ceil((i + 1) H / OH) - 1 and columns
    floor(j W / OW) ... ceil((j + 1) W / OW) - 1, as PyTorch's ``nn.AdaptiveAvgPool2d``.

    Parameters
    ----------
    output_size : int, (int or None, int or None)
        An int is (s, s); None keeps that axis's input size. ``AdaptiveAvgPool2D(1)`` (the default)
        is global average pooling, ONNX's ``GlobalAveragePool``.

    Computed as ``A_H x A_W^T`` per channel with the averaging matrix A of each axis
    (:func:`adaptive_windows`); the mean of a rectangle is the mean of its rows' means, so this is
    PyTorch's sum-then-divide up to rounding. All weights are positive: for DeepLIFT ``L+`` is the
    pooling and ``L-`` is zero.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(3.0).reshape(1, 1, 1, 3)                # [0, 1, 2] -> windows [0, 1], [1, 2]
    >>> AdaptiveAvgPool2D((1, 2)).forward(x)[0]
    array([[[[0.5, 1.5]]]])
    """

    torch_modules = ("AdaptiveAvgPool2d",)
    onnx_ops = ("GlobalAveragePool",)

    def __init__(self, output_size: int | Sequence[int | None] = 1) -> None:
        if output_size is None or isinstance(output_size, numbers.Integral):
            output_size = (output_size, output_size)
        try:
            items = tuple(output_size)
        except TypeError:
            items = ()
        if len(items) != 2:
            raise ShapeError(f"AdaptiveAvgPool2D output_size: expected an int or a pair (height, width) of ints or "
                             f"None (None keeps the input's size), got {output_size!r}")
        self.output_size = tuple(_size(v, "AdaptiveAvgPool2D output_size") for v in items)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        check_rank(self, input_shape, 3, "(C, H, W) images")
        if input_shape is None:
            return (None,) + tuple(self.output_size)
        c, h, w = input_shape
        oh, ow = self.output_size
        return (c, h if oh is None else oh, w if ow is None else ow)

    def output_bound(self, bound: float) -> float:
        return bound     # means of cells; every partial sum of A x has weights summing to <= 1

    def _matrices(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        oh, ow = self.output_size
        return adaptive_windows(h, h if oh is None else oh), adaptive_windows(w, w if ow is None else ow)

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        a_h, a_w = self._matrices(x.shape[2], x.shape[3])
        y = a_h @ x @ a_w.T
        return np.zeros_like(y) if part == "neg" else y

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        a_h, a_w = self._matrices(int(input_shape[2]), int(input_shape[3]))
        out = a_h.T @ g @ a_w
        return np.zeros_like(out) if part == "neg" else out

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool2D(output_size={self.output_size})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> AdaptiveAvgPool2D:
        _, h, w = input_shape
        return cls(tuple(None if rng.random() < 0.2 else int(rng.integers(1, s + 2)) for s in (h, w)))
