"""The fused ReLU path kernels equal their NumPy definitions exactly.

``refattr.kernels.walk`` replaces, inside the exact integrated-gradients walk, the NumPy
definitions ``relu_forward_along``, ``relu_next_kink`` and ``relu_snap_to_kink`` of
``refattr.layers.activations``. Both make only exact comparisons and one division, so they must
agree bit for bit; the inputs hit every branch: units at their kink (x == 0, either sign of zero)
with dx of each sign and zero, x / dx underflowing to 0, ties between units at exactly the same
distance, rows with no kink ahead, dx == 0 with x != 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from refattr.kernels import walk as fused
from refattr.kernels.walk import WALK_KERNEL_NAMES
from refattr.layers import activations as definitions


def _cases():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 3, 5, 4))
    dx = rng.normal(size=x.shape)
    x[0, 0, 0, :] = [0.0, -0.0, 0.0, -0.0]
    dx[0, 0, 0, :] = [1.0, -1.0, 0.0, 0.0]
    x[1, 0, 0, :2] = [1e-300, -1e-300]            # x / dx underflows to 0 for these crossings
    dx[1, 0, 0, :2] = [-1e300, 1e300]
    x[2, 0, 0, :3] = [0.5, 1.0, -2.0]              # three units at exactly distance 0.25
    dx[2, 0, 0, :3] = [-2.0, -4.0, 8.0]
    x[3] = np.abs(x[3])                            # no kink ahead in this row
    dx[3] = np.abs(dx[3])
    x[4, 0, 0, :2] = [3.0, -3.0]                   # dx == 0 with x != 0
    dx[4, 0, 0, :2] = [0.0, -0.0]
    return x, dx


def test_every_kernel_has_a_numpy_definition():
    for name in WALK_KERNEL_NAMES:
        assert callable(getattr(fused, name)) and callable(getattr(definitions, name))


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    if a.dtype == np.float64:
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def test_forward_along_equals_definition():
    x, dx = _cases()
    for got, want in zip(fused.relu_forward_along(x, dx), definitions.relu_forward_along(x, dx)):
        _same(got, want)


def test_next_kink_equals_definition():
    x, dx = _cases()
    d_got, e_got = fused.relu_next_kink(x, dx)
    d_want, e_want = definitions.relu_next_kink(x, dx)
    _same(d_got, d_want)
    _same(e_got, e_want)
    assert d_got[3] == np.inf and not e_got[3].any()
    assert d_got[1] == np.finfo(np.float64).smallest_subnormal
    assert d_got[2] <= 0.25 and (d_got[2] < 0.25 or e_got[2, 0, 0, :3].all())


def test_snap_equals_definition():
    x, dx = _cases()
    _, events = definitions.relu_next_kink(x, dx)
    rows = np.array([True, False, True, True, False, True])
    _same(fused.relu_snap_to_kink(x.copy(), events, rows), definitions.relu_snap_to_kink(x.copy(), events, rows))
    with pytest.raises(TypeError, match="C-contiguous"):
        fused.relu_snap_to_kink(np.asfortranarray(x), events, rows)


def test_random_walk_states_agree():
    """States as the walk meets them: values moved by a distance, then snapped."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        x = rng.normal(size=(4, 7))
        dx = rng.normal(size=(4, 7))
        for _ in range(5):
            d, events = definitions.relu_next_kink(x, dx)
            d2, events2 = fused.relu_next_kink(x, dx)
            _same(d, d2)
            _same(events, events2)
            step = np.where(np.isfinite(d), d, 0.0)[:, None]
            x = x + step * dx
            rows = np.isfinite(d)
            x = definitions.relu_snap_to_kink(x, events, rows)
            for got, want in zip(fused.relu_forward_along(x, dx), definitions.relu_forward_along(x, dx)):
                _same(got, want)
            dx = definitions.relu_forward_along(x, dx)[1] + rng.normal(size=x.shape) * 0.1


def test_add_scaled_rows_equals_the_numpy_expression():
    rng = np.random.default_rng(13)
    a = rng.normal(size=(5, 3, 4, 2))
    d = rng.normal(size=a.shape)
    s = rng.normal(size=5) * [1.0, 0.0, 1e-300, 1e300, -3.0]
    with np.errstate(over="ignore", under="ignore"):
        want = a + s.reshape(-1, 1, 1, 1) * d
        _same(fused.add_scaled_rows(a, s, d), want)
        b = a.copy()
        assert fused.add_scaled_rows(b, s, d, out=b) is b
    _same(b, want)
    with pytest.raises(TypeError, match="C-contiguous"):
        fused.add_scaled_rows(a, s, np.asfortranarray(d))
