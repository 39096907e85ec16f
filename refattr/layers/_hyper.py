"""Normalisation of convolution and pooling hyperparameters (kernel, stride, padding, dilation)."""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import ShapeError

#: The largest kernel size, stride, padding, dilation or group count accepted. No image comes near
#: it, and index arithmetic on such values (products of two of them) stays within the int64 of the
#: compiled kernels; a larger value is refused when the layer is built.
MAX_HYPERPARAMETER = 2**31 - 1


def _int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ShapeError(f"{name}: expected an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ShapeError(f"{name}: expected an int >= {minimum}, got {value}")
    if value > MAX_HYPERPARAMETER:
        raise ShapeError(
            f"{name}: {value} is too large; expected an int from {minimum} to 2**31 - 1 = {MAX_HYPERPARAMETER}"
        )
    return int(value)


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints -> (height, width)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        v = _int(value, name, minimum)
        return (v, v)
    try:
        items = tuple(value)
    except TypeError:
        raise ShapeError(f"{name}: expected an int or a pair of ints, got {value!r}") from None
    if len(items) != 2:
        raise ShapeError(f"{name}: expected an int or a pair of ints (height, width), got {value!r}")
    return (_int(items[0], name, minimum), _int(items[1], name, minimum))


def padding4(value, name: str = "padding") -> tuple[int, int, int, int]:
    """An int, a pair (height, width) or four ints (top, bottom, left, right) -> four ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        p = _int(value, name, 0)
        return (p, p, p, p)
    try:
        items = tuple(value)
    except TypeError:
        raise ShapeError(f"{name}: expected an int, a pair or four ints, got {value!r}") from None
    if len(items) == 2:
        ph, pw = (_int(v, name, 0) for v in items)
        return (ph, ph, pw, pw)
    if len(items) == 4:
        return tuple(_int(v, name, 0) for v in items)  # type: ignore[return-value]
    raise ShapeError(
        f"{name}: expected an int, a pair (height, width) or four ints (top, bottom, left, right), got {value!r}"
    )


def window_output_size(size, before, after, extent, stride):
    """Number of window positions along one axis: floor((size + before + after - extent) / stride) + 1."""
    if size is None:
        return None
    return (size + before + after - extent) // stride + 1
