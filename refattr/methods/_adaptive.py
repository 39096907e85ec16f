"""Adaptive Gauss-Kronrod integration of many vector integrands at once, each adapted on its own.

Integrated gradients with ``rule="quad"`` integrates, for every row n (one example and one
baseline), the vector integrand v_n(a) = (x - x') * grad t(x' + a (x - x')) over [0, 1]. This
module does that with the 7-point Gauss / 15-point Kronrod pair, bisecting each row's intervals
until the row's error bound meets the row's own tolerance. Decisions for row n read only row n's
values, so a row's result does not depend on the other rows it is batched with (beyond the
rounding of BLAS blocking in the gradients); all rows' new nodes still go through the network
together, in passes.

Error bound of one interval [a, b] (h = b - a), per feature:

- where the activation pattern (which ReLU units are open, which max-pool cell wins) is the same
  at both ends and at all 15 nodes, |K15 - G7|: the difference between the Kronrod result and the
  embedded Gauss result. For a smooth integrand it exceeds the Kronrod error by orders of
  magnitude (G7 is exact to degree 13, K15 to degree 22);
- where the pattern changes inside the interval, the integrand jumps there and |K15 - G7| means
  nothing. Both the integral and K15 (positive weights summing to h) lie in
  [h min v, h max v] when v stays within its range on the nodes and ends, so the bound is
  h (max v - min v) over the 17 points, and the interval is bisected until that is small: the
  jump is bracketed to within the tolerance instead of being averaged over.

What no sampled bound can see: a pattern that changes and changes back between two neighbouring
points (a piece narrower than the spacing of the nodes), or a smooth spike that no node hits.
The caller checks the result against completeness, which catches such misses whenever they move
the sum of the attributions (see ``integrated_gradients``).

Gauss-Kronrod nodes and weights: Kronrod 1965; the values below were computed in 40-digit
arithmetic by ``tests/data/gauss_kronrod_15.py`` (the extra nodes are the roots of the Stieltjes
polynomial E_8, the weights make the rule exact to degree 22).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..progress import SILENT

__all__ = ["KRONROD_NODES", "KRONROD_WEIGHTS", "GAUSS_WEIGHTS", "GAUSS_INDEX", "integrate_rows"]

_HALF_NODES = (0.99145537112081263921, 0.94910791234275852453, 0.86486442335976907279,
               0.74153118559939443986, 0.58608723546769113029, 0.40584515137739716691,
               0.20778495500789846760, 0.0)
_HALF_K = (0.022935322010529224964, 0.063092092629978553291, 0.10479001032225018384,
           0.14065325971552591875, 0.16900472663926790283, 0.19035057806478540991,
           0.20443294007529889241, 0.20948214108472782801)
_HALF_G = (0.12948496616886969327, 0.27970539148927666790, 0.38183005050511894495,
           0.41795918367346938776)

#: The 15 Kronrod nodes on [-1, 1], increasing; the 7 Gauss nodes are every second one.
KRONROD_NODES = np.array([-x for x in _HALF_NODES[:-1]] + list(reversed(_HALF_NODES)))
#: Kronrod weights on [-1, 1] (they sum to 2).
KRONROD_WEIGHTS = np.array(list(_HALF_K[:-1]) + list(reversed(_HALF_K)))
#: Positions of the 7 Gauss nodes among the Kronrod nodes, and their Gauss weights.
GAUSS_INDEX = np.arange(1, 15, 2)
GAUSS_WEIGHTS = np.array(list(_HALF_G[:-1]) + list(reversed(_HALF_G)))

#: Points evaluated per interval: the two ends (for the pattern and the range) and 15 nodes.
_POINTS = 17


def _interval_points(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(I, 17) abscissae: a, the 15 Kronrod nodes mapped to [a, b], b."""
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    inner = mid[:, None] + half[:, None] * KRONROD_NODES[None, :]
    return np.concatenate([lo[:, None], inner, hi[:, None]], axis=1)


def _rules(values: np.ndarray, patterns_differ: np.ndarray, lo, hi):
    """(K15 integral, per-feature error bound) of intervals from their 17 point values (I, 17, d)."""
    half = (0.5 * (hi - lo))[:, None]
    inner = values[:, 1:-1]
    kronrod = half * np.einsum("k,ikd->id", KRONROD_WEIGHTS, inner)
    gauss = half * np.einsum("k,ikd->id", GAUSS_WEIGHTS, inner[:, GAUSS_INDEX])
    error = np.abs(kronrod - gauss)
    if patterns_differ.any():
        jumped = values[patterns_differ]
        spread = (jumped.max(axis=1) - jumped.min(axis=1)) * (2.0 * half[patterns_differ])
        error[patterns_differ] = np.maximum(error[patterns_differ], spread)
    return kronrod, error


