"""Implementation invariance: two networks that compute the same function get the same
attributions (Sundararajan, Taly & Yan 2017, section 2.2; the tutorial's "Implementation-invariant").

Pairs of equal functions come from:

- Sundararajan et al.'s own pair (section 2.2, figure 7): f = relu(relu(x1) - 1 - relu(x2)) and
  g = relu(relu(x1 - 1) - relu(x2)); DeepLIFT-Rescale gives (1.5, -0.5) and (2, -1) at x = (3, 1),
  x' = 0 (the paper reports the same numbers).
- relu(x1 - x2) written directly and through z = relu(z) - relu(-z): RevealCancel, which agrees on
  Sundararajan et al.'s pair, differs here, (2.5, -0.5) against (2.875, -0.875).
- a hidden unit split into 2 relu(z) - relu(z) (a positive and a negative path): guided backprop
  (Springenberg et al. 2015) and deconvnet drop the negative path, giving 2 where the derivative
  is 1. This fills the tutorial's
  blank guided-backprop cell.
- a residual block v . (relu(W x) + x) as a graph and as a chain that carries the skip connection
  through ReLUs (x = relu(x) - relu(-x)), random W and v;
- random rewrites of random networks: a unit split into positively rescaled copies
  (relu(c z) = c relu(z)), a unit duplicated with outgoing weights (1 + k) v and -k v, hidden
  units permuted.

The gradient is a property of the function (chain rule), so gradient-based methods are invariant
wherever the network is differentiable; on a kink the computed "gradient" depends on how the kink
is written (x1 - x2 against relu(x1 - x2) - relu(x2 - x1) on the line x1 = x2): a caveat, not a
counterexample to the theorem.
"""

from __future__ import annotations

import numpy as np

from ._core import AGREE_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    round_list, scalar_output, scale_of, standard_check
from .networks import duplicate_signed, identity_pair, permute_units, random_relu_mlp, random_tanh_mlp, \
    residual_pair, reveal_cancel_pair, split_unit, split_unit_pair, sundararajan_pair
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "implementation_invariance"
TITLE = "Implementation-invariant"

_CHAIN = ("theorem: the chain rule computes the gradient of the function, whatever the implementation, wherever "
          "the network is differentiable (Sundararajan, Taly & Yan 2017, section 2.2)")
THEOREMS = {
    "gradient": _CHAIN,
    "input_x_gradient": _CHAIN,
    "ig_exact": _CHAIN + "; integrated gradients integrates that gradient along the path",
    "ig_quadrature": _CHAIN + "; the quadrature rule combines that gradient at fixed nodes",
}


def evaluate(spec, case: Case):
    """Violated where two implementations of one function get different attributions."""
    f, g = case.networks["f"], case.networks["g"]
    fx, gx = scalar_output(f, case.x, case.target), scalar_output(g, case.x, case.target)
    fb, gb = scalar_output(f, case.baseline, case.target), scalar_output(g, case.baseline, case.target)
    scale = scale_of(fx, fb)
    if np.any(np.abs(fx - gx) > AGREE_RTOL * scale) or np.any(np.abs(fb - gb) > AGREE_RTOL * scale):
        raise ValueError("implementation invariance: the two networks of a case must compute the same function")
    phi_f = flat(attribution(spec, f, case.x, case.baseline, case.target))
    phi_g = flat(attribution(spec, g, case.x, case.baseline, case.target))
    diff = np.abs(phi_f - phi_g).max(axis=1)
    scale = scale_of(fx, fb, phi_f, phi_g)
    numbers = [{"attributions_f": round_list(phi_f[n]), "attributions_g": round_list(phi_g[n]),
                "max_difference": float(diff[n]), "f_x": float(fx[n]), "g_x": float(gx[n])} for n in range(case.size)]
    return diff > AGREE_RTOL * scale, numbers


def cases(spec, rng: np.random.Generator):
    f, g = sundararajan_pair()
    yield Case("Sundararajan et al. 2017, section 2.2", {"f": f, "g": g}, batch([3.0, 1.0]), batch([0.0, 0.0]),
               note="f = relu(relu(x1) - 1 - relu(x2)) and g = relu(relu(x1 - 1) - relu(x2)) are the same function "
                    "(Sundararajan et al. 2017, section 2.2) but get different attributions at x = (3, 1), x' = 0")
    a, b = reveal_cancel_pair()
    yield Case("relu(x1 - x2) through z = relu(z) - relu(-z)", {"f": a, "g": b}, batch([3.0, 1.0]), batch([0.0, 0.0]),
               note="relu(relu(x1 - x2)) and relu(relu(x1 - x2) - relu(x2 - x1)) are the same function but get "
                    "different attributions at x = (3, 1), x' = 0")
    a, b = split_unit_pair()
    yield Case("unit split into a positive and a negative path", {"f": a, "g": b}, batch([1.0, 2.0]),
               batch([-0.5, -0.3]),
               note="relu(x1) + relu(x2) and 2 relu(x1) - relu(x1) + relu(x2) are the same function but get "
                    "different attributions at x = (1, 2), x' = (-0.5, -0.3)")
    graph, chain = residual_pair(rng, 3)
    yield Case("residual graph and its chain form", {"f": graph, "g": chain}, rng.normal(size=(6, 3)),
               rng.normal(size=(6, 3)),
               note="v . (relu(W x) + x) as a residual graph and as a chain with x = relu(x) - relu(-x) are the same "
                    "function but get different attributions")
    for k in range(6):
        maker, kind = (random_relu_mlp, "random ReLU MLP") if k < 4 else (random_tanh_mlp, "random tanh MLP")
        net = maker(rng, (3, 5, 4, 1))
        position = [0, 2][k % 2]
        width = net.layers[position].out_features
        unit = int(rng.integers(width))
        if k % 3 == 0:
            other, rewrite = duplicate_signed(net, position, unit, float(rng.uniform(0.5, 2.0))), "duplicated unit"
        elif k % 3 == 1 and kind.endswith("ReLU MLP"):
            other, rewrite = split_unit(net, position, unit, tuple(rng.uniform(0.3, 3.0, size=2)),
                                        float(rng.uniform(0.1, 0.9))), "split unit"
        else:
            other, rewrite = permute_units(net, position, rng.permutation(width)), "permuted units"
        yield Case(f"{kind} and its rewrite ({rewrite})", {"f": net, "g": other}, rng.normal(size=(6, 3)),
                   rng.normal(size=(6, 3)), note=f"a random network ({kind}) and a rewrite of it ({rewrite}) get "
                                                 f"different attributions")
    lin, relu_form = identity_pair()
    yield Case("kink: x1 - x2 against relu(x1 - x2) - relu(x2 - x1) on x1 = x2", {"f": lin, "g": relu_form},
               batch([1.0, 1.0]), batch([0.0, 0.0]), on_kink=True,
               note="x1 - x2 and relu(x1 - x2) - relu(x2 - x1) at x = (1, 1), x' = 0: on the line x1 = x2 both ReLUs "
                    "sit on their kink, and ReLU'(0) = 0 gives the second form gradient (0, 0) instead of (1, -1)")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check implementation invariance for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "every pair of equal functions got equal attributions to rounding")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
