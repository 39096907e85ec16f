"""Integrated gradients on networks that mix kinked layers (ReLU, LeakyReLU, max pooling) with smooth
ones (tanh, sigmoid, swish, GELU, ELU, softplus, softmax, ...): the path split at its kinks, each smooth
piece integrated by Gauss-Legendre of increasing order, every example on its own.

Along the straight path x(α) = x' + α (x - x'), the input z(α) of every kinked layer is a smooth
function of α between kinks, and the integrand v(α) = (x - x') ⊙ ∇t(x(α)) is smooth there too; it
jumps only where a ReLU input crosses 0 or a max-pool window's winner changes. So, per example:

1. **Locate.** The layers' own kink protocol (``forward_along``, ``next_kink``; the protocol of exact
   integrated gradients) is run at probe points α_k of a grid (16 intervals): one forward pass with its
   directional derivative dz/dα (a JVP) gives, per probe, the activation pattern (which ReLU units are
   open, which max-pool cells win) and the distance to the nearest kink predicted by each input's
   tangent line, looking ahead and looking back. An interval whose end patterns differ holds a
   crossing: a safeguarded Newton iteration (the tangent prediction from the nearer end, bisection
   when two steps did not halve the bracket) closes it to ``STEP_TOL`` (2^-50 in α), a few units of
   rounding. An interval whose end patterns agree but where a tangent from either end predicts a kink
   inside is split at that prediction (a pattern that changes and changes back); one where neither
   predicts a kink is taken as smooth.
2. **Integrate.** Each piece between consecutive crossings gets Gauss-Legendre rules of orders
   2, 3, 5, 8, 13, 21 in turn (a piece still unresolved at 21 is bisected); the error estimate of a
   piece is |Q_n - Q_m| per feature, the difference from the previous order, which exceeds the error
   of Q_n by orders of magnitude once the rule resolves the piece. Every example refines its own worst
   pieces until the sum of their estimates is at most max(1e-15 s, rtol max_i |φ_i|) (s: the
   largest integrand entry seen), as ``rule="quad"`` does.
3. **Check.** Every node of a piece must show the pattern of the piece; and the completeness gap
   sum(φ) - (t(x) - t(x')), the error of the summed integrand's quadrature (exact for the true
   integral), must not exceed the summed estimate of that error. Where either fails a crossing was
   missed: the example is located again on a grid 8 times finer (up to three times).

The reported bound of feature i is the sum over pieces of their estimates plus, for every crossing,
the width of its final bracket times 2 max |v_i| (the integrand can jump by at most that much there).
What it does not cover: a pattern that changes and changes back between two probes whose tangents
both predict no kink (two crossings closer than the grid spacing where z bends sharply), when it also
falls between the nodes of the piece's rules and leaves the sum of the attributions unchanged (a
ReLU unit that opens and closes again moves credit between features but adds nothing to the sum).
Those misses no sampled method can see; the tangent test makes them need curvature |z''| h^2 / 8
larger than z's distance to its kink on a grid interval of width h.

Reference: the straight-path integral of Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for
Deep Networks", eq. (1); Gauss-Legendre rules from :mod:`refattr.quadrature`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import quadrature
from ..layers._join import JoinLayer, LinearJoin
from ..layers.base import LinearLayer
from ..network import Trace
from ..progress import SILENT

__all__ = ["ORDERS", "GRID", "STEP_TOL", "kinked_nodes", "path_probe", "locate", "integrate_piecewise"]

#: Gauss-Legendre orders a piece climbs; a piece not resolved at the last one is bisected.
ORDERS = (2, 3, 5, 8, 13, 21)

#: Intervals of the first probe grid on [0, 1].
GRID = 16

#: A crossing is located once its bracket is at most this wide (α lies in [0, 1]: a few ulps).
STEP_TOL = 2.0 ** -50

#: An interval whose tangents predict a kink that its end patterns deny is split down to this width.
MIN_WIDTH = 2.0 ** -40

#: Splits one interval may go through while locating (bisection alone needs about 50).
MAX_DEPTH = 120

#: Times an example is located again, on a grid 8 times finer, after a missed crossing shows.
ROUNDS = 3

#: Bisections of pieces one example may use beyond the located pieces.
MAX_BISECTIONS = 1000

#: Relative rounding allowed in the completeness check (as ``integrated_gradients``).
GAP_ROUNDING = 1e-12

#: Largest memory the per-piece sums of one group of examples may take.
_PIECE_BYTES = 2**28


def kinked_nodes(net) -> list[int]:
    """Indices of the layers with kinks (piecewise linear but not linear: ReLU, LeakyReLU, max pooling)."""
    return [j for j, layer in enumerate(net.layers)
            if layer.piecewise_linear is True and not isinstance(layer, (LinearLayer, LinearJoin))]


def path_probe(net, refs: np.ndarray, delta: np.ndarray, pattern_of: Callable) -> Callable:
    """``probe(rows, alphas) -> (patterns (P,), ahead (P,), behind (P,))`` for the paths refs + α delta.

    One forward pass with directional derivatives (``Layer.forward_along`` on every node) at each
    point; ``patterns`` is ``pattern_of(net, trace)`` (a fingerprint of the activation pattern),
    ``ahead`` / ``behind`` the distance in α to the nearest kink that any kinked layer's tangent
    predicts going forward / backward (``Layer.next_kink``; inf where none).
    """
    layers, args, kinked = net.layers, net.node_args, kinked_nodes(net)
    shape = (-1,) + (1,) * (refs.ndim - 1)

    def probe(rows, alphas):
        d = delta[rows]
        values, slopes, caches = [refs[rows] + alphas.reshape(shape) * d], [d], []
        for layer, a in zip(layers, args):
            if isinstance(layer, JoinLayer):
                y, dy, cache = layer.forward_along(tuple(values[k] for k in a), tuple(slopes[k] for k in a))
            else:
                y, dy, cache = layer.forward_along(values[a[0]], slopes[a[0]])
            values.append(y)
            slopes.append(dy)
            caches.append(cache)
        ahead, behind = np.full(rows.size, np.inf), np.full(rows.size, np.inf)
        for j in kinked:
            layer = layers[j]
            if isinstance(layer, JoinLayer):
                z, dz = tuple(values[k] for k in args[j]), tuple(slopes[k] for k in args[j])
                back = tuple(-s for s in dz)
            else:
                z, dz = values[args[j][0]], slopes[args[j][0]]
                back = -dz
            ahead = np.minimum(ahead, layer.next_kink(z, dz, caches[j])[0])
            behind = np.minimum(behind, layer.next_kink(z, back, layer.forward_along(z, back)[2])[0])
        return pattern_of(net, Trace(values, caches)), ahead, behind

    return probe


def _in_batches(fn, rows, alphas, batch):
    """fn over (rows, alphas) in slices of at most ``batch`` points; outputs concatenated."""
    parts = [fn(rows[s:s + batch], alphas[s:s + batch]) for s in range(0, rows.size, batch)]
    return tuple(np.concatenate(p) if p[0] is not None else None for p in zip(*parts))


# --------------------------------------------------------------------------------------------
# 1. locating the crossings
# --------------------------------------------------------------------------------------------
def locate(probe: Callable, rows: np.ndarray, n_rows: int, grid: int, batch: int,
           allowance: np.ndarray | None = None, bar=SILENT):
    """The crossings of every row in ``rows`` (see the module docstring, step 1).

    Returns ``(breaks, widths, probes, out_of_budget)``: per row of ``n_rows`` (empty for rows not in
    ``rows``) the increasing crossing positions and the width of the final bracket of each (an interval
    split down to ``MIN_WIDTH`` without a pattern change counts as a crossing of that width at its
    middle, so that its possible excursion is in the bound), the number of probes per row, and whether
    the row stopped refining its brackets because the next round of probes would exceed its
    ``allowance`` (probes per row, (n_rows,); None: no limit; the grid is always probed). Such a row's
    open brackets count as crossings of their present width, which the bound covers.
    """
    probes = np.zeros(n_rows, dtype=np.int64)
    out_of_budget = np.zeros(n_rows, dtype=bool)
    grid_alphas = np.arange(grid + 1) / grid
    r = rows.size
    pat, ahead, behind = _in_batches(probe, np.repeat(rows, grid + 1), np.tile(grid_alphas, r), batch)
    np.add.at(probes, rows, grid + 1)
    bar.add(evaluations=r * (grid + 1))
    pat, ahead, behind = (a.reshape(r, grid + 1) for a in (pat, ahead, behind))
    row = np.repeat(rows, grid)
    lo, hi = np.tile(grid_alphas[:-1], r), np.tile(grid_alphas[1:], r)
    p_lo, p_hi = pat[:, :-1].ravel(), pat[:, 1:].ravel()
    a_lo, b_hi = ahead[:, :-1].ravel(), behind[:, 1:].ravel()
    depth = np.zeros(row.size, dtype=np.int64)
    last_step = np.full(row.size, np.inf)          # the step that made the interval
    found_row, found_at, found_width = [], [], []

    while row.size:
        width = hi - lo
        mid = 0.5 * (lo + hi)
        splittable = (mid > lo) & (mid < hi)
        bracket = p_lo != p_hi
        suspicious = ~bracket & ((lo + a_lo < hi) | (hi - b_hi > lo))
        finished = ((bracket & ((width <= STEP_TOL) | (depth >= MAX_DEPTH) | ~splittable))
                    | (suspicious & ((width <= MIN_WIDTH) | (depth >= MAX_DEPTH) | ~splittable)))
        if allowance is not None:
            # a row whose next round of probes (one per open interval) would exceed its allowance stops
            need = np.bincount(row[(bracket | suspicious) & ~finished], minlength=n_rows)
            over = (need > 0) & (probes + need > allowance)
            out_of_budget |= over
            finished |= (bracket | suspicious) & over[row]
        found_row.append(row[finished])
        found_at.append(mid[finished])
        found_width.append(width[finished])
        work = (bracket | suspicious) & ~finished
        if not work.any():
            break
        row, lo, hi, mid, width, bracket = row[work], lo[work], hi[work], mid[work], width[work], bracket[work]
        p_lo, p_hi, a_lo, b_hi = p_lo[work], p_hi[work], a_lo[work], b_hi[work]
        depth, last_step = depth[work], last_step[work]
        # Newton: the tangent prediction from the end nearer to its predicted kink, inside (lo, hi)
        from_lo, from_hi = lo + a_lo, hi - b_hi
        ok_lo, ok_hi = (from_lo > lo) & (from_lo < hi), (from_hi > lo) & (from_hi < hi)
        use_lo = ok_lo & (~ok_hi | (a_lo <= b_hi))
        use_hi = ok_hi & ~use_lo
        step = np.where(use_lo, a_lo, np.where(use_hi, b_hi, np.inf))
        # safeguard (as rtsafe): bisect unless the Newton step is at most half the step before it
        newton = (use_lo | use_hi) & (step <= 0.5 * last_step)
        c = np.where(newton & use_lo, from_lo, np.where(newton & use_hi, from_hi, mid))
        # a converged Newton step (a tangent puts the crossing within rounding of an end): probe just
        # inside that end, so that the bracket can close
        at_lo = bracket & ((np.abs(from_lo - lo) <= STEP_TOL / 4) | (np.abs(from_hi - lo) <= STEP_TOL / 4))
        at_hi = bracket & ((np.abs(from_lo - hi) <= STEP_TOL / 4) | (np.abs(from_hi - hi) <= STEP_TOL / 4)) & ~at_lo
        c = np.where(at_lo, lo + STEP_TOL / 2, np.where(at_hi, hi - STEP_TOL / 2, c))
        c = np.where((c > lo) & (c < hi), c, mid)
        made = np.where(at_lo | at_hi, STEP_TOL / 2, np.where(newton, step, 0.5 * width))
        p_c, a_c, b_c = _in_batches(probe, row, c, batch)
        np.add.at(probes, row, 1)
        bar.add(evaluations=row.size)
        row = np.concatenate([row, row])
        lo, hi = np.concatenate([lo, c]), np.concatenate([c, hi])
        p_lo, p_hi = np.concatenate([p_lo, p_c]), np.concatenate([p_c, p_hi])
        a_lo, b_hi = np.concatenate([a_lo, a_c]), np.concatenate([b_c, b_hi])
        depth = np.concatenate([depth, depth]) + 1
        last_step = np.concatenate([made, made])

    rows_all, at, widths = np.concatenate(found_row), np.concatenate(found_at), np.concatenate(found_width)
    order = np.lexsort((at, rows_all))
    rows_all, at, widths = rows_all[order], at[order], widths[order]
    starts = np.searchsorted(rows_all, np.arange(n_rows + 1))
    breaks = [at[starts[i]:starts[i + 1]] for i in range(n_rows)]
    bracket_widths = [widths[starts[i]:starts[i + 1]] for i in range(n_rows)]
    return breaks, bracket_widths, probes, out_of_budget


# --------------------------------------------------------------------------------------------
# 2. integrating the pieces
# --------------------------------------------------------------------------------------------
_RULES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _RULES:
        _RULES[n] = quadrature.gauss_legendre(n)
    return _RULES[n]


def _apply(evaluate, row, a, b, n, batch, n_features):
    """Gauss-Legendre of order n on [a_p, b_p] for every piece p. Returns (Q (P, d), max |v| (P, d),
    pattern changed within the piece (P,) bool, pattern of the first node (P,) or None)."""
    nodes, weights = _rule(n)
    p = row.size
    rows = np.repeat(row, n)
    alphas = (a[:, None] + (b - a)[:, None] * nodes[None, :]).reshape(-1)
    values, patterns = _in_batches(evaluate, rows, alphas, batch)
    values = values.reshape(p, n, n_features)
    q = (b - a)[:, None] * np.einsum("k,pkd->pd", weights, values)
    vmax = np.abs(values).max(axis=1)
    if patterns is None:
        return q, vmax, np.zeros(p, dtype=bool), None
    patterns = patterns.reshape(p, n)
    return q, vmax, (patterns != patterns[:, :1]).any(axis=1), patterns[:, 0]


def _integrate_group(evaluate, group, breaks, widths, n_features, delta_t, t_size, rtol, atol, batch,
                     allowance=None, bar=SILENT):
    """Integrate the rows of ``group`` (step 2 and 3 of the module docstring).

    ``allowance`` (G,) or None: gradient evaluations each row may use; orders 2 and 3 on every piece are
    always evaluated, and a row whose next refinement does not fit stops (``out_of_budget``).

    Returns per row of the group: values (G, d), per-feature bounds (G, d), converged (G,), missed (G,)
    (a crossing was missed: locate again), gradient evaluations (G,), pieces (G,), out_of_budget (G,).
    """
    g = group.size
    edges = [np.concatenate([[0.0], breaks[int(r)], [1.0]]) for r in group]
    row = np.concatenate([np.full(e.size - 1, i) for i, e in enumerate(edges)])
    a = np.concatenate([e[:-1] for e in edges])
    b = np.concatenate([e[1:] for e in edges])
    n_grad = np.zeros(g, dtype=np.int64)
    vmax = np.zeros((g, n_features))
    missed = np.zeros(g, dtype=bool)
    out_of_budget = np.zeros(g, dtype=bool)

    # a piece between two crossings within rounding of each other has its nodes on its ends, whose
    # patterns may be the neighbours': it is not checked, and its whole width counts in the bound
    def wide(a, b):
        return b - a > 4 * STEP_TOL

    def run(row, a, b, n):
        q, vm, changed, first = _apply(evaluate, group[row], a, b, n, batch, n_features)
        np.add.at(n_grad, row, n)
        bar.add(evaluations=n * row.size)
        np.maximum.at(vmax, row, vm)
        missed[np.unique(row[changed & wide(a, b)])] = True
        return q, first

    def check(pieces, first):
        # every node of a piece must show the piece's pattern (that of its first node)
        if first is not None:
            missed[np.unique(row[pieces][(first != pattern[pieces]) & wide(a[pieces], b[pieces])])] = True

    level = np.full(row.size, 1)
    q_lo, pattern = run(row, a, b, ORDERS[0])
    q_hi, first = run(row, a, b, ORDERS[1])
    check(np.arange(row.size), first)
    bisections = np.zeros(g, dtype=np.int64)
    scale = np.where(vmax.max(axis=1) > 0, vmax.max(axis=1), 1.0)
    converged = np.zeros(g, dtype=bool)
    while True:
        diff = np.abs(q_hi - q_lo)
        e = diff.max(axis=1)
        total = np.zeros((g, n_features))
        np.add.at(total, row, q_hi)
        bound = np.bincount(row, weights=e, minlength=g)
        tol = np.maximum(atol * scale, rtol * np.abs(total).max(axis=1))
        converged = bound <= tol
        active = ~converged & ~missed & ~out_of_budget & (bisections < MAX_BISECTIONS)
        if not active.any():
            break
        picked = []
        for i in np.flatnonzero(active):
            mine = np.flatnonzero(row == i)
            worst = mine[np.argsort(-e[mine], kind="stable")]
            before = np.cumsum(e[worst]) - e[worst]
            take = worst[(before < bound[i] - 0.5 * tol[i]) & (e[worst] > 0)]
            if allowance is not None and take.size:
                # the next order of a piece, or the orders 5 and 8 on both halves of a split one
                cost = np.where(level[take] < len(ORDERS) - 1, np.take(ORDERS, np.minimum(level[take] + 1,
                                len(ORDERS) - 1)), 2 * (ORDERS[2] + ORDERS[3]))
                fits = np.cumsum(cost) <= allowance[i] - n_grad[i]
                out_of_budget[i] = not fits[0]
                take = take[fits]
            picked.append(take)
        chosen = np.concatenate(picked)
        up = chosen[level[chosen] < len(ORDERS) - 1]
        split = chosen[level[chosen] == len(ORDERS) - 1]
        if up.size:
            level[up] += 1
            q_lo[up] = q_hi[up]
            for lv in np.unique(level[up]):
                sel = up[level[up] == lv]
                q_hi[sel], first = run(row[sel], a[sel], b[sel], ORDERS[lv])
                check(sel, first)
        if split.size:
            mid = 0.5 * (a[split] + b[split])
            ok = (mid > a[split]) & (mid < b[split])
            np.add.at(bisections, row[split], 1)
            bisections[row[split[~ok]]] = MAX_BISECTIONS     # cannot split further: stop the row
            split, mid = split[ok], mid[ok]
            keep = np.ones(row.size, dtype=bool)
            keep[split] = False
            n_row = np.repeat(row[split], 2)
            n_a = np.stack([a[split], mid], axis=1).reshape(-1)
            n_b = np.stack([mid, b[split]], axis=1).reshape(-1)
            n_lo, n_pattern = run(n_row, n_a, n_b, ORDERS[2])
            n_hi, n_first = run(n_row, n_a, n_b, ORDERS[3])
            if pattern is not None:
                missed[np.unique(n_row[n_first != n_pattern])] = True
                pattern = np.concatenate([pattern[keep], n_pattern])
            row, a, b = np.concatenate([row[keep], n_row]), np.concatenate([a[keep], n_a]), np.concatenate([b[keep], n_b])
            q_lo, q_hi = np.concatenate([q_lo[keep], n_lo]), np.concatenate([q_hi[keep], n_hi])
            level = np.concatenate([level[keep], np.full(n_row.size, 3)])

    # every row's pieces summed left to right (the order of a row's sum depends on nothing else)
    order = np.lexsort((a, row))
    row, a, b, q_hi, q_lo = row[order], a[order], b[order], q_hi[order], q_lo[order]
    diff = q_hi - q_lo
    starts = np.searchsorted(row, np.arange(g))
    values = np.add.reduceat(q_hi, starts, axis=0)
    sliver = ~wide(a, b)
    located = (np.array([widths[int(r)].sum() for r in group])
               + np.bincount(row[sliver], weights=(b - a)[sliver], minlength=g))
    bounds = np.add.reduceat(np.abs(diff), starts, axis=0) + 2.0 * located[:, None] * vmax
    # completeness: the gap is the error of the summed integrand's quadrature, whose estimate is the
    # pieces' |sum_i (Q_n - Q_m)_i| plus the crossings' share
    sum_error = np.bincount(row, weights=np.abs(diff.sum(axis=1)), minlength=g) + 2.0 * located * vmax.sum(axis=1)
    gap = np.abs(values.sum(axis=1) - delta_t[group])
    rounding = GAP_ROUNDING * (np.abs(values).sum(axis=1) + t_size[group])
    missed |= gap > sum_error + rounding
    return values, bounds, converged & ~missed, missed, n_grad, np.bincount(row, minlength=g), out_of_budget


def integrate_piecewise(probe: Callable, evaluate: Callable, n_rows: int, n_features: int, delta_t: np.ndarray,
                        t_size: np.ndarray, rtol: float, atol: float, batch: int, kinked: bool = True,
                        max_evaluations: int | None = None, bar=SILENT):
    """Integrate every row's integrand over [0, 1], split at its kinks (see the module docstring).

    ``max_evaluations``: probes plus gradient evaluations one row may use (None: no budget). The first
    probe grid and Gauss-Legendre orders 2 and 3 on every piece found are always evaluated; beyond them
    a row stops refining a bracket, raising an order, bisecting a piece or locating again on a finer
    grid where that would exceed the budget, and is marked ``out_of_budget``. ``bar`` (from
    :func:`refattr.progress.task`) is told the rows finished, the pieces and the evaluations.

    ``probe`` is :func:`path_probe`'s; ``evaluate(rows, alphas) -> (values (P, d), patterns (P,) or
    None)`` gives the integrand (as for :func:`refattr.methods._adaptive.integrate_rows`). ``delta_t`` and
    ``t_size`` (N,) are t(x) - t(x') and |t(x)| + |t(x')| for the completeness check.

    Returns values (N, d), per-feature bounds (N, d), and a dict of diagnostics: ``converged`` (N,),
    ``missed_crossing`` (N,), ``n_probes``, ``n_gradients``, ``n_pieces`` (crossings + 1), ``n_intervals``
    (pieces after bisection) (N,), ``breakpoints`` (list), ``out_of_budget`` (N,).
    """
    values = np.empty((n_rows, n_features))
    bounds = np.empty((n_rows, n_features))
    converged = np.zeros(n_rows, dtype=bool)
    missed = np.zeros(n_rows, dtype=bool)
    n_grad = np.zeros(n_rows, dtype=np.int64)
    n_probes = np.zeros(n_rows, dtype=np.int64)
    n_pieces = np.zeros(n_rows, dtype=np.int64)
    n_intervals = np.zeros(n_rows, dtype=np.int64)
    breakpoints: list[np.ndarray] = [np.empty(0) for _ in range(n_rows)]
    out_of_budget = np.zeros(n_rows, dtype=bool)

    def allowance():
        return None if max_evaluations is None else max_evaluations - n_probes - n_grad

    todo, grid = np.arange(n_rows), GRID
    for _ in range(ROUNDS + 1):
        out_of_budget[todo] = False
        if kinked:
            breaks, widths, probes, over = locate(probe, todo, n_rows, grid, batch, allowance(), bar)
            n_probes += probes
            out_of_budget |= over
        else:
            breaks, widths = [np.empty(0)] * n_rows, [np.empty(0)] * n_rows
        for r in todo:
            breakpoints[r] = breaks[r]
        # groups of rows whose per-piece sums fit in memory
        sizes = np.array([breaks[r].size + 1 for r in todo])
        per_row = sizes * n_features * 8 * 6
        group_of = np.floor_divide(np.cumsum(per_row) - per_row, _PIECE_BYTES)
        again = []
        for k in np.unique(group_of):
            group = todo[group_of == k]
            left = allowance()
            v, bnd, conv, miss, ng, pcs, over = _integrate_group(evaluate, group, breaks, widths, n_features,
                                                                 delta_t, t_size, rtol, atol, batch,
                                                                 None if left is None else left[group], bar)
            values[group], bounds[group], converged[group], missed[group] = v, bnd, conv, miss
            out_of_budget[group] |= over
            n_grad[group] += ng
            n_intervals[group] = pcs
            n_pieces[group] = [breaks[r].size + 1 for r in group]
            again.append(group[miss])
            bar.add(done=int((~miss).sum()))
            bar.set(pieces=int(n_pieces.sum()))
        todo = np.concatenate(again) if again else np.empty(0, dtype=np.int64)
        grid *= 8
        if max_evaluations is not None and todo.size:
            # a finer grid that does not fit: the row keeps its missed crossing (no bound)
            poor = n_probes[todo] + n_grad[todo] + grid + 1 > max_evaluations
            out_of_budget[todo[poor]] = True
            todo = todo[~poor]
        if not todo.size or not kinked:
            break
    bar.set(done=n_rows)
    return values, bounds, {"converged": converged, "missed_crossing": missed, "n_probes": n_probes,
                            "n_gradients": n_grad, "n_pieces": n_pieces, "n_intervals": n_intervals,
                            "breakpoints": breakpoints, "out_of_budget": out_of_budget}
