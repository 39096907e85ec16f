"""Reference-based: the method takes a baseline x' and uses it (the tutorial's "Reference-based").

Structural, and tested by behaviour: the method is run on the same networks and inputs with two
baselines. If the attributions change, the method uses its baseline ("holds"); if they never
change, the witness is a case where they did not ("fails"), backed by the method's definition
(the gradient at x involves no x').

Input x gradient takes no baseline, but on bias-free ReLU networks it equals integrated gradients
and DeepLIFT-Rescale with the zero baseline (Ancona, Ceolini, Oztireli & Gross 2018, section 3):
a reference hidden in the definition.
"""

from __future__ import annotations

import numpy as np

from ._core import AGREE_RTOL, FAILS, HOLDS, INAPPLICABLE, CheckResult, Case, Recheck, Tried, Witness, attribution, \
    case_from_witness, flat, network_to_layers, round_list, scale_of, unavailable_result
from .networks import random_relu_mlp, random_tanh_mlp
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "reference_based"
TITLE = "Reference-based"

_USES = ("theorem: by definition the attribution depends on x' (integrated gradients: phi_i is proportional to "
         "x_i - x'_i, Sundararajan, Taly & Yan 2017, eq. 1; DeepLIFT: differences from the reference, Shrikumar, "
         "Greenside & Kundaje 2017, section 2.1)")
_IGNORES = "theorem: by definition the attribution is a function of f and x alone; no x' enters"
THEOREMS_USES = {f: _USES for f in ("ig_exact", "ig_quadrature", "deeplift_rescale", "deeplift_reveal_cancel")}
THEOREMS_IGNORES = {f: _IGNORES for f in ("gradient", "input_x_gradient", "guided_backprop", "deconvnet")}


def evaluate(spec, case: Case):
    """``violated`` here means: the second baseline left the attributions unchanged."""
    net = case.networks["f"]
    other = np.asarray(case.extra["other_baseline"], dtype=np.float64)
    other = np.broadcast_to(other, case.x.shape).copy() if other.shape != case.x.shape else other
    phi_1 = flat(attribution(spec, net, case.x, case.baseline, case.target))
    phi_2 = flat(attribution(spec, net, case.x, other, case.target))
    diff = np.abs(phi_1 - phi_2).max(axis=1)
    unchanged = diff <= AGREE_RTOL * scale_of(phi_1, phi_2)
    numbers = [{"attributions_baseline": round_list(phi_1[n]), "attributions_other_baseline": round_list(phi_2[n]),
                "max_difference": float(diff[n])} for n in range(case.size)]
    return unchanged, numbers


def cases(spec, rng: np.random.Generator):
    for maker, kind in ((random_relu_mlp, "random ReLU MLP"), (random_relu_mlp, "random ReLU MLP"),
                        (random_tanh_mlp, "random tanh MLP")):
        net = maker(rng, (3, 5, 4, 1))
        other = rng.normal(size=3)
        yield Case(f"{kind}, baselines 0 and a random point", {"f": net}, rng.normal(size=(4, 3)), np.zeros((4, 3)),
                   extra={"other_baseline": other},
                   note=f"a random network ({kind}): the attributions with x' = 0 and with another x' are identical")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check whether ``spec`` uses its baseline; see the module docstring."""
    if not spec.available:
        return unavailable_result(PROPERTY, spec)
    n_changed = n_total = 0
    first_unchanged = None
    kinds: dict = {}
    for case in cases(spec, np.random.default_rng(seed)):
        try:
            unchanged, numbers = evaluate(spec, case)
        except INAPPLICABLE:
            continue
        kinds[case.kind] = kinds.get(case.kind, 0) + case.size
        n_total += case.size
        n_changed += int(np.sum(~unchanged))
        if first_unchanged is None and np.any(unchanged):
            n = int(np.flatnonzero(unchanged)[0])
            first_unchanged = Witness(PROPERTY, spec.name, {"f": network_to_layers(case.networks["f"])},
                                      round_list(case.x[n:n + 1]), round_list(case.baseline[n:n + 1]), case.target,
                                      numbers[n], {"other_baseline": round_list(case.extra["other_baseline"])},
                                      case.note)
    tried = Tried(n_total, tuple(kinds.items()))
    declared = "declared reference-based" if spec.reference_based else "declared without a baseline"
    if n_changed:
        basis = THEOREMS_USES.get(spec.family, f"observed: the baseline changed the attributions in {n_changed} of "
                                               f"{n_total} cases")
        agrees = "" if spec.reference_based else " (but declared without a baseline)"
        return CheckResult(PROPERTY, spec.name, HOLDS, basis,
                           f"{spec.label}: the baseline changed the attributions in {n_changed} of {n_total} cases"
                           f"{agrees}", tried=tried)
    basis = THEOREMS_IGNORES.get(spec.family, f"no dependence on the baseline found in {n_total} cases")
    agrees = " (but declared reference-based)" if spec.reference_based else ""
    return CheckResult(PROPERTY, spec.name, FAILS, basis,
                       f"{spec.label}: takes no baseline; the attributions never changed with it in {n_total} cases "
                       f"({declared}){agrees}", witness=first_unchanged, tried=tried)


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
