"""Window geometry shared by the convolution and pooling kernels and their definitions.

``padding = (top, bottom, left, right)``; an axis of padded length ``padded`` with kernel ``k``,
dilation ``d`` and stride ``s`` has ``(padded - d*(k-1) - 1) // s + 1`` window positions, at least
0. The ``jit_`` functions are the compiled versions used inside the kernels; the others are plain
NumPy, used by the definitions (so that ``REFATTR_KERNELS=numpy`` compiles nothing).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = ["jit_out_size", "jit_ceil_div", "jit_check_geometry", "check_geometry", "out_size", "pad", "tap_slices"]


@jit
def jit_out_size(padded: int, k: int, d: int, s: int) -> int:
    """Number of window positions along one axis, ``(padded - d*(k-1) - 1)//s + 1``, at least 0."""
    n = (padded - d * (k - 1) - 1) // s + 1
    if n < 0:
        return 0
    return n


@jit
def jit_ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers, ``b > 0``."""
    return -((-a) // b)


@jit
def jit_check_geometry(stride, padding, dilation):
    sh, sw = stride
    top, bottom, left, right = padding
    dh, dw = dilation
    if sh < 1 or sw < 1:
        raise ValueError("stride must be positive")
    if dh < 1 or dw < 1:
        raise ValueError("dilation must be positive")
    if top < 0 or bottom < 0 or left < 0 or right < 0:
        raise ValueError("padding must be non-negative")



def check_geometry(stride, padding, dilation) -> None:
    if min(stride) < 1:
        raise ValueError("stride must be positive")
    if min(dilation) < 1:
        raise ValueError("dilation must be positive")
    if min(padding) < 0:
        raise ValueError("padding must be non-negative")


def out_size(padded: int, k: int, d: int, s: int) -> int:
    """``(padded - d*(k-1) - 1) // s + 1``, at least 0."""
    return max(0, (padded - d * (k - 1) - 1) // s + 1)


def pad(x: np.ndarray, padding, value: float) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(
        x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="constant", constant_values=value
    )


def tap_slices(kh, kw, dh, dw, sh, sw, OH, OW):
    """Slices of the padded plane read by kernel tap (kh, kw) for all (OH, OW) outputs."""
    r0 = kh * dh
    c0 = kw * dw
    return (
        slice(r0, r0 + sh * (OH - 1) + 1, sh),
        slice(c0, c0 + sw * (OW - 1) + 1, sw),
    )
