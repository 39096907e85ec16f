"""tangermeme's ``deep_lift_shap`` reproduced with refattr's own layers, in float64.

Used by :func:`~refattr.interop.compare_tangermeme.compare_tangermeme` to split a difference between
tangermeme and refattr's reference into its conventions. refattr's reference methods never use
this module, and nothing here imports tangermeme.

tangermeme 1.6.0 (``tangermeme/deep_lift_shap.py`` and ``_deep_lift_utils.py``), read for facts:

- For each batch of (sequence, reference) pairs it runs the model once on the sequences followed
  by their references, with a forward hook and a *full* backward hook on every module whose class
  is in its rule table (:data:`TANGERMEME_MODULES`); the multipliers are the gradient of the sum
  of ``model(...)[:, target]`` with respect to the sequence half. ``raw_outputs=True`` returns
  these multipliers per pair, (N, K, 4, L); otherwise it forms, per pair,
  h[c, j] = m[c, j] - sum_c' x'[c', j] m[c', j] (its ``hypothetical_attributions``), averages over
  the K references and, unless ``hypothetical=True``, multiplies by the one-hot input.
- ``_nonlinear`` (ReLU, Sigmoid, ..., element-wise): the Rescale quotient Δy / Δx, or the
  module's plain gradient where |Δx| < 1e-6 (for the sequence half: the gradient at x).
- ``_maxpool`` (MaxPool1d / MaxPool2d): per window, max(y, y') - y' to the input's winner and
  y - max(y, y') to the reference's winner (scatter-added), divided by Δx; where Δx == 0 exactly,
  the plain gradient of the sequence half, used for both halves. Where a window's output falls while
  its input winner has Δx == 0 this adds multiplier 1 there, which ``delta_routing`` does not:
  refattr's ``maxpool_rule="tangermeme"``.
- A module whose class is not in the table, and any operation written as a function in
  ``forward`` (``F.relu``, ``torch.relu``, ``torch.sigmoid``, ``a * b``), passes its plain gradient:
  tangermeme treats it as linear (it warns when the mean delta of a batch exceeds 1 % of the mean
  output difference).
- Extra model inputs (``args``) are repeated in both halves of the batch: they get no references
  and no attributions.
"""

from __future__ import annotations

from typing import Collection, Mapping

import numpy as np

from ..errors import ArgumentError, UnsupportedLayerError
from ..layers import registry
from ..layers.base import ElementwiseLayer, LinearLayer
from ..layers.max_pool import is_max_pooling
from ..methods._common import one_hot
from .captum_conventions import _hooked_backward

__all__ = ["TANGERMEME_MODULES", "TANGERMEME_RESCALE_EPS", "tangermeme_treatment", "treated_as_linear",
           "tangermeme_multipliers", "hypothetical_from_multipliers"]

#: tangermeme 1.6.0's rule table (``_build_nonlinear_ops``): torch module class -> its rule.
TANGERMEME_MODULES = {
    **dict.fromkeys(("ReLU", "ReLU6", "RReLU", "SELU", "CELU", "GELU", "SiLU", "Mish", "ELU", "LeakyReLU", "Sigmoid",
                     "Tanh", "Softplus", "Softshrink", "LogSigmoid", "PReLU"), "nonlinear"),
    **dict.fromkeys(("MaxPool1d", "MaxPool2d"), "maxpool"),
    **dict.fromkeys(("GLU", "Softmax", "LayerNorm", "RMSNorm", "BilinearOp"), "own"),
}

#: ``_rescale``: |Δx| below which the plain gradient replaces the quotient Δy / Δx.
TANGERMEME_RESCALE_EPS = 1e-6


def tangermeme_treatment(layer) -> str:
    """"linear", "nonlinear", "maxpool", "own" (a rule of its own, not reproduced here) or "gradient"
    (no module in its table: the plain gradient) for the torch module ``layer`` was imported from.

    >>> from refattr import ReLU, Swish
    >>> from refattr.layers import MaxPool1D
    >>> tangermeme_treatment(ReLU()), tangermeme_treatment(MaxPool1D(2))
    ('nonlinear', 'maxpool')
    """
    if isinstance(layer, LinearLayer):
        return "linear"
    modules = registry.info(layer).torch_modules if registry.is_registered(layer) else ()
    return next((TANGERMEME_MODULES[m] for m in modules if m in TANGERMEME_MODULES), "gradient")


def treated_as_linear(net, function_nodes: Collection[int] = ()) -> list[str]:
    """The non-linear layers tangermeme passes as plain gradients: computed with a function in
    ``forward`` (node in ``function_nodes``) or from a module outside its table."""
    out = []
    for j, layer in enumerate(net.layers):
        if isinstance(layer, LinearLayer) or _is_linear_join(layer):
            continue
        name = net.nodes[j].name if hasattr(net, "nodes") else str(j)
        if j in function_nodes:
            out.append(f"{name!r} ({type(layer).__name__}, written as a function)")
        elif tangermeme_treatment(layer) == "gradient":
            out.append(f"{name!r} ({type(layer).__name__}, no rule in its table)")
    return out


def _is_linear_join(layer) -> bool:
    return type(layer).__name__ in ("Add", "Concat", "Reshape", "Flatten")


