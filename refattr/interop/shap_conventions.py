"""SHAP 0.51.0's DeepExplainer and GradientExplainer on torch models, reproduced with refattr's layers.

This is refattr's comparison layer for SHAP, as :mod:`refattr.interop.captum_conventions` is for
Captum: it lets :func:`refattr.interop.compare_shap.compare_shap` split a difference between SHAP
and refattr's reference into SHAP's conventions, its known bugs and its Monte Carlo error.
refattr's reference methods never use anything from this module, and nothing here imports SHAP.

DeepExplainer (``shap/explainers/_deep/deep_pytorch.py``, ``PyTorchDeep``), read for facts:

- For each example x it runs the model once on a batch of 2K rows, K copies of x followed by the
  K background rows x'_k, with a forward hook and a *full* backward hook
  (``register_full_backward_hook``) on every leaf module; the attribution is the mean over k of
  (x - x'_k) times the gradient of the **background half** (rows K..2K-1), so wherever a rule
  falls back to the ordinary gradient, that gradient is taken at the reference x'_k.
- The rule of a module is looked up by its class name in ``op_handler``: ``passthrough``
  (Dropout*, AlphaDropout, Identity, Flatten) and ``linear_1d`` (Conv*, ConvTranspose*, Linear,
  AvgPool*, AdaptiveAvgPool*, BatchNorm*) keep the gradient; ``nonlinear_1d`` (LeakyReLU, ReLU,
  ELU, Sigmoid, Tanh, Softplus, Softmax, SELU, GELU) multiplies the output gradient by the naive
  quotient (y - y')/(x - x') element by element, both halves the same, except where
  |x - x'| < 1e-6, where it keeps the ordinary gradient; ``maxpool`` (MaxPool1/2/3d) routes
  max(y, y') - y' to the input's winner and y - max(y, y') to the reference's winner with
  ``max_unpool``, an assignment (where overlapping windows share a winner the last write wins),
  divides by Δx and sets the multiplier to **zero** where |Δx| < 1e-7.
- A module whose class is not in ``op_handler`` (SiLU, Hardswish, Mish, LayerNorm, LogSoftmax,
  ...) gets a ``UserWarning("unrecognized nn.Module: <name>")`` and its ordinary gradient: at
  the reference, so its "multiplier" is f'(x'), not Δy/Δx (shap issue #3611 reported this for
  SELU and GELU, which 0.51.0 added to ``op_handler``; the fallback itself remains). Operations
  written as functions in ``forward`` (``F.relu``, ``torch.sigmoid``, ``a * b``) have no module
  and so no hook: ordinary gradients at the reference as well (for a product a * b, b').
- ``nn.Softmax`` gets the element-wise ``nonlinear_1d`` rule, g_i Δs_i / Δz_i, although softmax is
  not element-wise: summation-to-delta breaks (no shap issue found).
- Full backward hooks see only the module's own term of a shared input and the output gradient
  after downstream hooks: neither of Captum's defects (its issue #1104, its shared-input
  replacement) occurs. A module *instance* used twice in ``forward`` keeps the activations of its
  last call for both (not reproduced here; refattr's importers give the two calls two nodes).
- ``expected_value`` is the mean model output over the background; the additivity check
  (``deep_utils._check_additivity``) asserts max_n |f(x_n) - E f(x') - sum phi_n| < 1e-2, an
  *absolute* tolerance, whatever the scale of the outputs.

GradientExplainer (``shap/explainers/_gradient.py``, ``_PyTorchGradient``):

- ``np.random.seed(rseed)`` (the global NumPy generator), then for every example and each of
  ``nsamples`` samples: ``rind = np.random.choice(K)`` (a background row, with replacement) and
  ``t = np.random.uniform()``; the sample is the gradient at t x + (1 - t) x'_rind times
  (x - x'_rind). The estimate is the sample mean; the same seed is reused for every output.
- The returned variance (``return_variances=True``) is ``samples.var(0) / np.sqrt(nsamples)``
  (NumPy's var, ddof = 0): the variance of the mean is var / nsamples, so SHAP's is too large by
  a factor sqrt(nsamples) and its standard error by nsamples**(1/4) (shap issue #4842, still so
  in 0.51.0).
- The sample batch is allocated with ``torch.zeros`` in torch's default dtype, so a float64 model
  raises unless the default dtype is float64.
- ``local_smoothing > 0`` adds torch Gaussian noise, which no NumPy seed reproduces; the
  reproduction here is for ``local_smoothing=0``.

The expectation GradientExplainer estimates is expected gradients (Erion et al. 2019),
E_{k, alpha ~ U(0, 1)} [(x - x'_k) grad f(x'_k + alpha (x - x'_k))] = the mean over the background
of integrated gradients from x'_k: refattr's ``integrated_gradients(baseline_samples=...)``.

References
----------
Lundberg & Lee (2017), "A unified approach to interpreting model predictions", NeurIPS (DeepSHAP).
Erion, Janizek, Sturmfels, Lundberg & Lee (2019/2021), "Improving performance of deep learning
models with axiomatic attribution priors and expected gradients", Nature Machine Intelligence.
"""

