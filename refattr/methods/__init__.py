"""Attribution methods, one file each, and their registry."""

from .deconvnet import deconvnet as deconvnet
from .deeplift import LayerContributions as LayerContributions, deeplift as deeplift, deeplift_layers as deeplift_layers
from .gradient import gradient as gradient
from .hypothetical import (
    HypotheticalContributions as HypotheticalContributions,
    hypothetical_contributions as hypothetical_contributions,
)
from .guided_backprop import guided_backprop as guided_backprop
from .integrated_gradients import integrated_gradients as integrated_gradients
from .input_x_gradient import input_x_gradient as input_x_gradient
from .result import Attribution as Attribution
from .layer_attribution import (layer_conductance as layer_conductance, layer_deeplift as layer_deeplift,
                                layer_gradient_x_activation as layer_gradient_x_activation,
                                layer_integrated_gradients as layer_integrated_gradients)
from .neuron_attribution import (neuron_deeplift as neuron_deeplift, neuron_gradient as neuron_gradient,
                                 neuron_integrated_gradients as neuron_integrated_gradients)

#: name -> function, for every method; the contract tests walk this mapping.
METHODS = {
    "gradient": gradient,
    "input_x_gradient": input_x_gradient,
    "guided_backprop": guided_backprop,
    "deconvnet": deconvnet,
    "integrated_gradients": integrated_gradients,
    "deeplift": deeplift,
}

#: Attributions to a hidden layer's neurons, and of one hidden neuron (their own signatures: a
#: ``layer``, and for the neuron methods a ``neuron``).
LAYER_METHODS = ("layer_gradient_x_activation", "layer_integrated_gradients", "layer_conductance", "layer_deeplift",
                 "neuron_gradient", "neuron_integrated_gradients", "neuron_deeplift")

#: The methods that take no baseline (the gradient family).
GRADIENT_FAMILY = ("gradient", "input_x_gradient", "guided_backprop", "deconvnet")

__all__ = ["METHODS", "GRADIENT_FAMILY", "LAYER_METHODS", *LAYER_METHODS, "Attribution", "hypothetical_contributions", "HypotheticalContributions", "deeplift", "deeplift_layers", "LayerContributions", "integrated_gradients", "gradient", "input_x_gradient", "guided_backprop", "deconvnet"]
