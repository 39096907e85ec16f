"""Specificity, or Sensitivity(b) / the dummy axiom: if f does not depend (mathematically) on
feature i, feature i gets zero attribution (Sundararajan, Taly & Yan 2017, section 2.1; the
tutorial's "Specificity").

"Does not depend" is about the function, not the weights. Three kinds of dummy are tried:

- structural: the feature's weights are zero (every method here passes these);
- a unit duplicated with opposite outgoing weights, f = relu(x1) + relu(x2) - relu(x2): guided
  backprop (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014) drop the negative
  backward signal at one copy's ReLU and keep the positive one, so x2 gets 1. This contradicts the
  tutorial's "Yes" for guided backprop;
- the difference of two implementations of one function, f - g (identically zero) plus a genuine
  feature: a method that is not implementation-invariant gives f - g's features attributions
  phi(f) - phi(g) != 0. With the pair of Sundararajan et al. 2017 (section 2.2) this fills the
  tutorial's blank DeepLIFT cell: Rescale attributes -0.5 and +0.5 to two features the function
  ignores.

On a kink the gradient of a network is a convention (ReLU'(0) = 0) rather than a derivative, and
an identically zero function written as [relu(x2 - x1) - relu(x1 - x2)] - [relu(x2) - relu(-x2)] +
[relu(x1) - relu(-x1)] gets gradient (1, -1) on the line x1 = x2. That is reported as a caveat,
outside the theorem's hypotheses (f differentiable at x, or almost everywhere on the path).
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense, ReLU
from ..network import Sequential
from ._core import ZERO_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    round_list, scalar_output, scale_of, standard_check
from .networks import duplicate_signed, parallel, random_relu_mlp, random_tanh_mlp, reveal_cancel_pair, \
    split_unit, sundararajan_pair, with_passthrough_feature
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "specificity"
TITLE = "Specificity"

_GRADIENT = ("theorem: where f is differentiable and does not depend on x_i, df/dx_i = 0, and the chain rule "
             "computes exactly that derivative off the ReLU kinks (Sundararajan, Taly & Yan 2017, section 2.1, "
             "Sensitivity(b))")
THEOREMS = {
    "gradient": _GRADIENT,
    "input_x_gradient": _GRADIENT.replace("df/dx_i = 0", "x_i df/dx_i = 0"),
    "ig_exact": "theorem: phi_i = (x_i - x'_i) * integral of df/dx_i along the path, and df/dx_i = 0 almost "
                "everywhere on a path that does not run inside a kink (Sundararajan, Taly & Yan 2017, "
                "section 3: path methods satisfy Sensitivity(b))",
    "ig_quadrature": "theorem: every node's gradient has df/dx_i = 0 when no node sits on a kink, so the weighted "
                     "sum is 0 (Sundararajan, Taly & Yan 2017, section 3, for the integral; the same argument "
                     "applies node by node)",
}


def evaluate(spec, case: Case):
    """Violated where a feature the function ignores gets a nonzero attribution."""
    dummies = [int(i) for i in case.extra["dummies"]]
    net = case.networks["f"]
    phi = flat(attribution(spec, net, case.x, case.baseline, case.target))
    fx = scalar_output(net, case.x, case.target)
    fb = scalar_output(net, case.baseline, case.target)
    scale = scale_of(fx, fb, phi)
    worst = np.abs(phi[:, dummies]).max(axis=1)
    numbers = [{"dummy_features": dummies, "dummy_attributions": round_list(phi[n, dummies]),
                "attributions": round_list(phi[n]), "f_x": float(fx[n]), "f_baseline": float(fb[n])}
               for n in range(case.size)]
    return worst > ZERO_RTOL * scale, numbers


def _zero_column(net: Sequential, column: int) -> Sequential:
    first = net.layers[0]
    w = first.weight.copy()
    w[:, column] = 0.0
    return Sequential([Dense(w, first.bias)] + list(net.layers[1:]))


def duplicate_dummy() -> Sequential:
    """f(x1, x2) = relu(x1) + relu(x2) - relu(x2): x2 is a dummy."""
    return Sequential([Dense([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), ReLU(), Dense([[1.0, 1.0, -1.0]])])


def difference_dummy(pair) -> Sequential:
    """f(x1, x2) - g(x1, x2) + relu(x3) for two implementations f, g of one function."""
    f, g = pair
    return with_passthrough_feature(parallel([f, g], [1.0, -1.0]))


def kink_dummy() -> Sequential:
    """[relu(x2 - x1) - relu(x1 - x2)] - [relu(x2) - relu(-x2)] + [relu(x1) - relu(-x1)] = 0."""
    return Sequential([Dense([[-1.0, 1.0], [1.0, -1.0], [0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]), ReLU(),
                       Dense([[1.0, -1.0, -1.0, 1.0, 1.0, -1.0]])])


def cases(spec, rng: np.random.Generator):
    for maker, kind in ((random_relu_mlp, "random ReLU MLP"), (random_relu_mlp, "random ReLU MLP"),
                        (random_tanh_mlp, "random tanh MLP")):
        net = _zero_column(maker(rng, (3, 5, 4, 1)), 2)
        yield Case(f"structural dummy (zero weights), {kind}", {"f": net}, rng.normal(size=(6, 3)),
                   rng.normal(size=(6, 3)), extra={"dummies": [2]},
                   note="a network whose first layer gives feature 3 zero weights")
    yield Case("dummy: unit duplicated with opposite outgoing weights", {"f": duplicate_dummy()},
               batch([1.0, 1.5]), batch([-0.25, -0.5]), extra={"dummies": [1]},
               note="f(x1, x2) = relu(x1) + relu(x2) - relu(x2) ignores x2, yet x2 gets a nonzero attribution "
                    "(the negative path is dropped at its ReLU)")
    yield Case("dummy: f - g for Sundararajan et al.'s two implementations", {"f": difference_dummy(sundararajan_pair())},
               batch([3.0, 1.0, 1.0]), batch([0.0, 0.0, 0.0]), extra={"dummies": [0, 1]},
               note="F(x1, x2, x3) = f(x1, x2) - g(x1, x2) + relu(x3) with f = relu(relu(x1) - 1 - relu(x2)) and "
                    "g = relu(relu(x1 - 1) - relu(x2)) (equal functions; Sundararajan et al. 2017, section 2.2) "
                    "ignores x1 and x2, yet they get nonzero attributions at x = (3, 1, 1), x' = 0")
    yield Case("dummy: f - g for two implementations of relu(x1 - x2)", {"f": difference_dummy(reveal_cancel_pair())},
               batch([3.0, 1.0, 1.0]), batch([0.0, 0.0, 0.0]), extra={"dummies": [0, 1]},
               note="F(x1, x2, x3) = relu(relu(x1 - x2)) - relu(relu(x1 - x2) - relu(x2 - x1)) + relu(x3) ignores "
                    "x1 and x2, yet they get nonzero attributions at x = (3, 1, 1), x' = 0")
    for k in range(4):
        net = random_relu_mlp(rng, (3, 5, 4, 1))
        unit = int(rng.integers(5))
        other = duplicate_signed(net, 0, unit, float(rng.uniform(0.5, 2.0))) if k % 2 == 0 else \
            split_unit(net, 0, unit, tuple(rng.uniform(0.3, 3.0, size=2)), float(rng.uniform(0.1, 0.9)))
        f = with_passthrough_feature(parallel([net, other], [1.0, -1.0]))
        rewrite = "duplicated unit" if k % 2 == 0 else "split unit"
        yield Case(f"dummy: random ReLU MLP minus its rewrite ({rewrite})", {"f": f}, rng.normal(size=(6, 4)),
                   rng.normal(size=(6, 4)), extra={"dummies": [0, 1, 2]},
                   note=f"a random network minus a rewritten copy of itself ({rewrite}) plus relu(x4): "
                        f"x1, x2, x3 are dummies")
    yield Case("kink: identically zero function on the line x1 = x2", {"f": kink_dummy()},
               batch([1.0, 1.0]), batch([0.0, 0.0]), extra={"dummies": [0, 1]}, on_kink=True,
               note="F = [relu(x2 - x1) - relu(x1 - x2)] - [relu(x2) - relu(-x2)] + [relu(x1) - relu(-x1)] is "
                    "identically 0, but at x = (1, 1) (and on the path from x' = 0) relu(x2 - x1) sits on its kink "
                    "and ReLU'(0) = 0 breaks the cancellation")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check Specificity (Sensitivity(b)) for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "features the function ignores received exactly zero (to rounding)")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
