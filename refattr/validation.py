"""Argument checks shared by layers and methods.

Each function either returns a clean float64 (or int64) array or raises a
:class:`~refattr.errors.RefattrError` naming the argument, what was seen and what was expected.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import reprlib
from typing import Any, Callable, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike

from ._typing import Target
from .errors import ArgumentError, NonFiniteError, ResourceError, ShapeError, TargetError

__all__ = ["as_float64", "as_target", "broadcast_baseline", "as_baselines", "as_reference_sets",
           "pair_with_references", "refuses_baselines", "baselines_refused", "DEFAULT_BASELINE", "PAIR_ARRAYS"]

#: How many arrays of the paired rows' size (N * K rows of one example each, float64) a reference-based
#: method holds at once: the inputs and references it pairs, and per-pair results of the same size
#: (values and multipliers) before the mean over references. The memory check of
#: :func:`pair_with_references` counts this many.
PAIR_ARRAYS = 4


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

    Accepted: a scalar, an array of one example's shape, an array of shape (1, *example_shape)
    (one reference for the whole batch, as Captum and NumPy broadcasting read it), or an array of
    x's shape (one reference per example). With N == 1 the last two are the same shape and the
    same reading.

    >>> broadcast_baseline([[1.0, 2.0]], np.zeros((3, 2)))      # (1, 2): one reference, three examples
    array([[1., 2.],
           [1., 2.],
           [1., 2.]])
    """
    arr = as_float64(baseline, name)
    example_shape = x.shape[1:]
    if arr.ndim == 0:
        return np.full(x.shape, float(arr))
    if arr.shape == x.shape:
        return arr
    if arr.shape in (example_shape, (1,) + example_shape):
        return np.ascontiguousarray(np.broadcast_to(arr.reshape(example_shape), x.shape))
    raise ShapeError(
        f"{name}: shape {arr.shape} fits neither one example {example_shape} nor the batch {x.shape}; "
        f"expected a scalar, an array of shape {example_shape} (one example), {(1,) + example_shape} (one "
        f"example with a batch axis) or {x.shape} (x's shape: one reference per example)"
    )


def as_baselines(baseline_samples: ArrayLike, x: np.ndarray) -> np.ndarray:
    """Return one distribution of K references shared by the batch, as an array (K, *example_shape).

    Per-example sets (N, K, *example_shape) are refused here (by rank, with a message saying so):
    callers that take them use :func:`as_reference_sets`.
    """
    arr = as_float64(baseline_samples, "baseline_samples")
    example_shape = x.shape[1:]
    if arr.ndim != len(example_shape) + 1 or arr.shape[1:] != example_shape or arr.shape[0] == 0:
        per_example = (" (an array with two leading axes is one set per example, (N, K, *example_shape), which "
                       "deeplift, integrated_gradients and hypothetical_contributions take, and this function does "
                       "not)" if arr.ndim == len(example_shape) + 2 else "")
        raise ShapeError(
            f"baseline_samples: expected shape (K, {', '.join(map(str, example_shape))}) with K >= 1 "
            f"(K references of one example's shape), got {arr.shape}{per_example}"
        )
    return arr


def as_reference_sets(baseline_samples: ArrayLike, x: np.ndarray) -> np.ndarray:
    """Return the references of every example as an array (N, K, *example_shape), float64.

    Shapes are read by their rank alone, never by comparing sizes:

    - rank of one example + 1, (K, *example_shape): one set of K references shared by the batch
      (returned as a read-only broadcast view, nothing copied). An array of x's own shape is
      read this way too, as N shared references (every example is paired with every row); for
      one reference per example pass ``baseline=`` instead.
    - rank of one example + 2, (N, K, *example_shape): one set of K references per example, e.g.
      K dinucleotide-shuffled copies of each sequence; its first axis must be x's N. With
      K == N the rank still tells the two readings apart.

    Every example has the same K (K >= 1). Anything else raises a ShapeError saying how the shape
    was read.
    """
    arr = as_float64(baseline_samples, "baseline_samples")
    n, example_shape = x.shape[0], x.shape[1:]
    ex = ", ".join(map(str, example_shape))
    expected = (f"baseline_samples: expected shape (K, {ex}) with K >= 1 (one set of K references shared by the "
                f"batch) or (N, K, {ex}) = ({n}, K, {ex}) (one set of K references per example), got {arr.shape}")
    if arr.ndim == len(example_shape) + 1:
        if arr.shape[1:] != example_shape or arr.shape[0] == 0:
            raise ShapeError(
                f"{expected}: it has one axis more than one example {example_shape}, so it is read as one shared "
                f"set (K, {ex}); "
                + (f"its trailing axes {arr.shape[1:]} should be the example shape" if arr.shape[1:] != example_shape
                   else "K is 0")
            )
        return np.broadcast_to(arr, (n,) + arr.shape)
    if arr.ndim == len(example_shape) + 2:
        if arr.shape[0] != n or arr.shape[2:] != example_shape or arr.shape[1] == 0:
            found = []
            if arr.shape[0] != n:
                found.append(f"its first axis is {arr.shape[0]} but x has N = {n} examples")
            if arr.shape[2:] != example_shape:
                found.append(f"its trailing axes {arr.shape[2:]} should be the example shape")
            if arr.shape[1] == 0:
                found.append("K is 0")
            raise ShapeError(
                f"{expected}: it has two axes more than one example {example_shape}, so it is read as one set "
                f"per example (N, K, {ex}); {'; '.join(found)}"
            )
        return arr
    raise ShapeError(f"{expected}: its {arr.ndim} axes fit neither reading for examples of shape {example_shape}")


