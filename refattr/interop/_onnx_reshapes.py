"""from_onnx's reshapes and shape arithmetic: Flatten, Reshape, Squeeze / Unsqueeze keeping the batch
axis, and the shape vectors (Shape, Gather, Unsqueeze, Concat, Cast of sizes) that
``torch.onnx.export`` writes for ``x.view(x.size(0), -1)``. A mixin of the ONNX importer
(:class:`refattr.interop.onnx_model._Importer`); the arithmetic itself is in ``_onnx_graph``.
"""

from __future__ import annotations

import numpy as np

from ..layers import Flatten, Reshape
from ._onnx_graph import BATCH, UNKNOWN, shape_of

__all__ = ["ReshapeOps"]


class ReshapeOps:
    """The importer's methods for reshapes and shape vectors (see the module docstring)."""

    # reshaping ----------------------------------------------------------------------------------------
    def op_Flatten(self, node, a, x):
        axis = self.walker.int_attr(node, a, "axis", 1)
        shape = self.shape(x)
        rank = None if shape is None else len(shape) + 1
        if axis != 1 and not (rank is not None and axis + rank == 1):
            self.walker.refuse(node, f"axis={axis}; only axis 1 (flatten each example) is supported: other axes "
                                     f"merge the batch axis with others")
        self.emit(node, Flatten(), self.values[x])

    def reshape_to(self, node, x, sizes, what):
        """Emit Flatten() or Reshape(sizes) for an example shape ``sizes`` (ints, -1 at most once)."""
        if not sizes:
            self.walker.refuse(node, f"{what} makes each example a scalar; keep at least one axis")
        layer = Flatten() if tuple(sizes) == (-1,) else self.walker.build(node, Reshape, tuple(sizes))
        self.emit(node, layer, self.values[x])

    def op_Reshape(self, node, a, x):
        walker = self.walker
        walker.inputs(node, 2, 2)
        if node.input[1] in self.vectors:
            target = list(self.vectors[node.input[1]].reshape(-1))
        else:
            spec = walker.const(node, node.input[1], "the shape", kind="int64")
            if spec.ndim != 1:
                walker.invalid(node, f"the shape tensor has shape {spec.shape}; Reshape takes a 1-D int64 tensor")
            target = [int(v) for v in spec]
        allowzero = walker.int_attr(node, a, "allowzero", 0, allowed=(0, 1))
        shape = self.shape(x)
        per_example = None if shape is None or None in shape else int(np.prod(shape))
        shown = "[" + ", ".join(map(repr, target)) + "]"
        rest = target[1:]
        if shape is not None and not allowzero:     # 0 copies the input's size on that axis
            rest = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(rest)]
        if any(d is BATCH or d is UNKNOWN or d is None or (isinstance(d, int) and d < -1) for d in rest) or (
                0 in rest):
            walker.refuse(node, f"Reshape to {shown}; refattr reshapes each example to sizes it knows (the batch "
                                f"size first); pass input_shape= to from_onnx if a size is symbolic")
        batch = target[0] if target else None
        keeps = (batch is BATCH or (batch == 0 and not allowzero)
                 or (walker.batch is not None and batch == walker.batch)
                 or (batch == -1 and -1 not in rest and per_example is not None
                     and int(np.prod(rest)) == per_example))
        if not keeps:
            walker.refuse(node, f"Reshape to {shown}; refattr keeps the batch axis: its first size must be 0, the "
                                f"batch size (Shape(x)[0], x.size(0) in torch) or -1 with the other sizes fixed, "
                                f"e.g. a reshape to (N, -1) flattens each example")
        self.reshape_to(node, x, rest, f"Reshape to {shown}")

    def squeeze_axes(self, node, a):
        """The axes of a Squeeze / Unsqueeze: its second input from opset 13, an attribute before; None if absent."""
        walker = self.walker
        if walker.opset(node) >= 13:
            walker.inputs(node, 1, 2)
            if len(node.input) < 2 or not node.input[1]:
                return None
            return [int(v) for v in walker.const(node, node.input[1], "axes", kind="int64").reshape(-1)]
        axes = a.get("axes")
        if axes is not None and not (isinstance(axes, list) and all(isinstance(v, int) for v in axes)):
            walker.invalid(node, f"attribute axes={axes!r}; expected integers")
        return axes

    def op_Squeeze(self, node, a, x):
        self.resize_axes(node, a, x, squeeze=True)

    def op_Unsqueeze(self, node, a, x):
        self.resize_axes(node, a, x, squeeze=False)

    def resize_axes(self, node, a, x, squeeze):
        walker = self.walker
        axes = self.squeeze_axes(node, a)
        shape = self.shape(x)
        if axes is None:
            walker.refuse(node, f"{node.op_type} without axes (it would also remove a batch axis of size 1); name "
                                f"the axes")
        if shape is None or None in shape:
            walker.refuse(node, f"{node.op_type} needs the example shape, which the graph does not declare; pass "
                                f"input_shape= to from_onnx")
        rank = len(shape) + 1 + (0 if squeeze else len(axes))
        normal = sorted({d + rank if d < 0 else d for d in axes})
        if len(normal) != len(axes) or any(not 0 <= d < rank for d in normal):
            walker.invalid(node, f"axes {axes} for a result of rank {rank}")
        if 0 in normal:
            walker.refuse(node, f"{node.op_type} of axis 0, the batch axis; refattr keeps it")
        full = [None, *shape]
        if squeeze:
            if any(full[d] != 1 for d in normal):
                walker.invalid(node, f"Squeeze of axes {axes} whose sizes {[full[d] for d in normal]} are not 1")
            new = [s for i, s in enumerate(full) if i not in normal]
        else:
            new, rest = [], iter(full)
            for i in range(rank):
                new.append(1 if i in normal else next(rest))
        self.reshape_to(node, x, new[1:], node.op_type)

    # shape vectors ------------------------------------------------------------------------------------
    def shape_arithmetic(self, node):
        """A node that reads no computed tensor: shape arithmetic (see ``_onnx_graph``) on shape vectors
        and int constants; anything else is refused."""
        walker = self.walker
        op = node.op_type
        a = walker.attrs(node)

        def vector(name):
            if name in self.vectors:
                return self.vectors[name]
            if name in walker.consts and np.asarray(walker.consts[name]).dtype.kind in "iu":
                return np.asarray(walker.consts[name]).astype(object)
            walker.refuse(node, f"{op} of {name!r}, which is neither a computed tensor, a shape nor an int constant; "
                                f"refattr evaluates constants only as shapes (export with do_constant_folding=True)")

        if op == "Shape" and node.input and node.input[0] in self.values:
            if self.shape(node.input[0]) is None:
                walker.refuse(node, "Shape of a tensor whose rank is not known; pass input_shape= to from_onnx")
            result = shape_of(self.shape(node.input[0]), a)
        elif op == "Gather" and len(node.input) == 2:
            if walker.int_attr(node, a, "axis", 0) != 0:
                walker.refuse(node, "Gather of a shape along an axis other than 0")
            data, index = vector(node.input[0]), vector(node.input[1])
            if data.ndim != 1 or any(not -len(data) <= i < len(data) for i in index.reshape(-1)):
                walker.invalid(node, f"index {index.tolist()} out of range for the shape {data.tolist()}")
            result = data[index.astype(np.int64)]
        elif op == "Unsqueeze" and node.input:
            data = vector(node.input[0])
            if data.ndim != 0:
                walker.refuse(node, "Unsqueeze of a shape (a vector); refattr evaluates Unsqueeze of a size")
            result = data.reshape(1)
        elif op == "Squeeze" and node.input:
            data = vector(node.input[0])
            if data.size != 1:
                walker.refuse(node, "Squeeze of a shape of several sizes")
            result = data.reshape(())
        elif op == "Concat":
            if walker.int_attr(node, a, "axis", 0) not in (0, -1):
                walker.refuse(node, "Concat of shapes along an axis other than 0")
            result = np.concatenate([vector(n).reshape(-1) for n in node.input if n])
        elif op == "Cast" and node.input:
            result = vector(node.input[0])
        else:
            walker.refuse(node, "it reads no tensor computed from the graph inputs; refattr evaluates constants only "
                                "as shapes (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast); export with "
                                "do_constant_folding=True")
        result = np.asarray(result, dtype=object)
        items = [int(v) if isinstance(v, (int, np.integer)) else v for v in result.reshape(-1)]
        if all(isinstance(v, int) for v in items):
            walker.consts[node.output[0]] = np.array(items, dtype=np.int64).reshape(result.shape)
        else:
            self.vectors[node.output[0]] = np.array(items, dtype=object).reshape(result.shape)
