"""Mul: the element-wise product of two values (gates: GLU, LSTM-style and squeeze-excitation)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .._typing import DeepLiftRule, MaxPoolRule, Shape
from ._join import JoinLayer, broadcast_example_shapes, unbroadcast
from .base import DeltaPair, select_by_sign
from .registry import register

__all__ = ["Mul"]


@register
class Mul(JoinLayer):
    r"""y = a * b, element by element (NumPy broadcasting between the two inputs).

    Notes
    -----
    DeepLIFT (Shrikumar et al. 2017) defines rules for linear layers and for element-wise
    non-linearities of one input; a product of two neurons has none. refattr uses the **Shapley
    split** of the product's difference (its name in the conventions: ``mul_rule="shapley"``,
    docs/conventions.md, section 'Graphs'): with Δa = a - a', Δb = b - b',

        Δ(ab) = a'Δb + b'Δa + ΔaΔb,   C_a = Δa (b' + Δb / 2),   C_b = Δb (a' + Δa / 2)

    which is the two-player Shapley value of the game v(S) = (product with the inputs in S moved
    from reference to actual) - a'b': each player's marginal contribution averaged over the two
    orders in which they can join (Shapley 1953; the same averaging RevealCancel uses for the two
    parts of one input). It sums to Δ(ab) exactly, is symmetric in a and b, and where one input does
    not change (Δb = 0) it is the Linear rule with weight b' = b. The multipliers are
    m_a = b' + Δb / 2 = (b + b') / 2 and m_b = (a + a') / 2. The output's difference is split into
    positive and negative parts as at an element-wise layer under Rescale, under both rules.

    Other conventions exist: the gradient at the input (Captum's DeepLift, which does not hook
    ``torch.mul``: m_a = b, m_b = a, which does not sum to Δ(ab)) and the gradient at the reference
    (m_a = b', m_b = a', which leaves ΔaΔb unattributed).

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Mul
    >>> Mul().forward((np.array([[2.0, 3.0]]), np.array([[5.0, -1.0]])))[0]
    array([[10., -3.]])
    """

    n_inputs = 2
    piecewise_linear = False
    captum = "gradient"   # torch.mul is not a module: Captum's DeepLift passes the plain gradient
    torch_modules = ()
    onnx_ops = ()

    def output_shape(self, input_shapes: Sequence[Shape | None]) -> Shape | None:
        self.check_arity(len(input_shapes))
        return broadcast_example_shapes(self, input_shapes)

    def output_bound(self, bounds: Sequence[float]) -> float:
        a, b = bounds
        return a * b if math.isfinite(a) and math.isfinite(b) else math.inf

    def forward(self, xs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        a, b = xs
        return a * b, (a, b)

    def vjp(self, g: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        a, b = cache
        return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)

    def jvp(self, dxs: tuple[np.ndarray, ...], cache: Any) -> np.ndarray:  # type: ignore[override]
        a, b = cache
        da, db = dxs
        return da * b + a * db

    def deeplift_forward(self, inps: tuple[DeltaPair, ...], y: np.ndarray, y_ref: np.ndarray,  # type: ignore[override]
                         cache: Any, cache_ref: Any, *, rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        ia, ib = inps
        # m_a = b' + Δb / 2, m_b = a' + Δa / 2 (the Shapley split; see the class docstring)
        m_a = ib.x_ref + 0.5 * ib.delta
        m_b = ia.x_ref + 0.5 * ia.delta
        dy = y - y_ref
        dl_cache = (m_a, m_b, dy, ia.x.shape, ib.x.shape)
        if not parts:
            return None, None, dl_cache
        return np.maximum(dy, 0.0), np.minimum(dy, 0.0), dl_cache

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray,  # type: ignore[override]
                          dl_cache: Any) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        m_a, m_b, dy, shape_a, shape_b = dl_cache
        m = m_pos if m_pos is m_neg else select_by_sign(dy, m_pos, m_neg)
        ga = unbroadcast(m_a * m, shape_a)
        gb = unbroadcast(m_b * m, shape_b)
        return (ga, ga), (gb, gb)

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Mul:
        return cls()
