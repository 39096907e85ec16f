"""The property checks of refattr.axioms: known violations are found, theorems are not contradicted,
and every witness is re-verified here from its plain weight lists by calling the methods directly
(not through refattr.axioms, and not by trusting the numbers the check stored).

Expected numbers are derived by hand in the comments. Papers: Sundararajan, Taly & Yan 2017
("Axiomatic attribution for deep networks"); Shrikumar, Greenside & Kundaje 2017 (DeepLIFT);
Springenberg et al. 2015 (guided backprop); Ancona et al. 2018.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from refattr import (AvgPool2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Swish, Tanh, deconvnet,
                     gradient, guided_backprop, input_x_gradient)
from refattr.axioms import (FAILS, HOLDS, NOT_APPLICABLE, PROPERTIES, SPECS, MethodSpec, check,
                            network_from_layers, network_to_layers, recheck)
from refattr.layers import Conv2D

# ------------------------------------------------------------------------------------------------
# independent helpers: rebuild a witness's network and call a method without refattr.axioms
# ------------------------------------------------------------------------------------------------


def rebuild(layers):
    """A Sequential from a witness's plain layer dicts (Dense, ReLU, MaxPool2D and Flatten occur)."""
    out = []
    for layer in layers:
        kind = layer["layer"]
        if kind == "Dense":
            out.append(Dense(layer["weight"], layer["bias"]))
        elif kind == "ReLU":
            out.append(ReLU())
        elif kind == "MaxPool2D":
            out.append(MaxPool2D(tuple(layer["kernel"]), stride=tuple(layer["stride"])))
        elif kind == "Flatten":
            out.append(Flatten())
        else:  # pragma: no cover
            pytest.fail(f"unexpected layer {kind} in a witness")
    return Sequential(out)


def call(method, net, x, baseline, target=None):
    """The attributions of the method a spec name stands for, computed by the public function."""
    if method in ("gradient", "guided_backprop", "deconvnet", "input_x_gradient"):
        fn = {"gradient": gradient, "guided_backprop": guided_backprop, "deconvnet": deconvnet,
              "input_x_gradient": input_x_gradient}[method]
        return fn(net, x, target).values
    if method.startswith("ig_"):
        ig = pytest.importorskip("refattr.methods.integrated_gradients").integrated_gradients
        rule, n = {"ig_exact": ("exact", 50), "ig_gauss_legendre_50": ("gauss_legendre", 50),
                   "ig_right_50": ("right", 50)}[method]
        return ig(net, x, baseline=baseline, target=target, rule=rule, n_steps=n).values
    dl = pytest.importorskip("refattr.methods.deeplift").deeplift
    rule = {"deeplift_rescale": "rescale", "deeplift_reveal_cancel": "reveal_cancel"}[method]
    maxpool = "delta_routing" if any(isinstance(l, MaxPool2D) for l in net.layers) else None
    return dl(net, x, baseline=baseline, target=target, rule=rule, maxpool_rule=maxpool).values


def f_of(net, x):
    return net(x)[:, 0]


def probes(shape, n=400, seed=1):
    return np.random.default_rng(seed).normal(size=(n,) + tuple(shape[1:])) * 3.0


def needs_module(method):
    if method.startswith("ig_"):
        pytest.importorskip("refattr.methods.integrated_gradients")
    elif method.startswith("deeplift"):
        pytest.importorskip("refattr.methods.deeplift")


# ------------------------------------------------------------------------------------------------
# known violations
# ------------------------------------------------------------------------------------------------


def test_gradient_fails_sensitivity_on_the_tutorials_saturating_unit():
    result = check("sensitivity", "gradient")
    assert result.verdict == FAILS
    w = result.witness
    net = rebuild(w.networks["f"])
    x, xb = np.array(w.x), np.array(w.baseline)
    # f(x) = 1 - relu(1 - x): f(2) = 1 - 0 = 1, f(0) = 1 - 1 = 0; f'(2) = 0 (the ReLU is closed).
    assert (x.item(), xb.item()) == (2.0, 0.0)
    assert f_of(net, x)[0] - f_of(net, xb)[0] == 1.0
    assert gradient(net, x).values[0, 0] == 0.0


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_backprop_and_deconvnet_fail_completeness(method):
    result = check("completeness", method)
    assert result.verdict == FAILS
    w = result.witness
    net = rebuild(w.networks["f"])
    x, xb = np.array(w.x), np.array(w.baseline)
    # The saturating unit again: the signal arriving at the ReLU is the output weight -1, which both
    # methods discard, so the attributions sum to 0 while f(2) - f(0) = 1.
    total = call(method, net, x, xb).sum()
    assert total == 0.0
    assert f_of(net, x)[0] - f_of(net, xb)[0] == 1.0


