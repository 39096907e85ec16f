"""Captum 0.9.0's DeepLift rule for ``nn.Softmax``, reproduced in float64 NumPy for comparisons.

From ``captum/attr/_core/deep_lift.py`` (function ``softmax``, hooked for modules whose exact type
is ``nn.Softmax``): the model runs on the inputs and the baselines concatenated along the batch
axis (the "doubled batch", inputs first); the hook receives the module's input and output on that
batch, the gradient arriving at its output (``grad_output``) and autograd's gradient at its input
(``grad_input`` = J^T grad_output, row by row), and returns, with Δx and Δs the differences of the
input half from the baseline half repeated for both halves::

    q = grad_input                      where |Δx| < eps (eps = 1e-10)
        grad_output * Δs / Δx           elsewhere (an element-wise quotient, as if softmax were
                                        element-wise)
    new grad_input = q - sum(q) / q.size

``sum(q) / q.size`` is the mean over *every element of the doubled batch*: all examples, inputs and
baselines together. One example's multipliers therefore depend on its batchmates (a batch-dependence
defect: the same example gives another attribution in another batch), and summation-to-delta does
not hold in general. refattr's own rules (docs/softmax.md) never do this; this module exists so that
:mod:`refattr.interop.compare` can tell Captum's convention from an unexplained difference.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..layers._softmax_math import softmax

__all__ = ["captum_softmax_grad_input"]

CAPTUM_EPS = 1e-10


def captum_softmax_grad_input(x: np.ndarray, x_ref: np.ndarray, grad_output: np.ndarray, eps: float = CAPTUM_EPS,
                              dim: int = 1, grad_input: np.ndarray | None = None) -> np.ndarray:
    """What Captum 0.9.0's softmax hook returns as the gradient at the module's input.

    Parameters
    ----------
    x, x_ref : ndarray, shape (N, ...)
        The module's input on the inputs and on the baselines (rows 0..N-1 and N..2N-1 of the doubled
        batch).
    grad_output : ndarray, shape (2N, ...)
        The gradient arriving at the module's output on the doubled batch (for a network ending in
        the softmax: the one-hot target on both halves).
    eps : float
        Captum's ``DeepLift(..., eps=1e-10)`` threshold below which the gradient is used.
    dim : int
        The softmax's ``dim`` (the batch axis being 0), for the forward pass and autograd's gradient.
    grad_input : ndarray, shape (2N, ...), optional
        The gradient of the module's input tensor as the hook receives it (the sum over every module
        that reads the tensor). Default: autograd's gradient through the softmax alone, which it is
        when nothing else reads the softmax's input.

    Returns
    -------
    ndarray, shape (2N, ...)
        The new gradient at the module's input on the doubled batch; rows 0..N-1 are what flows on
        to the inputs' attributions, (x - x') times the gradient at the network input.
    """
    x, x_ref, grad_output = (np.asarray(a, dtype=np.float64) for a in (x, x_ref, grad_output))
    if x.shape != x_ref.shape or grad_output.shape != (2 * x.shape[0],) + x.shape[1:]:
        raise ShapeError(f"captum_softmax_grad_input: x {x.shape} and x_ref {x_ref.shape} must have one shape and "
                         f"grad_output {grad_output.shape} must be the doubled batch {(2 * x.shape[0],) + x.shape[1:]}"
                         f"; pass the gradient at the softmax's output for the inputs, then the baselines")
    doubled = np.concatenate([x, x_ref])
    axis = dim + doubled.ndim if dim < 0 else dim
    s = softmax(doubled, axis)
    if grad_input is None:
        grad_input = s * (grad_output - (grad_output * s).sum(axis=axis, keepdims=True))    # autograd's J^T g
    n = x.shape[0]
    delta_in = np.concatenate(2 * [x - x_ref])
    delta_out = np.concatenate(2 * [s[:n] - s[n:]])
    quotient = np.zeros_like(delta_in)
    small = np.abs(delta_in) < eps
    np.divide(grad_output * delta_out, delta_in, out=quotient, where=~small)   # torch: g * Δs / Δx, left to right
    unnormalised = np.where(small, grad_input, quotient)
    return unnormalised - unnormalised.sum() * 1 / unnormalised.size
