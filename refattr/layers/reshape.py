"""Reshape: each example to a given shape, row-major (as numpy.reshape and torch.reshape)."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError, ShapeError
from .flatten import ReshapingLayer
from .registry import register

__all__ = ["Reshape"]


@register
class Reshape(ReshapingLayer):
    """Reshape each example to ``shape`` in row-major (C) order: (N, *input_shape) -> (N, *shape),
    the batch axis untouched, as ``x.reshape((len(x),) + shape)`` in NumPy or PyTorch.

    Parameters
    ----------
    shape : tuple of int
        One example's output shape (no batch axis): sizes >= 1, of which one may be -1, inferred
        so that the number of elements is unchanged. ``Reshape((4, 2))`` maps (N, 8) to
        (N, 4, 2); ``Reshape((-1,))`` is ``Flatten()``.

    Notes
    -----
    A linear map whose weights are all +1 (each output element is one input element); DeepLIFT
    passes the parts of the difference from reference and their multipliers through, reshaped
    (:class:`~refattr.layers.flatten.ReshapingLayer`).

    Warnings
    --------
    PyTorch has no module for it (``nn.Unflatten(dim, sizes)`` splits one axis only, which is
    ``Reshape`` only for examples of rank 1), so a network holding a Reshape does not export with
    :func:`~refattr.interop.to_torch`; ``nn.Flatten()`` followed by ``nn.Unflatten(1, shape)``
    computes the same function.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Reshape((4, 2))
    >>> layer.output_shape((8,))
    (4, 2)
    >>> layer.forward(np.arange(8.0)[None])[0]        # rows (0 1), (2 3), (4 5), (6 7)
    array([[[0., 1.],
            [2., 3.],
            [4., 5.],
            [6., 7.]]])
    >>> Reshape((2, -1)).output_shape((3, 4))         # 12 elements: -1 is 12 / 2 = 6
    (2, 6)
    """

    piecewise_linear = True
    torch_modules = ()       # no torch module reshapes each example (see the warning above)
    onnx_ops = ()
    captum = "linear"        # a linear map: Captum's DeepLift passes the plain gradient

    def __init__(self, shape: Sequence[int]) -> None:
        if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
            shape = (shape,)
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise ArgumentError(f"Reshape shape: expected a tuple of ints (one example's shape, no batch axis), "
                                f"got {shape!r}; e.g. Reshape((4, 2)) maps (N, 8) to (N, 4, 2)")
        sizes = tuple(shape)
        bad = [d for d in sizes if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral)
               or not (d >= 1 or d == -1)]
        if not sizes or bad or sizes.count(-1) > 1:
            found = ("no sizes" if not sizes else f"sizes {bad}" if bad else "more than one -1")
            raise ArgumentError(f"Reshape shape: expected one or more ints, each >= 1, one of which may be -1 "
                                f"(inferred), got {shape!r} ({found}); e.g. Reshape((4, 2)) or Reshape((2, -1))")
        self.shape = tuple(int(d) for d in sizes)

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is None or any(d is None for d in input_shape):
            return tuple(None if d == -1 else d for d in self.shape)
        size = math.prod(input_shape)
        known = math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.shape)
        if -1 not in self.shape and size == known:
            return self.shape
        holds = f"a multiple of {known}" if -1 in self.shape else f"{known}"
        raise ShapeError(f"{self!r}: an example of shape {tuple(input_shape)} has {size} elements, and shape "
                         f"{self.shape} holds {holds}; pass a shape whose sizes multiply to {size} (one of them "
                         f"may be -1), e.g. Reshape(({size},))")

    def __repr__(self) -> str:
        return f"Reshape({self.shape})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Reshape:
        """The example's prime factors dealt at random onto as many axes as the example has (the
        rank stays, so that :func:`~refattr.testing.random_network` keeps a stack of images), one
        of which is -1 half of the time."""
        size, factors, p = math.prod(input_shape), [], 2
        while p * p <= size:
            while size % p == 0:
                factors.append(p)
                size //= p
            p += 1
        factors += [size] if size > 1 else []
        sizes = [1] * max(len(input_shape), 1)
        for f in factors:
            sizes[int(rng.integers(len(sizes)))] *= f
        if rng.random() < 0.5:
            sizes[int(rng.integers(len(sizes)))] = -1
        return cls(tuple(sizes))