@pytest.mark.parametrize("method, on_f, on_g", [
    # Rescale on f = relu(relu(x1) - 1 - relu(x2)) at x = (3, 1), x' = 0: h = 3 - 1 - 1 = 1 from -1, so the
    # outer multiplier is relu-difference 1 over pre-activation difference 2 = 1/2; x1 gets 3 * 1/2, x2 gets
    # 1 * (-1) * 1/2. On g = relu(relu(x1 - 1) - relu(x2)): relu(x1 - 1) goes 0 -> 2 while x1 - 1 goes -1 -> 2,
    # multiplier 2/3, so x1 gets 3 * 2/3 = 2; the outer ReLU goes 0 -> 1 with pre-activation 0 -> 1
    # (multiplier 1), so x2 gets -1 (Sundararajan et al. 2017, section 2.2).
    ("deeplift_rescale", [1.5, -0.5], [2.0, -1.0]),
    # RevealCancel on relu(x1 - x2) (with an idle second ReLU): Δz+ = 3, Δz- = -1, z' = 0;
    # Δy+ = ½(relu(3) - 0) + ½(relu(2) - relu(-1)) = 2.5, Δy- = ½(relu(-1) - 0) + ½(relu(2) - relu(3)) = -0.5.
    # On relu(relu(x1 - x2) - relu(x2 - x1)): v = relu(x2 - x1) has Δv+ = ½, Δv- = -½ (total 0), so the
    # 0.5 rule gives it the mean of the outer unit's multipliers routed by weight -1: if_pos = -1 * M- = -½,
    # if_neg = -1 * M+ = -1 (M+ = 1, M- = ½ from the outer RevealCancel), mean -¾; v's parts then carry
    # -¾ * ½ = -0.375 to x2 and -¾ * (-½) = +0.375 to x1: (2.5 + 0.375, -0.5 - 0.375).
    ("deeplift_reveal_cancel", [2.5, -0.5], [2.875, -0.875]),
])
def test_deeplift_fails_implementation_invariance(method, on_f, on_g):
    pytest.importorskip("refattr.methods.deeplift")
    result = check("implementation_invariance", method)
    assert result.verdict == FAILS
    w = result.witness
    f, g = rebuild(w.networks["f"]), rebuild(w.networks["g"])
    x, xb = np.array(w.x), np.array(w.baseline)
    p = probes(x.shape)
    np.testing.assert_allclose(f_of(f, p), f_of(g, p), rtol=0, atol=1e-12)   # the same function
    np.testing.assert_allclose(call(method, f, x, xb)[0], on_f, rtol=1e-12)
    np.testing.assert_allclose(call(method, g, x, xb)[0], on_g, rtol=1e-12)


def test_guided_backprop_fills_the_tutorials_blank_implementation_invariance_cell():
    result = check("implementation_invariance", "guided_backprop")
    assert result.verdict == FAILS
    w = result.witness
    f, g = rebuild(w.networks["f"]), rebuild(w.networks["g"])
    x = np.array(w.x)
    # relu(x1) + relu(x2) against 2 relu(x1) - relu(x1) + relu(x2) at x = (1, 2): the negative path of the
    # split unit is dropped (signal -1 < 0), so x1 gets 2 instead of 1.
    np.testing.assert_array_equal(guided_backprop(f, x).values, [[1.0, 1.0]])
    np.testing.assert_array_equal(guided_backprop(g, x).values, [[2.0, 1.0]])


