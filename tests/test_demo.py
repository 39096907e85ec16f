"""refattr.demo: run_demo writes its files and returns the table; exact methods are complete."""

import io
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import refattr
from refattr import Dense, ReLU, Sequential, Tanh
from refattr import demo
from refattr.demo import format_table, path_breakpoints, run_demo

GRADIENT_FAMILY = ("gradient", "input_x_gradient", "guided_backprop", "deconvnet")
# Reference-based methods that are exact on a ReLU + average-pooling network.
EXACT_METHODS = ("integrated_gradients (exact)", "deeplift (rescale)", "deeplift (reveal_cancel)")


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    # Module-scoped fixtures run outside conftest's per-test errstate: set it here as well.
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        result = run_demo(out, progress=False, audit=False, stream=stream)
    result["printed"] = stream.getvalue()
    return result


def test_writes_its_files(summary):
    from pathlib import Path

    out = Path(summary["out_dir"])
    assert (out / "table.md").read_text().startswith("| method |")
    assert len(summary["figures"]) == 4           # 3 attribution figures + the integrand
    for name in summary["figures"]:
        path = Path(name)
        assert path.parent == out and path.stat().st_size > 1000
    assert (out / "ig_integrand.png") in {Path(f) for f in summary["figures"]}


def test_returns_and_prints_the_table(summary):
    methods = [row["method"] for row in summary["table"]]
    for name in GRADIENT_FAMILY:
        assert name in methods
    for row in summary["table"]:
        assert set(row) == {"method", "max_abs_gap", "max_abs_gap_recomputed", "max_error_estimate", "time_ms"}
        assert row["time_ms"] >= 0.0
        assert row["method"] in summary["printed"]
    gradient_rows = [row for row in summary["table"] if row["method"] in GRADIENT_FAMILY]
    assert all(row["max_abs_gap"] is None and row["max_error_estimate"] is None for row in gradient_rows)
    assert summary["targets"] == list(range(10))
    assert summary["model"]["test_accuracy"] >= 0.9
    assert summary["skipped"]["audit"] == "audit=False"


@pytest.mark.parametrize("method", EXACT_METHODS)
def test_exact_reference_methods_are_complete(summary, method):
    rows = {row["method"]: row for row in summary["table"]}
    if method not in rows:
        pytest.skip(f"{method} is not available in this installation: {summary['skipped']}")
    row = rows[method]
    # |t(x) - t(x')| is at most ~50 here and the sums run over 64 pixels: exact up to rounding
    # means gaps of order 1e-13; 1e-10 leaves room while catching any missing term.
    assert row["max_abs_gap"] <= 1e-10
    assert row["max_abs_gap_recomputed"] <= 1e-10
    assert row["max_error_estimate"] is None or row["max_error_estimate"] <= 1e-10


def test_reported_and_recomputed_gaps_agree(summary):
    for row in summary["table"]:
        if row["max_abs_gap"] is not None:
            # Two float64 evaluations of the same sums: agreement to rounding of t(x) - t(x') (~1e-14).
            assert abs(row["max_abs_gap"] - row["max_abs_gap_recomputed"]) <= 1e-12 * max(1.0, row["max_abs_gap"])


def test_integrand_integrates_exactly_between_breakpoints(summary):
    check = summary["integrand"]
    assert check["n_breakpoints"] > 0
    assert np.all(np.diff(check["breakpoints"]) > 0)
    assert check["gap"] <= 1e-12 * max(1.0, abs(check["delta_t"]))
    # A plausibility check of the plotted curve only (the exact check is the line above): the
    # trapezoid rule on the 801-point plotting grid straddles 184 jumps, so its error is
    # O(jump x spacing): 3.5e-5 relative on the bundled image. 1e-3 leaves room for other images
    # and still catches a curve for the wrong target or path.
    values, alphas = check["values"], check["alphas"]
    trapezoid = np.sum(0.5 * (values[1:] + values[:-1]) * np.diff(alphas))
    np.testing.assert_allclose(trapezoid, check["delta_t"], rtol=1e-3)


