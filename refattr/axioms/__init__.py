"""The properties of the tutorial's summary table as executable checks (docs/axioms.md).

Each property is one module with a ``check(spec) -> CheckResult``: it tries the method on networks
built to expose the property (the papers' examples, targeted constructions, and a seeded random
search) and returns a verdict with its evidence: a re-verifiable :class:`Witness` when the property
fails, the number and kind of cases tried when it holds, and whether a theorem or only the search
backs the verdict. :func:`recheck` rebuilds a witness's networks from its plain lists and
recomputes the violating numbers. :func:`refattr.axioms.audit.audit` regenerates the table.

Examples
--------
>>> from refattr.axioms import SPECS, check, recheck
>>> result = check("sensitivity", "gradient")
>>> result.verdict, result.witness.x, result.witness.baseline, result.witness.numbers["attribution_of_feature"]
('fails', [[2.0]], [[0.0]], 0.0)
>>> recheck(result.witness).violated
True
"""

from __future__ import annotations

from . import completeness, continuity, implementation_invariance, linearity, reference_based, sensitivity, \
    specificity, symmetry_preserving
from ._core import FAILS as FAILS, HOLDS as HOLDS, NOT_APPLICABLE as NOT_APPLICABLE, CheckResult as CheckResult
from ._core import Recheck as Recheck, Tried as Tried, Witness as Witness
from ._core import network_from_layers as network_from_layers, network_to_layers as network_to_layers
from .specs import SPECS as SPECS, MethodSpec as MethodSpec, get_spec as get_spec

#: property key -> module, in the order of the tutorial's summary table.
PROPERTIES = {m.PROPERTY: m for m in (reference_based, sensitivity, specificity, continuity, completeness,
                                      implementation_invariance, symmetry_preserving, linearity)}

__all__ = ["PROPERTIES", "SPECS", "MethodSpec", "CheckResult", "Witness", "Tried", "Recheck", "HOLDS", "FAILS",
           "NOT_APPLICABLE", "check", "recheck", "network_from_layers", "network_to_layers",
           "check_reference_based", "check_sensitivity", "check_specificity", "check_continuity",
           "check_completeness", "check_implementation_invariance", "check_linearity", "check_symmetry_preserving"]

check_reference_based = reference_based.check
check_sensitivity = sensitivity.check
check_specificity = specificity.check
check_continuity = continuity.check
check_completeness = completeness.check
check_implementation_invariance = implementation_invariance.check
check_linearity = linearity.check
check_symmetry_preserving = symmetry_preserving.check


def _module(prop: str):
    try:
        return PROPERTIES[prop]
    except KeyError:
        raise KeyError(f"property: unknown property {prop!r}; expected one of {list(PROPERTIES)}") from None


def check(prop: str, method: MethodSpec | str, *, seed: int = 0) -> CheckResult:
    """Check one property (a key of PROPERTIES) for one method (a MethodSpec or a key of SPECS)."""
    return _module(prop).check(get_spec(method), seed=seed)


def recheck(witness: Witness, spec: MethodSpec | None = None) -> Recheck:
    """Rebuild the witness's networks from its plain lists and recompute its numbers.

    ``spec`` defaults to ``SPECS[witness.method]``; pass the spec for a method defined elsewhere.
    """
    return _module(witness.property).recheck(witness, spec if spec is not None else get_spec(witness.method))
