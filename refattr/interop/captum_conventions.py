"""Captum 0.9.0's conventions, reproduced exactly with refattr's gradients and layers.

This is refattr's comparison layer: it exists so that a diff between Captum and refattr can be
split into "Captum computes something else by a documented convention", "Captum's numerical
error", "a known Captum bug" and "unexplained" (:mod:`refattr.interop.compare`). refattr's
reference methods never use anything from this module.

Which is which is decided from Captum's documentation: a behaviour Captum documents is a
convention (the Riemann step sizes "sum is smaller than or equal to one", so the trapezoid
weights' (n - 1)/n; DeepLift's ``eps``; DeepLift's limited list of supported non-linearities,
hence SiLU as a plain gradient; float32 step weights, torch's default dtype). A behaviour that
contradicts what Captum sets out to compute is a bug, named with its issue: the stale output
gradient on adjacent hooked modules (captum issue #1104), the max-pool fallback's first-row
gradient (captum issue #1276), and the max-pool un-pooling by assignment, which drops
contributions where overlapping windows share a winner (no Captum issue filed; tangermeme fixed
the same defect in its DeepLIFT, its issue #49).

Nothing here imports Captum: each convention is written down from reading Captum's source (facts
cited per function) and checked against Captum in ``tests/interop``.

Integrated gradients (``captum/attr/_core/integrated_gradients.py`` and
``captum/attr/_utils/approximation_methods.py``):

- Riemann nodes come from ``torch.linspace(start, end, n)`` in float32 (the default dtype), i.e.
  float32 arithmetic: ``step = fl32((fl32(end) - fl32(start)) / (n - 1))``, node k is
  ``fl32(fl32(start) + k * step)`` for k < n // 2 and ``fl32(fl32(end) - (n - 1 - k) * step)``
  otherwise, each rounded once. (start, end) are (0, 1 - 1/n) for left, (1/n, 1) for right,
  (1/(2n), 1 - 1/(2n)) for middle, (0, 1) for trapezoid.
- Riemann weights are 1/n; ``riemann_trapezoid`` halves the two end weights, so they sum to
  (n - 1)/n, not 1: with nodes on linspace(0, 1, n) the trapezoid rule needs weights 1/(n - 1).
- Gauss-Legendre nodes (1 + x_k)/2 stay float64 (``numpy.polynomial.legendre.leggauss``); the
  weights w_k/2 are rounded to float32.
- All step weights pass through ``torch.tensor(...).float()``: rounded to float32, then multiply
  the float64 gradients (so the products and the sum are float64).
- The path points are x' + a_k (x - x') in float64; the result is (x - x') * sum_k w_k grad_k.

DeepLift (``captum/attr/_core/deep_lift.py``, hooks from ``captum/_utils/common.py``): the model
runs on the input and the baseline concatenated along the batch axis; hooks on modules whose exact
type is ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool1/2/3d or Softmax replace the
gradient at the module's input:

- element-wise: ``grad_output * (y - y') / (x - x')`` (a naive divided difference) where
  ``|x - x'| >= eps`` (eps = 1e-10), otherwise the ordinary gradient *at the actual input* for
  the input half (at the baseline for the baseline half);
- every other module, SiLU included, passes its ordinary gradient, evaluated at the input for
  the input half: SiLU is treated as the gradient f'(x), not Δy/Δx, so summation-to-delta
  breaks, and no warning is given;
- max pooling: per window, max(y, y') - y' is un-pooled to the input's winner with the input
  half's signal and y - max(y, y') to the baseline's winner with the baseline half's signal;
  the sum is divided by Δx. Un-pooling is ``max_unpool2d``, an assignment: where overlapping
  windows share a winner one window's value survives (the last in row-major window order), it
  is not a sum. Where |Δx| < eps the fallback is ``grad_input[0]``: since Captum 0.6 the hook
  receives a tensor, so this is the gradient of row 0 of the doubled batch (example 0, input
  half), broadcast to every example and both halves (captum issue #1276);
- ``grad_output`` is recorded by a tensor hook on the module's output that is registered before
  the next module's input hook; when the next module is hooked too (ReLU -> MaxPool2d,
  MaxPool2d -> Tanh, ...), the recorded value is the gradient *before* the next module's rule
  rewrote it (captum issue #1104, fixed upstream after 0.9.0). The upstream Rescale branch then
  sees the downstream module as a plain gradient; its fallback branch sees the rewritten one;
- the attribution is (x - x') times the input half's gradient.

On graphs and traced models (the same hooks, ``captum/_utils/common.py``, ``_register_backward_hook``):

- hooks are set on modules only: a layer the model computes with a function or tensor method
  (``F.relu(x)``, ``torch.sigmoid``, ``F.max_pool2d``, ``a * b``) passes its ordinary gradient
  (for a product: b at the input half), a convention like SiLU's;
- the input hook is a tensor hook on the module's *input tensor*, and the module runs on a clone:
  where other modules read that tensor too (fan-out: ``relu(h) + h``), the hook receives the
  tensor's whole gradient and replaces it with the module's own DeepLIFT term, so the other
  readers' terms are lost (a defect; no Captum issue found). GuidedBackprop and Deconvolution use
  the same hook on ``nn.ReLU``: the former clamps the sum of every reader's term, the latter
  replaces it with relu(the ReLU's output gradient);
- ``nn.Softmax``'s rule is the element-wise quotient g Δs_i / Δx_i minus its mean over every
  element of the doubled batch, so an example's result depends on its batchmates
  (:mod:`refattr.interop._captum_softmax`).

DeepLiftShap runs DeepLift for every (input, baseline) pair and averages over the baselines.

Captum's ``baselines`` argument is one baseline per example in ``IntegratedGradients`` and
``DeepLift`` and a distribution in ``DeepLiftShap``; the reproductions here take refattr's names,
``baseline`` and ``baseline_samples``, and refuse ``baselines=`` as refattr's methods do.
"""

