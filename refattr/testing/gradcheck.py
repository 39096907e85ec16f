"""Gradient checks: a VJP against central finite differences along random directions."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .tolerances import FD_RTOL, FD_STEP

__all__ = ["central_difference", "check_vjp"]


def central_difference(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, direction: np.ndarray,
                       step: float = FD_STEP) -> np.ndarray:
    """(f(x + h d) - f(x - h d)) / (2 h): the directional derivative of f at x along d, O(h^2)."""
    return (f(x + step * direction) - f(x - step * direction)) / (2.0 * step)


def check_vjp(f: Callable[[np.ndarray], np.ndarray], vjp: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
              rng: np.random.Generator, n_directions: int = 3, rtol: float = FD_RTOL,
              step: float = FD_STEP) -> float:
    """Check <g, J d> (finite differences) against <vjp(g), d> for random g and d.

    Returns the largest relative error seen and raises AssertionError when it exceeds ``rtol``.
    The relative error is |fd - an| / max(|fd|, |an|, scale) where scale = |g| |J|-ish is taken as
    the norm of vjp(g) times the norm of d, so that a directional derivative that happens to be
    near zero is not judged by its own tiny size.
    """
    y = f(x)
    worst = 0.0
    for _ in range(n_directions):
        d = rng.normal(size=x.shape)
        g = rng.normal(size=y.shape)
        fd = float(np.sum(g * central_difference(f, x, d, step)))
        vj = vjp(g)
        an = float(np.sum(vj * d))
        scale = max(abs(fd), abs(an), float(np.linalg.norm(vj) * np.linalg.norm(d)) * 1e-3, 1e-300)
        err = abs(fd - an) / scale
        worst = max(worst, err)
    if worst > rtol:
        raise AssertionError(f"VJP disagrees with central differences: relative error {worst:.3g} > {rtol:.1g}")
    return worst
