"""Graph: a network whose layers read any earlier values (residual joins, branches, several inputs).

A node applies one layer to one or more earlier values, named by their node (or input) names::

    Graph(inputs="x", nodes=[
        ("h", Dense(w1, b1), "x"),
        ("a", ReLU(), "h"),
        ("r", Add(), ("a", "x")),      # a residual join
        ("y", Dense(w2), "r"),
    ])

The last node is the network's output. Every pass walks the nodes in the order given (each reads
only values defined before it); a value read by several nodes (fan-out) receives the sum of their
backward signals, and in DeepLIFT the sum of their multipliers (the chain rule).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._typing import GradientRule
from .errors import ArgumentError, NonFiniteError, ShapeError, UnsupportedLayerError
from .layers._join import JoinLayer
from .layers.base import Layer, LinearLayer, _check_part
from .layers.registry import supported
from .network import _FLOAT64_MAX, _SAFE_BOUND, Network, Trace, _all_finite, _as_input_shape, _largest_magnitude
from .validation import as_float64

__all__ = ["Graph", "Node"]


class Node(NamedTuple):
    """One node of a :class:`Graph`: ``layer`` applied to the values named in ``inputs``."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]


def _is_join(layer: Layer) -> bool:
    return isinstance(layer, JoinLayer)


def _as_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"{what}: expected a non-empty str naming a value, got {value!r} ({type(value).__name__})")
    return value


