"""2-D average and max pooling, NCHW, floor mode (no ceil_mode).

Each layer is one module (:mod:`refattr.layers.avg_pool`, :mod:`refattr.layers.max_pool`); this
module re-exports their public names, importable from here as before.
"""

from .avg_pool import AvgPool2D as AvgPool2D
from .max_pool import MAXPOOL_RULES as MAXPOOL_RULES
from .max_pool import MaxPool2D as MaxPool2D

__all__ = ["AvgPool2D", "MaxPool2D", "MAXPOOL_RULES"]
