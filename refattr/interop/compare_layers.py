"""Captum's layer and neuron methods against refattr's: ``compare_captum_layer``.

The layer is named on refattr's side (a node name of the network, as :func:`~refattr.interop.from_torch`
names a traced module's calls, or a value number); the torch submodule Captum attributes to is the
one that computes that value. Every difference is classified as :func:`~refattr.interop.compare_captum`
classifies them (rounding, a documented convention, the peer's approximation error, a known bug,
unexplained), with Captum's computation reproduced in float64 in
:mod:`refattr.interop.captum_conventions`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable

import numpy as np
from numpy.typing import ArrayLike

from .. import __version__
from .._typing import Target, TorchModule
from ..errors import ArgumentError, RuleError
from ..graph import Graph, pack, unpack
from ..methods._common import one_hot, prepare
from ..methods._values import network_below, value_index
from ..layers.max_pool import is_max_pooling
from ..methods.layer_attribution import (layer_conductance, layer_deeplift, layer_gradient_x_activation,
                                         layer_integrated_gradients)
from ..methods.neuron_attribution import neuron_deeplift, neuron_gradient, neuron_integrated_gradients
from ..network import Network, Sequential
from ..validation import broadcast_baseline
from . import captum_conventions as cc
from .compare import (FLOAT64_RTOL, Cause, MethodComparison, Report, _check_rtol, _classify, _deeplift_chain,
                      _load_captum, _numpy, _packed, relative_difference)

__all__ = ["compare_captum_layer", "LAYER_METHODS", "NEURON_METHODS"]

LAYER_METHODS = ("LayerIntegratedGradients", "LayerConductance", "LayerGradientXActivation", "LayerDeepLift")
NEURON_METHODS = ("NeuronGradient", "NeuronIntegratedGradients", "NeuronDeepLift")


def _models(model, inputs=None):
    """(refattr Graph, float64 torch module, node name -> torch submodule, function node numbers);
    a torch module is imported with the example shapes of ``inputs`` (a tuple: one per input)."""
    from .torch_graph import graph_to_torch
    from .torch_model import require_torch

    torch = require_torch()
    if isinstance(model, Network):
        net = Graph.from_sequential(model) if isinstance(model, Sequential) else model
        peer = graph_to_torch(net)
        return net, peer, {node.name: peer.node_module(node.name) for node in net.nodes
                           if peer.has_node_module(node.name)}, ()
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"model: expected a refattr network or a torch.nn.Module, got {type(model).__name__}")
    from .torch_fx import _trace, from_traced, function_node_names

    peer = copy.deepcopy(model).double().eval()
    shapes = ([np.shape(a)[1:] for a in inputs] if isinstance(inputs, tuple)
              else None if inputs is None else np.shape(inputs)[1:])
    net = from_traced(model, input_shape=shapes)
    modules = {}
    for node in _trace(model).nodes:
        if node.op == "call_module":
            modules[node.name] = peer.get_submodule(node.target)
    names = function_node_names(model)
    functions = tuple(j for j, node in enumerate(net.nodes) if node.name.split(".")[0] in names)
    return net, peer, modules, functions


def _ig_causes(reproduction, float64, reference, n_steps):
    """The two parts of a Captum Gauss-Legendre integral's difference from refattr's reference."""
    return [Cause("convention", "Captum rounds the step weights to float32 (torch default dtype), even for float64 "
                                "inputs", relative_difference(reproduction, float64)),
            Cause("approximation", f"gausslegendre with {n_steps} steps vs the reference integral",
                  relative_difference(float64, reference.values))]


def _rescale_cause(pure, reference, what, rtol):
    """The last link of a DeepLift chain: Rescale as reproduced here against refattr's own method."""
    d = relative_difference(pure, reference)
    return Cause("rounding" if d <= rtol else "unexplained",
                 f"Rescale reproduced in the comparison layer vs refattr's {what}", d)


def _pool_rule(net):
    return "delta_routing" if any(is_max_pooling(layer) for layer in net.layers) else None


def _submodule(net, modules, v):
    names = net.value_names()
    name = names[v]
    module = modules.get(name)
    if module is None:
        raise ArgumentError(f"layer: {name!r} is not computed by a module of the torch model (a function or operator "
                            f"in forward, a join, or a layer folded with the BatchNorm after it), so Captum's layer "
                            f"methods cannot attribute to it; choose a value a module computes: "
                            f"{sorted(n for n in names if n in modules)}")
    return module


