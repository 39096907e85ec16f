"""ReLU, max(x, 0): its divided difference, its DeepLIFT multiplier from the forward passes, the
gradient family's masks, and the kink protocol of exact integrated gradients.

The module functions are the NumPy definitions; the layer runs their fused twins
(:mod:`refattr.kernels.elementwise`, :mod:`refattr.kernels.walk`), equal bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._typing import GradientRule
from ..errors import RuleError
from ..kernels import elementwise as fused
from ..kernels import walk
from .base import GRADIENT_RULES, ElementwiseLayer
from .registry import register

__all__ = ["ReLU", "relu_forward_along", "relu_next_kink", "relu_snap_to_kink", "relu_backward_signal"]


def relu_backward_signal(g: np.ndarray, cache: np.ndarray, rule: GradientRule) -> np.ndarray:
    """The signal ReLU passes down under a gradient-family rule (docs/conventions.md, section
    'Gradient family').

    With z the forward input (``cache``: z itself, or the boolean pattern of the exact walk):
    g * 1(z > 0) (gradient), g * 1(g > 0) (deconvnet), g * 1(z > 0) * 1(g > 0) (guided
    backprop). A masked entry is g * 0.0 (so -0.0 where g < 0).
    """
    if rule == "gradient":
        return g * (cache > 0)
    if rule == "deconvnet":
        return g * (g > 0)
    if rule == "guided_backprop":
        return g * ((cache > 0) & (g > 0))
    raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")


# ReLU on straight-line paths (exact integrated gradients, docs/conventions.md) ------------------

def relu_forward_along(x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, dy, active) of ReLU on the path x + s dx just after s = 0.

    A unit is active just after s = 0 iff x > 0, or x == 0 and dx > 0. Exact comparisons, no
    tolerance. A unit with x == 0 and dx == 0 stays at 0 along the whole stretch and counts as
    inactive, as ReLU'(0) = 0 does at every point of it. ``active`` is the boolean activation
    pattern (``backward_signal`` masks with ``cache > 0``); dy = dx where active, else 0.
    """
    active = x > 0
    at_kink = np.flatnonzero(x == 0)                  # few: units snapped onto their kink
    if at_kink.size:
        active.flat[at_kink] = dx.reshape(-1)[at_kink] > 0
    return np.maximum(x, 0.0), np.where(active, dx, 0.0), active


def relu_next_kink(x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, events): a unit with x and dx of opposite signs (both non-zero) reaches 0 at
    s = -x / dx; ``distance`` (N,) is the nearest such s of each example (inf if none).

    ``events`` is the boolean mask of the units whose crossing lies at exactly the nearest
    distance of their example (several when they coincide bit for bit). Where x / dx
    underflows to 0 (|x| < 5e-324 |dx|) the kink is taken to lie at the smallest positive
    distance, 5e-324, so that it is still reached (and snapped) before the path moves on.
    """
    n = x.shape[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        ratio = x / dx                                # negative exactly where x heads for 0
    zeros = np.flatnonzero(ratio == 0)               # x == 0 (no kink), or an underflow
    if zeros.size:
        z, dz = x.reshape(-1)[zeros], dx.reshape(-1)[zeros]
        under = zeros[((z > 0) & (dz < 0)) | ((z < 0) & (dz > 0))]
        ratio.flat[under] = -np.finfo(np.float64).smallest_subnormal
    ratio = np.where(ratio < 0, ratio, -np.inf)      # -inf: no kink ahead (nan: x == dx == 0)
    nearest = ratio.reshape(n, -1).max(axis=1)
    ahead = nearest > -np.inf
    events = (ratio == nearest.reshape((n,) + (1,) * (x.ndim - 1))) & ahead.reshape((n,) + (1,) * (x.ndim - 1))
    return -nearest, events


def relu_snap_to_kink(x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Set the inputs of the units that reached their kink (``events``, in the examples where
    ``rows`` is True) to exactly 0; modifies and returns x."""
    x[events & rows.reshape((-1,) + (1,) * (x.ndim - 1))] = 0.0
    return x


