"""Element-wise activations: each is f and a stable divided difference of f.

Everything else (VJP, DeepLIFT Rescale and RevealCancel) is derived once in
:class:`~refattr.layers.base.ElementwiseLayer`. ``secant(a, h)`` is (f(a + h) - f(a)) / h without
cancellation, equal to f'(a) at h == 0; it is tested to 1e-13 relative against mpmath.

Each activation is one module (:mod:`refattr.layers.relu`, :mod:`~refattr.layers.tanh`,
:mod:`~refattr.layers.sigmoid`, :mod:`~refattr.layers.swish`); this module re-exports their
public names, importable from here as before.
"""

from .relu import ReLU as ReLU
from .relu import relu_backward_signal as relu_backward_signal
from .relu import relu_forward_along as relu_forward_along
from .relu import relu_next_kink as relu_next_kink
from .relu import relu_snap_to_kink as relu_snap_to_kink
from .sigmoid import Sigmoid as Sigmoid
from .sigmoid import sigmoid as sigmoid
from .sigmoid import sigmoid_derivative as sigmoid_derivative
from .sigmoid import sigmoid_secant as sigmoid_secant
from .swish import Swish as Swish
from .swish import swish as swish
from .swish import swish_derivative as swish_derivative
from .swish import swish_secant as swish_secant
from .tanh import Tanh as Tanh
from .tanh import tanh as tanh
from .tanh import tanh_derivative as tanh_derivative
from .tanh import tanh_secant as tanh_secant

__all__ = [
    "ReLU", "Tanh", "Sigmoid", "Swish", "tanh_secant", "sigmoid_secant", "swish_secant",
    "tanh", "sigmoid", "swish", "tanh_derivative", "sigmoid_derivative", "swish_derivative",
    "relu_forward_along", "relu_next_kink", "relu_snap_to_kink", "relu_backward_signal",
]
