"""Progress on a terminal, the quad warning on piecewise-linear networks, and the evaluation budget.

Where the expected numbers come from:

- the progress line's counts are compared with the counts the result itself reports (examples in
  the batch, ``n_pieces``, ``n_evaluations``), and its clock with a fake clock that advances one
  second per reading, so that the ETA is a hand computation (below);
- the budget: in one dimension integrated gradients is f(x) - f(x') (completeness), so the true
  error of a partial result is known in closed form; the evaluation counts follow from the rules'
  costs (quad: 17 points for [0, 1], 34 for each bisection; written out in each test).
"""

import io
import re
import sys
import warnings

import numba
import numpy as np
import pytest

import refattr.progress as progress
from refattr import Add, Dense, Graph, ReLU, Sequential, Tanh
from refattr.axioms.audit import audit
from refattr.errors import ArgumentError, ResourceError
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.progress import RefattrWarning


class _Terminal(io.StringIO):
    """Standard error as a terminal would look to the library."""

    def isatty(self):
        return True


class _Pipe(io.StringIO):
    def isatty(self):
        return False


@pytest.fixture
def clock(monkeypatch):
    """A fake clock: every reading is one second after the previous one."""
    now = [0.0]

    def tick():
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(progress, "_clock", tick)
    return now


@pytest.fixture
def terminal(monkeypatch, clock):
    """Standard error is a terminal, progress is decided automatically, the built-in writer draws.

    Returns a function that installs the terminal: it must run in the test's body, as pytest puts
    its own capture of standard error back in place when the test's call begins."""
    monkeypatch.delenv("REFATTR_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_load_tqdm", lambda: None)

    def install(stream_type=_Terminal):
        stream = stream_type()
        monkeypatch.setattr(sys, "stderr", stream)
        return stream

    return install


def relu_net():
    rng = np.random.default_rng(3)
    return Sequential([Dense(rng.normal(size=(8, 3)), rng.normal(size=8)), ReLU(), Dense(rng.normal(size=(2, 8)))])


def mixed_net():
    rng = np.random.default_rng(4)
    return Sequential([Dense(rng.normal(size=(6, 3)), rng.normal(size=6)), ReLU(),
                       Dense(rng.normal(size=(6, 6)), rng.normal(size=6)), Tanh(), Dense(rng.normal(size=(2, 6)))])


def saturating():
    """f(x) = 1 - relu(1 - x) (the tutorial's saturation example)."""
    return Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])


def last_line(text):
    """The line a terminal shows last: the text after the last carriage return, without padding."""
    return text.rstrip("\n").split("\r")[-1].rstrip()


X = np.random.default_rng(5).normal(size=(4, 3)) * 3


# --------------------------------------------------------------------------------------------
# the progress line
# --------------------------------------------------------------------------------------------
def test_exact_shows_examples_done_and_pieces_on_standard_error_only(terminal, capsys):
    stderr = terminal()
    result = integrated_gradients(relu_net(), X, target=1)
    text = stderr.getvalue()
    # the walk reports every finished example and every piece of positive length
    assert last_line(text).startswith("integrated gradients (exact): 4/4 examples [")
    assert last_line(text).endswith(f"pieces={int(result.options['n_pieces'].sum()):,}")
    assert text.endswith("\n")                      # the line is finished once the call returns
    assert capsys.readouterr().out == ""


def test_exact_on_a_graph_reports_every_step_of_the_walk(terminal):
    stderr = terminal()
    rng = np.random.default_rng(6)
    net = Graph("x", [("h", Dense(rng.normal(size=(3, 3)), rng.normal(size=3)), "x"), ("a", ReLU(), "h"),
                      ("r", Add(), ("a", "x")), ("y", Dense(rng.normal(size=(2, 3))), "r")])
    result = integrated_gradients(net, X, target=0)      # the 4 examples walked together, step by step
    text = stderr.getvalue()
    line = last_line(text)
    assert line.startswith("integrated gradients (exact): 4/4 examples [")
    assert line.endswith(f"pieces={int(result.options['n_pieces'].sum()):,}")
    # the 4 examples are one chunk: a line with fewer done comes from a step inside the walk
    assert any(part.startswith("integrated gradients (exact): ") and not part.startswith(
        "integrated gradients (exact): 4/4") for part in text.split("\r")), text


