"""BatchNorm in inference mode as refattr layers, shared by the PyTorch and ONNX importers.

BN(z) = gamma (z - mean) / sqrt(var + eps) + beta = scale * z + shift per channel, with
scale = gamma / sqrt(var + eps) and shift = beta - mean * scale. It is linear, so it either folds
into the Dense / Conv1D / Conv2D before it or becomes a linear layer of its own (an Affine).
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ShapeError
from ..layers import Affine, Dense
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


def as_layer(scale, shift):
    """A layer of its own: :class:`~refattr.layers.Affine` with one scale and shift per channel, on
    features (N, C), sequences (N, C, L) or images (N, C, H, W) alike."""
    return Affine(scale, shift)
