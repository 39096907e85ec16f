"""Sensitivity(a): if x and x' differ in one feature and f(x) != f(x'), that feature gets a nonzero
attribution (Sundararajan, Taly & Yan 2017, section 2.1; the tutorial's "Sensitivity").

For a method without a baseline, x' is only the comparison point: the attribution is computed at
x, as the tutorial and Sundararajan et al. do for the gradient.

Witnesses come from two constructions:

- the tutorial's saturating unit f(x) = 1 - max(0, 1 - x) with x = 2, x' = 0: f changes by 1 but the
  gradient at 2 is 0 (gradient saturation, Sundararajan et al. 2017 section 2.1; Shrikumar et al.
  2017 section 2);
- a narrow bump f(x) = relu(x - a) - relu(x - a - w) whose derivative is nonzero only on
  (a, a + w): a fixed quadrature rule of integrated gradients whose nodes all miss that interval
  sees a zero gradient at every node, so the approximation assigns 0 although f changes by w.
  Sensitivity is a property of the integral, not of its n-point approximations.
"""

from __future__ import annotations

import numpy as np

from ._core import ZERO_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    round_list, scalar_output, scale_of, standard_check
from .networks import bump, random_relu_mlp, random_tanh_mlp, saturating_unit
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "sensitivity"
TITLE = "Sensitivity"

THEOREMS = {
    "ig_exact": "theorem: completeness (the gradient theorem along the straight path) puts all of "
                "f(x) - f(x') on the only feature that differs (Sundararajan, Taly & Yan 2017, section 3, "
                "proposition 1 and the remark that follows it)",
    "deeplift_rescale": "theorem: summation-to-delta, sum_i C_i = f(x) - f(x'), with C_i = m_i (x_i - x'_i) = 0 "
                        "for every feature that does not differ (Shrikumar, Greenside & Kundaje 2017, eq. 1 "
                        "and section 3.2)",
    "deeplift_reveal_cancel": "theorem: summation-to-delta, sum_i C_i = f(x) - f(x'), with C_i = m_i (x_i - x'_i) "
                              "= 0 for every feature that does not differ (Shrikumar, Greenside & Kundaje 2017, "
                              "eq. 1 and section 3.2)",
}

BUMP_START, BUMP_WIDTH = 0.5, 0.004


def evaluate(spec, case: Case):
    """Violated where f(x) != f(x') but the feature that differs gets a zero attribution."""
    i = int(case.extra["feature"])
    net = case.networks["f"]
    x, xb = case.x, case.baseline
    others = np.delete(flat(x - xb), i, axis=1)
    if np.any(others != 0):
        raise ValueError("sensitivity: x and the baseline must differ in the one feature only")
    phi = flat(attribution(spec, net, x, xb, case.target))
    fx, fb = scalar_output(net, x, case.target), scalar_output(net, xb, case.target)
    scale = scale_of(fx, fb, phi)
    changed = np.abs(fx - fb) > ZERO_RTOL * scale
    zero = np.abs(phi[:, i]) <= ZERO_RTOL * scale
    numbers = [{"f_x": float(fx[n]), "f_baseline": float(fb[n]), "attribution_of_feature": float(phi[n, i]),
                "attributions": round_list(phi[n])} for n in range(x.shape[0])]
    return changed & zero, numbers


def cases(spec, rng: np.random.Generator):
    yield Case("tutorial: saturating unit f(x) = 1 - max(0, 1 - x)", {"f": saturating_unit()},
               batch([2.0]), batch([0.0]), extra={"feature": 0},
               note="the tutorial's saturating unit f(x) = 1 - max(0, 1 - x) at x = 2, x' = 0: f(x) - f(x') = 1 "
                    "but the attribution of x is 0")
    s = np.linspace(0.55, 1.0, 91)
    yield Case("narrow bump between quadrature nodes", {"f": bump(BUMP_START, BUMP_WIDTH)},
               s[:, None], np.zeros((s.size, 1)), extra={"feature": 0},
               note=f"f(x) = relu(x - {BUMP_START}) - relu(x - {BUMP_START + BUMP_WIDTH}) with x' = 0: f(x) - "
                    f"f(x') = {BUMP_WIDTH} but f' is nonzero only on ({BUMP_START}, {BUMP_START + BUMP_WIDTH}), "
                    f"where no gradient is evaluated, and the attribution is 0")
    for k, (maker, kind) in enumerate([(random_relu_mlp, "random ReLU MLP")] * 4 + [(random_tanh_mlp, "random tanh MLP")] * 2):
        net = maker(rng, (3, 5, 4, 1))
        xb = rng.normal(size=(6, 3))
        x = xb.copy()
        feature = k % 3
        x[:, feature] += rng.choice([-1.0, 1.0], size=6) * rng.uniform(0.5, 2.0, size=6)
        yield Case(kind + ", one feature changed", {"f": net}, x, xb, extra={"feature": feature},
                   note=f"a random network ({kind}) with x and x' differing in feature {feature}")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check Sensitivity(a) for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "every feature that alone changed f received a nonzero attribution")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
