"""The one place where the numba compilation options of :mod:`refattr` are set.

Every compiled kernel of the package is decorated with :func:`jit` or
:func:`jit_parallel` from this module, so that the options below hold for all
of them:

``fastmath=False``
    Never relaxed IEEE semantics. A reference implementation must evaluate
    exactly the arithmetic it is written with: no reassociation, no contraction
    of ``a * b + c`` into a fused multiply-add, no assumptions about NaN or
    infinity.
``cache=True``
    Compiled machine code is cached on disk next to the source file, so that
    only the first import on a machine pays the compilation time.
``error_model="numpy"``
    Floating-point division by zero follows IEEE 754 (``inf`` / ``nan``) as in
    NumPy, instead of raising ``ZeroDivisionError`` as Python does. This keeps
    the compiled kernels and their NumPy twins
    (:mod:`refattr.kernels.numpy_twins`) in agreement on such inputs.
``parallel``
    ``False`` for :func:`jit`. ``True`` for :func:`jit_parallel`, whose kernels
    use ``numba.prange`` over the batch axis, or over fixed-size chunks of
    independent elements (:mod:`refattr.kernels.elementwise`): every iteration
    of the parallel loop writes a disjoint slice of the output (or of a
    per-sample scratch array that is reduced afterwards in a fixed order), so
    that results are bitwise identical whatever the number of threads.

With ``NUMBA_DISABLE_JIT=1`` in the environment, both decorators return the
plain Python function and ``numba.prange`` behaves as ``range``.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import numba

__all__ = ["jit", "jit_parallel", "prange", "JIT_OPTIONS", "JIT_PARALLEL_OPTIONS"]

F = TypeVar("F", bound=Callable[..., Any])

#: Options shared by every compiled function of the package (serial variant).
JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "fastmath": False,
    "parallel": False,
    "error_model": "numpy",
}

#: Options of the batch-parallel variant: as :data:`JIT_OPTIONS`, ``parallel=True``.
JIT_PARALLEL_OPTIONS: dict[str, Any] = {**JIT_OPTIONS, "parallel": True}

prange = numba.prange


def jit(func: F) -> F:
    """Compile ``func`` in nopython mode with the package's serial options.

    Parameters
    ----------
    func : callable
        A function written in the subset of Python and NumPy that numba
        compiles.

    Returns
    -------
    callable
        A numba dispatcher (or ``func`` itself under ``NUMBA_DISABLE_JIT=1``).
    """
    return numba.njit(**JIT_OPTIONS)(func)


def jit_parallel(func: F) -> F:
    """Compile ``func`` like :func:`jit`, with ``parallel=True``.

    Only for kernels whose ``prange`` loop runs over the batch axis (or over
    fixed-size chunks of independent elements) and whose iterations write
    disjoint memory, so that the result does not depend on the number of
    threads or on their scheduling.

    Parameters
    ----------
    func : callable
        A function written in the subset of Python and NumPy that numba
        compiles, with a ``prange`` loop over the batch axis or element chunks.

    Returns
    -------
    callable
        A numba dispatcher (or ``func`` itself under ``NUMBA_DISABLE_JIT=1``).
    """
    return numba.njit(**JIT_PARALLEL_OPTIONS)(func)
