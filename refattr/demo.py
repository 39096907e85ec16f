"""The demo: every method on the bundled digits CNN, a table of how exact each one is, figures.

``run_demo(out_dir)`` loads :func:`refattr.models.load_digits_cnn` (ten held-out digits, one per
class), explains each image's true class against the all-black baseline x' = 0 with every
attribution method this installation has, prints a table (method, max |completeness gap|, max
error estimate, warm time), writes figures into ``out_dir`` and returns a summary dict. It is what
``refattr demo`` runs.

Integrated gradients and DeepLIFT are used when their modules are importable
(``refattr.methods.integrated_gradients``, ``refattr.methods.deeplift``), and the axiom audit when
``refattr.axioms.audit`` exists; the figures need matplotlib. What is missing is listed in the
summary's ``skipped`` entry instead of failing the demo.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .layers import LinearLayer, ReLU
from .layers.max_pool import is_max_pooling
from .methods import METHODS, gradient
from .models import digits_cnn_info, load_digits_cnn

__all__ = ["run_demo", "format_table", "path_breakpoints"]

#: Baseline of every reference-based method in the demo: the all-black image.
BASELINE = 0.0
#: Gradient evaluations of the fixed-node integrated-gradients rule.
N_STEPS = 50
#: Points on [0, 1] at which the integrand figure evaluates the gradient.
N_INTEGRAND_POINTS = 801
#: A step that runs longer than this many seconds is announced on stderr.
PROGRESS_AFTER_S = 1.0

# Methods with their own entries below (several rules each); skipped when walking METHODS.
_RULE_METHODS = ("integrated_gradients", "deeplift")


# progress ---------------------------------------------------------------------------------------
class _Progress:
    """Announces on stderr a step that is still running after PROGRESS_AFTER_S, then its time."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self._lock = threading.Lock()

    def _say(self, text):
        with self._lock:
            print(f"refattr demo: {text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str):
        announced = threading.Event()

        def announce():
            announced.set()
            self._say(f"{name} ...")

        timer = threading.Timer(PROGRESS_AFTER_S, announce) if self.enabled else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
                if announced.is_set():
                    self._say(f"{name} done in {time.perf_counter() - start:.1f} s")


# optional parts ---------------------------------------------------------------------------------
def _reference_methods() -> list[tuple[str, Callable, dict]]:
    """(label, function, keyword arguments) for the reference-based methods the demo runs."""
    from .methods.deeplift import deeplift
    from .methods.integrated_gradients import integrated_gradients

    return [
        ("integrated_gradients (exact)", integrated_gradients, {"rule": "exact"}),
        (f"integrated_gradients (gauss_legendre, {N_STEPS})", integrated_gradients,
         {"rule": "gauss_legendre", "n_steps": N_STEPS}),
        ("deeplift (rescale)", deeplift, {"rule": "rescale"}),
        ("deeplift (reveal_cancel)", deeplift, {"rule": "reveal_cancel"}),
    ]


def _audit_text() -> tuple[str | None, str | None]:
    """The axiom audit (refattr.axioms.audit) as markdown; the second item is kept for callers
    that report why a step was skipped and is always None here."""
    from .axioms.audit import audit

    return audit().to_markdown(), None


# the straight path ------------------------------------------------------------------------------
def path_breakpoints(net, x, baseline) -> tuple[np.ndarray, bool]:
    """Where the first ReLU layer's inputs cross zero on the path x' + a (x - x'), a in (0, 1).

    When every layer before that ReLU is linear (dense, convolution, average pooling, flatten),
    its input is affine in a, z(a) = z' + a (z - z'), and crosses zero at a = z' / (z' - z). These
    are the only points where the gradient can change if that ReLU is the network's only
    non-linear layer; the second return value says whether that is the case (the list is then
    complete).

    Parameters
    ----------
    net : Sequential
    x, baseline : ndarray, shape (1, *example_shape)

    Returns
    -------
    breakpoints : ndarray, sorted, unique, in (0, 1)
    complete : bool

    Examples
    --------
    f(x) = relu(x - 0.25) on the path from 0 to 1 bends at a = 0.25.

    >>> import numpy as np
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0]], [-0.25]), ReLU(), Dense([[1.0]])])
    >>> path_breakpoints(net, np.array([[1.0]]), np.array([[0.0]]))
    (array([0.25]), True)
    """
    layers = net.layers
    first = next((i for i, layer in enumerate(layers) if not isinstance(layer, LinearLayer)), None)
    if first is None or not isinstance(layers[first], ReLU):
        return np.zeros(0), first is None
    z = net.trace(x).activations[first]
    z_ref = net.trace(baseline).activations[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = z_ref / (z_ref - z)
    crossing = (z != z_ref) & (a > 0) & (a < 1)
    complete = all(isinstance(layer, LinearLayer) for layer in layers[first + 1:])
    return np.unique(a[crossing]), complete


def _integrand(net, x, baseline, target, alphas) -> np.ndarray:
    """d t / d a = sum_i (x_i - x'_i) dt/dx_i at x' + a (x - x'), for every a in ``alphas``."""
    delta = x - baseline
    points = baseline + alphas.reshape((-1,) + (1,) * (x.ndim - 1)) * delta
    grads = gradient(net, points, target=int(target)).values
    return np.sum(grads * delta, axis=tuple(range(1, x.ndim)))


def _piecewise_integral(net, x, baseline, target, breakpoints) -> float:
    """Integral of d t / d a over [0, 1] for an integrand constant between breakpoints.

    Evaluates the gradient at each piece's midpoint; equal to t(x) - t(x') up to rounding exactly
    when no breakpoint is missing.
    """
    edges = np.concatenate([[0.0], breakpoints, [1.0]])
    widths = np.diff(edges)
    keep = widths > 0
    mids = 0.5 * (edges[:-1] + edges[1:])[keep]
    return float(np.sum(widths[keep] * _integrand(net, x, baseline, target, mids)))


def _breakpoints_from(result, index: int) -> np.ndarray | None:
    """The IG result's breakpoints for example ``index``, if it records them in its options."""
    bp = result.options.get("breakpoints") if isinstance(result.options, dict) else None
    if bp is None:
        return None
    try:
        if isinstance(bp, (list, tuple)) or (isinstance(bp, np.ndarray) and bp.dtype == object):
            bp = bp[index]
        return np.unique(np.asarray(bp, dtype=np.float64).ravel())
    except (TypeError, ValueError, IndexError):
        return None


# table ------------------------------------------------------------------------------------------
def format_table(rows: list[dict[str, Any]]) -> str:
    """The demo's table as aligned text: method, max |gap|, max error estimate, warm time in ms.

    Examples
    --------
    >>> print(format_table([{"method": "gradient", "max_abs_gap": None, "max_error_estimate": None,
    ...                      "time_ms": 3.0}]))
    method      max |gap|  max error est  warm time (ms)
    gradient            -              -             3.0
    """
    def number(v):
        # inf: integrated gradients claims no bound (a kink between the nodes of a fixed rule)
        return "-" if v is None else "no bound" if v == np.inf else f"{v:.2e}"

    width = max([len("method")] + [len(r["method"]) for r in rows])
    lines = [f"{'method':<{width}}  {'max |gap|':>9}  {'max error est':>13}  {'warm time (ms)':>14}"]
    for r in rows:
        lines.append(f"{r['method']:<{width}}  {number(r['max_abs_gap']):>9}  "
                     f"{number(r['max_error_estimate']):>13}  {r['time_ms']:>14.1f}")
    return "\n".join(lines)


def _markdown_table(rows) -> str:
    def number(v):
        return "-" if v is None else "no bound" if v == np.inf else f"{v:.3g}"

    lines = ["| method | max abs completeness gap | max error estimate | warm time (ms) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['method']} | {number(r['max_abs_gap'])} | {number(r['max_error_estimate'])} | "
              f"{r['time_ms']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def _max_abs(arr) -> float | None:
    return None if arr is None else float(np.max(np.abs(np.asarray(arr, dtype=np.float64))))


# the demo ---------------------------------------------------------------------------------------
def run_demo(out_dir, progress: bool = True, *, audit: bool = True, n_figure_images: int = 3,
             stream=None) -> dict[str, Any]:
    """Run every available attribution method on the bundled digits CNN and report.

    Parameters
    ----------
    out_dir : str or path
        Created if needed; receives ``table.md``, ``attributions_*.png`` (the input next to every
        method's heatmap on one shared colour scale, and the difference between the 50-point
        Gauss-Legendre and the exact integrated gradients on its own scale), ``ig_integrand.png``
        (d t / d a along the straight path, its breakpoints as ticks on the axis) and, when the
        audit ran, ``audit.md``.
    progress : bool
        Announce on stderr any step still running after one second.
    audit : bool
        Run ``refattr.axioms.audit()`` when it exists.
    n_figure_images : int
        How many of the ten images get an attribution figure.
    stream : file, optional
        Where the table (and audit) are printed; standard output by default.

    Returns
    -------
    dict
        ``table`` (list of rows: ``method``, ``max_abs_gap``, ``max_abs_gap_recomputed``,
        ``max_error_estimate``, ``time_ms``), ``model`` (summary, test accuracy), ``targets``,
        ``baseline``, ``figures`` (paths written), ``integrand`` (the path check for one image),
        ``audit`` (text or None), ``skipped`` (what was not run and why), ``out_dir``,
        ``cold_start_s``, ``seconds``.

    Notes
    -----
    Each image is explained for its true class, t = f(x)[label], against x' = 0. For
    reference-based methods ``max_abs_gap`` is the method's own ``completeness_gap`` and
    ``max_abs_gap_recomputed`` is sum(values) - (t(x) - t(x')) recomputed here from the values.
    The integrand check integrates d t / d a exactly between the path's breakpoints (the gradient
    is constant between them on this ReLU network) and compares with t(x) - t(x').

    ``time_ms`` is warm: the model's first forward pass and every method's first call, on one image,
    run first, untimed; they compile the numba kernels on a first run (numba then caches them on
    disk) or load them from that cache. ``cold_start_s`` is the time of those first calls.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = sys.stdout if stream is None else stream
    steps = _Progress(progress)
    skipped: dict[str, str] = {}

    with steps.step("loading the model"):
        cold = time.perf_counter()
        net, images, labels = load_digits_cnn()
        info = digits_cnn_info()
        baseline = np.full_like(images, BASELINE)
        t_delta = (net(images) - net(baseline))[np.arange(labels.size), labels]
        cold_start_s = time.perf_counter() - cold

    entries = [(name, fn, {}) for name, fn in METHODS.items() if name not in _RULE_METHODS]
    extra = [(n, f, {"baseline": BASELINE, **kw}) for n, f, kw in _reference_methods()]
    if not net.piecewise_linear:
        extra = [e for e in extra if e[2].get("rule") != "exact"]
    if any(is_max_pooling(layer) for layer in net.layers):
        extra = [(n, f, {**kw, "maxpool_rule": "delta_routing"}) if n.startswith("deeplift") else (n, f, kw)
                 for n, f, kw in extra]
    entries += extra

    # The first call of a method compiles its numba kernels (or loads them from numba's cache):
    # make it on one image, untimed, so that the table reports warm times.
    with steps.step("first call of every method (compiling the numba kernels)"):
        cold = time.perf_counter()
        for name, fn, kwargs in entries:
            fn(net, images[:1], target=labels[:1], **kwargs)
        cold_start_s += time.perf_counter() - cold

    rows, results = [], {}
    for name, fn, kwargs in entries:
        with steps.step(name):
            t0 = time.perf_counter()
            result = fn(net, images, target=labels, **kwargs)
            elapsed_ms = 1e3 * (time.perf_counter() - t0)
        results[name] = result
        recomputed = None
        if result.completeness_gap is not None:
            recomputed = result.values.reshape(labels.size, -1).sum(axis=1) - t_delta
        rows.append({"method": name, "max_abs_gap": _max_abs(result.completeness_gap),
                     "max_abs_gap_recomputed": _max_abs(recomputed),
                     "max_error_estimate": _max_abs(result.error_estimate), "time_ms": elapsed_ms})

    with steps.step("integrated-gradients integrand along the path"):
        integrand = _integrand_summary(net, images, labels, results)

    figures: list[str] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        skipped["figures"] = f"matplotlib not importable ({exc})"
    else:
        with steps.step("figures"):
            figures = _write_figures(out, images, labels, results, integrand, n_figure_images)

    audit_text = None
    if audit:
        with steps.step("axiom audit"):
            audit_text, why = _audit_text()
        if why is not None:
            skipped["audit"] = why
        else:
            (out / "audit.md").write_text(audit_text + "\n", encoding="utf-8")
    else:
        skipped["audit"] = "audit=False"

    table = format_table(rows)
    cold_start = (f"Times are warm. Cold start: the model's first forward pass and the first call of every "
                  f"method (one image, untimed) took {cold_start_s:.1f} s, compiling the numba kernels "
                  f"(or loading them from numba's cache).")
    (out / "table.md").write_text(_markdown_table(rows) + "\n" + cold_start + "\n", encoding="utf-8")
    print(f"refattr demo: {info['summary']}, test accuracy {info['accuracy']['test']:.3f}", file=stream)
    print(f"{labels.size} held-out digits, each explained for its true class against x' = {BASELINE}",
          file=stream)
    print(table, file=stream)
    print(cold_start, file=stream)
    if integrand is not None:
        print(f"integrand check (image {integrand['image_index']}): {integrand['n_breakpoints']} breakpoints "
              f"({integrand['breakpoint_source']}), |integral - (t(x) - t(x'))| = {integrand['gap']:.2e}",
              file=stream)
    if audit_text is not None:
        print(audit_text, file=stream)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=stream)
    print(f"wrote {len(figures)} figure(s) and table.md to {out}", file=stream)

    return {
        "table": rows,
        "model": {"summary": info["summary"], "test_accuracy": info["accuracy"]["test"],
                  "n_images": int(labels.size)},
        "targets": labels.tolist(),
        "baseline": BASELINE,
        "figures": figures,
        "integrand": integrand,
        "audit": audit_text,
        "skipped": skipped,
        "out_dir": str(out),
        "cold_start_s": cold_start_s,
        "seconds": time.perf_counter() - start,
    }


def _integrand_summary(net, images, labels, results, index: int = 0) -> dict[str, Any]:
    """d t / d a along the straight path for image ``index``, its breakpoints, and the exact check."""
    x = images[index:index + 1]
    baseline = np.full_like(x, BASELINE)
    target = int(labels[index])
    own, complete = path_breakpoints(net, x, baseline)
    breakpoints, source = own, "first ReLU layer" + (", complete" if complete else ", partial")
    exact = results.get("integrated_gradients (exact)")
    if exact is not None:
        from_ig = _breakpoints_from(exact, index)
        if from_ig is not None:
            breakpoints, source = from_ig, "integrated_gradients options"
    alphas = np.linspace(0.0, 1.0, N_INTEGRAND_POINTS)
    values = _integrand(net, x, baseline, target, alphas)
    integral = _piecewise_integral(net, x, baseline, target, breakpoints)
    delta_t = float((net(x) - net(baseline))[0, target])
    return {"image_index": index, "target": target, "alphas": alphas, "values": values,
            "breakpoints": breakpoints, "breakpoint_source": source, "n_breakpoints": int(breakpoints.size),
            "integral": integral, "delta_t": delta_t, "gap": abs(integral - delta_t)}


def _attribution_figure(image, label: int, maps: dict[str, np.ndarray]):
    """Every method's map for one image on one colour scale, and GL-50 - exact on its own."""
    from .plotting import plot_attributions

    exact, fixed = "integrated_gradients (exact)", f"integrated_gradients (gauss_legendre, {N_STEPS})"
    differences = {f"GL-{N_STEPS} \u2212 exact": (fixed, exact)} if {exact, fixed} <= maps.keys() else None
    return plot_attributions(image, maps, shared_scale=True, differences=differences, n_cols=5,
                             title=f"digit {label}: attributions for class {label}, baseline x' = 0")


def _write_figures(out: Path, images, labels, results, integrand, n_images: int) -> list[str]:
    from .plotting import plot_integrand, save_figure

    written = []
    for n in range(min(n_images, labels.size)):
        fig = _attribution_figure(images[n], int(labels[n]), {name: r.values[n] for name, r in results.items()})
        written.append(str(save_figure(fig, out / f"attributions_{n}_digit{labels[n]}.png")))
    if integrand is not None:
        fig = plot_integrand(integrand["alphas"], integrand["values"], integrand["breakpoints"],
                             labels=["d t / d alpha = sum_i (x_i - x'_i) grad_i"],
                             title=(f"digit {integrand['target']}: integrated-gradients integrand on the path from "
                                    f"x' = 0; its integral over the {integrand['n_breakpoints'] + 1} pieces "
                                    f"{integrand['integral']:.6g}, t(x) - t(x') = {integrand['delta_t']:.6g}"))
        written.append(str(save_figure(fig, out / "ig_integrand.png")))
    return written
