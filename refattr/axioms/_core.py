"""What every property check shares: the result types, tolerances, and networks as plain data.

A check tries one attribution method on networks built to expose one property and returns a
:class:`CheckResult`. When the property fails, the result carries a :class:`Witness`: the networks
as plain nested lists of weights (printable, and rebuilt by :func:`network_from_layers`), the input,
the baseline, the target and the violating numbers, so that anyone can recompute the violation
(:func:`refattr.axioms.recheck`). When it holds, the result says how many cases of which kind were
tried, and whether the claim rests on a theorem or only on a search that found no counterexample.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import RuleError, UnsupportedLayerError
from ..layers.registry import from_config, info, to_config
from ..methods._common import pick
from ..graph import Graph
from ..network import Network, Sequential
from ..network_spec import network_from_spec, network_to_spec
from ..validation import as_target

__all__ = [
    "HOLDS", "FAILS", "NOT_APPLICABLE", "VERDICTS", "ZERO_RTOL", "AGREE_RTOL", "JUMP_RTOL",
    "Witness", "Tried", "CheckResult", "Recheck", "Case",
    "network_to_layers", "network_from_layers", "scalar_output", "scale_of", "run_cases",
]

HOLDS = "holds"
FAILS = "fails"
NOT_APPLICABLE = "not applicable"
VERDICTS = (HOLDS, FAILS, NOT_APPLICABLE)

#: An attribution counts as zero when |phi_i| <= ZERO_RTOL * scale, with scale the largest of 1,
#: |f(x)|, |f(x')| and max |phi|. Exact methods give zeros that are exactly 0.0 or off by a few ulps
#: (1e-16 relative); every violation below is at least 1e-3. 1e-9 sits far from both.
ZERO_RTOL = 1e-9

#: Two attribution vectors agree when max |phi - psi| <= AGREE_RTOL * scale (same reasoning: equal
#: up to a few hundred roundings, or different by at least 1e-3 in every witness).
AGREE_RTOL = 1e-9

#: Continuity: the jump |phi(x_c + eps d) - phi(x_c - eps d)| of a continuous (here Lipschitz)
#: attribution shrinks like eps; at eps = 1e-9 it is below 1e-8 for every network used. A jump still
#: above JUMP_RTOL * scale at eps = 1e-9 does not go to zero: the attribution is discontinuous.
JUMP_RTOL = 1e-6

#: The step sizes at which a jump is measured, largest first.
JUMP_EPSILONS = (1e-3, 1e-6, 1e-9)


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Witness:
    """A counterexample, as plain data that can be printed and rebuilt.

    Attributes
    ----------
    property, method : str
        Which property fails for which method (a key of ``refattr.axioms.PROPERTIES`` and of
        ``refattr.axioms.SPECS``).
    networks : dict of str -> list of dict
        Each network as its layers in order, e.g. ``{"layer": "Dense", "weight": [[1.0, -1.0]],
        "bias": [0.0]}`` or ``{"layer": "ReLU"}``; :func:`network_from_layers` rebuilds it. Names
        are property-specific: ``"f"``; ``"f"`` and ``"g"`` (two implementations of one function);
        ``"g"``, ``"h"`` and ``"combined"`` (linearity).
    x, baseline : nested lists
        One example, with the batch axis (shape (1, *example_shape)). ``baseline`` is x' (for a
        method that takes none it is the comparison point the property speaks of).
    target : int or None
        Which output is explained (None: the network has one output).
    numbers : dict
        The violating numbers, property-specific (attributions, f(x), f(x'), gaps, jumps).
    extra : dict
        Property-specific parameters needed to recompute the numbers (the feature index, the pair
        of symmetric features, the coefficients a and b, the direction and step sizes, ...).
    note : str
        One line: what the witness shows.
    on_kink : bool
        True when the violation needs an input or a whole integration path on a ReLU kink, where
        refattr's convention ReLU'(0) = 0 (docs/conventions.md, section 'Kinks and ties') stands in for
        a derivative that does not exist: outside the hypotheses of the theorem that says the property holds.
    """

    property: str
    method: str
    networks: dict
    x: list
    baseline: list
    target: int | None
    numbers: dict
    extra: dict = field(default_factory=dict)
    note: str = ""
    on_kink: bool = False

    def to_dict(self) -> dict:
        return {"property": self.property, "method": self.method, "networks": self.networks,
                "x": self.x, "baseline": self.baseline, "target": self.target,
                "numbers": self.numbers, "extra": self.extra, "note": self.note,
                "on_kink": self.on_kink}


@dataclass(frozen=True)
class Tried:
    """How many cases (examples) a check evaluated, by kind, in the order they were tried."""

    n_cases: int
    kinds: tuple  # of (kind, count) pairs

    def describe(self) -> str:
        return f"{self.n_cases} cases (" + "; ".join(f"{k}: {n}" for k, n in self.kinds) + ")"

    def to_dict(self) -> dict:
        return {"n_cases": self.n_cases, "kinds": [[k, n] for k, n in self.kinds]}


@dataclass(frozen=True, eq=False)
class CheckResult:
    """The evidence one check found for one (property, method) pair.

    Attributes
    ----------
    property, method : str
    verdict : str
        ``"holds"``, ``"fails"`` or ``"not applicable"`` (the method cannot be run here).
    basis : str
        ``"theorem: <citation>"`` when a proof says the property holds, ``"counterexample: ..."``
        when it fails, or ``"no counterexample found in N cases"`` when only the search speaks.
    explanation : str
        One line.
    witness : Witness or None
        The counterexample, when the verdict is "fails".
    tried : Tried or None
        What was evaluated (also for "fails": the cases tried up to and including the witness).
    caveat : Witness or None
        When the verdict is "holds": a violation found only on a ReLU kink (``on_kink``), outside
        the theorem's hypotheses; the table marks such cells with a dagger.
    """

    property: str
    method: str
    verdict: str
    basis: str
    explanation: str
    witness: Witness | None = None
    tried: Tried | None = None
    caveat: Witness | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        return {"property": self.property, "method": self.method, "verdict": self.verdict,
                "basis": self.basis, "explanation": self.explanation,
                "witness": None if self.witness is None else self.witness.to_dict(),
                "tried": None if self.tried is None else self.tried.to_dict(),
                "caveat": None if self.caveat is None else self.caveat.to_dict()}


@dataclass(frozen=True, eq=False)
class Recheck:
    """The numbers of a witness recomputed from scratch, and whether they still violate."""

    violated: bool
    numbers: dict


# ------------------------------------------------------------------------------------------------
# networks as plain data
# ------------------------------------------------------------------------------------------------

def network_to_layers(net: Network) -> list | dict:
    """``net`` as plain data (floats, ints, bools, str and lists only).

    A chain is a list with one dict per layer, ``{"layer": name}`` plus every constructor argument
    of the layer, read from the layer registry (:func:`refattr.layers.registry.to_config`): arrays as
    nested lists, tuples as lists, and None for an argument that is None (a Dense layer without bias
    has ``"bias": None``). A graph is written in the form of :mod:`refattr.network_spec` (a dict with
    ``"inputs"`` and ``"nodes"``, arrays inline). A newly registered layer is written with no change
    here.
    """
    if isinstance(net, Graph):
        return network_to_spec(net)
    out = []
    for layer in net.layers:
        config = to_config(layer)
        plain: dict = {"layer": config["type"]}
        for argument in info(layer).arguments:
            if argument in config["arrays"]:
                plain[argument] = config["arrays"][argument].tolist()
            else:
                plain[argument] = config["params"].get(argument)
        out.append(plain)
    return out


def network_from_layers(layers: Iterable[dict] | dict) -> Network:
    """Rebuild a network from :func:`network_to_layers`' plain data.

    In a chain's list every key but ``"layer"`` is passed to the layer's constructor (a list as a
    tuple, which the constructors read as an array or as a tuple of ints alike); a value None is
    left out, so the constructor's default applies. A dict is a graph
    (:func:`refattr.network_spec.network_from_spec`).
    """
    if isinstance(layers, dict):
        return network_from_spec(layers)
    built = []
    for i, spec in enumerate(layers):
        arguments = {k: v for k, v in spec.items() if k != "layer" and v is not None}
        try:
            built.append(from_config({"type": spec.get("layer"), "params": arguments}))
        except UnsupportedLayerError as error:
            raise UnsupportedLayerError(f"layers[{i}]: {error}") from None
    return Sequential(built)


# ------------------------------------------------------------------------------------------------
# small numerical helpers
# ------------------------------------------------------------------------------------------------

def scalar_output(net: Sequential, x: np.ndarray, target) -> np.ndarray:
    """t_n = f(x_n)[target], shape (N,)."""
    out = net(x)
    return pick(out, as_target(target, out.shape[0], out.shape[1]))


def scale_of(*arrays) -> np.ndarray:
    """Per example: the largest of 1 and every |entry| of the given (N, ...) or (N,) arrays."""
    n = np.asarray(arrays[0]).shape[0]
    s = np.ones(n)
    for a in arrays:
        a = np.abs(np.asarray(a, dtype=np.float64)).reshape(n, -1)
        s = np.maximum(s, a.max(axis=1) if a.shape[1] else 0.0)
    return s


def flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def round_list(a) -> list:
    """An array (or scalar) as plain Python floats, for a witness."""
    return np.asarray(a, dtype=np.float64).tolist()


# ------------------------------------------------------------------------------------------------
# the search driver
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Case:
    """A batch of examples on which a property is evaluated.

    ``networks`` maps names to Sequential networks; ``x`` and ``baseline`` are (N, ...) arrays;
    ``extra`` holds property-specific parameters shared by the whole batch (plain numbers, lists or
    arrays). ``on_kink`` marks cases placed on a ReLU kink on purpose (caveats).
    """

    kind: str
    networks: dict
    x: np.ndarray
    baseline: np.ndarray
    target: int | None = None
    extra: dict = field(default_factory=dict)
    note: str = ""
    on_kink: bool = False

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


#: Errors that mean "this method does not apply to this network" (e.g. exact integrated gradients
#: on a tanh network): the case is skipped and counted as such, never treated as evidence.
INAPPLICABLE = (RuleError, UnsupportedLayerError)


def _plain(extra: dict) -> dict:
    return {k: (round_list(v) if isinstance(v, np.ndarray) else v) for k, v in extra.items()}


def run_cases(prop: str, spec, cases: Iterator[Case], evaluate: Callable, stop_on_kink: bool = False):
    """Evaluate ``cases`` in order until one violates the property away from kinks.

    ``evaluate(spec, case)`` returns ``(violated, numbers)``: a bool array (N,) and a list of N
    dicts. Returns ``(witness, caveat, tried, n_skipped)``: the first generic counterexample (None if
    none), the first on-kink counterexample seen (None if none), what was tried, and how many
    examples were skipped because the method does not apply to their network.
    """
    counts: Counter = Counter()
    order: list[str] = []
    witness = caveat = None
    skipped = 0
    for case in cases:
        if case.on_kink and witness is not None:
            break
        try:
            violated, numbers = evaluate(spec, case)
        except INAPPLICABLE:
            skipped += case.size
            continue
        kind = case.kind
        if kind not in counts:
            order.append(kind)
        counts[kind] += case.size
        hits = np.flatnonzero(violated)
        if hits.size:
            n = int(hits[0])
            w = Witness(
                property=prop, method=spec.name,
                networks={k: network_to_layers(v) for k, v in case.networks.items()},
                x=round_list(case.x[n:n + 1]), baseline=round_list(case.baseline[n:n + 1]),
                target=case.target, numbers=numbers[n], extra=_plain(case.extra),
                note=case.note, on_kink=case.on_kink)
            if case.on_kink:
                caveat = caveat or w
                if stop_on_kink:
                    break
            else:
                witness = w
                break
    tried = Tried(sum(counts.values()), tuple((k, counts[k]) for k in order))
    return witness, caveat, tried, skipped


def rebuild(witness: Witness) -> dict:
    """The witness's networks rebuilt, and its input and baseline as float64 arrays."""
    nets = {k: network_from_layers(v) for k, v in witness.networks.items()}
    return {"networks": nets, "x": np.asarray(witness.x, dtype=np.float64),
            "baseline": np.asarray(witness.baseline, dtype=np.float64)}


def case_from_witness(witness: Witness) -> Case:
    r = rebuild(witness)
    extra = {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v) for k, v in witness.extra.items()}
    return Case(kind="recheck", networks=r["networks"], x=r["x"], baseline=r["baseline"],
                target=witness.target, extra=extra, note=witness.note, on_kink=witness.on_kink)


def attribution(spec, net: Sequential, x: np.ndarray, baseline: np.ndarray, target) -> np.ndarray:
    """The method's attributions as a float64 array of x's shape (the spec's callable, checked)."""
    values = np.asarray(spec.attribute(net, x, baseline, target), dtype=np.float64)
    if values.shape != x.shape:
        raise ValueError(f"method {spec.name!r}: returned values of shape {values.shape}, expected x's shape {x.shape}")
    return values



def unavailable_result(prop: str, spec) -> CheckResult:
    return CheckResult(prop, spec.name, NOT_APPLICABLE, "method not available",
                       f"{spec.label}: module {spec.requires} is not importable, so nothing was tried")


def standard_check(prop: str, spec, cases: Iterator[Case], evaluate: Callable, theorems: dict,
                   holds_line: str) -> CheckResult:
    """Run ``cases`` and turn what was found into a CheckResult.

    ``theorems`` maps a spec family to the "theorem: ..." basis used when no generic counterexample
    is found; other families get "no counterexample found in N cases". ``holds_line`` is the one-line
    explanation of a "holds" verdict.
    """
    if not spec.available:
        return unavailable_result(prop, spec)
    witness, caveat, tried, skipped = run_cases(prop, spec, cases, evaluate)
    skip_note = f"; {skipped} examples skipped (method not defined on their network)" if skipped else ""
    if witness is not None:
        return CheckResult(prop, spec.name, FAILS, "counterexample: " + witness.note,
                           f"{spec.label}: {witness.note}{skip_note}", witness=witness, tried=tried)
    searched = f"no counterexample found in {tried.n_cases} cases"
    basis = theorems.get(spec.family, searched)
    line = holds_line
    if caveat is not None:
        line += f"; only on a ReLU kink (ReLU'(0) = 0 convention): {caveat.note}"
    return CheckResult(prop, spec.name, HOLDS, basis, f"{spec.label}: {line}{skip_note}", tried=tried, caveat=caveat)


def batch(*rows) -> np.ndarray:
    """Stack example rows into a float64 batch (N, ...)."""
    return np.asarray(rows, dtype=np.float64)
