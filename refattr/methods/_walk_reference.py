"""The exact integrated-gradients walk, written plainly: the twin of ``integrated_gradients._walk``.

One example at a time, one linear piece of its path x' + alpha (x - x') at a time, everything
recomputed from scratch at each piece: the forward pass along the path (every layer's
``forward_along``: value, slope and activation pattern just after alpha), the gradient on the
piece (every layer's VJP under that pattern), and the distance to the next kink (the smallest
``next_kink`` over all layers; linear layers have none). The piece contributes length x gradient.
Elements that reach their kink are put exactly on it (``snap_to_kink``) at the alpha where they
reach it, in the order they were reached, so that the pattern after the kink is read from the
side the path moves into; the fast walk does the same, with incremental updates and many examples
at once. The two agree to rounding, with the same breakpoints (``tests/methods/test_walk_reference.py``).
"""

from __future__ import annotations

import numpy as np

from ..network import Sequential
from ._common import one_hot

__all__ = ["walk_reference"]


def walk_reference(net: Sequential, inputs: np.ndarray, refs: np.ndarray,
                   targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(values, n_pieces, breakpoints) of exact IG for each row, as ``_walk`` returns them."""
    values = np.empty_like(inputs)
    pieces = np.zeros(inputs.shape[0], dtype=np.int64)
    breaks = []
    for r in range(inputs.shape[0]):
        values[r], pieces[r], b = _walk_one(net, inputs[r:r + 1], refs[r:r + 1], targets[r:r + 1])
        breaks.append(np.array(b, dtype=np.float64))
    return values, pieces, breaks


def _walk_one(net, x, x_ref, target):
    delta = x - x_ref
    g_top = one_hot(target, net.n_outputs(x.shape[1:]))
    total, alpha, n_pieces, breaks, snaps = np.zeros_like(x), 0.0, 0, [], []
    for _ in range(10**6):
        # the piece starting at alpha, from scratch (with the snaps made at this alpha)
        h, dh, inputs, caches = x_ref + alpha * delta, delta, [], []
        for i, layer in enumerate(net.layers):
            for j, events in snaps:
                if j == i:
                    h = layer.snap_to_kink(h, events, np.ones(1, dtype=bool))
            inputs.append((h, dh))
            h, dh, cache = layer.forward_along(h, dh)
            caches.append(cache)
        g = g_top
        for layer, cache, (h, _) in zip(reversed(net.layers), reversed(caches), reversed(inputs)):
            g = layer.backward_signal(g, cache, "gradient")
        proposals = [layer.next_kink(h, dh, c) for layer, (h, dh), c in zip(net.layers, inputs, caches)]
        distance = min(float(d[0]) for d, _ in proposals)
        new_alpha = min(alpha + distance, 1.0)
        total += (new_alpha - alpha) * g
        n_pieces += new_alpha > alpha
        if new_alpha >= 1.0:
            return (delta * total)[0], n_pieces, breaks
        if new_alpha > alpha:
            breaks.append(new_alpha)
            snaps = []
        snaps += [(i, events) for i, (d, events) in enumerate(proposals) if d[0] == distance]
        alpha = new_alpha
    raise RuntimeError("walk_reference: more than 10**6 pieces")   # pragma: no cover