def integrate_rows(evaluate: Callable, n_rows: int, n_features: int, scale: Callable, rtol: float,
                   atol: float, max_intervals: int, batch_points: int, max_evaluations: int | None = None,
                   bar=SILENT):
    """Integrate v_n over [0, 1] for every row n, adapting each row on its own.

    Parameters
    ----------
    evaluate : callable (rows (P,), alphas (P,)) -> (values (P, d), patterns (P,) or (P, K), or None)
        The integrand of row ``rows[p]`` at ``alphas[p]``, and a per-point signature of the
        integrand's smooth piece (equal signatures: same piece); None when the integrand is smooth.
    scale : callable (values of the first intervals (N, 17, d)) -> (N,) positive
        Each row's integrand scale s_n; tolerances and errors are measured in units of it.
    rtol, atol : float
        Row n has converged when sum over its intervals of max over features of the error bound,
        divided by s_n, is at most max(atol, rtol * max_i |integral_n,i| / s_n).
    max_intervals : int
        Intervals one row may use; a row that needs more stops unconverged.
    batch_points : int
        Points per call of ``evaluate`` (rounded to whole intervals).
    max_evaluations : int or None
        Points one row may evaluate (17 per interval evaluated, the first interval included). A row
        bisects its worst intervals only while the 34 points of each split fit; one that needs a
        split that does not fit stops unconverged, ``out_of_budget``. None: no budget.
    bar : progress bar (:func:`refattr.progress.task`)
        Told the rows finished and the points evaluated as they go.

    Returns
    -------
    integral (N, d), error (N, d) (per-feature sums of the interval bounds), converged (N,) bool,
    n_intervals (N,), n_points (int, all rows), scale (N,) (the s_n used), evaluations (N,) (points
    per row), out_of_budget (N,) bool
    """
    per_call = max(1, batch_points // _POINTS)
    n_points = [0]
    used = np.zeros(n_rows, dtype=np.int64)
    out_of_budget = np.zeros(n_rows, dtype=bool)

    def run(rows, lo, hi):
        out_k = np.empty((rows.size, n_features))
        out_e = np.empty((rows.size, n_features))
        first = None
        for start in range(0, rows.size, per_call):
            sl = slice(start, min(start + per_call, rows.size))
            alphas = _interval_points(lo[sl], hi[sl])
            values, patterns = evaluate(np.repeat(rows[sl], _POINTS), alphas.reshape(-1))
            n_points[0] += alphas.size
            np.add.at(used, rows[sl], _POINTS)
            bar.add(evaluations=alphas.size)
            values = values.reshape(alphas.shape + (n_features,))
            if patterns is None:
                differ = np.zeros(alphas.shape[0], dtype=bool)
            else:
                patterns = patterns.reshape(alphas.shape + (-1,))
                differ = (patterns != patterns[:, :1]).reshape(alphas.shape[0], -1).any(axis=1)
            out_k[sl], out_e[sl] = _rules(values, differ, lo[sl], hi[sl])
            if first is None:
                first = values
            else:
                first = np.concatenate([first, values])
        return out_k, out_e, first

    # one interval [0, 1] per row
    row = np.arange(n_rows)
    lo, hi = np.zeros(n_rows), np.ones(n_rows)
    k_int, e_int, first_values = run(row, lo, hi)
    s = np.asarray(scale(first_values), dtype=np.float64)
    del first_values

    converged = np.zeros(n_rows, dtype=bool)
    stuck = np.zeros(n_rows, dtype=bool)
    while True:
        # per-row totals over the current intervals
        total = np.zeros((n_rows, n_features))
        np.add.at(total, row, k_int)
        bound = np.zeros(n_rows)
        e_scalar = e_int.max(axis=1) / s[row]
        np.add.at(bound, row, e_scalar)
        tol = np.maximum(atol, rtol * np.abs(total).max(axis=1) / s)
        converged = bound <= tol
        counts = np.bincount(row, minlength=n_rows)
        active = ~converged & ~stuck & ~out_of_budget & (counts < max_intervals)
        bar.set(done=n_rows - int(active.sum()))
        if not active.any():
            break
        # per active row, bisect its worst intervals: the fewest, largest first, whose removal
        # would bring the row's bound to half its tolerance (read from that row's intervals only)
        picked = []
        for r in np.flatnonzero(active):
            mine = np.flatnonzero(row == r)
            worst = mine[np.argsort(-e_scalar[mine], kind="stable")]
            before = np.cumsum(e_scalar[worst]) - e_scalar[worst]
            take = worst[(before < bound[r] - 0.5 * tol[r]) & (e_scalar[worst] > 0)][:max_intervals - counts[r]]
            if max_evaluations is not None:
                affordable = (max_evaluations - used[r]) // (2 * _POINTS)
                if take.size > affordable:
                    take = take[:max(affordable, 0)]
                    out_of_budget[r] = take.size == 0
            picked.append(take)
        chosen = np.concatenate(picked)
        a, b = lo[chosen], hi[chosen]
        mid = 0.5 * (a + b)
        splittable = (mid > a) & (mid < b)
        stuck[np.unique(row[chosen[~splittable]])] = True
        chosen, a, b, mid = chosen[splittable], a[splittable], b[splittable], mid[splittable]
        if chosen.size == 0:
            stuck |= active & ~out_of_budget
            continue
        new_row = np.repeat(row[chosen], 2)
        new_lo = np.stack([a, mid], axis=1).reshape(-1)
        new_hi = np.stack([mid, b], axis=1).reshape(-1)
        new_k, new_e, _ = run(new_row, new_lo, new_hi)
        keep = np.ones(row.size, dtype=bool)
        keep[chosen] = False
        row = np.concatenate([row[keep], new_row])
        lo = np.concatenate([lo[keep], new_lo])
        hi = np.concatenate([hi[keep], new_hi])
        k_int = np.concatenate([k_int[keep], new_k])
        e_int = np.concatenate([e_int[keep], new_e])

    # sum every row's intervals left to right (the order of a row's sum depends on nothing else)
    order = np.lexsort((lo, row))
    row, k_int, e_int = row[order], k_int[order], e_int[order]
    starts = np.searchsorted(row, np.arange(n_rows))
    integral = np.add.reduceat(k_int, starts, axis=0)
    error = np.add.reduceat(e_int, starts, axis=0)
    return integral, error, converged, np.bincount(row, minlength=n_rows), n_points[0], s, used, out_of_budget
