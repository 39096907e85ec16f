"""Type aliases used in refattr's public signatures (hints only: nothing here runs in a pass).

Each ``Literal`` lists the names the matching argument accepts; tests/test_type_hints.py checks
that it equals the tuple the code validates against (``GRADIENT_RULES``, ``MAXPOOL_RULES``, ...).
"""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ArrayLike", "Shape", "Target", "PathLike", "GradientRule", "DeepLiftRule", "MaxPoolRule", "SoftmaxRule",
           "QuadratureRule", "IGRule", "Aggregation", "Axes", "Figure", "AxesImage", "TorchModule",
           "TorchTensor", "OnnxModel", "AttributionMethod"]

#: An example shape (no batch axis); None stands for a size not known until an input arrives.
Shape = tuple[Union[int, None], ...]

#: Which output to attribute: one index for every example, one index per example, or None
#: (allowed only for a network with one output).
Target = Union[int, np.integer, Sequence[int], np.ndarray, None]

#: A file path.
PathLike = Union[str, os.PathLike[str]]

#: ``rule`` of the gradient family (``Sequential.backward``, ``Layer.backward_signal``).
GradientRule = Literal["gradient", "guided_backprop", "deconvnet"]

#: ``rule`` of DeepLIFT for element-wise layers.
DeepLiftRule = Literal["rescale", "reveal_cancel"]

#: ``maxpool_rule`` of DeepLIFT for MaxPool2D.
MaxPoolRule = Literal["delta_routing", "gradient", "tangermeme"]
#: DeepLIFT rules for Softmax / LogSoftmax (refattr.layers.SOFTMAX_RULES, docs/softmax.md).
SoftmaxRule = Literal["centered", "logsumexp"]

#: Fixed quadrature rules on [0, 1] (``refattr.quadrature.RULES``).
QuadratureRule = Literal["left", "right", "midpoint", "trapezoid", "gauss_legendre"]

#: ``rule`` of integrated gradients: automatic choice, exact walk, adaptive, or a fixed rule.
IGRule = Literal["auto", "exact", "quad", "piecewise", "left", "right", "midpoint", "trapezoid", "gauss_legendre"]

#: How plotting reduces the channel axis (``refattr.plotting.AGGREGATIONS``).
Aggregation = Literal["max_abs", "sum_abs", "sum"]

#: A matplotlib ``Axes`` / ``Figure`` / ``AxesImage``: matplotlib is optional, so these are Any.
Axes = Any
Figure = Any
AxesImage = Any

#: A ``torch.nn.Module`` / ``torch.Tensor``: torch is optional, so these are Any.
TorchModule = Any
TorchTensor = Any

#: An ``onnx.ModelProto``: onnx is optional, so this is Any.
OnnxModel = Any

#: The methods :func:`refattr.interop.compare_attributions` knows.
AttributionMethod = Literal["gradient", "input_x_gradient", "guided_backprop", "deconvnet", "integrated_gradients",
                            "deeplift"]
