"""Completeness (summation-to-delta, local accuracy): sum_i phi_i = f(x) - f(x')
(Sundararajan, Taly & Yan 2017, section 3, proposition 1; Shrikumar, Greenside & Kundaje 2017,
eq. 1; the tutorial's "Completeness").

For a method without a baseline the sum is compared with f(x) - f(x') for the comparison point
x' of the case (0 in the constructions). The gradient at the tutorial's saturating unit sums to 0
where f changes by 1; input x gradient on f(x) = relu(x - 1) sums to x, not x - 1 (the bias).
A fixed quadrature rule for integrated gradients misses completeness by its quadrature error,
which on ReLU networks is O(1/n) (docs/conventions.md, section 'Quadrature rules').
"""

from __future__ import annotations

import numpy as np

from ._core import ZERO_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    scalar_output, scale_of, standard_check
from .networks import random_gated_graph, random_relu_mlp, random_residual_graph, random_tanh_mlp, \
    saturating_unit, shifted_relu
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "completeness"
TITLE = "Completeness"

_DEEPLIFT = ("theorem: summation-to-delta holds layer by layer for the Linear rule, Rescale and RevealCancel "
             "(each splits a neuron's difference into parts that add up to it), so the contributions add up to "
             "f(x) - f(x') (Shrikumar, Greenside & Kundaje 2017, eq. 1 and sections 3.3-3.5); in a graph Add and "
             "Concat are linear, a Mul's Shapley split adds up to its difference, and fan-out sums multipliers")
THEOREMS = {
    "ig_exact": "theorem: the gradient theorem along the straight path (Sundararajan, Taly & Yan 2017, "
                "proposition 1); the exact rule integrates the piecewise-constant gradient piece by piece",
    "deeplift_rescale": _DEEPLIFT,
    "deeplift_reveal_cancel": _DEEPLIFT,
}


def evaluate(spec, case: Case):
    """Violated where |sum(phi) - (f(x) - f(x'))| exceeds rounding."""
    net = case.networks["f"]
    phi = flat(attribution(spec, net, case.x, case.baseline, case.target))
    fx, fb = scalar_output(net, case.x, case.target), scalar_output(net, case.baseline, case.target)
    total = phi.sum(axis=1)
    gap = total - (fx - fb)
    scale = scale_of(fx, fb, np.abs(phi).sum(axis=1))
    numbers = [{"sum_of_attributions": float(total[n]), "f_x": float(fx[n]), "f_baseline": float(fb[n]),
                "gap": float(gap[n])} for n in range(case.size)]
    return np.abs(gap) > ZERO_RTOL * scale, numbers


def cases(spec, rng: np.random.Generator):
    yield Case("tutorial: saturating unit", {"f": saturating_unit()}, batch([2.0]), batch([0.0]),
               note="the tutorial's saturating unit f(x) = 1 - max(0, 1 - x) at x = 2, x' = 0: f(x) - f(x') = 1 but the "
                    "attributions do not sum to it")
    yield Case("f(x) = relu(x - 1)", {"f": shifted_relu(1.0)}, batch([2.3]), batch([0.0]),
               note="f(x) = relu(x - 1) at x = 2.3, x' = 0: f(x) - f(x') = 1.3 but the attributions do not sum to it")
    for maker, kind in [(random_relu_mlp, "random ReLU MLP")] * 3 + [(random_tanh_mlp, "random tanh MLP")] * 2:
        net = maker(rng, (4, 6, 5, 1))
        yield Case(kind, {"f": net}, rng.normal(size=(6, 4)), rng.normal(size=(6, 4)),
                   note=f"a random network ({kind}) with a random input and reference")
    for net, kind in ((random_residual_graph(rng, 4), "random residual ReLU graph"),
                      (random_gated_graph(rng, 4, 5), "random gated graph (tanh * sigmoid)")):
        yield Case(kind, {"f": net}, rng.normal(size=(6, 4)), rng.normal(size=(6, 4)),
                   note=f"a {kind} with a random input and reference")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check completeness for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "attributions summed to f(x) - f(x') to rounding")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