def tangermeme_multipliers(net, x, references, target, *, extra_inputs: tuple = (),
                           function_nodes: Collection[int] = (), plain_gradient_for_unknown: bool = True,
                           eps: float = TANGERMEME_RESCALE_EPS, pool_gradient_at_zero: bool = True,
                           winners: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
                           output: str = "multipliers") -> np.ndarray | tuple:
    """tangermeme's ``deep_lift_shap(..., raw_outputs=True)``: the multipliers of every pair, (N, K, *example).

    x : (N, *example), validated; references : (N, K, *example); target : (N,) ints;
    ``extra_inputs`` : the model's other inputs, (N, ...) each, held unchanged in both halves.
    Each option switches one of its conventions off, so that a chain measures each one's share:

    plain_gradient_for_unknown : False gives Rescale to the layers it treats as linear.
    eps : the Rescale fallback's threshold (0: only where Δx == 0 exactly, the limit f'(x')).
    pool_gradient_at_zero : False gives ``delta_routing`` at max pooling.
    winners : node -> (input-half, reference-half) argmax arrays in the layer's cache format,
        replacing the float64 winners (to reproduce the winners of a float32 run).

    output : "multipliers", or "every_value": ``(trace, trace_ref, gradients)`` of the N * K pair
        rows (pair n * K + k), the gradient (sequence half, reference half) at every value after
        the hooks, for :func:`refattr.interop.delta_trace.trace_delta`.

    With ``eps=0``, ``pool_gradient_at_zero=False`` and no layer treated as linear this is refattr's
    ``deeplift(maxpool_rule="delta_routing")`` per pair up to rounding; with only ``eps=0`` it is
    ``deeplift(maxpool_rule="tangermeme")``.
    """
    n, k = references.shape[:2]
    if net.n_inputs != 1 + len(extra_inputs):
        raise ArgumentError(f"extra_inputs: the network has {net.n_inputs} inputs; got x and {len(extra_inputs)} more")
    inputs = np.repeat(x, k, axis=0)
    refs = references.reshape((n * k,) + x.shape[1:])
    others = tuple(np.repeat(a, k, axis=0) for a in extra_inputs)
    trace = net.trace((inputs,) + others if others else inputs)
    trace_ref = net.trace((refs,) + others if others else refs)
    for j, (cells, cells_ref) in (winners or {}).items():
        trace.caches[j] = (cells, trace.caches[j][1])
        trace_ref.caches[j] = (cells_ref, trace_ref.caches[j][1])
    n_in, functions = net.n_inputs, frozenset(function_nodes)

    def treatment(j):
        layer = net.layers[j]
        kind = tangermeme_treatment(layer)
        if kind == "linear" or _is_linear_join(layer):
            return "linear"
        if j in functions or kind == "gradient":
            if plain_gradient_for_unknown:
                return "gradient"
            kind = "maxpool" if is_max_pooling(layer) else "nonlinear"
        if kind == "own" or (kind == "nonlinear" and not isinstance(layer, ElementwiseLayer)):
            raise UnsupportedLayerError(f"net: node {j} ({type(layer).__name__}): tangermeme's own rule for this "
                                        f"module is not reproduced here; only element-wise activations and max "
                                        f"pooling are")
        return kind

    kinds = [treatment(j) for j in range(len(net.layers))]

    def rule(j, grad_in, grad_out):
        layer = net.layers[j]
        a, a_ref = trace.activations[net.node_args[j][0]], trace_ref.activations[net.node_args[j][0]]
        y, y_ref = trace.activations[n_in + j], trace_ref.activations[n_in + j]
        dx = a - a_ref
        if kinds[j] == "maxpool":
            top = np.maximum(y, y_ref)
            routed = layer.vjp(grad_out[0] * (top - y_ref), trace.caches[j]) \
                + layer.vjp(grad_out[1] * (y - top), trace_ref.caches[j])
            zero = dx == 0
            plain = grad_in[0] if pool_gradient_at_zero else layer.vjp(grad_out[0] * (y >= y_ref), trace.caches[j])
            half = np.where(zero, plain, routed / np.where(zero, 1.0, dx))
            return half, half.copy()
        small = np.abs(dx) < eps if eps > 0 else dx == 0
        if eps > 0:
            m = (y - y_ref) / np.where(small, 1.0, dx)     # its quotient, as it computes it
        else:
            m = layer.secant(a_ref, dx)                     # the limit f'(x') where Δx == 0
        return tuple(np.where(small, grad_in[h], grad_out[h] * m) for h in (0, 1))

    seed = one_hot(np.repeat(target, k), trace.output.shape[1])
    if output not in ("multipliers", "every_value"):
        raise ArgumentError(f"output: expected 'multipliers' or 'every_value', got {output!r}")
    every = output == "every_value"
    final = _hooked_backward(net, trace, trace_ref, seed, lambda j: kinds[j] in ("nonlinear", "maxpool"), rule,
                             shared_input_replaced=False, stale_grad_output=False, value=None if every else 0)
    if every:
        return trace, trace_ref, final
    return final[0].reshape((n, k) + x.shape[1:])


def hypothetical_from_multipliers(multipliers: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per pair, h[c, j] = m[c, j] - sum_c' x'[c', j] m[c', j] (channels on axis 2 of (N, K, C, ...))."""
    return multipliers - np.sum(references * multipliers, axis=2, keepdims=True)
