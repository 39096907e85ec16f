"""Input x gradient."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Target
from ..network import Network
from ._common import check_finite
from ._inputs import several_inputs
from .gradient import gradient
from .result import Attribution

__all__ = ["input_x_gradient"]


@several_inputs
def input_x_gradient(net: Network, x: ArrayLike, target: Target = None) -> Attribution:
    """phi = x * ∂t/∂x (element-wise).

    Parameters and conventions as :func:`refattr.gradient`.

    References
    ----------
    Shrikumar, Greenside, Shcherbina & Kundaje 2016, "Not Just a Black Box" (gradient * input).
    Ancona et al. 2018, "Towards better understanding of gradient-based attribution methods",
    show it equals DeepLIFT-Rescale and integrated gradients on bias-free ReLU networks with a zero
    baseline.

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential, input_x_gradient
    >>> net = Sequential([Dense([[1.0, -2.0]], [0.5]), ReLU()])
    >>> input_x_gradient(net, [[3.0, 1.0]]).values      # (3 * 1, 1 * -2)
    array([[ 3., -2.]])
    """
    grad = gradient(net, x, target)
    x_checked = net.check_input(x)
    with np.errstate(over="ignore"):
        values = x_checked * grad.values
    check_finite(values, "input_x_gradient",
                 "x * gradient exceeds float64's range (1.8e308): rescale x (the attributions scale with it)")
    return replace(grad, values=values, method="input_x_gradient")
