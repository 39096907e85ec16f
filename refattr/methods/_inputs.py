"""Networks of several inputs: every method runs on the packed network (one input, see
:meth:`refattr.graph.Graph.packed`) and its results are split back into one array per input.

This is the only place that knows about several inputs: the methods themselves see one array
(N, D) holding each example's inputs end to end, and the path, the references and the completeness
gap are those of the inputs taken together.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import numpy as np

from ..errors import RefattrError, ShapeError
from ..graph import Graph, pack, unpack
from ..validation import DEFAULT_BASELINE, as_float64, broadcast_baseline
from .result import Attribution

__all__ = ["several_inputs", "several_inputs_at_layer"]


def several_inputs(method: Callable) -> Callable:
    """Decorate a method ``method(net, x, ...)`` so that it accepts a graph of several inputs:
    ``x`` a tuple of arrays, ``baseline`` a scalar (for every input) or a tuple (one entry per
    input: a scalar, one example's shape, (1, *example_shape) or the batch's shape), and
    ``baseline_samples`` a tuple of arrays (K, *example_shape_k) or (N, K, *example_shape_k), the same
    leading axes for every input; ``values`` and ``multipliers``
    come back as tuples in the order of the inputs."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        net = args[0] if args else kwargs.get("net")
        if not isinstance(net, Graph) or net.n_inputs == 1:
            return method(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        shapes = _pack_arguments(net, bound.arguments)
        try:
            result = method(*bound.args, **bound.kwargs)
        except RefattrError as err:
            # a budget stopped the computation: the result it reached is split as a result is
            if isinstance(getattr(err, "partial", None), Attribution):
                err.partial = _split(err.partial, shapes, net.inputs)
            raise
        return _split(result, shapes, net.inputs)

    return wrapper


def several_inputs_at_layer(method: Callable) -> Callable:
    """Decorate a layer method ``method(net, x, layer, ...)`` (attributions to a hidden value's
    neurons) so that it accepts a graph of several inputs, as :func:`several_inputs` does for the
    input methods: it runs on the packed graph, where every value keeps its name and value number v
    becomes v + 1 (the packed vector is value 0, input q the node slicing it out). The result is
    the layer's, so nothing is split back."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        net = args[0] if args else kwargs.get("net")
        if not isinstance(net, Graph) or net.n_inputs == 1:
            return method(*args, **kwargs)
        from ._values import value_index

        bound = signature.bind(*args, **kwargs)
        layer = value_index(net, bound.arguments["layer"]) + 1     # checked on the graph as the user wrote it
        _pack_arguments(net, bound.arguments)
        bound.arguments["layer"] = layer
        return method(*bound.args, **bound.kwargs)

    return wrapper


def _pack_arguments(net: Graph, a: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
    """Replace, in the bound arguments ``a``, the graph by its packed form and x, the baseline and
    the baseline samples by packed arrays; returns the inputs' example shapes."""
    xs = net.check_input(a["x"], "x")
    shapes = tuple(v.shape[1:] for v in xs)
    a["net"], a["x"] = net.packed(shapes), pack(xs)
    if a.get("baseline", DEFAULT_BASELINE) is not DEFAULT_BASELINE:
        a["baseline"] = _pack_baseline(net, a["baseline"], xs)
    if a.get("baseline_samples") is not None:
        a["baseline_samples"] = _pack_samples(net, a["baseline_samples"], shapes)
    return shapes


def _pack_baseline(net: Graph, baseline: Any, xs: tuple[np.ndarray, ...]) -> Any:
    if not isinstance(baseline, (tuple, list)) and np.ndim(baseline) == 0:
        return baseline                     # one scalar for every input
    if not isinstance(baseline, (tuple, list)) or len(baseline) != len(xs):
        raise ShapeError(f"baseline: this graph has {len(xs)} inputs {list(net.inputs)}; pass a scalar (the same "
                         f"reference value for every input) or a tuple of {len(xs)} baselines, one per input")
    return pack([broadcast_baseline(b, x, f"baseline[{k}] (input {name!r})")
                 for k, (b, x, name) in enumerate(zip(baseline, xs, net.inputs))])


def _pack_samples(net: Graph, samples: Any, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    k = len(shapes)
    if not isinstance(samples, (tuple, list)) or len(samples) != k:
        raise ShapeError(f"baseline_samples: this graph has {k} inputs {list(net.inputs)}; pass a tuple of {k} "
                         f"arrays (K, *example_shape) or (N, K, *example_shape), one per input, with the same "
                         f"leading axes")
    arrays = [as_float64(s, f"baseline_samples[{i}]") for i, s in enumerate(samples)]
    flat = []
    for i, (arr, shape) in enumerate(zip(arrays, shapes)):
        lead = arr.ndim - len(shape)
        if lead < 1 or arr.shape[lead:] != shape:
            raise ShapeError(f"baseline_samples[{i}] (input {net.inputs[i]!r}): expected shape (K, {', '.join(map(str, shape))}), "
                             f"got {arr.shape}")
        flat.append(arr.reshape(arr.shape[:lead] + (-1,)))
    if len({f.shape[:-1] for f in flat}) != 1:
        raise ShapeError(f"baseline_samples: the inputs' samples differ in number {[f.shape[:-1] for f in flat]}; "
                         f"sample k of every input together make reference k")
    return np.ascontiguousarray(np.concatenate(flat, axis=-1))


def _split(result: Any, shapes: tuple[tuple[int, ...], ...], inputs: tuple[str, ...]) -> Any:
    if isinstance(result, Attribution):
        changes = {"values": unpack(result.values, shapes)}
        if result.multipliers is not None:
            changes["multipliers"] = unpack(result.multipliers, shapes)
        return dataclasses.replace(result, **changes)
    if isinstance(result, list):            # deeplift_layers: drop the packed vector, number as the graph does
        packed = result[0].name
        out = []
        for r in result[1:]:
            # in a cut, the packed vector stands for the inputs not yet sliced out of it (input q is
            # value q + 1 of the packed graph)
            frontier = []
            for name in r.frontier:
                frontier += list(inputs[r.index:]) if name == packed else [name]
            out.append(dataclasses.replace(r, index=r.index - 1, frontier=tuple(dict.fromkeys(frontier))))
        return out
    return result
