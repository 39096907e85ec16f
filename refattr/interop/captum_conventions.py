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

DeepLiftShap runs DeepLift for every (input, baseline) pair and averages over the baselines.

Captum's ``baselines`` argument is one baseline per example in ``IntegratedGradients`` and
``DeepLift`` and a distribution in ``DeepLiftShap``; the reproductions here take refattr's names,
``baseline`` and ``baseline_samples``, and refuse ``baselines=`` as refattr's methods do.
"""

from __future__ import annotations

import numpy as np

from ..errors import RuleError, UnsupportedLayerError
from ..layers import registry
from ..layers.base import ElementwiseLayer
from ..methods._common import one_hot, prepare
from ..methods.gradient import gradient
from ..validation import as_baselines, broadcast_baseline, refuses_baselines

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


def path_integral(net, x, baseline, target, nodes, weights) -> np.ndarray:
    """(x - x') * sum_k w_k grad t(x' + a_k (x - x')), with refattr's float64 gradients.

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
    return total * delta


@refuses_baselines
def captum_integrated_gradients(net, x, baseline=0.0, target=None, method="gausslegendre", n_steps=50,
                                float32=True) -> np.ndarray:
    """Captum's ``IntegratedGradients.attribute(x, baseline, target, n_steps, method)``, reproduced."""
    nodes, weights = captum_ig_quadrature(method, n_steps, float32=float32)
    return path_integral(net, x, baseline, target, nodes, weights)


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
    treatment = registry.info(layer).captum
    if treatment == "gradient" and not swish_as_gradient and isinstance(layer, ElementwiseLayer):
        return "nonlinear"
    return treatment


def unhooked_elementwise(net) -> list:
    """The element-wise layers of ``net`` whose modules Captum's DeepLift does not hook (captum =
    "gradient": it passes their gradient f'(x) instead of Δy/Δx)."""
    return [layer for layer in net.layers
            if isinstance(layer, ElementwiseLayer) and captum_treatment(layer) == "gradient"]


@refuses_baselines
def captum_deeplift(net, x, baseline=0.0, target=None, *, eps=CAPTUM_DEEPLIFT_EPS, swish_as_gradient=True,
                    stale_grad_output=True, first_row_fallback=True, assign_unpool=True,
                    naive_division=True) -> np.ndarray:
    """Captum's ``DeepLift(model).attribute(x, baseline, target)`` (Rescale), reproduced.

    The backward pass tracks, for every tensor between two layers and for both halves of
    Captum's batch (input, baseline), the gradient *arriving* from autograd and the *final* one
    after the hooks of the layer that reads the tensor. Each option switches one of Captum's
    conventions off, so that a chain of variants can measure each one's share of a difference.

    Parameters
    ----------
    eps : float
        |Δx| below which an element-wise layer or max pool uses the ordinary gradient (Captum:
        1e-10). ``eps=0`` falls back only where Δx == 0 exactly.
    swish_as_gradient : bool
        True: an element-wise layer whose module Captum does not hook (registry ``captum =
        "gradient"``: Swish, as nn.SiLU) passes the ordinary gradient f'(x). False: it gets the
        Rescale multiplier like the hooked ones (:func:`captum_treatment`).
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

    With every option off (``eps=0``) this is DeepLIFT Rescale with the completeness-preserving
    max-pool routing, i.e. refattr's ``deeplift(rule="rescale", maxpool_rule="delta_routing")``
    up to rounding.
    """
    x, t = prepare(net, x, target)
    xr = broadcast_baseline(baseline, x)
    trace, trace_ref = net.trace(x), net.trace(xr)
    seed = one_hot(t, trace.output.shape[1])
    final = arriving = (seed, seed.copy())  # at the tensor after the current layer: (input half, baseline half)
    for i in range(len(net.layers) - 1, -1, -1):
        layer = net.layers[i]
        a, a_ref = trace.activations[i], trace_ref.activations[i]
        y, y_ref = trace.activations[i + 1], trace_ref.activations[i + 1]
        cache, cache_ref = trace.caches[i], trace_ref.caches[i]
        recorded = arriving if stale_grad_output else final
        plain = (layer.vjp(final[0], cache), layer.vjp(final[1], cache_ref))
        treatment = captum_treatment(layer, swish_as_gradient)
        if treatment in ("linear", "gradient"):
            new = plain
        elif treatment == "maxpool":
            dx = a - a_ref
            fallback = np.abs(dx) < eps if eps > 0 else dx == 0
            argmax, shape = cache
            hw = (int(shape[2]), int(shape[3]))
            top = np.maximum(y, y_ref)
            parts = ((recorded[0] * (top - y_ref), argmax, cache), (recorded[1] * (y - top), cache_ref[0], cache_ref))
            if assign_unpool:
                u = sum(_unpool_assign(v, cells, hw) for v, cells, _ in parts)
            else:
                u = sum(layer.vjp(v, c) for v, _, c in parts)
            ratio = u / np.where(fallback, 1.0, dx)
            grad_in, grad_ref = (plain[0][0], plain[0][0]) if first_row_fallback else plain
            new = (np.where(fallback, grad_in, ratio), np.where(fallback, grad_ref, ratio))
        elif treatment == "nonlinear" and isinstance(layer, ElementwiseLayer):
            dx = a - a_ref
            fallback = np.abs(dx) < eps if eps > 0 else dx == 0
            safe = np.where(fallback, 1.0, dx)
            if naive_division:
                dy = y - y_ref
                rescaled = (recorded[0] * dy / safe, recorded[1] * dy / safe)
            else:
                m = layer.secant(a_ref, dx)
                rescaled = (recorded[0] * m, recorded[1] * m)
            new = (np.where(fallback, plain[0], rescaled[0]), np.where(fallback, plain[1], rescaled[1]))
        else:
            raise UnsupportedLayerError(f"net.layers[{i}]: {type(layer).__name__} has no Captum DeepLift "
                                        f"convention here")
        arriving, final = plain, new
    return (x - xr) * final[0]


@refuses_baselines
def captum_deeplift_shap(net, x, baseline_samples, target=None, **options) -> np.ndarray:
    """Captum's ``DeepLiftShap``: DeepLift on every (input, baseline) pair, then the mean over baselines.

    ``baseline_samples`` (K, *example_shape) is what Captum's ``DeepLiftShap.attribute`` takes as
    ``baselines``. The pairs form one batch of N * K rows in Captum's order (row n * K + k is
    example n with baseline k), which matters for the max-pool fallback's first row.
    """
    x, t = prepare(net, x, target)
    bs = as_baselines(baseline_samples, x)
    k = bs.shape[0]
    inputs = np.repeat(x, k, axis=0)
    refs = np.tile(bs, (x.shape[0],) + (1,) * (x.ndim - 1))
    values = captum_deeplift(net, inputs, refs, np.repeat(t, k), **options)
    return values.reshape((x.shape[0], k) + x.shape[1:]).mean(axis=1)
