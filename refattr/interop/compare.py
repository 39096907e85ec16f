"""Diff another library's attributions against refattr's reference, and explain every difference.

Every difference between a peer and refattr's reference is one of five kinds of :class:`Cause`:

- ``rounding``: below ``rtol`` (relative to the largest attribution of the example);
- ``convention``: a documented, legitimate choice of the peer (Captum documents that its
  trapezoid step sizes sum to at most one, its DeepLift ``eps``, its list of supported
  non-linearities), reproduced exactly (``captum_conventions.py``);
- ``approximation``: the peer's numerical error (a 50-step Riemann sum against the exact or
  adaptive integral), sized against the reference;
- ``peer_bug``: a known defect of the peer, named with its issue, reproduced exactly and sized
  (Captum 0.9.0's DeepLift on adjacent hooked modules, captum issue #1104, ...);
- ``unexplained``: matches neither the reference nor any reproduction.

Each compared method gets a verdict: ``agree`` (rounding only), ``convention`` or
``approximation`` (the largest explained part), ``peer_bug`` (a known bug changes the result by
more than rounding: the peer's result is wrong), ``unexplained``, ``peer_error`` (the peer
refused; a documented limitation, e.g. Captum's DeepLift with a reused module, is explained, any
other exception is not) or ``skipped`` (refattr's reference is not available in this version).

:meth:`Report.summary` says in words whether the peer's results are correct and, if not, which
method is off by how much and why. :attr:`Report.all_explained` (alias ``ok``) means only
"nothing unexplained": a peer bug is explained, yet the peer's result is wrong, which
:attr:`Report.peer_correct` says. refattr's reference results are never changed to imitate a peer.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import __version__, quadrature
from .._typing import AttributionMethod, MaxPoolRule, OnnxModel, PathLike, Target, TorchModule, TorchTensor
from ..errors import ArgumentError, RefattrWarning, RuleError, UnsupportedLayerError
from ..layers import Mul, ReLU, registry
from ..layers.max_pool import is_max_pooling
from ..methods import deconvnet, gradient, guided_backprop, input_x_gradient
from ..methods._common import pick, prepare
from ..graph import Graph, pack, unpack
from ..progress import task
from ..network import Network, Sequential
from ..validation import as_baselines, as_float64, as_reference_sets, broadcast_baseline, refuses_baselines
from . import captum_conventions as cc

__all__ = ["Cause", "MethodComparison", "Report", "compare_captum", "compare_attributions", "relative_difference",
           "CAPTUM_METHODS", "VERDICTS", "CAUSE_KINDS"]

#: Captum methods compared by :func:`compare_captum`, in report order.
CAPTUM_METHODS = ("Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "IntegratedGradients",
                  "DeepLift", "DeepLiftShap")

VERDICTS = ("agree", "convention", "approximation", "peer_bug", "unexplained", "peer_error", "skipped",
            "winner_flip")

#: The kinds of :class:`Cause`, from harmless to unknown.
#: "winner_flip": a peer run in float32 picks another winner than float64 in a max-pool window
#: whose two largest cells nearly tie; the contributions move by a visible fraction while the
#: convergence delta stays at float32 rounding, so it is a class of its own, not rounding.
CAUSE_KINDS = ("rounding", "convention", "approximation", "winner_flip", "peer_bug", "unexplained")

#: Verdict tolerance for float64 peers: a few hundred float64 operations differ by well under
#: 1e-12 relative (refattr.testing.tolerances.EXACT_RTOL); any real difference is far larger.
FLOAT64_RTOL = 1e-12
#: For float32 attributions: float32 rounding is 6e-8 per operation; accumulated over a network
#: and a sum of gradients, 1e-5 relative still separates rounding from any real difference.
FLOAT32_RTOL = 1e-5


@dataclass(frozen=True)
class Cause:
    """One part of a difference: ``kind`` is one of :data:`CAUSE_KINDS`; ``size`` the relative
    difference it accounts for; ``issue`` names a peer bug (e.g. "Captum issue #1104")."""

    kind: str
    description: str
    size: float
    issue: str | None = None


@dataclass
class MethodComparison:
    """The comparison of one method (one setting) between a peer and refattr.

    ``max_abs_diff`` is max |peer - reference| over the batch; ``max_rel_diff`` the largest over
    examples of max_i |peer_i - ref_i| / max_i |ref_i|. The completeness gaps are
    max_n |sum(phi_n) - (t(x_n) - t(x'_n))| for the peer's and the reference's attributions
    (None for methods without a reference input).
    """

    method: str
    peer: str
    reference: str
    verdict: str
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    peer_completeness_gap: float | None = None
    reference_completeness_gap: float | None = None
    causes: list[Cause] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        return self.verdict != "unexplained"


@dataclass
class Report:
    """The result of a comparison: one :class:`MethodComparison` per method and setting.

    Read :meth:`summary` (the last line of :meth:`table`, ``"summary"`` in the JSON) first: it
    says whether the peer's results are correct, and if not by how much and why.
    ``peer_label`` is how the summary names the peer ("Captum's", "the user's").
    """

    peer: str
    reference: str
    n_examples: int
    rtol: float
    forward_max_rel_diff: float | None
    forward_rtol: float | None = None
    entries: list[MethodComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peer_label: str | None = None

    @property
    def unexplained(self) -> list[MethodComparison]:
        return [e for e in self.entries if not e.explained]

    @property
    def peer_bugs(self) -> list[MethodComparison]:
        """The entries whose result a known peer bug makes wrong, largest difference first."""
        return sorted((e for e in self.entries if e.verdict == "peer_bug"), key=lambda e: -(e.max_rel_diff or 0.0))

    @property
    def all_explained(self) -> bool:
        """True when nothing is unexplained (forward pass included). Not "the peer is right": a
        known peer bug is explained too; see :attr:`peer_correct`."""
        return self.forward_ok and not self.unexplained

    @property
    def ok(self) -> bool:
        """Alias of :attr:`all_explained`: nothing unexplained, which does not mean the peer is right."""
        return self.all_explained

    @property
    def peer_correct(self) -> bool | None:
        """False when a known peer bug makes a result wrong; None when something is unexplained (whether
        the peer is right is unknown); True when every difference is rounding, a documented convention
        or the peer's approximation error."""
        if self.peer_bugs:
            return False
        return True if self.all_explained else None

    @property
    def forward_ok(self) -> bool:
        """True when the imported network computes the source model's function (to rounding)."""
        tol = self.rtol if self.forward_rtol is None else max(self.rtol, self.forward_rtol)
        return self.forward_max_rel_diff is None or self.forward_max_rel_diff <= tol

    def __getitem__(self, method: str) -> MethodComparison:
        for e in self.entries:
            if e.method == method:
                return e
        raise KeyError(f"method: no entry {method!r}; entries are {[e.method for e in self.entries]}")

    def summary(self) -> str:
        """Whether the peer's results are correct, in words: which are wrong by how much (the largest
        relative difference from refattr's reference) and why, which are unexplained, and otherwise
        the largest convention and approximation differences."""
        label = self.peer_label or "the peer's"
        parts = []
        if not self.forward_ok:
            parts.append(f"!! UNEXPLAINED: the imported model does not compute the source model's function (forward "
                         f"outputs differ by {self.forward_max_rel_diff:.1e} relative), so no attribution can be "
                         f"judged")
        bugs = self.peer_bugs
        if bugs:
            parts.append("!! WRONG: " + "; ".join(
                f"{label} {e.method} is wrong on this model by {_percent(e.max_rel_diff)} ("
                + ", ".join(dict.fromkeys(c.issue for c in e.causes if c.kind == "peer_bug" and c.size > self.rtol))
                + ", reproduced exactly)" for e in bugs)
                + " [% = largest |peer - reference| / largest |reference attribution|, worst example]")
        bad = self.unexplained
        if bad:
            parts.append(f"!! UNEXPLAINED: {', '.join(e.method for e in bad)} match neither refattr's reference nor "
                         f"any known convention or bug, so whether {label} results there are correct is unknown")
        if not parts:
            details = []
            for kind, words in (("convention", "documented conventions"), ("approximation", "approximation error"),
                                ("winner_flip", "float32 winner flips at near-ties")):
                worst = [e for e in self.entries if e.verdict == kind]
                if worst:
                    e = max(worst, key=lambda e: e.max_rel_diff)
                    details.append(f"{words}, largest {_percent(e.max_rel_diff)} in {e.method}")
            refused = [e.method for e in self.entries if e.verdict == "peer_error"]
            if refused:
                details.append(f"refused (documented limitation): {', '.join(refused)}")
            parts.append(f"CORRECT: {label} results are correct on this model: every difference is explained ("
                         + "; ".join(["rounding"] + details) + ")")
        return " ".join(parts)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["summary"] = self.summary()
        out["ok"] = out["all_explained"] = self.all_explained
        out["peer_correct"] = self.peer_correct
        out["forward_ok"] = self.forward_ok
        out["unexplained"] = [e.method for e in self.unexplained]
        out["peer_bugs"] = [{"method": e.method, "max_rel_diff": e.max_rel_diff,
                             "issues": sorted({c.issue for c in e.causes if c.kind == "peer_bug" and c.size > self.rtol})}
                            for e in self.peer_bugs]
        return out

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def table(self) -> str:
        fwd = "-" if self.forward_max_rel_diff is None else f"{self.forward_max_rel_diff:.1e}"
        if self.forward_rtol is not None and self.forward_rtol > self.rtol:
            fwd += f" (float32 model: tolerance {self.forward_rtol:.0e})"
        lines = [f"{self.peer} vs {self.reference}: {self.n_examples} example(s), verdict tolerance rtol "
                 f"{self.rtol:.0e}, forward outputs max rel diff {fwd}"]
        lines += [f"note: {n}" for n in self.notes]
        header = f"{'method':<46} {'verdict':<13} {'max|diff|':>9} {'rel diff':>9} {'gap peer':>9} {'gap ref':>9}"
        lines += [header, "-" * len(header)]
        for e in self.entries:
            shown = e.verdict.upper() if e.verdict in ("unexplained", "peer_bug") else e.verdict
            lines.append(f"{e.method:<46} {shown:<13} "
                         f"{_fmt(e.max_abs_diff):>9} {_fmt(e.max_rel_diff):>9} {_fmt(e.peer_completeness_gap):>9} "
                         f"{_fmt(e.reference_completeness_gap):>9}")
            for c in sorted(e.causes, key=lambda c: -c.size):
                lines.append(f"    {c.kind:<13} {c.size:8.1e}  {c.description}")
            lines += [f"    note: {n}" for n in e.notes]
        lines.append(self.summary())
        return "\n".join(lines)

    __str__ = table


def _percent(value) -> str:
    """A relative difference in words: "26 %", "1.2 %", or "3.0e-05 relative" below 0.1 %."""
    if value >= 1:
        return f"{100 * value:.0f} %"
    return f"{100 * value:.2g} %" if value >= 1e-3 else f"{value:.1e} relative"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1e}"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def relative_difference(actual: ArrayLike, expected: ArrayLike) -> float:
    """max over examples n of max_i |actual_ni - expected_ni| / max_i |expected_ni|.

    Normwise per example, so that a near-zero attribution does not inflate the ratio; where an
    example's expected attributions are all zero the denominator is max |actual| (0 if both are).
    NaN or Inf on either side never compares as equal: such an example's difference is ``inf``.
    """
    a = np.asarray(actual, dtype=np.float64).reshape(np.shape(actual)[0], -1)
    e = np.asarray(expected, dtype=np.float64).reshape(np.shape(expected)[0], -1)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return float("inf")
    diff = np.max(np.abs(a - e), axis=1)
    scale = np.max(np.abs(e), axis=1)
    scale = np.where(scale > 0, scale, np.max(np.abs(a), axis=1))
    return float(np.max(np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)))


