"""Hot-loop kernels of :mod:`refattr`: 2-D convolution and pooling, float64, NCHW.

Two further families live in their own modules, each kernel with a NumPy twin of the same name
in :mod:`refattr.layers.activations` (the definitions) that it equals bit for bit:
:mod:`refattr.kernels.elementwise` (tanh, sigmoid, swish, the activations' derivatives and
divided differences, the ReLU mask of the gradient family; large arrays chunk by chunk, calling
NumPy's own exp / tanh loops found by :mod:`refattr.kernels.ufunc_loops`) and
:mod:`refattr.kernels.walk` (the exact integrated-gradients walk's ReLU steps).

The functions exported here are the numba-compiled kernels of
:mod:`refattr.kernels.jitted` (options in :mod:`refattr.kernels._jit`: no
``fastmath``, on-disk cache, ``prange`` over the batch axis only, so results
are bitwise deterministic). :mod:`refattr.kernels.numpy_twins` holds plain
NumPy twins with the same names and signatures; they exist for the tests (the
two implementations must agree to rounding) and for ``NUMBA_DISABLE_JIT=1``
runs, where the jitted kernels fall back to slow pure-Python loops.

``KERNEL_NAMES`` lists every kernel; ``numpy_twins`` and ``jitted`` define each
of them.
"""

from __future__ import annotations

from .jitted import (
    avgpool2d_forward,
    avgpool2d_vjp,
    conv2d_forward,
    conv2d_input_vjp,
    conv2d_weight_vjp,
    maxpool2d_forward,
    maxpool2d_vjp,
)

#: Names of all kernels, defined with identical signatures in
#: :mod:`refattr.kernels.jitted` and :mod:`refattr.kernels.numpy_twins`.
KERNEL_NAMES: tuple[str, ...] = (
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
)

__all__ = [*KERNEL_NAMES, "KERNEL_NAMES"]
