"""Exact integrated gradients on a piecewise-linear :class:`~refattr.graph.Graph`: the straight path
walked from kink to kink, each example to its own kinks.

On a piecewise-linear network the gradient is constant between kinks, so the integral is the sum
over pieces of (piece length x gradient). Each step, for the examples still walking:

1. every value and its slope along the path (d/dα, a JVP through every node, fan-out and joins
   included) at the current α, the kinked nodes (ReLU, max pooling) deciding their pattern from
   (value, slope) lexicographically, so that an input exactly at a kink takes the side the path
   moves into (``Layer.forward_along``);
2. the gradient on the piece that starts there (the backward pass over the graph);
3. the distance to the nearest kink of any kinked node (``Layer.next_kink``); the example moves
   there (or to α = 1), and the elements that define that kink are put exactly on it
   (``Layer.snap_to_kink``) before the next step reads their pattern. An example that did not move
   (several kinks at one α) keeps the snapped inputs of the step before.

Unlike the chain walk for :class:`~refattr.Sequential` (``integrated_gradients._walk``), which
recomputes only what a changed pattern touches, each step here runs the whole graph for the
examples still walking: the same pieces, at the cost of one forward, JVP and backward pass per piece.
"""

from __future__ import annotations

import numpy as np

from ..layers._join import JoinLayer, LinearJoin
from ..layers.base import LinearLayer
from ..progress import SILENT
from ._common import one_hot
from ._pieces import PieceLog

__all__ = ["walk_graph"]


def _linear(layer) -> bool:
    return isinstance(layer, (LinearLayer, LinearJoin))


def _col(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((-1,) + (1,) * (ndim - 1))


def walk_graph(net, inputs: np.ndarray, refs: np.ndarray, targets: np.ndarray, bar=SILENT):
    """Exact IG of every row of (inputs, refs). Returns (values, n_pieces, breakpoints)."""
    layers, node_args = net.layers, net.node_args
    n_all = inputs.shape[0]
    delta = inputs - refs
    g_top_all = one_hot(targets, net.n_outputs(inputs.shape[1:]))
    kinked = [j for j, layer in enumerate(layers) if not _linear(layer)]
    if not kinked:      # an affine network: one piece, the gradient anywhere
        trace = net.trace(refs)
        bar.add(n_all, pieces=n_all)
        return delta * net.backward(g_top_all, trace), np.ones(n_all, dtype=np.int64), [np.empty(0)] * n_all

    row_id = np.arange(n_all)
    alpha = np.zeros(n_all)
    S = np.zeros_like(inputs)
    S_out = np.empty_like(inputs)
    log = PieceLog(n_all, "on a graph ")
    kept: dict[int, np.ndarray] = {}          # kinked node -> its input at the last step, after snaps
    snaps: dict[int, tuple] = {}              # kinked node -> (events, rows) to snap at this step
    moved = np.ones(n_all, dtype=bool)

    while row_id.size:
        n = row_id.size
        d = delta[row_id]
        x = refs[row_id] + _col(alpha, d.ndim) * d
        values, slopes, caches = [x], [d], []
        proposals = {}
        for j, (layer, args) in enumerate(zip(layers, node_args)):
            if isinstance(layer, JoinLayer):
                y, dy, cache = layer.forward_along(tuple(values[a] for a in args), tuple(slopes[a] for a in args))
            else:
                xin, dxin = values[args[0]], slopes[args[0]]
                if j in kept:
                    stay = ~moved
                    if stay.any():
                        xin[stay] = kept[j][stay]     # in place: every reader of this value sees it
                    if j in snaps:
                        events, rows = snaps[j]
                        layer.snap_to_kink(xin, events, rows)
                y, dy, cache = layer.forward_along(xin, dxin)
                if j in kinked:
                    kept[j] = xin.copy()
                    proposals[j] = layer.next_kink(xin, dxin, cache)
            values.append(y)
            slopes.append(dy)
            caches.append(cache)
        if log.max_stalls is None:
            log.max_stalls = sum(int(np.prod(values[node_args[j][0]].shape[1:])) for j in kinked) + 16
        # the gradient on the piece that starts at alpha
        grads = net.backward(g_top_all[row_id], _Trace(values, caches))
        s = np.full(n, np.inf)
        for j in kinked:
            s = np.minimum(s, proposals[j][0])
        new_alpha = alpha + s
        done = new_alpha >= 1.0
        new_alpha[done] = 1.0
        ds = new_alpha - alpha
        moved = ds > 0
        S += _col(ds, S.ndim) * grads
        log.step(row_id, new_alpha, moved, done)
        if bar:
            bar.add(np.count_nonzero(done), pieces=np.count_nonzero(moved))
        alpha = new_alpha
        snaps = {j: (proposals[j][1], proposals[j][0] == s) for j in kinked}
        if done.any():
            S_out[row_id[done]] = S[done]
            keep = ~done
            row_id, alpha, S, moved = row_id[keep], alpha[keep], S[keep], moved[keep]
            kept = {j: v[keep] for j, v in kept.items()}
            snaps = {j: (None if ev is None else ev[keep], rows[keep]) for j, (ev, rows) in snaps.items()}

    return delta * S_out, log.pieces, log.breakpoints()


class _Trace:
    """The minimal trace :meth:`Graph.backward` reads: activations by value, caches by node."""

    __slots__ = ("activations", "caches")

    def __init__(self, activations, caches):
        self.activations = activations
        self.caches = caches
