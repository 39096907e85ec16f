"""NumPy's own float64 loops, called from compiled code, give NumPy's values bit for bit.

``refattr.kernels.ufunc_loops`` reads the inner loop of ``np.exp``, ``np.expm1`` and ``np.tanh``
out of the ufunc objects and calls it from numba threads. The reference here is the ufunc
itself, called the ordinary way: every result must be identical in its bits (NaN payloads and
signed zeros included), in place or not, contiguous or strided, for every length.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from refattr.kernels import ufunc_loops

needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT,
                               reason="the loops are called from compiled code only")
LOOPS = ("EXP", "EXPM1", "TANH")


def _values(n=20_011):
    rng = np.random.default_rng(41)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, 709.78, 709.79,
               -745.13, -745.14, 1e300, -1.7976931348623157e308]
    return np.concatenate([special, rng.normal(size=n // 2) * 40.0,
                           np.ldexp(rng.uniform(-2.0, 2.0, n // 2), rng.integers(-1074, 11, n // 2))])


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@needs_jit
def test_the_loops_are_found_on_this_numpy():
    # Without them the element-wise kernels still give the same values, on one thread; this
    # test says so when a NumPy or Python build changes the layout the module reads.
    assert ufunc_loops.AVAILABLE, "NumPy's float64 exp/expm1/tanh loops were not found or not verified"
    for name in LOOPS:
        loop = getattr(ufunc_loops, name)
        assert loop.ufunc.__name__ == name.lower() and loop.address != 0


@needs_jit
@pytest.mark.parametrize("name", LOOPS)
def test_a_loop_reproduces_its_ufunc(name):
    loop = getattr(ufunc_loops, name)
    x = _values()
    with np.errstate(all="ignore"):
        expected = loop.ufunc(x)
    out = np.full_like(x, 7.0)
    ufunc_loops.apply_loop(loop.address, x, out)
    assert _same_bits(out, expected)
    in_place = x.copy()
    ufunc_loops.apply_loop(loop.address, in_place, in_place)
    assert _same_bits(in_place, expected)
    # strided source and destination: steps are passed through, other elements untouched
    wide = np.full(3 * x[::2].size, 7.0)
    ufunc_loops.apply_loop(loop.address, x[::2], wide[::3])
    assert _same_bits(wide[::3], expected[::2])
    assert np.all(wide[1::3] == 7.0) and np.all(wide[2::3] == 7.0)
    # every short length, at every offset modulo a vector width
    for start in range(8):
        for length in range(20):
            piece = np.full(length, 7.0)
            ufunc_loops.apply_loop(loop.address, x[start:start + length], piece)
            assert _same_bits(piece, expected[start:start + length])


def test_only_unary_float64_loops_are_taken():
    assert ufunc_loops._find(np.add) is None           # two inputs
    assert ufunc_loops._find(np.isnan) is None         # float64 -> bool, no d->d loop
    assert ufunc_loops._find(np.invert) is None        # integer and bool loops only


def test_the_probe_tells_loops_apart():
    # The check that admits a loop must reject the wrong one: the tanh loop posing as exp's.
    tanh = ufunc_loops._find(np.tanh)
    if tanh is None:
        pytest.skip("no loops on this NumPy")
    assert not ufunc_loops._reproduces(ufunc_loops.UfuncLoop(np.exp, tanh.address))
    assert ufunc_loops._reproduces(ufunc_loops.UfuncLoop(np.tanh, tanh.address))
