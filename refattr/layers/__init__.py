"""The layers refattr knows, and their registry.

Every module in this package is imported here, and each layer class in it registers itself with
``@register`` (:mod:`refattr.layers.registry`): adding a layer is one file. ``LAYERS`` and the
package's exports are read from the registry; the contract tests walk it (gradient check, DeepLIFT
summation-to-delta, shapes, determinism, serialisation).
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .base import DeltaPair as DeltaPair, ElementwiseLayer as ElementwiseLayer, Layer as Layer
from .base import LinearLayer as LinearLayer
from .pooling import MAXPOOL_RULES as MAXPOOL_RULES
from ._softmax_math import SOFTMAX_RULES as SOFTMAX_RULES
from .registry import registered as _registered

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in ("base", "registry"):
        _importlib.import_module(f"{__name__}.{_module.name}")

#: Every registered layer class, in registration order.
LAYERS = tuple(entry.cls for entry in _registered())
globals().update({cls.__name__: cls for cls in LAYERS})

__all__ = ["LAYERS", "Layer", "LinearLayer", "ElementwiseLayer", "DeltaPair", "MAXPOOL_RULES", "SOFTMAX_RULES",
           *(cls.__name__ for cls in LAYERS)]
