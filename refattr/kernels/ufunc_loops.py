"""NumPy's own float64 loops of ``exp``, ``expm1`` and ``tanh``, callable from compiled code.

Why
    NumPy evaluates ``exp`` with vectorised (SIMD) code, about five times faster per element
    than the scalar libm call a compiled loop makes, and its values are the definitions the
    element-wise kernels must reproduce bit for bit (:mod:`refattr.kernels.elementwise`). But a
    ufunc call runs on one thread. Calling the same C loop that NumPy calls, from the threads of
    a ``prange`` over chunks of the array, gives NumPy's values exactly, on every core.

How
    A ufunc object (the public C struct ``PyUFuncObject``, ``numpy/ufuncobject.h``) lists its
    inner loops: ``functions[i]`` with its ``data[i]``, for the dtype signature at
    ``types[i * nargs:(i + 1) * nargs]``. NumPy's type resolution takes the first loop whose
    signature matches, so for float64 the loop is the first one registered as ``d -> d``; its
    C signature is ``void loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
    void *data)``. :class:`UfuncLoop` holds that address; :func:`apply_loop` calls it on a 1-D
    array from compiled code (through a small LLVM intrinsic: a call through a pointer, its
    arguments on the stack).

Checks
    The struct is read only after its header agrees with what Python says of the ufunc (name,
    number of inputs and outputs, number of loops, position of the first ``d->d`` loop); only a
    loop without a ``data`` argument is taken, and only after it has reproduced the ufunc itself
    bit for bit on a probe of several thousand values (special values, every binade, lengths 1
    to 40, in place and not). Where anything
    differs (another NumPy, another Python build) or under ``NUMBA_DISABLE_JIT=1``,
    :data:`AVAILABLE` is False and the kernels run their serial path, which calls the ufuncs
    (same values, one thread).
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._jit import jit

__all__ = ["UfuncLoop", "apply_loop", "AVAILABLE", "EXP", "EXPM1", "TANH"]


class UfuncLoop:
    """The float64 -> float64 inner loop of a NumPy ufunc: ``address`` is the C function that
    NumPy calls for ``ufunc`` on float64 arrays. Compiled code calls it through :func:`apply_loop`,
    given the address as an integer (which keeps the callers cacheable: the address is an
    argument, not a constant compiled into them)."""

    def __init__(self, ufunc: np.ufunc, address: int):
        self.ufunc = ufunc
        self.address = int(address)

    def __repr__(self) -> str:
        return f"UfuncLoop(np.{self.ufunc.__name__}, address={self.address:#x})"


class _UfuncHeader(ctypes.Structure):
    """The leading fields of ``PyUFuncObject`` (NumPy's public C API), after the object header."""

    _fields_ = [
        ("object_header", ctypes.c_char * object.__basicsize__),
        ("nin", ctypes.c_int), ("nout", ctypes.c_int), ("nargs", ctypes.c_int),
        ("identity", ctypes.c_int),
        ("functions", ctypes.POINTER(ctypes.c_void_p)),
        ("data", ctypes.POINTER(ctypes.c_void_p)),
        ("ntypes", ctypes.c_int), ("reserved1", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("types", ctypes.POINTER(ctypes.c_char)),
    ]


_CALL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def _call_from_python(loop: UfuncLoop, src: np.ndarray, dst: np.ndarray) -> None:
    """Run ``loop`` on 1-D float64 arrays through ctypes (for the probe)."""
    pointers = (ctypes.c_void_p * 2)(src.ctypes.data, dst.ctypes.data)
    dimensions = (ctypes.c_ssize_t * 1)(src.size)
    steps = (ctypes.c_ssize_t * 2)(src.strides[0], dst.strides[0])
    _CALL(loop.address)(pointers, dimensions, steps, None)


def _probe_values() -> np.ndarray:
    rng = np.random.default_rng(20261126)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308,
               1e-300, -1e-15, 0.5, -0.5, 1.0, 19.0, -19.0, 22.0, 700.0, 709.78, 709.79, 710.0,
               -708.4, -708.5, -745.1, -745.2, -746.0, 1e300, -1e300, 1.7976931348623157e308]
    binades = np.ldexp(rng.uniform(1.0, 2.0, 2100), rng.integers(-1074, 11, 2100))
    return np.concatenate([special, binades, -binades, rng.normal(size=1000) * 30.0,
                           rng.uniform(-750.0, 750.0, 1000)])


def _reproduces(loop: UfuncLoop) -> bool:
    """Does ``loop`` give the ufunc's own values, bit for bit, out of place and in place, for
    every length from 1 to 40 and on the whole probe?"""
    values = _probe_values()
    with np.errstate(all="ignore"):
        expected = loop.ufunc(values)
        got = np.empty_like(values)
        _call_from_python(loop, values, got)
        in_place = values.copy()
        _call_from_python(loop, in_place, in_place)
        pieces = np.empty_like(values)
        start = 0
        for length in range(1, 41):
            stop = start + length
            _call_from_python(loop, values[start:stop], pieces[start:stop])
            start = stop
        pieces[start:] = expected[start:]
    return all(np.array_equal(result.view(np.int64), expected.view(np.int64))
               for result in (got, in_place, pieces))


def _find(ufunc: np.ufunc) -> UfuncLoop | None:
    """The verified float64 loop of ``ufunc``, or None."""
    header = _UfuncHeader.from_address(id(ufunc))
    float64 = np.dtype(np.float64).num
    if (header.nin, header.nout, header.nargs) != (1, 1, 2) or header.name != ufunc.__name__.encode() \
            or header.ntypes != len(ufunc.types):
        return None
    codes = [(ord(header.types[2 * i]), ord(header.types[2 * i + 1])) for i in range(header.ntypes)]
    if "d->d" not in ufunc.types or (float64, float64) not in codes:
        return None
    i = codes.index((float64, float64))
    if i != ufunc.types.index("d->d") or header.data[i]:   # the loop NumPy picks; no data argument
        return None
    loop = UfuncLoop(ufunc, header.functions[i])
    return loop if loop.address and _reproduces(loop) else None


def _find_all():
    if numba.config.DISABLE_JIT:
        return None, None, None
    try:
        return _find(np.exp), _find(np.expm1), _find(np.tanh)
    except (ValueError, TypeError, OverflowError):   # a layout this module does not know
        return None, None, None


EXP, EXPM1, TANH = _find_all()

#: True when the three loops were found and verified, and numba compiles (not NUMBA_DISABLE_JIT).
AVAILABLE: bool = None not in (EXP, EXPM1, TANH)


@intrinsic
def _call_unary_loop(typingctx, address, src, dst, n, src_step, dst_step):
    """Call the inner loop at ``address`` (integers: the loop's address, the two data addresses,
    the length, the two steps in bytes): ``loop(char **args, npy_intp const *dimensions,
    npy_intp const *steps, void *data)`` with args = {src, dst}, dimensions = {n},
    steps = {src_step, dst_step} on the stack, data = NULL."""
    integers = (address, src, dst, n, src_step, dst_step)
    if not all(isinstance(t, types.Integer) for t in integers):
        return None

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        byte_pointer = ir.IntType(8).as_pointer()
        as_intp = [context.cast(builder, v, t, types.intp) for v, t in zip(args, signature.args)]
        loop_address, src_address, dst_address, length, step_in, step_out = as_intp
        pointers = cgutils.alloca_once(builder, byte_pointer, size=2)
        builder.store(builder.inttoptr(src_address, byte_pointer), pointers)
        builder.store(builder.inttoptr(dst_address, byte_pointer),
                      builder.gep(pointers, [ir.Constant(intp, 1)]))
        sizes = cgutils.alloca_once(builder, intp, size=3)       # the dimension, then the steps
        for i, value in enumerate((length, step_in, step_out)):
            builder.store(value, builder.gep(sizes, [ir.Constant(intp, i)]))
        loop_type = ir.FunctionType(ir.VoidType(), [pointers.type, sizes.type, sizes.type, byte_pointer])
        loop = builder.inttoptr(loop_address, loop_type.as_pointer())
        builder.call(loop, [pointers, sizes, builder.gep(sizes, [ir.Constant(intp, 1)]),
                            ir.Constant(byte_pointer, None)])
        return context.get_dummy_value()

    return types.void(*integers), codegen


@jit
def apply_loop(loop_address, src, dst):
    """dst[i] = f(src[i]) by the ufunc loop at ``loop_address`` (a :attr:`UfuncLoop.address`), on
    1-D float64 arrays of one size; ``dst`` may be ``src`` itself (in place), not partly overlap it."""
    if src.size > 0:
        _call_unary_loop(loop_address, src.ctypes.data, dst.ctypes.data, src.size,
                         src.strides[0], dst.strides[0])