def test_path_breakpoints_on_a_hand_network():
    # f(x) = relu(x1 - 0.25) + relu(0.5 - x1) on the path from 0 to 1 (x2 ignored): the kinks
    # are at x1 = 0.25 and 0.5; a third unit relu(x1 + 1) never crosses zero.
    net = Sequential([Dense([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]], [-0.25, 0.5, 1.0]), ReLU(),
                      Dense([[1.0, 1.0, 1.0]])])
    points, complete = path_breakpoints(net, np.array([[1.0, 3.0]]), np.zeros((1, 2)))
    np.testing.assert_array_equal(points, [0.25, 0.5])
    assert complete
    # With a second non-linear layer the first layer's crossings are not all the breakpoints.
    deeper = Sequential([Dense([[1.0]], [-0.25]), ReLU(), Dense([[1.0]]), Tanh(), Dense([[1.0]])])
    points, complete = path_breakpoints(deeper, np.array([[1.0]]), np.zeros((1, 1)))
    np.testing.assert_array_equal(points, [0.25])
    assert not complete
    # A network whose first non-linear layer is not a ReLU: nothing known.
    tanh_net = Sequential([Dense([[1.0]]), Tanh(), Dense([[1.0]])])
    points, complete = path_breakpoints(tanh_net, np.array([[1.0]]), np.zeros((1, 1)))
    assert points.size == 0 and not complete


def test_format_table_says_no_bound_for_inf():
    # An infinite error estimate is integrated gradients saying it claims no bound.
    row = {"method": "ig", "max_abs_gap": 0.06, "max_error_estimate": np.inf, "time_ms": 1.0}
    assert format_table([row]).splitlines()[1].split() == ["ig", "6.00e-02", "no", "bound", "1.0"]


def test_format_table():
    rows = [{"method": "gradient", "max_abs_gap": None, "max_error_estimate": None, "time_ms": 3.0},
            {"method": "integrated_gradients (exact)", "max_abs_gap": 1.5e-15, "max_error_estimate": 0.0,
             "time_ms": 12.25}]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["method", "max", "|gap|", "max", "error", "est", "warm", "time", "(ms)"]
    assert lines[2].split() == ["integrated_gradients", "(exact)", "1.50e-15", "0.00e+00", "12.2"]
    assert len({len(line) for line in lines}) == 1      # aligned


def test_progress_announces_slow_steps(monkeypatch, capsys):
    import time

    monkeypatch.setattr(demo, "PROGRESS_AFTER_S", 0.01)
    with demo._Progress(True).step("slow step"):
        time.sleep(0.2)
    with demo._Progress(False).step("silent step"):
        time.sleep(0.05)
    err = capsys.readouterr().err
    assert "refattr demo: slow step ..." in err
    assert "refattr demo: slow step done in" in err
    assert "silent step" not in err


def test_the_audit_is_part_of_the_demo(tmp_path):
    pytest.importorskip("matplotlib")
    from refattr.axioms.audit import audit

    stream = io.StringIO()
    result = run_demo(tmp_path, progress=False, n_figure_images=0, stream=stream)
    expected = audit().to_markdown()          # deterministic: the same table as `refattr audit`
    assert result["audit"] == expected
    assert (tmp_path / "audit.md").read_text().startswith(expected[:200])
    assert "| Completeness |" in stream.getvalue()
    assert "audit" not in result["skipped"]