from __future__ import annotations

from typing import Collection

import numpy as np

from ..errors import ArgumentError
from ..layers import registry
from ..layers._join import JoinLayer
from ..layers.base import DeltaPair, ElementwiseLayer, LinearLayer
from ..layers.max_pool import is_max_pooling
from ..methods._common import one_hot, prepare
from ..methods.gradient import gradient
from ..validation import as_baselines
from .captum_conventions import _hooked_backward, _unpool_assign

__all__ = ["SHAP_OP_HANDLER", "SHAP_DEEP_EPS", "SHAP_POOL_EPS", "SHAP_ADDITIVITY_TOLERANCE", "shap_treatment",
           "shap_deep_explainer", "shap_gradient_samples", "shap_gradient_explainer"]

#: SHAP 0.51.0's ``op_handler``: torch module class name -> its rule ("passthrough" and "linear"
#: keep the gradient). A module not listed passes its plain gradient with a warning.
SHAP_OP_HANDLER = {
    **dict.fromkeys(("Dropout3d", "Dropout2d", "Dropout", "AlphaDropout", "Identity", "Flatten"), "passthrough"),
    **dict.fromkeys(("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear",
                     "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                     "AdaptiveAvgPool3d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d"), "linear"),
    **dict.fromkeys(("LeakyReLU", "ReLU", "ELU", "Sigmoid", "Tanh", "Softplus", "Softmax", "SELU", "GELU"),
                    "nonlinear"),
    **dict.fromkeys(("MaxPool1d", "MaxPool2d", "MaxPool3d"), "maxpool"),
}

#: ``nonlinear_1d``: |Δx| below which the ordinary gradient is kept.
SHAP_DEEP_EPS = 1e-6
#: ``maxpool``: |Δx| below which the multiplier is set to zero.
SHAP_POOL_EPS = 1e-7
#: ``_check_additivity``'s absolute tolerance on max_n |f(x_n) - E f(x') - sum phi_n|.
SHAP_ADDITIVITY_TOLERANCE = 1e-2


def shap_treatment(layer) -> str:
    """How SHAP's DeepExplainer treats ``layer``'s torch module: "linear" (passthrough and
    linear_1d), "nonlinear", "maxpool", or "gradient" (a module SHAP does not recognise, or no
    module: an operation with no torch module of its own, such as Add, Concat, Mul or Reshape,
    passes its ordinary gradient, which for the linear ones is their rule anyway).

    >>> from refattr import ReLU, Swish
    >>> shap_treatment(ReLU()), shap_treatment(Swish())
    ('nonlinear', 'gradient')
    """
    if isinstance(layer, LinearLayer):
        return "linear"
    modules = registry.info(layer).torch_modules if registry.is_registered(layer) else ()
    kinds = [SHAP_OP_HANDLER.get(m) for m in modules]
    kind = next((k for k in kinds if k is not None), "gradient")
    return "linear" if kind == "passthrough" else kind


def unrecognised_modules(net, function_nodes: Collection[int] = ()) -> list[str]:
    """The torch module names (or "'node' (Layer) written as a function") of the non-linear layers
    SHAP's DeepExplainer passes as plain gradients."""
    out = []
    for j, layer in enumerate(net.layers):
        if isinstance(layer, LinearLayer):
            continue
        if j in function_nodes and shap_treatment(layer) != "gradient":
            out.append(f"{net.nodes[j].name!r} ({type(layer).__name__}, written as a function)")
        elif shap_treatment(layer) == "gradient":
            modules = registry.info(layer).torch_modules if registry.is_registered(layer) else ()
            out.append(f"nn.{modules[0]}" if modules else f"{type(layer).__name__} (no module)")
    return list(dict.fromkeys(out))


def shap_deep_explainer(net, x, background, target=None, *, unknown_as_gradient=True, softmax_elementwise=True,
                        eps=SHAP_DEEP_EPS, pool_eps=SHAP_POOL_EPS, assign_unpool=True, naive_division=True,
                        function_nodes: Collection[int] = ()) -> np.ndarray:
    """SHAP's ``DeepExplainer(model, background).shap_values(x)`` for ``target``, reproduced.

    Works on chains and graphs of one input. Each option switches one of SHAP's conventions off,
    so that a chain of variants measures each one's share of a difference from DeepLIFT Rescale:

    unknown_as_gradient : True: a layer whose torch module SHAP does not recognise (and every layer
        at ``function_nodes``, computed with a function in ``forward``) passes its ordinary gradient
        at the reference; a product a * b passes b'. False: Rescale, and refattr's Mul rule.
    softmax_elementwise : True: Softmax gets the element-wise quotient g_i Δs_i / Δz_i. False: the
        layer's own DeepLIFT rule.
    eps, pool_eps : the fallbacks' thresholds (0: only where Δx == 0 exactly).
    assign_unpool : True: max-pool contributions are un-pooled by assignment; False: summed.
    naive_division : True: (y - y')/(x - x'); False: refattr's stable divided difference.

    With every option off (``eps = pool_eps = 0``) this is refattr's
    ``deeplift(rule="rescale", maxpool_rule="delta_routing", baseline_samples=background)`` up to rounding.
    """
    x, t = prepare(net, x, target)
    if net.n_inputs != 1:
        raise ArgumentError(f"net: SHAP's hooks are reproduced for networks of one input; this one has "
                            f"{net.n_inputs} ({list(net.inputs)})")
    bs = as_baselines(background, x)
    k = bs.shape[0]
    inputs = np.repeat(x, k, axis=0)            # example n with every background row, row n * K + k
    refs = np.tile(bs, (x.shape[0],) + (1,) * (x.ndim - 1))
    trace, trace_ref = net.trace(inputs), net.trace(refs)
    n_in = net.n_inputs
    functions = frozenset(function_nodes)

    def treatment(j):
        layer = net.layers[j]
        kind = shap_treatment(layer)
        if isinstance(layer, JoinLayer) or kind == "linear":
            return kind                 # a product: its gradient, or refattr's Mul rule via midpoint_products
        if kind == "gradient" or j in functions:
            if unknown_as_gradient:
                return "gradient"
            kind = "maxpool" if is_max_pooling(layer) else "nonlinear"
        if kind == "nonlinear" and not isinstance(layer, ElementwiseLayer):
            return "elementwise" if softmax_elementwise else "own"
        return kind

    def hooked(j):
        return treatment(j) in ("nonlinear", "elementwise", "maxpool", "own")

    def rule(j, grad_in, grad_out):
        layer, kind = net.layers[j], treatment(j)
        a, a_ref = trace.activations[net.node_args[j][0]], trace_ref.activations[net.node_args[j][0]]
        y, y_ref = trace.activations[n_in + j], trace_ref.activations[n_in + j]
        if kind == "own":       # the layer's own DeepLIFT rule (Softmax's: docs/softmax.md)
            cache = layer.deeplift_forward(DeltaPair(a, a_ref, None, None), y, y_ref, trace.caches[j],
                                           trace_ref.caches[j], rule="rescale", maxpool_rule=None, parts=False)[2]
            return tuple(layer.deeplift_backward(g, g, cache)[0] for g in grad_out)
        dx = a - a_ref
        if kind == "maxpool":
            small = np.abs(dx) < pool_eps if pool_eps > 0 else dx == 0
            argmax, shape = trace.caches[j]
            top = np.maximum(y, y_ref)
            parts = ((grad_out[0] * (top - y_ref), argmax, trace.caches[j]),
                     (grad_out[1] * (y - top), trace_ref.caches[j][0], trace_ref.caches[j]))
            if assign_unpool:      # (MaxPool1D: its 2-D twin's cells on the (N, C, 1, L) view, reshaped back)
                hw = (int(shape[2]), int(shape[3]))
                routed = sum(_unpool_assign(v, cells, hw) for v, cells, _ in parts).reshape(a.shape)
            else:
                routed = sum(layer.vjp(v, c) for v, _, c in parts)
            m = np.where(small, 0.0, routed / np.where(small, 1.0, dx))
            return m, m.copy()
        small = np.abs(dx) < eps if eps > 0 else dx == 0
        safe = np.where(small, 1.0, dx)
        m = layer.secant(a_ref, dx) if kind == "nonlinear" and not naive_division else (y - y_ref) / safe
        return np.where(small, grad_in[0], grad_out[0] * m), np.where(small, grad_in[1], grad_out[1] * m)

    seed = one_hot(np.repeat(t, k), trace.output.shape[1])
    final = _hooked_backward(net, trace, trace_ref, seed, hooked, rule, shared_input_replaced=False,
                             stale_grad_output=False, midpoint_products=not unknown_as_gradient)
    values = (inputs - refs) * final[1]       # SHAP reads the background half
    return values.reshape((x.shape[0], k) + x.shape[1:]).mean(axis=1)


def shap_gradient_samples(n_examples: int, n_background: int, nsamples: int, rseed: int):
    """The background rows and alphas SHAP's GradientExplainer draws: (rows, alphas), each
    (n_examples, nsamples), from ``np.random.seed(rseed)`` with ``choice(K)`` then ``uniform()`` per
    sample (NumPy's legacy generator; SHAP reseeds the global one, this uses a private twin)."""
    rng = np.random.RandomState(rseed)
    rows = np.zeros((n_examples, nsamples), dtype=np.int64)
    alphas = np.zeros((n_examples, nsamples))
    for n in range(n_examples):
        for s in range(nsamples):
            rows[n, s] = rng.choice(n_background)
            alphas[n, s] = rng.uniform()
    return rows, alphas


def shap_gradient_explainer(net, x, background, target=None, *, nsamples=200, rseed=0):
    """SHAP's ``GradientExplainer(model, background).shap_values(x, nsamples, rseed=rseed,
    return_variances=True)`` for ``target`` (``local_smoothing=0``), reproduced with refattr's gradients.

    Returns (values, samples): ``samples`` (N, nsamples, *example_shape) are the per-sample terms
    (x - x'_k) grad f(t x + (1 - t) x'_k), so that ``values = samples.mean(1)``, SHAP's returned
    variance is ``samples.var(1) / sqrt(nsamples)`` and the variance of the mean ``samples.var(1) / nsamples``.
    """
    x, t = prepare(net, x, target)
    bs = as_baselines(background, x)
    rows, alphas = shap_gradient_samples(x.shape[0], bs.shape[0], nsamples, rseed)
    expand = (slice(None), slice(None)) + (None,) * (x.ndim - 1)
    refs = bs[rows]                                            # (N, S, *example)
    points = alphas[expand] * x[:, None] + (1 - alphas[expand]) * refs
    grads = gradient(net, points.reshape((-1,) + x.shape[1:]), np.repeat(t, nsamples)).values
    samples = grads.reshape(points.shape) * (x[:, None] - refs)
    return samples.mean(axis=1), samples
