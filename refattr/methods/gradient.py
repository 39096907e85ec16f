"""Gradient (saliency) and the backward pass the whole gradient family shares."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import GradientRule, Target
from ..network import Network
from ._common import one_hot, prepare
from ._inputs import several_inputs
from .result import Attribution

__all__ = ["gradient", "backpropagate"]


def backpropagate(net: Network, x: ArrayLike, target: Target, rule: GradientRule, method: str) -> Attribution:
    """Run the gradient-family backward pass ``rule`` from the target output to the input.

    Large batches go through in passes of ``net.pass_size`` examples (whose activations fit in
    the CPU caches); each example's arithmetic is the same in any pass. The forward pass stops
    where the backward pass stops reading values (``net.trace(x, outputs=False)``).
    """
    x, t = prepare(net, x, target)
    size = net.pass_size(x.shape[1:])
    n_outputs = net.n_outputs(x.shape[1:])
    if x.shape[0] <= size:
        trace = net.trace(x, outputs=False)
        values = net.backward(one_hot(t, n_outputs), trace, rule=rule)
    else:
        values = np.empty_like(x)
        for start in range(0, x.shape[0], size):
            part = slice(start, min(start + size, x.shape[0]))
            trace = net.trace(x[part], outputs=False)
            values[part] = net.backward(one_hot(t[part], n_outputs), trace, rule=rule)
    return Attribution(values=values, method=method, options={"target": t})


@several_inputs
def gradient(net: Network, x: ArrayLike, target: Target = None) -> Attribution:
    """Saliency: phi = ∂t/∂x, signed (no absolute value).

    Parameters
    ----------
    net : Sequential or Graph
    x : array_like, shape (N, *example_shape)
        Converted to float64; NaN or Inf raise NonFiniteError.
    target : int, int array of shape (N,), or None
        Which output t_n = f(x_n)[target_n] to explain; None when the network has one output.

    Returns
    -------
    Attribution
        ``values`` ∂t/∂x of x's shape; ``completeness_gap`` and ``error_estimate`` are None.

    Notes
    -----
    At a ReLU kink the derivative is taken as 0 (ReLU'(0) = 0); at a max-pool tie the first
    winner in row-major order gets the whole gradient.

    References
    ----------
    Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks", eq. (3) (without
    the absolute value, which is a visualisation choice).

    Examples
    --------
    The tutorial's saturation example f(x) = 1 - max(0, 1 - x): the gradient is 1 at x = 0.5 and 0
    at x = 2.

    >>> from refattr import Dense, ReLU, Sequential, gradient
    >>> f = Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])
    >>> gradient(f, [[0.5], [2.0]]).values
    array([[1.],
           [0.]])
    """
    return backpropagate(net, x, target, "gradient", "gradient")
