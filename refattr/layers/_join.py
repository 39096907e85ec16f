"""Layers of several inputs (joins in a :class:`~refattr.graph.Graph`): the contract, and the family
of linear joins whose DeepLIFT rule follows from their linear map.

A join takes a tuple of inputs where a one-input layer takes one array; otherwise its passes mirror
:class:`~refattr.layers.base.Layer`'s:

- ``output_shape(input_shapes) -> shape``;
- ``forward(xs) -> (y, cache)``; ``vjp(g, cache) -> (g_1, ..., g_k)``; ``jvp(dxs, cache) -> dy``;
- ``deeplift_forward(inps, y, y_ref, cache, cache_ref, ...) -> (pos, neg, dl_cache)`` with ``inps`` a
  tuple of :class:`~refattr.layers.base.DeltaPair`, and ``deeplift_backward(m_pos, m_neg, dl_cache)``
  returning one pair (m_{Δx_k+ Δt}, m_{Δx_k- Δt}) per input.

Inputs of different shapes are broadcast against each other as NumPy does (a gate of shape
(C, 1, 1) times feature maps (C, H, W)); a backward pass sums the signal over the broadcast axes.
No join has kinks: it is either linear (:class:`LinearJoin`) or smooth (``Mul``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from .._typing import DeepLiftRule, GradientRule, MaxPoolRule, Shape
from ..errors import RuleError, ShapeError
from .base import GRADIENT_RULES, DeltaPair, Layer, select_by_sign

__all__ = ["JoinLayer", "LinearJoin", "unbroadcast", "broadcast_example_shapes"]

Part = Literal["pos", "neg"]


def broadcast_example_shapes(layer: Layer, shapes: Sequence[Shape | None]) -> Shape | None:
    """The broadcast of example shapes (NumPy's rules, batch axis excluded); None if one is unknown."""
    if any(s is None or any(d is None for d in s) for s in shapes):
        return None
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        raise ShapeError(
            f"{type(layer).__name__}: its inputs' example shapes {[tuple(s) for s in shapes]} do not broadcast "
            f"against each other (NumPy's rules: trailing axes equal or 1); reshape one input "
            f"(Reshape) or use inputs of equal shape"
        ) from None


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` (N, *broadcast_shape) over the axes that broadcasting added or stretched, back to
    ``shape`` (N, *input_shape): the transpose of the broadcast."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(1, 1 + lead)))
    axes = tuple(i for i in range(1, len(shape)) if shape[i] == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class JoinLayer(Layer):
    """A layer of two or more inputs (see the module docstring)."""

    #: How many inputs the layer takes: an int, or None for any number >= 2.
    n_inputs: ClassVar[int | None] = None
    #: Read by the registry and by graphs: this layer takes a tuple of inputs.
    joins: ClassVar[bool] = True

    def check_arity(self, k: int) -> None:
        expected = self.n_inputs
        if (expected is None and k < 2) or (expected is not None and k != expected):
            want = "two or more inputs" if expected is None else f"{expected} inputs"
            raise ShapeError(f"{type(self).__name__}: expected {want}, got {k}")

    def output_shape(self, input_shapes: Sequence[Shape | None]) -> Shape | None:  # type: ignore[override]
        raise NotImplementedError

    def output_bound(self, bounds: Sequence[float]) -> float:  # type: ignore[override]
        """Bound on max |y| from the inputs' bounds (see :meth:`Layer.output_bound`)."""
        return math.inf

    def backward_cache(self, xs: tuple[np.ndarray, ...]) -> Any:  # type: ignore[override]
        return self.forward(xs)[1]

    def backward_signal(self, g: np.ndarray, cache: Any, rule: GradientRule) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        """Every join passes its VJP under the three gradient-family rules (only ReLU masks)."""
        if rule not in GRADIENT_RULES:
            raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")
        return self.vjp(g, cache)

    def forward_along(self, xs: tuple[np.ndarray, ...], dxs: tuple[np.ndarray, ...]  # type: ignore[override]
                      ) -> tuple[np.ndarray, np.ndarray, Any]:
        y, cache = self.forward(xs)
        return y, self.jvp(dxs, cache), cache

    def next_kink(self, xs: tuple[np.ndarray, ...], dxs: tuple[np.ndarray, ...],  # type: ignore[override]
                  cache: Any) -> tuple[np.ndarray, Any]:
        return np.full(xs[0].shape[0], np.inf), None

    def snap_to_kink(self, xs: tuple[np.ndarray, ...], events: Any,  # type: ignore[override]
                     rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return xs

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return False    # joins read each input's total difference, never its parts


class LinearJoin(JoinLayer):
    """y = L(x_1, ..., x_k) with L linear (Add, Concat).

    Subclasses define ``linear(xs, part)`` and ``linear_vjp(g, shapes, part)`` for ``part`` in
    (None, "pos", "neg"): the map with its weights, with their positive parts, with their negative
    parts, and its transpose (one array per input). DeepLIFT's Linear rule (Shrikumar et al. 2017,
    section 3.5.1) is then the one-input layers' (:class:`~refattr.layers.base.LinearLayer`) applied to
    the inputs taken together: the sign of each input neuron's total difference Δx decides which
    part of the output it feeds, with half weight each where Δx == 0 exactly (the 0.5 rule)::

        Δy+ = L+(Δx+) + L-(Δx-)        Δy- = L-(Δx+) + L+(Δx-)
        m(Δx > 0) = L+^T M+ + L-^T M-   m(Δx < 0) = L-^T M+ + L+^T M-
    """

    piecewise_linear = True
    captum = "linear"
    backward_reads_input: ClassVar[bool] = False

    def linear(self, xs: Sequence[np.ndarray], part: Part | None = None) -> np.ndarray:
        raise NotImplementedError

    def linear_vjp(self, g: np.ndarray, shapes: Sequence[tuple[int, ...]],
                   part: Part | None = None) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def forward(self, xs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        return self.linear(xs), tuple(x.shape for x in xs)

    def vjp(self, g: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        return self.linear_vjp(g, cache)

    def jvp(self, dxs: tuple[np.ndarray, ...], cache: Any) -> np.ndarray:  # type: ignore[override]
        return self.linear(dxs)

    def deeplift_forward(self, inps: tuple[DeltaPair, ...], y: np.ndarray, y_ref: np.ndarray,  # type: ignore[override]
                         cache: Any, cache_ref: Any, *, rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        shapes = cache
        if not parts:
            return None, None, (inps, shapes)
        deltas = [inp.delta for inp in inps]
        dpos = [np.maximum(d, 0.0) for d in deltas]
        dneg = [np.minimum(d, 0.0) for d in deltas]
        pos = self.linear(dpos, "pos") + self.linear(dneg, "neg")
        neg = self.linear(dpos, "neg") + self.linear(dneg, "pos")
        return pos, neg, (inps, shapes)

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray,  # type: ignore[override]
                          dl_cache: Any) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        inps, shapes = dl_cache
        if m_pos is m_neg:
            return tuple((m, m) for m in self.linear_vjp(m_pos, shapes))
        pp, pn = self.linear_vjp(m_pos, shapes, "pos"), self.linear_vjp(m_pos, shapes, "neg")
        np_, nn = self.linear_vjp(m_neg, shapes, "pos"), self.linear_vjp(m_neg, shapes, "neg")
        out = []
        for k, inp in enumerate(inps):
            m = select_by_sign(inp.delta, pp[k] + nn[k], pn[k] + np_[k])
            out.append((m, m))
        return tuple(out)
