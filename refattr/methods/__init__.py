"""Attribution methods, one file each, and their registry."""

from .deconvnet import deconvnet as deconvnet
from .gradient import gradient as gradient
from .guided_backprop import guided_backprop as guided_backprop
from .input_x_gradient import input_x_gradient as input_x_gradient
from .result import Attribution as Attribution

#: name -> function, for every method; the contract tests walk this mapping.
METHODS = {
    "gradient": gradient,
    "input_x_gradient": input_x_gradient,
    "guided_backprop": guided_backprop,
    "deconvnet": deconvnet,
}

__all__ = ["METHODS", "Attribution", "gradient", "input_x_gradient", "guided_backprop", "deconvnet"]
