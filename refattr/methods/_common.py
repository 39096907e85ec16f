"""Steps every method shares: validate the call, pick the target output, start the backward pass
from it."""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError, UnsupportedLayerError
from ..network import Network
from ..validation import as_target

__all__ = ["prepare", "one_hot", "pick", "check_finite"]


def prepare(net, x, target, name: str = "x"):
    """Validate (net, x, target) and return the float64 batch and the (N,) int64 target.

    ``name`` is what error messages call x (``compare_captum`` calls it ``inputs``)."""
    if not isinstance(net, Network):
        raise UnsupportedLayerError(
            f"net: expected a refattr network (Sequential or Graph), got {type(net).__module__}.{type(net).__name__} "
            f"(use refattr.interop to convert a PyTorch or ONNX model)"
        )
    x = net.check_input(x, name)
    t = as_target(target, x.shape[0], net.n_outputs(x.shape[1:]))
    return x, t


def one_hot(target: np.ndarray, n_outputs: int) -> np.ndarray:
    """The signal that selects output target[n] of example n: (N, n_outputs)."""
    g = np.zeros((target.shape[0], n_outputs))
    g[np.arange(target.shape[0]), target] = 1.0
    return g


def pick(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """t_n = output[n, target[n]]: the scalar being explained, shape (N,)."""
    return output[np.arange(target.shape[0]), target]


def check_finite(values: np.ndarray, what: str, cause: str) -> np.ndarray:
    """Return ``values`` if every entry is finite, else raise NonFiniteError.

    A method's own arithmetic can overflow where every input and activation is finite (x times a
    large gradient, DeepLIFT's products of multipliers); ``what`` names the quantity and ``cause``
    says what overflowed and what to do.
    """
    if np.isfinite(values).all():
        return values
    bad = ~np.isfinite(values)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise NonFiniteError(
        f"{what}: {int(bad.sum())} value(s) overflowed to inf or nan (first in example {first[0]}"
        + (f", element {first[1:]}" if len(first) > 1 else "") + f") although the inputs are finite; {cause}"
    )
