"""Attributions to the neurons of a hidden value (a layer's output) instead of the input features.

Every function takes ``layer``: a value number (0 is the input, i the output of ``layers[i - 1]``)
or, for a Graph, an input or node name; it returns an :class:`Attribution` whose ``values`` have
the shape of that value, (N, *neuron_shape). The output explained is t = f(x)[target], and the
reference is x' (``baseline``), as for the input-level methods. Networks of one input.

- :func:`layer_gradient_x_activation`: a * dt/da.
- :func:`layer_integrated_gradients`, ``path="layer"`` (the default; Captum's
  LayerIntegratedGradients, read from its source: it overrides the layer's output with
  interpolated values while the model runs on x): integrated gradients on the straight line from
  a(x') to a(x) in the layer's own space, everything that bypasses the layer held at its value at
  x. Over a value every path crosses (a cut) it sums to t(x) - t(x') exactly.
  ``path="input"``: the path x' + α (x - x') in the input space, the integrand taken at the layer:
  (a(x) - a(x')) ∫ dt/da(x' + α Δx) dα (Captum's InternalInfluence times the layer's difference);
  complete only where a is linear in x along the path.
- :func:`layer_conductance` (Dhamdhere, Sundararajan & Yan 2018, "How important is a neuron?"):
  ∫ dt/da · da/dα dα along the input path: the part of t(x) - t(x') that flows through each
  neuron. Over a cut (a value, or a set of values, that every path crosses) it sums to
  t(x) - t(x'), by the chain rule inside the integral.
- :func:`layer_deeplift`: DeepLIFT's contributions of the layer's neurons (Shrikumar et al. 2017,
  eq. 1 applied at the layer; :func:`~refattr.methods.deeplift.deeplift_layers`), which sum to
  Δt over a cut.

Integrals are exact on piecewise-linear networks (``rule="exact"``: the input path is split where
any ReLU or max-pool winner changes, found by integrated gradients' exact walk; on each piece the
gradient at the layer is constant and the layer's value moves linearly), or use a fixed quadrature
rule with ``n_steps`` nodes (:mod:`refattr.quadrature`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import DeepLiftRule, MaxPoolRule, SoftmaxRule, Target
from ..errors import ArgumentError, RuleError
from ..network import Network
from .. import quadrature
from ..validation import DEFAULT_BASELINE, broadcast_baseline, refuses_baselines
from ._common import one_hot, pick, prepare
from ._inputs import several_inputs_at_layer
from ._values import gradient_at, is_cut, jvp_at, network_with_value_as_input, value_index, value_label
from .deeplift import deeplift_layers
from .integrated_gradients import integrated_gradients
from .result import Attribution

__all__ = ["layer_gradient_x_activation", "layer_integrated_gradients", "layer_conductance", "layer_deeplift"]

_PATHS = ("input", "layer")


def _setup(net, x, target, layer, baseline=None):
    x, t = prepare(net, x, target)
    v = value_index(net, layer)
    xr = None if baseline is None else broadcast_baseline(0.0 if baseline is DEFAULT_BASELINE else baseline, x)
    return x, t, v, xr


def _gap(net, x, xr, t, values) -> np.ndarray:
    delta = pick(net(x), t) - pick(net(xr), t)
    return values.reshape(values.shape[0], -1).sum(axis=1) - delta


def _at(net, points, t, v, directions=None):
    """(value v, dt/dv, and dv along ``directions``) at the rows ``points``."""
    trace = net.trace(points)
    seed = one_hot(t, trace.activations[-1].shape[1])
    grad = gradient_at(net, trace, v, seed)
    tangent = None if directions is None else jvp_at(net, trace, (directions,), v)
    return trace.activations[v], grad, tangent


def _pieces(net, x, xr, t, rule, n_steps):
    """Per example: (alphas, weights, exact) of the integral over [0, 1]: the piece midpoints and
    lengths (exact) or the rule's nodes and weights."""
    if rule == "auto":
        rule = "exact" if net.piecewise_linear else "gauss_legendre"
    if rule == "exact":
        if not net.piecewise_linear:
            raise RuleError("rule: 'exact' needs a piecewise-linear network (ReLU, max pooling and linear layers "
                            "only); use a fixed rule such as 'gauss_legendre' with n_steps")
        walk = integrated_gradients(net, x, xr, target=t, rule="exact")
        out = []
        for breaks in walk.options["breakpoints"]:
            edges = np.concatenate([[0.0], np.asarray(breaks, dtype=np.float64), [1.0]])
            out.append(((edges[:-1] + edges[1:]) / 2, np.diff(edges), edges))
        return out, "exact"
    if rule not in quadrature.RULES:
        raise RuleError(f"rule: unknown rule {rule!r}; expected 'auto', 'exact' or one of {quadrature.RULES}")
    nodes, weights = quadrature.nodes_and_weights(rule, n_steps)
    return [(nodes, weights, None)] * x.shape[0], rule


