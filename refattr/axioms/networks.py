"""Networks built to expose a property: the papers' examples, and function-preserving rewrites.

Everything here returns plain :class:`~refattr.Sequential` networks of Dense layers and
element-wise activations, so that a witness prints as a few short weight lists, except the graphs
at the end (a residual block, a gate) that put the properties to the test on graph networks.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..layers import Add, Dense, ElementwiseLayer, Mul, ReLU, Sigmoid, Tanh
from ..network import Sequential
from ..testing import random_mlp

__all__ = [
    "saturating_unit", "shifted_relu", "bump", "sundararajan_pair", "reveal_cancel_pair", "identity_pair",
    "split_unit_pair", "parallel", "permute_inputs", "split_unit", "duplicate_signed", "permute_units",
    "with_passthrough_feature", "random_relu_mlp", "random_tanh_mlp", "dense_positions",
    "random_residual_graph", "random_gated_graph", "residual_pair",
]


def _net(*layers) -> Sequential:
    return Sequential(list(layers))


def saturating_unit() -> Sequential:
    """The tutorial's f(x) = 1 - max(0, 1 - x): f(0) = 0, f(2) = 1, f'(2) = 0."""
    return _net(Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0]))


def shifted_relu(c: float = 1.0) -> Sequential:
    """f(x) = max(0, x - c), followed by an identity Dense so that the network ends linearly."""
    return _net(Dense([[1.0]], [-c]), ReLU(), Dense([[1.0]]))


def bump(a: float, width: float) -> Sequential:
    """f(x) = relu(x - a) - relu(x - a - width): 0 left of a, ``width`` right of a + width.

    Its derivative is 1 on (a, a + width) and 0 elsewhere, so a fixed quadrature rule whose nodes
    all miss the interval sees a zero gradient at every node although f changes by ``width``.
    """
    return _net(Dense([[1.0], [1.0]], [-a, -a - width]), ReLU(), Dense([[1.0, -1.0]]))


def sundararajan_pair() -> tuple[Sequential, Sequential]:
    """Two implementations of one function (Sundararajan, Taly & Yan 2017, section 2.2, fig. 7).

    f(x1, x2) = relu(h) with h = relu(x1) - 1 - relu(x2); g(x1, x2) = relu(k) with
    k = relu(x1 - 1) - relu(x2). For x1 >= 1, h = k; for x1 < 1 both h and k are <= 0, so
    f = g everywhere. At x = (3, 1), x' = (0, 0) DeepLIFT-Rescale gives (1.5, -0.5) on f and
    (2, -1) on g.
    """
    f = _net(Dense([[1.0, 0.0], [0.0, 1.0]]), ReLU(), Dense([[1.0, -1.0]], [-1.0]), ReLU(), Dense([[1.0]]))
    g = _net(Dense([[1.0, 0.0], [0.0, 1.0]], [-1.0, 0.0]), ReLU(), Dense([[1.0, -1.0]]), ReLU(), Dense([[1.0]]))
    return f, g


def reveal_cancel_pair() -> tuple[Sequential, Sequential]:
    """relu(x1 - x2), written directly (a second, idle ReLU keeps the depths equal) and through
    the identity z = relu(z) - relu(-z): relu(relu(x1 - x2) - relu(x2 - x1)).

    At x = (3, 1), x' = (0, 0), RevealCancel gives (2.5, -0.5) on the first and (2.875, -0.875) on
    the second: the neuron relu(x2 - x1) has total difference 0 but parts +0.5 and -0.5, and the
    Linear rule's 0.5 convention for a zero difference (the tutorial's "Linear layers") sends them to
    the next unit's positive and negative multipliers, which differ.
    """
    a = _net(Dense([[1.0, -1.0], [0.0, 0.0]]), ReLU(), Dense([[1.0, 0.0]]), ReLU(), Dense([[1.0]]))
    b = _net(Dense([[1.0, -1.0], [-1.0, 1.0]]), ReLU(), Dense([[1.0, -1.0]]), ReLU(), Dense([[1.0]]))
    return a, b


def identity_pair() -> tuple[Sequential, Sequential]:
    """x1 - x2 written as one Dense and as relu(x1 - x2) - relu(x2 - x1) (equal everywhere).

    On the line x1 = x2 the ReLUs sit on their kink, where ReLU'(0) = 0 makes the computed gradient
    of the second form (0, 0) instead of (1, -1): a convention, not a derivative.
    """
    lin = _net(Dense([[1.0, -1.0]]))
    relu_form = _net(Dense([[1.0, -1.0], [-1.0, 1.0]]), ReLU(), Dense([[1.0, -1.0]]))
    return lin, relu_form


def split_unit_pair() -> tuple[Sequential, Sequential]:
    """relu(x1) + relu(x2), and the same with relu(x1) split into 2 relu(x1) - relu(x1).

    The split adds a path with a negative outgoing weight; guided backprop and deconvnet drop the
    negative signal at that ReLU, so they see 2 where the function's derivative is 1.
    """
    a = _net(Dense([[1.0, 0.0], [0.0, 1.0]]), ReLU(), Dense([[1.0, 1.0]]))
    b = _net(Dense([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), ReLU(), Dense([[2.0, -1.0, 1.0]]))
    return a, b


# ------------------------------------------------------------------------------------------------
# composing networks
# ------------------------------------------------------------------------------------------------

def dense_positions(net: Sequential) -> list[int]:
    return [i for i, layer in enumerate(net.layers) if isinstance(layer, Dense)]


def _bias(layer: Dense) -> np.ndarray:
    return np.zeros(layer.out_features) if layer.bias is None else layer.bias


def _check_parallel(nets):
    kinds = [tuple(type(l) for l in n.layers) for n in nets]
    if any(k != kinds[0] for k in kinds):
        raise ValueError("parallel: networks must have the same sequence of layer types")
    for n in nets:
        for i, layer in enumerate(n.layers):
            if not isinstance(layer, (Dense, ElementwiseLayer)):
                raise ValueError(f"parallel: only Dense and element-wise layers are supported, got {layer!r}")
        if not isinstance(n.layers[-1], Dense):
            raise ValueError("parallel: each network must end with a Dense layer")


def parallel(nets, coefficients, shared: int = 0) -> Sequential:
    """The network x -> sum_k c_k net_k(x), its hidden units side by side.

    All networks read the same input and have the same sequence of layer types, ending with Dense.
    The first ``shared`` layers are taken once from ``nets[0]`` (they must be identical in every
    network): the heads then read the same hidden units. After that, the first Dense stacks the
    heads' rows, every later hidden Dense is block-diagonal, and the final Dense mixes the heads'
    outputs with the coefficients: weight [c_1 W_1, c_2 W_2, ...], bias sum_k c_k b_k.
    """
    nets = list(nets)
    _check_parallel(nets)
    coefficients = [float(c) for c in coefficients]
    layers = list(nets[0].layers[:shared])
    for net in nets[1:]:
        for a, b in zip(nets[0].layers[:shared], net.layers[:shared]):
            if isinstance(a, Dense) and not (np.array_equal(a.weight, b.weight) and np.array_equal(_bias(a), _bias(b))):
                raise ValueError("parallel: the shared layers differ between the networks")
    n_layers = len(nets[0].layers)
    first_dense = True
    for i in range(shared, n_layers):
        parts = [n.layers[i] for n in nets]
        if not isinstance(parts[0], Dense):
            layers.append(parts[0])
            continue
        if i == n_layers - 1:
            if first_dense:   # the heads are single Dense layers on shared features: add them
                weight = sum(c * p.weight for c, p in zip(coefficients, parts))
            else:
                weight = np.concatenate([c * p.weight for c, p in zip(coefficients, parts)], axis=1)
            bias = sum(c * _bias(p) for c, p in zip(coefficients, parts))
            layers.append(Dense(weight, bias))
        elif first_dense:
            layers.append(Dense(np.concatenate([p.weight for p in parts], axis=0),
                                np.concatenate([_bias(p) for p in parts])))
        else:
            rows = sum(p.out_features for p in parts)
            cols = sum(p.in_features for p in parts)
            weight = np.zeros((rows, cols))
            row = col = 0
            for p in parts:
                weight[row:row + p.out_features, col:col + p.in_features] = p.weight
                row += p.out_features
                col += p.in_features
            layers.append(Dense(weight, np.concatenate([_bias(p) for p in parts])))
        first_dense = False
    return Sequential(layers)


def permute_inputs(net: Sequential, perm) -> Sequential:
    """The network x -> net(x[perm]) (the first Dense's columns reordered)."""
    first = net.layers[0]
    if not isinstance(first, Dense):
        raise ValueError("permute_inputs: the network must start with a Dense layer")
    inverse = np.argsort(perm)
    return Sequential([Dense(first.weight[:, inverse], first.bias)] + list(net.layers[1:]))


def with_passthrough_feature(net: Sequential) -> Sequential:
    """A network of one more input x_new computing net(x) + relu(x_new).

    x_new travels in its own unit through every layer (relu is idempotent on a relu's output and
    every later Dense passes it with weight 1), so the result depends on x_new genuinely and the
    other features keep their roles.
    """
    dense = dense_positions(net)
    if len(dense) < 2 or dense[-1] != len(net.layers) - 1:
        raise ValueError("with_passthrough_feature: the network needs a hidden layer and must end with a Dense layer")
    layers = []
    for i, layer in enumerate(net.layers):
        if not isinstance(layer, Dense):
            if not isinstance(layer, ReLU):
                raise ValueError("with_passthrough_feature: only ReLU activations are supported")
            layers.append(layer)
            continue
        w, b = layer.weight, _bias(layer)
        if i == dense[-1]:
            extra_col = np.zeros((w.shape[0], 1))
            extra_col[0, 0] = 1.0
            layers.append(Dense(np.concatenate([w, extra_col], axis=1), b))
        else:
            new = np.zeros((w.shape[0] + 1, w.shape[1] + 1))
            new[:-1, :-1] = w
            new[-1, -1] = 1.0
            layers.append(Dense(new, np.concatenate([b, [0.0]])))
    return Sequential(layers)


# ------------------------------------------------------------------------------------------------
# function-preserving rewrites of one hidden ReLU unit
# ------------------------------------------------------------------------------------------------

def _hidden_pair(net: Sequential, position: int):
    dense = dense_positions(net)
    k = dense.index(position)
    nxt = dense[k + 1]
    if nxt - position != 2 or not isinstance(net.layers[position + 1], ElementwiseLayer):
        raise ValueError("rewrite: the Dense layer must be followed by exactly one activation and a Dense")
    return net.layers[position], net.layers[nxt], nxt


def _replace(net, position, nxt, first: Dense, second: Dense) -> Sequential:
    layers = list(net.layers)
    layers[position] = first
    layers[nxt] = second
    return Sequential(layers)


def split_unit(net: Sequential, position: int, unit: int, scales=(1.0, 2.0), share: float = 0.5) -> Sequential:
    """Replace hidden ReLU unit u = relu(z) by relu(c1 z) and relu(c2 z) with outgoing weights
    share / c1 and (1 - share) / c2 times the old ones. Equal for c1, c2 > 0 since
    relu(c z) = c relu(z)."""
    first, second, nxt = _hidden_pair(net, position)
    if not isinstance(net.layers[position + 1], ReLU):
        raise ValueError("split_unit: needs a ReLU (positive homogeneity, relu(c z) = c relu(z))")
    c1, c2 = (float(s) for s in scales)
    if c1 <= 0 or c2 <= 0:
        raise ValueError("split_unit: scales must be positive")
    w, b = first.weight, _bias(first)
    new_w = np.concatenate([w, c2 * w[unit:unit + 1]], axis=0)
    new_w[unit] *= c1
    new_b = np.concatenate([b, [c2 * b[unit]]])
    new_b[unit] *= c1
    v = second.weight
    new_v = np.concatenate([v, v[:, unit:unit + 1] * (1.0 - share) / c2], axis=1)
    new_v[:, unit] *= share / c1
    return _replace(net, position, nxt, Dense(new_w, new_b), Dense(new_v, second.bias))


def duplicate_signed(net: Sequential, position: int, unit: int, k: float = 1.0) -> Sequential:
    """Replace hidden unit u (outgoing weights v) by two copies with outgoing weights (1 + k) v and
    -k v: the same function, but now with a path of each sign."""
    first, second, nxt = _hidden_pair(net, position)
    w, b = first.weight, _bias(first)
    new_w = np.concatenate([w, w[unit:unit + 1]], axis=0)
    new_b = np.concatenate([b, [b[unit]]])
    v = second.weight
    new_v = np.concatenate([v, -k * v[:, unit:unit + 1]], axis=1)
    new_v[:, unit] *= 1.0 + k
    return _replace(net, position, nxt, Dense(new_w, new_b), Dense(new_v, second.bias))


def permute_units(net: Sequential, position: int, perm) -> Sequential:
    """Reorder the hidden units of one layer (rows of one Dense, columns of the next)."""
    first, second, nxt = _hidden_pair(net, position)
    perm = np.asarray(perm)
    return _replace(net, position, nxt, Dense(first.weight[perm], _bias(first)[perm]),
                    Dense(second.weight[:, perm], second.bias))


def random_relu_mlp(rng: np.random.Generator, sizes) -> Sequential:
    return random_mlp(rng, tuple(sizes), activation="relu", bias=True)


def random_tanh_mlp(rng: np.random.Generator, sizes) -> Sequential:
    return random_mlp(rng, tuple(sizes), activation="tanh", bias=True)


# ------------------------------------------------------------------------------------------------
# graphs
# ------------------------------------------------------------------------------------------------

def _dense(rng: np.random.Generator, n_out: int, n_in: int, bias: bool = True) -> Dense:
    return Dense(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.5 if bias else None)


def random_residual_graph(rng: np.random.Generator, width: int) -> Graph:
    """y = v . relu(W2 relu(W1 x + b1) + b2 + x) + c: a residual block (an Add joining the skip
    connection) and a dense head, with random weights; piecewise linear."""
    return Graph("x", [("h", _dense(rng, width, width), "x"), ("a", ReLU(), "h"),
                       ("g", _dense(rng, width, width), "a"), ("r", Add(), ("g", "x")), ("b", ReLU(), "r"),
                       ("y", _dense(rng, 1, width), "b")])


def random_gated_graph(rng: np.random.Generator, n_in: int, width: int) -> Graph:
    """y = v . (tanh(W x + b) * sigmoid(U x + d)) + c: a gate (a Mul of two branches of the input)."""
    return Graph("x", [("h", _dense(rng, width, n_in), "x"), ("a", Tanh(), "h"), ("k", _dense(rng, width, n_in), "x"),
                       ("s", Sigmoid(), "k"), ("m", Mul(), ("a", "s")), ("y", _dense(rng, 1, width), "m")])


def residual_pair(rng: np.random.Generator, width: int) -> tuple[Graph, Sequential]:
    """v . (relu(W x) + x) written as a residual graph and as a chain (equal everywhere).

    The chain carries the skip connection through ReLUs, x = relu(x) - relu(-x): its hidden layer
    is [W; I; -I] and its output weights [v, v, -v].
    """
    w, v = rng.normal(size=(width, width)), rng.normal(size=(1, width))
    graph = Graph("x", [("h", Dense(w), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "x")), ("y", Dense(v), "r")])
    eye = np.eye(width)
    chain = _net(Dense(np.concatenate([w, eye, -eye])), ReLU(), Dense(np.concatenate([v, v, -v], axis=1)))
    return graph, chain
