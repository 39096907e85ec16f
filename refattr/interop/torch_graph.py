"""A :class:`refattr.Graph` as a float64 ``torch.nn.Module``, to run a peer library (Captum) on it.

Every node of one input becomes the torch module(s) :func:`~refattr.interop.to_torch` writes for
its layer, kept as a submodule named after the node; the joins and ``Reshape`` are written as
tensor arithmetic in ``forward`` (``+`` with the Add's weights, ``torch.cat``, ``*``,
``reshape``), as
users write them and as torch.fx traces them, so a peer sees them as plain tensor operations (Captum's
DeepLift hooks modules only: it passes the ordinary gradient through these).
"""

from __future__ import annotations

from ..errors import ArgumentError, UnsupportedLayerError
from ..graph import Graph
from ..layers import Add, Concat, Mul, Permute, Reshape
from ..network import Sequential

__all__ = ["graph_to_torch"]


def graph_to_torch(net: Graph):
    """A float64 ``torch.nn.Module`` whose ``forward(*inputs)`` computes ``net``.

    Refused with UnsupportedLayerError: a node whose layer :func:`~refattr.interop.to_torch`
    refuses (named with the node).
    """
    from .torch_model import require_torch, to_torch

    torch = require_torch()
    nn = torch.nn
    if not isinstance(net, Graph):
        raise ArgumentError(f"net: expected a refattr.Graph, got {type(net).__module__}.{type(net).__name__}")
    modules = {}
    for node in net.nodes:
        if isinstance(node.layer, (Add, Concat, Mul, Permute, Reshape)):
            continue
        try:
            chain = to_torch(Sequential([node.layer]))     # one layer: to_torch never sees the Graph
        except UnsupportedLayerError as exc:
            raise UnsupportedLayerError(f"node {node.name!r}: {exc}") from None
        modules[_module_key(node.name)] = chain[0] if len(chain) == 1 else chain

    class GraphModule(nn.Module):
        """refattr Graph exported to torch: the nodes in their order, joins as tensor operations."""

        def __init__(self):
            super().__init__()
            self.nodes = nn.ModuleDict(modules)

        def forward(self, *inputs):
            if len(inputs) != len(net.inputs):
                raise TypeError(f"forward: expected {len(net.inputs)} inputs ({', '.join(net.inputs)}), "
                                f"got {len(inputs)}")
            values = dict(zip(net.inputs, inputs))
            for node in net.nodes:
                args = [values[name] for name in node.inputs]
                layer = node.layer
                if isinstance(layer, Add):
                    weights = layer.weights or (1.0,) * len(args)
                    out = weights[0] * args[0] if weights[0] != 1.0 else args[0]
                    for w, a in zip(weights[1:], args[1:]):
                        out = out + (a if w == 1.0 else w * a)
                elif isinstance(layer, Concat):
                    out = torch.cat(args, dim=layer.axis)
                elif isinstance(layer, Mul):
                    out = args[0] * args[1]
                elif isinstance(layer, Reshape):
                    out = args[0].reshape((args[0].shape[0],) + layer.shape)
                elif isinstance(layer, Permute):
                    out = args[0].permute(0, *(d + 1 for d in layer.dims))
                else:
                    out = self.nodes[_module_key(node.name)](args[0])
                values[node.name] = out
            return values[net.nodes[-1].name]

        def node_module(self, name: str) -> nn.Module:
            """The torch module of node ``name`` (imported names such as 'sum_1.0' are stored
            with '.' written '_dot_', as torch module names cannot hold a dot)."""
            return self.nodes[_module_key(name)]

        def has_node_module(self, name: str) -> bool:
            """Whether node ``name`` runs as a module (joins and reshapes are tensor operations)."""
            return _module_key(name) in self.nodes

        def extra_repr(self) -> str:
            return f"inputs={list(net.inputs)}, output={net.nodes[-1].name!r}"

    return GraphModule().double().eval()


def _module_key(name: str) -> str:
    return name.replace(".", "_dot_")
