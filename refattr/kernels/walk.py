"""Fused kernels of the exact integrated-gradients walk.

The walk (:func:`refattr.methods.integrated_gradients._walk`) asks every ReLU layer, once per
linear piece of every path, for its activation pattern on the piece and for the distance to its
next kink, and moves every example's activations along its piece. Written with NumPy these take
eight to ten passes over the layer's inputs and their temporaries, most of the walk's time on a
convolutional network; here each is one or two compiled passes.

The NumPy twins of the ReLU kernels, with the same names and signatures, are the definitions in
:mod:`refattr.layers.activations` (``relu_forward_along``, ``relu_next_kink``,
``relu_snap_to_kink``), where the conventions are documented; the twin of ``add_scaled_rows`` is
the expression ``a + s[:, None] * d``. The results agree exactly
(``tests/kernels/test_walk_twins.py``). Inputs are float64 arrays of shape (N, ...).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .registry import accelerates

__all__ = ["relu_forward_along", "relu_next_kink", "relu_snap_to_kink", "add_scaled_rows", "WALK_KERNEL_NAMES"]

#: The fused ReLU kernels; each has a NumPy twin of the same name in :mod:`refattr.layers.activations`.
WALK_KERNEL_NAMES: tuple[str, ...] = ("relu_forward_along", "relu_next_kink", "relu_snap_to_kink")

_SMALLEST = float(np.finfo(np.float64).smallest_subnormal)


@jit
def _forward_along(x, dx, y, dy, active):
    for i in range(x.size):
        a = x[i] > 0 or (x[i] == 0 and dx[i] > 0)
        active[i] = a
        y[i] = x[i] if x[i] > 0 else 0.0
        dy[i] = dx[i] if a else 0.0


@jit
def _negative_ratio(z, dz):
    """z / dz where that is negative (the unit reaches 0 ahead), -inf elsewhere; an underflow to
    0 of a real crossing becomes -smallest_subnormal."""
    r = z / dz
    if r == 0 and ((z > 0 and dz < 0) or (z < 0 and dz > 0)):
        return -_SMALLEST
    return r if r < 0 else -np.inf


@jit
def _next_kink(x, dx, nearest, events):
    n, m = x.shape
    for row in range(n):
        best = -np.inf
        for j in range(m):
            r = _negative_ratio(x[row, j], dx[row, j])
            if r > best:
                best = r
        nearest[row] = best
        for j in range(m):
            events[row, j] = best > -np.inf and _negative_ratio(x[row, j], dx[row, j]) == best


@jit
def _snap(x, events, rows):
    n, m = x.shape
    for row in range(n):
        if rows[row]:
            for j in range(m):
                if events[row, j]:
                    x[row, j] = 0.0


@accelerates("refattr.layers.relu:relu_forward_along")
def relu_forward_along(x, dx):
    """(max(x, 0), slope on the piece just after, active pattern); twin of
    :func:`refattr.layers.activations.relu_forward_along`."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    dx = np.ascontiguousarray(dx, dtype=np.float64)
    y, dy = np.empty_like(x), np.empty_like(x)
    active = np.empty(x.shape, dtype=np.bool_)
    _forward_along(x.reshape(-1), dx.reshape(-1), y.reshape(-1), dy.reshape(-1), active.reshape(-1))
    return y, dy, active


@accelerates("refattr.layers.relu:relu_next_kink")
def relu_next_kink(x, dx):
    """(distance to the nearest kink per example, mask of the units at exactly that distance);
    twin of :func:`refattr.layers.activations.relu_next_kink`."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    dx = np.ascontiguousarray(dx, dtype=np.float64)
    n = x.shape[0]
    nearest = np.empty(n)
    events = np.empty(x.shape, dtype=np.bool_)
    # quiet IEEE exceptions (0/0, x/0, underflow) for NUMBA_DISABLE_JIT=1 runs on NumPy scalars
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        _next_kink(x.reshape(n, -1), dx.reshape(n, -1), nearest, events.reshape(n, -1))
    return -nearest, events


@accelerates("refattr.layers.relu:relu_snap_to_kink")
def relu_snap_to_kink(x, events, rows):
    """Set x to 0 where ``events`` holds, in the rows where ``rows`` holds; modifies and returns x
    (C-contiguous float64); twin of :func:`refattr.layers.activations.relu_snap_to_kink`."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.c_contiguous):
        raise TypeError("relu_snap_to_kink: x must be a C-contiguous float64 array (it is modified in place)")
    n = x.shape[0]
    _snap(x.reshape(n, -1), np.ascontiguousarray(events).reshape(n, -1), np.ascontiguousarray(rows))
    return x


@jit
def _add_scaled_rows(out, a, s, d):
    n, m = a.shape
    for row in range(n):
        for j in range(m):
            out[row, j] = a[row, j] + s[row] * d[row, j]


@jit
def _add_scaled_rows_in_place(a, s, d):
    n, m = a.shape
    for row in range(n):
        for j in range(m):
            a[row, j] = a[row, j] + s[row] * d[row, j]


def add_scaled_rows_numpy(a, s, d, out=None):
    """a + s[:, None, ...] * d: the definition of :func:`add_scaled_rows` (``out`` as there)."""
    result = a + np.asarray(s, dtype=np.float64).reshape((-1,) + (1,) * (a.ndim - 1)) * d
    if out is None:
        return result
    out[...] = result
    return out


@accelerates(add_scaled_rows_numpy)
def add_scaled_rows(a, s, d, out=None):
    """a + s[:, None, ...] * d, row by row (the same two roundings as that NumPy expression).

    ``a``, ``d``: C-contiguous float64 (N, ...); ``s``: (N,). ``out`` (optional, may be ``a``
    itself for an in-place update) receives the result; otherwise a new array is returned.
    """
    n = a.shape[0]
    if out is None:
        out = np.empty_like(a)
    for name, v in (("a", a), ("d", d), ("out", out)):
        if not (v.dtype == np.float64 and v.flags.c_contiguous and v.shape == a.shape):
            raise TypeError(f"add_scaled_rows: {name} must be C-contiguous float64 of shape {a.shape}")
    s = np.ascontiguousarray(s, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):   # as NumPy's would be, for NUMBA_DISABLE_JIT
        if out is a:   # one argument, not two that alias: LLVM vectorises only then
            _add_scaled_rows_in_place(a.reshape(n, -1), s, d.reshape(n, -1))
        else:
            _add_scaled_rows(out.reshape(n, -1), a.reshape(n, -1), s, d.reshape(n, -1))
    return out
