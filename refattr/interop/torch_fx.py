"""A PyTorch module that ``torch.fx`` can trace -> :class:`refattr.Graph`.

:func:`~refattr.interop.from_torch` sends every module that is not an ``nn.Sequential`` here. The
module is traced with ``torch.fx`` (symbolically: ``forward`` runs once on placeholder values and
each operation it applies is recorded as a node), and every node is mapped to refattr layers:

- ``placeholder``: an input of the graph (``forward(self, x1, x2)`` gives inputs ``x1``, ``x2``);
- ``call_module``: the layer(s) :func:`~refattr.interop.from_torch` makes of that module in an
  ``nn.Sequential`` (one conversion code for both); a nested ``nn.Sequential`` is traced through,
  one node per child; BatchNorm (eval) is folded into the Linear / Conv2d node before it when that
  node's value has no other reader, else kept as a linear layer of its own; Dropout (eval) and
  Identity vanish (their readers read their input);
- ``call_function`` / ``call_method``: the functional forms of those modules (``F.relu``,
  ``torch.sigmoid``, ``x.tanh()``, ``F.max_pool2d``, ...) become that module, built with the call's
  arguments and converted as above (so a function whose module no registered layer computes is
  refused as that module is); ``F.linear`` / ``F.conv1d`` / ``F.conv2d`` with parameters as their
  weight and bias; ``+`` / ``torch.add`` of two tensors -> ``Add``, ``-`` -> ``Add(weights=(1, -1))``,
  ``*`` -> ``Mul``, a tensor plus, minus, times or divided by a Python number (``x - 1``,
  ``0.5 * x``, ``x / 4``) -> ``Affine``, ``torch.cat`` -> ``Concat``, ``torch.flatten`` / ``x.flatten`` -> ``Flatten``,
  ``x.view`` / ``x.reshape`` with the batch axis as ``x.size(0)``, ``x.shape[0]`` or ``-1`` ->
  ``Reshape``;
- reductions over axes of each example, chosen from the input's example shape (known from
  ``input_shape``, or from the layers before it): ``mean`` -> ``AdaptiveAvgPool1D(1)`` /
  ``AdaptiveAvgPool2D`` over the trailing axes named (over channels: a 1x1 convolution, or a
  ``Dense`` on features, with weights 1/C); ``sum`` -> that mean then ``Affine(size)``; ``amax`` and
  ``max(x, dim)[0]`` / ``.values`` -> ``MaxPool1D`` / ``MaxPool2D`` whose kernel is the whole axis
  (the indices are refused where read); without ``keepdim`` the size-1 axes are dropped by a
  ``Flatten`` / ``Reshape``. A sum or max needs the axis sizes, so ``input_shape`` where the layers
  before it leave them open; a mean does not. ``squeeze(dim)`` / ``unsqueeze(dim)`` -> ``Reshape``;
  ``transpose`` / ``swapaxes`` / ``permute`` -> ``Permute``. The batch axis is never reduced,
  squeezed or moved;
- ``get_attr`` (a parameter or buffer): only as the weight or bias of ``F.linear`` / ``F.conv*``.

Anything else raises UnsupportedLayerError naming the fx node, its op and target, the line of
``forward`` it comes from and what is supported; nothing is imported half. The result is checked
against the module on a probe batch, as every import is.
"""

from __future__ import annotations

import numbers
import operator
import os
import warnings
from collections import Counter
from types import SimpleNamespace
from typing import Sequence

from .._typing import TorchModule
from ..errors import ArgumentError, ImportMismatchError, RefattrError, UnsupportedLayerError
from ..graph import Graph
from ..layers import Add, Affine, Concat, Conv2D, Dense, Flatten, Mul, Reshape
from . import _batchnorm as batchnorm
from ._torch_fx_shapes import ShapeOps
from ._torch_fx_values import REQUIRED, _Batch, _Indices, _MaxPair, _Param, _Shape, _Value, first_input
from .torch_model import (_batchnorm_affine, _check_import, _convert, _example_shape, _kind,
                          _refuse_what_changes_the_call, require_torch, supported_torch)

__all__ = ["from_traced", "function_node_names"]


