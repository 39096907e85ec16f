"""The compiled convolution and pooling kernels under their former module name.

They live in :mod:`refattr.kernels.conv` and :mod:`refattr.kernels.pool`, each next to the NumPy
definition it accelerates; the names here are the compiled kernels themselves (numba dispatchers),
whatever ``REFATTR_KERNELS`` says. Kept so that existing imports keep working.
"""

from __future__ import annotations

from . import conv as _conv
from . import pool as _pool

__all__ = [
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
]

conv2d_forward = _conv.conv2d_forward.kernel
conv2d_input_vjp = _conv.conv2d_input_vjp.kernel
conv2d_weight_vjp = _conv.conv2d_weight_vjp.kernel
avgpool2d_forward = _pool.avgpool2d_forward.kernel
avgpool2d_vjp = _pool.avgpool2d_vjp.kernel
maxpool2d_forward = _pool.maxpool2d_forward.kernel
maxpool2d_vjp = _pool.maxpool2d_vjp.kernel
