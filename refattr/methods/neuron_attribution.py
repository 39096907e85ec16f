"""Attributions of one hidden neuron to the input features: the neuron is the output explained.

``layer`` names a hidden value as for :mod:`refattr.methods.layer_attribution` (a value number, or
a Graph's node name) and ``neuron`` one of its neurons: an int (the row-major index among the
value's neurons) or a tuple indexing one example's value (``(channel, row, column)``). Each method
is the input-level method run on the network below the value, flattened (Captum's
NeuronGradient, NeuronIntegratedGradients, NeuronDeepLift): every guarantee of the input-level
method holds for the neuron (completeness against the neuron's own difference a(x) - a(x'), exact
integrals on piecewise-linear networks).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import DeepLiftRule, MaxPoolRule
from ..errors import ArgumentError
from ..network import Network
from ..validation import DEFAULT_BASELINE, refuses_baselines
from ._values import network_below, value_index
from .deeplift import deeplift
from .gradient import gradient
from .integrated_gradients import integrated_gradients
from .result import Attribution

__all__ = ["neuron_gradient", "neuron_integrated_gradients", "neuron_deeplift"]


def _below(net: Network, layer: Any, neuron: Any, x: Any) -> tuple[Network, int]:
    """(network from the inputs to the value, flattened; the neuron's output index)."""
    v = value_index(net, layer)
    below = network_below(net, v)
    xs = x if isinstance(x, tuple) else (x,)
    if not all(np.ndim(a) >= 2 for a in xs):
        raise ArgumentError("x: expected a batch (N, *example_shape) for every input, to read the value's shape")
    example = tuple(np.shape(a)[1:] for a in xs)
    shape = net._value_shapes(example[0] if net.n_inputs == 1 else example)[v][1]
    size = int(np.prod(shape))
    if isinstance(neuron, (bool, np.bool_)):
        raise ArgumentError(f"neuron: expected an int or a tuple of ints, got {neuron!r}")
    if isinstance(neuron, numbers.Integral):
        index = int(neuron)
        if not 0 <= index < size:
            raise ArgumentError(f"neuron: {index} is out of range; the value has {size} neurons (shape {shape})")
        return below, index
    try:
        return below, int(np.ravel_multi_index(tuple(int(i) for i in neuron), shape))
    except (TypeError, ValueError):
        raise ArgumentError(f"neuron: expected an int below {size} or a tuple indexing one example's value of "
                            f"shape {shape}, got {neuron!r}") from None


def _named(result: Attribution, method: str, layer: Any, neuron: Any) -> Attribution:
    return Attribution(values=result.values, completeness_gap=result.completeness_gap,
                       error_estimate=result.error_estimate, method=method,
                       options={**result.options, "layer": layer, "neuron": neuron},
                       multipliers=result.multipliers)


def neuron_gradient(net: Network, x: ArrayLike, layer: Any, neuron: Any) -> Attribution:
    """d a_neuron / dx: the gradient of one hidden neuron with respect to the input.

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, -2.0], [0.5, 0.5]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> neuron_gradient(net, [[3.0, 1.0]], layer=2, neuron=0).values   # relu(x1 - 2 x2), open
    array([[ 1., -2.]])
    """
    below, index = _below(net, layer, neuron, x)
    return _named(gradient(below, x, target=index), "neuron_gradient", layer, neuron)


@refuses_baselines
def neuron_integrated_gradients(net: Network, x: ArrayLike, layer: Any, neuron: Any,
                                baseline: ArrayLike = DEFAULT_BASELINE, rule: str = "auto", n_steps: int = 50,
                                baseline_samples: ArrayLike | None = None) -> Attribution:
    """Integrated gradients of one hidden neuron: sums to a(x) - a(x') (``completeness_gap``);
    every rule of :func:`~refattr.methods.integrated_gradients.integrated_gradients`."""
    below, index = _below(net, layer, neuron, x)
    result = integrated_gradients(below, x, baseline, target=index, rule=rule, n_steps=n_steps,
                                  baseline_samples=baseline_samples)
    return _named(result, "neuron_integrated_gradients", layer, neuron)


@refuses_baselines
def neuron_deeplift(net: Network, x: ArrayLike, layer: Any, neuron: Any, baseline: ArrayLike = DEFAULT_BASELINE,
                    rule: DeepLiftRule = "rescale", maxpool_rule: MaxPoolRule | None = None,
                    baseline_samples: ArrayLike | None = None) -> Attribution:
    """DeepLIFT contributions of the input features to one hidden neuron's difference from
    reference; they sum to a(x) - a(x') (``completeness_gap``)."""
    below, index = _below(net, layer, neuron, x)
    result = deeplift(below, x, baseline, target=index, rule=rule, maxpool_rule=maxpool_rule,
                      baseline_samples=baseline_samples)
    return _named(result, "neuron_deeplift", layer, neuron)
