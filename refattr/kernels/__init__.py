"""Compiled kernels of :mod:`refattr`, each registered against the NumPy definition it accelerates.

The NumPy definitions are the reference; a kernel computes the same thing faster, and
:mod:`refattr.kernels.registry` records every pair (:data:`KERNELS`, filled by the decorator
:func:`~refattr.kernels.registry.accelerates`) with the tolerance they agree to: bit for bit where
the arithmetic is the same, else a stated relative tolerance and the reason.
``tests/kernels/test_registry.py`` walks every pair. By concept:

:mod:`refattr.kernels.conv`
    2-D convolution and its input and weight VJPs (definitions: im2col and a matrix product).
:mod:`refattr.kernels.pool`
    2-D average and max pooling and their VJPs (definitions: loops over the kernel taps).
:mod:`refattr.kernels.elementwise`
    tanh, sigmoid, swish, their derivatives and divided differences, the ReLU mask of the
    gradient family; definitions in :mod:`refattr.layers.activations`, bit for bit
    (:mod:`refattr.kernels.ufunc_loops` finds NumPy's own exp / expm1 / tanh loops for them).
:mod:`refattr.kernels.walk`
    the ReLU steps of the exact integrated-gradients walk and its row update; definitions in
    :mod:`refattr.layers.activations` and :func:`~refattr.kernels.walk.add_scaled_rows_numpy`,
    bit for bit. The walk itself has a plain twin, :mod:`refattr.methods._walk_reference`.

All numba options are set in :mod:`refattr.kernels._jit` (no ``fastmath``, on-disk cache,
``prange`` over independent rows only, so results do not depend on the number of threads).
The first compilation on a machine (about 30 s in all, then cached) is announced by one line on
standard error wherever progress is shown (:mod:`refattr.progress`).

Running the definitions instead
    Set ``REFATTR_KERNELS=numpy`` in the environment before importing :mod:`refattr`, or call
    ``refattr.kernels.use("numpy")`` (``use("numba")``, the default, switches back; it returns
    the previous mode). Every kernel call then runs its NumPy definition: slower, and equal to
    the kernels to the tolerances in :data:`KERNELS`. ``NUMBA_DISABLE_JIT=1`` is a different
    switch: numba then runs the kernels' own loop bodies as plain Python (for coverage), not the
    definitions.

The names exported here are the convolution and pooling kernels (each follows the switch);
:mod:`refattr.kernels.jitted` and :mod:`refattr.kernels.numpy_twins` keep their former module
names, for the compiled kernels and the definitions respectively. ``KERNEL_NAMES`` lists them.
"""

from __future__ import annotations

from ..progress import watch_compilation
from . import conv, elementwise, pool, walk
from .conv import conv2d_forward, conv2d_input_vjp, conv2d_weight_vjp
from .pool import avgpool2d_forward, avgpool2d_vjp, maxpool2d_forward, maxpool2d_vjp
from .registry import KERNELS, Kernel, accelerates, current, use

#: The convolution and pooling kernels, defined with identical signatures in
#: :mod:`refattr.kernels.jitted` (compiled) and :mod:`refattr.kernels.numpy_twins` (definitions).
KERNEL_NAMES: tuple[str, ...] = (
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
)

# one line on standard error before numba first compiles a kernel (a cache miss), where progress is on
watch_compilation()

__all__ = [*KERNEL_NAMES, "KERNEL_NAMES", "KERNELS", "Kernel", "accelerates", "use", "current",
           "conv", "pool", "elementwise", "walk"]