class Graph(Network):
    """A directed acyclic graph of layers with one or more inputs and one output (N, n_outputs).

    Parameters
    ----------
    inputs : str or sequence of str
        The names of the network's inputs, in the order the methods take them (``x`` is a tuple of
        arrays in that order when there is more than one).
    nodes : sequence of (name, layer, inputs)
        ``inputs`` is one name (a str) for a layer of one input, or a tuple of names for a join
        (``Add``, ``Concat``, ``Mul``); every name is an input or an earlier node. The last node is
        the output, and every node must feed it.
    input_shape : tuple of int, or a tuple of them (one per input), optional
        One example's shape (of every input): checked now, as :class:`~refattr.Sequential` does.

    Raises
    ------
    ArgumentError
        Malformed ``inputs`` / ``nodes`` (names, duplicates, a name used before it is defined, a node
        that does not feed the output).
    UnsupportedLayerError, ShapeError
        As :class:`~refattr.Sequential`; messages name the node.

    Examples
    --------
    A residual block y = relu(W x) + x, then a dense head:

    >>> import numpy as np
    >>> from refattr import Add, Dense, Graph, ReLU
    >>> net = Graph("x", [
    ...     ("h", Dense([[1.0, 0.0], [0.0, -1.0]]), "x"),
    ...     ("a", ReLU(), "h"),
    ...     ("r", Add(), ("a", "x")),
    ...     ("y", Dense([[1.0, 1.0]]), "r"),
    ... ])
    >>> net(np.array([[2.0, 3.0]]))     # relu(2) + 2 + relu(-3) + 3
    array([[7.]])
    """

    def __init__(self, inputs: str | Sequence[str], nodes: Sequence[Any],
                 input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None) -> None:
        names = (inputs,) if isinstance(inputs, str) else inputs
        if isinstance(names, (bytes, dict)) or not hasattr(names, "__iter__"):
            raise ArgumentError(f"inputs: expected a name (str) or a sequence of names, got {inputs!r}")
        self.inputs = tuple(_as_name(n, "inputs") for n in names)
        if not self.inputs:
            raise ArgumentError("inputs: expected at least one input name, got none")
        if isinstance(nodes, (str, bytes, dict)) or not hasattr(nodes, "__iter__"):
            raise ArgumentError(f"nodes: expected a list of (name, layer, inputs) tuples, got {nodes!r}")
        ids = {}
        for k, name in enumerate(self.inputs):
            if name in ids:
                raise ArgumentError(f"inputs: the name {name!r} is given twice; every value needs its own name")
            ids[name] = k
        built, args = [], []
        for j, entry in enumerate(nodes):
            if not isinstance(entry, (tuple, list, Node)) or len(entry) != 3:
                raise ArgumentError(f"nodes[{j}]: expected a tuple (name, layer, inputs), e.g. "
                                    f"('h', Dense(w), 'x'), got {entry!r}")
            name, layer, reads = entry
            name = _as_name(name, f"nodes[{j}] name")
            if name in ids:
                raise ArgumentError(f"nodes[{j}]: the name {name!r} is already used by an input or an earlier node; "
                                    f"every value needs its own name")
            if isinstance(layer, type) and issubclass(layer, Layer):
                raise UnsupportedLayerError(f"nodes[{j}] ({name!r}): the class {layer.__name__}, not a layer; build one, "
                                            f"e.g. {layer.__name__}(...)")
            if not isinstance(layer, Layer):
                raise UnsupportedLayerError(
                    f"nodes[{j}] ({name!r}): {type(layer).__module__}.{type(layer).__name__} is not a refattr layer; "
                    f"expected one of {supported()}")
            reads = (reads,) if isinstance(reads, str) else tuple(reads) if hasattr(reads, "__iter__") else (reads,)
            reads = tuple(_as_name(r, f"nodes[{j}] ({name!r}) inputs") for r in reads)
            unknown = [r for r in reads if r not in ids]
            if unknown:
                later = [r for r in unknown if any(isinstance(e, (tuple, list)) and e and e[0] == r for e in nodes)]
                hint = (f"{later} are defined later: list nodes so that each reads only earlier values" if later
                        else f"defined so far: {list(ids)}")
                raise ArgumentError(f"nodes[{j}] ({name!r}): reads {unknown}, not an input or an earlier node; {hint}")
            if _is_join(layer):
                try:
                    layer.check_arity(len(reads))
                except ShapeError as exc:
                    raise ShapeError(f"nodes[{j}] ({name!r}) {exc}") from None
            elif len(reads) != 1:
                raise ArgumentError(f"nodes[{j}] ({name!r}): {type(layer).__name__} takes one input, got {list(reads)}; "
                                    f"join values first (Add, Concat, Mul)")
            ids[name] = len(self.inputs) + j
            built.append(Node(name, layer, reads))
            args.append(tuple(ids[r] for r in reads))
        if not built:
            raise ShapeError("nodes: expected at least one node, got none")
        self.nodes = tuple(built)
        self.node_args = tuple(args)
        self.layers = tuple(node.layer for node in self.nodes)
        self.n_inputs = len(self.inputs)
        self._check_all_feed_the_output()
        self.input_shape = None
        if input_shape is not None:
            if self.n_inputs == 1:
                self.input_shape = _as_input_shape(input_shape)
            else:
                if isinstance(input_shape, (str, bytes)) or len(tuple(input_shape)) != self.n_inputs:
                    raise ArgumentError(f"input_shape: expected one example shape per input ({self.n_inputs}: "
                                        f"{list(self.inputs)}), got {input_shape!r}")
                self.input_shape = tuple(_as_input_shape(s) for s in input_shape)
            try:
                self.output_shape(self.input_shape)
            except ShapeError as exc:
                raise ShapeError(f"input_shape: {self.input_shape} does not fit the network: {exc}") from None
            self._check_memory(self.input_shape, "input_shape")
        else:
            self._value_shapes(None if self.n_inputs == 1 else (None,) * self.n_inputs)

    def _check_all_feed_the_output(self) -> None:
        n_in, used = self.n_inputs, {self.n_inputs + len(self.nodes) - 1}
        for j in range(len(self.nodes) - 1, -1, -1):
            if n_in + j in used:
                used.update(self.node_args[j])
        dead = [node.name for j, node in enumerate(self.nodes) if n_in + j not in used]
        if dead:
            raise ArgumentError(f"nodes: {dead} do not feed the output (the last node, {self.nodes[-1].name!r}); "
                                f"remove them, or end the graph with the node that uses them")

    @classmethod
    def from_sequential(cls, net: Network, input_name: str = "x") -> Graph:
        """The chain ``net`` (a :class:`~refattr.Sequential`) as a graph: node i reads node i - 1.
        Every method gives the same result on both, bit for bit."""
        nodes, previous = [], input_name
        for i, layer in enumerate(net.layers):
            nodes.append((f"layer{i}", layer, previous))
            previous = f"layer{i}"
        return cls(input_name, nodes, input_shape=getattr(net, "input_shape", None))

    # shapes --------------------------------------------------------------------------------
    def value_names(self) -> tuple[str, ...]:
        return self.inputs + tuple(node.name for node in self.nodes)

    def _value_shapes(self, example_shape):
        shapes = (example_shape,) if self.n_inputs == 1 else tuple(example_shape)
        values = [(f"input {name!r}", None if s is None else tuple(s)) for name, s in zip(self.inputs, shapes)]
        for node, args in zip(self.nodes, self.node_args):
            ins = [values[a][1] for a in args]
            try:
                shape = node.layer.output_shape(ins if _is_join(node.layer) else ins[0])
            except ShapeError as exc:
                raise type(exc)(f"node {node.name!r} {exc}") from None
            values.append((f"node {node.name!r} {node.layer!r}", shape))
        return values

    def _fits(self, example_shape: tuple) -> bool:
        return self.n_inputs == 1 and super()._fits(example_shape)

    def check_input(self, x: ArrayLike, name: str = "x") -> np.ndarray | tuple[np.ndarray, ...]:
        """As :meth:`Network.check_input` for one input; with several, ``x`` is a tuple of arrays
        (N, *example_shape_k), one per input in the order of ``inputs``, all with the same N.
        Returns the float64 array (one input) or the tuple of them."""
        if self.n_inputs == 1:
            return super().check_input(x, name)
        k, names = self.n_inputs, list(self.inputs)
        if not isinstance(x, (tuple, list)) or len(x) != k:
            seen = f"a {type(x).__name__} of {len(x)}" if isinstance(x, (tuple, list)) else type(x).__name__
            raise ShapeError(f"{name}: this graph has {k} inputs {names}; pass a tuple of {k} arrays "
                             f"(N, *example_shape), one per input in that order; got {seen}")
        arrays = tuple(as_float64(v, f"{name}[{i}] (input {n!r})") for i, (v, n) in enumerate(zip(x, names)))
        for i, a in enumerate(arrays):
            if a.ndim < 2 or a.shape[0] == 0:
                raise ShapeError(f"{name}[{i}] (input {names[i]!r}): expected a batch (N >= 1, *example_shape), "
                                 f"got shape {a.shape}")
        if len({a.shape[0] for a in arrays}) != 1:
            raise ShapeError(f"{name}: the inputs hold different numbers of examples "
                             f"{[a.shape[0] for a in arrays]}; every input needs one row per example")
        shapes = tuple(a.shape[1:] for a in arrays)
        if self.input_shape is not None and shapes != self.input_shape:
            raise ShapeError(f"{name}: expected examples of shapes {self.input_shape}, got {shapes}")
        try:
            self.output_shape(shapes)
        except ShapeError as exc:
            raise ShapeError(f"{name}: inputs of shapes {shapes} do not fit the network: {exc}") from None
        self._check_memory(shapes, name)
        return arrays

    # passes --------------------------------------------------------------------------------
    def trace(self, x: np.ndarray | tuple[np.ndarray, ...], outputs: bool = True) -> Trace:
        """Forward pass keeping every value (by value number) and every node's cache. ``x`` must
        already be validated: an array, or a tuple of arrays for several inputs. ``outputs`` is
        accepted for the interface of :meth:`Sequential.trace`; a graph always computes every value."""
        xs = tuple(x) if self.n_inputs > 1 else (x,)
        activations: list[np.ndarray | None] = list(xs)
        caches = []
        bounds = [_largest_magnitude(a) for a in xs]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for j, (layer, args) in enumerate(zip(self.layers, self.node_args)):
                if _is_join(layer):
                    y, cache = layer.forward(tuple(activations[a] for a in args))
                    bound = layer.output_bound([bounds[a] for a in args])
                else:
                    y, cache = layer.forward(activations[args[0]])
                    bound = layer.output_bound(bounds[args[0]])
                if not bound <= _SAFE_BOUND:
                    bound = _largest_magnitude(y)
                    if not math.isfinite(bound):
                        raise self._forward_error(j, [activations[a] for a in args], y)
                activations.append(y)
                bounds.append(bound)
                caches.append(cache)
        return Trace(activations, caches)

    def backward(self, g: np.ndarray, trace: Trace,
                 rule: GradientRule = "gradient") -> np.ndarray | tuple[np.ndarray, ...]:
        """Walk the nodes backward from a signal g at the output; a value read by several nodes
        receives the sum of their signals. Returns the signal at the input (a tuple with several)."""
        signals = self._signals(g, trace, rule)
        out = [np.zeros_like(trace.activations[k]) if signals[k] is None else signals[k] for k in range(self.n_inputs)]
        if not all(_all_finite(s) for s in out):
            raise self._backward_error(g, trace, rule)
        return out[0] if self.n_inputs == 1 else tuple(out)

    def _signals(self, g: np.ndarray, trace: Trace, rule: GradientRule, check: bool = False) -> Any:
        n_in = self.n_inputs
        signals: list[np.ndarray | None] = [None] * (n_in + len(self.nodes))
        signals[-1] = g
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for j in range(len(self.nodes) - 1, -1, -1):
                layer, args = self.layers[j], self.node_args[j]
                s = signals[n_in + j]
                signals[n_in + j] = None
                below = layer.backward_signal(s, trace.caches[j], rule)
                for a, b in zip(args, below if _is_join(layer) else (below,)):
                    if check and not _all_finite(b):
                        return j, s
                    signals[a] = b if signals[a] is None else signals[a] + b
        return None if check else signals

    # errors ----------------------------------------------------------------------------------
    def _forward_error(self, j: int, inputs: list, y: np.ndarray) -> NonFiniteError:
        bad = ~np.isfinite(y)
        example = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
        largest = max(float(np.max(np.abs(a))) for a in inputs)
        return NonFiniteError(
            f"node {self.nodes[j].name!r} {self.layers[j]!r}: the output overflowed to inf or nan "
            f"({int(bad.sum())} value(s), first in example {example}) although its input is finite (largest "
            f"magnitude {largest:.3g}), while float64 holds magnitudes up to {_FLOAT64_MAX:.3g}: rescale the "
            f"input (or the weights) so that every activation stays in range")

    def _backward_error(self, g: np.ndarray, trace: Trace, rule: GradientRule) -> NonFiniteError:
        found = self._signals(g, trace, rule, check=True)
        j, s = found if found is not None else (0, g)
        return NonFiniteError(
            f"node {self.nodes[j].name!r} {self.layers[j]!r}: the backward signal ({rule}) overflowed to inf or "
            f"nan there; the signal it received was finite (largest magnitude {np.max(np.abs(s)):.3g}), while "
            f"float64 holds magnitudes up to {_FLOAT64_MAX:.3g}: the network's derivatives are too large, "
            f"rescale its weights (or its output)")

    def __repr__(self) -> str:
        def reads(node):
            return repr(node.inputs[0]) if len(node.inputs) == 1 and not _is_join(node.layer) else repr(node.inputs)
        inner = ",\n".join(f"  ({node.name!r}, {node.layer!r}, {reads(node)})" for node in self.nodes)
        inputs = repr(self.inputs[0]) if self.n_inputs == 1 else repr(self.inputs)
        return f"Graph({inputs}, [\n{inner}\n])"

    # several inputs as one -------------------------------------------------------------------
    def packed(self, example_shapes: Sequence[Sequence[int]]) -> Graph:
        """This graph as a graph of one input: the inputs' examples (of ``example_shapes``) laid end
        to end in one vector (row-major, in the order of ``inputs``), each original input a node
        that slices its part out. Attribution methods run on it and split their results back
        (:func:`pack` / :func:`unpack`): one mechanism for every method."""
        shapes = [tuple(s) for s in example_shapes]
        name = "packed_inputs"
        while name in self.value_names():
            name += "_"
        nodes, start = [], 0
        for input_name, shape in zip(self.inputs, shapes):
            size = math.prod(shape)
            nodes.append((input_name, _Slice(start, start + size, shape), name))
            start += size
        return Graph(name, nodes + [tuple(node) for node in self.nodes], input_shape=(start,))