def _max_abs_difference(actual, expected) -> float:
    """max |actual - expected|, ``inf`` where either side holds NaN or Inf."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return float("inf")
    return float(np.max(np.abs(a - e)))


def _check_rtol(rtol) -> float:
    """``rtol`` as a float, checked to be a real number with 0 < rtol < 1 (not a bool, NaN or Inf)."""
    if isinstance(rtol, (bool, np.bool_)) or not isinstance(rtol, numbers.Real):
        raise ArgumentError(f"rtol: expected a float with 0 < rtol < 1 (e.g. 1e-12), got {type(rtol).__name__} "
                            f"{rtol!r}")
    if not (np.isfinite(rtol) and 0 < rtol < 1):
        raise ArgumentError(f"rtol: expected a finite float with 0 < rtol < 1 (e.g. 1e-12 for float64, 1e-5 for "
                            f"float32 attributions), got {rtol!r}; rtol=inf would call any result equal, rtol=nan "
                            f"none")
    return float(rtol)


def _non_finite_cause(values, who: str):
    """A Cause naming the first NaN/Inf of ``values``, or None when all are finite."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return Cause("unexplained", f"{who} returned {int(bad.sum())} non-finite value(s) (first at index {index}: "
                                f"{np.asarray(values)[index]}); NaN and Inf never agree with anything", float("inf"))


# refattr's reference methods -----------------------------------------------------------------
def reference_method(name: str):
    """refattr's ``name`` (e.g. "integrated_gradients"), or None while its module is not present."""
    if importlib.util.find_spec(f"refattr.methods.{name}") is None:
        return None
    return getattr(importlib.import_module(f"refattr.methods.{name}"), name)


def _reference_rows(baseline_samples, x) -> list[np.ndarray]:
    """The K references as K arrays of x's shape: row k of a shared set (K, ...) broadcast to the
    batch, or reference k of every example's own set (N, K, ...)."""
    if np.ndim(baseline_samples) == x.ndim + 1:
        return [np.asarray(baseline_samples)[:, k] for k in range(np.shape(baseline_samples)[1])]
    return [np.broadcast_to(b, x.shape) for b in baseline_samples]


def _gap(net, x, baseline_values, target, values, baseline_samples=None) -> float:
    """max_n |sum(phi_n) - (t(x_n) - t(x'_n))| (mean over the K references when ``baseline_samples``);
    ``inf`` where ``values`` holds NaN or Inf."""
    if not np.all(np.isfinite(values)):
        return float("inf")
    tx = pick(net(x), target)
    if baseline_samples is None:
        tb = pick(net(baseline_values), target)
    else:
        tb = np.mean([pick(net(b), target) for b in _reference_rows(baseline_samples, x)], axis=0)
    sums = np.asarray(values).reshape(x.shape[0], -1).sum(axis=1)
    return float(np.max(np.abs(sums - (tx - tb))))


def _classify(entry: MethodComparison, peer, reference, reproduction, components, rtol, what_reproduced):
    """Fill in the verdict and causes of ``entry`` (see the module docstring)."""
    entry.max_abs_diff = _max_abs_difference(peer, reference)
    entry.max_rel_diff = relative_difference(peer, reference)
    non_finite = _non_finite_cause(peer, "the peer")
    if non_finite is not None:
        entry.verdict = "unexplained"
        entry.causes.append(non_finite)
        return
    if entry.max_rel_diff <= rtol:
        entry.verdict = "agree"
        entry.causes.append(Cause("rounding", "equal to the reference up to float64 rounding", entry.max_rel_diff))
        entry.causes += [c for c in components if c.kind != "rounding" and c.size > rtol]
        return
    if reproduction is None:
        entry.verdict = "unexplained"
        entry.causes.append(Cause("unexplained", "differs from the reference and no convention of the peer "
                                                 "is known to explain it", entry.max_rel_diff))
        return
    d_rep = relative_difference(peer, reproduction)
    entry.causes.append(Cause("rounding" if d_rep <= rtol else "unexplained",
                              f"peer vs {what_reproduced} reproduced with refattr's float64 gradients", d_rep))
    entry.causes += components
    entry.verdict = _verdict(components, rtol, d_rep > rtol)


def _verdict(components, rtol, unmatched=False) -> str:
    """The verdict of a difference whose parts are ``components``: unexplained when the peer does not
    match the reproduction (``unmatched``) or a part is, peer_bug when a known bug changes the result by
    more than rounding, else the kind of the largest part."""
    real = [c for c in components if c.kind in ("convention", "approximation", "winner_flip", "peer_bug")
            and c.size > rtol]
    broken = [c for c in components if c.kind == "unexplained" and c.size > rtol]
    if unmatched or broken or not real:
        return "unexplained"
    if any(c.kind == "peer_bug" for c in real):
        return "peer_bug"
    return max(real, key=lambda c: c.size).kind


def _hooked(layer, swish_hooked=False) -> bool:
    """Whether Captum's DeepLift hooks ``layer``'s module (``swish_hooked``: the element-wise layers
    Captum does not hook are counted as hooked)."""
    return cc.captum_treatment(layer, swish_as_gradient=not swish_hooked) in ("nonlinear", "maxpool")


def _nonlinear_inputs(net, x, xr):
    """Δz at the input of every layer that gets a Captum DeepLift hook once the unhooked element-wise
    layers get Rescale too (every element-wise and max-pool layer), as (layer index, layer, Δz)."""
    trace, trace_ref = net.trace(x), net.trace(xr)
    for j, (layer, args) in enumerate(zip(net.layers, net.node_args)):
        if _hooked(layer, swish_hooked=True):
            yield j, layer, trace.activations[args[0]] - trace_ref.activations[args[0]]


def _node_name(net, j) -> str:
    return repr(net.nodes[j].name) if isinstance(net, Graph) else str(j)


def _adjacent_hooked(net, swish_hooked=False) -> list[str]:
    """Hooked layers whose output a hooked layer reads, as "A -> B (layers i, j)"."""
    n_in, out = net.n_inputs, []
    for j, (layer, args) in enumerate(zip(net.layers, net.node_args)):
        for a in args:
            i = a - n_in
            if i >= 0 and _hooked(layer, swish_hooked) and _hooked(net.layers[i], swish_hooked):
                out.append(f"{type(net.layers[i]).__name__} -> {type(layer).__name__} "
                           f"(layers {_node_name(net, i)}, {_node_name(net, j)})")
    return out


def _shared_hooked_inputs(net, swish_hooked=False) -> list[str]:
    """Values read by a hooked layer and by some other layer too (fan-out), as "value (readers)"."""
    names = net.value_names()
    out = []
    for v, readers in enumerate(cc._readers(net)):
        if len(readers) > 1 and any(_hooked(net.layers[j], swish_hooked) for j in readers):
            kinds = ", ".join(type(net.layers[j]).__name__ for j in readers)
            out.append(f"{names[v]!r} (read by {kinds})")
    return out


