"""Concat: values joined along one axis (Inception-style branches, multi-modal models)."""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError, ShapeError
from ._join import LinearJoin, Part
from .base import _check_part
from .registry import register

__all__ = ["Concat"]


@register
class Concat(LinearJoin):
    """Concatenate two or more inputs along ``axis``, as ``torch.cat(xs, dim=axis)``.

    Parameters
    ----------
    axis : int
        Counted as torch counts ``dim``, the batch axis included: 1 (the default) is the channel
        or feature axis; negative values count from the last axis. The batch axis (0) cannot be
        joined along. Every other axis must agree between the inputs.

    Notes
    -----
    A linear layer whose weights are all +1 (each output is one input neuron), so DeepLIFT's
    Linear rule passes each input neuron's multiplier straight through.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Concat
    >>> Concat().forward((np.array([[1.0]]), np.array([[2.0, 3.0]])))[0]
    array([[1., 2., 3.]])
    """

    torch_modules = ()
    onnx_ops = ()

    def __init__(self, axis: int = 1) -> None:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral) or axis == 0:
            raise ArgumentError(f"Concat axis: expected a non-zero int (axis 0 is the batch axis; 1 is the first "
                                f"axis of an example, negative counts from the end), got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank: int) -> int:
        """The axis in a batch array of ``rank`` axes (batch included)."""
        axis = self.axis if self.axis > 0 else rank + self.axis
        if not 1 <= axis < rank:
            raise ShapeError(f"Concat(axis={self.axis}): examples of rank {rank - 1} have no such axis "
                             f"(counting the batch axis as 0, as torch.cat's dim)")
        return axis

    def output_shape(self, input_shapes: Sequence[Shape | None]) -> Shape | None:
        self.check_arity(len(input_shapes))
        if any(s is None for s in input_shapes):
            return None
        ranks = {len(s) for s in input_shapes}
        if len(ranks) != 1:
            raise ShapeError(f"Concat: its inputs have example shapes of different ranks "
                             f"{[tuple(s) for s in input_shapes]}; concatenated values must have the same rank")
        axis = self._axis(ranks.pop() + 1) - 1
        out = list(input_shapes[0])
        for s in input_shapes[1:]:
            for i, (a, b) in enumerate(zip(out, s)):
                if i != axis and a is not None and b is not None and a != b:
                    raise ShapeError(f"Concat(axis={self.axis}): example shapes {[tuple(s) for s in input_shapes]} "
                                     f"differ on axis {i + 1}; every axis but the joined one must agree")
        sizes = [s[axis] for s in input_shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out)

    def output_bound(self, bounds: Sequence[float]) -> float:
        return float(max(bounds))

    def linear(self, xs: Sequence[np.ndarray], part: Part | None = None) -> np.ndarray:
        _check_part(part)
        y = np.concatenate(xs, axis=self._axis(xs[0].ndim))
        return np.zeros_like(y) if part == "neg" else y

    def linear_vjp(self, g: np.ndarray, shapes: Sequence[tuple[int, ...]],
                   part: Part | None = None) -> tuple[np.ndarray, ...]:
        _check_part(part)
        axis = self._axis(g.ndim)
        cuts = np.cumsum([s[axis] for s in shapes])[:-1]
        pieces = np.split(g, cuts, axis=axis)
        if part == "neg":
            return tuple(np.zeros_like(p) for p in pieces)
        return tuple(np.ascontiguousarray(p) for p in pieces)

    def __repr__(self) -> str:
        return "Concat()" if self.axis == 1 else f"Concat(axis={self.axis})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Concat:
        return cls(int(rng.integers(1, len(input_shape) + 1)))
