"""A sequential ONNX graph -> :class:`refattr.Sequential`.

The onnx package reads the graph (``numpy_helper`` for initializers, ``checker.check_node`` for
each node against its operator schema). :func:`onnx_forward` runs a model in onnxruntime (or
ONNX's own reference evaluator); :func:`from_onnx` uses it to check every import on a probe batch.

Files are read defensively (``_onnx_file.py``): a model's tensors may keep their values in
external files (``data_location=EXTERNAL``, ONNX's format for models over 2 GB); refattr reads
those only for a model loaded from its path, and only from files inside the model's folder. A
model given as bytes or as an ``onnx.ModelProto`` has no folder, and onnx would resolve its
external files against the working directory, so such a model is refused
(:class:`~refattr.errors.UnsafeFileError`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._typing import OnnxModel, PathLike
from ..errors import (ArgumentError, ImportMismatchError, RefattrError, ShapeError, UnsafeFileError,
                      UnsupportedLayerError)
from ..layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Swish
from ..layers import registry
from ..network import Sequential
from . import _batchnorm as batchnorm
from ._onnx_file import _external_location, _load, require_onnx

__all__ = ["from_onnx", "onnx_forward", "require_onnx", "supported_onnx"]

#: The ops with their own import code, with what of them is supported. Every other op a
#: registered layer names in ``onnx_ops`` is a single element-wise node imported through the
#: layer's declarations (``onnx_attributes``; :mod:`refattr.layers.registry`).
SPECIAL_ONNX = {"Gemm": "Gemm (transA=0)", "MatMul": "MatMul with a constant 2-D right operand",
                "Conv": "Conv (2-D, pads, strides, dilations, group, auto_pad)", "Flatten": "Flatten (axis 1)",
                "Reshape": "Reshape to (N, -1)", "MaxPool": "MaxPool (2-D, ceil_mode 0, dilations 1)",
                "AveragePool": "AveragePool (2-D, ceil_mode 0, dilations 1)"}
#: Ops and patterns that no one registered layer stands for: merged, folded, dropped or refused with a reason.
MERGED_ONNX = {"Add": "Add of a constant bias after Gemm/MatMul/Conv",
               "BatchNormalization": "BatchNormalization (inference)", "Identity": "Identity",
               "Dropout": "Dropout (inference)", "HardSwish": None}
PATTERNS_ONNX = ("x * Sigmoid(x) and x * Sigmoid(beta * x) (swish)", "Constant")


def supported_onnx() -> str:
    """What :func:`from_onnx` imports, read from the layer registry (for messages)."""
    names = []
    for entry in registry.registered():
        for op in entry.onnx_ops:
            attributes = ", ".join(entry.onnx_attributes)
            names.append(SPECIAL_ONNX.get(op, f"{op}({attributes})" if attributes else op))
    return ", ".join([*names, *(d for d in MERGED_ONNX.values() if d), *PATTERNS_ONNX])


def _imported(op: str) -> bool:
    """Whether from_onnx reads op type ``op`` (besides Constant and the Mul / Sigmoid of x * Sigmoid(x))."""
    return op in SPECIAL_ONNX or op in MERGED_ONNX or registry.by_onnx_op(op) is not None
#: Element types refattr reads from a tensor: real numbers (the weights are converted to float64).
REAL_TYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
              "UINT32", "UINT64", "BOOL")
#: Element types of a graph input refattr can attribute (floating point).
INPUT_TYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


# Reading the graph ---------------------------------------------------------------------------
def _dtype_name(elem_type) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)


def _array(tensor, what):
    """A TensorProto's values as a NumPy array, refusing what refattr does not read as real numbers."""
    from onnx import numpy_helper

    if _external_location(tensor) is not None:  # _load inlines or refuses these; never read one here
        raise UnsafeFileError(f"model: {what} keeps its values in an external file; load the model from its path")
    kind = _dtype_name(tensor.data_type)
    if kind not in REAL_TYPES:
        raise UnsupportedLayerError(f"model: {what} has element type {kind}; refattr reads real-valued tensors "
                                    f"({', '.join(REAL_TYPES)}): not complex numbers (whose imaginary part would "
                                    f"be lost), strings, or floats of fewer than 16 bits. Convert it to float32 or "
                                    f"float64")
    if any(d < 0 for d in tensor.dims):
        raise ArgumentError(f"model: {what} has dims {list(tensor.dims)}; ONNX tensor dims are sizes >= 0. "
                            f"The file is malformed: export the model again")
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise ArgumentError(f"model: {what} could not be read ({exc}): its stored values do not fill its "
                            f"dims {list(tensor.dims)} as {kind}. The file is malformed: export the model "
                            f"again") from None


