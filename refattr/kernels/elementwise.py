"""Fused element-wise kernels: tanh, sigmoid and swish, the derivatives of tanh, sigmoid and
swish, and their divided differences (secants).

Their NumPy twins, with the same names and signatures, are the definitions in
:mod:`refattr.layers.activations`, where the formulas are derived; read those first. This module
only evaluates the same formulas faster, and bitwise identically:

* NumPy's ``exp`` and ``expm1`` are vectorised (SIMD) and about five times faster per element
  than the scalar libm calls a compiled loop makes;
* but a NumPy formula of a dozen operations spends most of its time in temporaries, and
  ``np.where`` alone costs as much as six exponentials.

So every function runs in three stages: a compiled loop writes the arguments of the exponentials
into a scratch array, NumPy's exp evaluates them there in place, and a second compiled loop does
all the remaining arithmetic in one pass, with branches instead of ``np.where``. Every rounded
operation is the one of the NumPy definition, on the same operands, in the same order (no
``fastmath``, so no reassociation or fused multiply-add, :mod:`refattr.kernels._jit`), and the
exponentials are NumPy's on the same arguments, so the results agree bit for bit
(``tests/kernels/test_elementwise_twins.py``).

A ufunc call runs on one thread. Arrays of more than one :data:`CHUNK` run the three stages chunk
by chunk in a ``prange``, each thread calling NumPy's own exp / expm1 / tanh loop on its chunks
(:mod:`refattr.kernels.ufunc_loops`, which finds and verifies those loops; where it finds none,
every call takes the serial path). Image-shaped arrays use all of numba's threads; rows of
features (rank <= 2) stay on the calling thread, next to BLAS's threads (:func:`_run_chunks`).
Each element still meets exactly the same operations, so the chunked and serial paths agree bit
for bit, whatever the number of threads. ``tanh`` itself is NumPy's, run the same way.

Inputs are converted to float64 and broadcast against each other; outputs are new float64 arrays
of the broadcast shape. ``g`` (optional) multiplies the derivative, which fuses a VJP
``g * f'(x)`` into the same pass. The loops write their result over the exponentials they read
(element i is read before it is written), so a call allocates one array. They take that array
once, as the argument they update, never as an input and an output that alias: LLVM then
vectorises the loop, where with two aliasing arguments its runtime overlap check sends every
call down the scalar fallback (twice as slow).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from . import ufunc_loops
from ._jit import jit, jit_parallel, prange
from .registry import accelerates
from .ufunc_loops import apply_loop

__all__ = [
    "tanh", "sigmoid", "sigmoid_derivative", "swish", "swish_derivative", "tanh_derivative",
    "tanh_secant", "sigmoid_secant", "swish_secant", "relu_backward_signal", "ELEMENTWISE_KERNEL_NAMES",
]

#: The fused kernels; each has a NumPy twin of the same name in :mod:`refattr.layers.activations`.
ELEMENTWISE_KERNEL_NAMES: tuple[str, ...] = (
    "tanh", "sigmoid", "sigmoid_derivative", "swish", "swish_derivative", "tanh_derivative",
    "tanh_secant", "sigmoid_secant", "swish_secant", "relu_backward_signal",
)

_VELTKAMP = 134217729.0  # 2**27 + 1, as in refattr.layers.activations._two_product


# Scalar building blocks (compiled into the loops that call them) ----------------------------

@jit
def _two_sum(a, b):
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, (e if math.isfinite(s) else 0.0)


@jit
def _two_product(a, b):
    p = a * b
    if not (abs(a) < 1e150 and abs(b) < 1e150 and abs(p) > 1e-250):
        return p, 0.0
    ca, cb = _VELTKAMP * a, _VELTKAMP * b
    a_hi = ca - (ca - a)
    b_hi = cb - (cb - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    return p, (((a_hi * b_hi - a * b) + a_hi * b_lo) + a_lo * b_hi) + a_lo * b_lo


@jit
def _sign(v):
    return 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)


@jit
def _tanh_parts(a, h, a_lo, h_lo):
    """(b, b_lo, same_sign, a_is_min, correction) of ``_tanh_secant_parts``; b + b_lo = a + h
    (with the corrections) to first order."""
    b, b_lo = _two_sum(a, h)
    b_lo = b_lo + a_lo + h_lo
    abs_a, abs_b = abs(a), abs(b)
    same_sign = _sign(a) * _sign(b) > 0
    a_is_min = abs_a <= abs_b
    m_lo = _sign(a) * a_lo if a_is_min else _sign(b) * b_lo
    correction = 1.0 - 2.0 * m_lo if same_sign else 1.0
    return b, b_lo, same_sign, a_is_min, correction


@jit
def _tanh_factor(abs_h, correction, e_a, e_b, em1_h):
    """``factor`` of ``_tanh_secant_parts`` from e_a = exp(-2|a|), e_b = exp(-2|b|) and
    em1_h = expm1(-2|h|)."""
    ratio = -em1_h / abs_h if abs_h > 0 else 2.0
    return 2.0 * correction * ratio / ((1.0 + e_a) * (1.0 + e_b))


@jit
def _sigmoid_from(x, e):
    """σ(x) from e = exp(-|x|), as ``_sigmoid``."""
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


# Loops --------------------------------------------------------------------------------------

@jit
def _scaled_abs(x, beta, scale, out):
    for i in range(x.size):
        out[i] = scale * abs(beta * x[i])   # beta == 1.0 leaves x exact


@jit
def _tanh_derivative_from(e, g):
    for i in range(e.size):
        e[i] = g[i] * (4.0 * e[i] / ((1.0 + e[i]) * (1.0 + e[i])))


@jit
def _sigmoid_derivative_from(e, g):
    for i in range(e.size):
        e[i] = g[i] * (e[i] / ((1.0 + e[i]) * (1.0 + e[i])))


@jit
def _sigmoid_from_loop(x, e):
    for i in range(x.size):
        e[i] = _sigmoid_from(x[i], e[i])


@jit
def _swish_from(x, beta, e):
    for i in range(x.size):
        e[i] = x[i] * _sigmoid_from(beta * x[i], e[i])


@jit
def _swish_derivative_from(x, beta, e, g):
    for i in range(x.size):
        u = beta * x[i]
        s = 1.0 + e[i]
        sig_u, sig_neg = (1.0 / s, e[i] / s) if u >= 0 else (e[i] / s, 1.0 / s)
        e[i] = g[i] * (sig_u * (1.0 + u * sig_neg))


@jit
def _tanh_secant_arguments(a, h, args):
    """args[0] = -2|a|, args[1] = -2|a + h|, args[2] = -2|h| (the last for expm1)."""
    for i in range(a.size):
        b = a[i] + h[i]
        args[0, i] = -2.0 * abs(a[i])
        args[1, i] = -2.0 * abs(b)
        args[2, i] = -2.0 * abs(h[i])


@jit
def _tanh_secant_from(a, h, args, scale, out):
    """scale * exp(exponent) * factor; exp(exponent) is 1 or one of args[0], args[1] (exponent is
    exactly -2|a| or -2|b| there)."""
    for i in range(a.size):
        b, _, same_sign, a_is_min, correction = _tanh_parts(a[i], h[i], 0.0, 0.0)
        factor = _tanh_factor(abs(h[i]), correction, args[0, i], args[1, i], args[2, i])
        e_exponent = (args[0, i] if a_is_min else args[1, i]) if same_sign else 1.0
        out[i] = scale * (e_exponent * factor)


@jit
def _swish_exponent(half_a, half_b, same_sign):
    """(exponent + shift, shift) of ``swish_secant``: the exponent of the second term, shifted
    by an exact 64 where it would underflow."""
    exponent = -2.0 * min(abs(half_a), abs(half_b)) if same_sign else 0.0
    shift = 64.0 if exponent < -600.0 else 0.0
    return exponent + shift, shift


@jit
def _times_beta(x, beta, unit):
    """(fl(β x), its rounding error): TwoProduct, or (x, 0.0) when ``unit`` (β == 1), which is
    what TwoProduct gives there (its error terms cancel to +0.0)."""
    return (x, 0.0) if unit else _two_product(x, beta)


@jit
def _swish_secant_arguments(a, h, beta, args):
    """See ``_swish_secant_arguments_loop``; β == 1 (SiLU) compiled separately, without the
    TwoProducts."""
    if beta == 1.0:
        return _swish_secant_arguments_loop(a, h, 1.0, True, args)
    return _swish_secant_arguments_loop(a, h, beta, False, args)


@jit
def _swish_secant_from(a, h, beta, args, shifted, exp_minus_64, out):
    """See ``_swish_secant_from_loop``; β == 1 (SiLU) compiled separately."""
    if beta == 1.0:
        _swish_secant_from_loop(a, h, 1.0, True, args, shifted, exp_minus_64, out)
    else:
        _swish_secant_from_loop(a, h, beta, False, args, shifted, exp_minus_64, out)


@jit
def _swish_secant_arguments_loop(a, h, beta, unit, args):
    """Arguments of the exponentials of ``swish_secant``: args[0..2] as for tanh_secant at
    (βa/2, βh/2) with their rounding corrections (exp(-|β lo|) is args[0] or args[1]),
    args[3] the shifted exponent of the second term. Returns whether any element is shifted:
    only then does row 3 need exponentials of its own (otherwise exp(exponent) is 1, args[0] or
    args[1]). (Every element gets every row: a loop without a data-dependent counter is
    vectorised, five times faster than one with it.)"""
    shifted = False
    for i in range(a.size):
        beta_a, beta_a_lo = _times_beta(a[i], beta, unit)
        beta_h, beta_h_lo = _times_beta(h[i], beta, unit)
        half_a, half_h = 0.5 * beta_a, 0.5 * beta_h
        half_b, _, same_sign, _, _ = _tanh_parts(half_a, half_h, 0.5 * beta_a_lo, 0.5 * beta_h_lo)
        args[0, i] = -2.0 * abs(half_a)
        args[1, i] = -2.0 * abs(half_b)
        args[2, i] = -2.0 * abs(half_h)
        exponent, shift = _swish_exponent(half_a, half_b, same_sign)
        args[3, i] = exponent
        shifted = shifted or shift != 0.0
    return shifted


@jit
def _swish_secant_from_loop(a, h, beta, unit, args, shifted, exp_minus_64, out):
    """The secant from the exponentials: rows 0..2, and row 3 where ``shifted`` (the flag of
    ``_swish_secant_arguments``); else exp(exponent) is taken from rows 0 and 1, which hold it
    for the same float argument."""
    for i in range(a.size):
        b, _ = _two_sum(a[i], h[i])
        beta_a, beta_a_lo = _times_beta(a[i], beta, unit)
        beta_h, beta_h_lo = _times_beta(h[i], beta, unit)
        half_a, half_h = 0.5 * beta_a, 0.5 * beta_h
        half_a_lo = 0.5 * beta_a_lo
        half_b, half_b_lo, same_sign, a_is_min, correction = _tanh_parts(half_a, half_h, half_a_lo,
                                                                        0.5 * beta_h_lo)
        if a[i] <= b:
            lo, lo_lo, hi, e_lo = 2.0 * half_a, 2.0 * half_a_lo, b, args[0, i]
        else:
            lo, lo_lo, hi, e_lo = 2.0 * half_b, 2.0 * half_b_lo, a[i], args[1, i]
        first = _sigmoid_from(lo, e_lo) * (1.0 + _sigmoid_from(-lo, e_lo) * lo_lo)
        factor = _tanh_factor(abs(half_h), correction, args[0, i], args[1, i], args[2, i])
        shift = _swish_exponent(half_a, half_b, same_sign)[1]
        e_shift = exp_minus_64 if shift != 0.0 else 1.0          # exp(-shift)
        if shifted:
            e_exponent = args[3, i]
        else:
            e_exponent = (args[0, i] if a_is_min else args[1, i]) if same_sign else 1.0
        second = (0.25 * beta * hi * e_shift) * e_exponent * factor
        out[i] = first + second


@jit
def _relu_mask(g, z, use_z, use_g, out):
    for i in range(g.size):
        keep = (not use_z or z[i] > 0) and (not use_g or g[i] > 0)
        out[i] = g[i] if keep else g[i] * 0.0


# The stages around the exponentials, by kind ------------------------------------------------------

_TANH, _TANH_DERIVATIVE, _SIGMOID, _SIGMOID_DERIVATIVE, _SWISH, _SWISH_DERIVATIVE = range(6)
_TANH_SECANT, _SWISH_SECANT = range(2)
_EXP_MINUS_64 = float(np.exp(-64.0))


@jit
def _exponent_scale(kind):
    """e = exp(scale * |beta * x|) is what the pointwise kind needs (tanh' uses exp(-2|x|))."""
    return -2.0 if kind == _TANH_DERIVATIVE else -1.0


@jit
def _finish_pointwise(kind, x, g, beta, e):
    """Overwrite e = exp(scale * |beta * x|) with the result of ``kind`` (not _TANH)."""
    if kind == _TANH_DERIVATIVE:
        _tanh_derivative_from(e, g)
    elif kind == _SIGMOID_DERIVATIVE:
        _sigmoid_derivative_from(e, g)
    elif kind == _SIGMOID:
        _sigmoid_from_loop(x, e)
    elif kind == _SWISH:
        _swish_from(x, beta, e)
    else:
        _swish_derivative_from(x, beta, e, g)


@jit
def _secant_arguments(kind, a, h, beta, args):
    """Fill the rows of exponent arguments; return whether row 3 (swish) needs exponentials."""
    if kind == _SWISH_SECANT:
        return _swish_secant_arguments(a, h, beta, args)
    _tanh_secant_arguments(a, h, args)
    return False


@jit
def _finish_secant(kind, a, h, beta, scale, args, row3, out):
    if kind == _SWISH_SECANT:
        _swish_secant_from(a, h, beta, args, row3, _EXP_MINUS_64, out)
    else:
        _tanh_secant_from(a, h, args, scale, out)


# Two ways to run the stages -------------------------------------------------------------------
#
# Serial: each stage over the whole array, the exponentials by NumPy's ufuncs (one thread).
# Chunked: with NumPy's own exp / expm1 / tanh loops callable from compiled code
# (refattr.kernels.ufunc_loops), one prange over chunks of CHUNK elements, each chunk through the
# same stages on slices. Every element meets the same operations either way, so the results are
# the same bit for bit, whatever the number of threads; a chunk's scratch stays in the core's cache.

#: Elements per task of the chunked drivers (32 KiB per float64 array). Arrays of at most one
#: chunk run serially, which has no parallel region to set up.
CHUNK = 4096


@jit_parallel
def _pointwise_chunks(kind, x, g, beta, out, loop):
    """out = ``kind`` of x; ``loop`` is the address of NumPy's tanh loop for _TANH, of its exp loop
    otherwise."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        s = c * CHUNK
        e = min(n, s + CHUNK)
        if kind == _TANH:
            apply_loop(loop, x[s:e], out[s:e])
        else:
            _scaled_abs(x[s:e], beta, _exponent_scale(kind), out[s:e])
            apply_loop(loop, out[s:e], out[s:e])
            _finish_pointwise(kind, x[s:e], g[s:e], beta, out[s:e])


@jit_parallel
def _secant_chunks(kind, a, h, beta, scale, out, exp_loop, expm1_loop):
    """out = the divided difference ``kind`` at (a, h); scratch row 2 takes expm1, the others exp
    (the loops' addresses)."""
    n = a.size
    rows = 4 if kind == _SWISH_SECANT else 3
    for c in prange((n + CHUNK - 1) // CHUNK):
        s = c * CHUNK
        e = min(n, s + CHUNK)
        args = np.empty((rows, e - s))
        row3 = _secant_arguments(kind, a[s:e], h[s:e], beta, args)
        for r in range(4 if row3 else 3):
            apply_loop(expm1_loop if r == 2 else exp_loop, args[r], args[r])
        _finish_secant(kind, a[s:e], h[s:e], beta, scale, args, row3, out[s:e])


@jit_parallel
def _relu_mask_chunks(g, z, use_z, use_g, out):
    n = g.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        s = c * CHUNK
        e = min(n, s + CHUNK)
        _relu_mask(g[s:e], z[s:e], use_z, use_g, out[s:e])


def _run_chunks(driver, ndim, *args):
    """Run a chunked driver: on all of numba's threads for arrays of images, (N, C, H, W) and the
    like, on the calling thread alone for rows of features, (N, F).

    Rows of features sit between dense layers, whose matrix products run on the BLAS library's
    own threads; those keep spinning on the cores for a while after each product, and a numba
    parallel region started next to them waits for its share of a core they hold: on 2 cores,
    2-thread MLP DeepLiftShap went from 3.3 to 34 ms that way. Image activations sit between
    refattr's own parallel convolution and pooling kernels, on the same pool."""
    if ndim > 2:
        driver(*args)
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        driver(*args)
    finally:
        numba.set_num_threads(threads)


def _chunked(size, loops=True):
    """Run chunked? Where NumPy's loops were found and verified (if the kernel needs them) and
    there is more than one chunk of work. Also on one thread: a chunk's scratch stays in the
    core's cache (the secants 10 to 35 % faster, the rest the same)."""
    return (ufunc_loops.AVAILABLE or not loops) and size > CHUNK


def _pointwise(kind, x, g=None, beta=1.0):
    """``kind`` of x (times g for the derivatives; beta for swish), as a new array of x's shape.

    One allocation per call: the result is written over the exponentials it is made from (fresh
    pages cost a page fault each)."""
    if kind in (_TANH_DERIVATIVE, _SIGMOID_DERIVATIVE, _SWISH_DERIVATIVE):
        shape, x, g = _x_and_g(x, g)
    else:
        shape, (x,) = _flat(x)
        g = x                                    # unused; an array of x's type, to compile once
    out = np.empty(x.size)
    if _chunked(x.size):
        loop = ufunc_loops.TANH if kind == _TANH else ufunc_loops.EXP
        _run_chunks(_pointwise_chunks, len(shape), kind, x, g, beta, out, loop.address)
    elif kind == _TANH:
        np.tanh(x, out=out)
    else:
        _scaled_abs(x, beta, _exponent_scale(kind), out)
        np.exp(out, out=out)
        _finish_pointwise(kind, x, g, beta, out)
    return out.reshape(shape)


def _secant(kind, a, h, beta=1.0, scale=1.0):
    """The divided difference ``kind`` at (a, h) (times ``scale``), as a new array."""
    shape, (a, h) = _flat(a, h)
    out = np.empty(a.size)
    if _chunked(a.size):
        _run_chunks(_secant_chunks, len(shape), kind, a, h, beta, scale, out, ufunc_loops.EXP.address,
                    ufunc_loops.EXPM1.address)
    else:
        args = np.empty((4 if kind == _SWISH_SECANT else 3, a.size))
        row3 = _secant_arguments(kind, a, h, beta, args)
        for row in range(4 if row3 else 3):
            (np.expm1 if row == 2 else np.exp)(args[row], out=args[row])
        _finish_secant(kind, a, h, beta, scale, args, row3, out)
    return out.reshape(shape)


# Public functions ---------------------------------------------------------------------------------

def _ieee(func):
    """Run ``func`` with IEEE exceptions quiet, as the NumPy definitions do: a + h may overflow
    to inf (its TwoSum error is then inf - inf, discarded), and exponentials may underflow to 0,
    where the formulas expect it. (This matters only under NUMBA_DISABLE_JIT=1, where the loops
    run on NumPy scalars; compiled loops never raise.)"""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return func(*args, **kwargs)
    return wrapper


def _flat(*arrays):
    """Broadcast float64 arrays; return (shape, contiguous 1-D views or copies)."""
    first = arrays[0]
    if all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.flags.c_contiguous
           and a.shape == first.shape for a in arrays):
        return first.shape, [a.reshape(-1) for a in arrays]   # the usual case, without broadcast_arrays
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    shape = arrays[0].shape
    return shape, [np.ascontiguousarray(a).reshape(-1) for a in arrays]


def _x_and_g(x, g):
    """(shape, flat x, flat g): g broadcast against x, or a read-only view of ones (g * d is
    then d exactly)."""
    if g is None:
        shape, (x,) = _flat(x)
        return shape, x, np.broadcast_to(1.0, x.shape)
    shape, (x, g) = _flat(x, g)
    return shape, x, g


@accelerates("refattr.layers.tanh:tanh")
@_ieee
def tanh(x):
    """tanh(x), NumPy's values (on every thread for large arrays); twin of
    :func:`refattr.layers.activations.tanh`."""
    return _pointwise(_TANH, x)


@accelerates("refattr.layers.tanh:tanh_derivative")
@_ieee
def tanh_derivative(x, g=None):
    """g * sech²(x) (g = 1 when omitted); twin of :func:`refattr.layers.activations.tanh_derivative`."""
    return _pointwise(_TANH_DERIVATIVE, x, g)


@accelerates("refattr.layers.sigmoid:sigmoid_derivative")
@_ieee
def sigmoid_derivative(x, g=None):
    """g * σ'(x) (g = 1 when omitted); twin of :func:`refattr.layers.activations.sigmoid_derivative`."""
    return _pointwise(_SIGMOID_DERIVATIVE, x, g)


@accelerates("refattr.layers.sigmoid:sigmoid")
@_ieee
def sigmoid(x):
    """σ(x); twin of :func:`refattr.layers.activations.sigmoid`."""
    return _pointwise(_SIGMOID, x)


@accelerates("refattr.layers.swish:swish")
@_ieee
def swish(x, beta=1.0):
    """x σ(βx); twin of :func:`refattr.layers.activations.swish`."""
    return _pointwise(_SWISH, x, beta=float(beta))


@accelerates("refattr.layers.swish:swish_derivative")
@_ieee
def swish_derivative(x, beta=1.0, g=None):
    """g * s'(x) for s(x) = x σ(βx) (g = 1 when omitted); twin of
    :func:`refattr.layers.activations.swish_derivative`."""
    return _pointwise(_SWISH_DERIVATIVE, x, g, float(beta))


@accelerates("refattr.layers.tanh:tanh_secant")
@_ieee
def tanh_secant(a, h):
    """(tanh(a + h) - tanh(a)) / h; twin of :func:`refattr.layers.activations.tanh_secant`."""
    return _secant(_TANH_SECANT, a, h)


@accelerates("refattr.layers.sigmoid:sigmoid_secant")
@_ieee
def sigmoid_secant(a, h):
    """(σ(a + h) - σ(a)) / h = tanh_secant(a/2, h/2) / 4; twin of
    :func:`refattr.layers.activations.sigmoid_secant`."""
    shape, (a, h) = _flat(a, h)
    return _secant(_TANH_SECANT, a * 0.5, h * 0.5, scale=0.25).reshape(shape)


@accelerates("refattr.layers.swish:swish_secant")
@_ieee
def swish_secant(a, h, beta=1.0):
    """(s(a + h) - s(a)) / h for s(x) = x σ(βx); twin of
    :func:`refattr.layers.activations.swish_secant`."""
    return _secant(_SWISH_SECANT, a, h, float(beta))


_RELU_MASKS = {"gradient": (True, False), "deconvnet": (False, True), "guided_backprop": (True, True)}


@accelerates("refattr.layers.relu:relu_backward_signal")
def relu_backward_signal(g, cache, rule):
    """g masked by ReLU under a gradient-family rule; twin of
    :func:`refattr.layers.activations.relu_backward_signal` (the rule is checked by the layer)."""
    use_z, use_g = _RELU_MASKS[rule]
    g = np.asarray(g, dtype=np.float64)
    z = np.asarray(cache)
    if not use_z:
        z = g
    elif z.shape != g.shape or z.dtype not in (np.float64, np.bool_):
        _, (g, z) = _flat(g, z)
    shape = g.shape
    g, z = np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(z).reshape(-1)
    out = np.empty(g.size)
    if _chunked(g.size, loops=False):
        _run_chunks(_relu_mask_chunks, len(shape), g, z, use_z, use_g, out)
    else:
        _relu_mask(g, z, use_z, use_g, out)
    return out.reshape(shape)
