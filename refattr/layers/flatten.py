"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...), row-major (as torch.nn.Flatten and ONNX)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .._typing import Shape
from ..errors import ShapeError
from .base import LinearLayer, _check_part
from .registry import register

__all__ = ["Flatten"]


@register
class Flatten(LinearLayer):
    """Reshape each example to a vector in row-major (C) order.

    As a linear map its weights are all +1, so for DeepLIFT ``L+`` is the reshape and ``L-`` is zero.
    """

    torch_modules = ("Flatten",)
    torch_requires = {"start_dim": 1, "end_dim": -1}    # flatten each example
    onnx_ops = ("Flatten", "Reshape")

    def output_shape(self, input_shape: Shape | None) -> Shape:
        if input_shape is None:
            return (None,)
        if len(input_shape) == 0:
            raise ShapeError("Flatten: expected an example of rank >= 1, got a scalar per example")
        if any(d is None for d in input_shape):
            return (None,)
        return (math.prod(input_shape),)

    def output_bound(self, bound: float) -> float:
        return bound                      # a reshape

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        flat = x.reshape(x.shape[0], -1)
        return np.zeros_like(flat) if part == "neg" else flat

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        out = g.reshape(input_shape)
        return np.zeros_like(out) if part == "neg" else out

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Flatten:
        return cls()