def baselines_refused(who: str, seen: str, one: str = "baseline=", samples: str | None = "baseline_samples=",
                      name: str = "baselines") -> ArgumentError:
    """The error for the ambiguous argument ``baselines``, naming both of its meanings.

    ``baselines`` means one baseline per example in Captum's ``IntegratedGradients`` and
    ``DeepLift``, and a distribution of references whose attributions are averaged in Captum's
    ``DeepLiftShap`` (and in refattr before the rename to ``baseline_samples``). Read as a
    distribution, a Captum user's per-example baselines of x's shape would silently give every
    example the mean over all rows; read per example, a distribution would be refused or
    misread. ``who`` is the function or command refusing it, ``seen`` what was passed, ``one`` and
    ``samples`` how it spells the two arguments to use instead (``samples`` None where it takes
    no distribution), ``name`` how the refused argument was spelled.
    """
    instead = (f"{one} for one reference per example (a scalar, one example's shape, (1, *example_shape) "
               f"or x's shape)")
    if samples is not None:
        instead += f" or {samples} (K, *example_shape) for the mean of the attributions over K references"
    return ArgumentError(
        f"{name}: {who} does not take `{name}`, a name with two meanings (one baseline per example in "
        f"Captum's IntegratedGradients and DeepLift; a distribution of references whose attributions are "
        f"averaged in Captum's DeepLiftShap and in refattr before it was renamed baseline_samples); got "
        f"{seen}. Pass {instead}"
    )


_F = TypeVar("_F", bound=Callable[..., Any])


def refuses_baselines(function: _F) -> _F:
    """Decorate a public function so that ``baselines=`` raises :func:`baselines_refused`'s
    :class:`~refattr.errors.ArgumentError` before anything is computed.

    The message offers ``baseline=``, and ``baseline_samples=`` where ``function`` takes it.
    """
    samples = "baseline_samples=" if "baseline_samples" in inspect.signature(function).parameters else None

    @functools.wraps(function)
    def refusing(*args: Any, **kwargs: Any) -> Any:
        if "baselines" in kwargs:
            raise baselines_refused(function.__name__, _describe(kwargs["baselines"]), samples=samples)
        return function(*args, **kwargs)

    return cast(_F, refusing)


class _DefaultBaseline(float):
    """The default ``baseline`` (0.0), told apart from an explicit 0.0 by identity, so that passing
    ``baseline`` together with ``baseline_samples=`` is refused even when the value is 0.0."""

    def __repr__(self) -> str:
        return "0.0"


#: The default of every method's ``baseline`` argument: 0.0.
DEFAULT_BASELINE = _DefaultBaseline(0.0)


def _describe(value: ArrayLike) -> str:
    try:
        shape = tuple(np.shape(value))      # reads .shape first: a torch tensor that requires grad is fine
    except ValueError:                      # a ragged nested sequence
        return f"a {type(value).__name__} {reprlib.repr(value)}"
    return f"an array of shape {shape}" if shape else repr(value)


