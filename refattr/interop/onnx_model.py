"""A sequential ONNX graph -> :class:`refattr.Sequential`.

The onnx package is used only to read the graph (``numpy_helper`` for initializers); nothing is
executed by it here. :func:`onnx_forward` runs a model in onnxruntime (or ONNX's own reference
evaluator) to check an import.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import numpy as np

from ..errors import ShapeError, UnsupportedLayerError
from ..layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Swish, Tanh
from ..network import Sequential
from . import _batchnorm as batchnorm

__all__ = ["from_onnx", "onnx_forward", "require_onnx"]

SUPPORTED_ONNX = ("Gemm (transA=0), MatMul with a constant 2-D right operand, Add of a constant bias after "
                  "Gemm/MatMul/Conv, Conv (2-D, pads, strides, dilations, group, auto_pad), Relu, Tanh, "
                  "Sigmoid, x * Sigmoid(x) and x * Sigmoid(beta * x) (swish), Swish, Flatten (axis 1), "
                  "Reshape to (N, -1), MaxPool and AveragePool (2-D, ceil_mode 0, dilations 1), "
                  "BatchNormalization (inference), Identity, Dropout (inference), Constant")


def require_onnx():
    """Import onnx or raise an ImportError that says what to install."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("refattr.interop.from_onnx needs the onnx package: pip install onnx") from exc
    return onnx


def _load(model):
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise UnsupportedLayerError(f"model: expected an onnx.ModelProto, a path or serialized bytes, got "
                                f"{type(model).__module__}.{type(model).__name__}")


class _Walker:
    """Follows the one dynamic tensor from the graph input to the graph output."""

    def __init__(self, proto, input_shape):
        onnx = require_onnx()
        from onnx import helper, numpy_helper

        self.helper = helper
        graph = proto.graph
        self.consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.nodes = []
        self.index = {}  # id(node) -> position in graph.node
        for i, node in enumerate(graph.node):
            self.index[id(node)] = i
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self.consts[node.output[0]] = self._constant(node)
            else:
                self.nodes.append(node)
        self.consumers = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        inputs = [v for v in graph.input if v.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise UnsupportedLayerError(
                f"model: expected one graph input and one graph output (a sequential network), got inputs "
                f"{[v.name for v in inputs]} and outputs {[v.name for v in graph.output]}"
            )
        self.input = inputs[0]
        self.output = graph.output[0].name
        self.graph_outputs = {v.name for v in graph.output}
        if input_shape is None:
            dims = inputs[0].type.tensor_type.shape.dim
            input_shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                                for d in dims[1:]) if len(dims) >= 2 else None
        self.input_shape = input_shape
        self.onnx = onnx

    def _constant(self, node):
        from onnx import numpy_helper

        attr = node.attribute[0]
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        return np.asarray(self.helper.get_attribute_value(attr))

    def where(self, node) -> str:
        return f"node {self.index[id(node)]} ({node.op_type}{', ' + repr(node.name) if node.name else ''})"

    def refuse(self, node, reason):
        raise UnsupportedLayerError(f"{self.where(node)}: {reason}. Supported: {SUPPORTED_ONNX}")

    def attrs(self, node):
        out = {}
        for a in node.attribute:
            value = self.helper.get_attribute_value(a)
            out[a.name] = value.decode() if isinstance(value, bytes) else value
        return out

    def const(self, node, name, what):
        if name not in self.consts:
            self.refuse(node, f"{what} {name!r} is not a constant (initializer or Constant node); refattr "
                              f"imports sequential graphs, where only one tensor flows from layer to layer")
        return np.asarray(self.consts[name])

    def only_consumer_of(self, name, node):
        users = self.consumers.get(name, [])
        return users == [node] and name not in self.graph_outputs

    def unused(self, node, k):
        """True when the node's k-th output is absent or consumed by nobody."""
        return len(node.output) <= k or not node.output[k] or (
            not self.consumers.get(node.output[k]) and node.output[k] not in self.graph_outputs)


