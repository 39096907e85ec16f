"""Symmetry preservation: if swapping x_i and x_j leaves f unchanged, and x_i = x_j and
x'_i = x'_j, then phi_i = phi_j (Sundararajan, Taly & Yan 2017, section 3, theorem 1; the
tutorial's "Symmetry-Preserving").

Symmetry is a property of the function; the implementation may be lopsided. Cases:

- weight-tied networks (columns i and j of the first layer equal): every method passes, because
  the computation itself is symmetric;
- relu(x1) + [2 relu(x2) - relu(x2)]: guided backprop and deconvnet drop the negative path of
  x2 only, giving (1, 2) at x = (1, 1);
- S(x1, x2) = F(x1, x2) + F(x2, x1) where the two copies of F are Sundararajan et al.'s two
  implementations of one function, F(a, b) = relu(relu(a) - 1 - relu(2 - b)) =
  relu(relu(a - 1) - relu(2 - b)): S is symmetric, but DeepLIFT attributes differently through the
  two implementations, (2.107, 1.893) at x = (3, 3), x' = (0.5, 0.5), with the reference off every
  kink. This contradicts the tutorial's "Yes" for DeepLIFT;
- random symmetric functions N(x) + N'(x swapped), with N' a rewrite of N.

Integrated gradients is symmetry-preserving (the straight path between symmetric points stays
symmetric, and there the gradient of a symmetric function is symmetric), wherever f is
differentiable along the path. |x1 - x2| written as (x1 - x2) + 2 relu(x2 - x1), with
x1 - x2 = [relu(x1) - relu(-x1)] - [relu(x2) - relu(-x2)], is symmetric but not differentiable
anywhere on the line x1 = x2; there ReLU'(0) = 0 gives (1, -1). Reported as a caveat.
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense, ReLU
from ..network import Sequential
from ._core import AGREE_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    round_list, scalar_output, scale_of, standard_check
from .networks import duplicate_signed, parallel, permute_inputs, random_relu_mlp, random_tanh_mlp, split_unit
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases"]

PROPERTY = "symmetry_preserving"
TITLE = "Symmetry-preserving"

_GRADIENT = ("theorem: if f(x) = f(swap(x)), then grad f(swap(x)) = swap(grad f(x)), so at a point with x_i = x_j "
             "the two partial derivatives are equal wherever f is differentiable")
THEOREMS = {
    "gradient": _GRADIENT,
    "input_x_gradient": _GRADIENT,
    "ig_exact": "theorem: integrated gradients is symmetry-preserving (Sundararajan, Taly & Yan 2017, section 3, "
                "theorem 1): the straight path between symmetric points stays symmetric",
    "ig_quadrature": "theorem: every node of the straight path between symmetric points is symmetric, and there the "
                     "gradient is symmetric (the argument of Sundararajan, Taly & Yan 2017, theorem 1, node by node)",
}


def evaluate(spec, case: Case):
    """Violated where symmetric features with equal values get different attributions."""
    i, j = (int(v) for v in case.extra["pair"])
    net = case.networks["f"]
    x, xb = flat(case.x), flat(case.baseline)
    if np.any(x[:, i] != x[:, j]) or np.any(xb[:, i] != xb[:, j]):
        raise ValueError("symmetry: x and the baseline must have equal values in the symmetric pair")
    swapped = x.copy()
    swapped[:, [i, j]] = swapped[:, [j, i]]
    probe = np.random.default_rng(0).normal(size=x.shape) * 2.0
    probe_swapped = probe.copy()
    probe_swapped[:, [i, j]] = probe_swapped[:, [j, i]]
    fp = scalar_output(net, probe.reshape(case.x.shape), case.target)
    fs = scalar_output(net, probe_swapped.reshape(case.x.shape), case.target)
    if np.any(np.abs(fp - fs) > AGREE_RTOL * scale_of(fp, fs)):
        raise ValueError("symmetry: the network of a case must be symmetric in the pair")
    phi = flat(attribution(spec, net, case.x, case.baseline, case.target))
    fx = scalar_output(net, case.x, case.target)
    diff = np.abs(phi[:, i] - phi[:, j])
    scale = scale_of(fx, phi)
    numbers = [{"pair": [i, j], "attribution_i": float(phi[n, i]), "attribution_j": float(phi[n, j]),
                "attributions": round_list(phi[n]), "f_x": float(fx[n])} for n in range(case.size)]
    return diff > AGREE_RTOL * scale, numbers


def _tied(net: Sequential, i: int, j: int) -> Sequential:
    first = net.layers[0]
    w = first.weight.copy()
    w[:, j] = w[:, i]
    return Sequential([Dense(w, first.bias)] + list(net.layers[1:]))


def _symmetric_points(rng, n, d, i, j):
    x = rng.normal(size=(n, d))
    x[:, j] = x[:, i]
    return x


def split_path_network() -> Sequential:
    """relu(x1) + 2 relu(x2) - relu(x2) (symmetric in x1, x2)."""
    return Sequential([Dense([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), ReLU(), Dense([[1.0, 2.0, -1.0]])])


def two_implementations_network() -> Sequential:
    """F(x1, x2) + F(x2, x1), the first copy written as relu(relu(a) - 1 - relu(2 - b)), the second
    as relu(relu(a - 1) - relu(2 - b)) (equal functions, after Sundararajan et al. 2017, 2.2)."""
    f = Sequential([Dense([[1.0, 0.0], [0.0, -1.0]], [0.0, 2.0]), ReLU(), Dense([[1.0, -1.0]], [-1.0]), ReLU(),
                    Dense([[1.0]])])
    g = Sequential([Dense([[1.0, 0.0], [0.0, -1.0]], [-1.0, 2.0]), ReLU(), Dense([[1.0, -1.0]]), ReLU(),
                    Dense([[1.0]])])
    return parallel([f, permute_inputs(g, [1, 0])], [1.0, 1.0])


def kink_abs_network() -> Sequential:
    """|x1 - x2| = [relu(x1) - relu(-x1)] - [relu(x2) - relu(-x2)] + 2 relu(x2 - x1)."""
    return Sequential([Dense([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 1.0]]), ReLU(),
                       Dense([[1.0, -1.0, -1.0, 1.0, 2.0]])])


def cases(spec, rng: np.random.Generator):
    for maker, kind in ((random_relu_mlp, "random ReLU MLP"), (random_tanh_mlp, "random tanh MLP")):
        net = _tied(maker(rng, (3, 5, 4, 1)), 0, 1)
        yield Case(f"weight-tied {kind}", {"f": net}, _symmetric_points(rng, 6, 3, 0, 1),
                   _symmetric_points(rng, 6, 3, 0, 1), extra={"pair": [0, 1]},
                   note="a network whose first layer ties the weights of x1 and x2")
    yield Case("relu(x1) + 2 relu(x2) - relu(x2)", {"f": split_path_network()}, batch([1.0, 1.0]),
               batch([-0.2, -0.2]), extra={"pair": [0, 1]},
               note="f = relu(x1) + 2 relu(x2) - relu(x2) is symmetric, but at x = (1, 1), x' = (-0.2, -0.2) x1 and x2 "
                    "get different attributions")
    yield Case("F(x1, x2) + F(x2, x1), two implementations of F", {"f": two_implementations_network()},
               batch([3.0, 3.0]), batch([0.5, 0.5]), extra={"pair": [0, 1]},
               note="S(x1, x2) = F(x1, x2) + F(x2, x1) with F(a, b) = relu(relu(a) - 1 - relu(2 - b)) in the first "
                    "term and the equal relu(relu(a - 1) - relu(2 - b)) in the second is symmetric, but at x = (3, 3), "
                    "x' = (0.5, 0.5) (off every kink) x1 and x2 get different attributions")
    for k in range(4):
        maker, kind = (random_relu_mlp, "random ReLU MLP") if k < 3 else (random_tanh_mlp, "random tanh MLP")
        net = maker(rng, (3, 5, 4, 1))
        unit = int(rng.integers(5))
        if k % 2 == 0 or kind.endswith("tanh MLP"):
            other, rewrite = duplicate_signed(net, 0, unit, float(rng.uniform(0.5, 2.0))), "duplicated unit"
        else:
            other, rewrite = split_unit(net, 0, unit, tuple(rng.uniform(0.3, 3.0, size=2)),
                                        float(rng.uniform(0.1, 0.9))), "split unit"
        sym = parallel([net, permute_inputs(other, [1, 0, 2])], [1.0, 1.0])
        yield Case(f"N(x) + N'(swapped x), {kind}, N' = N with a {rewrite}", {"f": sym},
                   _symmetric_points(rng, 6, 3, 0, 1), _symmetric_points(rng, 6, 3, 0, 1), extra={"pair": [0, 1]},
                   note=f"a symmetric function N(x1, x2, x3) + N'(x2, x1, x3), N' a rewrite of a random network N "
                        f"({rewrite})")
    yield Case("kink: |x1 - x2| on the line x1 = x2", {"f": kink_abs_network()}, batch([1.0, 1.0]), batch([0.0, 0.0]),
               extra={"pair": [0, 1]}, on_kink=True,
               note="|x1 - x2| written as [relu(x1) - relu(-x1)] - [relu(x2) - relu(-x2)] + 2 relu(x2 - x1) at "
                    "x = (1, 1), x' = 0: the function has no derivative on x1 = x2 and ReLU'(0) = 0 gives (1, -1)")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check symmetry preservation for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "symmetric features with equal values got equal attributions to rounding")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
