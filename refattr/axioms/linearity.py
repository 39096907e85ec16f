"""Linearity: for a network composed as a * g + b * h, the attributions are a * phi(g) + b * phi(h)
(Sundararajan, Taly & Yan 2017, section 3, "Linearity"; the tutorial's "Linearity").

The composition is built as one network (:func:`refattr.axioms.networks.parallel`): optionally
shared first layers, then g's and h's hidden units side by side, and a final Dense that mixes the
two heads with a and b.

Guided backprop (Springenberg et al. 2015, section 3.4) and deconvnet mask the backward signal by
its sign at every ReLU, which is not linear: a hidden
unit shared by g = -relu(x) and h = 2 relu(x) receives the signal a (-1) + b (2) in the composition
but -1 and 2 separately, and the mask treats the sum and the parts differently, even for
a = b = 1. This contradicts the tutorial's "Yes" for guided backprop.

DeepLIFT (the tutorial leaves the cell blank) is linear: its multipliers are propagated by the chain
rule for multipliers (Shrikumar, Greenside & Kundaje 2017, section 3.3), which is linear in the
output's multipliers given the forward differences; composing g and h side by side leaves every
neuron's forward differences (and their positive and negative parts) unchanged, and at the final
Dense the output multiplier 1 becomes a (or b) times the head's weights whatever their signs, as
the positive and negative multipliers of the output are equal. So phi(a g + b h) = a phi(g) +
b phi(h) for Rescale and RevealCancel alike (derived here; the search below confirms it).
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense, ReLU
from ..network import Sequential
from ._core import AGREE_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, case_from_witness, flat, \
    round_list, scalar_output, scale_of, standard_check
from .networks import parallel, random_relu_mlp, random_tanh_mlp
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases", "compose"]

PROPERTY = "linearity"
TITLE = "Linearity"

_LINEAR = ("theorem: the gradient is linear in f, and the backward pass through the composed network is linear in "
           "the output signal because the ReLU mask depends only on the forward input (Sundararajan, Taly & Yan "
           "2017, section 3)")
_DEEPLIFT = ("theorem (derived in refattr.axioms.linearity from the chain rule for multipliers, Shrikumar, Greenside "
             "& Kundaje 2017, section 3.3): the multipliers are linear in the output's multipliers, and the composed "
             "network leaves every neuron's forward differences unchanged")
THEOREMS = {
    "gradient": _LINEAR,
    "input_x_gradient": _LINEAR,
    "ig_exact": _LINEAR + "; integrated gradients integrates it along a path that does not depend on f",
    "ig_quadrature": _LINEAR + "; the quadrature nodes and weights do not depend on f",
    "deeplift_rescale": _DEEPLIFT,
    "deeplift_reveal_cancel": _DEEPLIFT,
}


def compose(g: Sequential, h: Sequential, a: float, b: float, shared: int = 0) -> Sequential:
    """The network a * g + b * h (see :func:`refattr.axioms.networks.parallel`)."""
    return parallel([g, h], [a, b], shared=shared)


def evaluate(spec, case: Case):
    """Violated where phi(a g + b h) differs from a phi(g) + b phi(h)."""
    g, h, combined = case.networks["g"], case.networks["h"], case.networks["combined"]
    a, b = float(case.extra["a"]), float(case.extra["b"])
    x, xb, t = case.x, case.baseline, case.target
    expected_f = a * scalar_output(g, x, t) + b * scalar_output(h, x, t)
    fc = scalar_output(combined, x, t)
    if np.any(np.abs(fc - expected_f) > AGREE_RTOL * scale_of(fc, expected_f)):
        raise ValueError("linearity: the combined network must compute a * g + b * h")
    phi_c = flat(attribution(spec, combined, x, xb, t))
    phi_g = flat(attribution(spec, g, x, xb, t))
    phi_h = flat(attribution(spec, h, x, xb, t))
    mix = a * phi_g + b * phi_h
    diff = np.abs(phi_c - mix).max(axis=1)
    scale = scale_of(fc, phi_c, a * phi_g, b * phi_h)
    numbers = [{"attributions_combined": round_list(phi_c[n]), "attributions_g": round_list(phi_g[n]),
                "attributions_h": round_list(phi_h[n]), "a_phi_g_plus_b_phi_h": round_list(mix[n]),
                "max_difference": float(diff[n])} for n in range(case.size)]
    return diff > AGREE_RTOL * scale, numbers


def _shared_unit_heads():
    g = Sequential([Dense([[1.0]]), ReLU(), Dense([[-1.0]])])
    h = Sequential([Dense([[1.0]]), ReLU(), Dense([[2.0]])])
    return g, h


def _with_first_layer_of(source: Sequential, net: Sequential) -> Sequential:
    return Sequential(list(source.layers[:2]) + list(net.layers[2:]))


def cases(spec, rng: np.random.Generator):
    g, h = _shared_unit_heads()
    yield Case("shared hidden unit, a = b = 1", {"g": g, "h": h, "combined": compose(g, h, 1.0, 1.0, shared=2)},
               batch([1.0]), batch([-0.5]), extra={"a": 1.0, "b": 1.0},
               note="g = -relu(x) and h = 2 relu(x) sharing their hidden unit, a = b = 1: a g + b h = relu(x), "
                    "but the attributions of the composition differ from a phi(g) + b phi(h) at x = 1, x' = -0.5")
    g = Sequential([Dense([[1.0]]), ReLU(), Dense([[1.0]])])
    yield Case("separate heads, a = 1, b = -1", {"g": g, "h": g, "combined": compose(g, g, 1.0, -1.0)},
               batch([1.0]), batch([-0.5]), extra={"a": 1.0, "b": -1.0},
               note="g = h = relu(x), a = 1, b = -1: a g + b h = 0, but the composition's attributions are not "
                    "phi(g) - phi(h) = 0 at x = 1, x' = -0.5")
    for k in range(6):
        maker, kind = (random_relu_mlp, "random ReLU MLPs") if k < 4 else (random_tanh_mlp, "random tanh MLPs")
        g, h = maker(rng, (3, 5, 4, 1)), maker(rng, (3, 4, 3, 1))
        shared = 2 if k % 2 else 0
        if shared:
            h = _with_first_layer_of(g, maker(rng, (3, 5, 3, 1)))
        a, b = rng.choice([-1.0, 1.0], size=2) * rng.uniform(0.3, 2.0, size=2)
        layout = "shared first layer" if shared else "separate heads"
        yield Case(f"{kind}, {layout}, random a and b", {"g": g, "h": h, "combined": compose(g, h, a, b, shared)},
                   rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), extra={"a": float(a), "b": float(b)},
                   note=f"random networks g and h ({kind}, {layout}) composed as a g + b h")


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check linearity for ``spec``; see the module docstring."""
    return standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                          "phi(a g + b h) = a phi(g) + b phi(h) to rounding in every composition")


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