def pair_with_references(x: np.ndarray, target: np.ndarray, baseline: ArrayLike,
                         baseline_samples: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The (input, reference, target) rows a reference-based method attributes.

    Returns ``(inputs, references, targets, k)``. With one baseline (``baseline_samples is None``):
    x, the baseline broadcast to x's shape, target, and k = 1. With ``baseline_samples``, either
    one set of K references shared by the batch, (K, *example_shape), or one set per example,
    (N, K, *example_shape) (read by rank, see :func:`as_reference_sets`): row n * K + j pairs
    example n with its reference j (example-major), so results of shape (N * K, ...) reduce to the
    mean over references with ``reshape(N, K, ...).mean(axis=1)``.

    Before anything of the pairs' size is allocated, the N * K rows are checked against the
    machine's memory (:data:`PAIR_ARRAYS` arrays of N * K examples in float64): a ResourceError
    names the bytes and how to ask for less.
    """
    if baseline_samples is None:
        references = broadcast_baseline(0.0 if baseline is DEFAULT_BASELINE else baseline, x)
        _check_difference(x, references, "baseline")
        return x, references, target, 1
    if baseline is not DEFAULT_BASELINE:
        raise ShapeError(
            f"baseline and baseline_samples: pass one of them, got both (baseline={_describe(baseline)}, "
            f"baseline_samples={_describe(baseline_samples)}); baseline_samples= (K, *example_shape) or "
            f"(N, K, *example_shape) replaces baseline"
        )
    shape = _shape_of(baseline_samples)
    _check_pair_memory(x, shape)
    refs = as_reference_sets(baseline_samples, x)
    n, k = refs.shape[0], refs.shape[1]
    inputs = np.repeat(x, k, axis=0)
    references = np.ascontiguousarray(refs.reshape((n * k,) + x.shape[1:]))
    _check_difference(inputs, references, "baseline_samples", k, per_example=len(shape or ()) == x.ndim + 1)
    return inputs, references, np.repeat(target, k), k


def _check_pair_memory(x: np.ndarray, shape: tuple[int, ...] | None) -> None:
    """ResourceError when pairing every example with its K references would not fit in memory.

    Reads only the shape of ``baseline_samples`` (a broadcast view or a lazy array is not copied):
    K is its first axis for a shared set and its second for per-example sets. Shapes that fit
    neither reading are left to :func:`as_reference_sets`.
    """
    from .network import _format_bytes, memory_bytes     # network imports this module

    ex_rank = x.ndim - 1
    if shape is None or len(shape) not in (ex_rank + 1, ex_rank + 2):
        return
    k = int(shape[len(shape) - ex_rank - 1])
    n, d = x.shape[0], math.prod(x.shape[1:])
    needed = PAIR_ARRAYS * 8 * n * k * d        # Python ints: no overflow
    limit = memory_bytes()
    if needed <= limit:
        return
    fits = max(limit // (PAIR_ARRAYS * 8 * d), 0)
    raise ResourceError(
        f"baseline_samples: pairing N = {n} examples with K = {k} references each makes {n * k} (input, "
        f"reference) rows of {d} values; the pairs and the per-pair results (values, multipliers) need about "
        f"{_format_bytes(needed)} ({PAIR_ARRAYS} float64 arrays of N * K * {d} values), more than this "
        f"machine's memory ({_format_bytes(limit)}); ask for at most {fits} rows at a time: fewer references "
        f"per example, or fewer examples per call (split x, and baseline_samples with it when it is one set "
        f"per example, and concatenate the results)"
    )


def _shape_of(value: ArrayLike) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.shape(value))   # reads .shape first: nothing is copied
    except (ValueError, TypeError):                     # a ragged nested sequence: as_float64 says so
        return None


def _check_difference(inputs: np.ndarray, references: np.ndarray, name: str, k: int = 1,
                      per_example: bool = False) -> None:
    """NonFiniteError when x - x' overflows although both are finite (e.g. 1e308 - (-1e308)).

    Row r of ``inputs`` is example r // k paired with reference r % k (k = 1: one reference each),
    which is ``baseline_samples[r % k]`` of a shared set, ``baseline_samples[r // k, r % k]`` of
    per-example sets.
    """
    with np.errstate(over="ignore"):
        delta = inputs - references
    if np.isfinite(delta).all():
        return
    at = tuple(int(i) for i in np.argwhere(~np.isfinite(delta))[0])
    sample = f"{at[0] // k}, {at[0] % k}" if per_example else f"{at[0] % k}"
    where = f"example {at[0]}" if k == 1 else f"example {at[0] // k} with baseline_samples[{sample}]"
    raise NonFiniteError(
        f"{name}: x - {name} overflows float64 (largest magnitude {np.finfo(np.float64).max:.3g}) in "
        f"{where}, element {at[1:]}: x = {inputs[at]:.3g}, reference = {references[at]:.3g}; rescale x and "
        f"the reference so that their difference stays in range"
    )
