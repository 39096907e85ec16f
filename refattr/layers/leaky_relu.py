"""LeakyReLU: x for x > 0, negative_slope * x otherwise, with its kink protocol for exact integrated
gradients (the ReLU walk kernels: the kink is at 0 whatever the slope)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from ..kernels import walk
from .base import ElementwiseLayer
from .registry import register

__all__ = ["LeakyReLU"]


@register
class LeakyReLU(ElementwiseLayer):
    """f(x) = x for x > 0 and ``negative_slope`` * x for x <= 0 (PyTorch's ``nn.LeakyReLU``,
    ONNX's ``LeakyRelu`` with ``alpha`` = negative_slope; Maas et al. 2013).

    Convention at the kink: f'(0) = negative_slope, as PyTorch (its gradient at 0.0 and -0.0 is
    the negative slope; ReLU'(0) = 0 is the same convention with slope 0). The slope may be any
    finite real, as in PyTorch (a negative one makes f non-monotonic; 1 makes it the identity).

    The divided difference is exact: 1 when both ends are > 0, negative_slope when both are <= 0,
    and (f(a + h) - f(a)) / h across the kink. On straight-line paths (exact integrated gradients)
    a unit at its kink takes the piece the path moves into: x > 0, or x == 0 and dx > 0, is on the
    identity piece.

    Examples
    --------
    >>> import numpy as np
    >>> layer = LeakyReLU(0.1)
    >>> layer.forward(np.array([[-2.0, 0.0, 3.0]]))[0]      # -2 * 0.1, 0, 3
    array([[-0.2,  0. ,  3. ]])
    >>> layer.secant(np.array([-1.0]), np.array([3.0]))      # (2 - (-0.1)) / 3 = 0.7
    array([0.7])
    """

    piecewise_linear = True       # one kink, at 0
    torch_modules = ("LeakyReLU",)
    onnx_ops = ("LeakyRelu",)
    onnx_attributes = {"alpha": "negative_slope"}
    captum = "nonlinear"          # in Captum 0.9.0's SUPPORTED_NON_LINEAR: the Rescale rule

    def __init__(self, negative_slope: float = 0.01) -> None:
        if (isinstance(negative_slope, (bool, np.bool_)) or not isinstance(negative_slope, numbers.Real)
                or not np.isfinite(negative_slope)):
            raise ArgumentError(f"LeakyReLU negative_slope: expected a finite real number, got {negative_slope!r}; "
                                f"pass e.g. negative_slope=0.01 (PyTorch's default)")
        self.negative_slope = float(negative_slope)

    def function(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.where(x > 0, x, self.negative_slope * x)      # PyTorch's x > 0 ? x : x * slope

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        return z if z > 0 else self.negative_slope * z

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """g * f'(x), f'(x) = 1 for x > 0, negative_slope for x <= 0. ``x`` may also be the boolean
        pattern of :meth:`forward_along` (True: on the identity piece)."""
        d = np.where(np.asarray(x) > 0, 1.0, self.negative_slope)
        return d if g is None else np.asarray(g, dtype=np.float64) * d

    def piece(self, x: np.ndarray) -> np.ndarray:
        return x > 0                      # x == 0 is on the negative piece (f'(0) = negative_slope)

    def output_bound(self, bound: float) -> float:
        return bound * max(1.0, abs(self.negative_slope))

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
        with np.errstate(over="ignore"):
            b = a + h                     # an overflow to +-inf keeps its sign: no crossing there
        a_pos, b_pos = a > 0, b > 0
        out = np.where(a_pos & b_pos, 1.0, self.negative_slope)
        # Across the kink (so h != 0): the two forward values differ by at least |a| + |b| times
        # min(1, |slope|) without cancellation for a slope >= 0; b's rounding is below an ulp of h.
        crossing = np.flatnonzero(a_pos != b_pos)
        if crossing.size:
            a_c, b_c, h_c = a.ravel()[crossing], b.ravel()[crossing], h.ravel()[crossing]
            out.ravel()[crossing] = (self.function(b_c) - self.function(a_c)) / h_c
        return out

    # straight-line paths (exact integrated gradients) ----------------------------------------
    def forward_along(self, x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y, dy, on_identity_piece) on the path x + s dx just after s = 0. The piece is ReLU's
        activation pattern (x > 0, or x == 0 and dx > 0); the cache is that boolean pattern, which
        :meth:`derivative`, and so the VJP, reads as the piece."""
        _, _, active = walk.relu_forward_along(x, dx)
        slope = self.negative_slope
        return self.function(x), np.where(active, dx, slope * dx), active

    def next_kink(self, x: np.ndarray, dx: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the nearest crossing of 0 per example, and the units there (ReLU's)."""
        return walk.relu_next_kink(x, dx)

    def snap_to_kink(self, x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Set the units that reached their kink to exactly 0 (ReLU's)."""
        if x.dtype == np.float64 and x.flags.c_contiguous:
            return walk.relu_snap_to_kink(x, events, rows)
        x[events & rows.reshape((-1,) + (1,) * (x.ndim - 1))] = 0.0
        return x

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> LeakyReLU:
        """A slope drawn from [0.01, 0.5) (PyTorch's default up to the common 0.2 and beyond)."""
        return cls(float(rng.uniform(0.01, 0.5)))
