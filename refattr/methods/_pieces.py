"""The bookkeeping both exact-IG walks share (the chain walk in ``integrated_gradients`` and the graph
walk in ``_walk_graph``): pieces per example, the breakpoints where each piece ended, and the guard
against a walk that stops moving."""

from __future__ import annotations

import numpy as np

__all__ = ["PieceLog"]


class PieceLog:
    """Per example: how many pieces of positive length were walked, and the α where each ended."""

    def __init__(self, n_all: int, what: str) -> None:
        self.n_all = n_all
        self.what = what                  # named in the guard's error
        self.pieces = np.zeros(n_all, dtype=np.int64)
        self.stalls = np.zeros(n_all, dtype=np.int64)
        self.max_stalls: int | None = None
        self._rows: list[np.ndarray] = []
        self._alpha: list[np.ndarray] = []

    def step(self, row_id: np.ndarray, new_alpha: np.ndarray, moved: np.ndarray, done: np.ndarray) -> None:
        """Record one step of the examples ``row_id``: those that ``moved`` walked a piece, which
        ended at ``new_alpha`` (a breakpoint unless the example is ``done``, at α = 1)."""
        self.pieces[row_id] += moved
        record = moved & ~done
        if record.any():
            self._rows.append(row_id[record])
            self._alpha.append(new_alpha[record])
        self.stalls[row_id] = np.where(moved, 0, self.stalls[row_id] + 1)
        if self.max_stalls is not None and self.stalls[row_id].max() > self.max_stalls:  # pragma: no cover
            raise RuntimeError(f"integrated_gradients(rule='exact'): the path walk {self.what}stopped making progress")

    def breakpoints(self) -> list[np.ndarray]:
        """Per example, its breakpoints in increasing order (the walk's order)."""
        if not self._rows:
            return [np.empty(0) for _ in range(self.n_all)]
        rows_all, alpha_all = np.concatenate(self._rows), np.concatenate(self._alpha)
        order = np.argsort(rows_all, kind="stable")
        rows_all, alpha_all = rows_all[order], alpha_all[order]
        bounds = np.searchsorted(rows_all, np.arange(self.n_all + 1))
        return [alpha_all[bounds[r]:bounds[r + 1]] for r in range(self.n_all)]
