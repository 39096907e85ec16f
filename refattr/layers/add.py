"""Add: the sum of several values, optionally weighted (residual connections)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from ._join import LinearJoin, Part, broadcast_example_shapes, unbroadcast
from .base import _check_part
from .registry import register

__all__ = ["Add"]


@register
class Add(LinearJoin):
    """y = sum_k w_k x_k over two or more inputs (w_k = 1 unless ``weights`` is given).

    Parameters
    ----------
    weights : sequence of float, optional
        One finite weight per input (their number fixes how many inputs the layer takes);
        None: every weight is 1, any number of inputs >= 2. ``Add(weights=(1.0, -1.0))`` is a
        difference.

    Notes
    -----
    A linear layer with weights w_k (the identity times w_k from each input), so DeepLIFT uses the
    Linear rule with the exact positive/negative split (docs/conventions.md, section 'Graphs'):
    each input neuron feeds the output's positive or negative part according to the sign of
    w_k Δx_k. Inputs broadcast against each other as in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Add
    >>> Add().forward((np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])))[0]
    array([[11., 22.]])
    """

    torch_modules = ()
    onnx_ops = ()

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        if weights is None:
            self.weights = None
            self.n_inputs = None
            return
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
            raise ArgumentError(f"Add weights: expected a sequence of floats (one per input) or None, got {weights!r}")
        values = tuple(weights)
        if len(values) < 2 or not all(isinstance(w, (int, float, np.integer, np.floating))
                                      and not isinstance(w, (bool, np.bool_)) and np.isfinite(w) for w in values):
            raise ArgumentError(f"Add weights: expected two or more finite numbers (one per input), got {weights!r}")
        self.weights = tuple(float(w) for w in values)
        self.n_inputs = len(self.weights)

    def _weight(self, k: int, part) -> float:
        w = 1.0 if self.weights is None else self.weights[k]
        if part == "pos":
            return max(w, 0.0)
        if part == "neg":
            return min(w, 0.0)
        return w

    def output_shape(self, input_shapes: Sequence[Shape | None]) -> Shape | None:
        self.check_arity(len(input_shapes))
        return broadcast_example_shapes(self, input_shapes)

    def output_bound(self, bounds: Sequence[float]) -> float:
        return float(sum(abs(self._weight(k, None)) * b for k, b in enumerate(bounds)))

    def linear(self, xs: Sequence[np.ndarray], part: Part | None = None) -> np.ndarray:
        _check_part(part)
        out = None
        for k, x in enumerate(xs):
            w = self._weight(k, part)
            if w == 0.0:
                term = np.zeros_like(x)
            else:
                term = x if w == 1.0 else w * x
            out = term if out is None else out + term
        if out is xs[0]:
            out = out.copy()      # never hand back an input as the output
        return out

    def linear_vjp(self, g: np.ndarray, shapes: Sequence[tuple[int, ...]],
                   part: Part | None = None) -> tuple[np.ndarray, ...]:
        _check_part(part)
        out = []
        for k, shape in enumerate(shapes):
            w = self._weight(k, part)
            out.append(unbroadcast(g if w == 1.0 else w * g, shape))
        return tuple(out)

    def __repr__(self) -> str:
        return "Add()" if self.weights is None else f"Add(weights={self.weights!r})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Add:
        if rng.random() < 0.5:
            return cls()
        return cls(tuple(float(w) for w in rng.normal(size=int(rng.integers(2, 4)))))
