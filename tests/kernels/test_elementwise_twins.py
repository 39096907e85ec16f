"""The fused element-wise kernels equal their NumPy definitions bit for bit.

``refattr.kernels.elementwise`` evaluates the formulas of ``refattr.layers.activations`` in one
compiled pass around NumPy's exp, with the same rounded operations in the same order, so the
comparison is exact (``assert_array_equal``), not to a tolerance. The inputs cover every branch of
the definitions: both signs and zeros of a, h and a + h, |a| up to and past the exp underflow
(|x| > 745), h down to subnormals, a + h overflowing, and for swish the exponent shift below -600.
Accuracy against mpmath is tested on the layers (tests/layers/test_secants.py), which call these
kernels.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from refattr.kernels import elementwise as fused
from refattr.kernels import ufunc_loops
from refattr.kernels.elementwise import ELEMENTWISE_KERNEL_NAMES
from refattr.layers import activations as definitions

BETAS = (1.0, 0.5, 1.702, 2.0, -0.75)


def _values():
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-15, 1e-8, 0.5, -1.278, 1.0, 2.5, -20.0, 40.0,
               -354.0, 360.0, 700.0, -709.5, 745.5, -800.0, 1200.0, -1e5, 1e300, -1.7e308, 1.7e308]
    return np.concatenate([special, rng.normal(size=200), rng.normal(size=200) * 30,
                           rng.normal(size=100) * 400, np.exp(rng.uniform(-700, 700, size=100))])


def _pairs():
    """(a, h) on a grid of values times a grid of steps, plus random pairs."""
    v = _values()
    steps = np.array([0.0, -0.0, 5e-324, 1e-310, -1e-15, 1e-12, -1e-6, 0.3, -2.0, 7.0, -60.0, 500.0,
                      -1000.0, 1.7e308])
    a, h = np.meshgrid(v, steps, indexing="ij")
    rng = np.random.default_rng(8)
    extra_a, extra_h = rng.normal(size=500) * 10, rng.normal(size=500) * 10
    return np.concatenate([a.ravel(), extra_a, -extra_h]), np.concatenate([h.ravel(), extra_h, extra_h])


@pytest.fixture(params=["serial", "chunked"])
def either_path(request, monkeypatch):
    """Run the test on each path of the kernels: serially, and chunk by chunk (forced even for
    inputs of one chunk, where NumPy's loops are available: the kernels then call them)."""
    if request.param == "serial":
        monkeypatch.setattr(fused, "_chunked", lambda size, loops=True: False)
    else:
        monkeypatch.setattr(fused, "_chunked",
                            lambda size, loops=True: (ufunc_loops.AVAILABLE or not loops) and size > 0)


def test_every_kernel_has_a_numpy_definition():
    for name in ELEMENTWISE_KERNEL_NAMES:
        assert callable(getattr(fused, name)) and callable(getattr(definitions, name))


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("name", ["tanh_secant", "sigmoid_secant"])
def test_secants_equal_their_definitions(name):
    a, h = _pairs()
    with np.errstate(over="ignore"):   # the definitions' a + h overflows for the 1.7e308 pairs
        expected = getattr(definitions, name)(a, h)
    got = getattr(fused, name)(a, h)
    np.testing.assert_array_equal(got, expected)
    assert np.all(np.isfinite(got))


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("beta", BETAS)
def test_swish_secant_equals_its_definition(beta):
    a, h = _pairs()
    keep = (np.abs(a) < 1e200) & (np.abs(h) < 1e200)   # beyond, beta * hi * sigma_secant overflows in both
    a, h = a[keep], h[keep]
    expected = definitions.swish_secant(a, h, beta)
    got = fused.swish_secant(a, h, beta)
    np.testing.assert_array_equal(got, expected)
    # the shifted-exponent branch was exercised
    assert np.any(-np.minimum(np.abs(beta * a), np.abs(beta * (a + h))) < -600.0)
    # Without any shifted element the kernel takes exp(exponent) from the exponentials of
    # sigmoid_secant's parts instead of computing it: every sign pattern, no element shifted.
    moderate = (np.abs(beta * a) < 590.0) & (np.abs(beta * (a + h)) < 590.0)   # exponent > -600
    a, h = a[moderate], h[moderate]
    assert np.any(a * (a + h) > 0) and np.any(a * (a + h) < 0)
    assert np.any(h > 0) and np.any(h < 0)
    np.testing.assert_array_equal(fused.swish_secant(a, h, beta), definitions.swish_secant(a, h, beta))


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("name", ["tanh_derivative", "sigmoid_derivative"])
def test_derivatives_equal_their_definitions(name):
    x = _values()
    g = np.random.default_rng(9).normal(size=x.shape)
    np.testing.assert_array_equal(getattr(fused, name)(x), getattr(definitions, name)(x))
    np.testing.assert_array_equal(getattr(fused, name)(x, g), getattr(definitions, name)(x, g))


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("beta", BETAS)
def test_swish_and_its_derivative_equal_their_definitions(beta):
    x = _values()
    x = x[np.abs(x) < 1e300]
    g = np.random.default_rng(9).normal(size=x.shape)
    np.testing.assert_array_equal(fused.swish(x, beta), definitions.swish(x, beta))
    np.testing.assert_array_equal(fused.swish_derivative(x, beta), definitions.swish_derivative(x, beta))
    np.testing.assert_array_equal(fused.swish_derivative(x, beta, g), definitions.swish_derivative(x, beta, g))


@pytest.mark.usefixtures("either_path")
def test_sigmoid_equals_its_definition():
    x = _values()
    np.testing.assert_array_equal(fused.sigmoid(x), definitions.sigmoid(x))


@pytest.mark.usefixtures("either_path")
def test_shapes_broadcasting_and_empty_inputs():
    a = np.random.default_rng(1).normal(size=(2, 3, 4))
    h = np.random.default_rng(2).normal(size=(3, 1))
    np.testing.assert_array_equal(fused.tanh_secant(a, h), definitions.tanh_secant(a, h))
    np.testing.assert_array_equal(fused.swish_secant(h, a, 1.5), definitions.swish_secant(h, a, 1.5))
    g = np.ones((5, 2, 3, 4))
    assert fused.sigmoid_derivative(a, g).shape == (5, 2, 3, 4)
    assert fused.tanh_derivative(np.array(0.0)).shape == ()
    assert fused.tanh_derivative(np.array(0.0)) == 1.0
    empty = np.empty((0, 3))
    for name in ELEMENTWISE_KERNEL_NAMES:
        fn = getattr(fused, name)
        if name == "relu_backward_signal":
            out = fn(empty, empty, "guided_backprop")
        else:
            out = fn(empty, empty) if name.endswith("secant") else fn(empty)
        assert out.shape == (0, 3) and out.dtype == np.float64
    # non-contiguous and integer inputs are converted, not misread
    x = np.arange(-6, 6).reshape(3, 4)
    np.testing.assert_array_equal(fused.sigmoid(x.T), definitions.sigmoid(x.T.astype(float)))
    xf = np.random.default_rng(3).normal(size=(4, 6))
    for args in ((xf.T, xf.T * 2), (xf[:, ::2], xf[:, 1::2]), (xf, xf.astype(np.float32))):
        np.testing.assert_array_equal(fused.tanh_derivative(*args), definitions.tanh_derivative(*args))
        np.testing.assert_array_equal(fused.swish_derivative(args[0], 1.5, args[1]),
                                      definitions.swish_derivative(args[0], 1.5, args[1]))


def _calls(shape):
    """(name, arguments) for every kernel, on inputs of the given shape that cover the branches."""
    n = int(np.prod(shape))
    rng = np.random.default_rng(15)
    a, h = (np.resize(v, n) for v in _pairs())
    order = rng.permutation(n)
    a, h = a[order].reshape(shape), h[order].reshape(shape)
    keep = (np.abs(a) < 1e200) & (np.abs(h) < 1e200)    # as in the swish tests above
    a_s, h_s = np.where(keep, a, 1.5), np.where(keep, h, -0.25)
    x = rng.permutation(np.resize(_values(), n)).reshape(shape)
    x_s = np.where(np.abs(x) < 1e300, x, 3.0)
    g = rng.normal(size=shape)
    return [("tanh", (x,)), ("tanh_derivative", (x, g)), ("sigmoid_derivative", (x,)),
            ("sigmoid", (x,)), ("swish", (x_s, 1.702)), ("swish_derivative", (x_s, -0.75, g)),
            ("tanh_secant", (a, h)), ("sigmoid_secant", (a, h)), ("swish_secant", (a_s, h_s, 0.5)),
            ("swish_secant", (a_s, h_s, 1.0)), ("relu_backward_signal", (g, x, "guided_backprop"))]


# Several chunks and a ragged tail (3 * CHUNK + 517 = 5 * 2561 elements): image-shaped arrays run
# their chunks on all threads, rows of features on the calling thread (next to BLAS's threads).
CHUNKED_SHAPES = [(5, 1, 1, 2561), (5, 2561), (12805,)]


@pytest.mark.parametrize("shape", CHUNKED_SHAPES)
def test_chunked_kernels_equal_their_definitions(shape):
    # Each path must give the NumPy definitions' bits exactly, on two threads and on one (the
    # serial path, on arrays of one chunk, is what the tests above check).
    assert np.prod(shape) == 3 * fused.CHUNK + 517
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    calls = _calls(shape)
    assert {name for name, _ in calls} == set(ELEMENTWISE_KERNEL_NAMES)
    threads = numba.get_num_threads()
    try:
        for count in (2, 1):
            numba.set_num_threads(count)
            for name, args in calls:
                expected = getattr(definitions, name)(*args)
                loops = name != "relu_backward_signal"
                assert fused._chunked(expected.size, loops) == (ufunc_loops.AVAILABLE or not loops)
                got = getattr(fused, name)(*args)
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} on {count} thread(s)")
                np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
                assert numba.get_num_threads() == count      # a serial run restores the count
    finally:
        numba.set_num_threads(threads)


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided_backprop"])
def test_relu_backward_signal_equals_its_definition(rule):
    rng = np.random.default_rng(14)
    g = rng.normal(size=(4, 3, 5))
    z = rng.normal(size=g.shape)
    z[0, 0, :3] = [0.0, -0.0, 5e-324]
    g[1, 0, :2] = [0.0, -0.0]
    for cache in (z, z > 0):                      # the trace's inputs, or the walk's pattern
        got = fused.relu_backward_signal(g, cache, rule)
        want = definitions.relu_backward_signal(g, cache, rule)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))   # masked g < 0 gives -0.0
