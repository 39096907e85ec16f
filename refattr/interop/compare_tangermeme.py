"""Grade tangermeme's ``deep_lift_shap`` against refattr's reference, per (sequence, reference) pair.

The verdicts and causes are those of :mod:`refattr.interop.compare`. tangermeme's rules are
reproduced in :mod:`refattr.interop.tangermeme_conventions`; nothing here changes refattr's
reference results.
"""

from __future__ import annotations

import copy
import numbers
import warnings

import numpy as np
from numpy.typing import ArrayLike

from .. import __version__
from .._typing import TorchModule, TorchTensor
from ..errors import ArgumentError, NonFiniteError, RefattrError, ShapeError
from ..layers.max_pool import is_max_pooling
from ..methods.deeplift import deeplift
from ..methods.hypothetical import hypothetical_contributions
from . import tangermeme_conventions as tc
from .compare import (FLOAT32_RTOL, FLOAT64_RTOL, Cause, MethodComparison, Report, _as_models, _check_rtol, _classify,
                      _numpy, relative_difference)

__all__ = ["compare_tangermeme", "TANGERMEME_QUANTITIES"]

#: The quantities compared per pair, in report order.
TANGERMEME_QUANTITIES = ("multipliers", "contributions", "hypothetical", "projected")


def _load_tangermeme():
    try:
        import tangermeme
        from tangermeme.deep_lift_shap import deep_lift_shap
        from tangermeme.ersatz import dinucleotide_shuffle
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("compare_tangermeme needs tangermeme: pip install tangermeme==1.6.0 (it pulls pandas, "
                          "scikit-learn and pyfaidx; install torch first so that it keeps your torch)") from exc
    return tangermeme.__version__, deep_lift_shap, dinucleotide_shuffle


