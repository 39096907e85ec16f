"""An ONNX graph -> :class:`refattr.Sequential` (a chain) or :class:`refattr.Graph` (any DAG).

The onnx package reads the graph (``numpy_helper`` for initializers, ``checker.check_node`` for
each node against its operator schema). Every node is mapped, in the graph's order, to a refattr
layer (joins: Add, Sum, Sub, Mul, Concat), merged into the layer before it (a bias, a
BatchNormalization), dropped (Identity, Dropout) or read as a pattern of several nodes
(``_onnx_graph.py``). :func:`onnx_forward` runs a model in onnxruntime (or ONNX's own reference
evaluator); :func:`from_onnx` uses it to check every import on a probe batch.

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
from ..graph import Graph
from ..layers import (Add, AdaptiveAvgPool1D, Affine, AdaptiveAvgPool2D, AvgPool1D, AvgPool2D, Concat, Conv1D, Conv2D,
                      Dense, MaxPool1D, MaxPool2D, Mul)
from ..layers import registry
from ..network import Network, Sequential
from . import _batchnorm as batchnorm
from ._onnx_file import _external_location, _load, require_onnx
from ._onnx_graph import PATTERN_NAMES, find_patterns
from ._onnx_reductions import REDUCTION_ONNX, ReductionOps
from ._onnx_reshapes import ReshapeOps

__all__ = ["from_onnx", "onnx_forward", "require_onnx", "supported_onnx"]

#: The ops with their own import code, with what of them is supported. Every other op a
#: registered layer names in ``onnx_ops`` is a single element-wise node imported through the
#: layer's declarations (``onnx_attributes``; :mod:`refattr.layers.registry`).
SPECIAL_ONNX = {"Gemm": "Gemm (transA=0)", "MatMul": "MatMul with a constant 2-D right operand",
                "Conv": "Conv (1-D and 2-D: pads, strides, dilations, group, auto_pad)",
                "Flatten": "Flatten (axis 1)", "Reshape": "Reshape keeping the batch axis",
                "Squeeze": "Squeeze / Unsqueeze of axes other than the batch axis", "Unsqueeze": None,
                "MaxPool": "MaxPool (1-D and 2-D, ceil_mode 0, dilations 1)",
                "AveragePool": "AveragePool (1-D and 2-D, ceil_mode 0)",
                "GlobalAveragePool": "GlobalAveragePool (1-D and 2-D)"}
#: Ops that join computed tensors (or fold a constant into the layer before them).
JOIN_ONNX = {"Add": "Add of two computed tensors, of a constant bias after Gemm/MatMul/Conv, or of a scalar",
             "Sum": "Sum of computed tensors", "Sub": "Sub of two computed tensors, or of a scalar",
             "Mul": "Mul of two computed tensors, or by a scalar", "Div": "Div of a computed tensor by a scalar",
             "Concat": "Concat (not along the batch axis)"}
#: Ops that no one registered layer stands for: merged, folded, dropped or refused with a reason.
MERGED_ONNX = {"BatchNormalization": "BatchNormalization (inference)", "Identity": "Identity",
               "Dropout": "Dropout (inference)", "HardSwish": None,
               "Shape": "Shape, Gather, Unsqueeze, Squeeze, Concat and Cast of shapes (x.view(x.size(0), -1))",
               "Gather": None, "Cast": None}
PATTERNS_ONNX = (*PATTERN_NAMES, "Constant")
#: Ops that exist in from_onnx only inside a pattern (PATTERNS_ONNX).
PATTERN_OPS = ("Erf",)


def supported_onnx() -> str:
    """What :func:`from_onnx` imports, read from the layer registry (for messages)."""
    names, declared = [], set()
    for entry in registry.registered():
        for op in entry.onnx_ops:
            declared.add(op)
            attributes = ", ".join(entry.onnx_attributes)
            names.append(SPECIAL_ONNX.get(op) or (f"{op}({attributes})" if attributes else op))
    names += [d for op, d in SPECIAL_ONNX.items() if d and op not in declared]
    return ", ".join([*names, *JOIN_ONNX.values(), *(d for d in MERGED_ONNX.values() if d),
                      *(d for d in REDUCTION_ONNX.values() if d), *PATTERNS_ONNX])


def _imported(op: str) -> bool:
    """Whether from_onnx reads op type ``op`` on its own (besides Constant and the patterns)."""
    return (op in SPECIAL_ONNX or op in JOIN_ONNX or op in MERGED_ONNX or op in REDUCTION_ONNX
            or registry.by_onnx_op(op) is not None)


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
    """Reads the graph: its constants, its nodes in order, who reads what, and checks each node."""

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
        self.producer = {}
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
            for name in node.output:
                if name:
                    self.producer.setdefault(name, node)
        self.graph_inputs = [v for v in graph.input if v.name not in self.consts]
        if not self.graph_inputs or len(graph.output) != 1:
            raise UnsupportedLayerError(
                f"model: expected one or more graph inputs and one graph output (refattr attributes one output "
                f"tensor (N, n_outputs)), got inputs {[v.name for v in self.graph_inputs]} and outputs "
                f"{[v.name for v in graph.output]}")
        for value in self.graph_inputs:
            elem = _dtype_name(value.type.tensor_type.elem_type)  # UNDEFINED for a non-tensor input
            if elem not in INPUT_TYPES:
                raise UnsupportedLayerError(f"model: graph input {value.name!r} has element type {elem}; refattr "
                                            f"attributes floating-point tensor inputs ({', '.join(INPUT_TYPES)})")
        self.input = self.graph_inputs[0]
        self.output = graph.output[0].name
        self.graph_outputs = {v.name for v in graph.output}
        if len(self.graph_inputs) == 1:
            self.input_shapes = [_input_shape(self.input, input_shape)]
        else:
            if input_shape is not None and (isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__")
                                            or len(input_shape) != len(self.graph_inputs)):
                raise ArgumentError(f"input_shape: the model has {len(self.graph_inputs)} graph inputs "
                                    f"{[v.name for v in self.graph_inputs]}; pass one example shape per input, e.g. "
                                    f"input_shape=[(4,), (3, 8, 8)], got {input_shape!r}")
            self.input_shapes = [_input_shape(v, None if input_shape is None else s)
                                 for v, s in zip(self.graph_inputs, input_shape or [None] * len(self.graph_inputs))]
        self.input_shape = self.input_shapes[0]
        self.batch = fixed_batch(proto)

    def opset(self, node) -> int:
        """The opset version the model imports for the node's domain."""
        imports = self.schema_context.opset_imports
        version = imports.get(node.domain or "", None)
        return imports.get("ai.onnx", 1) if version is None else version

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
            self.invalid(node, f"attribute {name}={value!r}; expected {length} integers >= {minimum}")
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
                              f"imports weights, biases and shapes that are constants")
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
    """Padding per spatial axis as (begin, end) pairs in a row, refattr's order: (left, right) in
    1-D, (top, bottom, left, right) in 2-D; from ONNX pads [begins..., ends...] or auto_pad."""
    k = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = walker.ints_attr(node, attrs, "pads", [0] * 2 * k, 2 * k, 0)
        return tuple(p for axis in range(k) for p in (pads[axis], pads[k + axis]))
    if auto == "VALID":
        return (0,) * 2 * k
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        walker.invalid(node, f"attribute auto_pad={auto!r}; expected NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    out = []
    for axis in range(k):
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
        out += [small, large] if auto == "SAME_UPPER" else [large, small]
    return tuple(out)


#: The layer of each convolution and pooling op by its number of spatial axes (1: sequences
#: (C, L), 2: images (C, H, W)); ONNX gives the number by the weight's or the kernel's rank.
SPATIAL = {("Conv", 1): Conv1D, ("Conv", 2): Conv2D, ("MaxPool", 1): MaxPool1D, ("MaxPool", 2): MaxPool2D,
           ("AveragePool", 1): AvgPool1D, ("AveragePool", 2): AvgPool2D,
           ("GlobalAveragePool", 1): AdaptiveAvgPool1D, ("GlobalAveragePool", 2): AdaptiveAvgPool2D}
_SPATIAL_INPUT = {1: "sequences (C, L)", 2: "images (C, H, W)"}


def _spatial_input(walker, node, k, shape, given=""):
    """Refuse a convolution or pooling of ``k`` spatial axes (``given``: what says so) that refattr
    lacks, or whose input is known to have another rank."""
    if (node.op_type, k) not in SPATIAL:
        walker.refuse(node, f"{k}-D {node.op_type}; refattr imports 1-D and 2-D {node.op_type}")
    if shape is not None and len(shape) != k + 1:
        walker.refuse(node, f"its input has per-example shape {shape}; {k}-D {node.op_type}{given} takes "
                            f"{_SPATIAL_INPUT[k]}")


def _spatial_layer(walker, node, k, shape, *args, **kwargs):
    """The layer SPATIAL names for the node's op with ``k`` spatial axes, built from 2-D style
    arguments (tuples per axis; refattr's 1-D layers take ints)."""
    _spatial_input(walker, node, k, shape)
    cls = SPATIAL[node.op_type, k]
    if k == 1:
        kwargs = {key: value[0] if key in ("stride", "dilation") else value for key, value in kwargs.items()}
        args = tuple(a[0] if isinstance(a, tuple) and len(a) == 1 else a for a in args)
    try:
        return walker.build(node, cls, *args, **kwargs)
    except ShapeError as exc:
        walker.refuse(node, str(exc))


def _bias_vector(walker, node, c, n_channels, spatial):
    """A constant added after a Dense (spatial=0) or a convolution of ``spatial`` axes as a
    per-channel vector: a scalar, (C,) / (1, C) after a Dense, (C, 1, ...) / (1, C, 1, ...) after a
    convolution."""
    arr = np.asarray(c, dtype=np.float64)
    while arr.ndim > 0 and arr.shape[0] == 1 and arr.ndim > 1 + spatial:
        arr = arr[0]
    if arr.size == 1:
        return np.full(n_channels, float(arr.reshape(-1)[0]))
    if arr.shape == (n_channels,) + (1,) * spatial:
        return arr.reshape(-1)
    expected = ", ".join(["C"] + ["1"] * spatial)
    walker.refuse(node, f"the added constant of shape {np.shape(c)} is not a per-channel bias for {n_channels} "
                        f"channels (expected ({expected}) or (1, {expected}))")


def _with_bias(layer, extra):
    bias = extra if layer.bias is None else layer.bias + extra
    if isinstance(layer, Dense):
        return Dense(layer.weight, bias)
    return type(layer)(layer.weight, bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                       groups=layer.groups)


_LINEAR = (Dense, Conv1D, Conv2D)   # what a constant bias and a BatchNormalization fold into


def from_onnx(model: OnnxModel | PathLike | bytes,
              input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
              check: bool = True) -> Network:
    """Convert an ONNX graph into a :class:`refattr.Sequential` (a chain) or a :class:`refattr.Graph`.

    Parameters
    ----------
    model : onnx.ModelProto, path or bytes
        A model whose tensors keep their values in external files (``data_location=EXTERNAL``)
        is read only from its path, and only from files inside the model's folder.
    input_shape : tuple of int, or a list of them (one per graph input), optional
        One example's shape. Defaults to what the graph input declares (symbolic sizes unknown).
        Needed for ``auto_pad='SAME_*'`` with a stride above 1, and where a Reshape, Squeeze,
        Unsqueeze or a BatchNormalization of its own needs sizes the graph does not declare.
    check : bool, default True
        Run the ONNX model (:func:`onnx_forward`) and the imported network on a probe batch and
        raise :class:`~refattr.errors.ImportMismatchError` if they differ beyond rounding. The probe
        is ``numpy.random.default_rng(0).standard_normal((n, *shape))`` for each graph input in
        order, with n the graph's fixed batch size, or 2 where the batch size is symbolic. The check
        is skipped when an example's shape is not known (a symbolic size in a graph input and no
        ``input_shape``) and for float16 / bfloat16 models, whose own rounding would hide a wrong
        import.

    Returns
    -------
    Sequential or Graph
        A :class:`~refattr.Sequential` when the graph is a chain (one input, each layer reading the
        one before), else a :class:`~refattr.Graph` whose inputs are the graph inputs in order and
        whose nodes are named after the ONNX tensors they compute. Forward outputs agree with
        onnxruntime (float64 where it implements the op, else ONNX's reference evaluator) to 1e-12
        relative, tested for every supported op; ``Gelu`` to the runtimes' own float32 precision
        (see Notes).

    Raises
    ------
    UnsupportedLayerError
        For an op, attribute or element type refattr does not model, naming the node (its position
        in the graph, op type and name) and what is supported: HardSwish (x * relu6(x + 3) / 6 is
        not swish), ceil_mode=1, pooling dilations other than 1, Gemm transA=1, training-mode
        BatchNormalization or Dropout, Softmax / LogSoftmax below opset 13 (which flatten to 2-D),
        a reshape, flatten or squeeze that touches the batch axis, a Mul, Div or Add of a constant
        outside the patterns and biases below, complex or string tensors, and several graph
        outputs.
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
      becomes its bias (likewise an Add after Conv), where nothing else reads the product.
    - Conv, MaxPool and AveragePool with one spatial axis import as Conv1D, MaxPool1D and
      AvgPool1D, with two as the 2-D layers; GlobalAveragePool as AdaptiveAvgPool1D(1) or
      AdaptiveAvgPool2D(1).
    - ONNX pads are [top, left, bottom, right]; refattr's are (top, bottom, left, right).
    - AveragePool's count_include_pad defaults to 0 in ONNX (1 in PyTorch); pooling strides
      default to 1 in ONNX (to the kernel in PyTorch).
    - Joins: Add and Sum of computed tensors -> Add, Sub -> Add(weights=(1, -1)), Mul -> Mul,
      Concat -> Concat(axis) (ONNX counts axes as PyTorch does, the batch axis being 0).
    - BatchNormalization folds into the Gemm/MatMul/Conv before it where nothing else reads that
      layer's output, as :func:`refattr.interop.from_torch` folds; elsewhere it becomes an
      :class:`~refattr.layers.Affine` with one scale and shift per channel.
    - Reshape keeps the batch axis when its first size is 0, the graph's fixed batch size,
      ``Shape(x)[0]`` (``x.view(x.size(0), -1)`` exported with a dynamic batch axis), or -1 with
      the other sizes fixed; it imports as Flatten() for (N, -1), else as Reshape.
    - The patterns torch.onnx.export writes for SiLU, GELU (below opset 20) and Softplus(beta)
      import as one layer each (listed in ``refattr.interop._onnx_graph``).
    - Identity and Dropout (inference) vanish: their readers read their input.
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
    net = _Importer(walker).run()
    if check:
        _check_import(proto, walker, net)
    return net


class _Importer(ReductionOps, ReshapeOps):
    """Maps the nodes of one ONNX graph, in order, to refattr nodes (name, layer, reads).

    ``values`` maps each computed ONNX tensor to the refattr value holding it (Identity and
    Dropout add a second name for one value), ``shapes`` holds each refattr value's example shape
    (None where its rank is unknown), ``made`` the position of the refattr node an ONNX tensor is
    the direct output of (where a bias or a BatchNormalization may fold), ``vectors`` the shape
    vectors of Shape / Gather / ... (see ``_onnx_graph``).
    """

    def __init__(self, walker):
        self.walker = walker
        self.values = {v.name: v.name for v in walker.graph_inputs}
        self.shapes = {v.name: s for v, s in zip(walker.graph_inputs, walker.input_shapes)}
        self.nodes: list = []
        self.made: dict = {}
        self.vectors: dict = {}

    def run(self) -> Network:
        walker = self.walker
        patterns, inside = find_patterns(walker)
        for node in walker.nodes:
            if id(node) in inside:
                continue
            if node.domain not in ("", "ai.onnx"):
                walker.refuse(node, f"operator domain {node.domain!r}")
            pattern = patterns.get(id(node))
            if pattern is not None:
                for n in pattern.nodes:
                    walker.validate(n)
                self.emit(node, walker.build(node, pattern.make), self.tensor(node, pattern.x))
                continue
            op = node.op_type
            if op in PATTERN_OPS:
                walker.refuse(node, f"{op} is imported only inside a pattern ({'; '.join(PATTERN_NAMES)}), "
                                    f"and this one is not part of one")
            if not _imported(op):
                walker.refuse(node, "no refattr layer computes it")
            walker.validate(node)
            dynamic = [name for name in node.input if name in self.values]
            if not dynamic or op == "Shape":
                self.shape_arithmetic(node)
            elif op in JOIN_ONNX:
                getattr(self, f"op_{op}")(node, walker.attrs(node), dynamic)
            else:
                if dynamic != [node.input[0]]:
                    walker.refuse(node, f"it reads the computed tensors {dynamic}; {op} imports with one computed "
                                        f"tensor as its first input and constants for the others")
                handler = getattr(self, f"op_{op}", None) or self.op_registered
                handler(node, walker.attrs(node), node.input[0])
        return self.result()

    # values ---------------------------------------------------------------------------------------
    def tensor(self, node, name):
        if name not in self.values:
            self.walker.refuse(node, f"its input {name!r} is not computed from the graph inputs (a constant or an "
                                     f"unknown name)")
        return self.values[name]

    def shape(self, name):
        return self.shapes[self.values[name]]

    def emit(self, node, layer, reads, name=None):
        """Add the refattr node computing the node's first output (or ``name``) with ``layer`` from ``reads``."""
        name = node.output[0] if name is None else name
        ins = [reads] if isinstance(reads, str) else list(reads)
        shapes = [self.shapes[r] for r in ins]
        try:
            if isinstance(reads, str):
                shape = None if shapes[0] is None else layer.output_shape(shapes[0])
            else:
                shape = layer.output_shape(shapes)
                if shape is None and all(s is not None and len(s) == len(shapes[0]) for s in shapes):
                    shape = tuple(d[0] if len(set(d)) == 1 else None for d in zip(*shapes))
        except ShapeError as exc:
            raise ShapeError(f"{self.walker.where(node)}: {exc}") from None
        self.made[name] = len(self.nodes)
        self.nodes.append((name, layer, reads))
        self.values[name] = name
        self.shapes[name] = shape

    def alias(self, node, x):
        self.values[node.output[0]] = self.values[x]

    def folds_into(self, node, x):
        """The position of the Dense / Conv node whose output ``x`` is and that ``node`` alone reads, else None."""
        at = self.made.get(x)
        if at is None or not isinstance(self.nodes[at][1], _LINEAR) or not self.walker.only_consumer_of(x, node):
            return None
        return at

    def replace(self, node, at, layer):
        name, _, reads = self.nodes[at]
        self.nodes[at] = (name, layer, reads)
        self.values[node.output[0]] = name
        self.made[node.output[0]] = at

    # joins ----------------------------------------------------------------------------------------
    def join(self, node, layer, dynamic):
        walker = self.walker
        constant = [name for name in node.input if name and name not in self.values]
        if constant:
            walker.refuse(node, f"it joins computed tensors with the constant(s) {constant}; refattr joins "
                                f"computed tensors only")
        self.emit(node, walker.build(node, layer), tuple(self.values[name] for name in node.input))

    def op_Add(self, node, a, dynamic):
        walker = self.walker
        walker.inputs(node, 2, 2)
        if len(dynamic) == 2:
            return self.join(node, Add, dynamic)
        x, = dynamic
        at = self.folds_into(node, x)
        other = node.input[1] if node.input[0] == x else node.input[0]
        if at is None:
            c = self.scalar(node, other)
            if c is None:
                walker.refuse(node, "Add is supported only as the constant bias of the Gemm, MatMul or Conv "
                                    "directly before it (whose output nothing else reads), of a scalar constant, or "
                                    "of two computed tensors")
            return self.emit(node, walker.build(node, Affine, 1.0, c), self.values[x])
        c = walker.const(node, other, "the added operand")
        layer = self.nodes[at][1]
        spatial = 0 if isinstance(layer, Dense) else layer.weight.ndim - 2
        self.replace(node, at, walker.build(node, _with_bias, layer,
                                            _bias_vector(walker, node, c, layer.weight.shape[0], spatial)))

    def op_Sum(self, node, a, dynamic):
        if len(node.input) == 1:
            return self.alias(node, dynamic[0])
        self.join(node, Add, dynamic)

    def scalar(self, node, name):
        """The constant operand ``name`` as a float when it holds one number (any shape of size 1), else None."""
        c = self.walker.const(node, name, "the constant operand")
        return float(c.reshape(-1)[0]) if c.size == 1 else None

    def with_scalar(self, node, dynamic, what):
        """(computed input, the scalar, whether the computed input is the first operand)."""
        x, = dynamic
        first = node.input[0] == x
        c = self.scalar(node, node.input[1] if first else node.input[0])
        if c is None:
            self.walker.refuse(node, f"{what} by a constant that is not a single number; refattr imports a scalar "
                                     f"constant (as Affine) or joins two computed tensors (fold a per-channel "
                                     f"constant into the layer before it)")
        return x, c, first

    def op_Sub(self, node, a, dynamic):
        self.walker.inputs(node, 2, 2)
        if len(dynamic) != 2:
            x, c, first = self.with_scalar(node, dynamic, "Sub")
            return self.emit(node, self.walker.build(node, Affine, 1.0, -c) if first
                             else self.walker.build(node, Affine, -1.0, c), self.values[x])
        self.join(node, lambda: Add((1.0, -1.0)), dynamic)

    def op_Mul(self, node, a, dynamic):
        self.walker.inputs(node, 2, 2)
        if len(dynamic) != 2:
            x, c, _ = self.with_scalar(node, dynamic, "Mul")
            return self.emit(node, self.walker.build(node, Affine, c), self.values[x])
        self.join(node, Mul, dynamic)

    def op_Div(self, node, a, dynamic):
        self.walker.inputs(node, 2, 2)
        if len(dynamic) != 1 or dynamic[0] != node.input[0]:
            self.walker.refuse(node, "Div is imported only as a computed tensor divided by a scalar constant")
        x, c, _ = self.with_scalar(node, dynamic, "Div")
        if c == 0.0:
            self.walker.refuse(node, "Div by the constant 0")
        self.emit(node, self.walker.build(node, Affine, 1.0 / c), self.values[x])

    def op_Concat(self, node, a, dynamic):
        axis = self.walker.int_attr(node, a, "axis", None)
        if len(node.input) == 1:
            return self.alias(node, dynamic[0])
        shape = self.shape(dynamic[0])
        if axis == 0 or (shape is not None and axis == -len(shape) - 1):
            self.walker.refuse(node, "Concat along axis 0, the batch axis; refattr joins within each example")
        self.join(node, lambda: Concat(axis), dynamic)

    # layers of one computed input ---------------------------------------------------------------------
    def op_Gemm(self, node, a, x):
        walker = self.walker
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
            bias = _bias_vector(walker, node, c, weight.shape[0], 0)
            if beta != 1.0:
                bias = beta * bias
        self.emit(node, walker.build(node, Dense, weight, bias), self.values[x])

    def op_MatMul(self, node, a, x):
        walker = self.walker
        walker.inputs(node, 2, 2)
        b = walker.const(node, node.input[1], "the right operand")
        if b.ndim != 2:
            walker.refuse(node, f"the right operand has shape {b.shape}; expected a 2-D (in, out) matrix")
        self.emit(node, walker.build(node, Dense, b.astype(np.float64).T), self.values[x])

    def op_Conv(self, node, a, x):
        walker = self.walker
        walker.inputs(node, 2, 3)
        w = walker.const(node, node.input[1], "the weight").astype(np.float64)
        k = w.ndim - 2
        if k not in (1, 2):
            walker.refuse(node, f"weight of shape {w.shape}; refattr imports 1-D and 2-D convolution (a 3-D or 4-D "
                                f"weight)")
        shape = self.shape(x)
        _spatial_input(walker, node, k, shape, f" (a weight of shape {w.shape})")
        kernel = tuple(int(s) for s in w.shape[2:])
        if "kernel_shape" in a and walker.ints_attr(node, a, "kernel_shape", None, k, 1) != kernel:
            walker.invalid(node, f"kernel_shape {a['kernel_shape']} differs from the weight's {kernel}")
        stride = walker.ints_attr(node, a, "strides", [1] * k, k, 1)
        dilation = walker.ints_attr(node, a, "dilations", [1] * k, k, 1)
        pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = walker.const(node, node.input[2], "the bias").astype(np.float64)
        layer = _spatial_layer(walker, node, k, shape, w, bias, stride=stride, padding=pads, dilation=dilation,
                               groups=walker.int_attr(node, a, "group", 1, minimum=1))
        self.emit(node, layer, self.values[x])

    def op_pool(self, node, a, x):
        walker = self.walker
        op = node.op_type
        walker.inputs(node, 1, 1)
        if not walker.unused(node, 1):
            walker.refuse(node, "its Indices output is used")
        if walker.int_attr(node, a, "ceil_mode", 0, allowed=(0, 1)):
            walker.refuse(node, "ceil_mode=1; refattr pools in floor mode only")
        if "kernel_shape" not in a:
            walker.invalid(node, f"the attribute kernel_shape is missing; {op} requires it")
        k = len(a["kernel_shape"]) if isinstance(a["kernel_shape"], list) else 2
        if k not in (1, 2):
            walker.refuse(node, f"kernel_shape={a['kernel_shape']}; refattr imports 1-D and 2-D pooling")
        shape = self.shape(x)
        _spatial_input(walker, node, k, shape)
        kernel = walker.ints_attr(node, a, "kernel_shape", None, k, 1)
        dilation = walker.ints_attr(node, a, "dilations", [1] * k, k, 1)
        if dilation != (1,) * k:
            walker.refuse(node, f"dilations={list(dilation)}; only dilation 1 is supported for pooling")
        stride = walker.ints_attr(node, a, "strides", [1] * k, k, 1)
        pads = _spatial_pads(walker, node, a, kernel, stride, dilation, shape)
        options = {}
        if op == "AveragePool":
            options["count_include_pad"] = bool(walker.int_attr(node, a, "count_include_pad", 0, allowed=(0, 1)))
        self.emit(node, _spatial_layer(walker, node, k, shape, kernel, stride=stride, padding=pads, **options),
                  self.values[x])

    op_MaxPool = op_AveragePool = op_pool

    def op_GlobalAveragePool(self, node, a, x):
        shape = self.shape(x)
        if shape is None:
            self.walker.refuse(node, "GlobalAveragePool needs its input's rank (sequences or images); pass "
                                     "input_shape= to from_onnx")
        self.emit(node, _spatial_layer(self.walker, node, len(shape) - 1, shape, 1), self.values[x])

    def op_BatchNormalization(self, node, a, x):
        walker = self.walker
        walker.inputs(node, 5, 5)
        if walker.int_attr(node, a, "training_mode", 0, allowed=(0, 1)) or not all(
                walker.unused(node, k) for k in (1, 2)):
            walker.refuse(node, "training mode (batch statistics); export the model in eval mode")
        if not walker.int_attr(node, a, "spatial", 1, allowed=(0, 1)):
            walker.refuse(node, "spatial=0 (per-element statistics)")
        gamma, beta, mean, var = (walker.const(node, node.input[k], what).astype(np.float64) for k, what in
                                  zip(range(1, 5), ("scale", "bias", "mean", "variance")))
        eps = walker.float_attr(node, a, "epsilon", 1e-5)
        at, shape = self.folds_into(node, x), self.shape(x)
        channels = self.nodes[at][1].weight.shape[0] if at is not None else None if shape is None else shape[0]
        if any(p.shape != gamma.shape or p.ndim != 1 for p in (gamma, beta, mean, var)) or (
                channels is not None and gamma.shape != (channels,)):
            walker.invalid(node, f"scale, bias, mean and variance have shapes "
                                 f"{[p.shape for p in (gamma, beta, mean, var)]}; expected one value per channel "
                                 f"({'C' if channels is None else channels},)")
        scale, shift = walker.build(node, batchnorm.affine_of, gamma, beta, mean, var, eps)
        if at is not None:
            self.replace(node, at, walker.build(node, batchnorm.fold, self.nodes[at][1], scale, shift))
        else:
            self.emit(node, walker.build(node, batchnorm.as_layer, scale, shift), self.values[x])

    def op_Identity(self, node, a, x):
        self.walker.inputs(node, 1, 1)
        self.alias(node, x)

    def op_Dropout(self, node, a, x):
        walker = self.walker
        walker.inputs(node, 1, 3)
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
        self.alias(node, x)

    def op_HardSwish(self, node, a, x):
        self.walker.refuse(node, "HardSwish is x * relu6(x + 3) / 6, a piecewise function, not swish")

    def op_registered(self, node, a, x):
        walker = self.walker
        entry = registry.by_onnx_op(node.op_type)
        if entry is None:
            walker.refuse(node, "no refattr layer computes it")
        walker.inputs(node, 1, 1)
        if node.op_type in ("Softmax", "LogSoftmax") and walker.opset(node) < 13:
            walker.refuse(node, f"{node.op_type} at opset {walker.opset(node)}: before opset 13 it flattens each "
                                f"example to 2-D from its axis on and normalises over all of those values; export "
                                f"with opset_version >= 13")
        self.emit(node, walker.build(node, entry.cls, **_declared_arguments(walker, node, a, entry)), self.values[x])

    # the network ----------------------------------------------------------------------------------------
    def result(self) -> Network:
        walker = self.walker
        if walker.output not in self.values:
            raise UnsupportedLayerError(f"model: the graph output {walker.output!r} is not computed from the graph "
                                        f"inputs (a constant or a shape)")
        output = self.values[walker.output]
        needed, nodes = {output}, []
        for name, layer, reads in reversed(self.nodes):      # the nodes that feed the output
            if name in needed:
                nodes.append((name, layer, reads))
                needed.update((reads,) if isinstance(reads, str) else reads)
        nodes.reverse()
        if not nodes:
            raise UnsupportedLayerError("model: the graph has no layers that compute anything")
        names = [v.name for v in walker.graph_inputs]
        chain = len(names) == 1 and all(isinstance(reads, str) and reads == (names[0] if i == 0 else nodes[i - 1][0])
                                        for i, (_, _, reads) in enumerate(nodes))
        if chain:
            return Sequential([layer for _, layer, _ in nodes], input_shape=shape_or_none(walker.input_shape))
        shapes = [shape_or_none(s) for s in walker.input_shapes]
        known = None if None in shapes else shapes[0] if len(names) == 1 else tuple(shapes)
        return Graph(names[0] if len(names) == 1 else tuple(names), nodes, input_shape=known)


def _declared_arguments(walker, node, attrs, entry):
    """The constructor arguments of ``entry``'s layer from the node's attributes, as its
    ``onnx_attributes`` maps them; an absent attribute takes the operator's default from its ONNX
    schema (for the model's opset); an attribute the layer does not read is refused."""
    unread = sorted(set(attrs) - set(entry.onnx_attributes))
    if unread:
        walker.refuse(node, f"attribute(s) {unread}: refattr's {entry.name} reads "
                            f"{sorted(entry.onnx_attributes) or 'no attributes'}")
    schema = walker.onnx.defs.get_schema(node.op_type, walker.opset(node), "")
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


def _check_import(proto, walker, net):
    """Raise ImportMismatchError when ``net`` and the ONNX model differ on a probe batch (see from_onnx)."""
    from .compare import FLOAT32_RTOL, FLOAT64_RTOL

    elems = {_dtype_name(v.type.tensor_type.elem_type) for v in walker.graph_inputs}
    shapes = [shape_or_none(s) for s in walker.input_shapes]
    if None in shapes or not elems <= {"FLOAT", "DOUBLE"}:
        return
    n = walker.batch or 2
    rng = np.random.default_rng(0)
    xs = tuple(rng.standard_normal((n,) + s) for s in shapes)
    x = xs[0] if len(xs) == 1 else xs
    probe = f"default_rng(0).standard_normal({xs[0].shape})" if len(xs) == 1 else \
        f"default_rng(0).standard_normal of shapes {[a.shape for a in xs]}, in input order"
    elem = "DOUBLE" if elems == {"DOUBLE"} else "FLOAT"
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
        raise ImportMismatchError(f"model: on a probe batch ({probe}) the ONNX model ({engine}) returns "
                                  f"shape {theirs.shape} where the imported network returns shape {ours.shape}")
    theirs = theirs.reshape(ours.shape)
    if not np.all(np.isfinite(theirs)):
        raise ImportMismatchError(f"model: on a probe batch ({probe}) the ONNX model ({engine}) returns "
                                  f"non-finite values, so the import cannot be checked; pass check=False to import "
                                  f"it unchecked")
    diff = np.max(np.abs(ours - theirs).reshape(n, -1), axis=1)
    scale = np.max(np.abs(theirs).reshape(n, -1), axis=1)
    worst = int(np.argmax(diff - rtol * scale))
    if diff[worst] > rtol * scale[worst]:
        raise ImportMismatchError(
            f"model: the imported network differs from the ONNX model ({engine}) on a probe batch "
            f"({probe}): example {worst} differs by {diff[worst]:.3g}, "
            f"{diff[worst] / scale[worst] if scale[worst] > 0 else math.inf:.3g} of its largest output, above the "
            f"{rtol:g} that {reason} explains. This is a refattr bug or an op refattr misreads: please "
            f"report it with the model")


def onnx_forward(model: OnnxModel | PathLike | bytes, x: ArrayLike | Sequence[ArrayLike],
                 engine: Literal["auto", "onnxruntime", "reference"] = "auto",
                 return_engine: bool = False) -> np.ndarray | tuple[np.ndarray, str]:
    """Run an ONNX model on x and return its (single) output as float64.

    ``x``: one array for a model of one graph input; for several, a tuple of arrays, one per graph
    input in order. ``engine``: "onnxruntime", "reference" (``onnx.reference.ReferenceEvaluator``,
    ONNX's own NumPy implementation of the operator semantics) or "auto": onnxruntime, falling back
    to the reference evaluator where onnxruntime has no kernel for the model's dtype (onnxruntime's
    CPU provider implements Conv and AveragePool in float32 only). Each input is given in the
    model's declared element type (float64 for DOUBLE, float32 for FLOAT, float16 for FLOAT16).
    Graph optimisations are off, so onnxruntime evaluates the graph as written. The model is read
    as by :func:`from_onnx`: external data only from a path, inside the model's folder. A model
    whose graph input fixes the batch size (an export with a batch of 1, say) is run on ``x`` in
    batches of that size, and the engine named ``"onnxruntime, in batches of 1 (...)"``; a batch
    that is not a multiple of it raises :class:`~refattr.errors.ShapeError`.
    """
    if engine not in ("auto", "onnxruntime", "reference"):
        raise ArgumentError(f"engine: expected 'auto', 'onnxruntime' or 'reference', got {engine!r}")
    proto = _load(model)
    consts = {v.name for v in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in consts]
    if not inputs:
        raise UnsupportedLayerError("model: the graph has no input")
    dtypes = {"DOUBLE": np.float64, "FLOAT": np.float32, "FLOAT16": np.float16}
    for value in inputs:
        elem = _dtype_name(value.type.tensor_type.elem_type)
        if elem not in dtypes:
            raise UnsupportedLayerError(f"model: graph input {value.name!r} has element type {elem}; onnx_forward "
                                        f"feeds {', '.join(dtypes)} inputs")
    if len(inputs) == 1:
        xs = [x]
    elif isinstance(x, (tuple, list)) and len(x) == len(inputs):
        xs = list(x)
    else:
        raise ArgumentError(f"x: the model has {len(inputs)} graph inputs {[v.name for v in inputs]}; pass a tuple "
                            f"of as many arrays, in that order")
    xs = [np.ascontiguousarray(a, dtype=dtypes[_dtype_name(v.type.tensor_type.elem_type)])
          for a, v in zip(xs, inputs)]
    names = [v.name for v in inputs]
    sizes = {a.shape[0] if a.ndim else None for a in xs}
    if len(sizes) != 1:
        raise ShapeError(f"x: the inputs have batch sizes {[a.shape[0] if a.ndim else None for a in xs]}; every "
                         f"input needs one example per example of the batch")
    size = sizes.pop()
    batch = fixed_batch(proto)
    if batch is None or size is None or size == batch:
        outs, used = _run(proto, engine, names, [xs])
    elif size % batch:
        raise ShapeError(f"x: the ONNX model's graph input {names[0]!r} fixes the batch size at {batch}, got a "
                         f"batch of {size}, not a multiple of it; pass a multiple of {batch} examples, or "
                         f"export the model with a dynamic batch axis (torch.onnx.export(..., "
                         f"dynamic_axes={{'input': {{0: 'batch'}}}}))")
    else:
        outs, used = _run(proto, engine, names, [[a[i:i + batch] for a in xs] for i in range(0, size, batch)])
        used += f", in batches of {batch} (the model fixes its batch size)"
    out = np.concatenate(outs)
    return (out, used) if return_engine else out


def fixed_batch(proto: OnnxModel) -> int | None:
    """The batch size the (first) graph input of ``proto`` (an ``onnx.ModelProto``) fixes, or None where it is symbolic."""
    consts = {v.name for v in proto.graph.initializer}
    data = next((v for v in proto.graph.input if v.name not in consts), None)
    dims = data.type.tensor_type.shape.dim if data is not None else ()
    return int(dims[0].dim_value) if len(dims) and dims[0].HasField("dim_value") else None


def _run(proto, engine, names, chunks):
    """(outputs as float64, one per list of arrays in ``chunks`` fed as ``names``; the engine used), see onnx_forward."""
    if engine in ("auto", "onnxruntime"):
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 3  # errors only: no notes about unused initializers on stderr
            session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            return [np.asarray(session.run(None, dict(zip(names, c)))[0], dtype=np.float64) for c in chunks], \
                "onnxruntime"
        except ImportError:
            if engine == "onnxruntime":
                raise ImportError("onnx_forward(engine='onnxruntime') needs onnxruntime: pip install onnxruntime")
        except Exception as exc:  # onnxruntime raises its own exception types
            if engine == "onnxruntime" or "NOT_IMPLEMENTED" not in str(exc):
                raise
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(proto)
    return [np.asarray(evaluator.run(None, dict(zip(names, c)))[0], dtype=np.float64) for c in chunks], \
        "onnx.reference"
