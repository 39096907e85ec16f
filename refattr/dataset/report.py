"""The report of a dataset store: a Markdown page and PNG figures a person can read.

:func:`write_report` writes ``report.md`` and its figures to a folder: the run's provenance
(model hash, refattr version, options, chunks and workers, timing), the completeness gaps, and
where a peer was graded, the distribution of its error, the count of examples per verdict and the
worst examples drawn next to the reference. Markdown and separate PNGs rather than one HTML page:
the text diffs and renders where the store is kept (a repository, a notebook), the figures open in
anything, and the same store gives the same bytes (PNGs carry no date).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np

from ..errors import ArgumentError
from .store import StoredAttributions, open_store

__all__ = ["write_report"]


def write_report(store: Any, out_dir: Any, *, inputs: Any = None, worst: int = 5) -> str:
    """Write ``report.md`` and its PNG figures for a store of :func:`refattr.dataset.attribute_dataset`.

    Parameters
    ----------
    store : StoredAttributions or str / path of the store folder
        A store that is not complete is reported on its done chunks (the report says how many).
    out_dir : str or path
        Created if needed; ``report.md``, ``gaps.png``, ``peer_error.png``, ``worst_<i>.png``.
    inputs : array or str / path of a ``.npy`` / ``.npz``, optional
        The run's inputs, for an input panel next to each worst example (shape checked against the
        store's); without them the panels show the attributions only.
    worst : int
        How many of the examples with the largest peer difference to draw (default 5).

    Returns
    -------
    str
        The path of ``report.md``.

    Raises
    ------
    ArgumentError
        Not a store, a damaged manifest or chunk file (the store's own message), inputs of another
        shape.
    """
    from ..plotting import save_figure
    from .sources import open_array

    store = store if isinstance(store, StoredAttributions) else open_store(store)
    if isinstance(worst, bool) or not isinstance(worst, (int, np.integer)) or worst < 0:
        raise ArgumentError(f"worst: expected an int >= 0, got {worst!r}")
    identity = store.manifest["identity"]
    shape = tuple(identity["inputs"]["shape"])
    x = None
    if inputs is not None:
        x = open_array(inputs, "inputs")
        if tuple(x.shape) != shape:
            raise ArgumentError(f"inputs: shape {tuple(x.shape)}, but store {store.path!r} was computed from inputs of "
                                f"shape {shape}; pass the run's inputs")
    done = [k for k, entry in enumerate(store.manifest["chunks"]) if entry["status"] == "done"]
    for k in done:          # every file of a done chunk read and its shape checked: damage is refused here
        if not store.has_chunk(k):
            raise ArgumentError(f"store {store.path!r}: chunk {k} is marked done but some of its files are missing; "
                                f"rerun the same refattr dataset run to recompute it")
    index = np.concatenate([np.arange(store.manifest["chunks"][k]["start"], store.manifest["chunks"][k]["stop"])
                            for k in done]) if done else np.zeros(0, dtype=int)

    def gather(q):
        return np.concatenate([np.array(store.chunk(q, k)) for k in done]) if done else np.zeros((0,))

    data = {q: gather(q) for q in store.quantities if q not in ("values", "peer_values")}
    os.makedirs(out_dir, exist_ok=True)
    lines = _provenance(store, identity, done, len(index))
    if "completeness_gap" in data or "error_estimate" in data:
        lines += _gaps(data, index, out_dir, save_figure)
    if "peer_relative_difference" in data:
        lines += _peer(store, identity, data, index, done, x, worst, out_dir, save_figure)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------
def _provenance(store, identity, done, n_done) -> list[str]:
    chunks = store.manifest["chunks"]
    n = identity["inputs"]["shape"][0]
    title = f"# {identity['method'].replace('_', ' ')} on {n} examples"
    lines = [title, "", f"Store `{os.path.basename(os.path.normpath(store.path))}`: {len(done)} of {len(chunks)} "
             f"chunks done ({n_done} of {n} examples)"
             + ("" if len(done) == len(chunks) else "; this report covers the done chunks only, rerun the same "
                "`refattr dataset run` to finish the store") + ".", "", "## Provenance", "",
             "| field | value |", "| --- | --- |"]
    shown = {"model": f"{identity['model_type']} sha256 `{identity['model_sha256']}`",
             "refattr": identity["refattr_version"],
             "inputs": f"{identity['inputs']['shape']} {identity['inputs']['dtype']}",
             "method": identity["method"], "options": _json(identity["options"]), "target": _json(identity["target"]),
             "baseline": _json(identity["baseline"]), "baseline samples": _json(identity["baseline_samples"]),
             "chunking": f"{identity['chunk_size']} examples per chunk, the method called on blocks of "
                         f"{identity['block']}"}
    if identity.get("peer"):
        peer = identity["peer"]
        shown["peer"] = (f"Captum {peer['versions']['captum']} (torch {peer['versions']['torch']}) {peer['class']} "
                         f"{_json(peer['options'])}, verdict rounding tolerance rtol {peer['rtol']:.0e}")
    elif identity.get("peer_attributions"):
        shown["peer"] = f"attributions supplied by the user, {_json(identity['peer_attributions'])}"
    lines += [f"| {key} | {value} |" for key, value in shown.items()]
    seconds = [chunks[k]["seconds"] for k in done if "seconds" in chunks[k]]
    if seconds:
        total = float(np.sum(seconds))
        lines += ["", f"Compute time: {total:.3g} s over {len(seconds)} chunks (median {np.median(seconds):.3g} s, "
                      f"max {np.max(seconds):.3g} s per chunk), {n_done / total:.3g} examples per second of task time."]
    workers = Counter(chunks[k].get("worker", "?") for k in done)
    examples = Counter()
    for k in done:
        examples[chunks[k].get("worker", "?")] += chunks[k]["stop"] - chunks[k]["start"]
    if workers:
        lines += ["", "| worker | chunks | examples |", "| --- | ---: | ---: |"]
        lines += [f"| {w} | {workers[w]} | {examples[w]} |" for w in sorted(workers)]
    runs = store.manifest.get("runs", [])
    if runs:
        lines += ["", "| run | started | finished | scheduler | chunks computed | refattr |",
                  "| ---: | --- | --- | --- | ---: | --- |"]
        lines += [f"| {i + 1} | {r.get('started_at')} | {r.get('finished_at')} | {r.get('scheduler')} | "
                  f"{r.get('chunks_computed')} | {r.get('refattr_version')} |" for i, r in enumerate(runs)]
    return lines + [""]


def _gaps(data, index, out_dir, save_figure) -> list[str]:
    lines = ["## Completeness and error estimates", ""]
    figure = None
    for q, words in (("completeness_gap", "completeness gap |sum(attributions) - (t(x) - t(x'))|"),
                     ("error_estimate", "error estimate")):
        if q not in data or not len(data[q]):
            continue
        a = np.abs(data[q])
        worst = int(np.argmax(a))
        lines.append(f"- {words}: max {a[worst]:.3g} (example {int(index[worst])}), median {np.median(a):.3g}, "
                     f"exactly zero in {int(np.sum(a == 0))} of {len(a)} examples.")
        if q == "completeness_gap":
            figure = _log_histogram({"all examples": a}, "|completeness gap|", "completeness gaps")
    if figure is not None:
        save_figure(figure, os.path.join(out_dir, "gaps.png"))
        lines += ["", "![completeness gaps](gaps.png)"]
    return lines + [""]


def _peer(store, identity, data, index, done, x, worst, out_dir, save_figure) -> list[str]:
    peer = identity.get("peer")
    name = f"Captum's {peer['class']}" if peer else "the supplied attributions"
    rel, absolute = data["peer_relative_difference"], data["peer_max_abs_difference"]
    lines = [f"## Peer: {name}", "",
             f"Per example, the relative difference is max_i |peer_i - ref_i| / max_i |ref_i| (normwise) and the "
             f"largest absolute difference max_i |peer_i - ref_i|. Median relative difference {np.median(rel):.3g}, "
             f"largest {np.max(rel):.3g}."]
    groups = {"all examples": rel}
    if "peer_verdict" in data:
        verdicts = peer["verdicts"]
        codes = data["peer_verdict"].astype(int)
        counts = Counter(verdicts[c] for c in codes)
        lines += ["", "| verdict | examples | share |", "| --- | ---: | ---: |"]
        lines += [f"| {v} | {counts[v]} | {100 * counts[v] / len(codes):.1f} % |" for v in verdicts if counts[v]]
        lines += [f"| total | {len(codes)} | 100 % |", "",
                  "agree: equal to refattr's reference up to rounding; convention: a documented Captum convention "
                  "(float32 step weights, DeepLift's eps) reproduced exactly; approximation: Captum's numerical "
                  "error (e.g. its quadrature against the exact integral); peer_bug: a known Captum bug, reproduced "
                  "exactly, changes the result; unexplained: matches no known computation (see "
                  "refattr.interop.compare_captum)."]
        parts = [(q, words) for q, words in (("peer_convention", "conventions"), ("peer_approximation",
                                                                                  "approximation"),
                                            ("peer_bug", "known bugs")) if q in data and np.any(data[q] > 0)]
        if parts:
            lines += ["", "Largest part of the difference, by kind (relative): "
                      + "; ".join(f"{words}: median {np.median(data[q]):.3g}, max {np.max(data[q]):.3g}"
                                  for q, words in parts) + "."]
        issues = Counter()
        for k in done:
            issues.update(store.manifest["chunks"][k].get("peer_bug_examples", {}))
        if issues:
            lines += [""] + [f"- {issue}: changes the result of {count} example(s)"
                             for issue, count in sorted(issues.items())]
        groups = {v: rel[codes == i] for i, v in enumerate(verdicts) if np.any(codes == i)}
    save_figure(_log_histogram(groups, "relative difference from the reference", f"{name}: error per example"),
                os.path.join(out_dir, "peer_error.png"))
    lines += ["", "![peer error](peer_error.png)", ""]
    order = np.argsort(-rel, kind="stable")[:worst]
    if len(order):
        lines += [f"### The {len(order)} worst examples", "",
                  "| rank | example | relative difference | max abs difference | verdict | figure |",
                  "| ---: | ---: | ---: | ---: | --- | --- |"]
        for rank, i in enumerate(order, start=1):
            verdict = peer["verdicts"][int(data["peer_verdict"][i])] if "peer_verdict" in data else "-"
            figure = f"worst_{rank}.png"
            lines.append(f"| {rank} | {int(index[i])} | {rel[i]:.3g} | {absolute[i]:.3g} | {verdict} | "
                         f"[{figure}]({figure}) |")
            save_figure(_worst_figure(store, done, int(index[i]), x, name, rank, rel[i], verdict),
                        os.path.join(out_dir, figure))
        lines += [""] + [f"![worst {rank}](worst_{rank}.png)" for rank in range(1, len(order) + 1)]
    return lines + [""]


def _example(store, done, quantity, example) -> np.ndarray:
    for k in done:
        entry = store.manifest["chunks"][k]
        if entry["start"] <= example < entry["stop"]:
            return np.array(store.chunk(quantity, k)[example - entry["start"]])
    raise AssertionError(example)  # pragma: no cover - the example comes from a done chunk


def _worst_figure(store, done, example, x, name, rank, rel, verdict):
    from ..plotting import _figure, _show_image, heatmap, symmetric_limits

    maps = {"reference (refattr)": _example(store, done, "values", example)}
    if "peer_values" in store.quantities:
        maps[name] = _example(store, done, "peer_values", example)
        maps["difference (peer - reference)"] = maps[name] - maps["reference (refattr)"]
    maps = {label: _plane(v) for label, v in maps.items()}
    panels = len(maps) + (x is not None)
    fig = _figure((2.4 * panels, 2.6))
    axes = [fig.add_subplot(1, panels, j + 1) for j in range(panels)]
    if x is not None:
        _show_image(axes[0], np.asarray(x[example], dtype=np.float64), "input")
        axes = axes[1:]
    shared = symmetric_limits(np.stack([v for label, v in maps.items() if not label.startswith("difference")]))
    for ax, (label, values) in zip(axes, maps.items()):
        own = label.startswith("difference")
        heatmap(ax, values, limits=None if own else shared, title=label + (" (own scale)" if own else ""))
    fig.suptitle(f"#{rank}: example {example}, relative difference {rel:.3g}, verdict {verdict}", fontsize=9)
    return fig


def _plane(values: np.ndarray) -> np.ndarray:
    """One example's attributions as a 2-D picture: (C, H, W) summed over channels, (H, W) as is,
    (L,) or (C, L) as rows."""
    if values.ndim == 3:
        return values.sum(axis=0)
    if values.ndim == 1:
        return values[None, :]
    return values


def _log_histogram(groups: dict[str, np.ndarray], xlabel: str, title: str):
    """A histogram of log10 values, one stacked colour per group; zeros and non-finite values counted
    in the legend (a log axis has no place for them)."""
    from ..plotting import _figure

    fig = _figure((6.0, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    finite = [v[np.isfinite(v) & (v > 0)] for v in groups.values()]
    every = np.concatenate(finite) if finite else np.zeros(0)
    if every.size:
        lo, hi = np.floor(np.log10(every.min())), np.ceil(np.log10(every.max()))
        bins = 10.0 ** np.linspace(lo, max(hi, lo + 1), 41)
        labels = []
        for (label, v), f in zip(groups.items(), finite):
            extra = [f"{int(np.sum(v == 0))} zero"] if np.any(v == 0) else []
            extra += [f"{int(np.sum(~np.isfinite(v)))} non-finite"] if np.any(~np.isfinite(v)) else []
            labels.append(f"{label} ({len(v)}" + (", " + ", ".join(extra) if extra else "") + ")")
        ax.hist([f for f in finite], bins=bins, stacked=True, label=labels)
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "every value is zero or non-finite", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("examples", fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def _json(value) -> str:
    return "-" if value is None else f"`{json.dumps(value, sort_keys=True)}`"
