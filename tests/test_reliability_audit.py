"""The classifier of scripts/reliability_audit.py, on fake cases whose outcome is known by construction.

The catalogue itself is not run here (it takes a minute and needs torch / onnx); these tests keep
the classifier and the catalogue's bookkeeping from rotting silently.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from refattr.errors import RefattrError, ShapeError

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability_audit.py"


@pytest.fixture(scope="module")
def audit():
    spec = importlib.util.spec_from_file_location("reliability_audit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module        # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture
def ctx(audit, tmp_path):
    return audit.Context(str(tmp_path))


def outcome(audit, ctx, run, phrases=(), **kw):
    return audit.classify(audit.Case("fake", "fake case", run, tuple(phrases), **kw), ctx)


def raise_(exc):
    def run(ctx):
        raise exc
    return run


def test_other_exception_is_raw(audit, ctx):
    o = outcome(audit, ctx, raise_(KeyError("kernel_shape")), ["kernel_shape"])
    assert (o.cls, o.kind) == ("raw", "builtins.KeyError")
    assert "kernel_shape" in o.message


def test_plain_value_error_is_raw_not_a_refattr_error(audit, ctx):
    # A ValueError that is not a RefattrError must not pass for a refattr error.
    assert outcome(audit, ctx, raise_(ValueError("rtol: bad")), ["rtol"]).cls == "raw"


def test_returning_is_silent(audit, ctx):
    o = outcome(audit, ctx, lambda c: np.zeros((2, 3)), ["x"])
    assert (o.cls, o.kind) == ("silent", "returned")
    assert "(2, 3)" in o.message


def test_a_warning_does_not_make_a_result_less_silent(audit, ctx):
    # 1e308 * 10 overflows with a RuntimeWarning only; the classifier records it, it does not raise.
    o = outcome(audit, ctx, lambda c: np.array([1e308]) * 10.0)
    assert o.cls == "silent"
    assert "RuntimeWarning" in o.message and "non-finite" in o.message


def test_refattr_error_missing_a_phrase_is_unclear(audit, ctx):
    o = outcome(audit, ctx, raise_(ShapeError("x: expected examples of shape (2, 6, 6), got (2, 6, 6)")),
                ["x", "add a batch axis"])
    assert (o.cls, o.kind) == ("unclear", "ShapeError")
    assert o.missing == ["add a batch axis"]


def test_refattr_error_with_every_phrase_is_clear(audit, ctx):
    # Matching ignores case; a tuple of phrases is a set of alternatives.
    o = outcome(audit, ctx, raise_(RefattrError("X: Add a batch axis: x[None]")), ["x", ("batch axis", "x[none]")])
    assert (o.cls, o.missing) == ("clear", [])


def test_verify_turns_a_checked_result_into_correct_or_silent(audit, ctx):
    right = outcome(audit, ctx, lambda c: np.array([1.0, 2.0]),
                    verify=lambda r: None if np.array_equal(r, [1.0, 2.0]) else "wrong")
    wrong = outcome(audit, ctx, lambda c: np.array([1.0, 3.0]),
                    verify=lambda r: None if np.array_equal(r, [1.0, 2.0]) else "wrong values")
    assert right.cls == "correct"
    assert (wrong.cls, wrong.message) == ("silent", "wrong values")


def test_forbidden_side_effect_is_silent_even_after_a_clear_error(audit, ctx, tmp_path):
    marker = tmp_path / "marker"

    def run(c):
        marker.write_text("ran")                       # what a malicious pickle would do
        raise RefattrError("MODEL: refused; pass --trust-pickle to load it")

    o = outcome(audit, ctx, run, ["--trust-pickle"],
                side_effect=lambda c: "marker written" if marker.exists() else None)
    assert o.cls == "silent"
    assert o.message.startswith("SIDE EFFECT: marker written")


@pytest.mark.parametrize("result, phrases, expected", [
    ((2, "", "refattr compare: error: --inputs: 'adir' is a directory\n"), ["--inputs"], "clear"),
    ((2, "", "refattr compare: error: is a directory\n"), ["--inputs"], "unclear"),
    ((2, "", "usage: refattr oracle ...\n"), ["export"], "unclear"),       # exit 2 but no error: line
    ((1, "", "Traceback (most recent call last):\n  ...\nIsADirectoryError: adir\n"), ["--inputs"], "raw"),
    ((2, "", "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"), [], "raw"),
    ((1, "verdict: unexplained\n", ""), ["rtol"], "raw"),                 # exit 1 means "unexplained"
    ((0, "verdict: agree\n", ""), ["attributions"], "silent"),
])
def test_command_line_outcomes(audit, ctx, result, phrases, expected):
    o = outcome(audit, ctx, lambda c: audit.CliResult(*result), phrases)
    assert o.cls == expected


def test_missing_optional_package_is_skipped(audit, ctx):
    case = audit.Case("fake", "needs a package", raise_(KeyError("x")), needs=("refattr_no_such_package_xyz",))
    o = audit.run_case(case, ctx)
    assert (o.cls, o.message) == ("skipped", "needs refattr_no_such_package_xyz")


def test_counts_add_up_by_area_and_class(audit):
    outcomes = [audit.Outcome("a", "1", "clear", "", ""), audit.Outcome("a", "2", "raw", "", ""),
                audit.Outcome("b", "3", "raw", "", "")]
    table = audit.counts(outcomes)
    assert table["a"]["clear"] == 1 and table["a"]["raw"] == 1 and table["b"]["raw"] == 1
    assert table["total"]["raw"] == 2 and sum(table["total"].values()) == 3
    assert "| total" in audit.format_table(table)


def test_catalogue_is_well_formed(audit):
    names = [c.name for c in audit.CASES]
    assert len(names) == len(set(names)), "case names must be unique (isolated cases are looked up by name)"
    assert len(names) >= 120
    for c in audit.CASES:
        assert c.phrases, f"{c.name}: a case must say what a clear message contains"
        assert set(c.needs) <= set(audit.OPTIONAL), c.name