def _spatial_pads(walker, node, attrs, kernel, stride, dilation, shape):
    """(top, bottom, left, right) from ONNX pads [top, left, bottom, right] or auto_pad."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            walker.refuse(node, f"pads={pads}; expected 4 values for 2-D (x1_begin, x2_begin, x1_end, x2_end)")
        return (int(pads[0]), int(pads[2]), int(pads[1]), int(pads[3]))
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        walker.refuse(node, f"auto_pad={auto!r} is not an ONNX value")
    out = []
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        if stride[axis] == 1:
            total = extent - 1
        else:
            size = None if shape is None else shape[1 + axis]
            if size is None:
                walker.refuse(node, f"auto_pad={auto} with stride {stride[axis]} needs the input size, which the "
                                    f"graph input does not declare; pass input_shape= to from_onnx")
            total = max((math.ceil(size / stride[axis]) - 1) * stride[axis] + extent - size, 0)
        small, large = total // 2, total - total // 2
        out.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return (out[0][0], out[0][1], out[1][0], out[1][1])


def _bias_vector(walker, node, c, n_channels, image):
    """A constant added after a Dense (image=False) or Conv2D (image=True) as a per-channel vector."""
    arr = np.asarray(c, dtype=np.float64)
    while arr.ndim > 0 and arr.shape[0] == 1 and arr.ndim > (3 if image else 1):
        arr = arr[0]
    if arr.size == 1:
        return np.full(n_channels, float(arr.reshape(-1)[0]))
    if image and arr.shape == (n_channels, 1, 1):
        return arr.reshape(-1)
    if not image and arr.shape == (n_channels,):
        return arr
    walker.refuse(node, f"the added constant of shape {np.shape(c)} is not a per-channel bias for "
                        f"{n_channels} channels" + (" (expected (C, 1, 1) or (1, C, 1, 1))" if image else
                                                    " (expected (C,) or (1, C))"))


def _with_bias(layer, extra):
    bias = extra if layer.bias is None else layer.bias + extra
    if isinstance(layer, Dense):
        return Dense(layer.weight, bias)
    return Conv2D(layer.weight, bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  groups=layer.groups)


def from_onnx(model, input_shape=None) -> Sequential:
    """Convert a sequential ONNX graph into a :class:`refattr.Sequential`.

    Parameters
    ----------
    model : onnx.ModelProto, path or bytes
    input_shape : tuple of int, optional
        One example's shape. Defaults to what the graph input declares (symbolic sizes unknown).
        Needed only for ``auto_pad='SAME_*'`` with a stride above 1.

    Returns
    -------
    Sequential
        Forward outputs agree with onnxruntime (float64 where it implements the op, else ONNX's
        reference evaluator) to 1e-12 relative, tested for every supported op.

    Raises
    ------
    UnsupportedLayerError
        For an op or attribute refattr does not model (naming the node, its position in the graph
        and what is supported): HardSwish (x * relu6(x + 3) / 6 is not swish), ceil_mode=1,
        pooling dilations other than 1, Gemm transA=1, training-mode BatchNormalization or
        Dropout, and for non-sequential graphs (a tensor consumed by two nodes, except the
        x * Sigmoid(x) pattern; a second dynamic input to a node; several graph inputs or outputs).

    Notes
    -----
    - Gemm: Y = alpha A B' + beta C with B' = B^T if transB else B; imported as
      Dense(weight=alpha * (B if transB else B^T), bias=beta * C).
    - MatMul(X, B) with B of shape (in, out) is Dense(B^T); a following Add of a constant
      becomes its bias (likewise an Add after Conv).
    - ONNX pads are [top, left, bottom, right]; refattr's are (top, bottom, left, right).
    - AveragePool's count_include_pad defaults to 0 in ONNX (1 in PyTorch); pooling strides
      default to 1 in ONNX (to the kernel in PyTorch).
    - BatchNormalization folds into the preceding Gemm/MatMul/Conv, or becomes a diagonal Dense /
      depthwise 1x1 Conv2D (see :func:`refattr.interop.from_torch`).
    """
    proto = _load(model)
    walker = _Walker(proto, None if input_shape is None else tuple(input_shape))
    shape = walker.input_shape
    current = walker.input.name
    layers: list = []
    foldable = False
    visited = set()

    def emit(layer):
        nonlocal shape
        try:
            shape = layer.output_shape(shape) if shape is not None else None
        except ShapeError as exc:
            raise ShapeError(f"{walker.where(node)}: {exc}") from None
        layers.append(layer)

    while True:
        users = [n for n in walker.consumers.get(current, []) if id(n) not in visited]
        if current == walker.output:
            if users:
                raise UnsupportedLayerError(
                    f"model: the graph output {current!r} is also consumed by {walker.where(users[0])}; "
                    f"refattr imports sequential graphs only")
            break
        if not users:
            raise UnsupportedLayerError(f"model: tensor {current!r} is consumed by no node and is not the graph "
                                        f"output {walker.output!r}")
        if len(users) > 1:
            swish = _match_swish(walker, current, users)
            node = users[0]
            if swish is None:
                raise UnsupportedLayerError(
                    f"model: tensor {current!r} feeds {len(users)} nodes ("
                    + ", ".join(walker.where(u) for u in users)
                    + "); refattr imports sequential graphs only, where x * Sigmoid(x) (swish) is the one "
                      "recognised branch")
            beta, consumed, current = swish
            visited.update(id(n) for n in consumed)
            emit(Swish(beta))
            foldable = False
            continue
        node = users[0]
        visited.add(id(node))
        op = node.op_type
        a = walker.attrs(node)
        if node.domain not in ("", "ai.onnx"):
            walker.refuse(node, f"operator domain {node.domain!r}")
        dynamic = [name for name in node.input if name and name not in walker.consts]
        if dynamic != [current]:
            walker.refuse(node, f"it reads the dynamic tensors {dynamic}; refattr imports sequential graphs, "
                                f"where each node reads one tensor computed by the previous node")
        if node.input[0] != current and op not in ("Add",):
            walker.refuse(node, f"the flowing tensor {current!r} is not its first input")

        if op == "Gemm":
            if a.get("transA", 0):
                walker.refuse(node, "transA=1 (the batch axis would be transposed)")
            b = walker.const(node, node.input[1], "B").astype(np.float64)
            weight = b if a.get("transB", 0) else b.T
            alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
            if alpha != 1.0:
                weight = alpha * weight
            bias = None
            if len(node.input) > 2 and node.input[2]:
                c = walker.const(node, node.input[2], "C").astype(np.float64)
                bias = _bias_vector(walker, node, c, weight.shape[0], image=False)
                if beta != 1.0:
                    bias = beta * bias
            emit(Dense(weight, bias))
            foldable = True
        elif op == "MatMul":
            b = walker.const(node, node.input[1], "the right operand")
            if b.ndim != 2:
                walker.refuse(node, f"the right operand has shape {b.shape}; expected a 2-D (in, out) matrix")
            emit(Dense(b.astype(np.float64).T))
            foldable = True
        elif op == "Add":
            other = [name for name in node.input if name != current]
            if len(other) != 1 or not foldable:
                walker.refuse(node, "Add is supported only as the constant bias of the Gemm, MatMul or Conv "
                                    "directly before it")
            c = walker.const(node, other[0], "the added operand")
            layer = layers[-1]
            layers[-1] = _with_bias(layer, _bias_vector(walker, node, c, layer.weight.shape[0],
                                                        image=isinstance(layer, Conv2D)))
        elif op == "Conv":
            w = walker.const(node, node.input[1], "the weight").astype(np.float64)
            if w.ndim != 4:
                walker.refuse(node, f"weight of shape {w.shape}; only 2-D convolution (a 4-D weight) is supported")
            kernel = tuple(int(k) for k in w.shape[2:])
            if "kernel_shape" in a and tuple(a["kernel_shape"]) != kernel:
                walker.refuse(node, f"kernel_shape {a['kernel_shape']} differs from the weight's {kernel}")
            stride = tuple(a.get("strides", [1, 1]))
            dilation = tuple(a.get("dilations", [1, 1]))
            pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
            bias = None
            if len(node.input) > 2 and node.input[2]:
                bias = walker.const(node, node.input[2], "the bias").astype(np.float64)
            emit(Conv2D(w, bias, stride=stride, padding=pads, dilation=dilation, groups=int(a.get("group", 1))))
            foldable = True
        elif op in ("Relu", "Tanh", "Sigmoid"):
            emit({"Relu": ReLU, "Tanh": Tanh, "Sigmoid": Sigmoid}[op]())
            foldable = False
        elif op == "Swish":
            emit(Swish(float(a.get("alpha", 1.0))))
            foldable = False
        elif op == "HardSwish":
            walker.refuse(node, "HardSwish is x * relu6(x + 3) / 6, a piecewise function, not swish")
        elif op == "Flatten":
            axis = int(a.get("axis", 1))
            rank = None if shape is None else len(shape) + 1
            if axis != 1 and not (rank is not None and axis + rank == 1):
                walker.refuse(node, f"axis={axis}; only axis 1 (flatten each example) is supported")
            emit(Flatten())
            foldable = False
        elif op == "Reshape":
            target = [int(v) for v in walker.const(node, node.input[1], "the shape").reshape(-1)]
            per_example = None if shape is None or None in shape else int(np.prod(shape))
            ok = len(target) == 2 and (
                (target[1] == -1 and (target[0] > 0 or (target[0] == 0 and not a.get("allowzero", 0))))
                or (target[0] == -1 and target[1] > 0 and per_example in (None, target[1])))
            if not ok:
                walker.refuse(node, f"Reshape to {target}; only a reshape to (N, -1), (0, -1) or (-1, D) "
                                    f"(flatten each example) is supported")
            emit(Flatten())
            foldable = False
        elif op in ("MaxPool", "AveragePool"):
            if not walker.unused(node, 1):
                walker.refuse(node, "its Indices output is used")
            if a.get("ceil_mode", 0):
                walker.refuse(node, "ceil_mode=1; refattr pools in floor mode only")
            kernel = tuple(int(k) for k in a["kernel_shape"])
            if len(kernel) != 2:
                walker.refuse(node, f"kernel_shape={list(kernel)}; only 2-D pooling is supported")
            dilation = tuple(a.get("dilations", [1, 1]))
            if dilation != (1, 1):
                walker.refuse(node, f"dilations={list(dilation)}; only dilation 1 is supported for pooling")
            stride = tuple(a.get("strides", [1, 1]))
            pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
            try:
                if op == "MaxPool":
                    layer = MaxPool2D(kernel, stride=stride, padding=pads)
                else:
                    layer = AvgPool2D(kernel, stride=stride, padding=pads,
                                      count_include_pad=bool(a.get("count_include_pad", 0)))
            except ShapeError as exc:
                walker.refuse(node, str(exc))
            emit(layer)
            foldable = False
        elif op == "BatchNormalization":
            if a.get("training_mode", 0) or not all(walker.unused(node, k) for k in (1, 2)):
                walker.refuse(node, "training mode (batch statistics); export the model in eval mode")
            if not a.get("spatial", 1):
                walker.refuse(node, "spatial=0 (per-element statistics)")
            gamma, beta, mean, var = (walker.const(node, node.input[k], what).astype(np.float64) for k, what in
                                      zip(range(1, 5), ("scale", "bias", "mean", "variance")))
            scale, shift = batchnorm.affine_of(gamma, beta, mean, var, a.get("epsilon", 1e-5))
            if foldable:
                layers[-1] = batchnorm.fold(layers[-1], scale, shift)
            elif shape is not None and len(shape) in (1, 3):
                emit(batchnorm.as_layer(scale, shift, images=len(shape) == 3))
            else:
                walker.refuse(node, "a BatchNormalization that does not follow Gemm/MatMul/Conv needs a known "
                                    "input rank (2-D features or 4-D images); pass input_shape= to from_onnx")
            foldable = True
        elif op in ("Identity", "Dropout"):
            if op == "Dropout":
                if len(node.input) > 2 and node.input[2]:
                    if bool(np.asarray(walker.const(node, node.input[2], "training_mode")).reshape(-1)[0]):
                        walker.refuse(node, "training_mode is true (random)")
                if not walker.unused(node, 1):
                    walker.refuse(node, "its mask output is used")
        else:
            walker.refuse(node, "no refattr layer computes it")
        current = node.output[0]

    left = [n for n in walker.nodes if id(n) not in visited]
    if left:
        raise UnsupportedLayerError(
            f"model: {len(left)} node(s) are not on the path from the input to the output (first: "
            f"{walker.where(left[0])}); refattr imports sequential graphs only")
    if not layers:
        raise UnsupportedLayerError("model: the graph has no layers that compute anything")
    return Sequential(layers, input_shape=shape_or_none(walker.input_shape))


def shape_or_none(shape):
    return None if shape is None or None in shape else shape


def _match_swish(walker, x, users):
    """(beta, consumed nodes, output name) when ``users`` of x form x * Sigmoid(beta * x), else None."""
    if len(users) != 2:
        return None
    for gate_entry, mul in (users, users[::-1]):
        if mul.op_type != "Mul" or x not in mul.input:
            continue
        chain, beta = [gate_entry], 1.0
        if gate_entry.op_type == "HardSigmoid":
            walker.refuse(gate_entry, "x * HardSigmoid(x) is HardSwish (x * relu6(x + 3) / 6), not swish")
        if gate_entry.op_type == "Mul":  # x * beta, then Sigmoid
            others = [n for n in gate_entry.input if n != x]
            if len(others) != 1 or others[0] not in walker.consts:
                continue
            value = np.asarray(walker.consts[others[0]], dtype=np.float64)
            if value.size != 1:
                continue
            beta = float(value.reshape(-1)[0])
            scaled = gate_entry.output[0]
            nxt = walker.consumers.get(scaled, [])
            if len(nxt) != 1 or nxt[0].op_type != "Sigmoid" or scaled in walker.graph_outputs:
                continue
            chain.append(nxt[0])
        if chain[-1].op_type != "Sigmoid" or chain[-1].input[0] != (x if len(chain) == 1 else chain[0].output[0]):
            continue
        gate = chain[-1].output[0]
        if not walker.only_consumer_of(gate, mul) or sorted(mul.input) != sorted([x, gate]):
            continue
        return beta, chain + [mul], mul.output[0]
    return None


def onnx_forward(model, x, engine: str = "auto", return_engine: bool = False):
    """Run an ONNX model on x and return its (single) output as float64.

    ``engine``: "onnxruntime", "reference" (``onnx.reference.ReferenceEvaluator``, ONNX's own
    NumPy implementation of the operator semantics) or "auto": onnxruntime, falling back to the
    reference evaluator where onnxruntime has no kernel for the model's dtype (onnxruntime's CPU
    provider implements Conv and AveragePool in float32 only). The input is given in the model's
    declared element type (float64 for DOUBLE, float32 for FLOAT). Graph optimisations are off,
    so onnxruntime evaluates the graph as written.
    """
    onnx = require_onnx()
    proto = _load(model)
    elem = proto.graph.input[0].type.tensor_type.elem_type
    dtype = np.float64 if elem == onnx.TensorProto.DOUBLE else np.float32
    inputs = {v.name for v in proto.graph.initializer}
    name = [v.name for v in proto.graph.input if v.name not in inputs][0]
    feed = {name: np.ascontiguousarray(x, dtype=dtype)}
    used = engine
    out = None
    if engine in ("auto", "onnxruntime"):
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            out = session.run(None, feed)[0]
            used = "onnxruntime"
        except ImportError:
            if engine == "onnxruntime":
                raise ImportError("onnx_forward(engine='onnxruntime') needs onnxruntime: pip install onnxruntime")
        except Exception as exc:  # onnxruntime raises its own exception types
            if engine == "onnxruntime" or "NOT_IMPLEMENTED" not in str(exc):
                raise
    if out is None:
        if engine not in ("auto", "reference"):
            raise ValueError(f"engine: expected 'auto', 'onnxruntime' or 'reference', got {engine!r}")
        from onnx.reference import ReferenceEvaluator

        out = ReferenceEvaluator(proto).run(None, feed)[0]
        used = "onnx.reference"
    out = np.asarray(out, dtype=np.float64)
    return (out, used) if return_engine else out
