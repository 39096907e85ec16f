"""2-D max pooling, NCHW, floor mode (no ceil_mode): the winner's VJP, the kink protocol of exact
integrated gradients, and the DeepLIFT rules for it (``MAXPOOL_RULES``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import kernels
from .._typing import DeepLiftRule, MaxPoolRule
from ..errors import RuleError
from ._pool import _Pool2D
from .base import DeltaPair, Layer, select_by_sign
from .registry import register

__all__ = ["MaxPool2D", "MAXPOOL_RULES"]

#: DeepLIFT rules for max pooling (docs/conventions.md, section 'Max pooling'); DeepLIFT itself
#: defines none.
MAXPOOL_RULES = ("delta_routing", "gradient", "tangermeme")


@register
class MaxPool2D(_Pool2D, Layer):
    """Max pooling: the largest value of each kernel window.

    Padded cells are -inf and never win. A tie goes to the first maximum in row-major window
    order (as PyTorch), and the VJP routes the whole signal to that one cell; the derivative is
    not defined at ties, this is the documented convention.

    DeepLIFT defines no rule for this non-linear multi-input layer; ``maxpool_rule`` chooses one:

    - ``"delta_routing"`` (completeness-preserving): per window, with y = max over the window of
      x and y' = max of x', route max(y, y') - y' to the input's winner and y - max(y, y') to the
      reference's winner. Exactly one of the two is non-zero, so the window's contribution y - y'
      goes to one cell c with multiplier (y - y') / Δx_c, which lies in [0, 1]. When Δx_c == 0
      (then y == y') the multiplier is 1, the gradient.
    - ``"gradient"`` (the original DeepLIFT code): multiplier 1 at the input's winner, as the
      gradient; summation-to-delta is not guaranteed and any gap shows in ``completeness_gap``.
    - ``"tangermeme"`` (tangermeme 1.6.0's ``deep_lift_shap``): ``"delta_routing"``, and where a
      window's output falls (y < y') while its input winner c has Δx_c == 0, the plain gradient
      too: multiplier 1 at c, beside the routed (y - y') / Δx at the reference's winner. The extra
      multiplier meets Δx_c == 0, so contributions and summation-to-delta are those of
      ``"delta_routing"``; multipliers, and hypothetical contributions built from them, are not.
    """

    piecewise_linear = True       # kinks where a window's winner changes
    torch_modules = ("MaxPool2d",)
    onnx_ops = ("MaxPool",)
    captum = "maxpool"

    def __init__(self, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0) -> None:
        self._init_window(kernel, stride, padding)

    def output_bound(self, bound: float) -> float:
        # a window's largest cell (padded cells are -inf and never win: every window holds an input cell)
        return bound

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, tuple[int, ...]]]:
        y, argmax = kernels.maxpool2d_forward(np.ascontiguousarray(x), self.kernel, self.stride, self.padding)
        return y, (argmax, x.shape)

    def vjp(self, g: np.ndarray, cache: tuple[np.ndarray, tuple[int, ...]]) -> np.ndarray:
        argmax, shape = cache
        return kernels.maxpool2d_vjp(np.ascontiguousarray(g), argmax, (int(shape[2]), int(shape[3])))

    def jvp(self, dx: np.ndarray, cache: tuple[np.ndarray, tuple[int, ...]]) -> np.ndarray:
        argmax, shape = cache
        flat = dx.reshape(shape[0], shape[1], -1)
        return np.take_along_axis(flat, argmax.reshape(shape[0], shape[1], -1), axis=2).reshape(argmax.shape)

    # straight-line paths (exact integrated gradients) ----------------------------------------
    def _window_cells(self, h: int, w: int) -> np.ndarray:
        """Flat index ih * W + iw of every tap of every window, shape (OH, OW, kH * kW).

        Taps run in row-major window order; a tap in the padding is -1.
        """
        (kh, kw), (sh, sw), (top, bottom, left, right) = self.kernel, self.stride, self.padding
        oh = (h + top + bottom - kh) // sh + 1
        ow = (w + left + right - kw) // sw + 1
        rows = (np.arange(oh) * sh - top)[:, None, None, None] + np.arange(kh)[None, None, :, None]
        cols = (np.arange(ow) * sw - left)[None, :, None, None] + np.arange(kw)[None, None, None, :]
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        return np.where(inside, rows * w + cols, -1).reshape(oh, ow, kh * kw)

    def _windows(self, x: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
        """Every window's taps, (N, C, OH, OW, kH * kW), with ``fill`` in the padding."""
        n, c, h, w = x.shape
        cells = self._window_cells(h, w)
        taps = x.reshape(n, c, h * w)[:, :, np.maximum(cells, 0)]
        taps[..., cells < 0] = fill
        return taps, cells

    def forward_along(self, x: np.ndarray,
                      dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, tuple[int, ...]]]:
        """Each window's winner just after s = 0 on the path x + s dx.

        The winner is the lexicographic maximum of (value, slope): the largest value, and among
        cells tied at that value exactly the one rising fastest; a tie in both goes to the first
        in row-major window order (the forward pass's convention). The cache has the format of
        :meth:`forward`'s, so ``vjp`` and ``jvp`` route through the winners of the stretch ahead.
        """
        values, cells = self._windows(x, -np.inf)
        slopes, _ = self._windows(dx, 0.0)
        top = values == values.max(axis=-1, keepdims=True)
        best_slope = np.where(top, slopes, -np.inf).max(axis=-1, keepdims=True)
        tap = np.argmax(top & (slopes == best_slope), axis=-1)[..., None]
        argmax = np.take_along_axis(np.broadcast_to(cells, values.shape), tap, axis=-1)[..., 0]
        y = np.take_along_axis(values, tap, axis=-1)[..., 0]
        dy = np.take_along_axis(slopes, tap, axis=-1)[..., 0]
        return y, dy, (argmax.astype(np.int64), x.shape)

    def next_kink(self, x: np.ndarray, dx: np.ndarray,
                  cache: tuple[np.ndarray, tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """A window's winner w changes where a cell j with a steeper line overtakes it.

        With values v and slopes dv, that is at s = (v_w - v_j) / (dv_j - dv_w) for every real
        cell with dv_j > dv_w (v_w >= v_j holds, and v_w > v_j when dv_j > dv_w, since w is the
        lexicographic winner). ``events`` is a boolean mask (N, C, OH, OW, kH * kW) of the
        overtaking taps at exactly the nearest distance of their example.
        """
        n = x.shape[0]
        values, cells = self._windows(x, -np.inf)
        slopes, _ = self._windows(dx, 0.0)
        v_win = self.jvp(x, cache)[..., None]
        dv_win = self.jvp(dx, cache)[..., None]
        overtaking = (slopes > dv_win) & (cells >= 0)
        distance = np.full(values.shape, np.inf)
        with np.errstate(over="ignore", under="ignore"):
            np.divide(v_win - np.where(overtaking, values, v_win), slopes - dv_win, out=distance,
                      where=overtaking)
        nearest = distance.reshape(n, -1).min(axis=1)
        events = (distance == nearest.reshape(n, 1, 1, 1, 1)) & (distance < np.inf)
        return nearest, events

    def snap_to_kink(self, x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Raise each overtaking cell to its window's current maximum (never lower a value).

        Raising only makes repeated snaps at one point terminate even where windows overlap.
        """
        n_idx, c_idx, oh_idx, ow_idx, tap_idx = np.nonzero(events & rows.reshape(-1, 1, 1, 1, 1))
        if n_idx.size == 0:
            return x
        w = x.shape[3]
        cells = self._window_cells(x.shape[2], w)[oh_idx, ow_idx]                 # (E, K)
        taps = x[n_idx[:, None], c_idx[:, None], np.maximum(cells, 0) // w, np.maximum(cells, 0) % w]
        window_max = np.where(cells >= 0, taps, -np.inf).max(axis=1)
        j = cells[np.arange(cells.shape[0]), tap_idx]
        np.maximum.at(x, (n_idx, c_idx, j // w, j % w), window_max)
        return x

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return False

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        argmax, shape = cache
        argmax_ref = cache_ref[0]
        dy = y - y_ref
        if maxpool_rule == "delta_routing":
            cells = np.where(y >= y_ref, argmax, argmax_ref)
            delta = inp.delta.reshape(shape[0], shape[1], -1)
            dx_at = np.take_along_axis(delta, cells.reshape(shape[0], shape[1], -1), axis=2).reshape(cells.shape)
            m = np.ones_like(dy)
            np.divide(dy, dx_at, out=m, where=dx_at != 0)
        elif maxpool_rule == "tangermeme":
            pos, neg, (cells, m, dy, shape) = self.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule,
                                                                   maxpool_rule="delta_routing", parts=parts)
            delta = inp.delta.reshape(shape[0], shape[1], -1)
            dx_win = np.take_along_axis(delta, argmax.reshape(shape[0], shape[1], -1), axis=2).reshape(dy.shape)
            extra = ((dy < 0) & (dx_win == 0)).astype(dy.dtype)     # its plain gradient at the input's winner
            return pos, neg, (cells, m, dy, shape, argmax, extra)
        elif maxpool_rule == "gradient":
            cells, m = argmax, np.ones_like(dy)
        elif maxpool_rule is None:
            raise RuleError(
                "maxpool_rule: the network has a MaxPool2D layer, for which DeepLIFT defines no rule; "
                f"pass maxpool_rule= one of {MAXPOOL_RULES} ('delta_routing' keeps summation-to-delta, "
                "'gradient' reproduces the original DeepLIFT code)"
            )
        else:
            raise RuleError(f"maxpool_rule: unknown rule {maxpool_rule!r}; expected one of {MAXPOOL_RULES}")
        if not parts:
            return None, None, (cells, m, dy, shape)
        return np.maximum(dy, 0.0), np.minimum(dy, 0.0), (cells, m, dy, shape)

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        cells, m, dy, shape = dl_cache[:4]
        signal = m_pos if m_pos is m_neg else select_by_sign(dy, m_pos, m_neg)
        hw = (int(shape[2]), int(shape[3]))
        out = kernels.maxpool2d_vjp(np.ascontiguousarray(m * signal), cells, hw)
        if len(dl_cache) > 4:       # "tangermeme": the plain gradient at falling windows' Δx == 0 winners
            out = out + kernels.maxpool2d_vjp(np.ascontiguousarray(dl_cache[5] * signal), dl_cache[4], hw)
        return out, out

    def __repr__(self) -> str:
        return f"MaxPool2D(kernel={self.kernel}, stride={self.stride}, padding={self.padding})"


def is_max_pooling(layer: Layer) -> bool:
    """Whether DeepLIFT's ``maxpool_rule`` chooses ``layer``'s rule: a MaxPool2D, or a layer that runs
    one on a view of its input (``MaxPool1D``)."""
    return isinstance(layer, MaxPool2D) or isinstance(getattr(layer, "plane", None), MaxPool2D)
