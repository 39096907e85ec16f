"""refattr: a float64 reference implementation of neural-network feature attribution.

Every number traces to an equation; other libraries' attributions are diffed against it.
See README.md for the notation table and conventions.
"""

from .errors import (
    ArgumentError as ArgumentError,
    ImportMismatchError as ImportMismatchError,
    NonFiniteError as NonFiniteError,
    RefattrError as RefattrError,
    ResourceError as ResourceError,
    RuleError as RuleError,
    ShapeError as ShapeError,
    TargetError as TargetError,
    UnsafeFileError as UnsafeFileError,
    UnsupportedLayerError as UnsupportedLayerError,
)
from .layers import (
    AvgPool2D as AvgPool2D,
    Conv2D as Conv2D,
    Dense as Dense,
    Flatten as Flatten,
    MaxPool2D as MaxPool2D,
    ReLU as ReLU,
    Sigmoid as Sigmoid,
    Swish as Swish,
    Tanh as Tanh,
)
from .methods import (
    Attribution as Attribution,
    deconvnet as deconvnet,
    deeplift as deeplift,
    deeplift_layers as deeplift_layers,
    gradient as gradient,
    guided_backprop as guided_backprop,
    hypothetical_contributions as hypothetical_contributions,
    input_x_gradient as input_x_gradient,
    integrated_gradients as integrated_gradients,
    layer_conductance as layer_conductance,
    layer_deeplift as layer_deeplift,
    layer_gradient_x_activation as layer_gradient_x_activation,
    layer_integrated_gradients as layer_integrated_gradients,
    neuron_deeplift as neuron_deeplift,
    neuron_gradient as neuron_gradient,
    neuron_integrated_gradients as neuron_integrated_gradients,
)
from .graph import Graph as Graph
from .network import Sequential as Sequential

from . import layers as _layers

__version__ = "0.1.0"

__all__ = [
    "Sequential", "Graph", "Dense", "Conv2D", "ReLU", "Tanh", "Sigmoid", "Swish", "Flatten", "AvgPool2D", "MaxPool2D",
    "Attribution", "gradient", "input_x_gradient", "guided_backprop", "deconvnet", "deeplift", "deeplift_layers", "integrated_gradients",
    "hypothetical_contributions",
    "layer_gradient_x_activation", "layer_integrated_gradients", "layer_conductance", "layer_deeplift",
    "neuron_gradient", "neuron_integrated_gradients", "neuron_deeplift",
    "RefattrError", "ShapeError", "NonFiniteError", "TargetError", "RuleError", "UnsupportedLayerError",
    "ArgumentError", "ResourceError", "UnsafeFileError", "ImportMismatchError",
]
# every registered layer is exported, so that a layer added as one file needs no line here
globals().update({cls.__name__: cls for cls in _layers.LAYERS})
__all__ += [cls.__name__ for cls in _layers.LAYERS if cls.__name__ not in __all__]