from __future__ import annotations

from typing import Collection

import numpy as np

from ..errors import ArgumentError, RuleError, UnsupportedLayerError
from ..layers import registry
from ..layers._join import JoinLayer
from ..layers.mul import Mul
from ..layers.relu import ReLU
from ._captum_softmax import captum_softmax_grad_input
from ..layers.base import DeltaPair, ElementwiseLayer, LinearLayer
from ..methods._common import one_hot, prepare
from ..methods.gradient import gradient
from ..validation import as_baselines, as_reference_sets, broadcast_baseline, refuses_baselines

__all__ = ["CAPTUM_IG_METHODS", "REFATTR_RULE", "CAPTUM_DEEPLIFT_EPS", "captum_ig_quadrature",
           "torch_float32_linspace", "path_integral", "captum_integrated_gradients", "captum_deeplift",
           "captum_deeplift_shap"]

#: Captum's integrated-gradients ``method`` names.
CAPTUM_IG_METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")

#: The refattr rule whose mathematical definition each Captum method approximates.
REFATTR_RULE = {"riemann_left": "left", "riemann_right": "right", "riemann_middle": "midpoint",
                "riemann_trapezoid": "trapezoid", "gausslegendre": "gauss_legendre"}

#: Captum DeepLift's threshold below which |Δx| falls back to the gradient.
CAPTUM_DEEPLIFT_EPS = 1e-10