@refuses_baselines
@several_inputs_at_layer
def layer_gradient_x_activation(net: Network, x: ArrayLike, layer: Any, target: Target = None) -> Attribution:
    """a * dt/da at the layer's neurons (Captum's LayerGradientXActivation).

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, 1.0]]), ReLU(), Dense([[3.0]])])
    >>> layer_gradient_x_activation(net, [[2.0, 1.0]], layer=2).values      # relu(3) * 3
    array([[9.]])
    """
    x, t, v, _ = _setup(net, x, target, layer)
    a, grad, _ = _at(net, x, t, v)
    return Attribution(values=a * grad, method="layer_gradient_x_activation",
                       options={"layer": layer, "value": v, "target": t})


@refuses_baselines
@several_inputs_at_layer
def layer_integrated_gradients(net: Network, x: ArrayLike, layer: Any, baseline: ArrayLike = DEFAULT_BASELINE,
                               target: Target = None, rule: str = "auto", n_steps: int = 50,
                               path: str = "layer") -> Attribution:
    """Integrated gradients at a layer's neurons (see the module docstring for both paths).

    Parameters
    ----------
    layer : int or str
        The value whose neurons are attributed (0: the input, which gives input IG).
    rule : str
        ``path="layer"``: every rule of :func:`integrated_gradients` ("auto": exact on
        piecewise-linear networks). ``path="input"``: "auto" (exact on piecewise-linear networks,
        else Gauss-Legendre), "exact", or a fixed rule of :mod:`refattr.quadrature`.
    path : {"layer", "input"}
        "layer": the straight line from a(x') to a(x) in the layer's space, whatever bypasses the
        layer at its value at x (Captum's LayerIntegratedGradients). "input": (a(x) - a(x')) times
        the mean gradient at the layer along the input path.

    Returns
    -------
    Attribution
        ``values`` of the layer's shape; ``completeness_gap`` = sum - (t(x) - t(x')): rounding-level
        for ``path="layer"`` with an exact rule at a cut (elsewhere the bypassing paths are held at
        x, and the sum is t(x) minus t at x with the layer set to a(x')); not a promise of
        ``path="input"``.

    Examples
    --------
    On y = 3 relu(x1 + x2) at (2, 1) from 0, the hidden neuron carries all of Δy = 9:

    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, 1.0]]), ReLU(), Dense([[3.0]])])
    >>> layer_integrated_gradients(net, [[2.0, 1.0]], layer=2).values
    array([[9.]])
    """
    if path not in _PATHS:
        raise ArgumentError(f"path: expected one of {_PATHS} (the input space, as Captum; or the layer's own "
                            f"space), got {path!r}")
    x, t, v, xr = _setup(net, x, target, layer, baseline)
    if path == "layer":
        if v < net.n_inputs:
            result = integrated_gradients(net, x, xr, target=t, rule=rule, n_steps=n_steps)
            values = result.values
        elif v == net.n_inputs + len(net.layers) - 1:      # the output itself: Δy of the target output
            delta = net(x) - net(xr)
            values = one_hot(t, delta.shape[1]) * delta
            result = Attribution(values=values, error_estimate=np.zeros(x.shape[0]), options={"rule": "exact"})
        else:
            mixed = network_with_value_as_input(net, v)
            a, a_ref = net.trace(x).activations[v], net.trace(xr).activations[v]
            if mixed.n_inputs == 1:       # a cut: the network above the layer
                result = integrated_gradients(mixed, a, a_ref, target=t, rule=rule, n_steps=n_steps)
                values = result.values
            else:
                result = integrated_gradients(mixed, (x, a), (x, a_ref), target=t, rule=rule, n_steps=n_steps)
                values = result.values[1]
        return Attribution(values=values, completeness_gap=_gap(net, x, xr, t, values),
                           error_estimate=result.error_estimate, method="layer_integrated_gradients",
                           options={**result.options, "layer": layer, "value": v, "path": path,
                                    "cut": is_cut(net, v)})
    pieces, used = _pieces(net, x, xr, t, rule, n_steps)
    a_x, a_ref = net.trace(x).activations[v], net.trace(xr).activations[v]
    mean_grad = np.empty_like(a_x)
    for n, (alphas, weights, _) in enumerate(pieces):
        points = xr[n] + alphas.reshape((-1,) + (1,) * (x.ndim - 1)) * (x[n] - xr[n])
        _, grad, _ = _at(net, points, np.full(len(alphas), t[n]), v)
        mean_grad[n] = np.tensordot(weights, grad, axes=1)
    values = (a_x - a_ref) * mean_grad
    return Attribution(values=values, completeness_gap=_gap(net, x, xr, t, values),
                       error_estimate=np.zeros(x.shape[0]) if used == "exact" else None,
                       method="layer_integrated_gradients",
                       options={"layer": layer, "value": v, "path": path, "rule": used, "target": t,
                                "cut": is_cut(net, v)})