def test_deeplift_rescale_breaks_symmetry_off_every_kink():
    pytest.importorskip("refattr.methods.deeplift")
    w = check("symmetry_preserving", "deeplift_rescale").witness
    net = rebuild(w.networks["f"])
    x, xb = np.array(w.x), np.array(w.baseline)
    # Hand computation at x = (3, 3), x' = (0.5, 0.5). First term relu(relu(x1) - 1 - relu(2 - x2)):
    # relu(x1) multiplier 1; relu(2 - x2) goes 1.5 -> 0 over -2.5, multiplier 0.6; the outer pre-activation
    # goes -2 -> 2, output 0 -> 2, multiplier 1/2. x1: 2.5 * 1/2 = 1.25; x2: 2.5 * 0.6 * 1/2 = 0.75.
    # Second term relu(relu(x2 - 1) - relu(2 - x1)): relu(x2 - 1) goes 0 -> 2 over 2.5, multiplier 0.8;
    # outer pre-activation -1.5 -> 2, output 0 -> 2, multiplier 4/7. x2: 2.5 * 0.8 * 4/7 = 8/7;
    # x1: 2.5 * 0.6 * 4/7 = 6/7. Totals: x1 = 1.25 + 6/7 = 59/28, x2 = 0.75 + 8/7 = 53/28.
    swapped = probes(x.shape)[:, ::-1]
    np.testing.assert_allclose(f_of(net, probes(x.shape)), f_of(net, swapped), atol=1e-12)
    np.testing.assert_allclose(call("deeplift_rescale", net, x, xb)[0], [59 / 28, 53 / 28], rtol=1e-12)
    # Integrated gradients, symmetric by theorem, splits the same change (4 - 0) equally.
    pytest.importorskip("refattr.methods.integrated_gradients")
    np.testing.assert_allclose(call("ig_exact", net, x, xb)[0], [2.0, 2.0], rtol=1e-12)


def test_deeplift_fills_the_blank_specificity_cell():
    pytest.importorskip("refattr.methods.deeplift")
    w = check("specificity", "deeplift_rescale").witness
    net = rebuild(w.networks["f"])
    x, xb = np.array(w.x), np.array(w.baseline)
    # F = f - g + relu(x3) with Sundararajan et al.'s f and g: phi(F) = phi(f) - phi(g) on x1, x2, i.e.
    # (1.5 - 2, -0.5 + 1) = (-0.5, 0.5), and relu(x3) takes its full change 1.
    p = probes(x.shape)
    q = p.copy()
    q[:, :2] = np.random.default_rng(7).normal(size=(p.shape[0], 2)) * 3.0
    np.testing.assert_allclose(f_of(net, p), f_of(net, q), atol=1e-12)   # F ignores x1 and x2
    np.testing.assert_allclose(call("deeplift_rescale", net, x, xb)[0], [-0.5, 0.5, 1.0], rtol=1e-12)


def test_continuity_integrated_gradients_jumps_when_the_reference_is_on_a_kink():
    pytest.importorskip("refattr.methods.integrated_gradients")
    result = check("continuity", "ig_exact")
    assert result.verdict == FAILS
    w = result.witness
    net = rebuild(w.networks["f"])
    xb = np.array(w.baseline)
    # f = relu(x1 - x2), x' = (0, 0): for x = (1 + e, 1) the whole path has x1 > x2 and
    # IG = ((1 + e) * 1, 1 * (-1)); for x = (1 - e, 1) the path has x1 < x2 and IG = (0, 0).
    for e in (1e-3, 1e-9):
        plus = call("ig_exact", net, np.array([[1 + e, 1.0]]), xb)[0]
        minus = call("ig_exact", net, np.array([[1 - e, 1.0]]), xb)[0]
        np.testing.assert_allclose(plus, [1 + e, -1.0], rtol=1e-12)
        np.testing.assert_array_equal(minus, [0.0, 0.0])
    # On the tutorial's example the jump shrinks like eps: IG = f(x) - f(0) for one feature.
    assert "the jump is 0.001, 1e-06, 1e-09" in result.explanation


# ------------------------------------------------------------------------------------------------
# theorems are not contradicted
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prop", ["completeness", "implementation_invariance", "linearity", "symmetry_preserving",
                                  "sensitivity", "specificity"])
def test_exact_integrated_gradients_satisfies_its_theorems(prop):
    pytest.importorskip("refattr.methods.integrated_gradients")
    result = check(prop, "ig_exact")
    assert result.verdict == HOLDS
    assert result.witness is None
    assert result.basis.startswith("theorem:")
    assert result.tried.n_cases >= 10