#: Where a traced model most often departs from its fx graph; added to the import check's refusal.
_TRACE_HINT = ("for a traced module, also an in-place operation (a += b, x.relu_()) on a value that is read "
               "afterwards (torch.fx records it as a new value; the module overwrites the old one)")


def _tables(torch):
    """(functional forms as modules, joins, vanishing calls): target or method name -> entry."""
    F = torch.nn.functional
    inplace = (("inplace", False),)
    pool = (("kernel_size", REQUIRED), ("stride", None), ("padding", 0))
    as_module = {}
    for keys, name, params in (
            ((F.relu, F.relu_, torch.relu, torch.relu_, "relu", "relu_"), "ReLU", inplace),
            ((F.gelu,), "GELU", (("approximate", "none"),)),
            ((F.tanh, torch.tanh, torch.tanh_, "tanh", "tanh_"), "Tanh", ()),
            ((F.sigmoid, torch.sigmoid, torch.sigmoid_, "sigmoid", "sigmoid_"), "Sigmoid", ()),
            ((F.silu,), "SiLU", inplace),
            ((F.leaky_relu, F.leaky_relu_), "LeakyReLU", (("negative_slope", 0.01),) + inplace),
            ((F.elu, F.elu_), "ELU", (("alpha", 1.0),) + inplace),
            ((F.selu, F.selu_, torch.selu, torch.selu_), "SELU", inplace),
            ((F.softplus,), "Softplus", (("beta", 1.0), ("threshold", 20.0))),
            ((F.softmax, torch.softmax, "softmax"), "Softmax", (("dim", None), ("_stacklevel", 3), ("dtype", None))),
            ((F.log_softmax, torch.log_softmax, "log_softmax"), "LogSoftmax",
             (("dim", None), ("_stacklevel", 3), ("dtype", None))),
            ((F.adaptive_avg_pool1d,), "AdaptiveAvgPool1d", (("output_size", REQUIRED),)),
            ((F.adaptive_avg_pool2d,), "AdaptiveAvgPool2d", (("output_size", REQUIRED),)),
            ((F.max_pool1d,), "MaxPool1d", pool + (("dilation", 1), ("ceil_mode", False), ("return_indices", False))),
            ((F.max_pool2d,), "MaxPool2d", pool + (("dilation", 1), ("ceil_mode", False), ("return_indices", False))),
            ((F.avg_pool1d,), "AvgPool1d", pool + (("ceil_mode", False), ("count_include_pad", True))),
            ((F.avg_pool2d,), "AvgPool2d", pool + (("ceil_mode", False), ("count_include_pad", True),
                                                   ("divisor_override", None))),
            ((torch.flatten, "flatten"), "Flatten", (("start_dim", 0), ("end_dim", -1)))):
        for key in keys:
            as_module[key] = (name, params)
    joins = {}
    for keys, kind in (((operator.add, torch.add, "add", "add_"), "add"),
                       ((operator.sub, torch.sub, torch.subtract, "sub", "subtract", "sub_"), "sub"),
                       ((operator.mul, torch.mul, "mul", "mul_"), "mul"),
                       ((operator.truediv, torch.div, torch.true_divide, "div", "div_", "true_divide"), "div"),
                       ((torch.cat, torch.concat, torch.concatenate), "cat")):
        for key in keys:
            joins[key] = kind
    vanish = {"contiguous": (), F.dropout: (("p", 0.5), ("training", True), ("inplace", False)),
              F.dropout1d: (("p", 0.5), ("training", True), ("inplace", False)),
              F.dropout2d: (("p", 0.5), ("training", True), ("inplace", False))}
    shaping = {}
    for keys, kind in (((torch.mean, "mean"), "mean"), ((torch.sum, "sum"), "sum"), ((torch.amax, "amax"), "amax"),
                       ((torch.max, "max"), "max"), ((torch.squeeze, "squeeze"), "squeeze"),
                       ((torch.unsqueeze, "unsqueeze"), "unsqueeze"),
                       ((torch.transpose, torch.swapaxes, torch.swapdims, "transpose", "swapaxes", "swapdims"),
                        "transpose"), ((torch.permute, "permute"), "permute")):
        for key in keys:
            shaping[key] = kind
    return as_module, joins, vanish, shaping