def _deeplift_chain(net, x, baseline, target, baseline_samples=None, functions=(), at_value=None,
                    output="attributions"):
    """Captum's DeepLift convention, then one convention removed at a time, ending at pure Rescale.

    ``functions``: the nodes the torch model computes with functions (no module, no hook);
    ``at_value``: Captum's LayerDeepLift at that value instead of DeepLift at the input.
    Returns (reproduction, components, final variant). Each component is the relative size of
    one step of the chain.
    """
    def run(**options):
        options["function_nodes"] = functions
        if at_value:
            options["at_value"] = at_value
        if baseline_samples is None:
            return cc.captum_deeplift(net, x, baseline, target, output=output, **options)
        return cc.captum_deeplift_shap(net, x, baseline_samples, target, output=output, **options)

    eps = cc.CAPTUM_DEEPLIFT_EPS
    steps = [{}]

    def more(**options):
        steps.append({**steps[-1], **options})
        return run(**steps[-1])

    v0 = run()
    components = []
    has_pool = any(cc.captum_treatment(layer) == "maxpool" for layer in net.layers)
    unhooked = cc.unhooked_elementwise(net)
    written = _function_layers(net, functions)
    if unhooked or written:
        entries = [registry.info(layer) for layer in unhooked]
        modules = ", ".join(dict.fromkeys(f"nn.{e.torch_modules[0]}" if e.torch_modules else e.name for e in entries))
        v = more(swish_as_gradient=False)
        what = []
        if unhooked:
            what.append(f"Captum has no DeepLift rule for {modules} (its documentation: only a limited list of "
                        "non-linearities is supported)")
        if written:
            what.append(f"Captum hooks modules only, and the model computes {', '.join(written)} with functions in "
                        "forward (F.relu, torch.sigmoid, F.max_pool2d, ...)")
        components.append(Cause("convention", "; ".join(what) + ": it passes the ordinary gradient there instead of "
                                              "the DeepLIFT multiplier (no warning; summation-to-delta breaks)",
                                relative_difference(v0, v)))
        v0 = v
    else:
        steps[-1]["swish_as_gradient"] = False
    products = [node.name for node in getattr(net, "nodes", ()) if isinstance(node.layer, Mul)]
    if products:
        v = more(joins_as_gradient=False)
        components.append(Cause("convention", "Captum has no DeepLift rule for a product of two tensors (a * b in "
                                              f"forward: {', '.join(map(repr, products))}; not a module, so not "
                                              "hooked): it passes the gradient b instead of a multiplier; refattr's "
                                              "Mul rule is the Shapley split, multiplier (b + b')/2",
                                relative_difference(v0, v)))
        v0 = v
    else:
        steps[-1]["joins_as_gradient"] = False
    softmaxes = [type(layer).__name__ for layer in net.layers if cc.captum_treatment(layer) == "softmax"]
    if softmaxes:
        v = more(softmax_as_captum=False)
        components.append(Cause("peer_bug", "Captum's Softmax rule divides element by element, g Δs_i / Δx_i, and "
                                            "subtracts the mean of that over every element of its doubled batch, so "
                                            "an example's attribution depends on its batchmates; refattr's Softmax "
                                            "rule is the 'centered' one (docs/softmax.md)", relative_difference(v0, v),
                                "Captum's softmax rule mixes the examples of a batch, no Captum issue filed"))
        v0 = v
    else:
        steps[-1]["softmax_as_captum"] = False
    shared = _shared_hooked_inputs(net, swish_hooked=True)
    if shared:
        v = more(shared_input_replaced=False)
        components.append(Cause("peer_bug", "Captum bug (no Captum issue found): where a hooked module reads a tensor "
                                            "that other modules read too (" + "; ".join(shared) + "), its hook "
                                            "replaces the tensor's whole gradient with the module's own DeepLIFT "
                                            "term, dropping what the other readers (a skip connection, a second "
                                            "branch) sent back, so summation-to-delta breaks",
                                relative_difference(v0, v), "Captum's DeepLift on shared inputs, no Captum issue filed"))
        v0 = v
    pairs = _adjacent_hooked(net, swish_hooked=True)
    if pairs:
        v = more(stale_grad_output=False)
        components.append(Cause("peer_bug", "Captum bug (issue #1104, open in 0.9.0): on adjacent hooked modules ("
                                + "; ".join(pairs) + ") the upstream module's rule reads the output gradient "
                                  "recorded before the downstream module's rule rewrote it, so the upstream "
                                  "Rescale multiplier multiplies the plain gradient of the downstream module "
                                  "instead of its DeepLIFT multiplier",
                                relative_difference(v0, v), "Captum issue #1104"))
        v0 = v
    if has_pool:
        v = more(first_row_fallback=False)
        components.append(Cause("peer_bug", "Captum bug (issue #1276, open in 0.9.0): the max-pool fallback "
                                            "(|Δx| < 1e-10) uses grad_input[0], the gradient of example 0, for every "
                                            "example", relative_difference(v0, v), "Captum issue #1276"))
        v0 = v
    refs = [broadcast_baseline(baseline, x)] if baseline_samples is None else _reference_rows(baseline_samples, x)
    n_small = sum(int(np.sum((np.abs(dz) < eps) & (dz != 0))) for xr in refs for _, _, dz in _nonlinear_inputs(net, x, xr))
    v = more(eps=0)
    components.append(Cause("convention", f"Captum falls back to the gradient at the input where |Δz| < {eps:g} "
                                          f"(its documented eps; {n_small} neuron(s) with 0 < |Δz| < {eps:g} here)",
                            relative_difference(v0, v)))
    v0 = v
    if has_pool:
        v = more(assign_unpool=False)
        components.append(Cause("peer_bug", "Captum un-pools max-pool contributions with max_unpool1d/2d, an "
                                            "assignment: where overlapping windows share a winner one window's value "
                                            "is kept and the others are dropped, so summation-to-delta breaks "
                                            "(undocumented; no Captum issue filed; tangermeme fixed the same defect, "
                                            "its issue #49)", relative_difference(v0, v),
                                "Captum's max-pool un-pooling by assignment, no Captum issue filed"))
        v0 = v
    v = more(naive_division=False)
    components.append(Cause("approximation", "Captum's multiplier (y - y')/(x - x') is a naive divided difference "
                                             "(cancellation when |Δx| is small); refattr's is stable",
                            relative_difference(v0, v)))
    return run(), components, v


def _function_layers(net, functions) -> list[str]:
    """The nodes written as functions whose layer Captum would hook as a module, as "'name' (Layer)"."""
    return [f"{net.nodes[j].name!r} ({type(net.layers[j]).__name__})" for j in sorted(functions)
            if cc.captum_treatment(net.layers[j], swish_as_gradient=False) in ("nonlinear", "maxpool", "softmax")]


def _modified_relu_chain(net, x, t, method, reference, rtol, functions=()):
    """(reproduction, components) for GuidedBackprop / Deconvolution where Captum's ReLU hooks do
    something else than refattr's rule: ReLUs written as functions (no hook: the plain gradient),
    a ReLU sharing its input with other readers (the hook rewrites their terms too); (None, [])
    elsewhere."""
    relus = [j for j in functions if isinstance(net.layers[j], ReLU)]
    shared = [s for s in _shared_hooked_inputs(net) if "ReLU" in s]
    if not (relus or shared):
        return None, []
    deconv = method == "Deconvolution"

    def run(**options):
        return cc.captum_modified_relu(net, x, t, deconvolution=deconv, **options)

    reproduction = v0 = run(function_nodes=relus)
    components = []
    if relus:
        v = run()
        components.append(Cause("convention", f"Captum's {method} overrides the gradient of nn.ReLU modules only; the "
                                              f"model computes {', '.join(repr(net.nodes[j].name) for j in relus)} "
                                              f"with F.relu / torch.relu, which pass the ordinary gradient",
                                relative_difference(v0, v)))
        v0 = v
    if shared:
        v = run(shared_input_replaced=False)
        what = ("replaces the tensor's whole gradient with relu(the ReLU's output gradient), dropping the other "
                "readers' terms" if deconv else "clamps the sum of every reader's term, not the ReLU's own term")
        components.append(Cause("peer_bug", f"Captum bug (no Captum issue found): where a ReLU reads a tensor that "
                                            f"other modules read too ({'; '.join(shared)}), its hook on that tensor "
                                            f"{what}", relative_difference(v0, v),
                                f"Captum's {method} on shared inputs, no Captum issue filed"))
        v0 = v
    components.append(Cause("rounding" if relative_difference(v0, reference) <= rtol else "unexplained",
                            f"the ReLU rule reproduced in the comparison layer vs refattr's "
                            f"{'deconvnet' if deconv else 'guided_backprop'}", relative_difference(v0, reference)))
    return reproduction, components


# Captum ----------------------------------------------------------------------------------------
def _load_captum():
    try:
        import captum
        from captum import attr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("compare_captum needs Captum: pip install torch==2.13.0 captum==0.9.0") from exc
    return captum, attr


def _as_models(model, inputs=None):
    """(refattr network, float64 torch module, nodes the module computes with functions) for a torch
    module, a refattr network or an ONNX model."""
    from .torch_graph import graph_to_torch
    from .torch_model import from_torch, require_torch, to_torch

    torch = require_torch()
    if isinstance(model, Graph):
        return model, graph_to_torch(model), ()
    if isinstance(model, Sequential):
        return model, to_torch(model), ()
    if isinstance(model, torch.nn.Module):
        # several inputs: the import check needs each input's example shape, read from the inputs
        shapes = ([np.shape(a)[1:] for a in inputs] if isinstance(inputs, tuple)
                  else None if inputs is None else np.shape(inputs)[1:])
        net = from_torch(model, input_shape=shapes)
        functions = ()
        if isinstance(net, Graph):
            from .torch_fx import function_node_names

            names = function_node_names(model)
            functions = tuple(j for j, node in enumerate(net.nodes) if node.name.split(".")[0] in names)
        return net, copy.deepcopy(model).double().eval(), functions
    from .onnx_model import from_onnx

    net = from_onnx(model)
    return net, to_torch(net), ()


def _numpy_each(value):
    """:func:`_numpy` on a value or on each entry of a tuple (several inputs)."""
    return tuple(_numpy(v) for v in value) if isinstance(value, tuple) else _numpy(value)


