"""Affine: y = scale * x + shift, with a number or one value per channel (a tensor times or plus a
number in a model's ``forward``: ``x - 1``, ``0.5 * x``; BatchNorm in inference mode)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Shape
from ..errors import ArgumentError, ShapeError
from ..validation import as_float64
from .base import LinearLayer, _check_part, readonly
from .registry import register

__all__ = ["Affine"]


def _coefficient(value, name: str) -> float | np.ndarray:
    """A finite number (kept as a float) or a vector of finite numbers, one per channel."""
    if isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"Affine {name}: expected a finite number or one per channel, got {value!r}")
    if np.ndim(value) == 0:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ArgumentError(f"Affine {name}: expected a finite number or one per channel, got {value!r}") from None
        if not math.isfinite(number):
            raise ArgumentError(f"Affine {name}: expected a finite number, got {value!r}")
        return number
    vector = as_float64(value, f"Affine {name}", ndim=1)
    if vector.size == 0:
        raise ShapeError(f"Affine {name}: expected one value per channel, got an empty vector")
    return readonly(vector)


@register
class Affine(LinearLayer):
    """y = scale * x + shift, where scale and shift are numbers or vectors of one value per channel
    (axis 1 of the batch, the first axis of an example), broadcast over the other axes.

    Parameters
    ----------
    scale, shift : float or array_like of shape (C,)
        ``Affine(1.0, -1.0)`` is ``x - 1``, ``Affine(0.5)`` is ``0.5 * x``, ``Affine(-1.0, 3.0)`` is
        ``3 - x``: a model's ``forward`` writes these as arithmetic with a Python number, which
        :func:`~refattr.interop.from_torch` imports as this layer. With vectors it is a BatchNorm in
        inference mode, scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, on features
        (N, C), sequences (N, C, L) or images (N, C, H, W) alike: the importers keep a BatchNorm they
        cannot fold into the layer before it as this layer.

    A linear layer with a diagonal weight and a bias: DeepLIFT's Linear rule passes the multiplier
    scale (its sign decides which part an input feeds), integrated gradients and the gradient family
    see the constant derivative scale, and it has no kinks. No torch module computes it:
    :func:`~refattr.interop.to_torch` writes it as a small module of its own (an ``nn.Module`` that
    Captum passes its gradient through) and a graph's export as arithmetic in ``forward``.

    Examples
    --------
    >>> import numpy as np
    >>> Affine(2.0, -1.0).forward(np.array([[0.5, 3.0]]))[0]
    array([[0., 5.]])
    >>> Affine([1.0, -1.0], [0.0, 10.0]).forward(np.ones((1, 2, 3)))[0]     # per channel
    array([[[1., 1., 1.],
            [9., 9., 9.]]])
    """

    torch_modules = ()
    onnx_ops = ()

    def __init__(self, scale: float | ArrayLike = 1.0, shift: float | ArrayLike = 0.0) -> None:
        self.scale = _coefficient(scale, "scale")
        self.shift = _coefficient(shift, "shift")
        sizes = {np.size(c) for c in (self.scale, self.shift) if np.ndim(c)}
        if len(sizes) > 1:
            raise ShapeError(f"Affine: scale and shift have {sorted(sizes)} channels; give them one length (or a "
                             f"number for either)")
        self.channels = sizes.pop() if sizes else None

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is not None and self.channels is not None and (
                len(input_shape) == 0 or input_shape[0] != self.channels):
            raise ShapeError(f"Affine: expected examples with {self.channels} channels on their first axis, got "
                             f"example shape {tuple(input_shape)}")
        return input_shape

    def output_bound(self, bound: float) -> float:
        return float(np.max(np.abs(self.scale))) * bound + float(np.max(np.abs(self.shift)))

    def _along(self, c: float | np.ndarray, ndim: int) -> float | np.ndarray:
        """A coefficient shaped to broadcast over a batch of rank ``ndim`` (channels on axis 1)."""
        return c if np.ndim(c) == 0 else np.reshape(c, (1, -1) + (1,) * (ndim - 2))

    def _factor(self, part: Literal["pos", "neg"] | None, ndim: int) -> float | np.ndarray:
        _check_part(part)
        s = self.scale
        if part == "pos":
            s = np.maximum(s, 0.0) if np.ndim(s) else max(s, 0.0)
        elif part == "neg":
            s = np.minimum(s, 0.0) if np.ndim(s) else min(s, 0.0)
        return self._along(s, ndim)

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        return self._factor(part, x.ndim) * x

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        return self._factor(part, g.ndim) * g

    def affine(self, x: np.ndarray) -> np.ndarray:
        return self._along(self.scale, x.ndim) * x + self._along(self.shift, x.ndim)

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Affine:
        if rng.random() < 0.5:      # one number
            return cls(float(rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 2.0)), float(rng.normal()))
        c = int(input_shape[0])     # one value per channel, signs mixed (and a zero scale sometimes)
        scale = rng.choice([-1.0, 1.0], size=c) * rng.uniform(0.25, 2.0, size=c)
        scale[rng.random(c) < 0.1] = 0.0
        return cls(scale, rng.normal(size=c))

    def __repr__(self) -> str:
        if self.channels is None:
            return f"Affine(scale={self.scale!r}, shift={self.shift!r})"
        return f"Affine({self.channels} channels)"