def test_the_line_gives_elapsed_time_and_the_eta_of_the_mean_rate(terminal):
    stderr = terminal()
    # clock readings 1 (start), 2, 3 (too early: DELAY_S = 2 s), 4: 3 s elapsed for 1 of 4 examples,
    # so 3 s each and 3 left: ETA 9 s; the next draw waits REFRESH_S, less than a tick
    with progress.task("work", 4, "examples") as bar:
        bar.add(0)
        bar.add(0)
        bar.add(1, pieces=1500)
        assert last_line(stderr.getvalue()) == "work: 1/4 examples [0:03 < ETA 0:09] pieces=1,500"
        bar.set(done=4, running="last")
        assert last_line(stderr.getvalue()) == "work: 4/4 examples [0:04 < ETA 0:00] pieces=1,500 running=last"


@pytest.mark.parametrize("rule", ["quad", "piecewise"])
def test_adaptive_rules_show_their_evaluations(terminal, rule):
    stderr = terminal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefattrWarning)       # quad on a ReLU network is deliberate here
        result = integrated_gradients(mixed_net() if rule == "piecewise" else relu_net(), X, target=0, rule=rule)
    line = last_line(stderr.getvalue())
    assert line.startswith(f"integrated gradients ({rule}): 4/4 examples [")
    evaluations = int(np.sum(result.options["n_evaluations"]))  # quad: the batch's; piecewise: per example
    assert f"evaluations={evaluations:,}" in line
    if rule == "piecewise":
        assert f"pieces={int(result.options['n_pieces'].sum()):,}" in line


def test_tqdm_draws_the_line_where_it_is_installed(capsys, monkeypatch, clock):
    pytest.importorskip("tqdm")
    monkeypatch.delenv("REFATTR_PROGRESS", raising=False)
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    result = integrated_gradients(relu_net(), X, target=1)
    line = last_line(stderr.getvalue())
    assert line.startswith("integrated gradients (exact): 100%") and "4/4" in line
    assert f"pieces={int(result.options['n_pieces'].sum()):,}" in line
    assert capsys.readouterr().out == ""


def test_the_audit_shows_its_checks(terminal):
    stderr = terminal()
    audit(methods=["gradient"], properties=["completeness", "sensitivity"])
    line = last_line(stderr.getvalue())
    assert line.startswith("axioms audit: 2/2 checks [") and line.endswith("running=sensitivity / gradient")


def test_a_computation_inside_another_stays_silent(terminal):
    stderr = terminal()
    with progress.task("outer", 1, "steps") as bar:
        bar.add(0)
        bar.add(0)                                   # 2 s in: the outer line is shown
        integrated_gradients(relu_net(), X, target=1)
        bar.add(1)
    text = stderr.getvalue()
    assert "outer: 1/1 steps" in text and "integrated gradients" not in text


# --------------------------------------------------------------------------------------------
# when nothing is shown
# --------------------------------------------------------------------------------------------
def test_short_calls_show_nothing(terminal, monkeypatch):
    stderr = terminal()
    monkeypatch.setattr(progress, "_clock", lambda: 5.0)   # the clock never reaches DELAY_S
    integrated_gradients(relu_net(), X, target=1, progress=True)
    assert stderr.getvalue() == ""


def test_silent_when_standard_error_is_not_a_terminal(terminal, capsys, monkeypatch):
    stderr = terminal(_Pipe)
    integrated_gradients(relu_net(), X, target=1)
    assert stderr.getvalue() == "" and capsys.readouterr().out == ""
    # REFATTR_PROGRESS=1 shows it there too (a notebook, a log)
    monkeypatch.setenv("REFATTR_PROGRESS", "1")
    integrated_gradients(relu_net(), X, target=1)
    assert "4/4 examples" in stderr.getvalue()


@pytest.mark.parametrize("switch", ["keyword", "context", "environment"])
def test_each_switch_silences_a_terminal(terminal, monkeypatch, switch):
    stderr = terminal()
    if switch == "keyword":
        integrated_gradients(relu_net(), X, target=1, progress=False)
    elif switch == "context":
        with progress.enabled(False):
            integrated_gradients(relu_net(), X, target=1)
    else:
        monkeypatch.setenv("REFATTR_PROGRESS", "0")
        integrated_gradients(relu_net(), X, target=1)
    assert stderr.getvalue() == ""