@refuses_baselines
@several_inputs_at_layer
def layer_conductance(net: Network, x: ArrayLike, layer: Any, baseline: ArrayLike = DEFAULT_BASELINE,
                      target: Target = None, rule: str = "auto", n_steps: int = 50) -> Attribution:
    """Conductance of a layer's neurons: ∫ dt/da · da/dα dα along x' + α (x - x') (Dhamdhere et al.
    2018), the part of t(x) - t(x') that flows through each neuron.

    Exact on piecewise-linear networks (``rule="exact"``: on each piece dt/da is constant and
    a moves linearly, so the piece contributes dt/da · (a(end) - a(start))); otherwise a fixed rule
    with da/dα from forward mode. Over a value every path crosses (a cut) the neurons' conductances
    sum to t(x) - t(x') (``completeness_gap``); over a value a skip connection bypasses, they sum to
    the part that flows through it, and the conductances of a cut of several values (the two
    branches of a residual join) sum to Δt together.

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, 1.0]]), ReLU(), Dense([[3.0]])])
    >>> layer_conductance(net, [[2.0, 1.0]], layer=1).values         # Dense output: 0 -> 3, slope 3
    array([[9.]])
    """
    x, t, v, xr = _setup(net, x, target, layer, baseline)
    pieces, used = _pieces(net, x, xr, t, rule, n_steps)
    values = np.zeros_like(net.trace(x).activations[v])
    for n, (alphas, weights, edges) in enumerate(pieces):
        shape = (-1,) + (1,) * (x.ndim - 1)
        points = xr[n] + alphas.reshape(shape) * (x[n] - xr[n])
        direction = np.broadcast_to(x[n] - xr[n], points.shape)
        targets = np.full(len(alphas), t[n])
        if edges is not None:
            _, grad, _ = _at(net, points, targets, v)
            ends = net.trace(xr[n] + edges.reshape(shape) * (x[n] - xr[n])).activations[v]
            values[n] = np.sum(grad * np.diff(ends, axis=0), axis=0)
        else:
            _, grad, tangent = _at(net, points, targets, v, np.ascontiguousarray(direction))
            values[n] = np.tensordot(weights, grad * tangent, axes=1)
    return Attribution(values=values, completeness_gap=_gap(net, x, xr, t, values),
                       error_estimate=np.zeros(x.shape[0]) if used == "exact" else None,
                       method="layer_conductance",
                       options={"layer": layer, "value": v, "rule": used, "target": t, "cut": is_cut(net, v)})


@refuses_baselines
@several_inputs_at_layer
def layer_deeplift(net: Network, x: ArrayLike, layer: Any, baseline: ArrayLike = DEFAULT_BASELINE,
                   target: Target = None, rule: DeepLiftRule = "rescale", maxpool_rule: MaxPoolRule | None = None,
                   softmax_rule: SoftmaxRule | None = None) -> Attribution:
    """DeepLIFT's contributions C_{Δa Δt} of a layer's neurons (Captum's LayerDeepLift with
    ``attribute_to_layer_input=False``); :func:`~refattr.methods.deeplift.deeplift_layers` gives their
    parts and multipliers.

    ``completeness_gap`` is summation-to-delta over the cut just after the value
    (:class:`~refattr.methods.deeplift.LayerContributions`): rounding-level at every value for
    every rule but ``maxpool_rule="gradient"``; at a value a skip connection bypasses, the cut also
    holds the bypassing values.
    """
    x, t, v, _ = _setup(net, x, target, layer)
    record = deeplift_layers(net, x, baseline, target=t, rule=rule, maxpool_rule=maxpool_rule,
                             softmax_rule=softmax_rule)[v]
    return Attribution(values=record.contributions, completeness_gap=record.completeness_gap,
                       error_estimate=np.zeros(x.shape[0]), method="layer_deeplift",
                       options={"layer": layer, "value": v, "rule": rule, "maxpool_rule": maxpool_rule,
                                "target": t, "frontier": record.frontier, "label": value_label(net, v)})
