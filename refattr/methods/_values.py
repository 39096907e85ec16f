"""Hidden values of a network: naming one, the gradient and the directional derivative at it, and
the networks below and above it (what the layer and neuron methods are built from).

A value is a network input or a layer's output, numbered as :attr:`Network.node_args` numbers
them: the inputs first, then the output of each layer (node) in order. For a Sequential, value i
>= 1 is the output of ``net.layers[i - 1]`` and 0 the input; a Graph also names each value (its
inputs and nodes).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import ArgumentError, UnsupportedLayerError
from ..graph import Graph
from ..layers import Flatten
from ..layers._join import JoinLayer
from ..network import Network, Sequential

__all__ = ["value_index", "value_label", "is_cut", "gradient_at", "jvp_at", "network_above", "network_below",
           "network_with_value_as_input"]


def value_index(net: Network, layer: Any) -> int:
    """The number of the value ``layer`` names: an int (0 .. number of layers; 0 is the input) or,
    for a Graph, an input or node name."""
    n_values = net.n_inputs + len(net.layers)
    if isinstance(layer, str) and isinstance(net, Graph):
        names = net.value_names()
        if layer not in names:
            raise ArgumentError(f"layer: {layer!r} is not a value of the graph; its inputs and nodes are {list(names)}")
        return names.index(layer)
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, numbers.Integral):
        what = "an input or node name, or a value number" if isinstance(net, Graph) else "a value number"
        raise ArgumentError(f"layer: expected {what} (0 is the input, i the output of layers[i - 1]), got {layer!r}")
    if not 0 <= int(layer) < n_values:
        raise ArgumentError(f"layer: {int(layer)} is out of range; this network has values 0 .. {n_values - 1} "
                            f"(0 is the input, i the output of layers[i - 1])")
    return int(layer)


def value_label(net: Network, v: int) -> str:
    if isinstance(net, Graph):
        return repr(net.value_names()[v])
    return "the input" if v == 0 else f"the output of layers[{v - 1}] ({net.layers[v - 1]!r})"


def _above(net: Network, v: int) -> list[bool]:
    """Per node: whether it reads only ``v`` and values computed from ``v`` alone."""
    n_in, above = net.n_inputs, []
    computed = {v}
    for j, args in enumerate(net.node_args):
        ok = n_in + j > v and all(a in computed for a in args)
        above.append(ok)
        if ok:
            computed.add(n_in + j)
    return above


def is_cut(net: Network, v: int) -> bool:
    """Whether every path from the inputs to the output passes through value ``v`` (the network
    is then a function of ``v`` alone above it)."""
    if net.n_inputs != 1 and v < net.n_inputs:
        return False
    above = _above(net, v)
    return all(above[j] for j in range(len(net.layers)) if net.n_inputs + j > v)


def network_above(net: Network, v: int) -> Network:
    """The network from value ``v`` (a cut) to the output."""
    if not is_cut(net, v):
        raise ArgumentError(f"layer: {value_label(net, v)} is not a cut of the network (a skip connection or a "
                            f"parallel branch bypasses it), so the network above it is not a function of it alone; "
                            f"choose a value every path passes through, or the path in the input space")
    n_in = net.n_inputs
    if v == n_in + len(net.layers) - 1:      # the output itself: the identity (on its rank-1 examples)
        return Sequential([Flatten()])
    if isinstance(net, Sequential):
        return Sequential(list(net.layers[v:]))
    name = net.value_names()[v]
    nodes = [net.nodes[j] for j in range(len(net.layers)) if n_in + j > v]
    return Graph(name, [tuple(node) for node in nodes])


def network_below(net: Network, v: int) -> Network:
    """The network from the inputs to value ``v``, flattened to (N, size of v): output k is neuron
    k of ``v`` in row-major order."""
    n_in = net.n_inputs
    if v < n_in:
        raise ArgumentError(f"layer: {value_label(net, v)} is a network input; choose a hidden value")
    if isinstance(net, Sequential):
        return Sequential(list(net.layers[:v]) + [Flatten()], input_shape=net.input_shape)
    needed = {v}
    for j in range(v - n_in, -1, -1):
        if n_in + j in needed:
            needed.update(net.node_args[j])
    nodes = [tuple(net.nodes[j]) for j in range(v - n_in + 1) if n_in + j in needed]
    name = "flattened"
    while name in net.value_names():
        name += "_"
    nodes.append((name, Flatten(), net.value_names()[v]))
    return Graph(net.inputs, nodes, input_shape=net.input_shape)


def gradient_at(net: Network, trace: Any, v: int, seed: np.ndarray) -> np.ndarray:
    """d(seed . output)/d(value v): the backward pass from ``seed`` at the output, stopped at ``v``
    (a value read by several layers sums their signals)."""
    n_in = net.n_inputs
    signals: list[np.ndarray | None] = [None] * (n_in + len(net.layers))
    signals[-1] = seed
    for j in range(len(net.layers) - 1, v - n_in - 1 if v >= n_in else -1, -1):
        s = signals[n_in + j]
        if s is None:
            continue
        layer, args = net.layers[j], net.node_args[j]
        below = layer.vjp(s, trace.caches[j])
        for a, b in zip(args, below if isinstance(layer, JoinLayer) else (below,)):
            if a >= v:
                signals[a] = b if signals[a] is None else signals[a] + b
    out = signals[v]
    return np.zeros_like(trace.activations[v]) if out is None else out


def jvp_at(net: Network, trace: Any, directions: tuple[np.ndarray, ...], v: int) -> np.ndarray:
    """The derivative of value ``v`` along ``directions`` (one per network input): forward mode
    through the layers up to ``v``."""
    n_in = net.n_inputs
    d: list[np.ndarray | None] = list(directions) + [None] * len(net.layers)
    for j in range(v - n_in + 1):
        layer, args = net.layers[j], net.node_args[j]
        if isinstance(layer, JoinLayer):
            d[n_in + j] = layer.jvp(tuple(d[a] for a in args), trace.caches[j])
        else:
            if not hasattr(layer, "jvp"):
                raise UnsupportedLayerError(f"{type(layer).__name__} has no forward-mode derivative")
            d[n_in + j] = layer.jvp(d[args[0]], trace.caches[j])
    return d[v]


def network_with_value_as_input(net: Network, v: int, readers: Any = None) -> Graph:
    """The network with value ``v`` fed from outside: a graph of two inputs, the network's input and
    a new one (only the new one where nothing else reads the input any more) that the nodes in ``readers`` (default: every node that reads ``v``) read instead of
    ``v``; everything else is computed from the network's input as before (a skip connection that
    bypasses ``v`` still sees x). Nodes that then feed nothing are dropped. This is the network
    Captum's LayerIntegratedGradients differentiates: it overrides a module's output (or input) with
    interpolated values while the model runs on x."""
    if net.n_inputs != 1:
        raise ArgumentError(f"net: expected a network of one input, got {net.n_inputs}")
    graph = Graph.from_sequential(net) if isinstance(net, Sequential) else net
    n_in, names = graph.n_inputs, graph.value_names()
    replaced = set(j for j, args in enumerate(graph.node_args) if v in args) if readers is None else set(readers)
    new = f"{names[v]}_interpolated"
    while new in names:
        new += "_"
    nodes = []
    for j, node in enumerate(graph.nodes):
        reads = tuple(new if (a == v and j in replaced) else names[a] for a in graph.node_args[j])
        nodes.append((node.name, node.layer, reads if len(reads) > 1 else reads[0]))
    live = {nodes[-1][0]}
    for name, _, reads in reversed(nodes):
        if name in live:
            live.update((reads,) if isinstance(reads, str) else reads)
    kept = [node for node in nodes if node[0] in live]
    # x drops out where everything reaches the output through v (a cut): the graph is then of one input
    inputs = (graph.inputs[0], new) if graph.inputs[0] in live else (new,)
    return Graph(inputs, kept)
