"""Networks as plain data: the one serialised form of a :class:`~refattr.Sequential` or a
:class:`~refattr.Graph`, read and written through the layer registry.

A layer is ``{"type": name, argument: value, ...}`` with every constructor argument of its class
(:mod:`refattr.layers.registry`): tuples as lists, None as null, and each array either inline as
nested lists or, when the arrays are kept apart (an ``.npz`` next to a JSON file), the key under
which it is stored. A chain is ``{"layers": [layer, ...]}``; a graph is ::

    {"inputs": ["x"],
     "nodes": [{"name": "h", "inputs": ["x"], "layer": {"type": "Dense", "weight": "nodes.h.weight",
                                                       "bias": null}},
               {"name": "a", "inputs": ["h"], "layer": {"type": "ReLU"}},
               {"name": "r", "inputs": ["a", "x"], "layer": {"type": "Add", "weights": null}}]}

and both carry ``"input_shape"`` (one example's shape, a list per input for several inputs, or
null). Stored arrays are keyed ``layers.{i}.{argument}`` (chains) and ``nodes.{name}.{argument}``
(graphs). The oracle export and the axioms' witnesses write this form; a newly registered layer
needs no change here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ArgumentError, ShapeError, UnsupportedLayerError
from .graph import Graph
from .layers.registry import from_config, info, to_config
from .network import Network, Sequential

__all__ = ["layer_to_spec", "layer_from_spec", "network_to_spec", "network_from_spec"]


def layer_to_spec(layer: Any, arrays: dict[str, np.ndarray] | None = None, key: str = "") -> dict[str, Any]:
    """``{"type": name, argument: value}`` for one layer; its arrays inline as nested lists, or
    stored in ``arrays`` under ``f"{key}.{argument}"`` (the spec then holds that key)."""
    config = to_config(layer)
    spec: dict[str, Any] = {"type": config["type"]}
    for argument in info(layer).arguments:
        if argument in config["arrays"]:
            array = config["arrays"][argument]
            if arrays is None:
                spec[argument] = array.tolist()
            else:
                spec[argument] = f"{key}.{argument}"
                arrays[spec[argument]] = array
        else:
            spec[argument] = config["params"].get(argument)
    return spec


def layer_from_spec(spec: dict[str, Any], arrays: dict[str, np.ndarray] | None = None, key: str = "",
                    where: str = "layer") -> Any:
    """The layer ``spec`` describes. A value equal to ``f"{key}.{argument}"`` is that array of
    ``arrays``; null leaves the constructor's default; a list is passed as a tuple."""
    if not isinstance(spec, dict):
        raise ArgumentError(f"{where}: expected a dict {{'type': name, argument: value, ...}}, got {spec!r}")
    params: dict[str, Any] = {}
    stored: dict[str, np.ndarray] = {}
    for argument, value in spec.items():
        if argument == "type" or value is None:
            continue
        if isinstance(value, str) and value == f"{key}.{argument}":
            if arrays is None or value not in arrays:
                raise ShapeError(f"{where} ({spec.get('type')}) {argument}: array {value!r} is missing; pass the "
                                 f"arrays stored with the network (its .npz)")
            stored[argument] = arrays[value]
        else:
            params[argument] = value
    try:
        return from_config({"type": spec.get("type"), "params": params, "arrays": stored})
    except (UnsupportedLayerError, ShapeError, ArgumentError, TypeError) as error:
        raise type(error)(f"{where}: {error}") from None


def _shape(shape):
    if shape is None:
        return None
    if shape and isinstance(shape[0], tuple):
        return [list(s) for s in shape]
    return list(shape)


def network_to_spec(net: Network, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """``net`` as plain data (see the module docstring). With ``arrays`` (a dict, filled here) the
    weights are stored there instead of inline; the result is then JSON-ready without them."""
    if isinstance(net, Graph):
        nodes = [{"name": node.name, "inputs": list(node.inputs),
                  "layer": layer_to_spec(node.layer, arrays, f"nodes.{node.name}")} for node in net.nodes]
        return {"inputs": list(net.inputs), "nodes": nodes, "input_shape": _shape(net.input_shape)}
    if isinstance(net, Sequential):
        return {"layers": [layer_to_spec(layer, arrays, f"layers.{i}") for i, layer in enumerate(net.layers)],
                "input_shape": _shape(net.input_shape)}
    raise ArgumentError(f"net: expected a refattr network (Sequential or Graph), got {type(net).__name__}")


def network_from_spec(spec: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Network:
    """The network :func:`network_to_spec` wrote (``arrays``: the stored arrays, if any).

    Examples
    --------
    >>> import numpy as np
    >>> spec = {"inputs": ["x"], "nodes": [
    ...     {"name": "h", "inputs": ["x"], "layer": {"type": "Dense", "weight": [[1.0, -2.0]]}},
    ...     {"name": "r", "inputs": ["h", "h"], "layer": {"type": "Mul"}}]}
    >>> network_from_spec(spec)(np.array([[3.0, 1.0]]))     # (3 - 2)**2
    array([[1.]])
    """
    if not isinstance(spec, dict) or ("layers" in spec) == ("nodes" in spec):
        raise ArgumentError("network spec: expected a dict with 'layers' (a chain) or 'inputs' and 'nodes' (a "
                            f"graph), got {spec!r:.200}")
    shape = spec.get("input_shape")
    if "layers" in spec:
        layers = [layer_from_spec(s, arrays, f"layers.{i}", f"layers[{i}]") for i, s in enumerate(spec["layers"])]
        return Sequential(layers, input_shape=None if shape is None else tuple(shape))
    nodes = []
    for j, node in enumerate(spec["nodes"]):
        if not isinstance(node, dict) or not {"name", "inputs", "layer"} <= set(node):
            raise ArgumentError(f"nodes[{j}]: expected {{'name', 'inputs', 'layer'}}, got {node!r:.200}")
        reads = node["inputs"]
        reads = reads if isinstance(reads, str) else tuple(reads)
        layer = layer_from_spec(node["layer"], arrays, f"nodes.{node['name']}", f"nodes[{j}] ({node['name']!r})")
        nodes.append((node["name"], layer, reads))
    if shape is not None:
        shape = tuple(tuple(s) for s in shape) if shape and isinstance(shape[0], list) else tuple(shape)
    return Graph(spec.get("inputs"), nodes, input_shape=shape)
