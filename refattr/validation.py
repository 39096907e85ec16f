"""Argument checks shared by layers and methods.

Each function either returns a clean float64 (or int64) array or raises a
:class:`~refattr.errors.RefattrError` naming the argument, what was seen and what was expected.
"""

from __future__ import annotations

import numbers
import reprlib

import numpy as np
from numpy.typing import ArrayLike

from ._typing import Target
from .errors import NonFiniteError, ShapeError, TargetError

__all__ = ["as_float64", "as_target", "broadcast_baseline", "as_baselines", "pair_with_references",
           "DEFAULT_BASELINE"]


def as_float64(value: ArrayLike, name: str, *, ndim: int | None = None, min_ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array, checking rank and finiteness.

    Inputs of other floating or integer dtypes are converted exactly (float32 -> float64 is exact);
    the computation itself always runs in float64. Complex, object and string arrays are refused.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many types here
        raise ShapeError(f"{name}: could not convert {type(value).__name__} to an array ({exc})") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == np.bool_):
        seen = (f"{type(value).__name__} {reprlib.repr(value)}" if arr.dtype == object
                else f"dtype {arr.dtype} ({type(value).__name__} {reprlib.repr(value)})")
        raise ShapeError(f"{name}: expected a real numeric array (floats or ints), got {seen}")
    # np.asarray keeps a 0-d array 0-d (np.ascontiguousarray would make it shape (1,)).
    arr = np.asarray(arr, dtype=np.float64, order="C")
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name}: expected a {ndim}-D array, got shape {arr.shape} ({arr.ndim}-D)")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ShapeError(f"{name}: expected at least {min_ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(
            f"{name}: holds {int(np.sum(~np.isfinite(arr)))} non-finite value(s) (first at index "
            f"{tuple(int(i) for i in bad)}: {arr[tuple(bad)]}); expected finite float64 values"
        )
    return arr


def as_target(target: Target, n_examples: int, n_outputs: int) -> np.ndarray:
    """Normalise ``target`` to an int64 array of shape (N,) with entries in [0, n_outputs).

    ``target`` may be None (only when the network has one output), a Python or NumPy integer (the
    same output for every example), or an integer array of shape (N,). Floats, even integral ones,
    and booleans are refused: an attribution target is an index, not a number.
    """
    if target is None:
        if n_outputs != 1:
            raise TargetError(
                f"target: None is only allowed for a network with one output; this network has "
                f"{n_outputs} outputs, pass an int or an integer array of shape ({n_examples},)"
            )
        return np.zeros(n_examples, dtype=np.int64)
    if isinstance(target, (bool, np.bool_)):
        raise TargetError(f"target: expected an int or an integer array, got a bool ({target!r})")
    if isinstance(target, numbers.Integral):
        value = int(target)      # a Python int: 10**30 is compared as itself, never wrapped
        if not 0 <= value < n_outputs:
            raise _target_out_of_range(value, n_outputs)
        return np.full(n_examples, value, dtype=np.int64)
    arr = np.asarray(target)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TargetError(
            f"target: expected an int or an integer array of shape ({n_examples},), got dtype "
            f"{arr.dtype} with value {target!r}"
        )
    if arr.ndim != 0 and arr.shape != (n_examples,):
        raise TargetError(f"target: expected shape ({n_examples},) (one index per example), got {arr.shape}")
    # Compared in the dtype given (a uint64 2**64 - 1 stays itself), converted once in range.
    out_of_range = (arr < 0) | (arr >= n_outputs)
    if np.any(out_of_range):
        raise _target_out_of_range(int(arr[out_of_range][0] if arr.ndim else arr[()]), n_outputs)
    return np.broadcast_to(arr, (n_examples,)).astype(np.int64)


def _target_out_of_range(value: int, n_outputs: int) -> TargetError:
    return TargetError(
        f"target: index {value} is out of range for a network with {n_outputs} output(s); "
        f"expected 0 <= target < {n_outputs}"
    )


def broadcast_baseline(baseline: ArrayLike, x: np.ndarray, name: str = "baseline") -> np.ndarray:
    """Return the baseline x' broadcast to x's shape (N, *example_shape), as float64.

    Accepted: a scalar, an array of one example's shape, or an array of x's shape.
    """
    arr = as_float64(baseline, name)
    example_shape = x.shape[1:]
    if arr.ndim == 0:
        return np.full(x.shape, float(arr))
    if arr.shape == example_shape:
        return np.ascontiguousarray(np.broadcast_to(arr, x.shape))
    if arr.shape == x.shape:
        return arr
    raise ShapeError(
        f"{name}: shape {arr.shape} fits neither one example {example_shape} nor the batch {x.shape}; "
        f"expected a scalar, an array of shape {example_shape}, or one of shape {x.shape}"
    )


def as_baselines(baselines: ArrayLike, x: np.ndarray) -> np.ndarray:
    """Return a distribution of K baselines as an array of shape (K, *example_shape)."""
    arr = as_float64(baselines, "baselines")
    example_shape = x.shape[1:]
    if arr.ndim != len(example_shape) + 1 or arr.shape[1:] != example_shape or arr.shape[0] == 0:
        raise ShapeError(
            f"baselines: expected shape (K, {', '.join(map(str, example_shape))}) with K >= 1 "
            f"(K baselines of one example's shape), got {arr.shape}"
        )
    return arr


class _DefaultBaseline(float):
    """The default ``baseline`` (0.0), told apart from an explicit 0.0 by identity, so that passing
    ``baseline`` together with ``baselines=`` is refused even when the value is 0.0."""

    def __repr__(self) -> str:
        return "0.0"


#: The default of every method's ``baseline`` argument: 0.0.
DEFAULT_BASELINE = _DefaultBaseline(0.0)


def _describe(value: ArrayLike) -> str:
    arr = np.asarray(value)
    return f"an array of shape {arr.shape}" if arr.ndim else repr(value)


def pair_with_references(x: np.ndarray, target: np.ndarray, baseline: ArrayLike,
                         baselines: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The (input, reference, target) rows a reference-based method attributes.

    Returns ``(inputs, references, targets, k)``. With one baseline (``baselines is None``):
    x, the baseline broadcast to x's shape, target, and k = 1. With K baselines of shape
    (K, *example_shape): row n * K + j pairs example n with baseline j (example-major), so results
    of shape (N * K, ...) reduce to the mean over baselines with ``reshape(N, K, ...).mean(axis=1)``.
    """
    if baselines is None:
        references = broadcast_baseline(0.0 if baseline is DEFAULT_BASELINE else baseline, x)
        _check_difference(x, references, "baseline")
        return x, references, target, 1
    if baseline is not DEFAULT_BASELINE:
        raise ShapeError(
            f"baseline and baselines: pass one of them, got both (baseline={_describe(baseline)}, "
            f"baselines={_describe(baselines)}); baselines= (K, *example_shape) replaces baseline"
        )
    refs = as_baselines(baselines, x)
    k, n = refs.shape[0], x.shape[0]
    inputs = np.repeat(x, k, axis=0)
    references = np.ascontiguousarray(np.tile(refs, (n,) + (1,) * (x.ndim - 1)))
    _check_difference(inputs, references, "baselines", k)
    return inputs, references, np.repeat(target, k), k


def _check_difference(inputs: np.ndarray, references: np.ndarray, name: str, k: int = 1) -> None:
    """NonFiniteError when x - x' overflows although both are finite (e.g. 1e308 - (-1e308)).

    Row r of ``inputs`` is example r // k paired with reference r % k (k = 1: one reference each).
    """
    with np.errstate(over="ignore"):
        delta = inputs - references
    if np.isfinite(delta).all():
        return
    at = tuple(int(i) for i in np.argwhere(~np.isfinite(delta))[0])
    where = f"example {at[0]}" if k == 1 else f"example {at[0] // k} with baselines[{at[0] % k}]"
    raise NonFiniteError(
        f"{name}: x - {name} overflows float64 (largest magnitude {np.finfo(np.float64).max:.3g}) in "
        f"{where}, element {at[1:]}: x = {inputs[at]:.3g}, reference = {references[at]:.3g}; rescale x and "
        f"the reference so that their difference stays in range"
    )