def _qualified(target) -> str:
    """How a user writes ``target``: F.relu, torch.cat, operator.add, Tensor.view (a method name)."""
    import torch

    if isinstance(target, str):
        return f"Tensor.{target}"
    name = getattr(target, "__name__", None)
    for prefix, namespace in (("F", torch.nn.functional), ("torch", torch), ("operator", operator)):
        if name is not None and getattr(namespace, name, None) is target:
            return f"{prefix}.{name}"
    try:
        from torch.fx.node import _get_qualified_name

        return _get_qualified_name(target)
    except Exception:  # a target torch cannot name: its repr says what it is
        return repr(target)


def _source_line(node) -> str:
    """'file:line: code' of the last frame of ``forward`` code outside torch in the node's stack
    trace (recorded by the tracer), or ''."""
    import torch

    trace = node.meta.get("stack_trace") or ""
    lines = trace.strip("\n").splitlines()
    torch_dir = os.path.dirname(torch.__file__)
    found = ""
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith('File "'):
            path, _, rest = text[6:].partition('", line ')
            if not path.startswith(torch_dir):
                code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].strip().startswith('File "') \
                    else ""
                found = f"{path}:{rest.split(',')[0]}: {code}"
    return found


class _Importer(ShapeOps):
    """Maps the nodes of one fx graph, in order, to refattr nodes (see the module docstring)."""

    def __init__(self, torch, module, graph, input_shapes=None):
        self.torch, self.nn, self.module, self.graph = torch, torch.nn, module, graph
        self.input_shapes = input_shapes     # one example shape per input, or None (not given)
        self.shapes: dict[str, tuple | None] = {}   # value name -> example shape (None: a size or rank unknown)
        self.as_module, self.joins, self.vanish, self.shaping = _tables(torch)
        self.order = {node: i for i, node in enumerate(graph.nodes)}
        self.values: dict = {}
        self.inputs: list[str] = []
        self.nodes: list[tuple] = []
        self.affine: dict[str, tuple] = {}   # BatchNorm node name -> (scale, shift), for folding
        self.output = None

    # messages ---------------------------------------------------------------------------------
    def where(self, node) -> str:
        line = _source_line(node)
        at = f", at {line}" if line else ""
        target = node.target if node.op in ("call_module", "get_attr", "placeholder", "output") \
            else _qualified(node.target)
        return f"fx node {node.name!r} ({node.op} {target}{at})"

    def supported(self) -> str:
        F = self.torch.nn.functional
        keys = (*self.as_module, *self.joins, *self.vanish, *self.shaping, F.linear, F.conv1d, F.conv2d,
                self.torch.reshape)
        functions = sorted({_qualified(k) for k in keys if not isinstance(k, str)})
        methods = sorted({_qualified(k) for k in (*keys, "view", "reshape", "size") if isinstance(k, str)})
        return (f"Supported: call_module of {supported_torch()}; call_function of {', '.join(functions)} "
                f"(operator.add is +), x.shape[0]; call_method of {', '.join(methods)}; get_attr only as the weight "
                f"or bias of F.linear / F.conv1d / F.conv2d")

    def refuse(self, node, reason):
        raise UnsupportedLayerError(f"{self.where(node)}: {reason}. {self.supported()}")

    # values -----------------------------------------------------------------------------------
    def resolve(self, arg):
        from torch.fx.node import map_arg

        return map_arg(arg, lambda n: self.values[n])

    def tensor(self, node, value, what="input"):
        """``value`` as the name of a refattr value, or refuse saying what it is instead."""
        if isinstance(value, _Value):
            return value
        if isinstance(value, _Param):
            self.refuse(node, f"its {what} is the module's tensor {value.target!r} (a get_attr); refattr imports "
                              f"a parameter or buffer only as the weight or bias of F.linear / F.conv1d / "
                              f"F.conv2d (or inside a module); use a layer (nn.Linear, nn.Conv2d) instead")
        if isinstance(value, (numbers.Number, _Batch)):
            self.refuse(node, f"its {what} is the Python number {value!r}, not a tensor computed from the inputs "
                              f"(a tensor plus, minus, times or divided by a number imports as Affine; here the "
                              f"number stands where a tensor is needed)")
        if isinstance(value, _MaxPair):
            self.refuse(node, f"its {what} is the pair (values, indices) that max(x, dim) returns; take its "
                              f"values, max(x, dim)[0] or max(x, dim).values (or write x.amax(dim))")
        if isinstance(value, _Indices):
            self.refuse(node, f"its {what} is the indices of {value.what} (where the maxima are): an integer "
                              f"tensor, which no attribution differentiates; refattr imports only the values "
                              f"(max(x, dim)[0], max(x, dim).values, x.amax(dim))")
        self.refuse(node, f"its {what} is {value!r}, not a tensor computed from the inputs")

    def emit(self, node, layers, reads):
        """Add ``layers`` as a chain of refattr nodes reading ``reads``; the last one takes the fx
        node's name (earlier ones '<name>.<i>', a name fx never gives). Each node's example shape
        is recorded (None where a size or the rank is not known: no ``input_shape``)."""
        for i, layer in enumerate(layers):
            name = node.name if i == len(layers) - 1 else f"{node.name}.{i}"
            self.nodes.append((name, layer, reads))
            shape = self.shapes.get(reads) if isinstance(reads, str) else tuple(self.shapes.get(r) for r in reads)
            try:
                self.shapes[name] = layer.output_shape(shape)
            except (ValueError, TypeError):   # the import check reports a module that does not fit
                self.shapes[name] = None
            reads = name
        return _Value(reads)

    def check_in_place(self, node, mutated):
        later = [u.name for u in mutated.users if u is not node and self.order[u] > self.order[node]]
        if later:
            self.refuse(node, f"works in place on {mutated.name!r}, which {later} read afterwards; torch.fx records "
                              f"the result as a new value, so the traced graph would read the old one while the "
                              f"module reads the overwritten one; compute it out of place (inplace=False, "
                              f"F.relu(x) instead of x.relu_())")

    def module_layers(self, node, path, m):
        """The refattr layers the Sequential importer makes of module ``m`` (at ``path``)."""
        nn = self.nn
        kind = _kind(m)
        if kind in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d):
            if m.training and kind is not nn.Identity:
                self.refuse(node, f"{kind.__name__} in training mode (random); call model.eval()")
            return []
        try:
            layers, _ = _convert(SimpleNamespace(_modules={path: m}))
        except RefattrError as exc:
            # _convert describes a module by its position in a Sequential; here the fx node locates it
            text = str(exc).replace(" at position 0 of the flattened Sequential", "").replace(" at position 0:", ":")
            raise type(exc)(f"{self.where(node)}: {text}") from None
        if getattr(m, "inplace", False):
            self.check_in_place(node, first_input(node))
        if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            self.affine[node.name] = _batchnorm_affine(path, 0, m)
        return layers

    # nodes ------------------------------------------------------------------------------------
    def run(self):
        for node in self.graph.nodes:
            self.values[node] = getattr(self, f"op_{node.op}")(node)
        return self

    def op_placeholder(self, node):
        self.inputs.append(node.name)
        given = self.input_shapes
        self.shapes[node.name] = None if given is None else tuple(given[len(self.inputs) - 1])
        return _Value(node.name)

    def op_get_attr(self, node):
        tensor = self.module
        for part in node.target.split("."):
            tensor = getattr(tensor, part)
        return _Param(target=node.target, tensor=tensor)

    def op_output(self, node):
        value = self.resolve(node.args[0])
        if isinstance(value, (tuple, list, dict)):
            self.refuse(node, f"the module returns {type(value).__name__} of values; refattr imports a module with "
                              f"one output tensor (N, n_outputs)")
        self.output = self.tensor(node, value, "returned value")

    def op_call_module(self, node):
        m = self.module.get_submodule(node.target)
        if node.kwargs or len(node.args) != 1:
            self.refuse(node, f"called with {len(node.args)} arguments {dict(node.kwargs) or ''}; a module "
                              f"imports as a layer of one tensor input")
        x = self.tensor(node, self.resolve(node.args[0]))
        layers = self.module_layers(node, node.target, m)
        return self.emit(node, layers, x) if layers else x

    def op_call_method(self, node):
        return self.call(node, node.target)

    def op_call_function(self, node):
        return self.call(node, node.target)

    def call(self, node, key):
        args, kwargs = tuple(self.resolve(tuple(node.args))), dict(self.resolve(dict(node.kwargs)))
        if key in self.as_module:
            return self.functional_module(node, key, args, kwargs)
        if key in self.joins:
            return getattr(self, f"join_{self.joins[key]}")(node, args, kwargs)
        if key in self.vanish:
            bound = self.bind(node, self.vanish[key], args[1:], kwargs)
            if bound.get("training") and bound.get("p") != 0:
                self.refuse(node, "dropout with training=True (random); pass training=self.training and call "
                                  "model.eval()")
            return self.tensor(node, args[0])
        if key in ("view", "reshape") or key is self.torch.reshape:
            return self.reshape(node, args, kwargs)
        if key in self.shaping:
            return getattr(self, f"shape_{self.shaping[key]}")(node, args, kwargs)
        if key is operator.getitem and isinstance(args[0], _MaxPair) and args[1] in (0, 1):
            return args[0].values if args[1] == 0 else _Indices(what=f"max(x, dim) ({self.where(node)}: [1])")
        if key is getattr and len(args) == 2 and isinstance(args[0], _MaxPair) and args[1] in ("values", "indices"):
            return args[0].values if args[1] == "values" else _Indices(
                what=f"max(x, dim) ({self.where(node)}: .indices)")
        if key == "size":
            self.tensor(node, args[0])
            if len(args) == 1 and not kwargs:
                return _Shape(of=args[0])
            if (args[1:] or tuple(kwargs.values())) == (0,):
                return _Batch()
            self.refuse(node, "reads a size other than the batch size (axis 0); write sizes as Python ints")
        if key is getattr and len(args) == 2 and args[1] == "shape" and isinstance(args[0], _Value):
            return _Shape(of=args[0])
        if key is operator.getitem and isinstance(args[0], _Shape) and args[1] == 0:
            return _Batch()
        if key is self.torch.nn.functional.linear or key in (self.torch.nn.functional.conv1d,
                                                             self.torch.nn.functional.conv2d):
            return self.weighted(node, key, args, kwargs)
        self.refuse(node, "no refattr layer computes it")

    def bind(self, node, params, args, kwargs):
        """The call's arguments after its input, by name, with the function's defaults."""
        names = [p for p, _ in params]
        if len(args) > len(names) or set(kwargs) - set(names):
            extra = sorted(set(kwargs) - set(names)) or list(args[len(names):])
            self.refuse(node, f"unexpected arguments {extra}; refattr reads {names or 'no arguments'}")
        bound = dict(params)
        bound.update(zip(names, args))
        bound.update(kwargs)
        missing = [p for p, v in bound.items() if v is REQUIRED]
        if missing:
            self.refuse(node, f"missing arguments {missing}")
        for p, v in bound.items():
            if isinstance(v, (_Value, _Param, _Batch, _Shape)):
                self.refuse(node, f"its argument {p} is computed in the graph ({v!r}); refattr needs it as a "
                                  f"Python constant")
        return bound

    def functional_module(self, node, key, args, kwargs):
        name, params = self.as_module[key]
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        bound = self.bind(node, params, args[1:], kwargs)
        if bound.pop("dtype", None) is not None:
            self.refuse(node, "a dtype argument; refattr computes in float64")
        bound.pop("_stacklevel", None)
        if (key if isinstance(key, str) else getattr(key, "__name__", "")).endswith("_"):
            self.check_in_place(node, first_input(node))     # x.relu_(), torch.relu_(x); inplace=True: module_layers
        try:
            m = getattr(self.nn, name)(**bound)
        except Exception as exc:  # torch's own validation of the arguments
            self.refuse(node, f"torch.nn.{name}({bound}) cannot be built: {type(exc).__name__}: {exc}")
        layers = self.module_layers(node, node.name, m.eval())
        return self.emit(node, layers, x)

    def weighted(self, node, key, args, kwargs):
        nn, F = self.nn, self.torch.nn.functional
        conv = key is not F.linear
        params = (("weight", REQUIRED), ("bias", None)) + (
            (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)) if conv else ())
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        names = [p for p, _ in params]
        tensors = dict(zip(names, args[1:3]))
        tensors.update({k: kwargs.pop(k) for k in ("weight", "bias") if k in kwargs})
        if tensors.get("weight") is None:
            self.refuse(node, "no weight given")
        for k, v in tensors.items():
            if v is not None and not isinstance(v, _Param):
                self.refuse(node, f"its {k} is {v!r}, not a parameter or buffer of the module; refattr imports "
                                  f"F.linear / F.conv* whose weight and bias are the module's tensors as stored")
        bound = self.bind(node, params[2:], args[3:], kwargs)
        weight = tensors["weight"].tensor
        bias = None if tensors.get("bias") is None else tensors["bias"].tensor
        try:
            # built on the meta device (no memory, no draw from torch's random generator), then given
            # the module's own tensors
            if conv:
                cls = nn.Conv1d if key is F.conv1d else nn.Conv2d
                m = cls(weight.shape[1] * bound["groups"], weight.shape[0], tuple(weight.shape[2:]),
                        bias=bias is not None, device="meta", **bound)
            else:
                m = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
            m.weight = nn.Parameter(weight.detach(), requires_grad=False)
            if bias is not None:
                m.bias = nn.Parameter(bias.detach(), requires_grad=False)
        except Exception as exc:  # torch's own validation (shapes, padding='same' with stride > 1, ...)
            self.refuse(node, f"its weight {tuple(weight.shape)} and arguments {bound} make no "
                              f"{'convolution' if conv else 'linear layer'}: {type(exc).__name__}: {exc}")
        return self.emit(node, self.module_layers(node, node.name, m), x)

    def operands(self, node, args, kwargs, params=()):
        """The two tensors of a binary op (``input``, ``other``) and its other arguments, bound."""
        given = dict(zip(("input", "other"), args[:2]))
        given.update({k: kwargs.pop(k) for k in ("input", "other") if k in kwargs})
        if len(given) != 2:
            self.refuse(node, f"expected two operands, got {len(given)}")
        bound = self.bind(node, params, args[2:], kwargs)
        if isinstance(node.target, str) and node.target.endswith("_"):
            self.check_in_place(node, first_input(node))
        a = self.tensor(node, given["input"], "first operand")
        return a, self.tensor(node, given["other"], "second operand"), bound

    def with_number(self, node, args, kwargs, params=()):
        """(tensor, number, number first, bound) when exactly one operand is a Python number (a
        tensor plus or times a constant), else None."""
        given = list(args[:2]) + [kwargs[k] for k in ("input", "other") if k in kwargs]
        numbers_given = [isinstance(v, numbers.Number) and not isinstance(v, bool) for v in given]
        if len(given) != 2 or numbers_given.count(True) != 1:
            return None
        rest = dict(kwargs)
        for k in ("input", "other"):
            rest.pop(k, None)
        bound = self.bind(node, params, args[2:], rest)
        if isinstance(node.target, str) and node.target.endswith("_"):
            self.check_in_place(node, first_input(node))
        first = numbers_given[0]
        tensor = self.tensor(node, given[1] if first else given[0], "operand")
        return tensor, float(given[0] if first else given[1]), first, bound

    def join_add(self, node, args, kwargs, sign=1.0):
        constant = self.with_number(node, args, kwargs, (("alpha", 1),))
        if constant is not None:           # x + c, c + x, x - c, c - x (alpha scales the second operand)
            tensor, c, first, bound = constant
            alpha = float(bound["alpha"])
            layer = Affine(sign * alpha, c) if first else Affine(1.0, sign * alpha * c)
            return self.emit(node, [layer], tensor)
        a, b, bound = self.operands(node, args, kwargs, (("alpha", 1),))
        weight = sign * bound["alpha"]
        return self.emit(node, [Add(None if weight == 1 else (1.0, float(weight)))], (a, b))

    def join_sub(self, node, args, kwargs):
        return self.join_add(node, args, kwargs, sign=-1.0)

    def join_mul(self, node, args, kwargs):
        constant = self.with_number(node, args, kwargs)
        if constant is not None:           # x * c, c * x
            tensor, c, _, _ = constant
            return self.emit(node, [Affine(c)], tensor)
        a, b, _ = self.operands(node, args, kwargs)
        return self.emit(node, [Mul()], (a, b))

    def join_div(self, node, args, kwargs):
        constant = self.with_number(node, args, kwargs, (("rounding_mode", None),))
        if constant is None or constant[2] or constant[3]["rounding_mode"] is not None or constant[1] == 0:
            self.refuse(node, "only a tensor divided by a non-zero Python number (x / c, true division) is "
                              "supported; a division by a tensor has no refattr layer")
        tensor, c, _, _ = constant
        return self.emit(node, [Affine(1.0 / c)], tensor)

    def join_cat(self, node, args, kwargs):
        dim_names = ("dim", "axis")
        dim = next((kwargs.pop(k) for k in dim_names if k in kwargs), args[1] if len(args) > 1 else 0)
        values = args[0] if args else kwargs.pop("tensors", ())
        if len(args) > 2 or kwargs:
            self.refuse(node, f"unexpected arguments {list(args[2:]) + sorted(kwargs)}")
        reads = tuple(self.tensor(node, v, "joined value") for v in values)
        if len(reads) == 1:
            return reads[0]
        try:
            layer = Concat(dim)
        except ArgumentError as exc:
            self.refuse(node, str(exc))
        return self.emit(node, [layer], reads)

    def reshape(self, node, args, kwargs):
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        given = args[1:] or (kwargs.pop("shape", None) or kwargs.pop("size", None),)
        sizes = tuple(given[0]) if len(given) == 1 and isinstance(given[0], (tuple, list)) else tuple(given)
        if kwargs or not sizes or sizes == (None,):
            self.refuse(node, f"expected the new shape, got arguments {args[1:]} {kwargs}")
        batch, rest = sizes[0], tuple(sizes[1:])
        keeps_batch = isinstance(batch, _Batch) or (batch == -1 and -1 not in rest)
        if not keeps_batch:
            self.refuse(node, f"reshapes to {tuple('N' if isinstance(s, _Batch) else s for s in sizes)}; refattr "
                              f"keeps the batch axis: its first size must be x.size(0), x.shape[0] or -1 (with no "
                              f"other -1), e.g. x.view(x.size(0), -1)")
        if any(not isinstance(s, numbers.Integral) or isinstance(s, bool) for s in rest):
            self.refuse(node, f"sizes {rest} after the batch axis must be Python ints")
        if not rest:
            self.refuse(node, "reshapes each example to a scalar; keep at least one axis")
        try:
            layer = Flatten() if rest == (-1,) else Reshape(rest)
        except ArgumentError as exc:
            self.refuse(node, str(exc))
        return self.emit(node, [layer], x)


    # reductions, squeeze / unsqueeze, transpose / permute: layers chosen from the input's shape -----
