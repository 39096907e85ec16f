"""``assert_attributions_close``: an assertion for attribution maps whose failure message says
where they differ, by how much, and how complete each one is."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ..methods.result import Attribution

__all__ = ["assert_attributions_close"]


def _values(a, name):
    values = getattr(a, "values", a)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{name}: expected an array or an Attribution, got {type(a).__name__} ({exc})") from None


def _delta_t(expected, completeness, n):
    """t(x) - t(x') per example, from ``completeness`` or from an expected Attribution."""
    if completeness is None or completeness is False:
        return None
    if completeness is True:
        gap = getattr(expected, "completeness_gap", None)
        if gap is None:
            raise AssertionError("completeness=True needs `expected` to be an Attribution with a completeness_gap "
                                 "(a reference-based method); pass the array t(x) - t(x') instead")
        sums = np.asarray(expected.values, dtype=np.float64).reshape(n, -1).sum(axis=1)
        return sums - np.asarray(gap, dtype=np.float64)
    delta = np.asarray(completeness, dtype=np.float64).reshape(-1)
    if delta.shape != (n,):
        raise AssertionError(f"completeness: expected t(x) - t(x') of shape ({n},), got shape {np.shape(completeness)}")
    return delta


def _short(arr) -> str:
    return np.array2string(np.asarray(arr), precision=3, separator=", ", threshold=8)


def assert_attributions_close(actual: Attribution | ArrayLike, expected: Attribution | ArrayLike,
                              rtol: float = 1e-12, atol: float = 0.0, completeness: bool | ArrayLike | None = None,
                              completeness_atol: float | None = None,
                              scale: Literal["elementwise", "example"] = "elementwise") -> None:
    """Assert that two attribution maps agree, with a message that locates the difference.

    Parameters
    ----------
    actual, expected : array_like or Attribution, shape (N, *example_shape)
        Batch axis first. An ``Attribution`` (refattr's result type, or anything with ``.values``)
        is used through its ``values``.
    rtol, atol : float
        With ``scale="elementwise"`` (as ``numpy.testing.assert_allclose``):
        |actual - expected| <= atol + rtol * |expected| for every element. With
        ``scale="example"``: <= atol + rtol * max_i |expected_ni|, per example n (normwise; a
        near-zero attribution next to large ones then does not demand an impossible precision).
    completeness : None, True, or array_like (N,)
        None: no completeness check. An array: t(x_n) - t(x'_n), and each example's
        sum(actual_n) must equal it within ``completeness_atol``. True: take t(x) - t(x') from
        ``expected``, an Attribution with a ``completeness_gap``.
    completeness_atol : float, optional
        Default: atol + rtol * sum_i |expected_ni| per example (the rounding of a sum).
    scale : "elementwise" or "example"

    Raises
    ------
    AssertionError
        On a shape mismatch, a NaN or Inf in either map, elements out of tolerance, or a
        completeness gap out of tolerance. The message gives the number of elements out of
        tolerance, the index of the largest difference with both values, the largest absolute
        and relative differences, and (when known) the completeness gaps
        sum(phi_n) - (t(x_n) - t(x'_n)) of both maps per example.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr.testing.assertions import assert_attributions_close
    >>> assert_attributions_close([[1.0, 2.0]], [[1.0, 2.0 + 1e-15]])
    >>> try:
    ...     assert_attributions_close([[1.0, 2.0]], [[1.0, 2.5]], completeness=[3.5])
    ... except AssertionError as e:
    ...     print(str(e).splitlines()[1])
    largest difference at index (0, 1): actual 2, expected 2.5, |diff| 0.5 (relative 0.2)
    """
    a = _values(actual, "actual")
    e = _values(expected, "expected")
    if a.shape != e.shape:
        raise AssertionError(f"attributions differ in shape: actual {a.shape}, expected {e.shape}")
    if a.ndim == 0:
        raise AssertionError("attributions: expected arrays with a batch axis first, got scalars")
    if scale not in ("elementwise", "example"):
        raise ValueError(f"scale: expected 'elementwise' or 'example', got {scale!r}")
    n = a.shape[0]
    problems = []
    for name, arr in (("actual", a), ("expected", e)):
        bad = ~np.isfinite(arr)
        if np.any(bad):
            problems.append(f"{name} holds {int(bad.sum())} non-finite value(s), first at index "
                            f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    diff = np.abs(a - e)
    if scale == "elementwise":
        bound = atol + rtol * np.abs(e)
    else:
        per_example = np.max(np.abs(e).reshape(n, -1), axis=1) if e.size else np.zeros(n)
        bound = atol + rtol * per_example.reshape((n,) + (1,) * (a.ndim - 1))
    with np.errstate(invalid="ignore"):
        out = ~(diff <= bound)
    lines = []
    if np.any(out) and not problems:
        lines.append(f"{int(out.sum())} of {a.size} attribution(s) differ by more than atol + rtol * "
                     f"{'|expected|' if scale == 'elementwise' else 'max |expected| of the example'} "
                     f"(rtol={rtol:g}, atol={atol:g})")
    if a.size:
        finite = np.where(np.isfinite(diff), diff, -1.0)
        worst = np.unravel_index(int(np.argmax(finite)), a.shape)
        rel = diff[worst] / abs(e[worst]) if e[worst] != 0 else float("inf") if diff[worst] else 0.0
        summary = [f"largest difference at index {tuple(int(i) for i in worst)}: actual {a[worst]:.15g}, "
                   f"expected {e[worst]:.15g}, |diff| {diff[worst]:.3g} (relative {rel:.3g})"]
        scales = np.max(np.abs(e).reshape(n, -1), axis=1)
        diffs = np.max(np.where(np.isfinite(diff), diff, np.inf).reshape(n, -1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            normwise = np.where(scales > 0, diffs / np.where(scales > 0, scales, 1.0), np.where(diffs > 0, np.inf, 0.0))
        summary.append(f"max |diff| {np.max(diffs):.3g}; per example max|diff| / max|expected|: {_short(normwise)}")
    else:
        summary = []
    delta_t = _delta_t(expected, completeness, n)
    if delta_t is not None:
        gap_a = a.reshape(n, -1).sum(axis=1) - delta_t
        gap_e = e.reshape(n, -1).sum(axis=1) - delta_t
        tol = (atol + rtol * np.abs(e).reshape(n, -1).sum(axis=1)) if completeness_atol is None else \
            np.full(n, float(completeness_atol))
        summary.append(f"completeness gap sum(phi) - (t(x) - t(x')) per example: actual {_short(gap_a)}, "
                       f"expected {_short(gap_e)} (tolerance {_short(tol)})")
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(gap_a) <= tol)
        if np.any(bad):
            lines.append(f"completeness fails for {int(bad.sum())} of {n} example(s) (first: example "
                         f"{int(np.argmax(bad))}, gap {gap_a[int(np.argmax(bad))]:.3g})")
    if problems or lines:
        raise AssertionError("\n".join((problems + lines)[:1] + summary + (problems + lines)[1:]))
