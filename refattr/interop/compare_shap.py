"""Grade SHAP's DeepExplainer and GradientExplainer against refattr's reference.

The verdicts and causes are those of :mod:`refattr.interop.compare` (rounding, convention,
approximation, peer_bug, unexplained). SHAP's mechanics are reproduced in
:mod:`refattr.interop.shap_conventions`; nothing here changes refattr's reference results.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Iterable

import numpy as np
from numpy.typing import ArrayLike

from .. import __version__
from .._typing import Target, TorchModule, TorchTensor
from ..errors import ArgumentError, RuleError
from ..graph import unpack
from ..layers.max_pool import is_max_pooling
from ..methods._common import prepare
from ..methods.deeplift import deeplift
from ..methods.integrated_gradients import integrated_gradients
from ..network import Network
from ..validation import as_baselines, as_reference_sets
from . import shap_conventions as sc
from .compare import (FLOAT64_RTOL, Cause, MethodComparison, Report, _as_models, _check_rtol, _classify, _gap,
                      _numpy, _packed, relative_difference)

__all__ = ["compare_shap", "SHAP_METHODS"]

#: SHAP explainers compared by :func:`compare_shap`, in report order.
SHAP_METHODS = ("DeepExplainer", "GradientExplainer")

#: Family-wise false-alarm rate of the "within its error" test over all compared elements.
FALSE_ALARM = 1e-3


def _load_shap():
    try:
        import shap
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("compare_shap needs SHAP: pip install shap==0.51.0 (it pulls pandas and scikit-learn)") \
            from exc
    return shap


def compare_shap(model: TorchModule | Network, inputs: ArrayLike | TorchTensor, background: ArrayLike | TorchTensor,
                 targets: Target | TorchTensor = None, methods: Iterable[str] = SHAP_METHODS, *, nsamples: int = 200,
                 seed: int = 0, rtol: float = FLOAT64_RTOL) -> Report:
    """Run SHAP's DeepExplainer and GradientExplainer and refattr's reference on one model; classify every difference.

    Parameters
    ----------
    model : torch.nn.Module or refattr.Sequential / Graph
        A torch module is imported with :func:`~refattr.interop.from_torch` and given to SHAP as a
        float64 copy; a refattr network is given to SHAP through :func:`~refattr.interop.to_torch`.
        A model of several inputs takes tuples for ``inputs`` and ``background`` (one entry per
        input; SHAP gets lists) and is compared for DeepExplainer, packed.
    inputs : array_like or torch.Tensor, shape (N, *example_shape), or a tuple of them
    background : array_like or torch.Tensor, shape (K, *example_shape) or (N, K, *example_shape)
        SHAP's background data: the distribution of references x'_k. One background per example
        (N, K, ...), e.g. K shuffled copies of each sequence, is read by its rank: SHAP fixes the
        background when a DeepExplainer is built, so one explainer is built per example, as its
        users do (DeepExplainer only; GradientExplainer is then skipped with a note).
    targets : int, int array (N,), or None
        The output compared per example (SHAP explains every output; this picks one).
    methods : iterable of str
        Some of :data:`SHAP_METHODS`.
    nsamples, seed : int
        GradientExplainer's ``nsamples`` and ``rseed``. The global NumPy random state, which SHAP
        reseeds, is restored afterwards.
    rtol : float
        Relative difference below which two results count as equal up to rounding.

    Returns
    -------
    Report
        One entry per explainer, and ``GradientExplainer[variance]`` for the variance SHAP returns.

        - ``DeepExplainer``: reference ``deeplift(rule="rescale", baseline_samples=background)``
          (``maxpool_rule="delta_routing"`` where the model pools: DeepSHAP, Lundberg & Lee 2017).
          SHAP is reproduced exactly, then its conventions are removed one at a time, each sized:
          the plain gradient (at the reference) for modules it does not recognise and for functions
          in ``forward`` (shap issue #3611), the element-wise rule on ``nn.Softmax``, its
          gradient / zero fallbacks below |Δx| = 1e-6 / 1e-7, max-pool un-pooling by assignment,
          the naive quotient. The notes give SHAP's own additivity check (its code, on its values)
          and which cause produces a failure, with the completeness gap before and after removing it.
        - ``GradientExplainer``: reference expected gradients (Erion et al. 2019), the mean over
          the background of ``integrated_gradients(rule="auto")`` (exact on piecewise-linear
          networks; adaptive quadrature to rtol 1e-10 otherwise, its error estimate in the entry).
          SHAP's estimate is reproduced from its own random draws; the verdict is
          ``approximation`` when |SHAP - reference| stays within the Bonferroni bound
          z * sqrt(var / nsamples) (+ the reference's error estimate) on every element, z for a
          family-wise false-alarm rate of 1e-3, and ``unexplained`` otherwise.
        - ``GradientExplainer[variance]``: SHAP's returned variance against the variance of the
          mean of its own samples, var / nsamples; ``peer_bug`` while SHAP returns
          var / sqrt(nsamples) (shap issue #4842).

    Warnings
    --------
    SHAP 0.51.0 builds GradientExplainer's sample batch in torch's default dtype, so a float64
    model fails with "mat1 and mat2 must have the same dtype"; the comparison runs SHAP with the
    default dtype set to float64 (restored afterwards). ``local_smoothing`` is not compared.
    SHAP's ``UserWarning`` ("unrecognized nn.Module") goes to the entry's notes.

    Examples
    --------
    ::

        report = compare_shap(torch_model, x, background, targets=labels)
        print(report.table())
        assert report.all_explained, report.unexplained
    """
    rtol = _check_rtol(rtol)
    for name, value, low in (("nsamples", nsamples, 2), ("seed", seed, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
            raise ArgumentError(f"{name}: expected an int >= {low}, got {value!r}")
    wanted = _normalise_methods(methods)
    shap = _load_shap()
    from .torch_model import require_torch

    torch = require_torch()
    inputs, background, targets = _numpy(inputs), _numpy(background), _numpy(targets)
    net, peer_model, functions = _as_models(model, inputs)
    shapes = None
    if net.n_inputs > 1:
        # several inputs: refattr runs on the packed graph (each example's inputs end to end), SHAP on
        # lists of tensors; results are compared packed
        net, inputs, _, background, functions, shapes = _packed(net, inputs, 0.0, background, functions)
    x, t = prepare(net, inputs, targets, name="inputs")
    per_example = np.ndim(background) == x.ndim + 1
    bg = as_reference_sets(background, x) if per_example else as_baselines(background, x)

    def as_peer(a):
        if shapes is None:
            return torch.from_numpy(np.ascontiguousarray(a))
        return tuple(torch.from_numpy(np.ascontiguousarray(p)) for p in unpack(a, shapes))

    tx, tbg = as_peer(x), as_peer(bg)
    with torch.no_grad():
        forward = (peer_model(*tx) if shapes else peer_model(tx)).double().numpy()
    report = Report(peer=f"shap {shap.__version__} (torch {torch.__version__})", reference=f"refattr {__version__}",
                    n_examples=x.shape[0], rtol=rtol, forward_max_rel_diff=relative_difference(forward, net(x)),
                    peer_label="SHAP's")
    peer_name = f"shap {shap.__version__}"
    for method in wanted:
        if method == "DeepExplainer":
            report.entries.append(_deep(shap, torch, net, peer_model, functions, x, bg, t, tx, tbg, rtol, peer_name,
                                        per_example))
        elif per_example or shapes:
            entry = MethodComparison(method, peer_name, "-", "skipped")
            entry.notes.append("one background per example (N, K, ...) is compared for DeepExplainer only; pass one "
                               "background (K, ...) for GradientExplainer" if per_example else
                               "a model of several inputs is compared for DeepExplainer only")
            report.entries.append(entry)
        else:
            report.entries += _gradient(shap, torch, net, peer_model, x, bg, t, tx, tbg, nsamples, seed, rtol,
                                        peer_name)
    return report


def _normalise_methods(methods):
    by_lower = {m.lower(): m for m in SHAP_METHODS}
    out = []
    for m in ([methods] if isinstance(methods, str) else methods):
        if str(m).lower() not in by_lower:
            raise RuleError(f"methods: unknown SHAP explainer {m!r}; expected some of {SHAP_METHODS}")
        out.append(by_lower[str(m).lower()])
    return out


def _run_peer(entry, fn):
    """``fn()``, SHAP's warnings recorded in the entry's notes; None (verdict unexplained) if it raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn()
        except Exception as exc:  # the peer's own exception types
            entry.notes.append(f"SHAP raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            entry.verdict = "unexplained"
            return None
    seen = sorted({" ".join(str(w.message).split())[:160] for w in caught})
    entry.notes += [f"SHAP warned: {m}" for m in seen]
    return out


def _per_target(values, t):
    """SHAP's (N, *example, n_outputs) array -> each example's target output, (N, *example)."""
    values = np.asarray(values, dtype=np.float64)
    return np.stack([values[n, ..., t[n]] for n in range(values.shape[0])])


def _take(value, rows):
    """Rows of a tensor, or of each tensor of a tuple (one per input)."""
    return tuple(v[rows] for v in value) if isinstance(value, tuple) else value[rows]


def _as_shap(value):
    """What SHAP takes for several inputs: a list of tensors."""
    return list(value) if isinstance(value, tuple) else value


def _packed_values(out, n):
    """SHAP's values as one array (N, *packed example, outputs): a list per input is packed."""
    if isinstance(out, list):
        return np.concatenate([np.asarray(a, dtype=np.float64).reshape(n, -1, np.shape(a)[-1]) for a in out], axis=1)
    return np.asarray(out, dtype=np.float64)


def _calls(x, bg, per_example):
    """(rows, background) of each DeepExplainer: one for a shared background (K, ...), or one per
    example with its own background (N, K, ...) (SHAP fixes the background when it is built)."""
    if not per_example:
        return [(slice(None), bg)]
    return [(slice(n, n + 1), bg[n]) for n in range(x.shape[0])]


def _shap_deep(net, x, bg, t, per_example, **options):
    """:func:`shap_conventions.shap_deep_explainer`, once per DeepExplainer that compare_shap builds."""
    return np.concatenate([sc.shap_deep_explainer(net, x[rows], b, t[rows], **options)
                           for rows, b in _calls(x, bg, per_example)])


def _deep(shap, torch, net, peer_model, functions, x, bg, t, tx, tbg, rtol, peer_name, per_example=False):
    pool = any(is_max_pooling(layer) for layer in net.layers)
    entry = MethodComparison("DeepExplainer", peer_name, "refattr deeplift(rule='rescale'"
                             + (", maxpool_rule='delta_routing'" if pool else "")
                             + (f", {bg.shape[1]} references per example (one DeepExplainer per example))"
                                if per_example else f", {bg.shape[0]} baseline samples)"), "agree")
    ref = deeplift(net, x, target=t, rule="rescale", baseline_samples=bg,
                   maxpool_rule="delta_routing" if pool else None).values
    entry.reference_completeness_gap = _gap(net, x, None, t, ref, bg)
    explainers = []

    def run():
        outs = []
        for rows, b in _calls(x, tbg, per_example):
            explainers.append((shap.DeepExplainer(peer_model, _as_shap(b)), rows))
            rows_x = _take(tx, rows)
            outs.append(_packed_values(explainers[-1][0].shap_values(_as_shap(rows_x), check_additivity=False),
                                       x[rows].shape[0]))
        return np.concatenate(outs)

    out = _run_peer(entry, run)
    if out is None:
        return entry
    all_outputs = np.asarray(out, dtype=np.float64)
    peer = _per_target(all_outputs, t)
    entry.peer_completeness_gap = _gap(net, x, None, t, peer, bg)
    checks = [_shap_additivity(e, torch, _take(tx, rows), all_outputs[rows]) for e, rows in explainers]
    additivity = _additivity_text("FAILS" if any(v == "FAILS" for v, _ in checks) else "passes",
                                  max(w for _, w in checks), len(checks))

    def gap(values):
        return _gap(net, x, None, t, values, bg)

    reproduction, components, gaps = _deep_chain(net, x, bg, t, functions, ref, rtol, gap, per_example)
    entry.notes.append(additivity + _additivity_cause(entry.peer_completeness_gap, gaps))
    _classify(entry, peer, ref, reproduction, components, rtol, "SHAP's DeepExplainer rules")
    return entry


def _shap_additivity(explainer, torch, tx, all_outputs) -> tuple[str, float]:
    """SHAP's own additivity check (``deep_utils._check_additivity``) on its values: ("passes" or
    "FAILS", the largest |f(x) - E f(x') - sum(phi)| over every output)."""
    from shap.explainers._deep.deep_utils import _check_additivity

    with torch.no_grad():
        outputs = explainer.explainer.model(*tx) if isinstance(tx, tuple) else explainer.explainer.model(tx)
    per_output = [all_outputs[..., i] for i in range(all_outputs.shape[-1])]
    # several inputs: SHAP sums a list of arrays per output; the packed values are one such array
    phis = [[p] for p in per_output] if explainer.explainer.multi_input else per_output
    sums = np.stack([p.reshape(p.shape[0], -1).sum(axis=1) for p in per_output], axis=1)
    worst = float(np.max(np.abs(outputs.double().numpy() - np.asarray(explainer.expected_value) - sums)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)    # SHAP subtracts a NumPy array from a tensor
        try:
            _check_additivity(explainer.explainer, outputs.cpu(), phis)
            verdict = "passes"
        except AssertionError:
            verdict = "FAILS"
    return verdict, worst


def _additivity_text(verdict: str, worst: float, n_explainers: int) -> str:
    return (f"SHAP's own additivity check {verdict}"
            + (f" (on at least one of its {n_explainers} explainers)" if n_explainers > 1 and verdict == "FAILS" else "")
            + f": max |f(x) - E f(x') - sum(phi)| over every output = {worst:.3g} (its absolute tolerance "
              f"{sc.SHAP_ADDITIVITY_TOLERANCE:g})")


def _additivity_cause(peer_gap, gaps) -> str:
    """Which steps of the chain close the completeness gap: the causes of an additivity failure."""
    moved = [(label, before, after) for label, before, after in gaps if abs(before - after) > 1e-9 * max(1.0, before)]
    if not moved:
        return f"; for the compared targets SHAP's completeness gap is {peer_gap:.3g}, which no convention changes"
    return (f"; for the compared targets SHAP's completeness gap is {peer_gap:.3g}, produced by: "
            + "; ".join(f"{label} (gap {before:.3g} -> {after:.3g} without it)" for label, before, after in moved))


def _deep_chain(net, x, bg, t, functions, ref, rtol, gap, per_example=False):
    """SHAP's DeepExplainer reproduced, then one convention removed at a time down to Rescale.

    Returns (reproduction, components, gaps): ``gaps`` holds (cause, completeness gap before,
    after removing it) per step, which says which cause produces a failure of SHAP's additivity check."""
    steps = [{"function_nodes": functions}]

    def run(**options):
        steps.append({**steps[-1], **options})
        return _shap_deep(net, x, bg, t, per_example, **steps[-1])

    reproduction = v0 = _shap_deep(net, x, bg, t, per_example, function_nodes=functions)
    components, gaps = [], []

    def step(kind, description, issue=None, **options):
        nonlocal v0
        v = run(**options)
        gaps.append((issue or description.split(":")[0].split(" (")[0], gap(v0), gap(v)))
        components.append(Cause(kind, description, relative_difference(v0, v), issue))
        v0 = v

    unknown = sc.unrecognised_modules(net, functions)
    if unknown:
        step("peer_bug", f"SHAP's DeepExplainer has no rule for {', '.join(unknown)}: it passes the plain gradient "
                         f"there, taken at the reference (f'(x'), not Δy/Δx; a UserWarning 'unrecognized nn.Module' "
                         f"for modules, nothing for functions), so its values are not DeepLIFT's and do not sum to "
                         f"f(x) - E f(x')", "shap issue #3611 (gradient fallback for unrecognised modules)",
             unknown_as_gradient=False)
    if any(type(layer).__name__ == "Softmax" for layer in net.layers):
        step("peer_bug", "SHAP applies its element-wise rule g_i Δs_i / Δz_i to nn.Softmax, which is not "
                         "element-wise; refattr's Softmax rule keeps summation-to-delta (docs/softmax.md)",
             "SHAP's element-wise rule on nn.Softmax, no shap issue found", softmax_elementwise=False)
    step("convention", f"SHAP keeps the gradient (at the reference) where |Δx| < {sc.SHAP_DEEP_EPS:g} at a "
                       f"non-linearity and sets a max-pool multiplier to 0 where |Δx| < {sc.SHAP_POOL_EPS:g} "
                       f"(its numerical-stability thresholds)", eps=0.0, pool_eps=0.0)
    if any(is_max_pooling(layer) for layer in net.layers):
        step("peer_bug", "SHAP un-pools max-pool contributions with max_unpool, an assignment: where overlapping "
                         "windows share a winner one window's value is kept and the others dropped",
             "SHAP's max-pool un-pooling by assignment, no shap issue found", assign_unpool=False)
    step("approximation", "SHAP's multiplier (y - y')/(x - x') is a naive divided difference (cancellation when |Δx| "
                          "is small); refattr's is stable", naive_division=False)
    d = relative_difference(v0, ref)
    components.append(Cause("rounding" if d <= rtol else "unexplained",
                            "Rescale reproduced in the comparison layer vs refattr's deeplift", d))
    return reproduction, components, gaps


def _gradient(shap, torch, net, peer_model, x, bg, t, tx, tbg, nsamples, seed, rtol, peer_name):
    """The GradientExplainer entry and the GradientExplainer[variance] entry."""
    reference = integrated_gradients(net, x, target=t, baseline_samples=bg, rule="auto")
    rule = reference.options.get("rule", "auto")
    ref_error = 0.0 if reference.error_estimate is None else np.asarray(    # (N,): per example, every feature
        reference.error_estimate, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    entry = MethodComparison("GradientExplainer", peer_name,
                             f"refattr integrated_gradients(rule='auto' -> {rule!r}, {bg.shape[0]} baseline samples"
                             + ("" if reference.error_estimate is None else
                                f", error estimate {float(np.max(reference.error_estimate)):.1e}") + ")", "agree")
    variance = MethodComparison("GradientExplainer[variance]", peer_name,
                                f"variance of the mean of SHAP's own {nsamples} samples, var / nsamples", "agree")
    entry.reference_completeness_gap = _gap(net, x, None, t, reference.values, bg)

    def run():
        state, dtype = np.random.get_state(), torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)     # SHAP allocates its sample batch in the default dtype
        try:
            explainer = shap.GradientExplainer(peer_model, tbg)
            return explainer.shap_values(tx, nsamples=nsamples, rseed=seed, return_variances=True)
        finally:
            torch.set_default_dtype(dtype)
            np.random.set_state(state)             # SHAP reseeds the global generator

    out = _run_peer(entry, run)
    if out is None:
        variance.verdict = "unexplained"
        variance.notes.append("SHAP's GradientExplainer raised; see the GradientExplainer entry")
        return [entry, variance]
    values, variances = out
    peer = _per_target(values, t)
    peer_var = np.stack([np.asarray(variances[t[n]], dtype=np.float64)[n] for n in range(x.shape[0])])
    entry.peer_completeness_gap = _gap(net, x, None, t, peer, bg)
    reproduction, samples = sc.shap_gradient_explainer(net, x, bg, t, nsamples=nsamples, rseed=seed)
    spread = samples.var(axis=1)                            # NumPy's var, ddof = 0, as SHAP
    standard_error = np.sqrt(spread / nsamples)
    stated_error = np.sqrt(spread / np.sqrt(nsamples))      # what SHAP's returned variance implies
    from scipy.stats import norm

    z_limit = float(norm.isf(FALSE_ALARM / (2 * spread.size)))
    miss = np.abs(reproduction - reference.values)
    allowed = z_limit * standard_error + ref_error + rtol * np.max(np.abs(reference.values))
    scale = np.where(standard_error > 0, standard_error, np.inf)
    z, z_stated = float(np.max(miss / scale)), float(np.max(np.where(stated_error > 0, miss / np.where(
        stated_error > 0, stated_error, 1.0), 0.0)))
    size = relative_difference(reproduction, reference.values)
    what = (f"Monte Carlo error of expected gradients with nsamples={nsamples} (background rows and alphas drawn "
            f"with rseed={seed}): largest |SHAP - expectation| = {z:.2f} standard errors sqrt(var/nsamples)")
    if np.all(miss <= allowed):
        component = (Cause("approximation", f"{what}, within its error (bound {z_limit:.2f}, a family-wise "
                                                   f"false-alarm rate of {FALSE_ALARM:g} over {spread.size} "
                                                   f"elements)", size))
    else:
        component = (Cause("unexplained", f"{what}, OUTSIDE its error (bound {z_limit:.2f} for a family-wise "
                                                 f"false-alarm rate of {FALSE_ALARM:g}): the estimator is biased or "
                                                 f"the model is not what it seems", size))
    entry.notes.append(f"judged with SHAP's own returned variance, the largest difference is {z_stated:.2f} of its "
                       f"stated standard errors; that variance is var/sqrt(nsamples), so its standard errors are "
                       f"nsamples**0.25 = {nsamples ** 0.25:.2f} times too large (shap issue #4842)")
    _classify(entry, peer, reference.values, reproduction, [component], rtol,
              "SHAP's GradientExplainer on its own random draws")
    correct = spread / nsamples
    reproduced = spread / np.sqrt(nsamples)
    _classify(variance, peer_var, correct, reproduced,
              [Cause("peer_bug", f"SHAP returns samples.var / sqrt(nsamples) as the variance of the mean, not "
                                 f"var / nsamples: {np.sqrt(nsamples):.3g} times too large, its standard errors "
                                 f"{nsamples ** 0.25:.3g} times", relative_difference(reproduced, correct),
                     "shap issue #4842")], rtol, "SHAP's variance formula on its own samples")
    return [entry, variance]