def test_exact_integrated_gradients_is_the_sum_over_path_pieces():
    # Independent of the IG implementation: on this network the gradient is constant between the
    # first ReLU layer's zero crossings (path_breakpoints, complete), so
    # phi = (x - x') * sum_j width_j * grad(midpoint_j) exactly.
    ig = pytest.importorskip("refattr.methods.integrated_gradients")
    from refattr.models import load_digits_cnn

    net, images, labels = load_digits_cnn()
    x, target = images[:3], labels[:3]
    expected = np.zeros_like(x)
    for n in range(x.shape[0]):
        points, complete = path_breakpoints(net, x[n:n + 1], np.zeros_like(x[n:n + 1]))
        assert complete
        edges = np.concatenate([[0.0], points, [1.0]])
        mids = 0.5 * (edges[:-1] + edges[1:])
        grads = refattr.gradient(net, mids[:, None, None, None] * x[n], target=int(target[n])).values
        expected[n] = x[n] * np.tensordot(np.diff(edges), grads, axes=1)
    result = ig.integrated_gradients(net, x, baseline=0.0, target=target, rule="exact")
    np.testing.assert_allclose(result.values, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))


# timing: warm times in the table, the cold start reported apart -------------------------------------
def test_table_times_are_warm_and_the_cold_start_is_reported_apart(tmp_path, monkeypatch):
    pytest.importorskip("refattr.methods.integrated_gradients")
    calls = []
    sleep_s = 0.5            # stands in for compiling kernels on the first call

    def spy(name, fn, first_call_sleeps=False):
        def method(net, x, **kwargs):
            if first_call_sleeps and not any(n == name for n, _ in calls):
                time.sleep(sleep_s)
            calls.append((name, x.shape[0]))
            return fn(net, x, **kwargs)
        return method

    from refattr.methods.integrated_gradients import integrated_gradients

    monkeypatch.setattr(demo, "METHODS", {"gradient": spy("gradient", refattr.gradient, first_call_sleeps=True)})
    monkeypatch.setattr(demo, "_reference_methods", lambda: [
        ("integrated_gradients (exact)", spy("ig", integrated_gradients), {"rule": "exact"})])
    stream = io.StringIO()
    result = run_demo(tmp_path, progress=False, audit=False, n_figure_images=0, stream=stream)
    # every method is called once on one image before any timed call on the ten
    assert calls == [("gradient", 1), ("ig", 1), ("gradient", 10), ("ig", 10)]
    rows = {row["method"]: row for row in result["table"]}
    # The sleep happened in the first (untimed) call: it is in the cold start, not the table. The
    # timed call is a 10-image gradient (well under a millisecond); half the sleep is a wide margin.
    assert rows["gradient"]["time_ms"] < 1e3 * sleep_s / 2
    assert result["cold_start_s"] >= sleep_s
    printed = stream.getvalue()
    assert "warm time (ms)" in printed
    assert f"(one image, untimed) took {result['cold_start_s']:.1f} s, compiling the numba kernels" in printed
    assert "compiling the numba kernels" in (tmp_path / "table.md").read_text()


# the attribution figure -------------------------------------------------------------------------
def test_attribution_figure_has_one_scale_and_the_difference_to_exact():
    pytest.importorskip("matplotlib")
    ig = pytest.importorskip("refattr.methods.integrated_gradients")
    from refattr.models import load_digits_cnn

    net, images, labels = load_digits_cnn()
    x, target = images[:1], labels[:1]
    maps = {"gradient": refattr.gradient(net, x, target=target).values[0]}
    for name, kwargs in (("integrated_gradients (exact)", {"rule": "exact"}),
                         (f"integrated_gradients (gauss_legendre, {demo.N_STEPS})",
                          {"rule": "gauss_legendre", "n_steps": demo.N_STEPS})):
        maps[name] = ig.integrated_gradients(net, x, baseline=0.0, target=target, rule=kwargs.pop("rule"),
                                             **kwargs).values[0]
    fig = demo._attribution_figure(images[0], int(labels[0]), maps)
    heatmaps = [(ax.get_title(), ax.images[0]) for ax in fig.axes
                if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]
    assert len(heatmaps) == 4                      # three maps and the difference, no pixel-scaling row
    *method_maps, (title, difference) = heatmaps
    # one symmetric scale for the three maps: the largest |value| over all of them
    m = max(np.max(np.abs(v)) for v in maps.values())
    assert all(im.get_clim() == (-m, m) for _, im in method_maps)
    assert "one colour scale for all maps" in fig._suptitle.get_text()
    # the difference panel: GL-50 - exact (one channel), on its own symmetric scale, and its sum,
    # sum(GL-50) - sum(exact) = GL-50's completeness gap, since the exact values are complete
    expected = (maps[f"integrated_gradients (gauss_legendre, {demo.N_STEPS})"]
                - maps["integrated_gradients (exact)"])[0]
    np.testing.assert_array_equal(difference.get_array(), expected)
    d = np.max(np.abs(expected))
    assert difference.get_clim() == (-d, d) and d < m
    assert title.startswith(f"GL-{demo.N_STEPS} \u2212 exact\nsum ")
    assert float(title.split("sum ")[1]) == pytest.approx(np.sum(expected), rel=5e-3)   # printed to 3 digits


