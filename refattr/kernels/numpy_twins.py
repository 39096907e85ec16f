"""The NumPy definitions of the convolution and pooling kernels under their former names.

They live in :mod:`refattr.kernels.conv` and :mod:`refattr.kernels.pool` as
``conv2d_forward_numpy`` etc., next to the kernels that accelerate them; here they carry the
kernels' own names, as before. Run them in place of the kernels with ``REFATTR_KERNELS=numpy``
or :func:`refattr.kernels.use` (``NUMBA_DISABLE_JIT=1`` runs the kernels' loops as Python, not
these).
"""

from __future__ import annotations

from .conv import conv2d_forward_numpy as conv2d_forward
from .conv import conv2d_input_vjp_numpy as conv2d_input_vjp
from .conv import conv2d_weight_vjp_numpy as conv2d_weight_vjp
from .pool import avgpool2d_forward_numpy as avgpool2d_forward
from .pool import avgpool2d_vjp_numpy as avgpool2d_vjp
from .pool import maxpool2d_forward_numpy as maxpool2d_forward
from .pool import maxpool2d_vjp_numpy as maxpool2d_vjp

__all__ = [
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
]
