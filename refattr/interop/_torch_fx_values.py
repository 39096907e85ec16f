"""The placeholders the torch.fx importer (:mod:`refattr.interop.torch_fx`) binds an fx graph's
arguments to: refattr values, module tensors, the batch size and the pieces of ``torch.max``."""

from __future__ import annotations

from types import SimpleNamespace

__all__ = ["REQUIRED", "first_input"]

#: A parameter without a default.
REQUIRED = object()


class _Value(str):
    """The name of a value of the refattr graph (an input or a node), as opposed to a Python str
    argument such as ``approximate='tanh'``."""


class _Param(SimpleNamespace):
    """A ``get_attr`` node: a tensor held by the module (``target``: its dotted path)."""


class _Batch:
    """The batch size, as ``x.size(0)`` or ``x.shape[0]`` read it."""

    def __repr__(self) -> str:
        return "the batch size x.size(0)"


class _Shape(SimpleNamespace):
    """``x.shape`` or ``x.size()``: only its item 0 (the batch size) is known to the import."""


class _MaxPair(SimpleNamespace):
    """``torch.max(x, dim)``: the pair (values, indices); ``values`` names the refattr value of the maxima."""


class _Indices(SimpleNamespace):
    """The indices of ``torch.max(x, dim)`` (``what``: how the user wrote it): refused where read."""


def first_input(node):
    """The fx node a call reads as its tensor input (the one an in-place call overwrites)."""
    return node.args[0] if node.args else node.kwargs.get("input")