def torch_float32_linspace(start: float, end: float, n: int) -> np.ndarray:
    """``torch.linspace(start, end, n)`` in float32, returned as float64 (exact).

    float32 arithmetic with a two-sided scheme: ``step = fl32((fl32(end) - fl32(start)) / (n - 1))``;
    the first n // 2 values are ``fl32(fl32(start) + k * step)``, the rest
    ``fl32(fl32(end) - (n - 1 - k) * step)``, each rounded once (the products and sums below are
    exact in float64 for n < 2**24, so one rounding to float32 reproduces a fused multiply-add).

    Examples
    --------
    >>> torch_float32_linspace(0.0, 1.0, 3)
    array([0. , 0.5, 1. ])
    >>> float(torch_float32_linspace(0.1, 1.0, 10)[0]) == float(np.float32(0.1))
    True
    """
    if n < 2:
        raise RuleError(f"n: expected at least 2 points, got {n}")
    s, e = np.float32(start), np.float32(end)
    step = np.float32((e - s) / np.float32(n - 1))
    k = np.arange(n, dtype=np.float64)
    low = (np.float64(s) + k * np.float64(step)).astype(np.float32)
    high = (np.float64(e) - (n - 1 - k) * np.float64(step)).astype(np.float32)
    return np.where(k < n // 2, low, high).astype(np.float64)


def captum_ig_quadrature(method: str, n_steps: int, float32: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Captum's (nodes, weights) for ``method`` with ``n_steps`` gradient evaluations.

    With ``float32=False`` the same formulas without Captum's float32 rounding (float64 linspace
    nodes, float64 weights); the difference between the two isolates the rounding convention.

    Examples
    --------
    Captum's trapezoid weights with n = 4 sum to (n - 1)/n = 0.75:

    >>> nodes, weights = captum_ig_quadrature("riemann_trapezoid", 4)
    >>> weights.tolist(), float(weights.sum())
    ([0.125, 0.25, 0.25, 0.125], 0.75)
    """
    if method not in CAPTUM_IG_METHODS:
        raise RuleError(f"method: expected one of {CAPTUM_IG_METHODS}, got {method!r}")
    n = int(n_steps)
    if method == "gausslegendre":
        if n < 1:
            raise RuleError(f"n_steps: expected >= 1 for gausslegendre, got {n}")
        x, w = np.polynomial.legendre.leggauss(n)
        nodes, weights = 0.5 * (1 + x), 0.5 * w
    else:
        if n < 2:
            raise RuleError(f"n_steps: Captum's Riemann rules need at least 2 steps, got {n}")
        start, end = {"riemann_left": (0.0, 1 - 1 / n), "riemann_right": (1 / n, 1.0),
                      "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)), "riemann_trapezoid": (0.0, 1.0)}[method]
        nodes = torch_float32_linspace(start, end, n) if float32 else np.linspace(start, end, n)
        weights = np.full(n, 1 / n)
        if method == "riemann_trapezoid":
            weights[0] /= 2
            weights[-1] /= 2
    if float32:
        weights = weights.astype(np.float32).astype(np.float64)
    return nodes, weights


def path_integral(net, x, baseline, target, nodes, weights, multiply: bool = True) -> np.ndarray:
    """(x - x') * sum_k w_k grad t(x' + a_k (x - x')), with refattr's float64 gradients; without the
    factor (x - x') when ``multiply`` is False (Captum's ``multiply_by_inputs=False``).

    The nodes and weights are used as given (no check that the weights sum to 1): this is how a
    peer's quadrature convention is reproduced. The sum runs over k in order, after the products.
    """
    x, t = prepare(net, x, target)
    xr = broadcast_baseline(baseline, x)
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    delta = x - xr
    points = np.concatenate([xr + a * delta for a in nodes])
    grads = gradient(net, points, np.tile(t, nodes.shape[0])).values
    grads = grads.reshape((nodes.shape[0],) + x.shape)
    total = np.zeros_like(x)
    for k in range(nodes.shape[0]):
        total += grads[k] * weights[k]
    return total * delta if multiply else total


@refuses_baselines
def captum_integrated_gradients(net, x, baseline=0.0, target=None, method="gausslegendre", n_steps=50,
                                float32=True, multiply: bool = True) -> np.ndarray:
    """Captum's ``IntegratedGradients.attribute(x, baseline, target, n_steps, method)``, reproduced
    (``multiply=False``: with ``multiply_by_inputs=False``, the weighted mean gradient)."""
    nodes, weights = captum_ig_quadrature(method, n_steps, float32=float32)
    return path_integral(net, x, baseline, target, nodes, weights, multiply=multiply)


def _unpool_assign(values, cells, input_hw):
    """max_unpool2d: out[n, c].flat[cells] = values, later windows overwriting earlier ones."""
    n, c = values.shape[:2]
    out = np.zeros((n, c, input_hw[0] * input_hw[1]))
    flat_values = values.reshape(n, c, -1)
    flat_cells = cells.reshape(n, c, -1)
    for i in range(n):
        for j in range(c):
            out[i, j, flat_cells[i, j]] = flat_values[i, j]  # duplicate cells: the last write wins
    return out.reshape(n, c, *input_hw)


def captum_treatment(layer, swish_as_gradient: bool = True) -> str:
    """How Captum's DeepLift treats ``layer``'s module: its registry entry's ``captum``
    (:mod:`refattr.layers.registry`), one of ``"linear"`` and ``"gradient"`` (the plain gradient),
    ``"nonlinear"`` (the Rescale hook) or ``"maxpool"`` (the max-pool hook).

    ``swish_as_gradient=False`` switches the convention for the element-wise layers Captum does not
    hook (Swish, as nn.SiLU) off: they get the Rescale hook like the hooked ones.

    >>> from refattr import ReLU, Swish
    >>> captum_treatment(ReLU()), captum_treatment(Swish()), captum_treatment(Swish(), swish_as_gradient=False)
    ('nonlinear', 'gradient', 'nonlinear')
    """
    if isinstance(layer, LinearLayer) and not registry.is_registered(layer):
        return "linear"      # a private linear node (the slicing of a packed graph): no module, no hook
    treatment = registry.info(layer).captum
    if treatment == "gradient" and not swish_as_gradient and isinstance(layer, ElementwiseLayer):
        return "nonlinear"
    return treatment


def unhooked_elementwise(net) -> list:
    """The element-wise layers of ``net`` whose modules Captum's DeepLift does not hook (captum =
    "gradient": it passes their gradient f'(x) instead of Δy/Δx)."""
    return [layer for layer in net.layers
            if isinstance(layer, ElementwiseLayer) and captum_treatment(layer) == "gradient"]


def _readers(net) -> list[list[int]]:
    """For every value (inputs first, then each node's output), the nodes that read it, in order."""
    readers: list[list[int]] = [[] for _ in range(net.n_inputs + len(net.layers))]
    for j, args in enumerate(net.node_args):
        for a in dict.fromkeys(args):
            readers[a].append(j)
    return readers


@refuses_baselines
def captum_deeplift(net, x, baseline=0.0, target=None, *, eps=CAPTUM_DEEPLIFT_EPS, swish_as_gradient=True,
                    stale_grad_output=True, first_row_fallback=True, assign_unpool=True,
                    naive_division=True, shared_input_replaced=True, joins_as_gradient=True,
                    softmax_as_captum=True, function_nodes: Collection[int] = (),
                    at_value: int | None = None, at_input_of: int | None = None,
                    output: str = "attributions") -> np.ndarray:
    """Captum's ``DeepLift(model).attribute(x, baseline, target)`` (Rescale), reproduced.

    Works on chains and on graphs of one input. The backward pass tracks, for every value (a
    tensor between layers) and for both halves of Captum's batch (input, baseline), the gradient
    *arriving* from autograd (the sum over the value's readers) and the *final* one after the
    input hooks of the hooked modules that read it. Each option switches one of Captum's
    conventions off, so that a chain of variants can measure each one's share of a difference.

    Parameters
    ----------
    eps : float
        |Δx| below which an element-wise layer or max pool uses the ordinary gradient (Captum:
        1e-10). ``eps=0`` falls back only where Δx == 0 exactly.
    swish_as_gradient : bool
        True: an element-wise layer whose module Captum does not hook (registry ``captum =
        "gradient"``: Swish, as nn.SiLU), and every layer at ``function_nodes``, passes the
        ordinary gradient. False: they get the rule of a hooked module (Rescale; max pooling's).
    function_nodes : collection of int
        Nodes that the torch model computes with a function or tensor method (``F.relu(x)``,
        ``torch.sigmoid``, ``F.max_pool2d``) instead of a module: Captum hooks modules only, so
        these pass their ordinary gradient (:func:`refattr.interop.torch_fx.function_node_names`).
    at_value : int, optional
        Captum's ``LayerDeepLift`` at this hidden value (``attribute_to_layer_input=False``): the
        value's difference a(x) - a(x') times the gradient that reaches it through the hooks.
    at_input_of : int, optional
        Captum's ``LayerDeepLift`` with ``attribute_to_layer_input=True`` at node ``at_input_of``'s
        module: the difference of the value the module reads times the gradient of the *clone* the
        module runs on (Captum's layer-gradient hook reads the clone, while its DeepLIFT hook rewrites
        the gradient of the original tensor): the module's plain vector-Jacobian product of the
        gradient at its output, so the module's own DeepLIFT rule is skipped.
    output : {"attributions", "multipliers", "every_value"}
        "attributions": Δx times the gradient that reaches the input through the hooks (Captum's
        default). "multipliers": that gradient alone, what Captum returns with
        ``multiply_by_inputs=False`` and what it hands a ``custom_attribution_func`` as its first
        argument. "every_value": ``(trace, trace_ref, gradients)``, the forward passes and, per
        value number, the gradient (input half, baseline half) after the hooks of its readers, for
        layer-by-layer accounting (:func:`refattr.interop.delta_trace.trace_delta`).
    stale_grad_output : bool
        True: a hooked layer's rule uses the gradient at its output as it *arrives*, before the
        hook of the next layer rewrites it (Captum registers the output-gradient recorder of a
        layer before the input hook of the next one; captum issue #1104). Where two hooked layers
        are adjacent (ReLU -> MaxPool2d, MaxPool2d -> Tanh, ...), the downstream rule is thereby
        replaced by the plain gradient for the upstream layer's Rescale branch.
    first_row_fallback : bool
        True: the max-pool fallback (|Δx| < eps) takes ``grad_input[0]``, the gradient of the
        first row of Captum's doubled batch (example 0, input half), for every example and both
        halves (captum issue #1276).
    assign_unpool : bool
        True: max-pool contributions are un-pooled by assignment (max_unpool2d); False: summed.
    naive_division : bool
        True: the multiplier is (g Δy) / Δx from the two forward passes, as Captum computes it.
        False: refattr's stable divided difference of f (no cancellation).
    shared_input_replaced : bool
        True: where a hooked module reads a value that other modules read too (fan-out, e.g.
        ``relu(h) + h``), its hook, a tensor hook on that value, receives the value's whole
        gradient and *replaces* it with the module's own DeepLIFT term, dropping what the other
        readers sent back (Captum 0.9.0, ``captum/_utils/common.py``, ``_register_backward_hook``:
        the pre-hook registers the hook on the module's input tensor and runs the module on a
        clone). False: every reader's term is kept and summed (the chain rule for multipliers).
    joins_as_gradient : bool
        True: a product of two tensors (``Mul``, written ``a * b`` in ``forward``: no module, so no
        hook) passes its gradient, b at the input half. False: the Shapley multipliers refattr's
        Mul rule uses, (b + b')/2 for a and (a + a')/2 for b (the gradient at the midpoint).
    softmax_as_captum : bool
        True: an ``nn.Softmax`` gets Captum's hook (``captum/attr/_core/deep_lift.py``, ``softmax``):
        the element-wise quotient g Δs_i / Δx_i, then minus the mean of that over *every* element
        of the doubled batch, so an example's result depends on its batchmates
        (:func:`~refattr.interop._captum_softmax.captum_softmax_grad_input`). False: the layer's own
        DeepLIFT rule (``Softmax``'s default, docs/softmax.md).

    With every option off (``eps=0``) this is DeepLIFT Rescale with the completeness-preserving
    max-pool routing, i.e. refattr's ``deeplift(rule="rescale", maxpool_rule="delta_routing")``
    up to rounding.
    """
    if output not in ("attributions", "multipliers", "every_value"):
        raise ArgumentError(f"output: expected 'attributions', 'multipliers' or 'every_value', got {output!r}")
    x, t = _one_input(net, x, target)
    xr = broadcast_baseline(baseline, x)
    trace, trace_ref = net.trace(x), net.trace(xr)
    n_in = net.n_inputs

    functions = frozenset(function_nodes)

    def treatment(j):
        if j in functions and swish_as_gradient:
            return "gradient"
        return captum_treatment(net.layers[j], swish_as_gradient and j not in functions)

    def hooked(j):
        return treatment(j) in ("nonlinear", "maxpool", "softmax")

    def rule(j, grad_in, grad_out):
        layer = net.layers[j]
        a, a_ref = trace.activations[net.node_args[j][0]], trace_ref.activations[net.node_args[j][0]]
        if treatment(j) == "softmax" and not softmax_as_captum:    # the layer's own DeepLIFT rule
            dl_cache = layer.deeplift_forward(DeltaPair(a, a_ref, None, None), trace.activations[n_in + j],
                                              trace_ref.activations[n_in + j], trace.caches[j], trace_ref.caches[j],
                                              rule="rescale", maxpool_rule=None, parts=False)[2]
            return tuple(layer.deeplift_backward(g, g, dl_cache)[0] for g in grad_out)
        if treatment(j) == "softmax":     # its mean is taken over the whole doubled batch
            n = a.shape[0]
            new = captum_softmax_grad_input(a, a_ref, np.concatenate(grad_out), eps, layer.dim,
                                            grad_input=np.concatenate(grad_in))
            return new[:n], new[n:]
        y, y_ref = trace.activations[n_in + j], trace_ref.activations[n_in + j]
        cache, cache_ref = trace.caches[j], trace_ref.caches[j]
        dx = a - a_ref
        fallback = np.abs(dx) < eps if eps > 0 else dx == 0
        safe = np.where(fallback, 1.0, dx)
        if treatment(j) == "maxpool":
            argmax, shape = cache
            hw = (int(shape[2]), int(shape[3]))
            top = np.maximum(y, y_ref)
            parts = ((grad_out[0] * (top - y_ref), argmax, cache), (grad_out[1] * (y - top), cache_ref[0], cache_ref))
            if assign_unpool:      # (MaxPool1D: its 2-D twin's cells on the (N, C, 1, L) view, reshaped back)
                u = sum(_unpool_assign(v, cells, hw) for v, cells, _ in parts).reshape(a.shape)
            else:
                u = sum(layer.vjp(v, c) for v, _, c in parts)
            ratio = u / safe
            back = (grad_in[0][0], grad_in[0][0]) if first_row_fallback else grad_in
            return np.where(fallback, back[0], ratio), np.where(fallback, back[1], ratio)
        if not isinstance(layer, ElementwiseLayer):
            raise UnsupportedLayerError(f"layer {j} ({type(layer).__name__}) has no Captum DeepLift convention here")
        m = (y - y_ref) / safe if naive_division else layer.secant(a_ref, dx)
        return np.where(fallback, grad_in[0], grad_out[0] * m), np.where(fallback, grad_in[1], grad_out[1] * m)

    seed = one_hot(t, trace.output.shape[1])
    every = output == "every_value" or at_input_of is not None
    final = _hooked_backward(net, trace, trace_ref, seed, hooked, rule, shared_input_replaced, stale_grad_output,
                             midpoint_products=not joins_as_gradient, value=None if every else at_value or 0)
    if at_input_of is not None:
        (v,) = net.node_args[at_input_of]
        clone_grad = net.layers[at_input_of].vjp(final[n_in + at_input_of][0], trace.caches[at_input_of])
        return (trace.activations[v] - trace_ref.activations[v]) * clone_grad
    if output == "every_value":
        return trace, trace_ref, final
    if output == "multipliers":
        return final[0]
    if at_value:      # Captum's LayerDeepLift: the layer's difference times the gradient that reached it
        return (trace.activations[at_value] - trace_ref.activations[at_value]) * final[0]
    return (x - xr) * final[0]


def captum_modified_relu(net, x, target=None, *, deconvolution=False, shared_input_replaced=True,
                         function_nodes: Collection[int] = ()) -> np.ndarray:
    """Captum's ``GuidedBackprop(model).attribute(x, target)`` (or ``Deconvolution`` with
    ``deconvolution=True``), reproduced on chains and graphs of one input.

    Captum hooks every ``nn.ReLU`` with the tensor hook of ``_register_backward_hook``
    (``captum/attr/_core/guided_backprop_deconvnet.py``): the hook on the ReLU's input tensor returns
    relu(its gradient) (guided backpropagation) or relu(the gradient recorded at the ReLU's output)
    (deconvolution). On a chain that is Springenberg et al.'s and Zeiler & Fergus's rule, refattr's
    ``guided_backprop`` / ``deconvnet``. Where the ReLU's input tensor is read by other modules too
    (``relu(h) + h``), the hook sees and replaces the tensor's *whole* gradient: guided
    backpropagation clamps the sum of every reader's term, deconvolution drops the other readers'
    terms (``shared_input_replaced=True``; False: the ReLU's rule acts on its own term only, which is
    refattr's). A ReLU at one of ``function_nodes`` (``F.relu(x)`` in ``forward``: no module, so no
    hook) passes its ordinary gradient.
    """
    x, t = _one_input(net, x, target)
    trace = net.trace(x)

    def rule(j, grad_in, grad_out):
        g = grad_out if deconvolution else grad_in
        return np.maximum(g[0], 0.0), np.maximum(g[1], 0.0)

    seed = one_hot(t, trace.output.shape[1])
    functions = frozenset(function_nodes)
    return _hooked_backward(net, trace, trace, seed, lambda j: isinstance(net.layers[j], ReLU) and j not in functions,
                            rule, shared_input_replaced, stale_grad_output=True)[0]


def _one_input(net, x, target):
    x, t = prepare(net, x, target)
    if net.n_inputs != 1:
        raise ArgumentError(f"net: Captum's hooks are reproduced for networks of one input; this one has "
                            f"{net.n_inputs} ({list(net.inputs)})")
    return x, t


def _hooked_backward(net, trace, trace_ref, seed, hooked, rule, shared_input_replaced, stale_grad_output,
                     midpoint_products=False, value: int | None = 0):
    """The backward pass of a model with Captum's module hooks, on both halves of its batch.

    Returns the final gradient at the input (input half, baseline half), at value ``value``, or at
    every value (a list indexed by value number) with ``value=None``. Every layer passes its
    ordinary vector-Jacobian product (at each half's own activations); where ``hooked(j)`` (node j),
    ``rule(j, grad_in, grad_out)`` rewrites the gradient of the layer's input tensor, as Captum's
    tensor hook on it does (``captum/_utils/common.py``, ``_register_backward_hook``): ``grad_in`` is
    the tensor's gradient as it stands, ``grad_out`` the gradient recorded at the layer's output (as
    it arrived, before the next hook rewrote it, with ``stale_grad_output``). With
    ``shared_input_replaced`` the hook replaces the whole gradient of a tensor that other layers
    read too; otherwise each hooked reader's rule sees only its own term and the terms are summed.
    ``midpoint_products``: a Mul passes its gradient at the midpoint of the two halves (the Shapley
    multipliers) instead of each half's own.
    """
    layers, node_args, readers = net.layers, net.node_args, _readers(net)
    n_in = net.n_inputs
    arriving: list = [None] * len(readers)   # per value: the summed plain gradients (input half, baseline half)
    final: list = [None] * len(readers)      # per value: after the hooks of its hooked readers
    terms: list = [dict() for _ in readers]  # per value: each reader's plain gradient, by reader
    arriving[-1] = final[-1] = (seed, seed.copy())

    def recorded(j):
        return arriving[n_in + j] if stale_grad_output else final[n_in + j]

    def finalize(v):
        total = arriving[v]
        if total is None:       # an input no node reads
            zero = np.zeros_like(trace.activations[v])
            return zero, zero.copy()
        hooks = [j for j in readers[v] if hooked(j)]
        if not hooks:
            return total
        if shared_input_replaced:
            g = total
            for j in hooks:     # each hook replaces the value's whole gradient, in the order they were registered
                g = rule(j, g, recorded(j))
            return g
        g = [sum(terms[v][j][h] for j in readers[v] if j not in hooks) for h in (0, 1)]
        for j in hooks:
            own = rule(j, terms[v][j], recorded(j))
            g = [g[h] + own[h] for h in (0, 1)]
        return tuple(g)

    for j in range(len(layers) - 1, -1, -1):
        out = n_in + j
        if out != len(readers) - 1:
            final[out] = finalize(out)
        layer, args = layers[j], node_args[j]
        caches = (trace.caches[j], trace_ref.caches[j])
        if midpoint_products and isinstance(layer, Mul):
            middle = layer.forward(tuple((trace.activations[a] + trace_ref.activations[a]) / 2 for a in args))[1]
            caches = (middle, middle)
        halves = [layer.vjp(final[out][h], caches[h]) for h in (0, 1)]
        if not isinstance(layer, JoinLayer):
            halves = [(g,) for g in halves]
        for k, a in enumerate(args):
            _add(arriving, terms, a, j, (halves[0][k], halves[1][k]))
    if value is None:
        for v in range(n_in):
            final[v] = finalize(v)
        return final
    return finalize(0) if value == 0 else final[value]


def _add(arriving, terms, value, reader, pair) -> None:
    """Accumulate a reader's plain gradient (both halves) at ``value``."""
    previous = terms[value].get(reader)
    terms[value][reader] = pair if previous is None else (previous[0] + pair[0], previous[1] + pair[1])
    arriving[value] = pair if arriving[value] is None else (arriving[value][0] + pair[0], arriving[value][1] + pair[1])


@refuses_baselines
def captum_deeplift_shap(net, x, baseline_samples, target=None, *, output: str = "attributions",
                         **options) -> np.ndarray:
    """Captum's ``DeepLiftShap``: DeepLift on every (input, baseline) pair, then the mean over baselines.

    ``baseline_samples`` is read by rank (:func:`refattr.validation.as_reference_sets`):

    - (K, *example_shape), what Captum's ``DeepLiftShap.attribute`` takes as ``baselines``: one
      call on the whole batch. The pairs form one batch of N * K rows in Captum's order (row
      n * K + k is example n with baseline k), which matters for the max-pool fallback's first row.
    - (N, K, *example_shape), one set of references per example (K shuffled copies of each
      sequence): Captum's ``baselines`` are shared by a batch, so a user calls it once per example,
      ``attribute(x[n:n+1], baselines=sets[n])``; reproduced that way, so the fallback's first row
      is example n with its reference 0, in every call.

    ``output``: "attributions" (Captum's default), "multipliers" (``multiply_by_inputs=False``: the
    mean over the references of the hooked gradients), or "hypothetical": what Captum returns with
    the ``custom_attribution_func`` of the genomics workflow, ``m - sum_c' x'[c'] m[c']`` over the
    channel axis 1 per pair, then the mean (hypothetical contributions, Shrikumar et al. 2018,
    :func:`refattr.methods.hypothetical.hypothetical_contributions`). ``options`` go to
    :func:`captum_deeplift`.
    """
    if output not in ("attributions", "multipliers", "hypothetical"):
        raise ArgumentError(f"output: expected 'attributions', 'multipliers' or 'hypothetical', got {output!r}")
    x, t = prepare(net, x, target)
    per_example = np.ndim(baseline_samples) == x.ndim + 1
    sets = as_reference_sets(baseline_samples, x) if per_example else as_baselines(baseline_samples, x)[None]
    k = sets.shape[1]
    calls = [(x[n:n + 1], sets[n], t[n:n + 1]) for n in range(x.shape[0])] if per_example else [(x, sets[0], t)]
    results = []
    for xs, refs, ts in calls:
        inputs = np.repeat(xs, k, axis=0)
        rows = np.tile(refs, (xs.shape[0],) + (1,) * (xs.ndim - 1))
        m = captum_deeplift(net, inputs, rows, np.repeat(ts, k),
                            output="attributions" if output == "attributions" else "multipliers", **options)
        if output == "hypothetical":
            m = m - (rows * m).sum(axis=1, keepdims=True)
        results.append(m.reshape((xs.shape[0], k) + x.shape[1:]).mean(axis=1))
    return np.concatenate(results)


def _layer_at(net, points, t, v):
    """(value v, dt/dv) at the rows ``points`` (one target each)."""
    from ..methods._values import gradient_at

    trace = net.trace(points)
    return trace.activations[v], gradient_at(net, trace, v, one_hot(t, trace.activations[-1].shape[1]))


def captum_layer_integrated_gradients(net, x, baseline, target, v, method="gausslegendre", n_steps=50,
                                      float32=True, readers=None, multiply: bool = True) -> np.ndarray:
    """Captum's ``LayerIntegratedGradients(model, layer).attribute(x, baseline, target)`` at value ``v``.

    Captum (``captum/attr/_core/layer/layer_integrated_gradients.py``) runs the model on x with the
    layer's output overridden by a(x') + a_k (a(x) - a(x')) (with ``attribute_to_layer_input``, the
    module's input, for that module only: ``readers``), so whatever bypasses the layer stays at x:
    (a(x) - a(x')) * sum_k w_k dt/da, with Captum's nodes and float32 weights
    (:func:`captum_ig_quadrature`); without the factor a(x) - a(x') when ``multiply`` is False
    (``multiply_by_inputs=False``)."""
    from ..methods._values import network_with_value_as_input

    x, t = prepare(net, x, target)
    xr = broadcast_baseline(baseline, x)
    nodes, weights = captum_ig_quadrature(method, n_steps, float32=float32)
    a_x, a_ref = net.trace(x).activations[v], net.trace(xr).activations[v]
    if v == net.n_inputs + len(net.layers) - 1:
        return one_hot(t, a_x.shape[1]) * (a_x - a_ref)
    mixed = network_with_value_as_input(net, v, readers)
    total = np.zeros_like(a_x)
    for a, w in zip(nodes, weights):
        points = a_ref + a * (a_x - a_ref)
        g = gradient(mixed, points if mixed.n_inputs == 1 else (x, points), t).values
        total += (g if mixed.n_inputs == 1 else g[1]) * w
    return (a_x - a_ref) * total if multiply else total


def captum_layer_conductance(net, x, baseline, target, v, n_steps=50) -> np.ndarray:
    """Captum's ``LayerConductance(model, layer).attribute(x, baseline, target, n_steps)`` at value
    ``v`` (method "gausslegendre", its default): with alphas the n_steps + 1 Gauss-Legendre nodes
    on (0, 1) (float64), sum_{k < n_steps} dt/da(alpha_k) * (a(alpha_{k+1}) - a(alpha_k)), a left
    Riemann-Stieltjes sum over those nodes (``captum/attr/_core/layer/layer_conductance.py``): the
    step weights are not used, and the path before the first node and after the last is left out."""
    x, t = prepare(net, x, target)
    xr = broadcast_baseline(baseline, x)
    alphas = 0.5 * (1 + np.polynomial.legendre.leggauss(n_steps + 1)[0])
    evals = [_layer_at(net, xr + a * (x - xr), t, v) for a in alphas]
    total = np.zeros_like(evals[0][0])
    for k in range(n_steps):
        total += (evals[k + 1][0] - evals[k][0]) * evals[k][1]
    return total