def _fold_batchnorms(nodes, affine, output):
    """Fold each BatchNorm node into the Dense / Conv2D node it reads when nothing else reads that
    node's value (DeepLIFT's RevealCancel splits per linear layer, so folding is kept where the
    Sequential importer folds); returns (nodes, the output's name)."""
    reads = Counter(r for _, _, rs in nodes for r in ((rs,) if isinstance(rs, str) else rs))
    reads[output] += 1
    alias: dict[str, str] = {}
    out: list[tuple] = []
    index: dict[str, int] = {}
    for name, layer, rs in nodes:
        rs = alias.get(rs, rs) if isinstance(rs, str) else tuple(alias.get(r, r) for r in rs)
        source = index.get(rs) if isinstance(rs, str) else None
        if name in affine and source is not None and type(out[source][1]) in (Dense, Conv2D) and reads[rs] == 1:
            out[source] = (rs, batchnorm.fold(out[source][1], *affine[name]), out[source][2])
            alias[name] = rs
            reads[rs] = reads[name]
            continue
        index[name] = len(out)
        out.append((name, layer, rs))
    return out, alias.get(output, output)


def _live(nodes, output):
    """The nodes that feed ``output`` (torch.fx keeps values that forward computed and never used)."""
    needed, kept = {output}, []
    for name, layer, rs in reversed(nodes):
        if name in needed:
            kept.append((name, layer, rs))
            needed.update((rs,) if isinstance(rs, str) else rs)
    return kept[::-1]