def _input_shape(value, declared):
    """One example's shape: the ``input_shape`` argument, else what the graph input declares."""
    dims = value.type.tensor_type.shape.dim
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value < 1:
            raise ArgumentError(f"model: graph input {value.name!r} declares dimension {i} as {d.dim_value}; "
                                f"sizes are >= 1 (leave a size unknown with a name, dim_param). The file is "
                                f"malformed: export the model again")
    graph = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
    if declared is None:
        return graph if len(dims) >= 2 else None
    try:
        shape = tuple(declared)
    except TypeError:
        shape = None
    if shape is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                                for d in shape):
        raise ArgumentError(f"input_shape: expected a tuple of ints >= 1 (one example's shape, e.g. (3, 32, 32)), "
                            f"got {declared!r}")
    shape = tuple(int(d) for d in shape)
    if value.type.tensor_type.HasField("shape") and (
            len(shape) != len(graph) or any(g not in (None, d) for g, d in zip(graph, shape))):
        raise ArgumentError(f"input_shape: {shape} does not fit the graph input {value.name!r}, whose examples have "
                            f"shape [{', '.join('?' if g is None else str(g) for g in graph)}] (? = not fixed); pass "
                            f"a shape that fits it")
    return shape


class _Walker:
    """Follows the one dynamic tensor from the graph input to the graph output."""

    def __init__(self, proto, input_shape):
        onnx = require_onnx()
        from onnx import helper

        self.helper, self.onnx = helper, onnx
        self.schema_context = onnx.checker.C.CheckerContext()
        self.schema_context.ir_version = proto.ir_version
        self.schema_context.opset_imports = {o.domain: o.version for o in proto.opset_import}
        graph = proto.graph
        self.consts = {init.name: _array(init, f"initializer {init.name!r}") for init in graph.initializer}
        self.nodes = []
        self.index = {}  # id(node) -> position in graph.node
        for i, node in enumerate(graph.node):
            self.index[id(node)] = i
            if not node.output or not node.output[0]:
                self.invalid(node, "it has no output")
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self.validate(node)
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
        elem = _dtype_name(self.input.type.tensor_type.elem_type)  # UNDEFINED for a non-tensor input
        if elem not in INPUT_TYPES:
            raise UnsupportedLayerError(f"model: graph input {self.input.name!r} has element type {elem}; refattr "
                                        f"attributes floating-point tensor inputs ({', '.join(INPUT_TYPES)})")
        self.output = graph.output[0].name
        self.graph_outputs = {v.name for v in graph.output}
        self.input_shape = _input_shape(self.input, input_shape)

    def _constant(self, node):
        if len(node.attribute) != 1:
            self.invalid(node, f"it has {len(node.attribute)} attributes; a Constant has exactly one (value, "
                               f"value_float(s) or value_int(s))")
        attr = node.attribute[0]
        if attr.name == "value" and attr.type == self.onnx.AttributeProto.TENSOR:
            return _array(attr.t, f"{self.where(node)}: its value")
        value = self.attrs(node).get(attr.name)
        kinds = {"value_float": "f", "value_floats": "f", "value_int": "i", "value_ints": "i"}
        arr = np.asarray(value)
        if attr.name not in kinds or arr.dtype.kind != kinds[attr.name] or (attr.name.endswith("s") != (arr.ndim == 1)):
            self.refuse(node, f"a constant given as {attr.name!r} of type "
                              f"{self.onnx.AttributeProto.AttributeType.Name(attr.type)}; refattr reads value "
                              f"(a real tensor), value_float(s) and value_int(s)")
        return arr

    def where(self, node) -> str:
        return f"node {self.index[id(node)]} ({node.op_type}{', ' + repr(node.name) if node.name else ''})"

    def refuse(self, node, reason):
        """Valid ONNX that refattr does not model."""
        raise UnsupportedLayerError(f"{self.where(node)}: {reason}. Supported: {supported_onnx()}")

    def invalid(self, node, reason):
        """Not valid ONNX: a wrong attribute type or value, a missing input."""
        raise ArgumentError(f"{self.where(node)}: {reason}. The model is not valid ONNX (see the operator's "
                            f"page at https://onnx.ai/onnx/operators/): fix or export it again")

    def validate(self, node):
        """Check a node against its ONNX operator schema (input and output counts, attribute names,
        types and presence) with ``onnx.checker.check_node``."""
        try:
            self.onnx.checker.check_node(node, self.schema_context)
        except self.onnx.checker.ValidationError as exc:
            self.invalid(node, f"onnx.checker.check_node says: {str(exc).strip()}")

    def attrs(self, node):
        out = {}
        for a in node.attribute:
            try:
                value = self.helper.get_attribute_value(a)
            except ValueError:
                self.invalid(node, f"attribute {a.name!r} has no value (a reference or an unknown type)")
            out[a.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return out

    def int_attr(self, node, attrs, name, default, allowed=None, minimum=None):
        """An INT attribute, checked against the values ONNX allows."""
        value = attrs.get(name, default)
        if not isinstance(value, int) or (allowed is not None and value not in allowed) or (
                minimum is not None and value < minimum):
            expected = (f"one of {list(allowed)}" if allowed is not None else
                        f"an integer >= {minimum}" if minimum is not None else "an integer")
            self.invalid(node, f"attribute {name}={value!r}; expected {expected}")
        return value

    def ints_attr(self, node, attrs, name, default, length, minimum):
        """An INTS attribute of ``length`` values >= ``minimum``."""
        value = attrs.get(name, default)
        if not (isinstance(value, list) and len(value) == length and all(isinstance(v, int) and v >= minimum
                                                                         for v in value)):
            self.invalid(node, f"attribute {name}={value!r}; expected {length} integers >= {minimum} (2-D)")
        return tuple(value)

    def float_attr(self, node, attrs, name, default):
        """A finite FLOAT attribute."""
        value = attrs.get(name, default)
        if not isinstance(value, float) or not math.isfinite(value):
            self.invalid(node, f"attribute {name}={value!r}; expected a finite float")
        return value

    def inputs(self, node, low, high):
        """Check that the node has between low and high inputs."""
        if not low <= len(node.input) <= high:
            self.invalid(node, f"it has {len(node.input)} inputs; {node.op_type} takes "
                               f"{low if low == high else f'{low} to {high}'}")

    def const(self, node, name, what, kind="f"):
        """A constant input as an array; ``kind``: "f" a floating-point tensor (weights), "int64" an
        int64 tensor (shapes), "b" a boolean."""
        if name not in self.consts:
            self.refuse(node, f"{what} {name!r} is not a constant (initializer or Constant node); refattr "
                              f"imports sequential graphs, where only one tensor flows from layer to layer")
        arr = np.asarray(self.consts[name])
        if not (arr.dtype == np.int64 if kind == "int64" else arr.dtype.kind == kind):
            expected = {"f": "a floating-point type", "int64": "int64", "b": "bool"}[kind]
            self.invalid(node, f"{what} {name!r} has element type {arr.dtype}; expected {expected}")
        if kind == "f" and arr.size == 0:
            self.invalid(node, f"{what} {name!r} is empty (shape {arr.shape})")
        return arr

    def build(self, node, make, *args, **kwargs):
        """``make(*args, **kwargs)``, with a layer's own error prefixed by the node it came from."""
        try:
            return make(*args, **kwargs)
        except RefattrError as exc:
            raise type(exc)(f"{self.where(node)}: {exc}") from None

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
        pads = walker.ints_attr(node, attrs, "pads", [0, 0, 0, 0], 4, 0)
        return (pads[0], pads[2], pads[1], pads[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        walker.invalid(node, f"attribute auto_pad={auto!r}; expected NOTSET, VALID, SAME_UPPER or SAME_LOWER")
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


def _images(walker, node, shape):
    """Refuse a 2-D convolution or pooling whose input is known not to be images (C, H, W)."""
    if shape is not None and len(shape) != 3:
        walker.refuse(node, f"its input has per-example shape {shape}; 2-D convolution and pooling take "
                            f"images (C, H, W)")


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


def from_onnx(model: OnnxModel | PathLike | bytes, input_shape: Sequence[int] | None = None,
              check: bool = True) -> Sequential:
    """Convert a sequential ONNX graph into a :class:`refattr.Sequential`.

    Parameters
    ----------
    model : onnx.ModelProto, path or bytes
        A model whose tensors keep their values in external files (``data_location=EXTERNAL``)
        is read only from its path, and only from files inside the model's folder.
    input_shape : tuple of int, optional
        One example's shape. Defaults to what the graph input declares (symbolic sizes unknown).
        Needed only for ``auto_pad='SAME_*'`` with a stride above 1.
    check : bool, default True
        Run the ONNX model (:func:`onnx_forward`) and the imported network on a probe batch and
        raise :class:`~refattr.errors.ImportMismatchError` if they differ beyond rounding. The probe
        is ``numpy.random.default_rng(0).standard_normal((n, *input_shape))`` with n the graph's
        fixed batch size, or 2 where the batch size is symbolic. The check is skipped when one
        example's shape is not known (a symbolic size in the graph input and no ``input_shape``)
        and for float16 / bfloat16 models, whose own rounding would hide a wrong import.

    Returns
    -------
    Sequential
        Forward outputs agree with onnxruntime (float64 where it implements the op, else ONNX's
        reference evaluator) to 1e-12 relative, tested for every supported op; ``Gelu`` to the
        runtimes' own float32 precision (see Notes).

    Raises
    ------
    UnsupportedLayerError
        For an op, attribute or element type refattr does not model (naming the node, its
        position in the graph and what is supported): HardSwish (x * relu6(x + 3) / 6 is not
        swish), ceil_mode=1, pooling dilations other than 1, Gemm transA=1, training-mode
        BatchNormalization or Dropout, complex or string tensors, and non-sequential graphs (a
        tensor consumed by two nodes, except the x * Sigmoid(x) pattern; a second dynamic input to
        a node; several graph inputs or outputs).
    ArgumentError
        For a file that is not a valid ONNX model: empty, truncated or not ONNX at all, rejected
        by ``onnx.checker.check_model``, or with a malformed node (a missing input or attribute,
        an attribute of the wrong type or outside its range, negative dims, a Reshape shape
        that is not int64), naming the node.
    UnsafeFileError
        For external data in a model given as bytes or an ``onnx.ModelProto``, or stored outside
        the model's folder.
    ImportMismatchError
        When ``check`` finds that the imported network computes something else than the model.

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
    - The check's tolerance: 1e-12 relative (per example, against the largest output) for a
      float64 model, whose runtime evaluates the same float64 products and sums in another
      order; 1e-5 for a float32 model, which the runtime evaluates in float32 (unit roundoff
      6e-8) while refattr evaluates its weights in float64. Where the runtimes evaluate an op
      less precisely than that, its layer declares how precisely (``onnx_runtime_rtol`` in
      :mod:`refattr.layers.registry`) and the check uses the largest such tolerance of the layers
      it imported: 1e-5 for ``Gelu``, which onnxruntime and ``onnx.reference`` expand with float32
      pieces (``onnx.reference`` rounds erf to float32), while refattr's GELU is accurate to a few
      float64 ulps.
    """
    if not isinstance(check, (bool, np.bool_)):
        raise ArgumentError(f"check: expected True or False, got {check!r}")
    proto = _load(model)
    walker = _Walker(proto, input_shape)
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
            for n in consumed:
                walker.validate(n)
            visited.update(id(n) for n in consumed)
            emit(walker.build(node, Swish, beta))
            foldable = False
            continue
        node = users[0]
        visited.add(id(node))
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            walker.refuse(node, f"operator domain {node.domain!r}")
        if not _imported(op):
            walker.refuse(node, "no refattr layer computes it")
        walker.validate(node)
        a = walker.attrs(node)
        dynamic = [name for name in node.input if name and name not in walker.consts]
        if dynamic != [current]:
            walker.refuse(node, f"it reads the dynamic tensors {dynamic}; refattr imports sequential graphs, "
                                f"where each node reads one tensor computed by the previous node")
        if node.input[0] != current and op not in ("Add",):
            walker.refuse(node, f"the flowing tensor {current!r} is not its first input")

        if op == "Gemm":
            walker.inputs(node, 2, 3)
            if walker.int_attr(node, a, "transA", 0, allowed=(0, 1)):
                walker.refuse(node, "transA=1 (the batch axis would be transposed)")
            b = walker.const(node, node.input[1], "B").astype(np.float64)
            if b.ndim != 2:
                walker.invalid(node, f"B has shape {b.shape}; Gemm takes a 2-D matrix")
            weight = b if walker.int_attr(node, a, "transB", 0, allowed=(0, 1)) else b.T
            alpha, beta = walker.float_attr(node, a, "alpha", 1.0), walker.float_attr(node, a, "beta", 1.0)
            if alpha != 1.0:
                weight = alpha * weight
            bias = None
            if len(node.input) > 2 and node.input[2]:
                c = walker.const(node, node.input[2], "C").astype(np.float64)
                bias = _bias_vector(walker, node, c, weight.shape[0], image=False)
                if beta != 1.0:
                    bias = beta * bias
            emit(walker.build(node, Dense, weight, bias))
            foldable = True
        elif op == "MatMul":
            walker.inputs(node, 2, 2)
            b = walker.const(node, node.input[1], "the right operand")
            if b.ndim != 2:
                walker.refuse(node, f"the right operand has shape {b.shape}; expected a 2-D (in, out) matrix")
            emit(walker.build(node, Dense, b.astype(np.float64).T))
            foldable = True
        elif op == "Add":
            walker.inputs(node, 2, 2)
            other = [name for name in node.input if name != current]
            if len(other) != 1 or not foldable:
                walker.refuse(node, "Add is supported only as the constant bias of the Gemm, MatMul or Conv "
                                    "directly before it")
            c = walker.const(node, other[0], "the added operand")
            layer = layers[-1]
            layers[-1] = walker.build(node, _with_bias, layer, _bias_vector(
                walker, node, c, layer.weight.shape[0], image=isinstance(layer, Conv2D)))
        elif op == "Conv":
            walker.inputs(node, 2, 3)
            _images(walker, node, shape)
            w = walker.const(node, node.input[1], "the weight").astype(np.float64)
            if w.ndim != 4:
                walker.refuse(node, f"weight of shape {w.shape}; only 2-D convolution (a 4-D weight) is supported")
            kernel = tuple(int(k) for k in w.shape[2:])
            if "kernel_shape" in a and walker.ints_attr(node, a, "kernel_shape", None, 2, 1) != kernel:
                walker.invalid(node, f"kernel_shape {a['kernel_shape']} differs from the weight's {kernel}")
            stride = walker.ints_attr(node, a, "strides", [1, 1], 2, 1)
            dilation = walker.ints_attr(node, a, "dilations", [1, 1], 2, 1)
            pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
            bias = None
            if len(node.input) > 2 and node.input[2]:
                bias = walker.const(node, node.input[2], "the bias").astype(np.float64)
            emit(walker.build(node, Conv2D, w, bias, stride=stride, padding=pads, dilation=dilation,
                              groups=walker.int_attr(node, a, "group", 1, minimum=1)))
            foldable = True
        elif op == "HardSwish":
            walker.refuse(node, "HardSwish is x * relu6(x + 3) / 6, a piecewise function, not swish")
        elif op == "Flatten":
            axis = walker.int_attr(node, a, "axis", 1)
            rank = None if shape is None else len(shape) + 1
            if axis != 1 and not (rank is not None and axis + rank == 1):
                walker.refuse(node, f"axis={axis}; only axis 1 (flatten each example) is supported")
            emit(Flatten())
            foldable = False
        elif op == "Reshape":
            walker.inputs(node, 2, 2)
            spec = walker.const(node, node.input[1], "the shape", kind="int64")
            if spec.ndim != 1:
                walker.invalid(node, f"the shape tensor has shape {spec.shape}; Reshape takes a 1-D int64 tensor")
            target = [int(v) for v in spec]
            allowzero = walker.int_attr(node, a, "allowzero", 0, allowed=(0, 1))
            per_example = None if shape is None or None in shape else int(np.prod(shape))
            ok = len(target) == 2 and (
                (target[1] == -1 and (target[0] > 0 or (target[0] == 0 and not allowzero)))
                or (target[0] == -1 and target[1] > 0 and per_example in (None, target[1])))
            if not ok:
                walker.refuse(node, f"Reshape to {target}; only a reshape to (N, -1), (0, -1) or (-1, D) "
                                    f"(flatten each example) is supported")
            emit(Flatten())
            foldable = False
        elif op in ("MaxPool", "AveragePool"):
            walker.inputs(node, 1, 1)
            _images(walker, node, shape)
            if not walker.unused(node, 1):
                walker.refuse(node, "its Indices output is used")
            if walker.int_attr(node, a, "ceil_mode", 0, allowed=(0, 1)):
                walker.refuse(node, "ceil_mode=1; refattr pools in floor mode only")
            if "kernel_shape" not in a:
                walker.invalid(node, f"the attribute kernel_shape is missing; {op} requires it")
            if isinstance(a["kernel_shape"], list) and len(a["kernel_shape"]) != 2:
                walker.refuse(node, f"kernel_shape={a['kernel_shape']}; only 2-D pooling is supported")
            kernel = walker.ints_attr(node, a, "kernel_shape", None, 2, 1)
            dilation = walker.ints_attr(node, a, "dilations", [1, 1], 2, 1)
            if dilation != (1, 1):
                walker.refuse(node, f"dilations={list(dilation)}; only dilation 1 is supported for pooling")
            stride = walker.ints_attr(node, a, "strides", [1, 1], 2, 1)
            pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
            try:
                if op == "MaxPool":
                    layer = MaxPool2D(kernel, stride=stride, padding=pads)
                else:
                    include = walker.int_attr(node, a, "count_include_pad", 0, allowed=(0, 1))
                    layer = AvgPool2D(kernel, stride=stride, padding=pads, count_include_pad=bool(include))
            except ShapeError as exc:
                walker.refuse(node, str(exc))
            emit(layer)
            foldable = False
        elif op == "BatchNormalization":
            walker.inputs(node, 5, 5)
            if walker.int_attr(node, a, "training_mode", 0, allowed=(0, 1)) or not all(
                    walker.unused(node, k) for k in (1, 2)):
                walker.refuse(node, "training mode (batch statistics); export the model in eval mode")
            if not walker.int_attr(node, a, "spatial", 1, allowed=(0, 1)):
                walker.refuse(node, "spatial=0 (per-element statistics)")
            gamma, beta, mean, var = (walker.const(node, node.input[k], what).astype(np.float64) for k, what in
                                      zip(range(1, 5), ("scale", "bias", "mean", "variance")))
            eps = walker.float_attr(node, a, "epsilon", 1e-5)
            channels = layers[-1].weight.shape[0] if foldable else None if shape is None else shape[0]
            if any(p.shape != gamma.shape or p.ndim != 1 for p in (gamma, beta, mean, var)) or (
                    channels is not None and gamma.shape != (channels,)):
                walker.invalid(node, f"scale, bias, mean and variance have shapes "
                                     f"{[p.shape for p in (gamma, beta, mean, var)]}; expected one value per channel "
                                     f"({'C' if channels is None else channels},)")
            scale, shift = walker.build(node, batchnorm.affine_of, gamma, beta, mean, var, eps)
            if foldable:
                layers[-1] = walker.build(node, batchnorm.fold, layers[-1], scale, shift)
            elif shape is not None and len(shape) in (1, 3):
                emit(walker.build(node, batchnorm.as_layer, scale, shift, len(shape)))
            else:
                walker.refuse(node, "a BatchNormalization that does not follow Gemm/MatMul/Conv needs a known "
                                    "input rank (2-D features or 4-D images); pass input_shape= to from_onnx")
            foldable = True
        elif op in ("Identity", "Dropout"):
            walker.inputs(node, 1, 1 if op == "Identity" else 3)
            if op == "Dropout":
                if len(node.input) > 1 and node.input[1]:
                    ratio = walker.const(node, node.input[1], "ratio")
                    if ratio.size != 1:
                        walker.invalid(node, f"ratio has shape {ratio.shape}; expected a scalar")
                if len(node.input) > 2 and node.input[2]:
                    training = walker.const(node, node.input[2], "training_mode", kind="b")
                    if training.size != 1:
                        walker.invalid(node, f"training_mode has shape {training.shape}; expected a scalar")
                    if bool(training.reshape(-1)[0]):
                        walker.refuse(node, "training_mode is true (random)")
                if not walker.unused(node, 1):
                    walker.refuse(node, "its mask output is used")
        else:
            entry = registry.by_onnx_op(op)
            if entry is None:
                walker.refuse(node, "no refattr layer computes it")
            walker.inputs(node, 1, 1)
            emit(walker.build(node, entry.cls, **_declared_arguments(walker, node, a, entry)))
            foldable = False
        current = node.output[0]

    left = [n for n in walker.nodes if id(n) not in visited]
    if left:
        raise UnsupportedLayerError(
            f"model: {len(left)} node(s) are not on the path from the input to the output (first: "
            f"{walker.where(left[0])}); refattr imports sequential graphs only")
    if not layers:
        raise UnsupportedLayerError("model: the graph has no layers that compute anything")
    net = Sequential(layers, input_shape=shape_or_none(walker.input_shape))
    if check:
        _check_import(proto, walker, net)
    return net


def _declared_arguments(walker, node, attrs, entry):
    """The constructor arguments of ``entry``'s layer from the node's attributes, as its
    ``onnx_attributes`` maps them; an absent attribute takes the operator's default from its ONNX
    schema (for the model's opset); an attribute the layer does not read is refused."""
    unread = sorted(set(attrs) - set(entry.onnx_attributes))
    if unread:
        walker.refuse(node, f"attribute(s) {unread}: refattr's {entry.name} reads "
                            f"{sorted(entry.onnx_attributes) or 'no attributes'}")
    opset = walker.schema_context.opset_imports.get(node.domain or "", None)
    if opset is None:
        opset = walker.schema_context.opset_imports.get("ai.onnx", 1)
    schema = walker.onnx.defs.get_schema(node.op_type, opset, "")
    arguments = dict(entry.onnx_arguments)
    for attribute, argument in entry.onnx_attributes.items():
        if attribute in attrs:
            arguments[argument] = attrs[attribute]
            continue
        declared = schema.attributes.get(attribute)
        default = None if declared is None or not declared.default_value.name else declared.default_value
        if default is not None:
            value = walker.helper.get_attribute_value(default)
            arguments[argument] = value.decode("utf-8") if isinstance(value, bytes) else value
    return arguments


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


def _check_import(proto, walker, net):
    """Raise ImportMismatchError when ``net`` and the ONNX model differ on a probe batch (see from_onnx)."""
    from .compare import FLOAT32_RTOL, FLOAT64_RTOL

    elem = _dtype_name(walker.input.type.tensor_type.elem_type)
    if net.input_shape is None or elem not in ("FLOAT", "DOUBLE"):
        return
    batch = walker.input.type.tensor_type.shape.dim[0]
    n = batch.dim_value if batch.HasField("dim_value") else 2
    x = np.random.default_rng(0).standard_normal((n,) + net.input_shape)
    rtol = FLOAT64_RTOL if elem == "DOUBLE" else FLOAT32_RTOL
    reason = f"{elem} rounding"
    runtime = {entry.name: entry.onnx_runtime_rtol for entry in map(registry.info, net.layers)
               if entry.onnx_runtime_rtol is not None and entry.onnx_runtime_rtol > rtol}
    if runtime:  # ops the runtimes evaluate less precisely than the model's type (the layers' onnx_runtime_rtol)
        rtol = max(runtime.values())
        reason = f"the runtimes' precision for {', '.join(runtime)} (onnx_runtime_rtol)"
    ours = net(x)
    try:
        theirs, engine = onnx_forward(proto, x, return_engine=True)
    except RefattrError:
        raise
    except Exception as exc:  # onnxruntime and the reference evaluator raise their own types
        raise ImportMismatchError(f"model: the ONNX model could not be run to check the import "
                                  f"({type(exc).__name__}: {exc}); pass check=False to import it unchecked") from None
    if theirs.size != ours.size:
        raise ImportMismatchError(f"model: on a probe batch of shape {x.shape} the ONNX model ({engine}) returns "
                                  f"shape {theirs.shape} where the imported network returns shape {ours.shape}")
    theirs = theirs.reshape(ours.shape)
    if not np.all(np.isfinite(theirs)):
        raise ImportMismatchError(f"model: on a probe batch of shape {x.shape} the ONNX model ({engine}) returns "
                                  f"non-finite values, so the import cannot be checked; pass check=False to import "
                                  f"it unchecked")
    diff = np.max(np.abs(ours - theirs).reshape(n, -1), axis=1)
    scale = np.max(np.abs(theirs).reshape(n, -1), axis=1)
    worst = int(np.argmax(diff - rtol * scale))
    if diff[worst] > rtol * scale[worst]:
        raise ImportMismatchError(
            f"model: the imported network differs from the ONNX model ({engine}) on a probe batch "
            f"(default_rng(0).standard_normal({x.shape})): example {worst} differs by {diff[worst]:.3g}, "
            f"{diff[worst] / scale[worst] if scale[worst] > 0 else math.inf:.3g} of its largest output, above the "
            f"{rtol:g} that {reason} explains. This is a refattr bug or an op refattr misreads: please "
            f"report it with the model")


def onnx_forward(model: OnnxModel | PathLike | bytes, x: ArrayLike,
                 engine: Literal["auto", "onnxruntime", "reference"] = "auto",
                 return_engine: bool = False) -> np.ndarray | tuple[np.ndarray, str]:
    """Run an ONNX model on x and return its (single) output as float64.

    ``engine``: "onnxruntime", "reference" (``onnx.reference.ReferenceEvaluator``, ONNX's own
    NumPy implementation of the operator semantics) or "auto": onnxruntime, falling back to the
    reference evaluator where onnxruntime has no kernel for the model's dtype (onnxruntime's CPU
    provider implements Conv and AveragePool in float32 only). The input is given in the model's
    declared element type (float64 for DOUBLE, float32 for FLOAT, float16 for FLOAT16). Graph
    optimisations are off, so onnxruntime evaluates the graph as written. The model is read as by
    :func:`from_onnx`: external data only from a path, inside the model's folder. A model whose
    graph input fixes the batch size (an export with a batch of 1, say) is run on ``x`` in batches
    of that size, and the engine named ``"onnxruntime, in batches of 1 (...)"``; a batch that is not
    a multiple of it raises :class:`~refattr.errors.ShapeError`.
    """
    if engine not in ("auto", "onnxruntime", "reference"):
        raise ArgumentError(f"engine: expected 'auto', 'onnxruntime' or 'reference', got {engine!r}")
    proto = _load(model)
    consts = {v.name for v in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"model: expected one graph input, got {[v.name for v in inputs]}")
    dtypes = {"DOUBLE": np.float64, "FLOAT": np.float32, "FLOAT16": np.float16}
    elem = _dtype_name(inputs[0].type.tensor_type.elem_type)
    if elem not in dtypes:
        raise UnsupportedLayerError(f"model: graph input {inputs[0].name!r} has element type {elem}; onnx_forward "
                                    f"feeds {', '.join(dtypes)} inputs")
    x = np.ascontiguousarray(x, dtype=dtypes[elem])
    batch = fixed_batch(proto)
    if batch is None or x.ndim == 0 or x.shape[0] == batch:
        outs, used = _run(proto, engine, inputs[0].name, [x])
    elif x.shape[0] % batch:
        raise ShapeError(f"x: the ONNX model's graph input {inputs[0].name!r} fixes the batch size at {batch}, got a "
                         f"batch of {x.shape[0]}, not a multiple of it; pass a multiple of {batch} examples, or "
                         f"export the model with a dynamic batch axis (torch.onnx.export(..., "
                         f"dynamic_axes={{'input': {{0: 'batch'}}}}))")
    else:
        outs, used = _run(proto, engine, inputs[0].name, [x[i:i + batch] for i in range(0, x.shape[0], batch)])
        used += f", in batches of {batch} (the model fixes its batch size)"
    out = np.concatenate(outs)
    return (out, used) if return_engine else out


def fixed_batch(proto: OnnxModel) -> int | None:
    """The batch size the graph input of ``proto`` (an ``onnx.ModelProto``) fixes, or None where it is symbolic."""
    consts = {v.name for v in proto.graph.initializer}
    data = next((v for v in proto.graph.input if v.name not in consts), None)
    dims = data.type.tensor_type.shape.dim if data is not None else ()
    return int(dims[0].dim_value) if len(dims) and dims[0].HasField("dim_value") else None


def _run(proto, engine, name, chunks):
    """(outputs as float64, one per array of ``chunks`` fed as ``name``; the engine used), see onnx_forward."""
    if engine in ("auto", "onnxruntime"):
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 3  # errors only: no notes about unused initializers on stderr
            session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            return [np.asarray(session.run(None, {name: c})[0], dtype=np.float64) for c in chunks], "onnxruntime"
        except ImportError:
            if engine == "onnxruntime":
                raise ImportError("onnx_forward(engine='onnxruntime') needs onnxruntime: pip install onnxruntime")
        except Exception as exc:  # onnxruntime raises its own exception types
            if engine == "onnxruntime" or "NOT_IMPLEMENTED" not in str(exc):
                raise
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(proto)
    return [np.asarray(evaluator.run(None, {name: c})[0], dtype=np.float64) for c in chunks], "onnx.reference"