def test_the_keyword_wins_over_the_context_and_the_environment(terminal, monkeypatch):
    stderr = terminal()
    monkeypatch.setenv("REFATTR_PROGRESS", "0")
    with progress.enabled(False):
        integrated_gradients(relu_net(), X, target=1, progress=True)
    assert "4/4 examples" in stderr.getvalue()


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(ArgumentError, match="progress: expected True, False or None, got 'yes'"):
        integrated_gradients(relu_net(), X, target=1, progress="yes")


# --------------------------------------------------------------------------------------------
# the first compilation
# --------------------------------------------------------------------------------------------
def test_a_compilation_of_refattrs_code_is_announced_once(terminal, monkeypatch):
    stderr = terminal()
    # numba's "numba:compile" event fires on a cache miss, before compiling; a fresh function whose
    # module is refattr's stands for a kernel compiled for the first time
    monkeypatch.setitem(progress._compile_state, "noticed", False)

    def twice(v):
        return 2.0 * v

    twice.__module__ = "refattr.kernels.stand_in"
    assert numba.njit(twice)(1.5) == 3.0
    assert numba.njit(twice)(2.5) == 5.0          # a second compilation says nothing more
    assert stderr.getvalue().count("compiling refattr's kernels") == 1

    def other(v):                                  # somebody else's numba code: no notice
        return v + 1.0

    monkeypatch.setitem(progress._compile_state, "noticed", False)
    numba.njit(other)(1.0)
    assert stderr.getvalue().count("compiling") == 1


# --------------------------------------------------------------------------------------------
# quad on piecewise-linear networks
# --------------------------------------------------------------------------------------------
def test_quad_on_a_piecewise_linear_network_warns_that_exact_is_exact_and_cheaper():
    with pytest.warns(RefattrWarning, match=r"rule='quad' on a piecewise-linear network.*rule='exact'") as caught:
        quad = integrated_gradients(saturating(), [[16.033]], rule="quad")
    assert caught[0].filename == __file__           # the warning names the caller's line
    # what it says is so: exact gives IG = 1 (the integrand is 16.033 on [0, 1/16.033)) in 1 gradient
    # per piece, 2 pieces, against quad's many evaluations
    exact = integrated_gradients(saturating(), [[16.033]], rule="exact")
    assert exact.values[0, 0] == pytest.approx(1.0, rel=1e-15) and exact.options["n_pieces"][0] == 2
    assert quad.options["n_evaluations"] > 100


def test_no_warning_where_quad_is_the_right_rule():
    # pyproject turns warnings into errors: these calls would fail if they warned
    smooth = Sequential([Dense([[2.0]]), Tanh(), Dense([[1.0]])])
    integrated_gradients(smooth, [[1.0]], rule="quad")
    integrated_gradients(saturating(), [[16.033]])                    # auto picks exact
    integrated_gradients(saturating(), [[16.033]], rule="gauss_legendre")


# --------------------------------------------------------------------------------------------
# the evaluation budget
# --------------------------------------------------------------------------------------------
def test_quad_stops_at_its_budget_and_reports_the_estimate_reached():
    # f(x) = 1 - relu(1 - x) at x = 16.033 from 0: IG = f(16.033) - f(0) = 1 (completeness in 1-D).
    # quad evaluates [0, 1] (17 points) and then bisects the one interval holding the jump at
    # 1/16.033 per round (34 points; the other half is constant, its bound 0): 17, 51, 85; the next
    # split would make 119 > 100
    with pytest.warns(RefattrWarning), pytest.raises(ResourceError) as caught:
        integrated_gradients(saturating(), [[16.033]], rule="quad", max_evaluations=100)
    err = caught.value
    partial = err.partial
    value, estimate = partial.values[0, 0], partial.error_estimate[0]
    message = str(err)
    assert "max_evaluations: 1 of 1 examples used their budget of 100 evaluations" in message
    assert "example 0: " in message and "85 evaluations" in message
    assert f"sum of attributions {value:.10g} against t(x) - t(x') = 1, " in message
    assert f"error estimate {estimate:.3g}" in message
    assert "larger rtol" in message and "rule='exact'" in message and "rule='gauss_legendre'" in message
    # the estimate reached is honest, and it is short of the tolerance (that is why it stopped)
    assert abs(value - 1.0) <= estimate
    assert estimate > 1e-10 * abs(value)
    assert not partial.options["quad_converged"][0]


