"""The numba kernels, their NumPy twins and a direct loop over the definition agree.

Three independent implementations of every kernel are compared:

* ``refattr.kernels.jitted`` (numba: phase-split planes, unit-stride loops),
* ``refattr.kernels.numpy_twins`` (im2col + matmul, slicing per kernel tap),
* the pure-Python loops below, written straight from the definitions with explicit bounds checks.

The VJPs are further checked as adjoints of the forward maps (<A x, g> == <x, A^T g>), which
does not depend on any implementation of the transpose.
"""

from __future__ import annotations

import inspect

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refattr.kernels import KERNEL_NAMES, jitted, numpy_twins

IMPLS = {"jitted": jitted, "numpy_twins": numpy_twins}
RTOL = 1e-13


# ---------------------------------------------------------------------------------------------
# direct loops over the definitions
# ---------------------------------------------------------------------------------------------


def _conv_out_hw(H, W, kH, kW, stride, padding, dilation):
    top, bottom, left, right = padding
    OH = (H + top + bottom - dilation[0] * (kH - 1) - 1) // stride[0] + 1
    OW = (W + left + right - dilation[1] * (kW - 1) - 1) // stride[1] + 1
    return OH, OW


def _conv_taps(x_shape, w_shape, stride, padding, dilation, groups):
    """Yield (n, co, ci, c, kh, kw, oh, ow, ih, iw) for every product of the convolution whose
    input cell (ih, iw) lies inside the unpadded input (padding cells are zero)."""
    N, C_in, H, W = x_shape
    C_out, Cig, kH, kW = w_shape
    OH, OW = _conv_out_hw(H, W, kH, kW, stride, padding, dilation)
    top, _, left, _ = padding
    cog = C_out // groups
    for n in range(N):
        for co in range(C_out):
            grp = co // cog
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(Cig):
                        for kh in range(kH):
                            for kw in range(kW):
                                ih = oh * stride[0] - top + kh * dilation[0]
                                iw = ow * stride[1] - left + kw * dilation[1]
                                if 0 <= ih < H and 0 <= iw < W:
                                    yield n, co, grp * Cig + c, c, kh, kw, oh, ow, ih, iw


def loop_conv2d_forward(x, w, stride, padding, dilation, groups):
    N, _, H, W = x.shape
    C_out, _, kH, kW = w.shape
    out = np.zeros((N, C_out) + _conv_out_hw(H, W, kH, kW, stride, padding, dilation))
    for n, co, ci, c, kh, kw, oh, ow, ih, iw in _conv_taps(x.shape, w.shape, stride, padding, dilation, groups):
        out[n, co, oh, ow] += w[co, c, kh, kw] * x[n, ci, ih, iw]
    return out


def loop_conv2d_input_vjp(g, w, input_hw, stride, padding, dilation, groups):
    N = g.shape[0]
    C_in = w.shape[1] * groups
    gx = np.zeros((N, C_in) + tuple(input_hw))
    for n, co, ci, c, kh, kw, oh, ow, ih, iw in _conv_taps(gx.shape, w.shape, stride, padding, dilation, groups):
        gx[n, ci, ih, iw] += w[co, c, kh, kw] * g[n, co, oh, ow]
    return gx