def pack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(N, D): each array (N, *shape_k) flattened per example and laid end to end."""
    n = arrays[0].shape[0]
    return np.ascontiguousarray(np.concatenate([a.reshape(n, -1) for a in arrays], axis=1))


def unpack(packed: np.ndarray, example_shapes: Sequence[Sequence[int]]) -> tuple[np.ndarray, ...]:
    """The inverse of :func:`pack` (copies, C-contiguous)."""
    out, start = [], 0
    lead = packed.shape[:-1]
    for shape in example_shapes:
        size = math.prod(shape)
        out.append(np.ascontiguousarray(packed[..., start:start + size]).reshape(lead + tuple(shape)))
        start += size
    return tuple(out)


class _Slice(LinearLayer):
    """One input's part of a packed vector (see :meth:`Graph.packed`): a linear map with weights +1."""

    piecewise_linear = True
    captum = "linear"

    def __init__(self, start: int, stop: int, shape: tuple[int, ...]) -> None:
        self.start, self.stop, self.shape = start, stop, tuple(shape)

    def output_shape(self, input_shape: Any) -> tuple[int, ...]:
        if input_shape is not None and input_shape != (None,) and (len(input_shape) != 1 or input_shape[0] < self.stop):
            raise ShapeError(f"_Slice: expected a packed vector of at least {self.stop} values, got {input_shape}")
        return self.shape

    def output_bound(self, bound: float) -> float:
        return bound

    def linear(self, x: np.ndarray, part: Any = None) -> np.ndarray:
        _check_part(part)
        y = x[:, self.start:self.stop].reshape((x.shape[0],) + self.shape)
        return np.zeros_like(y) if part == "neg" else y

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...], part: Any = None) -> np.ndarray:
        _check_part(part)
        out = np.zeros(input_shape)
        if part != "neg":
            out[:, self.start:self.stop] = g.reshape(g.shape[0], -1)
        return out

    def __repr__(self) -> str:
        return f"_Slice({self.start}:{self.stop} -> {self.shape})"