def _input_shapes(input_shape, names):
    """One example shape per input (None: not given)."""
    if input_shape is None:
        return None
    one = not isinstance(input_shape, (str, bytes)) and hasattr(input_shape, "__iter__") and \
        all(isinstance(d, numbers.Integral) for d in input_shape)
    if len(names) == 1 and one:
        return (_example_shape(input_shape),)
    shapes = tuple(input_shape) if hasattr(input_shape, "__iter__") and not one else None
    if shapes is None or len(shapes) != len(names):
        raise ArgumentError(f"input_shape: the module's forward takes {len(names)} inputs {names}; pass one "
                            f"example shape per input (no batch axis), e.g. input_shape=[(4,), (3, 8, 8)], got "
                            f"{input_shape!r}")
    return tuple(_example_shape(s) for s in shapes)


def _trace(module):
    import torch.fx

    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tracer.trace(module)
    except Exception as exc:  # tracing runs the user's forward, which may raise anything
        raise UnsupportedLayerError(
            f"module: torch.fx cannot trace {type(module).__name__}.forward ({type(exc).__name__}: {exc}). refattr "
            f"imports a module that is not an nn.Sequential by tracing it with torch.fx.symbolic_trace, which runs "
            f"forward once on symbolic values: Python control flow on tensor values (if x.sum() > 0, a loop over "
            f"a tensor) has no symbolic form. Write the model as an nn.Sequential, or without Python control flow "
            f"on tensor values") from exc