@register
class ReLU(ElementwiseLayer):
    """max(x, 0), with ReLU'(0) = 0 (as PyTorch and JAX).

    The divided difference is exact: 1 when both ends are positive, 0 when both are <= 0, and
    (max(a + h, 0) - max(a, 0)) / h across the kink. For DeepLIFT's Rescale rule the multiplier
    is taken straight from the two forward passes, Δy / Δx (see
    :meth:`deeplift_rescale_multiplier`), which is exact for a piecewise-linear f.

    The gradient family differs only here (docs/conventions.md, section 'Gradient family';
    Springenberg et al. 2015, eq. for guided backpropagation; Zeiler & Fergus 2014): with z the
    forward input and g the signal at the output, the signal passed down is g * 1(z > 0)
    (gradient), g * 1(g > 0) (deconvnet) or g * 1(z > 0) * 1(g > 0) (guided backprop).
    """

    piecewise_linear = True       # one kink, at 0
    torch_modules = ("ReLU",)
    onnx_ops = ("Relu",)
    captum = "nonlinear"

    def function(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests."""
        return max(z, 0 * z)

    def output_bound(self, bound: float) -> float:
        return bound                      # |max(x, 0)| <= |x|

    def piece(self, x: np.ndarray) -> np.ndarray:
        return x > 0                      # the open piece; x == 0 is on the closed one (ReLU'(0) = 0)

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        a, h = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(h, dtype=np.float64))
        b = a + h
        a_pos, b_pos = a > 0, b > 0
        out = np.array(a_pos & b_pos, dtype=np.float64, order="C")   # 1 on both sides > 0, else 0
        # Across the kink (a crossing implies h != 0), (relu(b) - relu(a)) / h, on those elements
        # only: they are usually few, and gathering them is cheaper than arithmetic on all.
        crossing = np.flatnonzero(a_pos != b_pos)
        if crossing.size:
            a_c, b_c, h_c = a.ravel()[crossing], b.ravel()[crossing], h.ravel()[crossing]
            out.ravel()[crossing] = (np.maximum(b_c, 0.0) - np.maximum(a_c, 0.0)) / h_c
        return out

    def deeplift_rescale_multiplier(self, x_ref: np.ndarray, delta: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Δy / Δx from the forward passes, exact for relu: where both ends are > 0, y - y' and
        x - x' are the same float operation on the same operands, so the ratio is exactly 1;
        where both are <= 0 it is 0; across the kink it is the divided difference of the two
        forward values; where Δx == 0 it is the limit relu'(x') = 1(x' > 0)."""
        zero = delta == 0
        return dy / (delta + zero) + (zero & (x_ref > 0))

    def backward_signal(self, g: np.ndarray, cache: np.ndarray, rule: GradientRule) -> np.ndarray:
        """See :func:`relu_backward_signal` (evaluated by its fused twin)."""
        if rule not in GRADIENT_RULES:
            raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")
        return fused.relu_backward_signal(g, cache, rule)

    # straight-line paths (exact integrated gradients) ----------------------------------------
    # The definitions are the module functions relu_forward_along, relu_next_kink and
    # relu_snap_to_kink below; the walk runs their fused twins (refattr.kernels.walk).
    def forward_along(self, x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :func:`relu_forward_along`; the cache is the boolean activation pattern."""
        return walk.relu_forward_along(x, dx)

    def next_kink(self, x: np.ndarray, dx: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`relu_next_kink`."""
        return walk.relu_next_kink(x, dx)

    def snap_to_kink(self, x: np.ndarray, events: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """See :func:`relu_snap_to_kink`."""
        if x.dtype == np.float64 and x.flags.c_contiguous:
            return walk.relu_snap_to_kink(x, events, rows)
        return relu_snap_to_kink(x, events, rows)