@pytest.mark.parametrize("prop", ["sensitivity", "completeness", "linearity"])
@pytest.mark.parametrize("method", ["deeplift_rescale", "deeplift_reveal_cancel"])
def test_deeplift_satisfies_its_theorems(prop, method):
    pytest.importorskip("refattr.methods.deeplift")
    result = check(prop, method)
    assert result.verdict == HOLDS
    assert result.basis.startswith("theorem")


def test_gradient_holds_implementation_invariance_with_a_kink_caveat():
    result = check("implementation_invariance", "gradient")
    assert result.verdict == HOLDS and result.caveat is not None and result.caveat.on_kink
    c = result.caveat
    f, g = rebuild(c.networks["f"]), rebuild(c.networks["g"])
    x = np.array(c.x)
    # x1 - x2 against relu(x1 - x2) - relu(x2 - x1) at (1, 1): both ReLUs sit on their kink and
    # ReLU'(0) = 0 zeroes the second form's gradient.
    np.testing.assert_array_equal(gradient(f, x).values, [[1.0, -1.0]])
    np.testing.assert_array_equal(gradient(g, x).values, [[0.0, 0.0]])


# ------------------------------------------------------------------------------------------------
# every witness, re-verified independently
# ------------------------------------------------------------------------------------------------

def verify_independently(w):
    """Recompute the violation a witness claims, with the public methods and fresh probes."""
    method = w.method
    x, xb = np.array(w.x), np.array(w.baseline)
    assert w.target is None   # every witness explains the single output
    nets = {k: rebuild(v) for k, v in w.networks.items()}
    tol = 1e-6
    if w.property == "reference_based":
        other = np.broadcast_to(np.array(w.extra["other_baseline"]), x.shape).copy()
        np.testing.assert_array_equal(call(method, nets["f"], x, xb), call(method, nets["f"], x, other))
    elif w.property == "sensitivity":
        i = int(w.extra["feature"])
        assert np.count_nonzero((x - xb).ravel()) == 1 and (x - xb).ravel()[i] != 0
        assert abs(f_of(nets["f"], x)[0] - f_of(nets["f"], xb)[0]) > tol
        assert call(method, nets["f"], x, xb).ravel()[i] == 0.0
    elif w.property == "specificity":
        dummies = [int(i) for i in w.extra["dummies"]]
        p = probes(x.shape)
        q = p.copy()
        q[:, dummies] = np.random.default_rng(3).normal(size=(p.shape[0], len(dummies))) * 3.0
        np.testing.assert_allclose(f_of(nets["f"], p), f_of(nets["f"], q), atol=1e-12)
        assert np.abs(call(method, nets["f"], x, xb).ravel()[dummies]).max() > tol
    elif w.property == "continuity":
        d = np.array(w.extra["direction"])[None]
        e = 1e-9
        jump = np.abs(call(method, nets["f"], x + e * d, xb) - call(method, nets["f"], x - e * d, xb)).max()
        assert jump > 1e-3
        assert abs(f_of(nets["f"], x + e * d)[0] - f_of(nets["f"], x - e * d)[0]) < 1e-8   # f itself is continuous
    elif w.property == "completeness":
        gap = call(method, nets["f"], x, xb).sum() - (f_of(nets["f"], x)[0] - f_of(nets["f"], xb)[0])
        assert abs(gap) > tol
    elif w.property == "implementation_invariance":
        p = probes(x.shape)
        np.testing.assert_allclose(f_of(nets["f"], p), f_of(nets["g"], p), atol=1e-12)
        assert np.abs(call(method, nets["f"], x, xb) - call(method, nets["g"], x, xb)).max() > tol
    elif w.property == "linearity":
        a, b = w.extra["a"], w.extra["b"]
        p = probes(x.shape)
        np.testing.assert_allclose(f_of(nets["combined"], p), a * f_of(nets["g"], p) + b * f_of(nets["h"], p),
                                   atol=1e-12)
        mix = a * call(method, nets["g"], x, xb) + b * call(method, nets["h"], x, xb)
        assert np.abs(call(method, nets["combined"], x, xb) - mix).max() > tol
    elif w.property == "symmetry_preserving":
        i, j = (int(v) for v in w.extra["pair"])
        assert x.ravel()[i] == x.ravel()[j] and xb.ravel()[i] == xb.ravel()[j]
        p = probes(x.shape)
        q = p.copy()
        q[:, [i, j]] = q[:, [j, i]]
        np.testing.assert_allclose(f_of(nets["f"], p), f_of(nets["f"], q), atol=1e-12)
        phi = call(method, nets["f"], x, xb).ravel()
        assert abs(phi[i] - phi[j]) > tol
    else:  # pragma: no cover
        pytest.fail(f"unknown property {w.property}")


