"""The torch.fx importer's shape-aware operations: reductions (mean, sum, amax, max over axes),
squeeze / unsqueeze and transpose / permute, mapped onto existing layers (average and max pooling,
Affine, Reshape, Flatten) and Permute. A mixin of :class:`refattr.interop.torch_fx._Importer`, which
records every value's example shape in ``self.shapes`` as it builds the graph."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..layers import (AdaptiveAvgPool1D, AdaptiveAvgPool2D, Affine, Conv1D, Conv2D, Dense, Flatten, MaxPool1D,
                      MaxPool2D, Permute, Reshape)
from ._torch_fx_values import REQUIRED, _MaxPair, _Value

__all__ = ["ShapeOps"]


class ShapeOps:
    """Methods of the importer for the operations that need value shapes (see the module docstring)."""

    def shape_of(self, node, x, what):
        """The example shape of value ``x``; refuse where its rank is not known (no ``input_shape``)."""
        shape = self.shapes.get(x)
        if shape is None:
            self.refuse(node, f"{what} needs the rank of its input {x!r}, which the import does not know here; pass "
                              f"input_shape= (one example's shape, without the batch axis) to from_torch, e.g. "
                              f"from_torch(model, input_shape=(200, 4))")
        return shape

    def sizes_of(self, node, shape, axes, what):
        """Refuse unless the sizes of ``axes`` of the example shape ``shape`` are known."""
        if any(shape[a] is None for a in axes):
            self.refuse(node, f"{what} needs the sizes of the axes it acts on (the input's example shape is "
                              f"{tuple('?' if d is None else d for d in shape)}, '?' unknown); pass input_shape= "
                              f"(one example's shape, without the batch axis) to from_torch")

    def axes(self, node, dims, rank, what, inserted=False):
        """torch's ``dims`` (the batch axis 0, negatives counted from the end) as example axes; refuse
        the batch axis. ``inserted``: the dims of unsqueeze, counted in its output (one axis more)."""
        items = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        full = rank + 1 + int(inserted)
        out = []
        for d in items:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not -full <= d < full:
                self.refuse(node, f"{what}: dim {d!r} is not an axis of a tensor of {full} axes (the batch axis 0 "
                                  f"and examples of rank {rank}); expected an int in {-full}..{full - 1}")
            if int(d) % full == 0:
                self.refuse(node, f"{what} acts on the batch axis (dim {d}); refattr keeps the batch axis where it "
                                  f"is (attributions are per example); name axes of the example (1 or later, or "
                                  f"negative), e.g. dim=-1")
            out.append(int(d) % full - 1)
        if len(set(out)) != len(out):
            self.refuse(node, f"{what}: an axis is named twice")
        return out

    def reshaped(self, node, shape, what):
        """Flatten() or Reshape to the example shape ``shape`` (one unknown size at most, as -1)."""
        if not shape:
            self.refuse(node, f"{what} leaves a scalar per example; refattr explains one vector of outputs per "
                              f"example: keep an axis (keepdim=True, or reduce fewer axes)")
        if len(shape) == 1:
            return Flatten()
        if list(shape).count(None) > 1:
            self.sizes_of(node, shape, range(len(shape)), what)
        return Reshape(tuple(-1 if d is None else d for d in shape))

    def reduction(self, node, kind, args, kwargs):
        """mean / sum / amax / max(dim) over axes of each example -> pooling (+ Affine for a sum)."""
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        second = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("other"))
        if kind == "max" and (second is None or isinstance(second, _Value) or "other" in kwargs):
            self.refuse(node, "max without dim (over every axis, the batch with them) or of two tensors "
                              "(element-wise) has no refattr layer; max(x, dim) over axes of each example imports "
                              "as max pooling")
        params = (("dim", () if kind == "amax" else REQUIRED if kind == "max" else None), ("keepdim", False))
        bound = self.bind(node, params + ((("dtype", None),) if kind in ("mean", "sum") else ()), args[1:], kwargs)
        dims, keep = bound["dim"], bound["keepdim"]
        what = f"{kind}(dim={dims!r}{', keepdim=True' if keep else ''})"
        if bound.get("dtype") is not None:
            self.refuse(node, f"{what} with a dtype; refattr computes in float64")
        if dims is None or dims == () or dims == []:
            self.refuse(node, f"{what} reduces every axis, the batch axis with them; name the axes of each "
                              f"example, e.g. {kind}(dim=-1)")
        shape = self.shape_of(node, x, what)
        axes = self.axes(node, dims, len(shape), what)
        if len(shape) > 3:
            self.refuse(node, f"{what} on examples of shape {shape}: refattr maps reductions of features (F,), "
                              f"sequences (C, L) and images (C, H, W)")
        spatial = tuple(a for a in axes if a > 0)
        layers = []
        if kind in ("amax", "max"):
            if 0 in axes:
                self.refuse(node, f"{what} takes a maximum across channels (axis 1); refattr has max pooling over "
                                  f"the trailing axes of sequences (C, L) and images (C, H, W) only, e.g. amax(dim=-1)")
            self.sizes_of(node, shape, spatial, what)
            layers.append(MaxPool1D(shape[1]) if len(shape) == 2 else
                          MaxPool2D(tuple(shape[a] if a in axes else 1 for a in (1, 2))))
        else:
            if spatial:
                layers.append(AdaptiveAvgPool1D(1) if len(shape) == 2 else
                              AdaptiveAvgPool2D(tuple(1 if a in axes else None for a in (1, 2))))
            if 0 in axes:                    # the mean over channels: weights 1 / C
                self.sizes_of(node, shape, (0,), what)
                c = shape[0]
                weight = np.full((1, c) + (1,) * (len(shape) - 1), 1.0 / c)
                layers.append((Dense, Conv1D, Conv2D)[len(shape) - 1](weight))
            if kind == "sum":
                self.sizes_of(node, shape, axes, what)
                layers.append(Affine(float(math.prod(shape[a] for a in axes))))
        if not keep:
            layers.append(self.reshaped(node, tuple(d for i, d in enumerate(shape) if i not in axes), what))
        value = self.emit(node, layers, x)
        return _MaxPair(values=value) if kind == "max" else value

    def shape_mean(self, node, args, kwargs):
        return self.reduction(node, "mean", args, kwargs)

    def shape_sum(self, node, args, kwargs):
        return self.reduction(node, "sum", args, kwargs)

    def shape_amax(self, node, args, kwargs):
        return self.reduction(node, "amax", args, kwargs)

    def shape_max(self, node, args, kwargs):
        return self.reduction(node, "max", args, kwargs)

    def shape_squeeze(self, node, args, kwargs):
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        dims = self.bind(node, (("dim", None),), args[1:], kwargs)["dim"]
        if dims is None:
            self.refuse(node, "squeeze() without dim also removes the batch axis of a batch of one example, so "
                              "the module's output shape depends on the batch size; name the axes, e.g. "
                              "x.squeeze(-1)")
        what = f"squeeze({dims!r})"
        shape = self.shape_of(node, x, what)
        axes = self.axes(node, dims, len(shape), what)
        self.sizes_of(node, shape, axes, what)
        drop = [a for a in axes if shape[a] == 1]       # torch leaves an axis of another size as it is
        if not drop:
            return x
        return self.emit(node, [self.reshaped(node, tuple(d for i, d in enumerate(shape) if i not in drop), what)], x)

    def shape_unsqueeze(self, node, args, kwargs):
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        dim = self.bind(node, (("dim", REQUIRED),), args[1:], kwargs)["dim"]
        what = f"unsqueeze({dim!r})"
        shape = self.shape_of(node, x, what)
        if isinstance(dim, (tuple, list)):
            self.refuse(node, f"{what}: expected one int dim")
        (axis,) = self.axes(node, dim, len(shape), what, inserted=True)
        return self.emit(node, [self.reshaped(node, shape[:axis] + (1,) + shape[axis:], what)], x)

    def shape_transpose(self, node, args, kwargs):
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        for a, b in (("axis0", "dim0"), ("axis1", "dim1")):
            if a in kwargs:
                kwargs[b] = kwargs.pop(a)
        bound = self.bind(node, (("dim0", REQUIRED), ("dim1", REQUIRED)), args[1:], kwargs)
        what = f"transpose({bound['dim0']!r}, {bound['dim1']!r})"
        shape = self.shape_of(node, x, what)
        first, second = (self.axes(node, bound[d], len(shape), what)[0] for d in ("dim0", "dim1"))
        dims = list(range(len(shape)))
        dims[first], dims[second] = second, first
        return self.permuted(node, x, tuple(dims))

    def shape_permute(self, node, args, kwargs):
        x = self.tensor(node, args[0] if args else kwargs.pop("input", None))
        dims = tuple(args[1:]) or (kwargs.pop("dims", None),)
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        what = f"permute{dims!r}"
        full = len(dims)
        if kwargs or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and -full <= d < full
                             for d in dims) or sorted(int(d) % full for d in dims) != list(range(full)):
            self.refuse(node, f"{what}: expected a permutation of the tensor's axes 0..{full - 1} (ints)")
        shape = self.shapes.get(x)
        if shape is not None and len(shape) + 1 != full:
            self.refuse(node, f"{what} names {full} axes; its input has {len(shape) + 1} (the batch and examples of "
                              f"shape {shape})")
        normal = [int(d) % full for d in dims]
        if normal[0] != 0:
            self.refuse(node, f"{what} moves the batch axis (axis 0 goes to position {normal.index(0)}); refattr "
                              f"keeps the batch axis first (attributions are per example): permute(0, ...)")
        return self.permuted(node, x, tuple(d - 1 for d in normal[1:]))

    def permuted(self, node, x, dims):
        """``x`` itself for the identity, else a Permute node."""
        return x if dims == tuple(range(len(dims))) else self.emit(node, [Permute(dims)], x)