def _packed(net, inputs, baseline, baseline_samples, functions):
    """A graph of several inputs and its arguments (tuples, one entry per input) as the packed
    graph of one input (:meth:`refattr.Graph.packed`) and packed arrays; the function nodes
    renumbered (the packed graph starts with one slicing node per input)."""
    xs = net.check_input(inputs, "inputs")
    shapes = [a.shape[1:] for a in xs]

    def per_input(value, what):
        if not isinstance(value, tuple):
            if np.ndim(value) == 0:          # one scalar for every input
                return (value,) * len(xs)
            raise ArgumentError(f"{what}: the network has {len(xs)} inputs {list(net.inputs)}; pass a tuple with "
                                f"one entry per input (or one scalar for all)")
        if len(value) != len(xs):
            raise ArgumentError(f"{what}: expected one entry per input ({len(xs)}: {list(net.inputs)}), got "
                                f"{len(value)}")
        return value

    packed_baseline = pack([broadcast_baseline(b, a, name=f"baseline[{k}]")
                            for k, (b, a) in enumerate(zip(per_input(baseline, "baseline"), xs))])
    packed_samples = None
    if baseline_samples is not None:
        samples = per_input(baseline_samples, "baseline_samples")
        packed_samples = pack([as_baselines(s, a) for s, a in zip(samples, xs)])
    offset = net.n_inputs
    return (net.packed(shapes), pack(xs), packed_baseline, packed_samples,
            tuple(j + offset for j in functions), shapes)


def _normalise_methods(methods):
    if methods is None:
        return list(CAPTUM_METHODS)
    by_lower = {m.lower(): m for m in CAPTUM_METHODS}
    out = []
    for m in ([methods] if isinstance(methods, str) else methods):
        if str(m).lower() not in by_lower:
            raise RuleError(f"methods: unknown Captum method {m!r}; expected some of {CAPTUM_METHODS}")
        out.append(by_lower[str(m).lower()])
    return out


