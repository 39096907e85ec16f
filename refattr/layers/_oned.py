"""What the 1-D layers share: each one *is* a 2-D layer run on a height-1 view.

A 1-D layer on sequences (N, C, L) holds the matching 2-D layer (``plane``) with kernel height 1,
stride 1 and no padding along the height, and views its input as images (N, C, 1, L) in every
pass. Forward, VJP, JVP, the kink protocol of exact integrated gradients and the DeepLIFT rules
are therefore the 2-D layer's own code, bit for bit; only shapes are translated. The 1-D layer
keeps its own constructor arguments (``kernel``, ``stride``... as ints), so that it serialises and
prints as a 1-D layer.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np

from .._typing import Shape
from ..errors import ShapeError
from ._hyper import _int

__all__ = ["OneD", "single", "padding2", "pool_padding", "up", "down"]


def single(value, name: str, minimum: int = 1) -> int:
    """An int, or a sequence of one int (as torch's 1-D modules store them: ``kernel_size=(3,)``)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is None or len(items) != 1:
            raise ShapeError(f"{name}: expected an int >= {minimum} (or a sequence of one), got {value!r}")
        value = items[0]
    return _int(value, name, minimum)


def padding2(value, name: str) -> tuple[int, int]:
    """An int, (p,) or (left, right) -> (left, right)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        p = _int(value, name, 0)
        return (p, p)
    try:
        items = tuple(value)
    except TypeError:
        raise ShapeError(f"{name}: expected an int or a pair (left, right) of ints, got {value!r}") from None
    if len(items) == 1:
        return padding2(items[0], name)
    if len(items) != 2:
        raise ShapeError(f"{name}: expected an int or a pair (left, right) of ints, got {value!r}")
    return (_int(items[0], name, 0), _int(items[1], name, 0))


def pool_padding(name: str, kernel: int, padding: tuple[int, int]) -> None:
    """Refuse padding beyond kernel // 2 on a side (as PyTorch): every window must hold an input cell."""
    if max(padding) > kernel // 2:
        raise ShapeError(f"{name} padding: {padding} exceeds half the kernel {kernel}; expected each side "
                         f"<= kernel // 2 = {kernel // 2} (as PyTorch) so that every window holds an input cell")


def up(a: np.ndarray) -> np.ndarray:
    """(N, C, L) -> the view (N, C, 1, L)."""
    return a[:, :, None, :]


def down(a: np.ndarray) -> np.ndarray:
    """(N, C, 1, L) -> the view (N, C, L)."""
    return a[:, :, 0, :]


class OneD:
    """Mixin of the 1-D layers: shapes and the linear maps, through ``self.plane`` on (N, C, 1, L).

    A linear 1-D layer (``LinearLayer`` after this class in its bases) gets ``linear``,
    ``linear_vjp`` and ``affine`` here; :class:`~refattr.layers.base.LinearLayer` derives the VJP,
    JVP and the DeepLIFT Linear rule from them in 3-D, which is the 2-D layer's rule elementwise.
    """

    plane: Any    # the 2-D layer with height 1

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is None:
            c = self.plane.output_shape(None)[0]
            return (c, None)
        if len(input_shape) != 2:
            raise ShapeError(f"{self!r}: expected (C, L) sequences (an example of rank 2; a batch (N, C, L) as "
                             f"torch's 1-D layers), got example shape {tuple(input_shape)}")
        c, length = input_shape
        try:
            out_c, _, out_length = self.plane.output_shape((c, 1, length))
        except ShapeError as exc:
            raise ShapeError(f"{self!r} on sequences of shape (C, L) = {tuple(input_shape)}: {exc} "
                             f"(computed as the 2-D layer on the height-1 view (C, 1, L))") from None
        return (out_c, out_length)

    def output_bound(self, bound: float) -> float:
        return self.plane.output_bound(bound)

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        return down(self.plane.linear(up(x), part))

    def affine(self, x: np.ndarray) -> np.ndarray:
        return down(self.plane.affine(up(x)))

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        n, c, length = input_shape
        return down(self.plane.linear_vjp(up(g), (n, c, 1, length), part))
