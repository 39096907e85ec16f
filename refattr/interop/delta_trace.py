"""Where a peer's convergence delta comes from: Captum's DeepLift replayed layer by layer in float64.

DeepLIFT's summation-to-delta holds at every cut of the network, not only at the input: for a
value v that every path from the input to the output passes through, the contributions of v's
units, sum_i (a_v(x) - a_v(x'))_i m_i, equal t(x) - t(x') whenever each layer's rule conserves what
it receives. Captum reports one number, the convergence delta at the input. This module replays
Captum's rules in float64 (:mod:`refattr.interop.captum_conventions`, which reproduces Captum's
hooks, conventions and known bugs exactly), takes the sum at every cut, and so finds the first layer
(from the output down) whose rule breaks the sum, the cells responsible (units whose rule leaks,
pooling windows whose winner differs between x and x') and their share of the delta. Captum is run
too, in float64 and in float32, so the report also says how much of the delta float32 adds.

Reference: Shrikumar, Greenside & Kundaje (2017), "Learning Important Features Through Propagating
Activation Differences", ICML (summation-to-delta, section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from .._typing import OnnxModel, Target, TorchModule
from ..errors import ArgumentError
from ..graph import Graph
from ..layers.base import ElementwiseLayer
from ..layers.max_pool import is_max_pooling
from ..methods._common import pick, prepare
from ..methods._values import is_cut
from ..network import Network
from ..validation import as_baselines, as_reference_sets, broadcast_baseline
from . import captum_conventions as cc

__all__ = ["LayerAccount", "DeltaTrace", "trace_delta"]


@dataclass
class LayerAccount:
    """Summation-to-delta at one cut of the network, and what the layer(s) above it broke.

    ``value``: the cut (a value every path passes through); ``layers``: the layer(s) between it
    and the next cut above; ``gap``: max over pairs of |sum of the cut's contributions - Δt|;
    ``leak``: max over pairs of |sum at the cut above - sum at this cut|, what those layers'
    rules lost or created; ``cells``: the cells responsible and their share of the leak, where the
    layer is one element-wise or max-pool layer; ``rules`` (at the first break): the Captum
    conventions or bugs whose removal closes the leak, with their shares.
    """

    value: str
    layers: str
    gap: float
    leak: float
    cells: str = ""
    rules: str = ""


@dataclass
class DeltaTrace:
    """The layer-by-layer account of a peer's convergence delta (see :func:`trace_delta`).

    Deltas are max over (example, reference) pairs of |sum of attributions - (t(x) - t(x'))|:
    ``delta_peer`` Captum's own in float64, ``delta_reproduced`` the float64 replay's (equal to
    it up to rounding when the replay is exact: ``replay_diff`` is the largest difference of the
    two per pair), ``delta_float32`` Captum's in float32 and ``float32_part`` the largest change
    float32 makes to a pair's delta. ``accounts`` run from the output to the input;
    ``first_break`` indexes the first account whose leak exceeds ``tolerance``.
    """

    peer: str
    method: str
    n_pairs: int
    delta_peer: float
    delta_reproduced: float
    replay_diff: float
    delta_float32: float | None
    float32_part: float | None
    tolerance: float
    accounts: list[LayerAccount] = field(default_factory=list)
    first_break: int | None = None

    def summary(self) -> str:
        if self.first_break is None:
            where = ("no layer breaks summation-to-delta in float64 under the peer's rules"
                     + ("" if self.float32_part is None else f"; float32 adds up to {self.float32_part:.1e}"))
            return f"{self.peer} {self.method}: delta {self.delta_peer:.1e}: {where}"
        a = self.accounts[self.first_break]
        text = (f"{self.peer} {self.method}: delta {self.delta_peer:.1e} (float64); it first breaks at {a.layers}, "
                f"which loses {a.leak:.1e} of t(x) - t(x') between {a.value} and the value above it")
        if a.rules:
            text += f"; cause: {a.rules}"
        if a.cells:
            text += f"; cells: {a.cells}"
        if self.float32_part is not None:
            text += f"; float32 adds up to {self.float32_part:.1e}"
        return text

    def table(self) -> str:
        lines = [f"{self.peer} {self.method} replayed in float64 on {self.n_pairs} (example, reference) pair(s); "
                 f"peer delta {self.delta_peer:.2e}, replay {self.delta_reproduced:.2e} (replay vs peer "
                 f"{self.replay_diff:.1e})"
                 + ("" if self.delta_float32 is None else
                    f", float32 delta {self.delta_float32:.2e} (float32 part {self.float32_part:.1e})"),
                 f"{'cut (sum of contributions taken here)':<44} {'|sum - Δt|':>11} {'leak above':>11}  layer(s) above"]
        for k, a in enumerate(self.accounts):
            mark = "  <- first break" if k == self.first_break else ""
            lines.append(f"{a.value[:44]:<44} {a.gap:>11.2e} {a.leak:>11.2e}  {a.layers}{mark}")
            for extra in (a.rules, a.cells):
                if extra:
                    lines.append(f"{'':<44} {'':>11} {'':>11}    {extra}")
        lines.append(self.summary())
        return "\n".join(lines)


def trace_delta(model: TorchModule | Network | OnnxModel, inputs: ArrayLike, baseline: ArrayLike = 0.0,
                targets: Target = None, *, baseline_samples: ArrayLike | None = None, peer: str = "captum",
                float32: bool = True, rtol: float = 1e-10) -> DeltaTrace:
    """Where a peer's DeepLIFT convergence delta comes from, layer by layer.

    The peers: Captum's DeepLift (one baseline) and DeepLiftShap (``baseline_samples``), and
    tangermeme's ``deep_lift_shap`` (``peer="tangermeme"``: the references of every sequence as
    ``baseline_samples`` (N, K, ...), or one ``baseline`` per sequence; one int target).

    Parameters
    ----------
    model : torch.nn.Module, refattr Sequential or Graph (one input), or an ONNX model
        As for :func:`~refattr.interop.compare_captum`.
    inputs : array_like, shape (N, *example_shape)
    baseline : scalar or array_like
        DeepLift's reference x' (ignored with ``baseline_samples``).
    targets : int, int array (N,), or None
    baseline_samples : array_like (K, *example_shape) or (N, K, *example_shape), optional
        DeepLiftShap's references: one set shared by the batch (one Captum call, its pairs in
        Captum's order) or one set per example (one Captum call per example, as for
        :func:`~refattr.interop.compare_captum`).
    peer : {"captum", "tangermeme"}
        Whose rules are replayed and whose delta is traced.
    float32 : bool
        Also run the peer on a float32 copy of the model and inputs, and report what float32 adds.
    rtol : float
        A layer "breaks" the sum where its leak exceeds ``rtol`` times the largest |Δt| (at least
        1e-300).

    Returns
    -------
    DeltaTrace
        ``table()`` lists every cut from the output to the input with its summation-to-delta gap
        and the leak of the layers above it, marks the first break, and names its cells;
        ``summary()`` is the last line.

    Notes
    -----
    A cut is a value every path from the input to the output passes through; on a chain every
    value is one, on a residual network the values between blocks. A leak between two cuts that
    are one layer apart is split over that layer's units (element-wise layers: unit i leaks
    Δy_i g_y,i - Δx_i g_x,i; max pooling: each window's Δy g minus what its cells received, for
    windows that do not overlap) and the cells that leak are counted, with the share of the leak
    in pooling windows whose winner differs between x and x' (the cells Captum's rules mishandle).
    """
    from .compare import _as_models, _check_rtol, _numpy
    from .torch_model import require_torch

    rtol = _check_rtol(rtol)
    torch = require_torch()
    inputs, baseline, targets, baseline_samples = (_numpy(v) for v in (inputs, baseline, targets, baseline_samples))
    net, peer_model, functions = _as_models(model, inputs)
    if net.n_inputs != 1:
        raise ArgumentError(f"model: trace_delta takes networks of one input; this one has {net.n_inputs}")
    x, t = prepare(net, inputs, targets, name="inputs")
    if peer not in ("captum", "tangermeme"):
        raise ArgumentError(f"peer: expected 'captum' or 'tangermeme', got {peer!r}")
    groups = _pair_groups(x, t, baseline, baseline_samples)
    if peer == "tangermeme":
        from . import tangermeme_conventions as tc

        if np.any(t != t[0]):
            raise ArgumentError("targets: tangermeme's deep_lift_shap explains one output for the whole batch; "
                                "pass one int")
        method, label, switches = "deep_lift_shap", "tangermeme", TANGERMEME_SWITCHES
        # tangermeme's rules act pair by pair (no batch-wide convention): all pairs as one group
        groups = [tuple(np.concatenate([g[i] for g in groups]) for i in range(3)) + (x, None)]

        def replay(xs, rs, ts, **options):
            return tc.tangermeme_multipliers(net, xs, rs[:, None], ts, output="every_value",
                                             function_nodes=functions, **options)

        def peer_deltas(module, dtype):
            return _tangermeme_delta(torch, module, x, groups, int(t[0]), dtype)
    else:
        method = "DeepLift" if baseline_samples is None else "DeepLiftShap"
        label, switches = "Captum", CAPTUM_SWITCHES

        def replay(xs, rs, ts, **options):
            return cc.captum_deeplift(net, xs, rs, ts, output="every_value", function_nodes=functions, **options)

        def peer_deltas(module, dtype):
            return np.concatenate([_captum_delta(torch, module, xs, rs, ts, xi, ri, method, dtype)
                                   for xs, rs, ts, xi, ri in groups])

    cuts = [v for v in range(net.n_inputs + len(net.layers) - 1, -1, -1) if is_cut(net, v)]
    sums, dt, cell_reports = _replay(net, groups, replay, cuts, cells=True)
    scale = max(float(np.max(np.abs(dt))), 1e-300)
    tolerance = rtol * scale

    peer64 = peer_deltas(peer_model, torch.float64)
    reproduced = sums[0] - dt
    delta32 = part32 = None
    if float32:
        peer32 = peer_deltas(_float32_copy(peer_model), torch.float32)
        delta32, part32 = float(np.max(np.abs(peer32))), float(np.max(np.abs(peer32 - peer64)))

    names = net.value_names()
    accounts, first = [], None
    for k, v in enumerate(cuts):
        above = cuts[k - 1] if k else None
        leak = 0.0 if above is None else float(np.max(np.abs(sums[above] - sums[v])))
        layers = "-" if above is None else _layers_between(net, v, above)
        cells = ("" if above is None or above not in cell_reports or leak <= tolerance
                 else _describe_cells(cell_reports[above], tolerance))
        accounts.append(LayerAccount(_value_label(net, names, v), layers, float(np.max(np.abs(sums[v] - dt))), leak,
                                     cells))
        if first is None and leak > tolerance:
            first = k
    if first is not None:
        accounts[first].rules = _rules_responsible(net, groups, replay, switches, label, cuts[first - 1],
                                                   cuts[first], accounts[first].leak, tolerance)
    return DeltaTrace(peer=label, method=method, n_pairs=dt.shape[0], delta_peer=float(np.max(np.abs(peer64))),
                      delta_reproduced=float(np.max(np.abs(reproduced))),
                      replay_diff=float(np.max(np.abs(reproduced - peer64))), delta_float32=delta32,
                      float32_part=part32, tolerance=tolerance, accounts=accounts, first_break=first)


#: Captum's conventions and bugs that :func:`refattr.interop.captum_conventions.captum_deeplift`
#: can switch off, as (option, value that switches it off, what it is).
CAPTUM_SWITCHES = (
    ("stale_grad_output", False, "Captum issue #1104: on adjacent hooked modules the upstream rule multiplies the "
                                 "plain gradient of the downstream module, recorded before its hook rewrote it"),
    ("first_row_fallback", False, "Captum issue #1276: the max-pool fallback (|Δx| < 1e-10) takes the gradient of "
                                  "the batch's first row for every row"),
    ("assign_unpool", False, "Captum un-pools max-pool contributions by assignment, dropping all but one window's "
                             "share where overlapping windows share a winner"),
    ("shared_input_replaced", False, "a hooked module's hook replaces the whole gradient of an input tensor other "
                                     "modules read too"),
    ("swish_as_gradient", False, "no DeepLift rule for the module (or a function in forward): the plain gradient"),
    ("softmax_as_captum", False, "Captum's Softmax rule (a mean over the whole doubled batch)"),
    ("joins_as_gradient", False, "a product of two tensors passes its gradient"),
    ("eps", 0.0, "the gradient fallback where 0 < |Δx| < 1e-10"),
)


#: tangermeme's conventions that :func:`refattr.interop.tangermeme_conventions.tangermeme_multipliers`
#: can switch off.
TANGERMEME_SWITCHES = (
    ("plain_gradient_for_unknown", False, "tangermeme treats the module (or a function in forward) as linear: the "
                                          "plain gradient instead of a DeepLIFT rule"),
    ("eps", 0.0, "the gradient fallback where 0 < |Δx| < 1e-6"),
    ("pool_gradient_at_zero", False, "tangermeme's max-pool convention (the plain gradient at a winner with Δx == "
                                     "0)"),
)


def _replay(net, groups, replay, cuts, cells=False, **options):
    """The peer's rules replayed on every pair: ({cut: per-pair sum of contributions}, Δt per pair,
    {value: per-call cell leaks of the one layer below it} when ``cells``)."""
    sums, dts, cell_reports = {v: [] for v in cuts}, [], {}
    for xs, rs, ts, _, _ in groups:
        trace, trace_ref, grads = replay(xs, rs, ts, **options)
        dts.append(pick(trace.output, ts) - pick(trace_ref.output, ts))
        for v in cuts:
            sums[v].append(_contribution_sums(trace.activations[v] - trace_ref.activations[v], grads[v][0]))
        if cells:
            for hi, lo in zip(cuts, cuts[1:]):
                if hi - lo == 1 and hi >= net.n_inputs:
                    cell_reports.setdefault(hi, []).append(_cell_leaks(net, hi - net.n_inputs, trace, trace_ref, grads))
    return {v: np.concatenate(s) for v, s in sums.items()}, np.concatenate(dts), cell_reports


def _rules_responsible(net, groups, replay, switches, label, hi, lo, leak, tolerance) -> str:
    """The peer's conventions or bugs whose removal alone closes the leak between cuts ``lo`` and
    ``hi`` (or shrinks it most), each with the share of the leak it accounts for."""
    found = []
    for option, off, what in switches:
        sums, _, _ = _replay(net, groups, replay, [hi, lo], **{option: off})
        left = float(np.max(np.abs(sums[hi] - sums[lo])))
        if left < leak * (1 - 1e-9):
            found.append((leak - left, left <= tolerance, what))
    if not found:
        return f"no single {label} convention or known bug explains it"
    found.sort(key=lambda f: -f[0])
    return "; ".join(f"{what} ({'removing it closes the leak' if closes else f'{gain / leak:.0%} of the leak'})"
                     for gain, closes, what in found)


def _pair_groups(x, t, baseline, baseline_samples):
    """One entry per Captum call: (pair inputs, pair references, pair targets, the call's inputs,
    the call's baselines); pairs are example-major (row n * K + k), as Captum expands them."""
    if baseline_samples is None:
        xr = broadcast_baseline(baseline, x)
        return [(x, xr, t, x, xr)]
    if np.ndim(baseline_samples) == x.ndim + 1:
        sets = as_reference_sets(baseline_samples, x)
        calls = [(x[n:n + 1], sets[n], t[n:n + 1]) for n in range(x.shape[0])]
    else:
        calls = [(x, as_baselines(baseline_samples, x), t)]
    groups = []
    for xs, refs, ts in calls:
        k = refs.shape[0]
        rows = np.tile(refs, (xs.shape[0],) + (1,) * (xs.ndim - 1))
        groups.append((np.repeat(xs, k, axis=0), rows, np.repeat(ts, k), xs, np.ascontiguousarray(refs)))
    return groups


def _contribution_sums(delta, grad):
    return (delta * grad).reshape(delta.shape[0], -1).sum(axis=1)


def _captum_delta(torch, model, xs, rs, ts, x_call, refs_call, method, dtype):
    """Captum's own convergence delta per pair, computed in ``dtype``."""
    from captum.attr import DeepLift, DeepLiftShap
    import warnings

    inputs = torch.tensor(x_call if method == "DeepLiftShap" else xs, dtype=dtype, requires_grad=True)
    bases = torch.tensor(refs_call if method == "DeepLiftShap" else rs, dtype=dtype)
    # DeepLiftShap takes one target per example: the pair targets repeat each example's K times
    target = torch.from_numpy(ts[:: max(1, ts.shape[0] // x_call.shape[0])] if method == "DeepLiftShap" else ts)
    explainer = DeepLiftShap(model) if method == "DeepLiftShap" else DeepLift(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # Captum warns on every call that it sets hooks
        _, delta = explainer.attribute(inputs, bases, target=target, return_convergence_delta=True)
    return delta.detach().double().numpy().reshape(-1)


def _tangermeme_delta(torch, model, x, groups, target, dtype):
    """tangermeme's own delta per pair: its raw multipliers times Δx, summed, minus Δt, all in
    ``dtype`` (the pairs of the one group, (N * K) rows example-major, as its (N, K) references)."""
    import warnings

    from tangermeme.deep_lift_shap import deep_lift_shap

    (xs, rs, _, _, _), = groups
    k = xs.shape[0] // x.shape[0]
    tx = torch.tensor(x, dtype=dtype)
    refs = torch.tensor(rs.reshape((x.shape[0], k) + x.shape[1:]), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = deep_lift_shap(model, tx, target=target, references=refs, raw_outputs=True, device="cpu",
                           warning_threshold=float("inf"))
    with torch.no_grad():
        dt = (model(tx)[:, target].repeat_interleave(k) - model(refs.reshape((-1,) + x.shape[1:]))[:, target])
    contributions = (m.reshape((-1,) + x.shape[1:]) * (tx.repeat_interleave(k, dim=0) - refs.reshape(
        (-1,) + x.shape[1:]))).reshape(xs.shape[0], -1).sum(dim=1)
    return (contributions - dt).detach().double().numpy()


def _float32_copy(module):
    import copy

    return copy.deepcopy(module).float().eval()


def _value_label(net, names, v) -> str:
    if v == 0:
        return "input"
    if v == net.n_inputs + len(net.layers) - 1:
        return f"output ({names[v]})" if isinstance(net, Graph) else "output"
    layer = net.layers[v - net.n_inputs]
    return (f"{names[v]!r} ({type(layer).__name__} output)" if isinstance(net, Graph)
            else f"layers[{v - 1}] output ({type(layer).__name__})")


def _layers_between(net, lo, hi) -> str:
    """The layers computing values in (lo, hi], by name (graphs) or index (chains)."""
    js = range(lo - net.n_inputs + 1, hi - net.n_inputs + 1)
    if isinstance(net, Graph):
        return ", ".join(f"{net.nodes[j].name!r} ({type(net.layers[j]).__name__})" for j in js)
    return ", ".join(f"layers[{j}] ({type(net.layers[j]).__name__})" for j in js)


def _pool_above(net, j):
    """The max-pool node reading node j's output alone, or None."""
    readers = [r for r, args in enumerate(net.node_args) if net.n_inputs + j in args]
    if len(readers) == 1 and is_max_pooling(net.layers[readers[0]]):
        return readers[0]
    return None


def _winner_change_cells(trace, trace_ref, pool_j, shape):
    """Boolean mask (of the pool's input shape) of the cells of windows whose winner differs
    between x and x': both winners of such a window."""
    argmax, argmax_ref = trace.caches[pool_j][0], trace_ref.caches[pool_j][0]
    n, c = shape[0], shape[1]
    mask = np.zeros((n, c, int(np.prod(shape[2:]))), dtype=bool)
    differ = argmax != argmax_ref
    flat_a, flat_r = argmax.reshape(n, c, -1), argmax_ref.reshape(n, c, -1)
    d = differ.reshape(n, c, -1)
    for cells in (flat_a, flat_r):
        nn_, cc_, ww = np.nonzero(d)
        mask[nn_, cc_, cells[nn_, cc_, ww]] = True
    return mask.reshape(shape), int(np.sum(differ)), differ.size


def _cell_leaks(net, j, trace, trace_ref, grads):
    """Per-cell leaks of node j (one element-wise layer, or a max pool with non-overlapping
    windows) as (kind, leak array, mask of cells in windows whose winner differs, counts)."""
    layer = net.layers[j]
    lo, hi = net.node_args[j][0], net.n_inputs + j
    dx = trace.activations[lo] - trace_ref.activations[lo]
    dy = trace.activations[hi] - trace_ref.activations[hi]
    if isinstance(layer, ElementwiseLayer):
        leak = dy * grads[hi][0] - dx * grads[lo][0]
        pool = _pool_above(net, j)
        if pool is None:
            return ("unit", leak, None, None)
        mask, n_diff, n_windows = _winner_change_cells(trace, trace_ref, pool, leak.shape)
        return ("unit", leak, mask, (n_diff, n_windows))
    if is_max_pooling(layer):
        plane = getattr(layer, "plane", layer)
        shape = dx.shape
        n, c = shape[0], shape[1]
        h, w = (1, shape[-1]) if dx.ndim == 3 else shape[2:]
        cells = plane._window_cells(h, w).reshape(-1, plane._window_cells(h, w).shape[-1])
        flat = cells[cells >= 0]
        if np.unique(flat).size != flat.size:
            return None                          # overlapping windows: no per-window split
        received = (dx * grads[lo][0]).reshape(n, c, -1)
        taken = np.where(cells >= 0, 1.0, 0.0)
        per_window = (received[:, :, np.maximum(cells, 0)] * taken).sum(axis=-1)
        leak = (dy * grads[hi][0]).reshape(n, c, -1) - per_window
        differ = (trace.caches[j][0] != trace_ref.caches[j][0]).reshape(n, c, -1)
        return ("window", leak, differ, (int(np.sum(differ)), differ.size))
    return None


def _describe_cells(reports, tolerance) -> str:
    reports = [r for r in reports if r is not None]
    if not reports:
        return ""
    kind = reports[0][0]
    leaks = [r[1].reshape(r[1].shape[0], -1) for r in reports]
    total = sum(float(np.sum(np.abs(lk))) for lk in leaks)
    if total == 0.0:
        return ""
    # a cell leaks when its own leak exceeds the layer's tolerance shared evenly over its cells
    cell_tol = tolerance / max(1, leaks[0].shape[1])
    n_leaking = sum(int(np.sum(np.abs(lk) > cell_tol)) for lk in leaks)
    n_cells = sum(lk.size for lk in leaks)
    what = "units" if kind == "unit" else "windows"
    text = f"{n_leaking} of {n_cells} {what} leak"
    if reports[0][2] is not None:
        inside = sum(float(np.sum(np.abs(r[1]) * r[2])) for r in reports)
        n_diff = sum(r[3][0] for r in reports)
        n_windows = sum(r[3][1] for r in reports)
        where = "in units of" if kind == "unit" else "in"
        text += (f"; {inside / total:.0%} of the leak is {where} the {n_diff} of {n_windows} pooling windows whose "
                 f"winner differs between x and x'")
    return text
