"""Regenerate the tutorial's summary table from the property checks, every cell backed by evidence.

:func:`audit` runs every check of :data:`refattr.axioms.PROPERTIES` on every method of
:data:`refattr.axioms.SPECS` and returns an :class:`AuditReport`. Its markdown repeats the summary
table of the tutorial "Feature Attribution in Deep Neural Networks" (rows: properties; columns:
methods; transcribed in docs/axioms.md), fills the tutorial's blank cells, flags every cell where
the evidence contradicts the tutorial as e.g. "No (tutorial: Yes)" with a footnote giving the
witness, and adds a second table saying what backs each cell: a theorem, a counterexample, or only
a search. The
JSON holds everything, witnesses included, with sorted keys and floats written to 12 significant
digits, so two runs give identical text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..progress import task
from . import PROPERTIES
from ._core import FAILS, HOLDS, CheckResult, Witness
from .specs import SPECS, MethodSpec, get_spec

__all__ = ["TUTORIAL_TABLE", "TUTORIAL_COLUMNS", "ROW_LABELS", "AuditReport", "audit"]

#: The tutorial's summary table ("Summary" section; docs/axioms.md), transcribed; None is a blank cell.
TUTORIAL_COLUMNS = ("gradient", "guided_backprop", "deeplift", "integrated_gradients")
TUTORIAL_TABLE = {
    "reference_based": {"gradient": "No", "guided_backprop": "No", "deeplift": "Yes", "integrated_gradients": "Yes"},
    "sensitivity": {"gradient": "No", "guided_backprop": "No", "deeplift": "Yes", "integrated_gradients": "Yes"},
    "specificity": {"gradient": "Yes", "guided_backprop": "Yes", "deeplift": None, "integrated_gradients": "Yes"},
    "continuity": {"gradient": "No", "guided_backprop": "No", "deeplift": "Yes", "integrated_gradients": "Yes"},
    "completeness": {"gradient": "No", "guided_backprop": "No", "deeplift": "Yes", "integrated_gradients": "Yes"},
    "implementation_invariance": {"gradient": "Yes", "guided_backprop": None, "deeplift": "No",
                                  "integrated_gradients": "Yes"},
    "symmetry_preserving": {"gradient": "Yes", "guided_backprop": "Yes", "deeplift": "Yes",
                            "integrated_gradients": "Yes"},
    "linearity": {"gradient": "Yes", "guided_backprop": "Yes", "deeplift": None, "integrated_gradients": "Yes"},
}

#: Row labels as the tutorial writes them.
ROW_LABELS = {p: m.TITLE for p, m in PROPERTIES.items()}

_VALUE = {HOLDS: "Yes", FAILS: "No"}


def _stable(obj):
    """Plain JSON data with every float written to 12 significant digits (and -0.0 as 0.0)."""
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if not math.isfinite(v):
            return repr(v)
        v = float(f"{v:.12g}")
        return 0.0 if v == 0 else v
    if isinstance(obj, np.ndarray):
        return _stable(obj.tolist())
    return obj


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v)


def _layer_text(layer: dict) -> str:
    name = layer.get("layer", layer.get("type"))      # a chain's layer, or a graph node's (refattr.network_spec)
    params = [f"{k}={_fmt(v)}" for k, v in layer.items() if k not in ("layer", "type") and v is not None]
    return f"{name}({', '.join(params)})" if params else name


def _network_text(net: list | dict) -> str:
    """A chain as ``A -> B -> C``; a graph as ``[inputs] h = A(x), r = Add(a, x), ...``."""
    if isinstance(net, dict):
        nodes = ", ".join(f"{n['name']} = {_layer_text(n['layer'])}({', '.join(n['inputs'])})" for n in net["nodes"])
        return f"graph of {', '.join(net['inputs'])}: {nodes}"
    return " -> ".join(_layer_text(layer) for layer in net)


def witness_text(w: Witness) -> str:
    """A witness in one paragraph: networks, input, baseline, target, numbers."""
    nets = "; ".join(f"{name} = {_network_text(net)}" for name, net in w.networks.items())
    extra = "".join(f", {k} = {_fmt(v)}" for k, v in w.extra.items())
    numbers = ", ".join(f"{k} = {_fmt(v)}" for k, v in w.numbers.items())
    target = "" if w.target is None else f", target = {w.target}"
    return f"{nets}; x = {_fmt(w.x)}, x' = {_fmt(w.baseline)}{target}{extra}: {numbers}"


@dataclass(frozen=True, eq=False)
class AuditReport:
    """The results of :func:`audit`, by property and method."""

    results: tuple  # of CheckResult, property-major, in the order of properties and methods
    properties: tuple
    methods: tuple  # of spec names
    labels: tuple
    tutorial_columns: tuple  # per method: the tutorial's column it is compared with, or None

    def cell(self, prop: str, method: str) -> CheckResult:
        i = self.properties.index(prop) * len(self.methods) + self.methods.index(method)
        return self.results[i]

    def value(self, prop: str, method: str) -> str:
        """"Yes", "No" or "n/a"."""
        return _VALUE.get(self.cell(prop, method).verdict, "n/a")

    def tutorial_value(self, prop: str, method: str) -> str | None:
        column = self.tutorial_columns[self.methods.index(method)]
        return None if column is None else TUTORIAL_TABLE[prop][column]

    def comparisons(self) -> list[dict]:
        """Every cell that has a tutorial counterpart whose value is blank or different from ours."""
        out = []
        for prop in self.properties:
            for method, column in zip(self.methods, self.tutorial_columns):
                ours = self.value(prop, method)
                if column is None or ours == "n/a":
                    continue
                theirs = TUTORIAL_TABLE[prop][column]
                if theirs != ours:
                    out.append({"property": prop, "method": method, "ours": ours, "tutorial": theirs,
                                "kind": "fills blank" if theirs is None else "contradicts"})
        return out

    def contradictions(self) -> list[dict]:
        return [c for c in self.comparisons() if c["kind"] == "contradicts"]

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "properties": list(self.properties),
            "methods": [{"name": m, "label": l, "tutorial_column": c}
                        for m, l, c in zip(self.methods, self.labels, self.tutorial_columns)],
            "table": {p: {m: self.value(p, m) for m in self.methods} for p in self.properties},
            "tutorial_table": TUTORIAL_TABLE,
            "comparisons_with_tutorial": self.comparisons(),
            "results": {p: {m: self.cell(p, m).to_dict() for m in self.methods} for p in self.properties},
        }

    def to_json(self) -> str:
        """Deterministic JSON: sorted keys, floats to 12 significant digits."""
        return json.dumps(_stable(self.to_dict()), sort_keys=True, indent=1, allow_nan=False)

    def to_markdown(self) -> str:
        notes: list[str] = []
        dagger_notes: dict[str, str] = {}
        header = "| Property | " + " | ".join(self.labels) + " |"
        rule = "| --- | " + " | ".join("---" for _ in self.labels) + " |"
        rows = [header, rule]
        for prop in self.properties:
            cells = []
            for method in self.methods:
                result = self.cell(prop, method)
                text = self.value(prop, method)
                if result.caveat is not None:
                    text += "\u2020"
                    dagger_notes.setdefault(prop, result.caveat.note + " (" + witness_text(result.caveat) + ")")
                column = self.tutorial_columns[self.methods.index(method)]
                theirs = None if column is None else TUTORIAL_TABLE[prop][column]
                if column is not None and text.rstrip("\u2020") != "n/a" and theirs != self.value(prop, method):
                    text += f" (tutorial: {theirs if theirs is not None else 'blank'})"
                    body = result.explanation
                    if result.witness is not None:
                        body += ". Witness: " + witness_text(result.witness)
                    else:
                        body += f". Basis: {result.basis}; tried {result.tried.describe()}"
                    notes.append(body)
                    text += f" [{len(notes)}]"
                cells.append(text)
            rows.append(f"| {ROW_LABELS[prop]} | " + " | ".join(cells) + " |")
        out = ["## Properties of attribution methods (regenerated by `refattr audit`)", "", *rows, ""]
        out.append("Yes/No: the check's verdict. (tutorial: ...) marks a cell where the summary table of the "
                   "tutorial \"Feature Attribution in Deep Neural Networks\" (docs/axioms.md) says otherwise or "
                   "is blank; the note gives the evidence. DeconvNet and input x gradient have no column there. "
                   "The three integrated-gradients columns are compared with the tutorial's one: the tutorial "
                   "speaks of the integral, the quadrature columns of its 50-point approximations.")
        out.append("")
        if dagger_notes:
            out.append("\u2020 Holds wherever the network is differentiable, which is what the theorem assumes. On a "
                       "ReLU kink the computed gradient is a convention (ReLU'(0) = 0; docs/conventions.md, section "
                       "'Kinks and ties'), not a derivative, and the property fails there:")
            out.append("")
            for prop, text in dagger_notes.items():
                out.append(f"- {ROW_LABELS[prop]}: {text}")
            out.append("")
        if notes:
            out.append("Notes:")
            out.append("")
            out.extend(f"{i}. {n}" for i, n in enumerate(notes, 1))
            out.append("")
        out.append("### What backs each cell")
        out.append("")
        out.append("T: a theorem (cited in the JSON's `basis`; for a \"No\" in the reference-based row, the "
                   "method's definition); C: a counterexample (the witness, re-verifiable with "
                   "`refattr.axioms.recheck`); S: a search that found no counterexample. The number is how many cases "
                   "(examples) the check evaluated; a check stops at its first counterexample.")
        out.append("")
        out.append(header)
        out.append(rule)
        for prop in self.properties:
            cells = []
            for method in self.methods:
                r = self.cell(prop, method)
                if r.verdict == FAILS:
                    code = "T" if r.basis.startswith("theorem") else "C"
                elif r.verdict == HOLDS:
                    code = "T" if r.basis.startswith("theorem") else "S"
                else:
                    code = "-"
                n = r.tried.n_cases if r.tried is not None else 0
                cells.append(f"{code} ({n})")
            out.append(f"| {ROW_LABELS[prop]} | " + " | ".join(cells) + " |")
        return "\n".join(out) + "\n"


def audit(methods: Iterable[str | MethodSpec] | None = None, properties: Iterable[str] | None = None, *,
          seed: int = 0) -> AuditReport:
    """Run every property check on every method.

    Parameters
    ----------
    methods : iterable of str or MethodSpec, optional
        Default: every method of ``refattr.axioms.SPECS``, in its order.
    properties : iterable of str, optional
        Default: every property, in the tutorial's row order.
    seed : int
        Random seed of the searches (the report is a deterministic function of it).

    A method whose module cannot be imported gets "not applicable" cells ("n/a").

    On a terminal, a run longer than 2 seconds shows its progress on standard error (checks done,
    the one running, ETA); :mod:`refattr.progress` says how to turn it off.
    """
    specs = [get_spec(m) for m in (SPECS if methods is None else methods)]
    props = list(PROPERTIES if properties is None else properties)
    results = []
    with task("axioms audit", len(props) * len(specs), "checks") as bar:
        for prop in props:
            module = PROPERTIES[prop]
            for spec in specs:
                bar.set(running=f"{prop} / {spec.name}")
                results.append(module.check(spec, seed=seed))
                bar.add(1)
    return AuditReport(tuple(results), tuple(props), tuple(s.name for s in specs), tuple(s.label for s in specs),
                       tuple(s.tutorial_column for s in specs))