@refuses_baselines
def compare_captum(model: TorchModule | Network | OnnxModel | PathLike | bytes, inputs: ArrayLike | TorchTensor,
                   baseline: ArrayLike | TorchTensor = 0.0, targets: Target | TorchTensor = None,
                   methods: Iterable[str] | None = None, *, n_steps: int = 50,
                   ig_methods: Sequence[str] = cc.CAPTUM_IG_METHODS,
                   baseline_samples: ArrayLike | TorchTensor | None = None, hypothetical: bool = False,
                   multiply_by_inputs: bool = True, rtol: float = FLOAT64_RTOL) -> Report:
    """Run Captum's attribution methods and refattr's reference on the same model and classify every difference.

    Parameters
    ----------
    model : torch.nn.Module, refattr.Sequential or Graph (one input), or an ONNX model (path, bytes or ModelProto)
        A torch module is imported with :func:`~refattr.interop.from_torch` and run by Captum as a
        float64 copy; a refattr or ONNX model is given to Captum through
        :func:`~refattr.interop.to_torch` (a Graph: :func:`~refattr.interop.torch_graph.graph_to_torch`,
        joins as tensor operations in ``forward``).
    inputs : array_like or torch.Tensor, shape (N, *example_shape)
        A tensor is detached and copied to the CPU (``requires_grad`` is fine); likewise for
        ``baseline``, ``targets`` and ``baseline_samples``.
    baseline : scalar, array_like or torch.Tensor
        The baseline x' of IntegratedGradients and DeepLift, what Captum's ``attribute`` takes as
        ``baselines``: a scalar, one example's shape, (1, *example_shape), or the inputs' shape
        (default 0). ``baselines=`` is refused with an error that names both of its meanings.
    targets : int, int array (N,), or None
    methods : iterable of str, optional
        Some of :data:`CAPTUM_METHODS` (default: all).
    n_steps : int
        Captum's ``n_steps`` for IntegratedGradients, >= 1.
    ig_methods : iterable of str
        Captum's IG ``method`` values to compare (default: all five).
    baseline_samples : array_like (K, *example_shape) or (N, K, *example_shape), K >= 2, optional
        DeepLiftShap's distribution of references (what Captum's ``DeepLiftShap.attribute`` takes
        as ``baselines``), compared with refattr's ``deeplift(baseline_samples=...)``. Default:
        ``baseline`` broadcast to the inputs' shape (K = N; repeated once more if N == 1, as
        Captum needs K >= 2). One set per example (N, K, ...), e.g. K dinucleotide-shuffled
        copies of each sequence, is read by its rank: Captum's ``baselines`` are shared by a batch,
        so Captum is called once per example with its own set, as a user would (one input only).
    hypothetical : bool
        With DeepLiftShap, also compare hypothetical contributions (Shrikumar et al. 2018, the
        input of TF-MoDISco; x one-hot along axis 1): Captum's DeepLiftShap with the
        ``custom_attribution_func`` of that workflow, m - sum_c' x'[c'] m[c'] per pair, against
        :func:`~refattr.methods.hypothetical.hypothetical_contributions`. One more entry,
        ``DeepLiftShap[hypothetical]``, whose causes size Captum's bugs in that quantity (the
        max-pool fallback of issue #1276 changes multipliers where Δx is zero, which contributions
        cannot show and hypothetical contributions do).
    multiply_by_inputs : bool
        Captum's constructor flag for DeepLift and DeepLiftShap. False: Captum returns the
        multipliers (the gradients its hooks deliver, averaged over the references), compared with
        refattr's ``deeplift(...).multipliers``; where Δx == 0 DeepLIFT leaves the multiplier
        undefined and the two fill it in differently (a named convention). IntegratedGradients then
        returns the mean gradient along the path, compared with refattr's exact mean gradient on
        piecewise-linear networks (the gradient at each piece's midpoint times its length) and
        skipped with a note elsewhere.
    rtol : float
        Relative difference below which two results count as equal up to rounding; a finite
        float with 0 < rtol < 1 (else :class:`~refattr.errors.ArgumentError`). A peer result
        holding NaN or Inf is always ``unexplained``.

    Returns
    -------
    Report
        Its :meth:`~Report.summary` (the last line of ``table()``) says whether Captum's results
        are correct and, where a known Captum bug makes one wrong, by how much (e.g. "Captum's
        DeepLift is wrong on this model by 26 % (Captum issue #1104, reproduced exactly)").
        One entry per method (per IG method). References: ``gradient``, ``input_x_gradient``,
        ``guided_backprop``, ``deconvnet``; ``integrated_gradients(rule="auto")`` (exact on
        piecewise-linear networks, adaptive quadrature otherwise) with the same-rule fixed
        quadrature as the intermediate step; ``deeplift(rule="rescale")`` with
        ``maxpool_rule="delta_routing"`` where the network has max pooling (Captum's routing).
        Methods whose refattr module is not present yet are reported as ``skipped``.

    Warnings
    --------
    Captum's documented conventions reproduced here (see ``captum_conventions.py``): float32
    Riemann nodes and step weights; ``riemann_trapezoid`` weights summing to (n - 1)/n ("step
    sizes which sum is smaller than or equal to one"); DeepLift's gradient fallback below its
    ``eps`` = 1e-10; no DeepLift rule for SiLU (a plain gradient; Captum supports a listed set of
    non-linearities). Captum 0.9.0's DeepLift bugs, reproduced and reported as ``peer_bug``:
    issue #1104 (adjacent hooked modules such as ReLU -> MaxPool2d use a stale output gradient),
    issue #1276 (the max-pool fallback uses example 0's gradient for every example) and max-pool
    un-pooling by assignment, which drops contributions where overlapping windows share a winner
    (no Captum issue filed), and, on graphs, a hooked module that shares its input tensor with
    other readers (``relu(h) + h``): its hook replaces the tensor's whole gradient, dropping the
    other readers' terms (no Captum issue found). None of them is applied to refattr's own results. A Captum
    ``UserWarning`` is recorded in the entry's notes, not raised.

    Examples
    --------
    ::

        report = compare_captum(torch_model, x, baseline=x_ref, targets=labels)
        print(report.table())          # one line per method, causes with their sizes, then the summary
        assert report.all_explained, report.unexplained   # nothing unexplained
        assert report.peer_correct, report.summary()        # and no known Captum bug changed a result
    """
    rtol = _check_rtol(rtol)
    if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ArgumentError(f"n_steps: expected an int >= 1 (Captum's IntegratedGradients steps), got {n_steps!r}")
    captum, cattr = _load_captum()
    from .torch_model import require_torch

    torch = require_torch()
    inputs, baseline, targets, baseline_samples = (_numpy_each(v) for v in (inputs, baseline, targets,
                                                                            baseline_samples))
    net, peer_model, functions = _as_models(model, inputs)
    shapes = None
    if net.n_inputs > 1:
        # several inputs: refattr runs on the packed graph (one input, each example's inputs end to
        # end, sliced apart by its first nodes), Captum on the tuples; results are compared packed
        net, inputs, baseline, baseline_samples, functions, shapes = _packed(net, inputs, baseline, baseline_samples,
                                                                            functions)
    x, t = prepare(net, inputs, targets, name="inputs")
    xr = broadcast_baseline(baseline, x)
    n_out = net(x).shape[1]
    torch_target = None if targets is None and n_out == 1 else torch.from_numpy(t)
    per_example = baseline_samples is not None and np.ndim(baseline_samples) == x.ndim + 1
    if baseline_samples is None:
        shap = xr if x.shape[0] > 1 else np.concatenate([xr, xr])
    else:
        shap = as_reference_sets(baseline_samples, x) if per_example else as_baselines(baseline_samples, x)

    def as_peer(a, grad=False):
        """A packed array as what Captum takes: a tensor, or a tuple of them (one per input)."""
        parts = (a,) if shapes is None else unpack(a, shapes)
        tensors = tuple(torch.from_numpy(np.array(p, dtype=np.float64, order="C")) for p in parts)
        tensors = tuple(v.requires_grad_() for v in tensors) if grad else tensors
        return tensors[0] if shapes is None else tensors

    def tx():
        return as_peer(x, grad=True)

    def tb():
        return as_peer(xr)

    with torch.no_grad():
        peer_out = peer_model(*((as_peer(x),) if shapes is None else as_peer(x)))
    forward_diff, forward_rtol = relative_difference(peer_out.double().numpy(), net(x)), FLOAT64_RTOL
    notes = []
    if _is_onnx(model):
        # the peer runs a float64 torch copy of the imported network; the import itself is checked
        # against the ONNX runtime
        onnx_diff, forward_rtol, notes = _source_forward_diff(model, net, x, shapes)
        forward_diff = max(forward_diff, onnx_diff)
    report = Report(peer=f"captum {captum.__version__} (torch {torch.__version__})", reference=f"refattr {__version__}",
                    n_examples=x.shape[0], rtol=rtol, forward_max_rel_diff=forward_diff, forward_rtol=forward_rtol,
                    notes=notes, peer_label="Captum's")
    peer_name = f"captum {captum.__version__}"

    def run_peer(entry, fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn()
            except Exception as exc:  # the peer's own exception types
                message = " ".join(str(exc).split())
                entry.notes.append(f"Captum raised {type(exc).__name__}: {message[:300]}")
                if "used more than once" in message:
                    entry.verdict = "peer_error"
                    entry.causes.append(Cause("convention", "Captum's DeepLift requires every non-linear module "
                                                            "to be used once (documented limitation)", 0.0))
                else:
                    entry.verdict = "unexplained"
                return None
        seen = sorted({" ".join(str(w.message).split())[:160] for w in caught})
        entry.notes += [f"Captum warned: {m}" for m in seen]
        if isinstance(out, tuple):      # one attribution per input: compared packed, as the inputs
            return pack([o.detach().cpu().numpy().astype(np.float64) for o in out])
        return out.detach().cpu().numpy().astype(np.float64)

    chosen = _normalise_methods(methods)
    with task("compare with Captum", len(chosen), "methods") as bar:
        for done, method in enumerate(chosen):
            bar.set(done, running=method)
            if method in ("Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution"):
                ours, cls, kwargs = {
                    "Saliency": (gradient, cattr.Saliency, {"abs": False}),
                    "InputXGradient": (input_x_gradient, cattr.InputXGradient, {}),
                    "GuidedBackprop": (guided_backprop, cattr.GuidedBackprop, {}),
                    "Deconvolution": (deconvnet, cattr.Deconvolution, {}),
                }[method]
                entry = MethodComparison(method, peer_name, f"refattr {ours.__name__}", "agree")
                peer = run_peer(entry, lambda: cls(peer_model).attribute(tx(), target=torch_target, **kwargs))
                if peer is not None:
                    reference = ours(net, x, t).values
                    reproduction, components = (_modified_relu_chain(net, x, t, method, reference, rtol, functions)
                                                if method in ("GuidedBackprop", "Deconvolution") else (None, []))
                    _classify(entry, peer, reference, reproduction, components, rtol, f"Captum's {method} hooks")
                report.entries.append(entry)
            elif method == "IntegratedGradients" and not multiply_by_inputs:
                report.entries += _compare_mean_gradient(net, peer_model, cattr, x, xr, t, tx, tb, torch_target,
                                                         n_steps, ig_methods, rtol, peer_name, run_peer)
            elif method == "IntegratedGradients":
                report.entries += _compare_ig(net, peer_model, cattr, x, xr, t, tx, tb, torch_target, n_steps,
                                              ig_methods,
                                              rtol, peer_name, run_peer)
            else:
                shap_mode = method == "DeepLiftShap"
                entry = MethodComparison(method, peer_name, "refattr deeplift(rule='rescale')", "skipped")
                deeplift = reference_method("deeplift")
                if deeplift is None:
                    entry.notes.append("refattr.methods.deeplift is not available in this version")
                    report.entries.append(entry)
                    continue
                maxpool_rule = "delta_routing" if any(is_max_pooling(la) for la in net.layers) else None
                if maxpool_rule:
                    entry.reference += ", maxpool_rule='delta_routing'"
                if not multiply_by_inputs:
                    entry.method += "[multiply_by_inputs=False]"
                    entry.reference += ", its multipliers"
                if shap_mode:
                    entry.reference += (f", {shap.shape[1]} references per example (one Captum call per example)"
                                        if per_example else f", {shap.shape[0]} baseline samples")
                    ref = deeplift(net, x, target=t, rule="rescale", baseline_samples=shap, maxpool_rule=maxpool_rule)
                    peer = run_peer(entry, lambda: _deeplift_shap_peer(cattr, peer_model, as_peer, x, shap, per_example,
                                                                       torch_target, multiply=multiply_by_inputs))
                else:
                    ref = deeplift(net, x, xr, target=t, rule="rescale", maxpool_rule=maxpool_rule)
                    peer = run_peer(entry, lambda: cattr.DeepLift(peer_model, multiply_by_inputs=multiply_by_inputs)
                                    .attribute(tx(), tb(), target=torch_target))
                bases = shap if shap_mode else None
                if multiply_by_inputs:
                    entry.reference_completeness_gap = _gap(net, x, xr, t, ref.values, bases)
                if peer is not None and multiply_by_inputs:
                    entry.peer_completeness_gap = _gap(net, x, xr, t, peer, bases)
                    reproduction, components, pure = _deeplift_chain(net, x, xr, t, bases, functions)
                    same = relative_difference(pure, ref.values) <= rtol
                    components.append(Cause("rounding" if same else "unexplained",
                                            "Rescale reproduced in the comparison layer vs refattr's deeplift",
                                            relative_difference(pure, ref.values)))
                    _classify(entry, peer, ref.values, reproduction, components, rtol, "Captum's DeepLift convention")
                elif peer is not None:
                    reproduction, components, pure = _deeplift_chain(net, x, xr, t, bases, functions,
                                                                     output="multipliers")
                    sets = bases if shap_mode else xr[:, None]
                    components.append(_undefined_multipliers(net, x, t, sets, maxpool_rule, functions, pure,
                                                             ref.multipliers, rtol, "multipliers"))
                    _classify(entry, peer, ref.multipliers, reproduction, components, rtol,
                              "Captum's DeepLift convention, multipliers")
                report.entries.append(entry)
                if shap_mode and hypothetical:
                    report.entries.append(_compare_hypothetical(net, cattr, peer_model, as_peer, x, t, shap,
                                                                per_example,
                                                                torch_target, maxpool_rule, functions, rtol, peer_name,
                                                                run_peer))
        bar.set(len(chosen))

    return report


def _undefined_multipliers(net, x, t, sets, maxpool_rule, functions, pure, reference, rtol,
                           quantity="hypothetical contributions") -> Cause:
    """The last step from Captum's Rescale (every Captum convention and bug removed) to refattr's
    hypothetical contributions: DeepLIFT's multiplier Δy/Δx is undefined where Δx == 0, and the two
    fill it in differently (Captum: the gradient; refattr's max-pool routing: the multiplier of the
    cell the window's change is routed to). Contributions cannot see that (Δx m = 0 there);
    hypothetical contributions can. A convention only if the per-pair multipliers agree wherever
    Δx != 0; else unexplained."""
    from ..methods.deeplift import deeplift

    size = relative_difference(pure, reference)
    if size <= rtol:
        return Cause("rounding", f"Rescale multipliers reproduced in the comparison layer vs refattr's {quantity}", size)
    k = sets.shape[-x.ndim]
    inputs = np.repeat(x, k, axis=0)
    refs = (np.asarray(sets).reshape((-1,) + x.shape[1:]) if np.ndim(sets) == x.ndim + 1
            else np.tile(sets, (x.shape[0],) + (1,) * (x.ndim - 1)))
    targets = np.repeat(t, k)
    ours = deeplift(net, inputs, refs, target=targets, rule="rescale", maxpool_rule=maxpool_rule).multipliers
    theirs = cc.captum_deeplift(net, inputs, refs, targets, output="multipliers", eps=0, stale_grad_output=False,
                                first_row_fallback=False, assign_unpool=False, naive_division=False,
                                shared_input_replaced=False, joins_as_gradient=False, softmax_as_captum=False,
                                swish_as_gradient=False, function_nodes=functions)
    moved = inputs != refs
    defined = relative_difference(np.where(moved, theirs, 0.0), np.where(moved, ours, 0.0))
    undefined = int(np.sum(~moved & (theirs != ours)))
    if defined > rtol:
        return Cause("unexplained", f"Rescale multipliers reproduced in the comparison layer vs refattr's {quantity} "
                                    f"(the multipliers differ by {defined:.1e} where Δx != 0)", size)
    return Cause("convention", "DeepLIFT's multiplier Δy/Δx is undefined where Δx == 0 (here at "
                               f"{undefined} input cell(s) of the (example, reference) pairs): Captum's Rescale "
                               "takes the gradient there, refattr's max-pool routing the multiplier of the cell a "
                               "window's change is routed to; contributions (Δx times m) are equal, "
                               f"{quantity} read m where Δx == 0 and differ", size)


def _deeplift_shap_peer(cattr, peer_model, as_peer, x, sets, per_example, torch_target, multiply=True, **kwargs):
    """Captum's DeepLiftShap on x: one call with the shared references (K, ...), or, with one set
    per example (N, K, ...), one call per example with its own set (Captum's ``baselines`` are
    shared by a batch), results stacked."""
    explainer = cattr.DeepLiftShap(peer_model, multiply_by_inputs=multiply)
    if not per_example:
        return explainer.attribute(as_peer(x, grad=True), as_peer(sets), target=torch_target, **kwargs)
    rows = []
    for n in range(x.shape[0]):
        target_n = None if torch_target is None else torch_target[n:n + 1]
        rows.append(explainer.attribute(as_peer(x[n:n + 1], grad=True), as_peer(sets[n]), target=target_n, **kwargs))
    from .torch_model import require_torch

    return require_torch().cat(rows)


def _hypothetical_attribution_func(multipliers, inputs, baselines):
    """Captum ``custom_attribution_func`` of the genomics workflow: per (input, reference) pair,
    the hypothetical contributions m - sum_c' x'[c'] m[c'] over the channel axis 1."""
    return tuple(m - (b * m).sum(dim=1, keepdim=True) for m, b in zip(multipliers, baselines))


def _compare_hypothetical(net, cattr, peer_model, as_peer, x, t, sets, per_example, torch_target, maxpool_rule,
                          functions, rtol, peer_name, run_peer):
    """Hypothetical contributions: Captum's DeepLiftShap with the genomics workflow's
    ``custom_attribution_func`` against refattr's ``hypothetical_contributions``."""
    from ..methods.hypothetical import hypothetical_contributions

    entry = MethodComparison("DeepLiftShap[hypothetical]", peer_name,
                             "refattr hypothetical_contributions(rule='rescale'"
                             + (", maxpool_rule='delta_routing'" if maxpool_rule else "") + ")", "agree")
    reference = hypothetical_contributions(net, x, target=t, baseline_samples=sets, maxpool_rule=maxpool_rule)
    peer = run_peer(entry, lambda: _deeplift_shap_peer(cattr, peer_model, as_peer, x, sets, per_example, torch_target,
                                                       custom_attribution_func=_hypothetical_attribution_func))
    if peer is not None:
        reproduction, components, pure = _deeplift_chain(net, x, None, t, sets, functions, output="hypothetical")
        components.append(_undefined_multipliers(net, x, t, sets, maxpool_rule, functions, pure,
                                                 reference.hypothetical, rtol))
        _classify(entry, peer, reference.hypothetical, reproduction, components, rtol,
                  "Captum's DeepLift convention, hypothetical contributions")
    return entry


def _compare_ig(net, peer_model, cattr, x, xr, t, tx, tb, torch_target, n_steps, ig_methods, rtol, peer_name,
                run_peer):
    entries = []
    integrated_gradients = reference_method("integrated_gradients")
    reference = None
    if integrated_gradients is not None:
        reference = integrated_gradients(net, x, xr, target=t, rule="auto")
        chosen = reference.options.get("rule", "auto") if isinstance(reference.options, dict) else "auto"
        estimate = None if reference.error_estimate is None else float(np.max(reference.error_estimate))
    for method in ig_methods:
        if method not in cc.CAPTUM_IG_METHODS:
            raise RuleError(f"ig_methods: unknown Captum method {method!r}; expected some of {cc.CAPTUM_IG_METHODS}")
        name = f"IntegratedGradients[{method}, n_steps={n_steps}]"
        entry = MethodComparison(name, peer_name, "refattr integrated_gradients(rule='auto')", "skipped")
        entries.append(entry)
        if reference is None:
            entry.notes.append("refattr.methods.integrated_gradients is not available in this version")
            continue
        entry.reference = (f"refattr integrated_gradients(rule='auto' -> {chosen!r}"
                           + ("" if estimate is None else f", error estimate {estimate:.1e}") + ")")
        rule = cc.REFATTR_RULE[method]
        # refattr's rule first: it refuses an n_steps too large to allocate before Captum tries
        same_rule = integrated_gradients(net, x, xr, target=t, rule=rule, n_steps=n_steps).values
        peer = run_peer(entry, lambda: cattr.IntegratedGradients(peer_model).attribute(
            tx(), tb(), target=torch_target, n_steps=n_steps, method=method))
        entry.reference_completeness_gap = _gap(net, x, xr, t, reference.values)
        if peer is None:
            continue
        entry.peer_completeness_gap = _gap(net, x, xr, t, peer)
        reproduction, components = _captum_ig(net, x, xr, t, method, n_steps, same_rule, reference, rtol)
        _classify(entry, peer, reference.values, reproduction, components, rtol, "Captum's IG convention")
    return entries


def _compare_mean_gradient(net, peer_model, cattr, x, xr, t, tx, tb, torch_target, n_steps, ig_methods, rtol,
                           peer_name, run_peer):
    """Captum's IntegratedGradients(multiply_by_inputs=False): the mean gradient along the straight
    path, (1/1) ∫ grad t(x' + α (x - x')) dα, which Captum approximates with its quadrature rule.
    refattr's reference is exact on piecewise-linear networks: the gradient is constant between the
    path's kinks (the breakpoints of ``integrated_gradients(rule="exact")``), so the mean is the sum
    over the pieces of their length times the gradient at their midpoint. Elsewhere it is skipped."""
    entries = []
    reference = _exact_mean_gradient(net, x, xr, t) if net.piecewise_linear else None
    for method in ig_methods:
        if method not in cc.CAPTUM_IG_METHODS:
            raise RuleError(f"ig_methods: unknown Captum method {method!r}; expected some of {cc.CAPTUM_IG_METHODS}")
        entry = MethodComparison(f"IntegratedGradients[{method}, n_steps={n_steps}, multiply_by_inputs=False]",
                                 peer_name, "refattr mean gradient along the path, exact (rule='exact' pieces)",
                                 "skipped")
        entries.append(entry)
        if reference is None:
            entry.notes.append("multiply_by_inputs=False: the mean gradient is compared on piecewise-linear networks "
                               "only (where refattr computes it exactly); pass multiply_by_inputs=True for this model")
            continue
        peer = run_peer(entry, lambda: cattr.IntegratedGradients(peer_model, multiply_by_inputs=False).attribute(
            tx(), tb(), target=torch_target, n_steps=n_steps, method=method))
        if peer is not None:
            _compare_mean_gradient_values(entry, net, x, xr, t, method, n_steps, peer, rtol, reference)
    return entries


def _compare_mean_gradient_values(entry, net, x, xr, t, method, n_steps, peer, rtol, reference=None):
    """Classify a peer's mean gradient along the path (Captum's IG with multiply_by_inputs=False)
    against the exact one of a piecewise-linear ``net``: Captum reproduced, its float32 weights,
    its formulas against refattr's rule, and the rule's approximation of the exact mean."""
    if reference is None:
        reference = _exact_mean_gradient(net, x, xr, t)
    rule = cc.REFATTR_RULE[method]
    reproduction = cc.captum_integrated_gradients(net, x, xr, t, method, n_steps, multiply=False)
    unrounded = cc.captum_integrated_gradients(net, x, xr, t, method, n_steps, float32=False, multiply=False)
    nodes, weights = quadrature.nodes_and_weights(rule, n_steps)
    same_rule = cc.path_integral(net, x, xr, t, nodes, weights, multiply=False)
    components = [Cause("convention", "Captum rounds its nodes or step weights to float32, even for float64 "
                                      "inputs", relative_difference(reproduction, unrounded))]
    d = relative_difference(unrounded, same_rule)
    components.append(Cause("convention" if method == "riemann_trapezoid" else
                            ("rounding" if d <= rtol else "unexplained"),
                            f"Captum's formulas in float64 vs refattr's rule {rule!r}"
                            + (" (its trapezoid weights sum to (n-1)/n)" if method == "riemann_trapezoid" else ""),
                            d))
    components.append(Cause("approximation", f"{method} with {n_steps} steps vs the exact mean gradient",
                            relative_difference(same_rule, reference)))
    _classify(entry, peer, reference, reproduction, components, rtol, "Captum's IG convention")


def _exact_mean_gradient(net, x, xr, t, held=None) -> np.ndarray:
    """∫ grad t(x' + α (x - x')) dα on a piecewise-linear network: the gradient at the midpoint of each
    piece between consecutive kinks, weighted by the piece's length. ``held``: the network has two
    inputs, ``held`` (fixed at its value along the path) and the moving one; the gradient is the
    moving input's."""
    integrated_gradients = reference_method("integrated_gradients")
    if held is None:
        breaks = integrated_gradients(net, x, xr, target=t, rule="exact").options["breakpoints"]
    else:
        breaks = integrated_gradients(net, (held, x), (held, xr), target=t, rule="exact").options["breakpoints"]
    rows, points, lengths = [], [], []
    for n, b in enumerate(breaks):
        edges = np.concatenate([[0.0], np.asarray(b, dtype=np.float64), [1.0]])
        mids = (edges[:-1] + edges[1:]) / 2
        rows.append(np.full(mids.size, n))
        points.append(xr[n] + mids.reshape((-1,) + (1,) * (x.ndim - 1)) * (x[n] - xr[n]))
        lengths.append(np.diff(edges))
    rows, lengths = np.concatenate(rows), np.concatenate(lengths)
    if held is None:
        grads = gradient(net, np.concatenate(points), t[rows]).values
    else:
        grads = gradient(net, (held[rows], np.concatenate(points)), t[rows]).values[1]
    out = np.zeros_like(x)
    np.add.at(out, rows, grads * lengths.reshape((-1,) + (1,) * (x.ndim - 1)))
    return out


def _captum_ig(net, x, xr, t, method, n_steps, same_rule, reference, rtol):
    """(Captum's IntegratedGradients(method, n_steps) reproduced, the parts of its difference from
    ``reference``): float32 rounding, trapezoid weights, the rule's approximation error.
    ``same_rule``: refattr's values with the rule Captum's method approximates."""
    rule = cc.REFATTR_RULE[method]
    chosen = reference.options.get("rule", "auto") if isinstance(reference.options, dict) else "auto"
    reproduction = cc.captum_integrated_gradients(net, x, xr, t, method, n_steps)
    unrounded = cc.captum_integrated_gradients(net, x, xr, t, method, n_steps, float32=False)
    components = [Cause("convention", "Captum rounds " + ("the step weights" if method == "gausslegendre" else
                                                         "the Riemann nodes and step weights")
                        + " to float32 (torch default dtype), even for float64 inputs",
                        relative_difference(reproduction, unrounded))]
    if method == "riemann_trapezoid":
        components.append(Cause("convention", f"Captum's trapezoid weights are 1/n with halved ends, summing to "
                                              f"(n-1)/n = {(n_steps - 1) / n_steps:.4g} instead of 1 (documented: "
                                              f"step sizes sum to at most one; the trapezoid rule on "
                                              f"linspace(0, 1, n) has 1/(n-1))",
                                relative_difference(unrounded, same_rule)))
    else:
        d = relative_difference(unrounded, same_rule)
        components.append(Cause("rounding" if d <= rtol else "unexplained",
                                f"Captum's formulas in float64 vs refattr's rule {rule!r}", d))
    components.append(Cause("approximation", f"{method} with {n_steps} steps vs the reference integral "
                                             f"(refattr rule {rule!r} vs {chosen!r})",
                            relative_difference(same_rule, reference.values)))
    return reproduction, components


# A user's own attributions ---------------------------------------------------------------------
GRADIENT_FAMILY = {"gradient": gradient, "input_x_gradient": input_x_gradient, "guided_backprop": guided_backprop,
                   "deconvnet": deconvnet}
ATTRIBUTION_METHODS = tuple(GRADIENT_FAMILY) + ("integrated_gradients", "deeplift")


@refuses_baselines
def compare_attributions(model: TorchModule | Network | OnnxModel | PathLike | bytes,
                         inputs: ArrayLike | TorchTensor, attributions: ArrayLike | TorchTensor,
                         method: AttributionMethod, baseline: ArrayLike | TorchTensor = 0.0,
                         targets: Target | TorchTensor = None, *, rule: str | None = None, n_steps: int = 50,
                         maxpool_rule: MaxPoolRule | None = None, rtol: float | None = None) -> Report:
    """Diff a user's own attributions against refattr's reference for ``method`` and explain the difference.

    The attributions are compared with the reference and with every way of computing ``method``
    that refattr knows, and the report names the one they equal:

    - integrated_gradients: each of refattr's fixed rules (left, right, midpoint, trapezoid,
      gauss_legendre) with ``n_steps`` steps (approximation), refattr's adaptive ``quad`` where
      the reference is the exact integral, and each of Captum's ``IntegratedGradients`` methods
      with ``n_steps`` steps (``gausslegendre``, Captum's default, and the four Riemann sums,
      with Captum's float32 nodes and weights);
    - deeplift: refattr's other DeepLIFT rules and max-pool rules (conventions), and Captum's
      DeepLift, whose known bugs (captum issues #1104, #1276) make the verdict ``peer_bug``
      where they change the result;
    - gradient: the absolute value of the gradient (Captum's Saliency default, ``abs=True``).

    Parameters
    ----------
    model : refattr.Sequential or Graph, torch.nn.Module or ONNX model (path, bytes, ModelProto)
    inputs, attributions : array_like or torch.Tensor, shape (N, *example_shape)
        Tensors are detached and copied to the CPU (a ``requires_grad`` tensor is fine).
    method : str
        One of "gradient", "input_x_gradient", "guided_backprop", "deconvnet",
        "integrated_gradients", "deeplift".
    baseline, targets : as for refattr's methods (``baseline``, ``target``); tensors accepted.
        ``baselines=`` is refused with an error that names both of its meanings.
    rule : str, optional
        Narrows the search. integrated_gradients: a refattr rule ("left", "right", "midpoint",
        "trapezoid", "gauss_legendre"; "exact", "piecewise", "quad" or "auto" for the reference integral) or a
        Captum method ("riemann_right", "gausslegendre", ...); a rule and its Captum counterpart
        are searched together. deeplift: "rescale" (the reference's rule by default) or
        "reveal_cancel". When the narrowed search finds nothing, a note says which other known
        computation the attributions equal, if any.
    n_steps : int
        Steps of the fixed integrated-gradients rules searched (Captum's default is 50).
    maxpool_rule : str, optional
        DeepLIFT's max-pool rule for refattr's reference (default "delta_routing" where needed);
        given, it also narrows the search.
    rtol : float, optional
        Rounding tolerance, 0 < rtol < 1; defaults to 1e-12 for float64 attributions and 1e-5
        for float32 ones.

    Raises
    ------
    NonFiniteError
        ``attributions`` holds NaN or Inf (the message gives the first index); nothing is computed.
    ArgumentError
        ``rtol`` is not a finite float in (0, 1).
    RuleError
        An unknown ``method`` or ``rule``.

    The verdict follows :mod:`refattr.interop.compare`: ``agree`` with the reference,
    ``approximation`` (equal to a fixed quadrature rule, which differs from the reference
    integral by its error), ``convention`` (equal to a documented convention), ``peer_bug``
    (equal to a peer's computation that a known bug makes wrong), or ``unexplained``.
    """
    attributions = _numpy(attributions)
    dtype = np.asarray(attributions).dtype
    values = as_float64(attributions, "attributions")  # NonFiniteError names the first NaN/Inf
    if rtol is None:
        rtol = FLOAT32_RTOL if dtype in (np.float32, np.float16) else FLOAT64_RTOL
    rtol = _check_rtol(rtol)
    if method not in ATTRIBUTION_METHODS:
        raise RuleError(f"method: unknown method {method!r}; expected one of {ATTRIBUTION_METHODS}")
    inputs, baseline, targets = _numpy(inputs), _numpy(baseline), _numpy(targets)
    functions = ()
    if isinstance(model, Network):
        net = model
    elif _is_onnx(model):
        net = _onnx_net(model)
    else:
        net, _, functions = _as_models(model, inputs)
    x, t = prepare(net, inputs, targets, name="inputs")
    forward_diff, forward_rtol, notes = (None, None, []) if isinstance(model, Network) else \
        _source_forward_diff(model, net, x)
    if values.shape != x.shape:
        raise RuleError(f"attributions: expected the inputs' shape {x.shape}, got {values.shape}")
    xr = broadcast_baseline(baseline, x)
    report = Report(peer="user attributions", reference=f"refattr {__version__}", n_examples=x.shape[0], rtol=rtol,
                    forward_max_rel_diff=forward_diff, forward_rtol=forward_rtol, notes=notes,
                    peer_label="the user's")
    if method in GRADIENT_FAMILY:
        ref = GRADIENT_FAMILY[method](net, x, t).values
        entry = MethodComparison(method, "user", f"refattr {method}", "agree")
        candidates = []
        if method == "gradient":
            candidates.append(_simple("convention", "the absolute value of the gradient (Captum's Saliency default "
                                                    "abs=True)", lambda: np.abs(ref), ref))
        _classify_candidates(entry, values, ref, candidates, [], rtol)
    elif method == "integrated_gradients":
        entry, ref, candidates, others = _ig_candidates(net, x, xr, t, rule, n_steps, rtol)
        _classify_candidates(entry, values, ref, candidates, others, rtol)
    else:
        entry, ref, candidates, others = _deeplift_candidates(net, x, xr, t, rule, maxpool_rule, rtol, functions)
        _classify_candidates(entry, values, ref, candidates, others, rtol)
    if method in ("integrated_gradients", "deeplift"):
        entry.reference_completeness_gap = _gap(net, x, xr, t, ref)
        entry.peer_completeness_gap = _gap(net, x, xr, t, values)
    report.entries.append(entry)
    return report


def _numpy(value):
    """A torch.Tensor as a NumPy array (detached, on the CPU, its dtype kept; bfloat16 as float32), so
    that ``requires_grad`` and GPU tensors are accepted; anything else unchanged. float64 conversion
    and checks follow where the value is used."""
    import sys

    torch = sys.modules.get("torch")  # a tensor exists only where torch is imported
    if torch is None or not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()


def _simple(kind, description, compute, reference):
    """A candidate whose whole difference from ``reference`` is one cause of ``kind``."""
    def run():
        v = compute()
        return v, [Cause(kind, description, relative_difference(v, reference))]

    return description, run


def _ig_candidates(net, x, xr, t, rule, n_steps, rtol):
    """(entry, reference values, candidates within ``rule``, the other candidates) for integrated gradients."""
    from ..quadrature import MIN_STEPS, RULES

    integrated_gradients = reference_method("integrated_gradients")
    if integrated_gradients is None:
        raise RuleError("method: refattr.methods.integrated_gradients is not available in this version")
    known = tuple(RULES) + ("exact", "quad", "piecewise", "auto") + cc.CAPTUM_IG_METHODS
    if rule is not None and rule not in known:
        raise RuleError(f"rule: unknown integrated-gradients rule {rule!r}; expected None (search every known one) or "
                        f"one of {known}")
    if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ArgumentError(f"n_steps: expected an int >= 1 (the steps of the fixed rules searched), got {n_steps!r}")
    reference = integrated_gradients(net, x, xr, target=t, rule="auto")
    chosen = reference.options.get("rule", "auto")
    entry = MethodComparison(f"integrated_gradients[{rule or 'any known rule'}, n_steps={n_steps}]", "user",
                             f"refattr integrated_gradients(rule='auto' -> {chosen!r})", "agree")
    fixed = {}

    def same_rule(r):
        if r not in fixed:
            fixed[r] = integrated_gradients(net, x, xr, target=t, rule=r, n_steps=n_steps).values
        return fixed[r]

    def refattr_rule(r):
        return _simple("approximation", f"refattr integrated_gradients(rule={r!r}, n_steps={n_steps}) (its difference "
                                        f"from the reference is the rule's approximation error)",
                       lambda: same_rule(r), reference.values)

    def captum(m):
        def run():
            return _captum_ig(net, x, xr, t, m, n_steps, same_rule(cc.REFATTR_RULE[m]), reference, rtol)

        default = " (Captum's default)" if m == "gausslegendre" else ""
        return (f"Captum's IntegratedGradients(method={m!r}, n_steps={n_steps}){default}, float32 nodes and weights "
                f"as Captum computes them", run)

    groups = {}   # a refattr rule and the Captum method that approximates it are one group
    for r in RULES:
        if n_steps >= MIN_STEPS[r]:
            groups.setdefault(r, []).append(refattr_rule(r))
    for m in cc.CAPTUM_IG_METHODS:
        if n_steps >= (1 if m == "gausslegendre" else 2):
            groups.setdefault(cc.REFATTR_RULE[m], []).append(captum(m))
    if chosen in ("exact", "piecewise"):
        groups["quad"] = [_simple("approximation", "refattr integrated_gradients(rule='quad') (adaptive quadrature "
                                                   "to rtol 1e-10)",
                                  lambda: _quiet_quad(integrated_gradients, net, x, xr, t),
                                  reference.values)]
    wanted = None if rule is None else {"auto": "quad", "exact": "quad", "piecewise": "quad"}.get(
        rule, cc.REFATTR_RULE.get(rule, rule))
    inside = [c for r, g in groups.items() if wanted in (None, r) for c in g]
    others = [c for r, g in groups.items() if wanted not in (None, r) for c in g]
    return entry, reference.values, inside, others


def _quiet_quad(integrated_gradients, net, x, xr, t):
    """rule="quad" run on purpose where "exact" applies (to show what adaptive quadrature gives): its
    RefattrWarning is for users who chose quad by mistake, not for this comparison."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefattrWarning)
        return integrated_gradients(net, x, xr, target=t, rule="quad").values


def _deeplift_candidates(net, x, xr, t, rule, maxpool_rule, rtol, functions=()):
    """(entry, reference values, candidates within ``rule`` / ``maxpool_rule``, the other candidates) for deeplift."""
    from ..layers.base import DEEPLIFT_RULES
    from ..layers.max_pool import MAXPOOL_RULES

    deeplift = reference_method("deeplift")
    if deeplift is None:
        raise RuleError("method: refattr.methods.deeplift is not available in this version")
    if rule is not None and rule not in DEEPLIFT_RULES:
        raise RuleError(f"rule: unknown DeepLIFT rule {rule!r}; expected None (rescale, and search every known rule) "
                        f"or one of {DEEPLIFT_RULES}")
    has_pool = any(is_max_pooling(la) for la in net.layers)
    ref_rule, ref_pool = rule or "rescale", maxpool_rule or ("delta_routing" if has_pool else None)
    reference = deeplift(net, x, xr, target=t, rule=ref_rule, maxpool_rule=ref_pool).values
    entry = MethodComparison(f"deeplift[{ref_rule}]", "user", f"refattr deeplift(rule={ref_rule!r}, "
                             f"maxpool_rule={ref_pool!r})", "agree")
    inside, others = [], []
    for r in DEEPLIFT_RULES:
        for pool in (MAXPOOL_RULES if has_pool else (None,)):
            if (r, pool) == (ref_rule, ref_pool):
                continue
            what = {"gradient": "the original DeepLIFT code's max-pool rule",
                    "tangermeme": "tangermeme's max-pool convention"}.get(pool, f"DeepLIFT's {r} rule")
            candidate = _simple("convention", f"refattr deeplift(rule={r!r}, maxpool_rule={pool!r}) ({what})",
                                lambda r=r, pool=pool: deeplift(net, x, xr, target=t, rule=r, maxpool_rule=pool).values,
                                reference)
            narrowed = rule in (None, r) and maxpool_rule in (None, pool)
            (inside if narrowed else others).append(candidate)

    def captum():
        reproduction, components, pure = _deeplift_chain(net, x, xr, t, functions=functions)
        d = relative_difference(pure, reference)
        return reproduction, components + [Cause("rounding" if d <= rtol else "unexplained",
                                                 "Rescale reproduced in the comparison layer vs refattr's deeplift", d)]

    captum_candidate = ("Captum 0.9.0's DeepLift(model).attribute (Rescale), its conventions and known bugs "
                        "reproduced exactly", captum)
    (inside if rule in (None, "rescale") and maxpool_rule in (None, "delta_routing") else others).append(
        captum_candidate)
    return entry, reference, inside, others


def _classify_candidates(entry, values, reference, candidates, others, rtol):
    """Set ``entry``'s verdict from the nearest of ``candidates`` ((description, run) pairs, ``run()``
    giving (values, the causes of their difference from ``reference``)); where none is within ``rtol``,
    a note names any of ``others`` that is (the search outside the user's ``rule``)."""
    entry.max_abs_diff = _max_abs_difference(values, reference)
    entry.max_rel_diff = relative_difference(values, reference)
    if entry.max_rel_diff <= rtol:
        entry.verdict = "agree"
        entry.causes.append(Cause("rounding", "equal to the reference up to rounding", entry.max_rel_diff))
        return
    found = _search(values, candidates, rtol)
    matches = [m for m in found if m[0] <= rtol]
    if matches:
        # A legitimate computation that explains the values wins over a peer's bug that does too
        # (on ReLU -> MaxPool2d, Captum's bug #1104 gives DeepLIFT's 'gradient' max-pool rule).
        matches.sort(key=lambda m: (m[1] == "peer_bug", m[0]))
        d, verdict, description, components = matches[0]
        entry.causes.append(Cause("rounding", f"equal (to {d:.1e}) to {description}", d))
        entry.causes += components
        entry.verdict = verdict
        entry.notes += [f"also equal (to {m[0]:.1e}) to {m[2]}" for m in matches[1:]]
        return
    if found:
        d, _, description, _ = min(found, key=lambda m: m[0])
        entry.notes.append(f"nearest known computation: {description}, {d:.1e} away (relative)")
    elsewhere = [m for m in _search(values, others, rtol) if m[0] <= rtol]
    if elsewhere:
        entry.notes.append(f"outside the rule asked for, equal (to {elsewhere[0][0]:.1e}) to {elsewhere[0][2]}: "
                           f"drop --rule / rule= to have it explained")
    entry.verdict = "unexplained"
    index = np.unravel_index(int(np.argmax(np.abs(values - reference))), values.shape)
    entry.causes.append(Cause("unexplained", f"matches neither the reference nor any of the {len(candidates)} known "
                                             f"computation(s) searched; largest difference at index "
                                             f"{tuple(int(i) for i in index)}", entry.max_rel_diff))


def _search(values, candidates, rtol):
    """(relative difference from ``values``, verdict, description, causes) for every candidate."""
    found = []
    for description, run in candidates:
        try:
            candidate, components = run()
        except UnsupportedLayerError:  # a convention defined for fewer layers than the network has
            continue
        verdict = _verdict(components, rtol)
        if verdict == "unexplained" and not any(c.kind == "unexplained" and c.size > rtol for c in components):
            verdict = "agree"  # every part is rounding
        found.append((relative_difference(values, candidate), verdict, description, components))
    return found


def _is_onnx(model) -> bool:
    import os

    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model).endswith(".onnx")
    if isinstance(model, (bytes, bytearray)):
        return True
    return type(model).__name__ == "ModelProto"


