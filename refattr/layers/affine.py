"""Affine: y = scale * x + shift, element by element (a tensor times or plus a number in a model's
``forward``: ``x - 1``, ``0.5 * x``, ``x / 4``)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from .base import LinearLayer, _check_part
from .registry import register

__all__ = ["Affine"]


def _finite(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ArgumentError(f"Affine {name}: expected a finite number, got {value!r}")
    return float(value)


@register
class Affine(LinearLayer):
    """y = scale * x + shift for every entry of every example (any shape).

    Parameters
    ----------
    scale, shift : float
        ``Affine(1.0, -1.0)`` is ``x - 1``, ``Affine(0.5)`` is ``0.5 * x``, ``Affine(-1.0, 3.0)`` is
        ``3 - x``. A model's ``forward`` writes these as arithmetic with a Python number, which
        :func:`~refattr.interop.from_torch` imports as this layer.

    A linear layer with the diagonal weight ``scale`` and the bias ``shift``: DeepLIFT's Linear rule
    passes multiplier ``scale`` (its sign decides which part an input feeds), integrated gradients
    and the gradient family see the constant derivative ``scale``, and it has no kinks. No torch
    module computes it: :func:`~refattr.interop.to_torch` writes it as arithmetic in a graph's
    ``forward`` and refuses it in an ``nn.Sequential``.

    Examples
    --------
    >>> import numpy as np
    >>> Affine(2.0, -1.0).forward(np.array([[0.5, 3.0]]))[0]
    array([[0., 5.]])
    """

    torch_modules = ()
    onnx_ops = ()

    def __init__(self, scale: float = 1.0, shift: float = 0.0) -> None:
        self.scale = _finite(scale, "scale")
        self.shift = _finite(shift, "shift")

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        return input_shape

    def output_bound(self, bound: float) -> float:
        return abs(self.scale) * bound + abs(self.shift)

    def _factor(self, part: Literal["pos", "neg"] | None) -> float:
        _check_part(part)
        if part == "pos":
            return max(self.scale, 0.0)
        if part == "neg":
            return min(self.scale, 0.0)
        return self.scale

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        return self._factor(part) * x

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        return self._factor(part) * g

    def affine(self, x: np.ndarray) -> np.ndarray:
        return self.scale * x + self.shift

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Affine:
        return cls(float(rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 2.0)), float(rng.normal()))

    def __repr__(self) -> str:
        return f"Affine(scale={self.scale!r}, shift={self.shift!r})"
