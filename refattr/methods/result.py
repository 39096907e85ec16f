"""The result every attribution method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["Attribution"]


@dataclass(frozen=True, eq=False)
class Attribution:
    """Attributions for a batch, with the evidence needed to judge them.

    Attributes
    ----------
    values : ndarray, x's shape (a tuple of them for a network of several inputs)
        phi, one attribution per input feature (float64).
    completeness_gap : ndarray, shape (N,), or None
        sum(values) - (t(x) - t(x')) per example for reference-based methods; None otherwise.
    error_estimate : ndarray, shape (N,), or None
        An estimate of the largest absolute error in ``values`` where the method approximates an
        integral; 0.0 for exact results; None where it does not apply.
    method : str
        The method's name, e.g. "gradient" or "integrated_gradients".
    options : dict
        The settings that produced the result (rule, n_steps, target, ...) and method-specific
        diagnostics.
    multipliers : ndarray, x's shape (a tuple of them for several inputs), or None
        DeepLIFT's m_{Δx Δt}; None for other methods.

    ``np.asarray(result)`` gives ``values`` (for one input; with several, index ``values``).
    """

    values: np.ndarray
    completeness_gap: np.ndarray | None = None
    error_estimate: np.ndarray | None = None
    method: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    multipliers: np.ndarray | None = None

    def __array__(self, dtype: DTypeLike = None, copy: bool | None = None) -> np.ndarray:
        if isinstance(self.values, tuple):
            raise TypeError(f"Attribution of a network of {len(self.values)} inputs: values is a tuple of "
                            f"arrays, one per input; use result.values[k] instead of np.asarray(result)")
        if dtype is None:
            return self.values if not copy else self.values.copy()
        return self.values.astype(dtype)

    @property
    def shape(self) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
        """values' shape (a tuple of shapes, one per input, for several inputs)."""
        if isinstance(self.values, tuple):
            return tuple(v.shape for v in self.values)
        return self.values.shape

    def __repr__(self) -> str:
        gap = "None" if self.completeness_gap is None else f"max |gap| {np.max(np.abs(self.completeness_gap)):.3g}"
        return f"Attribution(method={self.method!r}, shape={self.shape}, completeness_gap: {gap})"