def _source_forward_diff(model, net, x, shapes=None) -> tuple[float, float, list[str]]:
    """(relative difference, tolerance, notes) between the source framework's forward pass and ``net``'s
    (``shapes``: the inputs' example shapes when ``net`` and ``x`` are packed from several inputs).

    Torch modules run in float64 (tolerance: rounding, FLOAT64_RTOL). ONNX models run in
    onnxruntime (ONNX's reference evaluator where onnxruntime has no float64 kernel) in the
    model's declared input type: a float32 model is compared at float32 precision (FLOAT32_RTOL),
    since refattr evaluates the same weights in float64. A model whose graph input fixes the batch
    size runs in batches of that size (a note says so).
    """
    if _is_onnx(model):
        from ._onnx_file import _load
        from .onnx_model import onnx_forward

        proto = _load(model)
        weights = {init.name for init in proto.graph.initializer}
        data = next(v for v in proto.graph.input if v.name not in weights)   # older exports list weights too
        float64 = data.type.tensor_type.elem_type == 11  # onnx.TensorProto.DOUBLE
        # several inputs: ``net`` and ``x`` are packed (``shapes``), the ONNX model takes a tuple
        outputs, engine = onnx_forward(proto, x if shapes is None else unpack(x, shapes), return_engine=True)
        notes = [f"the ONNX model ran in {engine}"] if "in batches of" in engine else []
        # a layer whose op the ONNX runtimes compute less precisely declares it (GELU: onnx_runtime_rtol)
        declared = [registry.info(layer).onnx_runtime_rtol or 0.0 for layer in net.layers
                    if registry.is_registered(layer)]
        return relative_difference(outputs, net(x)), max([FLOAT64_RTOL if float64 else FLOAT32_RTOL, *declared]), notes
    from .torch_model import torch_forward

    return relative_difference(torch_forward(model, x), net(x)), FLOAT64_RTOL, []


def _onnx_net(model):
    from .onnx_model import from_onnx

    return from_onnx(model)