def compare_tangermeme(model: TorchModule, x: ArrayLike | TorchTensor, *, references: ArrayLike | None = None,
                       n_shuffles: int = 20, target: int = 0, dtype: str = "float64", random_state: int = 0,
                       args: tuple = (), rtol: float | None = None) -> Report:
    """Run tangermeme's ``deep_lift_shap`` and refattr's DeepLIFT on the same pairs; classify every difference.

    Parameters
    ----------
    model : torch.nn.Module
        Imported with :func:`~refattr.interop.from_torch`; tangermeme runs a copy in ``dtype``.
    x : array_like or torch.Tensor, shape (N, 4, L)
        One-hot sequences (tangermeme's ``X``).
    references : array_like, shape (N, K, 4, L), optional
        One set of references per sequence. Default: tangermeme draws ``n_shuffles`` dinucleotide
        shuffles per sequence (its ``random_state``) and returns them, so both sides use the same.
    target : int
        The output explained, ``model(x)[:, target]``.
    dtype : "float64" or "float32"
        The dtype of tangermeme's run (refattr always computes in float64). Verdict tolerance
        1e-12 or 1e-5 relative unless ``rtol`` is given.
    args : tuple of arrays
        The model's other inputs, (N, ...) each: tangermeme's ``args``, held unchanged in both halves
        of its batch (they get no references and no attributions; the report says so).

    Returns
    -------
    Report
        Entries ``deep_lift_shap[<quantity>]`` for the multipliers m, the contributions m (x - x'),
        the hypothetical contributions m - sum_c x' m and the projected ones (hypothetical times x),
        each over every pair (``max_rel_diff`` is the largest over pairs of max |diff| / max |reference|).
        The reference is refattr's ``hypothetical_contributions(maxpool_rule="delta_routing")`` per
        pair. tangermeme is reproduced in float64 (its rules, the winners of its float32 max pools),
        then its conventions are removed one at a time, each sized: the plain gradient of the layers
        it treats as linear (``F.relu`` and other functions in ``forward``, modules outside its rule
        table), its Rescale fallback below |Δx| = 1e-6, and its max-pool convention (refattr's
        ``maxpool_rule="tangermeme"``: the plain gradient at a falling window's Δx == 0 winner).
        With ``dtype="float32"`` an entry ``float32 winner flips`` names every pool window whose
        winner differs between tangermeme's float32 and refattr's float64 evaluation of the same
        input, with the gap, the error it puts in the pair's contributions (relative to its largest
        contribution) and the pair's delta, which cannot reveal it.

    Examples
    --------
    ::

        report = compare_tangermeme(torch_model, x, n_shuffles=20, random_state=0)
        print(report.table())
        assert report.all_explained, report.unexplained
    """
    if dtype not in ("float64", "float32"):
        raise ArgumentError(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    rtol = _check_rtol(rtol if rtol is not None else (FLOAT64_RTOL if dtype == "float64" else FLOAT32_RTOL))
    for name, value, low in (("n_shuffles", n_shuffles, 1), ("target", target, 0), ("random_state", random_state, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
            raise ArgumentError(f"{name}: expected an int >= {low}, got {value!r}")
    version, deep_lift_shap, shuffle = _load_tangermeme()
    from .torch_model import require_torch

    torch = require_torch()
    x = np.asarray(_numpy(x), dtype=np.float64)
    extra = tuple(np.asarray(_numpy(a), dtype=np.float64) for a in (args or ()))
    if x.ndim != 3:
        raise ShapeError(f"x: expected one-hot sequences (N, alphabet, length), got shape {x.shape}")
    if references is not None:
        references = np.asarray(_numpy(references), dtype=np.float64)
        if references.ndim != 4 or references.shape[0] != x.shape[0] or references.shape[2:] != x.shape[1:] \
                or references.shape[1] < 1:
            raise ShapeError(f"references: expected shape (N, K, {x.shape[1]}, {x.shape[2]}) = ({x.shape[0]}, K, "
                             f"{x.shape[1]}, {x.shape[2]}) (K references per sequence, K >= 1), got "
                             f"{references.shape}")
        if not np.all(np.isfinite(references)):
            raise NonFiniteError("references: holds non-finite values; expected finite float64 values")
    net, model64, functions = _as_models(model, (x,) + extra if extra else x)
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"model: tangermeme runs torch modules; got {type(model).__name__}")
    peer_model = model64 if dtype == "float64" else copy.deepcopy(model).float().eval()
    torch_dtype = getattr(torch, dtype)
    tx = torch.from_numpy(x).to(torch_dtype)
    targs = tuple(torch.from_numpy(a).to(torch_dtype) for a in extra) or None
    given = references is not None
    report = Report(peer=f"tangermeme {version} deep_lift_shap, {dtype} (torch {torch.__version__})",
                    reference=f"refattr {__version__}", n_examples=x.shape[0], rtol=rtol, forward_max_rel_diff=None,
                    forward_rtol=FLOAT32_RTOL if dtype == "float32" else None, peer_label="tangermeme's")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = deep_lift_shap(peer_model, tx, args=targs, target=target, raw_outputs=True, device="cpu",
                             references=torch.from_numpy(np.asarray(references, dtype=np.float64)).to(torch_dtype)
                             if given else shuffle, n_shuffles=n_shuffles, return_references=True,
                             random_state=random_state, warning_threshold=float("inf"))
    seen = sorted({" ".join(str(w.message).split())[:200] for w in caught})
    report.notes += [f"tangermeme warned: {m}" for m in seen]
    peer_m = out.attributions.double().numpy()
    refs = out.references.double().numpy()
    n, k = refs.shape[:2]
    with torch.no_grad():
        forward = peer_model(tx, *(targs or ())).double().numpy()
    report.forward_max_rel_diff = relative_difference(forward, net((x,) + extra if extra else x))

    t = np.full(n, target)
    pool = any(is_max_pooling(layer) for layer in net.layers)
    quantities = _reference(net, x, refs, extra, t, pool, report)
    winners, flips = ({}, [])
    if dtype == "float32" and pool:
        winners, flips = _float32_winners(torch, net, model64, peer_model, x, refs, extra)
    chain = _chain(net, x, refs, extra, t, functions, winners, report)

    def per_pair(m):
        return _quantities(m, x, refs)

    peer_q = per_pair(peer_m)
    chain_q = [(kind, text, issue, per_pair(m)) for kind, text, issue, m in chain]
    for name in TANGERMEME_QUANTITIES:
        entry = MethodComparison(f"deep_lift_shap[{name}]", f"tangermeme {version}",
                                 f"refattr deeplift(rule='rescale'{', maxpool_rule=' + repr('delta_routing') if pool else ''})"
                                 f" per pair, {n} x {k} pairs", "agree")
        entry.reference_completeness_gap = quantities["gap"]
        entry.peer_completeness_gap = _pair_gap(peer_q["contributions"], quantities["delta_t"])
        components, previous = [], chain_q[0][3][name]
        for kind, text, issue, q in chain_q[1:]:
            components.append(Cause(kind, text, relative_difference(previous, q[name]), issue))
            previous = q[name]
        d = relative_difference(previous, quantities[name])
        components.append(Cause("rounding" if d <= FLOAT64_RTOL else "unexplained",
                                "tangermeme's rules with its conventions removed vs refattr's reference", d))
        _classify(entry, _flat(peer_q[name]), _flat(quantities[name]), _flat(chain_q[0][3][name]),
                  components, rtol, "tangermeme's deep_lift_shap rules")
        report.entries.append(entry)
    if dtype == "float32":
        report.entries.append(_flip_entry(flips, peer_q, quantities, version, rtol, x, refs))
    return report


def _flat(q):
    return q.reshape((-1,) + q.shape[2:])


def _quantities(m, x, refs):
    contributions = m * (x[:, None] - refs)
    hypothetical = tc.hypothetical_from_multipliers(m, refs)
    return {"multipliers": m, "contributions": contributions, "hypothetical": hypothetical,
            "projected": hypothetical * x[:, None]}


def _pair_gap(contributions, delta_t):
    """max over pairs of |sum(C) - Δt|."""
    sums = contributions.reshape(contributions.shape[:2] + (-1,)).sum(axis=2)
    return float(np.max(np.abs(sums - delta_t)))


def _reference(net, x, refs, extra, t, pool, report):
    """refattr's quantities per pair, (N, K, ...) each, and each pair's Δt and completeness gap."""
    n, k = refs.shape[:2]
    x_rep, r_flat = np.repeat(x, k, axis=0), refs.reshape((n * k,) + x.shape[1:])
    t_rep = np.repeat(t, k)
    rule = "delta_routing" if pool else None
    shape = (n, k) + x.shape[1:]
    if extra:
        others = tuple(np.repeat(a, k, axis=0) for a in extra)
        result = deeplift(net, (x_rep,) + others, (r_flat,) + others, target=t_rep, maxpool_rule=rule)
        m = result.multipliers[0].reshape(shape)
        q = _quantities(m, x, refs)
        delta_t = net((x_rep,) + others)[np.arange(n * k), t_rep] - net((r_flat,) + others)[np.arange(n * k), t_rep]
        names = list(net.inputs)
        report.notes.append(
            f"tangermeme attributes only the first input ({names[0]!r}): the other inputs {names[1:]} are passed as "
            f"its args and repeated unchanged in the reference half of its batch, so they get no references and no "
            f"attributions; its contributions sum to f(x, ...) - mean_k f(x'_k, ...) with the other inputs held at "
            f"their values. refattr's reference here holds them at their values too (Δ = 0).")
    else:
        result = hypothetical_contributions(net, x_rep, baseline=r_flat, target=t_rep, maxpool_rule=rule)
        q = {"multipliers": result.multipliers.reshape(shape), "contributions": result.contributions.reshape(shape),
             "hypothetical": result.hypothetical.reshape(shape), "projected": result.projected.reshape(shape)}
        delta_t = net(x_rep)[np.arange(n * k), t_rep] - net(r_flat)[np.arange(n * k), t_rep]
    q["delta_t"] = delta_t.reshape(n, k)
    q["gap"] = _pair_gap(q["contributions"], q["delta_t"])
    return q


def _chain(net, x, refs, extra, t, functions, winners, report):
    """[(kind, description, issue, multipliers)]: tangermeme reproduced, then one convention removed at a time."""
    options = {"extra_inputs": extra, "function_nodes": functions}
    try:
        steps = [(None, "reproduction", None, tc.tangermeme_multipliers(net, x, refs, t, winners=winners, **options))]
    except RefattrError as exc:
        report.notes.append(f"tangermeme's rules could not be reproduced: {exc}")
        raise
    if winners:
        steps.append(("winner_flip", "float32 winner flips at near-ties: tangermeme's float32 max pools pick another "
                      "winner than float64 in some windows (entry 'float32 winner flips')", None,
                      tc.tangermeme_multipliers(net, x, refs, t, **options)))
    linear = tc.treated_as_linear(net, functions)
    if linear:
        report.notes.append(f"tangermeme treats {', '.join(linear)} as linear: it hooks only nn modules of its rule "
                            f"table, so these pass their plain gradient and its contributions do not sum to the "
                            f"output's difference (write them as nn modules, one per call)")
        options["plain_gradient_for_unknown"] = False
        steps.append(("peer_bug", f"tangermeme passes the plain gradient through {', '.join(linear)} (no module in "
                      f"its rule table: treated as linear)", "tangermeme issues #13 and #47 (functions in forward "
                      f"get no rule)", tc.tangermeme_multipliers(net, x, refs, t, **options)))
    options["eps"] = 0.0
    steps.append(("convention", f"tangermeme's Rescale keeps the plain gradient at x where |Δx| < "
                  f"{tc.TANGERMEME_RESCALE_EPS:g}", None, tc.tangermeme_multipliers(net, x, refs, t, **options)))
    if any(is_max_pooling(layer) for layer in net.layers):
        options["pool_gradient_at_zero"] = False
        steps.append(("convention", "tangermeme's max-pool convention: where a window's output falls while its "
                      "input winner has Δx == 0 it passes the plain gradient there (refattr's "
                      "maxpool_rule='tangermeme'); contributions unchanged", None,
                      tc.tangermeme_multipliers(net, x, refs, t, **options)))
    return steps


def _float32_winners(torch, net, model64, model32, x, refs, extra):
    """The float32 run's pool winners in refattr's cache format, and a description of every flip."""
    n, k = refs.shape[:2]
    x_rep, r_flat = np.repeat(x, k, axis=0), refs.reshape((n * k,) + x.shape[1:])
    others = tuple(np.repeat(a, k, axis=0) for a in extra)
    batch = np.concatenate([x_rep, r_flat])
    indices = {}
    for tag, module, dt in (("64", model64, torch.float64), ("32", model32, torch.float32)):
        indices[tag] = _pool_indices(torch, module, torch.from_numpy(batch).to(dt),
                                     tuple(torch.from_numpy(np.concatenate([a, a])).to(dt) for a in others))
    pools = [j for j, layer in enumerate(net.layers) if is_max_pooling(layer)]
    if len(indices["32"]) != len(pools):
        return {}, [f"the model's {len(indices['32'])} max-pool calls do not match the {len(pools)} imported pool "
                    f"layers one to one; flips not traced"]
    trace = net.trace(((batch,) + tuple(np.concatenate([a, a]) for a in others)) if others else batch)
    winners, flips = {}, []
    for j, i32, i64 in zip(pools, indices["32"], indices["64"]):
        cells64 = trace.caches[j][0]
        cells32 = i32.reshape(cells64.shape)
        if not np.array_equal(cells32, i64.reshape(cells64.shape)) and not np.array_equal(cells64, i64.reshape(cells64.shape)):
            flips.append(f"node {j}: torch's float64 winners differ from refattr's; flips not traced")
            continue
        if np.array_equal(cells32, cells64):
            continue
        winners[j] = (cells32[:n * k], cells32[n * k:])
        a = trace.activations[net.node_args[j][0]].reshape(2 * n * k, cells64.shape[1], -1)
        for row, c, *window in zip(*np.nonzero(cells32 != cells64)):
            v64 = a[row, c, cells64[(row, c, *window)]]
            v32 = a[row, c, cells32[(row, c, *window)]]
            half = "sequence" if row < n * k else "reference"
            pair = row % (n * k)
            flips.append({"node": j, "pair": (pair // k, pair % k), "half": half, "channel": int(c),
                          "window": tuple(int(w) for w in window), "gap": float((v64 - v32) / abs(v64))})
    return winners, flips


def _pool_indices(torch, module, batch, others):
    """Every MaxPool1d / MaxPool2d call's winners (flat input index), in call order."""
    found, handles = [], []
    functional = torch.nn.functional

    def hook(mod, inputs, output):
        pool = functional.max_pool1d if isinstance(mod, torch.nn.MaxPool1d) else functional.max_pool2d
        found.append(pool(inputs[0], mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                          True)[1].numpy())

    for sub in module.modules():
        if isinstance(sub, (torch.nn.MaxPool1d, torch.nn.MaxPool2d)):
            handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(batch, *others)
    finally:
        for h in handles:
            h.remove()
    return found


def _flip_entry(flips, peer_q, quantities, version, rtol, x, refs):
    entry = MethodComparison("float32 winner flips", f"tangermeme {version}",
                             "refattr's float64 winners of every pool window", "agree")
    traced = [f for f in flips if isinstance(f, dict)]
    entry.notes += [f for f in flips if not isinstance(f, dict)]
    if not traced:
        entry.causes.append(Cause("rounding", "no pool window picks another winner in float32 than in float64", 0.0))
        return entry
    pairs = sorted({f["pair"] for f in traced})
    worst = 0.0
    for (i, kk) in pairs:
        ref_c = quantities["contributions"][i, kk]
        err = float(np.max(np.abs(peer_q["contributions"][i, kk] - ref_c)) / np.max(np.abs(ref_c)))
        delta = float(abs(peer_q["contributions"][i, kk].sum() - quantities["delta_t"][i, kk]))
        gaps = [f["gap"] for f in traced if f["pair"] == (i, kk)]
        where = [(f["node"], f["half"], f["channel"], f["window"]) for f in traced if f["pair"] == (i, kk)]
        entry.notes.append(f"pair (sequence {i}, reference {kk}): {len(gaps)} window(s) {where} flip, float64 gap "
                           f"{max(gaps):.2g} relative; contributions off by {err:.3g} of the pair's largest "
                           f"contribution while its delta |sum C - Δt| is {delta:.2g}, which cannot reveal it")
        worst = max(worst, err)
    entry.max_rel_diff = worst
    entry.verdict = "winner_flip" if worst > rtol else "agree"
    entry.causes.append(Cause("winner_flip" if worst > rtol else "rounding",
                              f"float32 winner flips at near-ties: {len(traced)} window(s) in {len(pairs)} pair(s)",
                              worst))
    return entry