def loop_conv2d_weight_vjp(x, g, kernel_hw, stride, padding, dilation, groups):
    C_out = g.shape[1]
    w_shape = (C_out, x.shape[1] // groups) + tuple(kernel_hw)
    gw = np.zeros(w_shape)
    for n, co, ci, c, kh, kw, oh, ow, ih, iw in _conv_taps(x.shape, w_shape, stride, padding, dilation, groups):
        gw[co, c, kh, kw] += g[n, co, oh, ow] * x[n, ci, ih, iw]
    return gw


def _pool_windows(H, W, kernel, stride, padding):
    """Yield (oh, ow, cells): the in-bounds cells (ih, iw) of each window, in row-major order."""
    kH, kW = kernel
    top, bottom, left, right = padding
    OH = (H + top + bottom - kH) // stride[0] + 1
    OW = (W + left + right - kW) // stride[1] + 1
    for oh in range(OH):
        for ow in range(OW):
            cells = []
            for kh in range(kH):
                for kw in range(kW):
                    ih = oh * stride[0] - top + kh
                    iw = ow * stride[1] - left + kw
                    if 0 <= ih < H and 0 <= iw < W:
                        cells.append((ih, iw))
            yield oh, ow, cells


def _pool_out_hw(H, W, kernel, stride, padding):
    top, bottom, left, right = padding
    return (H + top + bottom - kernel[0]) // stride[0] + 1, (W + left + right - kernel[1]) // stride[1] + 1


def loop_avgpool2d_forward(x, kernel, stride, padding, count_include_pad):
    N, C, H, W = x.shape
    out = np.zeros((N, C) + _pool_out_hw(H, W, kernel, stride, padding))
    for n in range(N):
        for c in range(C):
            for oh, ow, cells in _pool_windows(H, W, kernel, stride, padding):
                divisor = kernel[0] * kernel[1] if count_include_pad else len(cells)
                out[n, c, oh, ow] = sum(x[n, c, ih, iw] for ih, iw in cells) / divisor
    return out


def loop_avgpool2d_vjp(g, input_hw, kernel, stride, padding, count_include_pad):
    N, C = g.shape[:2]
    H, W = input_hw
    gx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for oh, ow, cells in _pool_windows(H, W, kernel, stride, padding):
                divisor = kernel[0] * kernel[1] if count_include_pad else len(cells)
                for ih, iw in cells:
                    gx[n, c, ih, iw] += g[n, c, oh, ow] / divisor
    return gx


def loop_maxpool2d_forward(x, kernel, stride, padding):
    N, C, H, W = x.shape
    shape = (N, C) + _pool_out_hw(H, W, kernel, stride, padding)
    out, argmax = np.zeros(shape), np.zeros(shape, dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh, ow, cells in _pool_windows(H, W, kernel, stride, padding):
                best = None
                for ih, iw in cells:  # row-major; replace only on strictly greater
                    if best is None or x[n, c, ih, iw] > out[n, c, oh, ow]:
                        best = (ih, iw)
                        out[n, c, oh, ow] = x[n, c, ih, iw]
                argmax[n, c, oh, ow] = best[0] * W + best[1]
    return out, argmax


def loop_maxpool2d_vjp(g, argmax, input_hw):
    N, C, OH, OW = g.shape
    H, W = input_hw
    gx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    a = argmax[n, c, oh, ow]
                    gx[n, c, a // W, a % W] += g[n, c, oh, ow]
    return gx


LOOPS = {name: globals()["loop_" + name] for name in KERNEL_NAMES}


# ---------------------------------------------------------------------------------------------
# comparison helpers
# ---------------------------------------------------------------------------------------------


def _abs_args(args):
    return tuple(np.abs(a) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a for a in args)


def assert_close_to_rounding(actual, expected, bound):
    """|actual - expected| <= RTOL * |expected| + RTOL * bound, elementwise.

    ``bound`` is the same kernel applied to the absolute values of the float inputs, i.e. the sum
    of the absolute values of the terms of each output: rounding errors are relative to it, which
    matters where the terms cancel.
    """
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype == np.float64
    err = np.abs(actual - expected)
    tol = RTOL * np.abs(expected) + RTOL * bound + 1e-300
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else None
    assert np.all(err <= tol), f"max excess at {worst}: {actual[worst]!r} vs {expected[worst]!r}"


def assert_kernel_outputs_agree(name, actual, expected, args):
    if name == "maxpool2d_forward":
        np.testing.assert_array_equal(actual[0], expected[0])
        assert actual[1].dtype == expected[1].dtype == np.int64
        np.testing.assert_array_equal(actual[1], expected[1])
        return
    bound = getattr(numpy_twins, name)(*_abs_args(args))
    assert_close_to_rounding(actual, expected, bound)


# ---------------------------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------------------------


def _array(rng, shape, discrete):
    """Standard normal values, or small integers (many exact ties and cancellations)."""
    if discrete:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    if depthwise:
        C_in = C_out = groups = draw(st.integers(1, 4))
    else:
        C_in = draw(st.integers(1, 4))
        C_out = draw(st.integers(1, 4))
        groups = draw(st.sampled_from([d for d in range(1, 5) if C_in % d == 0 and C_out % d == 0]))
    N = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kH, kW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    OH, OW = _conv_out_hw(H, W, kH, kW, stride, padding, dilation)
    assume(OH >= 1 and OW >= 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    discrete = draw(st.booleans())
    x = _array(rng, (N, C_in, H, W), discrete)
    w = _array(rng, (C_out, C_in // groups, kH, kW), discrete)
    g = _array(rng, (N, C_out, OH, OW), discrete)
    return dict(x=x, w=w, g=g, stride=stride, padding=padding, dilation=dilation, groups=groups)


@st.composite
def pool_cases(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (
        draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[0] // 2)),
        draw(st.integers(0, kernel[1] // 2)), draw(st.integers(0, kernel[1] // 2)),
    )
    OH, OW = _pool_out_hw(H, W, kernel, stride, padding)
    assume(OH >= 1 and OW >= 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    discrete = draw(st.booleans())
    x = _array(rng, (N, C, H, W), discrete)
    g = _array(rng, (N, C, OH, OW), discrete)
    return dict(x=x, g=g, kernel=kernel, stride=stride, padding=padding,
                count_include_pad=draw(st.booleans()))


def kernel_args(name, case):
    """The positional arguments of kernel ``name`` for a drawn case."""
    if name.startswith("conv2d"):
        geom = (case["stride"], case["padding"], case["dilation"], case["groups"])
        x, w, g = case["x"], case["w"], case["g"]
        return {
            "conv2d_forward": (x, w) + geom,
            "conv2d_input_vjp": (g, w, x.shape[2:]) + geom,
            "conv2d_weight_vjp": (x, g, w.shape[2:]) + geom,
        }[name]
    x, g = case["x"], case["g"]
    pool = (case["kernel"], case["stride"], case["padding"])
    if name == "avgpool2d_forward":
        return (x,) + pool + (case["count_include_pad"],)
    if name == "avgpool2d_vjp":
        return (g, x.shape[2:]) + pool + (case["count_include_pad"],)
    if name == "maxpool2d_forward":
        return (x,) + pool
    if name == "maxpool2d_vjp":
        _, argmax = numpy_twins.maxpool2d_forward(x, *pool)
        return (g, argmax, x.shape[2:])
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------
# jitted == numpy twin, on random geometry
# ---------------------------------------------------------------------------------------------


def test_kernel_names_cover_both_modules_with_identical_signatures():
    assert len(set(KERNEL_NAMES)) == len(KERNEL_NAMES) == 7
    for name in KERNEL_NAMES:
        jf = getattr(jitted, name)
        tf = getattr(numpy_twins, name)
        py = getattr(jf, "py_func", jf)  # numba dispatcher, or the function under NUMBA_DISABLE_JIT
        assert inspect.signature(py) == inspect.signature(tf), name
        assert py.__doc__ and tf.__doc__, name
    assert set(KERNEL_NAMES) <= set(jitted.__all__) and set(KERNEL_NAMES) <= set(numpy_twins.__all__)


@pytest.mark.parametrize("name", KERNEL_NAMES)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_jitted_equals_numpy_twin(name, data):
    case = data.draw(conv_cases() if name.startswith("conv2d") else pool_cases())
    args = kernel_args(name, case)
    expected = getattr(numpy_twins, name)(*args)
    actual = getattr(jitted, name)(*args)
    assert_kernel_outputs_agree(name, actual, expected, args)


# ---------------------------------------------------------------------------------------------
# both == the direct loop, on hand-picked cases
# ---------------------------------------------------------------------------------------------

# (N, C_in, C_out, H, W, kernel_hw, stride, padding (top, bottom, left, right), dilation, groups)
CONV_FIXED = [
    pytest.param(2, 3, 2, 7, 6, (3, 2), (2, 1), (1, 2, 0, 1), (1, 2), 1, id="asym-pad-stride-dilation"),
    pytest.param(1, 4, 6, 8, 9, (3, 3), (1, 2), (0, 1, 2, 0), (2, 1), 2, id="groups2"),
    pytest.param(2, 3, 3, 6, 7, (2, 3), (3, 2), (2, 1, 1, 2), (2, 2), 3, id="depthwise"),
    pytest.param(1, 2, 4, 5, 5, (1, 1), (2, 2), (1, 0, 0, 1), (1, 1), 2, id="1x1-stride2"),
    pytest.param(3, 1, 4, 6, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, id="same-3x3"),
    pytest.param(1, 2, 2, 4, 9, (3, 1), (3, 3), (2, 2, 2, 2), (1, 2), 1, id="pad-beyond-kernel"),
]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("N, C_in, C_out, H, W, khw, stride, padding, dilation, groups", CONV_FIXED)
def test_conv_matches_direct_loop(impl, N, C_in, C_out, H, W, khw, stride, padding, dilation, groups):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C_in, H, W))
    w = rng.standard_normal((C_out, C_in // groups) + khw)
    OH, OW = _conv_out_hw(H, W, *khw, stride, padding, dilation)
    assert OH >= 1 and OW >= 1
    g = rng.standard_normal((N, C_out, OH, OW))
    case = dict(x=x, w=w, g=g, stride=stride, padding=padding, dilation=dilation, groups=groups)
    for name in ("conv2d_forward", "conv2d_input_vjp", "conv2d_weight_vjp"):
        args = kernel_args(name, case)
        bound = LOOPS[name](*_abs_args(args))
        assert_close_to_rounding(getattr(IMPLS[impl], name)(*args), LOOPS[name](*args), bound)


@pytest.mark.parametrize("impl", list(IMPLS))
@settings(max_examples=30, deadline=None)
@given(case=conv_cases(), data=st.data())
def test_conv_bias_is_added_to_the_finished_sum(impl, case, data):
    """With a bias, each output is fl(sum + b): bit for bit the bias-free output plus b,
    including infinite and zero biases. (The bias-free sums themselves are checked against the
    direct loops above; this checks the one rounding the bias adds, and the shape check.)"""
    mod = IMPLS[impl]
    x, w = case["x"], case["w"]
    geom = (case["stride"], case["padding"], case["dilation"], case["groups"])
    choices = st.sampled_from([0.0, -0.0, 1.5, -3.25e-7, 1e300, np.inf])
    n_out = w.shape[0]
    bias = np.array(data.draw(st.lists(choices | st.floats(-10, 10), min_size=n_out, max_size=n_out)))
    with np.errstate(over="ignore", invalid="ignore"):
        expected = mod.conv2d_forward(x, w, *geom) + bias[:, None, None]
    np.testing.assert_array_equal(mod.conv2d_forward(x, w, *geom, bias), expected)
    with pytest.raises(ValueError, match="one entry per output channel"):
        mod.conv2d_forward(x, w, *geom, np.zeros(n_out + 1))


# (N, C, H, W, kernel, stride, padding)
POOL_FIXED = [
    pytest.param(2, 3, 7, 6, (3, 2), (2, 1), (1, 0, 1, 1), id="asym-pad"),
    pytest.param(1, 2, 8, 7, (2, 2), (2, 2), (0, 1, 1, 0), id="2x2-stride2"),
    pytest.param(1, 1, 5, 9, (3, 3), (1, 3), (1, 1, 0, 1), id="overlap-rows"),
    pytest.param(2, 2, 4, 4, (1, 3), (1, 1), (0, 0, 1, 0), id="1x3"),
]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("N, C, H, W, kernel, stride, padding", POOL_FIXED)
def test_pooling_matches_direct_loop(impl, count_include_pad, N, C, H, W, kernel, stride, padding):
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, size=(N, C, H, W)).astype(np.float64)  # small integers: ties happen
    g = rng.standard_normal((N, C) + _pool_out_hw(H, W, kernel, stride, padding))
    case = dict(x=x, g=g, kernel=kernel, stride=stride, padding=padding, count_include_pad=count_include_pad)
    mod = IMPLS[impl]
    for name in ("avgpool2d_forward", "avgpool2d_vjp", "maxpool2d_vjp"):
        args = kernel_args(name, case)
        bound = LOOPS[name](*_abs_args(args))
        assert_close_to_rounding(getattr(mod, name)(*args), LOOPS[name](*args), bound)
    out, argmax = mod.maxpool2d_forward(x, kernel, stride, padding)
    out_loop, argmax_loop = loop_maxpool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(out, out_loop)
    np.testing.assert_array_equal(argmax, argmax_loop)


# ---------------------------------------------------------------------------------------------
# VJPs are adjoints of the forward maps
# ---------------------------------------------------------------------------------------------


def _assert_equal_inner_products(values, scale):
    """All inner products in ``values`` agree to 1e-12 of ``scale`` = sum of |terms|."""
    for v in values[1:]:
        assert abs(v - values[0]) <= 1e-12 * scale, (values, scale)


@pytest.mark.parametrize("impl", list(IMPLS))
@settings(max_examples=50, deadline=None)
@given(case=conv_cases())
def test_conv_vjps_are_adjoints(impl, case):
    mod = IMPLS[impl]
    x, w, g = case["x"], case["w"], case["g"]
    geom = (case["stride"], case["padding"], case["dilation"], case["groups"])
    y = mod.conv2d_forward(x, w, *geom)
    gx = mod.conv2d_input_vjp(g, w, x.shape[2:], *geom)
    gw = mod.conv2d_weight_vjp(x, g, w.shape[2:], *geom)
    assert y.shape == g.shape and gx.shape == x.shape and gw.shape == w.shape
    scale = float(np.sum(numpy_twins.conv2d_forward(np.abs(x), np.abs(w), *geom) * np.abs(g))) + 1e-300
    _assert_equal_inner_products([np.vdot(y, g), np.vdot(x, gx), np.vdot(w, gw)], scale)


@pytest.mark.parametrize("impl", list(IMPLS))
@settings(max_examples=50, deadline=None)
@given(case=pool_cases())
def test_pooling_vjps_are_adjoints(impl, case):
    mod = IMPLS[impl]
    x, g = case["x"], case["g"]
    pool = (case["kernel"], case["stride"], case["padding"])
    cip = case["count_include_pad"]
    # average pooling is linear in x
    y = mod.avgpool2d_forward(x, *pool, cip)
    gx = mod.avgpool2d_vjp(g, x.shape[2:], *pool, cip)
    scale = float(np.sum(numpy_twins.avgpool2d_forward(np.abs(x), *pool, cip) * np.abs(g))) + 1e-300
    _assert_equal_inner_products([np.vdot(y, g), np.vdot(x, gx)], scale)
    # max pooling, at fixed argmax: S(z)[n, c, o] = z[n, c].flat[argmax[n, c, o]] is linear in z
    out, argmax = mod.maxpool2d_forward(x, *pool)
    N, C, H, W = x.shape

    def select(z):
        flat = z.reshape(N, C, H * W)
        return np.take_along_axis(flat, argmax.reshape(N, C, -1), axis=2).reshape(argmax.shape)

    np.testing.assert_array_equal(select(x), out)  # the pooled values sit at argmax
    z = np.random.default_rng(3).standard_normal(x.shape)
    gz = mod.maxpool2d_vjp(g, argmax, x.shape[2:])
    scale = float(np.sum(np.abs(select(z)) * np.abs(g))) + 1e-300
    _assert_equal_inner_products([np.vdot(select(z), g), np.vdot(z, gz)], scale)


# ---------------------------------------------------------------------------------------------
# hand-built cases with the expected numbers written out
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", list(IMPLS))
def test_maxpool_ties_go_to_first_in_row_major_order(impl):
    mod = IMPLS[impl]
    # One 3x3 window, maxima 9 at (0, 2), (1, 0) and (2, 2). Row-major order visits (0, 2) first
    # (a column-major scan would pick (1, 0)): flat index 0 * 3 + 2 = 2.
    x = np.array([[0.0, 1.0, 9.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0]])[None, None]
    out, argmax = mod.maxpool2d_forward(x, (3, 3), (1, 1), (0, 0, 0, 0))
    assert out.tolist() == [[[[9.0]]]]
    assert argmax.tolist() == [[[[2]]]]
    # 2x2 windows, stride 1 over [[0, 7, 7], [7, 7, 0]]: every window has a tie between 7s.
    #   window (0, 0): cells (0,0)=0 (0,1)=7 (1,0)=7 (1,1)=7 -> first 7 at (0, 1): index 1
    #   window (0, 1): cells (0,1)=7 (0,2)=7 (1,1)=7 (1,2)=0 -> first 7 at (0, 1): index 1
    x = np.array([[0.0, 7.0, 7.0], [7.0, 7.0, 0.0]])[None, None]
    out, argmax = mod.maxpool2d_forward(x, (2, 2), (1, 1), (0, 0, 0, 0))
    assert out.tolist() == [[[[7.0, 7.0]]]]
    assert argmax.tolist() == [[[[1, 1]]]]
    # the VJP routes each window's signal to its winner, and overlapping winners accumulate
    gx = mod.maxpool2d_vjp(np.array([[[[0.5, 0.25]]]]), argmax, (2, 3))
    assert gx.tolist() == [[[[0.0, 0.75, 0.0], [0.0, 0.0, 0.0]]]]


@pytest.mark.parametrize("impl", list(IMPLS))
def test_maxpool_padding_never_wins(impl):
    mod = IMPLS[impl]
    # 3x3 input, all negative; kernel 2x2, stride 2, padding top 1 / left 1:
    # OH = (3 + 1 - 2) // 2 + 1 = 2. The windows, in input coordinates:
    #   (0, 0): rows -1..0, cols -1..0 -> only real cell (0, 0) = -5      -> index 0
    #   (0, 1): rows -1..0, cols  1..2 -> (0,1) = -3, (0,2) = -4          -> -3 at index 1
    #   (1, 0): rows  1..2, cols -1..0 -> (1,0) = -2, (2,0) = -8          -> -2 at index 3
    #   (1, 1): rows  1..2, cols  1..2 -> -6, -9, -7, -1                  -> -1 at index 8
    # Zero padding would have given 0 in the first three windows.
    x = np.array([[-5.0, -3.0, -4.0], [-2.0, -6.0, -9.0], [-8.0, -7.0, -1.0]])[None, None]
    out, argmax = mod.maxpool2d_forward(x, (2, 2), (2, 2), (1, 0, 1, 0))
    assert out.tolist() == [[[[-5.0, -3.0], [-2.0, -1.0]]]]
    assert argmax.tolist() == [[[[0, 1], [3, 8]]]]
    # a real -inf still beats padding: the window's only real cell wins
    x = np.array([[-np.inf, 1.0], [2.0, 3.0]])[None, None]
    out, argmax = mod.maxpool2d_forward(x, (2, 2), (2, 2), (1, 0, 1, 0))
    assert out[0, 0, 0, 0] == -np.inf and argmax[0, 0, 0, 0] == 0


@pytest.mark.parametrize("impl", list(IMPLS))
def test_maxpool_nan_propagates(impl):
    mod = IMPLS[impl]
    # row-major scan of the single window: 1, nan (index 1), 5, nan (index 3): the first NaN wins
    x = np.array([[1.0, np.nan], [5.0, np.nan]])[None, None]
    out, argmax = mod.maxpool2d_forward(x, (2, 2), (1, 1), (0, 0, 0, 0))
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1


@pytest.mark.parametrize("impl", list(IMPLS))
def test_avgpool_count_include_pad(impl):
    mod = IMPLS[impl]
    # x = [[1, 2], [3, 4]], kernel 2x2, stride 1, padding top 1 / left 1: OH = OW = (2 + 1 - 2) + 1 = 2.
    #   window (0, 0): real cells {1}          sum 1  -> include_pad 1/4 = 0.25, exclude 1/1 = 1.0
    #   window (0, 1): real cells {1, 2}       sum 3  -> include_pad 3/4 = 0.75, exclude 3/2 = 1.5
    #   window (1, 0): real cells {1, 3}       sum 4  -> include_pad 4/4 = 1.0,  exclude 4/2 = 2.0
    #   window (1, 1): real cells {1, 2, 3, 4} sum 10 -> include_pad 10/4 = 2.5, exclude 10/4 = 2.5
    x = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    geom = ((2, 2), (1, 1), (1, 0, 1, 0))
    assert mod.avgpool2d_forward(x, *geom, True).tolist() == [[[[0.25, 0.75], [1.0, 2.5]]]]
    assert mod.avgpool2d_forward(x, *geom, False).tolist() == [[[[1.0, 1.5], [2.0, 2.5]]]]
    # VJP of g = ones: each cell collects 1/divisor from every window it is in.
    #   include_pad: cell (0,0) is in all 4 windows -> 4/4 = 1; (0,1), (1,0) in 2 -> 0.5; (1,1) in 1 -> 0.25
    #   exclude:     (0,0): 1/1 + 1/2 + 1/2 + 1/4 = 2.25; (0,1): 1/2 + 1/4 = 0.75; (1,0): 0.75; (1,1): 0.25
    g = np.ones((1, 1, 2, 2))
    assert mod.avgpool2d_vjp(g, (2, 2), *geom, True).tolist() == [[[[1.0, 0.5], [0.5, 0.25]]]]
    assert mod.avgpool2d_vjp(g, (2, 2), *geom, False).tolist() == [[[[2.25, 0.75], [0.75, 0.25]]]]


# ---------------------------------------------------------------------------------------------
# odd inputs and implementation paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_hw, khw, inf_tap, geom", [
    # OW = 4 < Wj = 5: the scratch column ow = 4 of tap kw = 0 lies on the real column 4
    ((5, 5), (2, 2), (1, 0), ((1, 1), (0, 0, 0, 0), (1, 1), 2)),
    ((7, 6), (3, 2), (2, 1), ((2, 3), (1, 0, 2, 1), (1, 2), 2)),
    ((6, 7), (2, 3), (0, 0), ((1, 2), (0, 1, 1, 0), (2, 1), 1)),
])
def test_conv_input_vjp_with_non_finite_weight_touches_only_real_windows(x_hw, khw, inf_tap, geom):
    # The compiled input VJP has a fast path for finite weights (scratch cells multiply the weight
    # by 0.0); an infinite weight takes the exact row-by-row path. Both must give the infinities and
    # NaNs of the definition, and nothing more.
    rng = np.random.default_rng(5)
    groups = geom[3]
    w = rng.standard_normal((4, 2 // groups) + khw)
    w[1, 0][inf_tap] = np.inf
    OH, OW = _conv_out_hw(*x_hw, *khw, *geom[:3])
    g = rng.standard_normal((2, 4, OH, OW))
    with np.errstate(invalid="ignore", over="ignore"):
        expected = loop_conv2d_input_vjp(g, w, x_hw, *geom)
        twin = numpy_twins.conv2d_input_vjp(g, w, x_hw, *geom)
        actual = jitted.conv2d_input_vjp(g, w, x_hw, *geom)  # plain Python under NUMBA_DISABLE_JIT
    assert np.isinf(expected).any() and np.isfinite(expected).any()
    for got in (actual, twin):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
        np.testing.assert_array_equal(got[~np.isfinite(got)], expected[~np.isfinite(expected)])
        fin = np.isfinite(expected)
        np.testing.assert_allclose(got[fin], expected[fin], rtol=1e-13, atol=1e-13)


def test_parallel_kernels_are_deterministic_across_thread_counts():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))
    geom = ((2, 1), (1, 2, 0, 1), (1, 2), 2)
    y = jitted.conv2d_forward(x, w, *geom)
    g = rng.standard_normal(y.shape)
    calls = [
        lambda: jitted.conv2d_forward(x, w, *geom),
        lambda: jitted.conv2d_input_vjp(g, w, x.shape[2:], *geom),
        lambda: jitted.conv2d_weight_vjp(x, g, w.shape[2:], *geom),
        lambda: jitted.avgpool2d_forward(x, (3, 2), (2, 1), (1, 1, 1, 0), False),
        lambda: jitted.maxpool2d_forward(x, (3, 2), (2, 1), (1, 1, 1, 0))[0],
    ]
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = [f() for f in calls]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        parallel = [f() for f in calls]
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)  # bitwise


@pytest.mark.parametrize("impl", list(IMPLS))
def test_maxpool_vjp_rejects_out_of_range_index(impl):
    with pytest.raises(ValueError):
        IMPLS[impl].maxpool2d_vjp(np.ones((1, 1, 1, 1)), np.array([[[[4]]]]), (2, 2))


@pytest.mark.parametrize("impl", list(IMPLS))
def test_maxpool_rejects_window_entirely_in_padding(impl):
    # kernel 1, padding 1 at the top: the first window row reads only padding
    with pytest.raises(ValueError):
        IMPLS[impl].maxpool2d_forward(np.ones((1, 1, 2, 2)), (1, 1), (1, 1), (1, 0, 0, 0))


@pytest.mark.parametrize("impl", list(IMPLS))
def test_outputs_are_new_arrays_and_inputs_untouched(impl):
    mod = IMPLS[impl]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3))
    x0, w0 = x.copy(), w.copy()
    geom = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    y = mod.conv2d_forward(x, w, *geom)
    gx = mod.conv2d_input_vjp(y, w, (5, 5), *geom)
    gw = mod.conv2d_weight_vjp(x, y, (3, 3), *geom)
    out, argmax = mod.maxpool2d_forward(x, (2, 2), (1, 1), (0, 0, 0, 0))
    for arr in (y, gx, gw, out, argmax, mod.avgpool2d_forward(x, (2, 2), (1, 1), (0, 0, 0, 0), True)):
        assert arr.flags.c_contiguous
        assert not np.shares_memory(arr, x) and not np.shares_memory(arr, w)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
