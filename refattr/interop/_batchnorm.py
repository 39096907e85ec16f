"""BatchNorm in inference mode as refattr layers, shared by the PyTorch and ONNX importers.

BN(z) = gamma (z - mean) / sqrt(var + eps) + beta = scale * z + shift per channel, with
scale = gamma / sqrt(var + eps) and shift = beta - mean * scale. It is linear, so it either folds
into the Dense / Conv2D before it or becomes a linear layer of its own.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ShapeError
from ..layers import Conv1D, Conv2D, Dense
from ..validation import as_float64

__all__ = ["affine_of", "fold", "as_layer"]


def affine_of(gamma, beta, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of a BatchNorm with these statistics, in float64.

    Raises NonFiniteError for a non-finite parameter, ShapeError unless the four are vectors of one
    length, and ArgumentError where var + eps is not positive (a variance is >= 0 and eps > 0;
    the square root would be NaN).
    """
    gamma, beta, mean, var = (as_float64(a, f"BatchNorm {name}", ndim=1) for a, name in
                              ((gamma, "weight (gamma)"), (beta, "bias (beta)"), (mean, "running_mean"),
                               (var, "running_var")))
    if not gamma.shape == beta.shape == mean.shape == var.shape:
        raise ShapeError(f"BatchNorm: expected weight, bias, running_mean and running_var of one length (one per "
                         f"channel), got shapes {gamma.shape}, {beta.shape}, {mean.shape}, {var.shape}")
    eps = float(as_float64(eps, "BatchNorm eps", ndim=0))
    denominator = var + eps
    if not np.all(denominator > 0):
        c = int(np.argmin(denominator))
        raise ArgumentError(f"BatchNorm running_var: expected running_var + eps > 0 in every channel, got "
                            f"{float(var[c])!r} + {eps!r} in channel {c}; a variance is never negative (check where "
                            f"the statistics came from)")
    scale = gamma / np.sqrt(denominator)
    return scale, beta - mean * scale


def fold(layer, scale, shift):
    """The Dense, Conv1D or Conv2D computing scale * layer(x) + shift: W' = scale W, b' = scale b + shift."""
    bias = np.zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
    weight = layer.weight * scale.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
    if isinstance(layer, Dense):
        return Dense(weight, bias * scale + shift)
    return type(layer)(weight, bias * scale + shift, stride=layer.stride, padding=layer.padding,
                  dilation=layer.dilation, groups=layer.groups)


def as_layer(scale, shift, rank: int):
    """A layer of its own on examples of this rank: a diagonal Dense (1, features (C,)), a depthwise
    Conv1D of kernel 1 (2, sequences (C, L)) or a depthwise 1x1 Conv2D (3, images (C, H, W)).

    Exact: the off-diagonal products are zeros, so each output is scale_c * z_c + shift_c.
    """
    if rank == 3:
        return Conv2D(scale.reshape(-1, 1, 1, 1), shift, groups=scale.shape[0])
    if rank == 2:
        return Conv1D(scale.reshape(-1, 1, 1), shift, groups=scale.shape[0])
    return Dense(np.diag(scale), shift)
