"""Flatten: merge the axes start_dim ... end_dim of each example into one, row-major (as
torch.nn.Flatten; ONNX's Flatten with axis 1 is the default, every axis of each example); and
ReshapingLayer, the base of the layers that only reshape each example (Flatten, Reshape)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import numpy as np

from .._typing import DeepLiftRule, MaxPoolRule, Shape
from ..errors import ArgumentError, ShapeError
from .base import DeltaPair, LinearLayer, _check_part
from .registry import register

__all__ = ["Flatten", "ReshapingLayer"]


class ReshapingLayer(LinearLayer):
    """Base of the layers that only reshape each example, row-major: the output of a batch x is
    ``x.reshape((N,) + output_shape(x.shape[1:]))``, so a subclass defines ``output_shape`` alone.

    A linear map whose weights are all +1 (each output element is one input element): the VJP
    reshapes g back and the JVP reshapes dx.

    DeepLIFT passes the input's parts Δx+ and Δx- through, reshaped, and the multipliers of the
    output's two parts back to the input's two parts, as the original DeepLIFT code's ``Flatten``
    does (Shrikumar et al. 2017; github.com/kundajelab/deeplift, ``deeplift/layers/core.py``), so a
    reshape changes no attribution: RevealCancel through ReLU -> Flatten -> Tanh equals ReLU -> Tanh.
    Where the input's split is max(Δx, 0), min(Δx, 0) (the network input, a Rescale activation's
    output) this is the Linear rule with weights +1; where it is not (after RevealCancel, or a
    linear layer with weights of both signs), the Linear rule would replace the input's split by
    the sign of each neuron's total Δx, and the layers after the reshape would see other parts
    than the layers before it produced.
    """

    piecewise_linear = True
    captum = "linear"      # a linear map: Captum's DeepLift passes the plain gradient

    def output_bound(self, bound: float) -> float:
        return bound                      # a reshape

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        y = x.reshape((x.shape[0],) + tuple(self.output_shape(x.shape[1:])))
        return np.zeros_like(y) if part == "neg" else y

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        out = g.reshape(input_shape)
        return np.zeros_like(out) if part == "neg" else out

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        # it passes its input's parts on: they are needed where its own are read, and under
        # Rescale no layer reads parts (deeplift_layers, which reports them, computes all)
        return rule != "rescale"

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if not parts:
            return None, None, cache.shape
        if inp.pos is None:
            # the input's parts were not computed (under Rescale, only a reader that is not a
            # registered layer asks for ours): the Linear rule's split, by the sign of Δ
            return np.maximum(y - y_ref, 0.0), np.minimum(y - y_ref, 0.0), cache.shape
        return inp.pos.reshape(y.shape), inp.neg.reshape(y.shape), cache.shape

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        m = m_pos.reshape(dl_cache)
        return (m, m) if m_pos is m_neg else (m, m_neg.reshape(dl_cache))


@register
class Flatten(ReshapingLayer):
    """Merge the axes ``start_dim`` to ``end_dim`` (both included) of each example into one, in
    row-major (C) order: PyTorch's ``nn.Flatten(start_dim, end_dim)``.

    Axes are counted as PyTorch counts them, the batch axis being axis 0, and a negative index
    counts from the last axis (-1). With s = start_dim and e = end_dim after that normalisation, an
    input (N, d1, ..., dk) becomes (N, d1, ..., d(s-1), ds * ... * de, d(e+1), ..., dk).
    ``Flatten()`` (1, -1) turns each example into a vector, as ONNX's ``Flatten`` with axis 1;
    s == e leaves the shape as it is. Refused: start_dim 0 (the batch axis: attributions are per
    example, so refattr never merges examples) and s > e (as PyTorch refuses them).

    DeepLIFT passes the parts of the difference from reference and their multipliers through,
    reshaped (:class:`ReshapingLayer`).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Flatten(2, 3)               # (N, C, H, W) -> (N, C, H * W)
    >>> layer.output_shape((3, 4, 5))
    (3, 20)
    >>> layer.forward(np.arange(8.0).reshape(1, 2, 2, 2))[0]    # channel 0 holds 0..3, channel 1 4..7
    array([[[0., 1., 2., 3.],
            [4., 5., 6., 7.]]])
    """

    piecewise_linear = True
    torch_modules = ("Flatten",)        # nn.Flatten(start_dim, end_dim): the constructor's arguments
    onnx_ops = ("Flatten", "Reshape")   # Flatten with axis 1, Reshape to (N, -1): Flatten()
    captum = "linear"                   # a linear map: Captum's DeepLift passes the plain gradient

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ArgumentError(f"Flatten {name}: expected an int (an axis index, the batch axis being 0, as "
                                    f"in torch.nn.Flatten), got {value!r}; e.g. Flatten(start_dim=1, end_dim=-1)")
            if value == 0:
                raise ArgumentError(f"Flatten {name}: 0 is the batch axis, and refattr flattens within each example "
                                    f"(attributions are per example); pass {name} >= 1 or a negative index "
                                    f"counting from the last axis, e.g. Flatten(1, -1) flattens each example")
        start_dim, end_dim = int(start_dim), int(end_dim)
        if (start_dim > 0) == (end_dim > 0) and start_dim > end_dim:
            raise ArgumentError(f"Flatten: start_dim={start_dim} comes after end_dim={end_dim}; pass "
                                f"start_dim <= end_dim (torch.nn.Flatten refuses it too)")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def _axes(self, example_shape: Shape) -> tuple[int, int]:
        """(first, last): the merged axes as indices into an example's shape (no batch axis)."""
        rank = len(example_shape) + 1              # with the batch axis, as PyTorch counts
        s = self.start_dim + rank if self.start_dim < 0 else self.start_dim
        e = self.end_dim + rank if self.end_dim < 0 else self.end_dim
        if not 1 <= s <= e < rank:
            raise ShapeError(
                f"{self!r}: a batch of examples of shape {tuple(example_shape)} has axes 0 (the batch) to "
                f"{rank - 1}, where start_dim is axis {s} and end_dim axis {e}; expected "
                f"1 <= start <= end <= {rank - 1}: pass axes of the example, e.g. Flatten(1, -1) for all of them")
        return s - 1, e - 1

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:                  # rank unknown: only Flatten() knows its output's rank
            return (None,) if (self.start_dim, self.end_dim) == (1, -1) else None
        first, last = self._axes(input_shape)
        merged = input_shape[first:last + 1]
        size = None if any(d is None for d in merged) else math.prod(merged)
        return tuple(input_shape[:first]) + (size,) + tuple(input_shape[last + 1:])

    def __repr__(self) -> str:
        if (self.start_dim, self.end_dim) == (1, -1):
            return "Flatten()"
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Flatten:
        """Two or more random adjacent axes of the example (all of a vector's one axis), each index
        written from the front or from the end at random. The rank always drops, so that
        :func:`~refattr.testing.random_network` never takes a Flatten for an image-to-image layer."""
        rank = len(input_shape) + 1
        if rank <= 2:
            return cls()                  # a vector (or a scalar, which output_shape refuses)
        s = int(rng.integers(1, rank - 1))
        e = int(rng.integers(s + 1, rank))
        return cls(s - rank if rng.random() < 0.5 else s, e - rank if rng.random() < 0.5 else e)
