"""1-D max pooling on (N, C, L), floor mode (PyTorch's MaxPool1d with dilation 1, ceil_mode False)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._typing import DeepLiftRule, MaxPoolRule, Shape
from ..errors import RuleError
from ._oned import OneD, pool_padding, down, padding2, single, up
from .base import DeltaPair, Layer
from .max_pool import MAXPOOL_RULES, MaxPool2D
from .registry import register

__all__ = ["MaxPool1D"]


def _up_pair(inp: DeltaPair) -> DeltaPair:
    return DeltaPair(up(inp.x), up(inp.x_ref), None if inp.pos is None else up(inp.pos),
                     None if inp.neg is None else up(inp.neg))


@register
class MaxPool1D(OneD, Layer):
    """Max pooling: the largest value of each window of ``kernel`` cells, every ``stride`` cells.

    Parameters
    ----------
    kernel : int
    stride : int, optional
        Defaults to ``kernel``.
    padding : int or (left, right)
        -inf padding (never wins), at most kernel // 2 on each side (as PyTorch).

    The layer is :class:`~refattr.layers.MaxPool2D` with kernel (1, kernel) on the view (N, C, 1, L)
    of its input: a tie goes to the first maximum in the window (as PyTorch), exact integrated
    gradients walks the same kinks (where a window's winner changes), and ``maxpool_rule`` chooses
    the same DeepLIFT rules (``"delta_routing"``, ``"gradient"``; :class:`~refattr.layers.MaxPool2D`
    documents them).

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool1D(2).forward(np.array([[[1.0, 3.0, 2.0, 2.0, 5.0]]]))[0]   # windows (1, 3), (2, 2)
    array([[[3., 2.]]])
    """

    piecewise_linear = True       # kinks where a window's winner changes
    torch_modules = ("MaxPool1d",)
    torch_arguments = {"kernel": "kernel_size"}
    torch_requires = {"dilation": 1, "ceil_mode": False, "return_indices": False}
    captum = "maxpool"

    def __init__(self, kernel: int, stride: int | None = None, padding: int | Sequence[int] = 0) -> None:
        self.kernel = single(kernel, "MaxPool1D kernel")
        self.stride = self.kernel if stride is None else single(stride, "MaxPool1D stride")
        self.padding = padding2(padding, "MaxPool1D padding")
        pool_padding("MaxPool1D", self.kernel, self.padding)
        self.plane = MaxPool2D((1, self.kernel), stride=(1, self.stride), padding=(0, 0) + self.padding)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        y, cache = self.plane.forward(up(x))
        return down(y), cache

    def vjp(self, g: np.ndarray, cache: Any) -> np.ndarray:
        return down(self.plane.vjp(up(g), cache))

    def jvp(self, dx: np.ndarray, cache: Any) -> np.ndarray:
        return down(self.plane.jvp(up(dx), cache))

    # straight-line paths (exact integrated gradients): the 2-D layer's, on the view
    def forward_along(self, x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        y, dy, cache = self.plane.forward_along(up(x), up(dx))
        return down(y), down(dy), cache

    def next_kink(self, x: np.ndarray, dx: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        return self.plane.next_kink(up(x), up(dx), cache)

    def snap_to_kink(self, x: np.ndarray, events: Any, rows: np.ndarray) -> np.ndarray:
        self.plane.snap_to_kink(up(x), events, rows)     # writes through the view into x
        return x

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return False

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if maxpool_rule not in MAXPOOL_RULES:
            raise RuleError(
                f"maxpool_rule: the network has a MaxPool1D layer, for which DeepLIFT defines no rule; got "
                f"{maxpool_rule!r}; pass maxpool_rule= one of {MAXPOOL_RULES} ('delta_routing' keeps "
                f"summation-to-delta, 'gradient' reproduces the original DeepLIFT code)")
        pos, neg, dl_cache = self.plane.deeplift_forward(_up_pair(inp), up(y), up(y_ref), cache, cache_ref,
                                                         rule=rule, maxpool_rule=maxpool_rule, parts=parts)
        return (None, None, dl_cache) if pos is None else (down(pos), down(neg), dl_cache)

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        m_pos4 = up(m_pos)
        m_pos_in, m_neg_in = self.plane.deeplift_backward(m_pos4, m_pos4 if m_pos is m_neg else up(m_neg), dl_cache)
        out = down(m_pos_in)
        return (out, out) if m_pos_in is m_neg_in else (out, down(m_neg_in))

    def __repr__(self) -> str:
        return f"MaxPool1D(kernel={self.kernel}, stride={self.stride}, padding={self.padding})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> MaxPool1D:
        _, length = input_shape
        kernel = min(int(rng.integers(1, 4)), length)
        return cls(kernel, stride=int(rng.integers(1, kernel + 1)), padding=int(rng.integers(0, kernel // 2 + 1)))