def from_traced(module: TorchModule, input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None) -> Graph:
    """Import ``module`` (any ``torch.nn.Module`` that ``torch.fx`` can trace) as a :class:`refattr.Graph`.

    Called by :func:`~refattr.interop.from_torch` for every module that is not an ``nn.Sequential``
    (see the module docstring for what maps to what). ``input_shape`` is one example's shape, or
    with several inputs a list of them in the order of ``forward``'s arguments (needed then: the
    import check draws a probe per input).

    Raises
    ------
    UnsupportedLayerError
        When torch.fx cannot trace the module (naming torch.fx's error), and for a node no refattr
        layer computes, naming the fx node, its op and target, and its line in ``forward``.
    ImportMismatchError
        Hooks or patched forwards (as for an ``nn.Sequential``), and an import whose output on the
        probe batch differs from the module's.
    """
    torch = require_torch()
    _refuse_what_changes_the_call(module)
    graph = _trace(module)
    names = [node.name for node in graph.nodes if node.op == "placeholder"]
    if not names:
        raise UnsupportedLayerError(f"module: {type(module).__name__}.forward takes no tensor input")
    shapes = _input_shapes(input_shape, names)
    importer = _Importer(torch, module, graph, shapes).run()
    nodes, output = _fold_batchnorms(_live(importer.nodes, importer.output), importer.affine, importer.output)
    if not nodes:
        raise UnsupportedLayerError(f"module: {type(module).__name__}.forward returns its input {output!r} with "
                                    f"nothing computed; there is no layer to import")
    one = len(importer.inputs) == 1
    if not one and shapes is None:
        raise ArgumentError(f"input_shape: needed to check the import of a module with {len(importer.inputs)} "
                            f"inputs {importer.inputs}; pass one example shape per input, e.g. "
                            f"from_torch(module, input_shape=[(4,), (3, 8, 8)])")
    net = Graph(importer.inputs[0] if one else tuple(importer.inputs), nodes,
                input_shape=None if shapes is None else shapes[0] if one else shapes)
    try:
        _check_import(module, net, None if shapes is None else shapes[0] if one else shapes)
    except ImportMismatchError as exc:
        if "computes a different function" not in str(exc):
            raise
        raise ImportMismatchError(f"{exc}; {_TRACE_HINT}") from None
    return net


def function_node_names(module: TorchModule) -> frozenset[str]:
    """The fx names of the calls in ``module.forward`` that are functions or tensor methods
    (``F.relu``, ``torch.cat``, ``x.view``, ``a + b``), not modules.

    The nodes :func:`from_traced` makes of them carry these names (a call imported as several
    layers: ``name.0``, ``name.1``, ..., then ``name``). A peer that hooks modules (Captum's
    DeepLift, GuidedBackprop) does not see them: it passes their ordinary gradient.
    """
    return frozenset(node.name for node in _trace(module).nodes if node.op in ("call_function", "call_method"))


