"""BatchNorm in inference mode as refattr layers, shared by the PyTorch and ONNX importers.

BN(z) = gamma (z - mean) / sqrt(var + eps) + beta = scale * z + shift per channel, with
scale = gamma / sqrt(var + eps) and shift = beta - mean * scale. It is linear, so it either folds
into the Dense / Conv2D before it or becomes a linear layer of its own.
"""

from __future__ import annotations

import numpy as np

from ..layers import Conv2D, Dense

__all__ = ["affine_of", "fold", "as_layer"]


def affine_of(gamma, beta, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of a BatchNorm with these statistics, in float64."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    return scale, np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale


def fold(layer, scale, shift):
    """The Dense or Conv2D computing scale * layer(x) + shift: W' = scale W, b' = scale b + shift."""
    bias = np.zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
    weight = layer.weight * scale.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
    if isinstance(layer, Dense):
        return Dense(weight, bias * scale + shift)
    return Conv2D(weight, bias * scale + shift, stride=layer.stride, padding=layer.padding,
                  dilation=layer.dilation, groups=layer.groups)


def as_layer(scale, shift, images: bool):
    """A layer of its own: a diagonal Dense (features) or a depthwise 1x1 Conv2D (images).

    Exact: the off-diagonal products are zeros, so each output is scale_c * z_c + shift_c.
    """
    if images:
        return Conv2D(scale.reshape(-1, 1, 1, 1), shift, groups=scale.shape[0])
    return Dense(np.diag(scale), shift)
