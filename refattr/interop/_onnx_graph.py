"""What :func:`~refattr.interop.from_onnx` reads beyond one node per layer: the patterns
``torch.onnx.export`` writes for layers ONNX has no operator for, and the shape arithmetic of
``x.view(x.size(0), -1)``.

Patterns, each found from its last node; every value inside one must have no reader outside it
(else the nodes are imported one by one, and refused where no layer computes them):

- swish: ``x * Sigmoid(x)`` and ``x * Sigmoid(beta * x)`` -> ``Swish(beta)`` (torch's ``SiLU``);
- GELU: ``(x * (1 + Erf(x / sqrt 2))) * 0.5`` and ``(x * 0.5) * (1 + Erf(x / sqrt 2))`` -> ``GELU()``
  (torch's ``F.gelu`` below opset 20, which has the ``Gelu`` operator);
- Softplus with beta: ``Softplus(beta * x) / beta`` -> ``Softplus(beta, math.inf)`` (torch's
  ``nn.Softplus(beta)`` for beta != 1; ONNX's Softplus never switches to x, see
  :class:`~refattr.layers.Softplus`).

The constants must be these exactly (sqrt 2 and 1 / sqrt 2 in float64 or rounded to float32, as a
float32 export stores them): a different constant is a different function, and is refused.

Shapes: ``Shape`` of a computed value is the vector (N, d1, ..., dk) with N the batch size, kept as
a symbol; ``Gather``, ``Unsqueeze``, ``Squeeze``, ``Concat`` and ``Cast`` of such vectors and int
constants are evaluated, so that a ``Reshape`` reading one sees whether it keeps the batch axis.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from ..layers import GELU, Softplus, Swish

__all__ = ["BATCH", "UNKNOWN", "Pattern", "find_patterns", "PATTERN_NAMES"]

#: What from_onnx's messages list as the recognised patterns.
PATTERN_NAMES = ("x * Sigmoid(x) and x * Sigmoid(beta * x) (swish)",
                 "0.5 * x * (1 + Erf(x / sqrt 2)) (GELU, as torch exports it below opset 20)",
                 "Softplus(beta * x) / beta (torch's Softplus(beta))")


class _Symbol:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


#: The batch size in a shape vector (``Shape(x)[0]``); a size the graph does not fix.
BATCH = _Symbol("N")
UNKNOWN = _Symbol("?")

_SQRT2 = {math.sqrt(2.0), float(np.float32(math.sqrt(2.0)))}
_SQRT_HALF = {math.sqrt(0.5), 1.0 / math.sqrt(2.0), float(np.float32(math.sqrt(0.5)))}


class Pattern(NamedTuple):
    """A run of nodes imported as one layer: ``make()`` builds it, reading tensor ``x``."""

    make: Callable[[], Any]
    x: str
    nodes: list


def _scalar(walker, name) -> float | None:
    """The value of ``name`` if it is a constant real scalar (or one-element tensor), else None."""
    if name not in walker.consts:
        return None
    value = np.asarray(walker.consts[name])
    if value.size != 1 or value.dtype.kind != "f":
        return None
    return float(value.reshape(-1)[0])


def _inner(walker, name, reader, op):
    """The node of type ``op`` computing ``name`` when ``reader`` is its only reader, else None."""
    node = walker.producer.get(name)
    if node is None or node.op_type != op or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    return node if walker.only_consumer_of(name, reader) else None


def _operands(node, constant):
    """(the other input, the constant's value) for a two-input node with one constant scalar
    ``constant(name)``, trying both orders; None where neither input is one."""
    if len(node.input) != 2:
        return None
    for k in (1, 0):
        value = constant(node.input[k])
        if value is not None:
            return node.input[1 - k], value
    return None


def _swish(walker, mul):
    if mul.op_type != "Mul" or len(mul.input) != 2:
        return None
    for gate, x in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
        hard = _inner(walker, gate, mul, "HardSigmoid")
        if hard is not None and hard.input[0] == x:
            walker.refuse(hard, "x * HardSigmoid(x) is HardSwish (x * relu6(x + 3) / 6), not swish")
        sigmoid = _inner(walker, gate, mul, "Sigmoid")
        if sigmoid is None:
            continue
        if sigmoid.input[0] == x:
            return Pattern(lambda: Swish(1.0), x, [sigmoid, mul])
        scale = _inner(walker, sigmoid.input[0], sigmoid, "Mul")
        found = scale and _operands(scale, lambda n: _scalar(walker, n))
        if found and found[0] == x:
            beta = found[1]
            return Pattern(lambda: Swish(beta), x, [scale, sigmoid, mul])
    return None


def _one_plus_erf(walker, name, reader):
    """(x, nodes) when ``name`` is 1 + Erf(x / sqrt 2) read only by ``reader``, else None."""
    add = _inner(walker, name, reader, "Add")
    one = add and _operands(add, lambda n: _scalar(walker, n))
    if not one or one[1] != 1.0:
        return None
    erf = _inner(walker, one[0], add, "Erf")
    if erf is None:
        return None
    for op, constants in (("Div", _SQRT2), ("Mul", _SQRT_HALF)):
        scale = _inner(walker, erf.input[0], erf, op)
        if scale is None or len(scale.input) != 2:
            continue
        value = _scalar(walker, scale.input[1])
        if op == "Mul" and value is None:
            value, x = _scalar(walker, scale.input[0]), scale.input[1]
        else:
            x = scale.input[0]
        if value in constants:
            return x, [scale, erf, add]
    return None


def _gelu(walker, last):
    """GELU from its last Mul: (x * (1 + erf)) * 0.5, or (x * 0.5) * (1 + erf)."""
    if last.op_type != "Mul" or len(last.input) != 2:
        return None
    half = _operands(last, lambda n: _scalar(walker, n))
    if half and half[1] == 0.5:                      # (x * s) * 0.5
        product = _inner(walker, half[0], last, "Mul")
        if product is None or len(product.input) != 2:
            return None
        for s, x in ((product.input[0], product.input[1]), (product.input[1], product.input[0])):
            found = _one_plus_erf(walker, s, product)
            if found and found[0] == x:
                return Pattern(GELU, x, found[1] + [product, last])
        return None
    for h, s in ((last.input[0], last.input[1]), (last.input[1], last.input[0])):   # (x * 0.5) * s
        scaled = _inner(walker, h, last, "Mul")
        half = scaled and _operands(scaled, lambda n: _scalar(walker, n))
        found = half and half[1] == 0.5 and _one_plus_erf(walker, s, last)
        if found and found[0] == half[0]:
            return Pattern(GELU, found[0], found[1] + [scaled, last])
    return None


def _softplus_beta(walker, div):
    if div.op_type != "Div" or len(div.input) != 2:
        return None
    beta = _scalar(walker, div.input[1])
    softplus = beta is not None and _inner(walker, div.input[0], div, "Softplus")
    scale = softplus and _inner(walker, softplus.input[0], softplus, "Mul")
    found = scale and _operands(scale, lambda n: _scalar(walker, n))
    if found and found[1] == beta and beta > 0:
        return Pattern(lambda: Softplus(beta, math.inf), found[0], [scale, softplus, div])
    return None


def find_patterns(walker) -> tuple[dict[int, Pattern], set[int]]:
    """({id(last node): its pattern}, ids of the nodes inside patterns), over the whole graph."""
    found: dict[int, Pattern] = {}
    inside: set[int] = set()
    for node in walker.nodes:
        if node.domain not in ("", "ai.onnx") or id(node) in inside:
            continue
        for match in (_gelu, _swish, _softplus_beta):
            pattern = match(walker, node)
            if pattern is not None:
                # a later pattern can end on a node an earlier one took (x * Sigmoid(x) * 0.5 ...): first wins
                if not any(id(n) in inside or id(n) in found for n in pattern.nodes):
                    found[id(node)] = pattern
                    inside.update(id(n) for n in pattern.nodes[:-1])
                break
    return found, inside


# Shape vectors ------------------------------------------------------------------------------------
def shape_of(example_shape, attrs) -> np.ndarray:
    """``Shape(x)`` for x of this example shape: (N, d1, ..., dk), sliced by start / end (opset 15)."""
    full = [BATCH, *(UNKNOWN if d is None else int(d) for d in example_shape)]
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return np.array(full[slice(start, end)], dtype=object)
