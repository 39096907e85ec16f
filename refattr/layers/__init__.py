"""The layers refattr knows, and their registry.

Adding a layer means one file here plus one line in ``LAYERS``; the contract tests walk this tuple
(gradient check, DeepLIFT summation-to-delta, shapes, determinism).
"""

from .activations import ReLU as ReLU, Sigmoid as Sigmoid, Swish as Swish, Tanh as Tanh
from .base import DeltaPair as DeltaPair, ElementwiseLayer as ElementwiseLayer, Layer as Layer
from .base import LinearLayer as LinearLayer
from .conv import Conv2D as Conv2D
from .dense import Dense as Dense
from .flatten import Flatten as Flatten
from .pooling import MAXPOOL_RULES as MAXPOOL_RULES, AvgPool2D as AvgPool2D, MaxPool2D as MaxPool2D

#: Every layer class, in the order the README lists them.
LAYERS = (Dense, Conv2D, ReLU, Tanh, Sigmoid, Swish, Flatten, AvgPool2D, MaxPool2D)

__all__ = ["LAYERS", "Layer", "LinearLayer", "ElementwiseLayer", "DeltaPair", "MAXPOOL_RULES",
           "Dense", "Conv2D", "ReLU", "Tanh", "Sigmoid", "Swish", "Flatten", "AvgPool2D", "MaxPool2D"]