CELLS = [(p, m) for p in PROPERTIES for m in SPECS]


@pytest.mark.parametrize("prop, method", CELLS, ids=[f"{p}-{m}" for p, m in CELLS])
def test_every_witness_is_reverified(prop, method):
    needs_module(method)
    result = check(prop, method)
    assert result.verdict in (HOLDS, FAILS)
    for w in (result.witness, result.caveat):
        if w is None:
            continue
        assert w.property == prop and w.method == method
        verify_independently(w)
        again = recheck(w)
        assert again.violated
        for key, value in w.numbers.items():
            np.testing.assert_allclose(np.asarray(again.numbers[key], dtype=float), np.asarray(value, dtype=float),
                                       rtol=1e-12, atol=1e-15)
    if result.verdict == FAILS and prop != "reference_based":
        assert result.witness is not None and not result.witness.on_kink
    if result.verdict == HOLDS:
        assert result.witness is None and result.tried.n_cases > 0


# ------------------------------------------------------------------------------------------------
# the audit table
# ------------------------------------------------------------------------------------------------

#: The table the checks produce (the tutorial's columns where they exist): Y = holds, N = fails, and "+" after Y
#: when the property fails only on a ReLU kink (a caveat).
EXPECTED = {
    #                           grad  guided rescale revcan igex  igGL  igR  deconv ixg
    "reference_based":          "N     N      Y       Y      Y     Y     Y    N      N",
    "sensitivity":              "N     N      Y       Y      Y     N     N    N      N",
    "specificity":              "Y+    N      N       N      Y+    Y+    Y+   N      Y+",
    "continuity":               "N     N      N       N      N     N     N    N      N",
    "completeness":             "N     N      Y       Y      Y     N     N    N      N",
    "implementation_invariance": "Y+   N      N       N      Y+    Y+    Y+   N      Y+",
    "symmetry_preserving":      "Y+    N      N       N      Y+    Y+    Y+   N      Y+",
    "linearity":                "Y     N      Y       Y      Y     Y     Y    N      Y",
}


@pytest.fixture(scope="module")
def report():
    pytest.importorskip("refattr.methods.integrated_gradients")
    pytest.importorskip("refattr.methods.deeplift")
    from refattr.axioms.audit import audit
    return audit()


def test_audit_reproduces_the_expected_table(report):
    assert report.methods == tuple(SPECS)
    for prop, row in EXPECTED.items():
        got = []
        for m in report.methods:
            r = report.cell(prop, m)
            got.append({HOLDS: "Y", FAILS: "N"}[r.verdict] + ("+" if r.caveat is not None else ""))
        assert got == row.split(), prop


def test_audit_json_is_identical_across_runs(report):
    from refattr.axioms.audit import audit
    first = report.to_json()
    assert audit().to_json() == first
    data = json.loads(first)
    assert list(data) == sorted(data)
    assert data["table"]["completeness"]["ig_exact"] == "Yes"
    assert data["tutorial_table"]["specificity"]["deeplift"] is None


def test_audit_markdown_flags_contradictions_and_fills_blanks(report):
    md = report.to_markdown()
    assert md.startswith("## Properties of attribution methods")
    # the tutorial's blanks: DeepLIFT specificity and linearity, guided backprop implementation invariance
    assert "No (tutorial: blank)" in md and "Yes (tutorial: blank)" in md
    # contradictions: guided backprop linearity and symmetry, DeepLIFT symmetry and continuity, ...
    kinds = {(c["property"], c["method"]): c for c in report.comparisons()}
    assert kinds[("linearity", "guided_backprop")]["kind"] == "contradicts"
    assert kinds[("symmetry_preserving", "deeplift_rescale")]["kind"] == "contradicts"
    assert kinds[("continuity", "ig_exact")]["kind"] == "contradicts"
    assert kinds[("linearity", "deeplift_rescale")] == {"property": "linearity", "method": "deeplift_rescale",
                                                        "ours": "Yes", "tutorial": None, "kind": "fills blank"}
    assert ("completeness", "ig_exact") not in kinds
    for i in range(1, len(report.comparisons()) + 1):
        assert f"[{i}]" in md


