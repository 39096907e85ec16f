"""Reading an ONNX model file defensively: the proto, with every tensor's values inside it.

A model's tensors may keep their values in external files (``data_location=EXTERNAL``, ONNX's
format for models over 2 GB); these are read only for a model loaded from its path, and only from
files inside the model's folder. A model given as bytes or as an ``onnx.ModelProto`` has no folder,
and onnx would resolve its external files against the working directory, so such a model is
refused (:class:`~refattr.errors.UnsafeFileError`). onnx's and protobuf's errors on a corrupt,
empty or graphless file become :class:`~refattr.errors.ArgumentError` naming the source.
"""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import ArgumentError, UnsafeFileError

__all__ = ["require_onnx"]


def require_onnx() -> ModuleType:
    """Import onnx or raise an ImportError that says what to install."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("refattr.interop.from_onnx needs the onnx package: pip install onnx") from exc
    return onnx


def _load(model):
    """The ``onnx.ModelProto`` of ``model`` (a ModelProto, serialized bytes or a path).

    Every tensor's values end up inside the returned proto: external data is read only for a path
    (from the model's own folder) and refused otherwise. onnx's and protobuf's errors (a corrupt,
    empty or graphless file) become refattr errors naming the source. ``onnx.checker`` is not run:
    it rejects models that runtimes run (an output without a declared shape); from_onnx checks
    what it reads itself.
    """
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        source, proto = "model (an onnx.ModelProto)", model
        _refuse_external_data(proto, source)
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        source = f"model ({len(data)} serialized bytes)"
        proto = _parse(len(data), source, lambda: onnx.load_from_string(data))
        _refuse_external_data(proto, source)
    elif isinstance(model, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(model))
        source = f"model file {path!r}"
        if os.path.isdir(path):
            raise ArgumentError(f"{source} is a directory; expected an .onnx file (pass the path of the model "
                                f"file inside it)")
        if not os.path.isfile(path):
            raise ArgumentError(f"{source}: no such file; check the path (relative paths start at the working "
                                f"directory {os.getcwd()!r})")
        size = os.path.getsize(path)
        proto = _parse(size, source, lambda: onnx.load(path, load_external_data=False))
        _read_external_data(proto, source, os.path.dirname(os.path.abspath(path)))
    else:
        raise ArgumentError(f"model: expected an onnx.ModelProto, a path or serialized bytes, got "
                            f"{type(model).__module__}.{type(model).__name__}")
    if not proto.HasField("graph") or not (len(proto.graph.node) or len(proto.graph.input)):
        raise ArgumentError(f"{source} holds no graph (no nodes, no inputs), so it is not an ONNX model; check "
                            f"that it is the model file (written by onnx.save or torch.onnx.export)")
    return proto


def _parse(size, source, parse):
    """``parse()``, with an empty input and protobuf's decoding errors as ArgumentError."""
    from google.protobuf import message, text_format

    if not size:
        raise ArgumentError(f"{source} is empty (0 bytes); expected a serialized ONNX model: was the file "
                            f"written completely (onnx.save(model, path))?")
    try:
        return parse()
    except (message.Error, text_format.Error, UnicodeDecodeError, ValueError) as exc:
        raise ArgumentError(f"{source} is not an ONNX model: it could not be decoded ({type(exc).__name__}: "
                            f"{exc}); the file may be truncated or not an .onnx file. Save the model again "
                            f"with onnx.save(model, path)") from None
    except OSError as exc:
        raise ArgumentError(f"{source} could not be read ({exc}); check its permissions") from None


def _tensors(proto):
    """(where, TensorProto) for every tensor a model holds: initializers, sparse initializers and
    tensor attributes, in the main graph, its subgraphs and the model's functions."""
    from onnx import AttributeProto

    def graph_tensors(graph, where):
        for t in graph.initializer:
            yield f"{where}initializer {t.name!r}", t
        for s in graph.sparse_initializer:
            yield f"{where}sparse initializer {s.values.name!r}", s.values
            yield f"{where}sparse initializer {s.values.name!r} (indices)", s.indices
        yield from node_tensors(graph.node, where)

    def node_tensors(nodes, where):
        for node in nodes:
            for a in node.attribute:
                at = f"{where}attribute {a.name!r} of node {node.name or node.op_type!r}"
                if a.type == AttributeProto.TENSOR:
                    yield at, a.t
                for t in a.tensors:
                    yield at, t
                for s in [a.sparse_tensor] * a.HasField("sparse_tensor") + list(a.sparse_tensors):
                    yield at, s.values
                    yield at, s.indices
                for g in [a.g] * a.HasField("g") + list(a.graphs):
                    yield from graph_tensors(g, f"{at}: subgraph {g.name!r}: ")

    yield from graph_tensors(proto.graph, "")
    for f in proto.functions:
        yield from node_tensors(f.node, f"function {f.name!r}: ")


def _external_location(tensor):
    """The external file a tensor's values are stored in, or None when they are stored inline."""
    from onnx import TensorProto

    if tensor.data_location != TensorProto.EXTERNAL and not len(tensor.external_data):
        return None
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _refuse_external_data(proto, source):
    for where, tensor in _tensors(proto):
        location = _external_location(tensor)
        if location is not None:
            raise UnsafeFileError(
                f"{source}: {where} keeps its values in the external file {location!r}. refattr reads "
                f"external data only for a model loaded from its path (from the model's own folder); for a "
                f"model in memory onnx would look the file up relative to the working directory. Pass the "
                f"model's path (from_onnx('path/to/model.onnx')) instead")


def _read_external_data(proto, source, folder):
    """Read every external tensor of a path-loaded model from ``folder``, refusing any file that is
    not inside it (absolute locations, '..' leading out, symbolic links pointing out)."""
    import onnx

    root = os.path.realpath(folder)
    for where, tensor in _tensors(proto):
        location = _external_location(tensor)
        if location is None:
            continue
        target = os.path.realpath(os.path.join(root, location))
        if (not location or os.path.isabs(location) or os.path.splitdrive(location)[0]
                or os.path.commonpath([root, target]) != root):
            raise UnsafeFileError(
                f"{source}: {where} keeps its values in the external file {location!r}, which is not inside "
                f"the model's folder {folder!r}; ONNX external data locations are relative paths inside it. "
                f"Move the data file next to the model and set the location to its relative name")
    try:
        onnx.load_external_data_for_model(proto, folder)
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:
        raise ArgumentError(f"{source}: its external data could not be read from the model's folder {folder!r} "
                            f"({type(exc).__name__}: {exc}); keep the data files (regular files, not links) "
                            f"next to the model, as onnx.save_model(..., save_as_external_data=True) "
                            f"writes them") from None
    for where, tensor in _tensors(proto):  # tensors onnx does not load (sparse, in functions)
        if _external_location(tensor) is not None:
            raise UnsafeFileError(f"{source}: {where} keeps its values in an external file that onnx does not "
                                  f"load; store that tensor inline (onnx.save_model(..., "
                                  f"save_as_external_data=False))")
