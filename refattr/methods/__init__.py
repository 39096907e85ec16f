"""Attribution methods, one file each, and their registry."""

from .deconvnet import deconvnet as deconvnet
from .deeplift import LayerContributions as LayerContributions, deeplift as deeplift, deeplift_layers as deeplift_layers
from .gradient import gradient as gradient
from .guided_backprop import guided_backprop as guided_backprop
from .integrated_gradients import integrated_gradients as integrated_gradients
from .input_x_gradient import input_x_gradient as input_x_gradient
from .result import Attribution as Attribution

#: name -> function, for every method; the contract tests walk this mapping.
METHODS = {
    "gradient": gradient,
    "input_x_gradient": input_x_gradient,
    "guided_backprop": guided_backprop,
    "deconvnet": deconvnet,
    "integrated_gradients": integrated_gradients,
    "deeplift": deeplift,
}

#: The methods that take no baseline (the gradient family).
GRADIENT_FAMILY = ("gradient", "input_x_gradient", "guided_backprop", "deconvnet")

__all__ = ["METHODS", "GRADIENT_FAMILY", "Attribution", "deeplift", "deeplift_layers", "LayerContributions", "integrated_gradients", "gradient", "input_x_gradient", "guided_backprop", "deconvnet"]