def test_a_budget_that_is_not_reached_changes_nothing():
    net, x = mixed_net(), X
    for rule in ("quad", "piecewise"):
        free = integrated_gradients(net, x, target=1, rule=rule)
        # piecewise: the most any example used; quad: the batch's total, above any one example's
        budget = int(np.max(free.options["n_evaluations"]))
        capped = integrated_gradients(net, x, target=1, rule=rule, max_evaluations=budget)
        np.testing.assert_array_equal(capped.values, free.values)
        np.testing.assert_array_equal(capped.error_estimate, free.error_estimate)


def test_piecewise_stops_at_its_budget_and_reports_the_estimate_reached():
    # f(x) = tanh(3 relu(x - 0.3)) from 0 to 1: IG = tanh(2.1) - tanh(0) = tanh(2.1); the kink at
    # alpha = 0.3 is located, then the smooth piece [0.3, 1] needs Gauss-Legendre orders far above the
    # first two before rtol = 1e-10, which 40 evaluations do not allow
    net = Sequential([Dense([[1.0]], [-0.3]), ReLU(), Dense([[3.0]]), Tanh(), Dense([[1.0]])])
    with pytest.raises(ResourceError) as caught:
        integrated_gradients(net, [[1.0]], rule="piecewise", max_evaluations=40)
    partial = caught.value.partial
    value, estimate = partial.values[0, 0], partial.error_estimate[0]
    used = int(partial.options["n_evaluations"][0])
    assert used <= 40
    message = str(caught.value)
    assert f"{used:,} evaluations" in message and f"t(x) - t(x') = {np.tanh(2.1):.10g}" in message
    assert "rule='exact'" not in message                    # not piecewise linear: not offered
    assert abs(value - np.tanh(2.1)) <= estimate and estimate > 1e-10 * abs(value)
    # with the budget it needs, the same call converges
    full = integrated_gradients(net, [[1.0]], rule="piecewise")
    assert full.options["piecewise_converged"][0] and abs(full.values[0, 0] - np.tanh(2.1)) <= 1e-12


def test_the_budget_is_per_example_and_baseline_pair():
    samples = np.array([[0.0], [0.5]])
    with pytest.warns(RefattrWarning), pytest.raises(ResourceError) as caught:
        integrated_gradients(saturating(), [[16.033]], baseline_samples=samples, rule="quad", max_evaluations=100)
    message = str(caught.value)
    assert "of 2 paths used their budget" in message and "example 0, baseline 0: " in message
    assert re.search(r"example 0, baseline 1: .*?(\d+) evaluations", message)


@pytest.mark.parametrize("bad", [16, 0, 2.5, True, "100"])
def test_max_evaluations_is_validated(bad):
    with pytest.raises(ArgumentError, match=r"max_evaluations: expected None \(no budget\) or an int >= 17"):
        integrated_gradients(relu_net(), X, target=0, rule="piecewise", max_evaluations=bad)


def test_compare_captum_shows_the_methods_it_has_run(terminal):
    pytest.importorskip("captum")
    from refattr.interop import compare_captum

    stderr = terminal()
    report = compare_captum(relu_net(), X, targets=1, methods=["Saliency", "DeepLift", "IntegratedGradients"],
                            ig_methods=["gausslegendre"])
    line = last_line(stderr.getvalue())
    assert line.startswith("compare with Captum: 3/3 methods [") and report.all_explained
    assert "integrated gradients" not in stderr.getvalue()      # the reference's own line stays silent inside


def test_the_result_a_budget_reached_is_split_per_input_on_a_graph_of_two_inputs():
    """A two-input graph t = tanh(3 relu(a + b - 0.3)): piecewise integration stopped by its budget;
    err.partial holds one array per input, as a finished result would, and its values sum (over both
    inputs) to the packed partial's, which is within its own estimate of t(x) - t(x')."""
    g = Graph(("a", "b"), [("s", Add(), ("a", "b")), ("h", Dense([[1.0]], [-0.3]), "s"), ("r", ReLU(), "h"),
                           ("u", Dense([[3.0]]), "r"), ("t", Tanh(), "u"), ("y", Dense([[1.0]]), "t")],
              input_shape=[(1,), (1,)])
    with pytest.raises(ResourceError) as caught:
        integrated_gradients(g, (np.array([[0.6]]), np.array([[0.4]])), rule="piecewise", max_evaluations=40)
    partial = caught.value.partial
    assert isinstance(partial.values, tuple) and [v.shape for v in partial.values] == [(1, 1), (1, 1)]
    total = partial.values[0][0, 0] + partial.values[1][0, 0]
    assert abs(total - np.tanh(3 * 0.7)) <= partial.error_estimate[0] + 1e-12