def test_audit_command(capsys):
    pytest.importorskip("refattr.methods.integrated_gradients")
    pytest.importorskip("refattr.methods.deeplift")
    from refattr.axioms.cli import add_audit_command
    parser = argparse.ArgumentParser(prog="refattr")
    add_audit_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["audit"])
    assert args.json is False and args.func(args) == 0
    assert "| Sensitivity |" in capsys.readouterr().out
    assert parser.parse_args(["audit", "--json"]).json is True


AXIOMS_DOC = Path(__file__).resolve().parents[2] / "docs" / "axioms.md"


def _doc_section(heading: str) -> str:
    """The text of docs/axioms.md under ``heading`` (a '## ' heading), up to the next '## '."""
    text = AXIOMS_DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n") + len(heading) + 5
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def test_the_documented_tutorial_table_is_the_one_the_audit_compares_with():
    # Two transcriptions of the tutorial's "Summary" table, one in the docs (markdown, a blank
    # cell empty) and one in the code: a typo in either shows here.
    from refattr.axioms.audit import ROW_LABELS, TUTORIAL_COLUMNS, TUTORIAL_TABLE
    rows = [line for line in _doc_section("The summary table of the tutorial").splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert cells[0] == ["Property", "Gradient", "Guided backprop", "DeepLIFT", "Integrated gradients"]
    label_to_key = {label: key for key, label in ROW_LABELS.items()}
    documented = {label_to_key[row[0]]: dict(zip(TUTORIAL_COLUMNS, [c or None for c in row[1:]]))
                  for row in cells[2:]}
    assert documented == TUTORIAL_TABLE


def test_the_documented_audit_table_is_current(report):
    # docs/axioms.md shows the verdict table `refattr audit` prints; regenerate it (the first
    # table of `refattr audit`) when a check's verdict changes.
    printed = report.to_markdown().split("\n\n")[1]
    assert printed.startswith("| Property |")
    assert printed in _doc_section("What the checks find")


@pytest.mark.parametrize("seed", ["-1", "1.5", "x"])
def test_audit_refuses_a_seed_numpy_cannot_take(seed, capsys):
    # np.random.default_rng(-1) raises ValueError: the parser must stop it first, with exit 2
    from refattr.axioms.cli import add_audit_command
    parser = argparse.ArgumentParser(prog="refattr")
    add_audit_command(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["audit", "--seed", seed])
    assert info.value.code == 2
    assert "--seed" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# plumbing
# ------------------------------------------------------------------------------------------------

def test_networks_round_trip_through_plain_lists(rng):
    layers = [Conv2D(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), stride=(1, 2), padding=(1, 0, 1, 1),
                     dilation=1, groups=1), Swish(0.7), AvgPool2D(2, stride=1, count_include_pad=False), Tanh(),
              MaxPool2D((2, 1)), Sigmoid(), Flatten()]
    net = Sequential(layers)
    n_out = net.output_shape((2, 7, 7))[0]
    net = Sequential(layers + [ReLU(), Dense(rng.normal(size=(2, n_out)), None)])
    plain = network_to_layers(net)
    json.dumps(plain)                                      # plain data only
    again = network_from_layers(json.loads(json.dumps(plain)))
    x = rng.normal(size=(3, 2, 7, 7))
    np.testing.assert_array_equal(again(x), net(x))
    assert network_to_layers(again) == plain


def test_a_method_of_unknown_family_is_judged_by_search_alone():
    pytest.importorskip("refattr.methods.integrated_gradients")
    copy = SPECS["ig_exact"]
    spec = MethodSpec("my_ig", "My IG", copy.attribute, True)
    result = check("completeness", spec)
    assert result.verdict == HOLDS
    assert result.basis.startswith("no counterexample found in ")


def test_an_unavailable_method_is_not_applicable():
    spec = MethodSpec("missing", "Missing", lambda *a: None, True, requires="refattr.no_such_module")
    result = check("completeness", spec)
    assert result.verdict == NOT_APPLICABLE and result.witness is None