# figures/ ---------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"


def _png_text(path) -> dict[str, str]:
    """The tEXt chunks of a PNG (PNG spec, section 11.3.4.3: keyword, NUL, text)."""
    data, chunks, i = path.read_bytes(), {}, 8
    while i < len(data):
        (length,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        if kind == b"tEXt":
            key, _, text = data[i + 8:i + 8 + length].partition(b"\0")
            chunks[key.decode("latin-1")] = text.decode("latin-1")
        i += 12 + length
    return chunks


def test_make_figures_is_reproducible_and_writes_only_where_told(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    pytest.importorskip("refattr.methods.integrated_gradients")
    tracked = {p.name: p.read_bytes() for p in FIGURES.glob("*.png")}
    runs = []
    for k in range(2):          # two processes: nothing may depend on the run (dates, ids, state)
        out = tmp_path / f"run{k}"
        subprocess.run([sys.executable, str(FIGURES / "make_figures.py"), "--out", str(out)], check=True,
                       capture_output=True, text=True, cwd=tmp_path)
        runs.append({p.name: p.read_bytes() for p in out.glob("*.png")})
    assert set(runs[0]) == set(tracked) == {"ig_convergence.png", "digits_attributions.png",
                                            "digits_ig_integrand.png"}
    for name in tracked:
        assert runs[0][name] == runs[1][name], f"{name} differs between two runs of make_figures.py"
    # the tracked figures were left alone ...
    assert {p.name: p.read_bytes() for p in FIGURES.glob("*.png")} == tracked
    # ... and are what the script draws today, under the matplotlib that drew them
    for name, data in tracked.items():
        software = _png_text(FIGURES / name).get("Software", "")
        if f"version{matplotlib.__version__}," not in software:
            pytest.skip(f"figures/{name} was drawn by {software!r}, not matplotlib {matplotlib.__version__}")
        assert runs[0][name] == data, (f"figures/{name} is stale: run python figures/make_figures.py "
                                       "and commit the result")


def test_figures_readme_lists_every_figure_where_it_is_shown():
    text = (FIGURES / "README.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:3] for line in text.splitlines() if line.startswith("| `")]
    listed = {name.strip().strip("`"): shown.strip() for name, shown in rows}
    assert set(listed) == {p.name for p in FIGURES.glob("*.png")}
    for name, shown in listed.items():
        where = ROOT / shown.split("`")[1]
        assert where.exists(), f"figures/README.md: {name} is said to be shown in {where}, which does not exist"
        if where.suffix == ".md":
            assert f"](figures/{name})" in where.read_text(encoding="utf-8"), f"{shown} does not show {name}"
        if where.suffix == ".ipynb":        # shown inline: a stored figure among the outputs
            assert '"image/png"' in where.read_text(encoding="utf-8"), f"{shown} stores no figure"
