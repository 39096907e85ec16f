"""Permute: reorder the axes of each example, the batch axis fixed (torch's ``x.permute(0, ...)``,
``x.transpose(1, 2)``; ONNX's Transpose with perm[0] = 0)."""

from __future__ import annotations

import numbers
from typing import Any, Literal, Sequence

import numpy as np

from .._typing import DeepLiftRule, MaxPoolRule, Shape
from ..errors import ArgumentError, ShapeError
from .base import DeltaPair, LinearLayer, _check_part
from .registry import register

__all__ = ["Permute"]


@register
class Permute(LinearLayer):
    """Reorder the axes of each example: output axis i is input axis ``dims[i]`` (axes of one
    example, the batch axis not counted), so a batch x becomes
    ``x.transpose((0,) + tuple(d + 1 for d in dims))`` in NumPy, ``x.permute(0, *(d + 1 for d in
    dims))`` in PyTorch.

    Parameters
    ----------
    dims : tuple of int
        A permutation of 0, ..., rank - 1 for examples of that rank. ``Permute((1, 0))`` maps
        one-hot DNA stored (N, L, 4) to the (N, 4, L) a Conv1d reads (``x.transpose(1, 2)``).

    Notes
    -----
    A linear map whose weights are all +1 (each output element is one input element): the VJP
    permutes g back (by the inverse permutation), the JVP permutes dx. DeepLIFT passes the input's
    parts Δx+ and Δx- through, permuted, and the multipliers back, as for the reshapes
    (:class:`~refattr.layers.flatten.ReshapingLayer` gives the reason: the layers after it see the
    parts the layers before it produced), so a permutation changes no attribution beyond moving it.

    Warnings
    --------
    PyTorch has no module for it, so a ``Sequential`` holding a Permute does not export with
    :func:`~refattr.interop.to_torch`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Permute((1, 0))
    >>> layer.output_shape((3, 2))
    (2, 3)
    >>> layer.forward(np.arange(6.0).reshape(1, 3, 2))[0]   # rows (0 1), (2 3), (4 5) become columns
    array([[[0., 2., 4.],
            [1., 3., 5.]]])
    """

    piecewise_linear = True
    torch_modules = ()       # no torch module permutes axes (see the warning above)
    onnx_ops = ()
    captum = "linear"        # a linear map: Captum's DeepLift passes the plain gradient

    def __init__(self, dims: Sequence[int]) -> None:
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise ArgumentError(f"Permute dims: expected a tuple of ints (a permutation of one example's axes, no "
                                f"batch axis), got {dims!r}; e.g. Permute((1, 0)) maps (N, L, 4) to (N, 4, L)")
        items = tuple(dims)
        if (not items or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) for d in items)
                or sorted(int(d) for d in items) != list(range(len(items)))):
            raise ArgumentError(f"Permute dims: expected a permutation of 0, ..., rank - 1 (the axes of one example, "
                                f"the batch axis not counted), got {dims!r}; e.g. Permute((1, 0)), Permute((0, 2, 1))")
        self.dims = tuple(int(d) for d in items)
        self._forward = (0,) + tuple(d + 1 for d in self.dims)
        self._backward = tuple(int(i) for i in np.argsort(self._forward))

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:
            return (None,) * len(self.dims)
        if len(input_shape) != len(self.dims):
            raise ShapeError(f"{self!r}: expected examples of rank {len(self.dims)}, got example shape "
                             f"{tuple(input_shape)}; pass one axis per axis of the example, e.g. "
                             f"Permute({tuple(reversed(range(len(input_shape))))})")
        return tuple(input_shape[d] for d in self.dims)

    def output_bound(self, bound: float) -> float:
        return bound                      # a rearrangement

    @staticmethod
    def _move(x: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(order))

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        self.output_shape(x.shape[1:])    # the rank, checked (a ShapeError naming the layer)
        y = self._move(x, self._forward)
        return np.zeros_like(y) if part == "neg" else y

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        out = self._move(g, self._backward)
        return np.zeros_like(out) if part == "neg" else out

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return rule != "rescale"          # it passes its input's parts on (as ReshapingLayer)

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if not parts:
            return None, None, None
        if inp.pos is None:               # parts not computed upstream (Rescale): split by the sign of Δ
            return np.maximum(y - y_ref, 0.0), np.minimum(y - y_ref, 0.0), None
        return self._move(inp.pos, self._forward), self._move(inp.neg, self._forward), None

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        m = self._move(m_pos, self._backward)
        return (m, m) if m_pos is m_neg else (m, self._move(m_neg, self._backward))

    def __repr__(self) -> str:
        return f"Permute({self.dims})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Permute:
        """A random permutation of the example's axes, other than the identity where the rank allows."""
        rank = len(input_shape)
        dims = tuple(range(rank))
        while rank > 1 and dims == tuple(range(rank)):
            dims = tuple(int(d) for d in rng.permutation(rank))
        return cls(dims)