def compare_captum_layer(model: TorchModule | Network, inputs: ArrayLike, layer: Any, baseline: ArrayLike = 0.0,
                         targets: Target = None, *, neuron: Any = None, methods: Iterable[str] | None = None,
                         n_steps: int = 50, attribute_to_layer_input: bool = False, multiply_by_inputs: bool = True,
                         rtol: float = FLOAT64_RTOL) -> Report:
    """Run Captum's layer (and, with ``neuron``, neuron) methods and refattr's on the same model.

    Parameters
    ----------
    model : refattr Sequential or Graph, or a torch.nn.Module that torch.fx can trace
        A model of several inputs takes tuples for ``inputs`` and ``baseline`` (one entry per input);
        Captum gets tuples, refattr the packed graph, and attributions to the inputs are compared
        packed.
    layer : str or int
        The value attributed to: a node name (a traced module's call, e.g. ``"layer1_0_relu"``) or a
        value number; a value no module computes (a join, a function) is refused by name.
    neuron : int or tuple, optional
        For the neuron methods: the neuron of ``layer`` (a tuple indexing one example's value).
    methods : iterable of str, optional
        Some of :data:`LAYER_METHODS` and :data:`NEURON_METHODS` (default: the layer methods, and the
        neuron methods when ``neuron`` is given).
    attribute_to_layer_input : bool
        Captum's option of the same name: attribute to the value the layer's module reads (its
        input) instead of the one it computes; refattr's reference is then taken at that value
        (for the neuron methods too: ``neuron`` indexes the module's input). Captum's LayerDeepLift
        there multiplies by the gradient of the clone the module runs on, which skips the module's
        own DeepLIFT rule: reproduced and reported as a peer bug. Refused where another module
        reads the same input, and for NeuronDeepLift.
    multiply_by_inputs : bool
        Captum's constructor flag. False: LayerGradientXActivation returns the gradient at the
        layer, NeuronDeepLift the neuron's multipliers at the input (compared where Δx != 0; at
        Δx == 0 the multiplier is undefined, a named convention), NeuronIntegratedGradients the
        neuron's mean gradient along the path and LayerIntegratedGradients the mean gradient at the
        layer along the layer's path (both exact on piecewise-linear networks, else skipped);
        LayerConductance and LayerDeepLift are then skipped with a note.

    Returns
    -------
    Report
        References: :func:`~refattr.methods.layer_attribution.layer_integrated_gradients`
        (``path="layer"``, Captum's semantics, exact on piecewise-linear networks),
        :func:`~refattr.methods.layer_attribution.layer_conductance` (exact),
        :func:`~refattr.methods.layer_attribution.layer_gradient_x_activation`, and the neuron methods.
        and :func:`~refattr.methods.layer_attribution.layer_deeplift` / neuron_deeplift (Rescale,
        ``maxpool_rule="delta_routing"`` where the network pools; Captum's DeepLift hooks reproduced
        as for :func:`~refattr.interop.compare_captum`).
        Conventions named: Captum's float32 step weights; LayerConductance's sum over its
        Gauss-Legendre nodes without the weights, which leaves out the path before the first node and
        after the last (an approximation that does not converge like the rule's own order).
    """
    rtol = _check_rtol(rtol)
    captum, cattr = _load_captum()
    from .torch_model import require_torch

    torch = require_torch()
    inputs = tuple(_numpy(a) for a in inputs) if isinstance(inputs, tuple) else _numpy(inputs)
    net, peer, modules, functions = _models(model, inputs)
    baseline = tuple(_numpy(b) for b in baseline) if isinstance(baseline, tuple) else _numpy(baseline)
    v = value_index(net, layer)
    module = _submodule(net, modules, v)
    shapes = None
    if net.n_inputs > 1:
        # several inputs: refattr runs on the packed graph (values keep their names, value v is v + 1
        # there), Captum on tuples; attributions to the inputs are compared packed
        net, inputs, baseline, _, functions, shapes = _packed(net, inputs, baseline, None, functions)
        v += 1
    x, t = prepare(net, inputs, targets, name="inputs")
    xr = broadcast_baseline(baseline, x)
    if attribute_to_layer_input:      # the value the module reads: its node's (single) input
        reads = net.node_args[v - net.n_inputs]
        if len(reads) != 1:
            raise ArgumentError(f"attribute_to_layer_input: {net.value_names()[v]!r} reads {len(reads)} values")
        shared = sum(reads[0] in args for args in net.node_args) > 1
        neuron_deep = [m for m in (methods or ()) if m == "NeuronDeepLift"]
        if shared or neuron_deep:
            raise ArgumentError(
                f"attribute_to_layer_input: supported where the module's input is read by that module alone "
                f"(Captum then overrides it for the module only), for every layer method and the neuron gradient "
                f"and integral methods; "
                f"{'the input is shared' if shared else 'NeuronDeepLift is not reproduced there yet'}: "
                f"attribute to the value's producer with attribute_to_layer_input=False instead")
        reader, v = v - net.n_inputs, reads[0]
    layer_flag = {"attribute_to_layer_input": True} if attribute_to_layer_input else {}
    neuron_flag = {"attribute_to_neuron_input": True} if attribute_to_layer_input else {}
    chosen = list(methods) if methods is not None else list(LAYER_METHODS) + (list(NEURON_METHODS) if neuron is not
                                                                              None else [])
    unknown = [m for m in chosen if m not in LAYER_METHODS + NEURON_METHODS]
    if unknown:
        raise RuleError(f"methods: unknown {unknown}; expected some of {LAYER_METHODS + NEURON_METHODS}")
    if neuron is None and any(m in NEURON_METHODS for m in chosen):
        raise ArgumentError("neuron: the neuron methods need a neuron of the layer (an int or a tuple index)")
    n_out = net(x).shape[1]
    torch_target = None if targets is None and n_out == 1 else torch.from_numpy(t)
    if shapes is None:
        tx, tb = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(xr.copy())
    else:
        tx = tuple(torch.from_numpy(a).requires_grad_() for a in unpack(x, shapes))
        tb = tuple(torch.from_numpy(a) for a in unpack(xr, shapes))
    report = Report(peer=f"captum {captum.__version__} (torch {torch.__version__})", reference=f"refattr {__version__}",
                    n_examples=x.shape[0], rtol=rtol, forward_max_rel_diff=None, forward_rtol=None, notes=[],
                    peer_label="Captum's")
    name = f"captum {captum.__version__}"

    def peer_run(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
        if isinstance(out, tuple):         # one attribution per input: compared packed
            return pack([o.detach().cpu().numpy().astype(np.float64) for o in out])
        return out.detach().cpu().numpy().astype(np.float64)

    selector = below = index = None
    if neuron is not None:           # Captum's neuron_selector (a tuple), the network below the value, the flat index
        neuron_shape = net.trace(x[:1]).activations[v].shape[1:]
        selector = neuron if isinstance(neuron, tuple) else tuple(
            int(i) for i in np.unravel_index(int(neuron), neuron_shape))
        below = network_below(net, v)
        index = int(np.ravel_multi_index(selector, neuron_shape))
    for method in chosen:
        entry = MethodComparison(f"{method}[{net.value_names()[v]}]", name, "", "agree")
        if not multiply_by_inputs and method != "NeuronGradient":      # NeuronGradient has no such flag
            entry.method += "[multiply_by_inputs=False]"
            report.entries.append(entry)
            _compare_unmultiplied(entry, method, cattr, peer, module, net, below, x, xr, t, v, index, selector, tx, tb,
                                  torch_target, functions, n_steps, layer_flag, neuron_flag, peer_run, rtol)
            continue
        if method == "LayerGradientXActivation":
            entry.reference = "refattr layer_gradient_x_activation"
            peer_values = peer_run(lambda: cattr.LayerGradientXActivation(peer, module).attribute(tx, target=torch_target,
                                                                                    **layer_flag))
            _classify(entry, peer_values, layer_gradient_x_activation(net, x, v, t).values, None, [], rtol, "")
        elif method == "LayerIntegratedGradients":
            ref = layer_integrated_gradients(net, x, v, xr, target=t, rule="auto", path="layer")
            entry.reference = f"refattr layer_integrated_gradients(path='layer', rule={ref.options['rule']!r})"
            peer_values = peer_run(lambda: cattr.LayerIntegratedGradients(peer, module).attribute(
                tx, tb, target=torch_target, n_steps=n_steps, **layer_flag))
            reproduction = cc.captum_layer_integrated_gradients(net, x, xr, t, v, n_steps=n_steps)
            float64 = cc.captum_layer_integrated_gradients(net, x, xr, t, v, n_steps=n_steps, float32=False)
            _classify(entry, peer_values, ref.values, reproduction, _ig_causes(reproduction, float64, ref, n_steps),
                      rtol, "Captum's LayerIntegratedGradients")
        elif method == "LayerConductance":
            ref = layer_conductance(net, x, v, xr, target=t, rule="auto", n_steps=max(n_steps, 64))
            entry.reference = f"refattr layer_conductance(rule={ref.options['rule']!r})"
            peer_values = peer_run(lambda: cattr.LayerConductance(peer, module).attribute(
                tx, tb, target=torch_target, n_steps=n_steps, **layer_flag))
            reproduction = cc.captum_layer_conductance(net, x, xr, t, v, n_steps=n_steps)
            components = [Cause("approximation", f"Captum's LayerConductance sums dt/da times the layer's change "
                                                 f"between consecutive Gauss-Legendre nodes ({n_steps + 1} nodes, "
                                                 f"their weights unused): it leaves out the path before the first "
                                                 f"node and after the last", relative_difference(reproduction,
                                                                                                  ref.values))]
            _classify(entry, peer_values, ref.values, reproduction, components, rtol,
                      "Captum's LayerConductance")
        elif method == "LayerDeepLift":
            entry.reference = "refattr layer_deeplift(rule='rescale')"
            ref = layer_deeplift(net, x, v, xr, target=t, maxpool_rule=_pool_rule(net)).values
            peer_values = peer_run(lambda: cattr.LayerDeepLift(peer, module).attribute(tx, tb, target=torch_target,
                                                                                       **layer_flag))
            reproduction, components, pure = _deeplift_chain(net, x, xr, t, functions=functions, at_value=v)
            components.append(_rescale_cause(pure, ref, "layer_deeplift", rtol))
            if attribute_to_layer_input:
                clone = cc.captum_deeplift(net, x, xr, t, function_nodes=functions, at_input_of=reader)
                components.insert(0, Cause(
                    "peer_bug", "Captum bug (no Captum issue found): LayerDeepLift with attribute_to_layer_input=True "
                                "multiplies the input's difference by the gradient of the clone the module runs on, "
                                "the module's plain gradient, so the module's own DeepLIFT rule is skipped and "
                                "summation-to-delta breaks", relative_difference(clone, reproduction),
                    "Captum's LayerDeepLift attribute_to_layer_input, no Captum issue filed"))
                reproduction = clone
            _classify(entry, peer_values, ref, reproduction, components, rtol, "Captum's LayerDeepLift convention")
        elif method == "NeuronDeepLift":
            entry.reference = "refattr neuron_deeplift(rule='rescale')"
            ref = neuron_deeplift(net, x, v, neuron, xr, maxpool_rule=_pool_rule(below)).values
            peer_values = peer_run(lambda: cattr.NeuronDeepLift(peer, module).attribute(tx, selector, tb,
                                                                                        **neuron_flag))
            written = {net.nodes[j].name for j in functions}
            below_functions = tuple(j for j, node in enumerate(below.nodes) if node.name in written)
            reproduction, components, pure = _deeplift_chain(below, x, xr, np.full(x.shape[0], index),
                                                             functions=below_functions)
            components.append(_rescale_cause(pure, ref, "neuron_deeplift", rtol))
            _classify(entry, peer_values, ref, reproduction, components, rtol, "Captum's NeuronDeepLift convention")
        elif method == "NeuronGradient":
            entry.reference = "refattr neuron_gradient"
            peer_values = peer_run(lambda: cattr.NeuronGradient(peer, module).attribute(tx, selector, **neuron_flag))
            _classify(entry, peer_values, neuron_gradient(net, x, v, neuron).values, None, [], rtol, "")
        else:
            ref = neuron_integrated_gradients(net, x, v, neuron, xr)
            entry.reference = f"refattr neuron_integrated_gradients(rule={ref.options.get('rule')!r})"
            peer_values = peer_run(lambda: cattr.NeuronIntegratedGradients(peer, module).attribute(
                tx, selector, tb, n_steps=n_steps, **neuron_flag))
            reproduction = cc.captum_integrated_gradients(below, x, xr, index, "gausslegendre", n_steps)
            float64 = cc.captum_integrated_gradients(below, x, xr, index, "gausslegendre", n_steps, float32=False)
            _classify(entry, peer_values, ref.values, reproduction, _ig_causes(reproduction, float64, ref, n_steps),
                      rtol, "Captum's NeuronIntegratedGradients")
        report.entries.append(entry)
    return report


def _layer_mean_gradient(net, x, xr, t, v):
    """The exact mean of dt/da along the straight line a(x') -> a(x) in the layer's space, with what
    bypasses the layer held at x (Captum's LayerIntegratedGradients path); None where the network
    above the layer is not piecewise linear (or ``v`` is an input or the output)."""
    from ..methods._values import network_with_value_as_input
    from .compare import _exact_mean_gradient

    if v < net.n_inputs or v == net.n_inputs + len(net.layers) - 1:
        return None
    mixed = network_with_value_as_input(net, v)
    if not mixed.piecewise_linear:
        return None
    a_x, a_ref = net.trace(x).activations[v], net.trace(xr).activations[v]
    return _exact_mean_gradient(mixed, a_x, a_ref, t, held=None if mixed.n_inputs == 1 else x)


def _compare_unmultiplied(entry, method, cattr, peer, module, net, below, x, xr, t, v, index, selector, tx, tb,
                          torch_target, functions, n_steps, layer_flag, neuron_flag, peer_run, rtol):
    """One entry of :func:`compare_captum_layer` with ``multiply_by_inputs=False``."""
    from ..methods._values import gradient_at
    from .compare import _compare_mean_gradient_values, _undefined_multipliers

    layer_mean = _layer_mean_gradient(net, x, xr, t, v) if method == "LayerIntegratedGradients" else None
    if method == "LayerGradientXActivation":
        entry.reference = "refattr gradient at the layer"
        trace = net.trace(x)
        reference = gradient_at(net, trace, v, one_hot(t, trace.output.shape[1]))
        peer_values = peer_run(lambda: cattr.LayerGradientXActivation(peer, module, multiply_by_inputs=False)
                               .attribute(tx, target=torch_target, **layer_flag))
        _classify(entry, peer_values, reference, None, [], rtol, "")
    elif method == "NeuronDeepLift":
        entry.reference = "refattr neuron_deeplift(rule='rescale'), its multipliers"
        ref = neuron_deeplift(net, x, v, selector, xr, maxpool_rule=_pool_rule(below))
        peer_values = peer_run(lambda: cattr.NeuronDeepLift(peer, module, multiply_by_inputs=False)
                               .attribute(tx, selector, tb, **neuron_flag))
        written = {net.nodes[j].name for j in functions}
        below_functions = tuple(j for j, node in enumerate(below.nodes) if node.name in written)
        targets = np.full(x.shape[0], index)
        reproduction, components, pure = _deeplift_chain(below, x, xr, targets, functions=below_functions,
                                                         output="multipliers")
        components.append(_undefined_multipliers(below, x, targets, xr[:, None], _pool_rule(below), below_functions,
                                                 pure, ref.multipliers, rtol, "multipliers"))
        _classify(entry, peer_values, ref.multipliers, reproduction, components, rtol,
                  "Captum's NeuronDeepLift convention, multipliers")
    elif method == "LayerIntegratedGradients" and layer_mean is not None:
        reference = layer_mean
        entry.reference = "refattr mean gradient at the layer along the layer's path, exact (rule='exact' pieces)"
        peer_values = peer_run(lambda: cattr.LayerIntegratedGradients(peer, module, multiply_by_inputs=False)
                               .attribute(tx, tb, target=torch_target, n_steps=n_steps, **layer_flag))
        reproduction = cc.captum_layer_integrated_gradients(net, x, xr, t, v, n_steps=n_steps, multiply=False)
        float64 = cc.captum_layer_integrated_gradients(net, x, xr, t, v, n_steps=n_steps, float32=False,
                                                       multiply=False)
        components = [Cause("convention", "Captum rounds the step weights to float32 (torch default dtype), even "
                                          "for float64 inputs", relative_difference(reproduction, float64)),
                      Cause("approximation", f"gausslegendre with {n_steps} steps vs the exact mean gradient",
                            relative_difference(float64, reference))]
        _classify(entry, peer_values, reference, reproduction, components, rtol,
                  "Captum's LayerIntegratedGradients, mean gradient")
    elif method == "NeuronIntegratedGradients" and below.piecewise_linear:
        entry.reference = "refattr mean gradient of the neuron along the path, exact (rule='exact' pieces)"
        peer_values = peer_run(lambda: cattr.NeuronIntegratedGradients(peer, module, multiply_by_inputs=False)
                               .attribute(tx, selector, tb, n_steps=n_steps, **neuron_flag))
        _compare_mean_gradient_values(entry, below, x, xr, np.full(x.shape[0], index), "gausslegendre", n_steps,
                                      peer_values, rtol)
    else:
        entry.verdict = "skipped"
        entry.notes.append(f"multiply_by_inputs=False: {method} is compared with multiply_by_inputs=True only"
                           + (" on networks that are not piecewise linear (the mean gradient is exact on "
                              "piecewise-linear ones)" if method in ("NeuronIntegratedGradients",
                                                                    "LayerIntegratedGradients") else ""))
