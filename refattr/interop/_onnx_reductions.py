"""from_onnx's reductions and transposes: ReduceMean, ReduceSum and ReduceMax over an example's
trailing spatial axes (what ``torch.onnx.export`` writes for ``h.mean(-1)``, ``h.sum(-1)``,
``h.amax(-1)``, ``h.max(-1)[0]``) and Transpose keeping the batch axis first.

They map onto existing layers, so every attribution method works on them: a mean over the spatial
axes is global average pooling (AdaptiveAvgPool1D / 2D), a sum that times the number of cells
(Affine), a max global max pooling (MaxPool1D / 2D with the whole axis as the kernel); without
``keepdims`` the size-1 axes are dropped with Flatten; Transpose is Permute. A mixin of the ONNX
importer (:class:`refattr.interop.onnx_model._Importer`).
"""

from __future__ import annotations

import math

from ..layers import AdaptiveAvgPool1D, AdaptiveAvgPool2D, Affine, Flatten, MaxPool1D, MaxPool2D, Permute

__all__ = ["ReductionOps", "REDUCTION_ONNX"]

#: The ops this module imports, with what of them is supported.
REDUCTION_ONNX = {"ReduceMean": "ReduceMean / ReduceSum / ReduceMax over all the spatial axes of sequences or "
                                "images (global pooling)", "ReduceSum": None, "ReduceMax": None,
                  "Transpose": "Transpose keeping the batch axis first"}

#: The opset from which each reduction takes its axes as a second input instead of an attribute.
_AXES_INPUT_FROM = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18}


class ReductionOps:
    """The importer's methods for Reduce* and Transpose (see the module docstring)."""

    def op_ReduceMean(self, node, a, x):
        self.reduce(node, a, x, "mean")

    def op_ReduceSum(self, node, a, x):
        self.reduce(node, a, x, "sum")

    def op_ReduceMax(self, node, a, x):
        self.reduce(node, a, x, "max")

    def reduction_axes(self, node, a):
        walker = self.walker
        if walker.opset(node) >= _AXES_INPUT_FROM[node.op_type]:
            walker.inputs(node, 1, 2)
            if len(node.input) < 2 or not node.input[1]:
                return None
            return [int(v) for v in walker.const(node, node.input[1], "axes", kind="int64").reshape(-1)]
        walker.inputs(node, 1, 1)
        axes = a.get("axes")
        if axes is not None and not (isinstance(axes, list) and all(isinstance(v, int) for v in axes)):
            walker.invalid(node, f"attribute axes={axes!r}; expected integers")
        return axes

    def reduce(self, node, a, x, kind):
        walker = self.walker
        op = node.op_type
        axes = self.reduction_axes(node, a)
        keep = walker.int_attr(node, a, "keepdims", 1, allowed=(0, 1))
        if axes is None or not axes:
            if walker.int_attr(node, a, "noop_with_empty_axes", 0, allowed=(0, 1)):
                self.alias(node, x)
                return
            walker.refuse(node, f"{op} over every axis (no axes) would mix the examples of a batch; reduce over "
                                f"the spatial axes only, e.g. h.mean(-1) for sequences, h.mean((2, 3)) for images")
        shape = self.shape(x)
        if shape is None or None in shape:
            walker.refuse(node, f"{op} needs the example shape, which the graph does not declare; pass "
                                f"input_shape= to from_onnx")
        rank = len(shape) + 1
        normal = sorted({d + rank if d < 0 else d for d in axes})
        if len(normal) != len(axes) or any(not 0 <= d < rank for d in normal):
            walker.invalid(node, f"axes {axes} for an input of rank {rank}")
        if 0 in normal:
            walker.refuse(node, f"{op} over axis 0, the batch axis; refattr keeps each example apart")
        spatial = list(range(2, rank))
        if rank not in (3, 4) or normal != spatial:
            walker.refuse(node, f"{op} over axes {axes} of an input of per-example shape {tuple(shape)}; refattr "
                                f"imports a reduction over all the spatial axes of sequences (C, L) or images "
                                f"(C, H, W) (global pooling); other reductions have no refattr layer")
        k = rank - 2
        cells = math.prod(shape[1:])
        if kind == "max":
            window = tuple(shape[1:])
            layers = [walker.build(node, MaxPool1D, window[0]) if k == 1 else walker.build(node, MaxPool2D, window)]
        else:
            layers = [walker.build(node, AdaptiveAvgPool1D, 1) if k == 1 else walker.build(node, AdaptiveAvgPool2D, 1)]
            if kind == "sum":
                layers.append(walker.build(node, Affine, float(cells), 0.0))
        if not keep:
            layers.append(Flatten())
        self.emit_chain(node, layers, self.values[x])

    def op_Transpose(self, node, a, x):
        walker = self.walker
        shape = self.shape(x)
        if shape is None:
            walker.refuse(node, "Transpose needs its input's rank; pass input_shape= to from_onnx")
        rank = len(shape) + 1
        perm = a.get("perm", list(range(rank - 1, -1, -1)))
        if not (isinstance(perm, list) and sorted(perm) == list(range(rank))):
            walker.invalid(node, f"attribute perm={perm!r}; expected a permutation of 0..{rank - 1}")
        if perm[0] != 0:
            walker.refuse(node, f"Transpose with perm={perm} moves the batch axis; refattr keeps it first "
                                f"(perm=[0, ...])")
        dims = tuple(p - 1 for p in perm[1:])
        if dims == tuple(range(rank - 1)):
            self.alias(node, x)
            return
        self.emit(node, walker.build(node, Permute, dims), self.values[x])

    def emit_chain(self, node, layers, reads):
        """Emit ``layers`` one after the other for one ONNX node: the last takes the node's output
        name, the ones before it that name with ``.1``, ``.2``, ... appended."""
        out = node.output[0]
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            self.emit(node, layer, reads, name=None if last else f"{out}.{i + 1}")
            reads = out if last else f"{out}.{i + 1}"
