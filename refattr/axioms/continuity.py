"""Continuity: attributions are continuous in x, even where the gradient is not (Shrikumar,
Greenside & Kundaje 2017, section 2.2 and figure 2; the tutorial's "Continuity").

A jump is measured, not eyeballed: at a point x_c and a direction d, the check computes
J(eps) = max_i |phi_i(x_c + eps d) - phi_i(x_c - eps d)| for eps = 1e-3, 1e-6, 1e-9. A continuous
attribution (all of these methods are piecewise smooth) has J(eps) -> 0 like eps; a jump keeps
J(1e-9) at the size of the jump. Points come from constructions and from scanning random segments:
the attribution is evaluated on a grid along the segment and the interval with the largest change
is refined 16-fold ten times, which isolates a discontinuity to ~1e-14 if there is one.

Constructions:

- the tutorial's example: f(x) = relu(x - 1), x' = 0, at x = 1 +- eps. The gradient jumps by 1;
  integrated gradients and DeepLIFT move continuously (the path crosses the kink at a fraction
  1/x of its length, which moves continuously with x). A right-Riemann rule with n nodes has a node
  at x itself and jumps by 1/n: a fixed quadrature rule is discontinuous wherever a node crosses a
  kink, with jumps O(1/n).
- the reference on a kink: f(x1, x2) = relu(x1 - x2), x' = (0, 0), at x = (1 +- eps, 1). The
  straight path from x' lies entirely on one side of the kink or the other, so integrated
  gradients and DeepLIFT-Rescale jump by (1, -1) as x crosses the kink, although f is continuous.
  With a bias-free first layer every first-layer kink passes through the zero baseline; there,
  Ancona et al. 2018 show integrated gradients and DeepLIFT-Rescale both equal input x gradient,
  which inherits the gradient's jumps.
- RevealCancel with the reference off every kink: when a hidden neuron's total difference
  Delta h changes sign while its positive and negative parts do not vanish, the Linear rule of the
  next layer switches that neuron from the positive to the negative multiplier
  (docs/conventions.md, section 'Linear rule'),
  and those differ under RevealCancel.
- a max-pool winner switch, where the routing of the gradient family and of DeepLIFT's
  ``delta_routing`` jumps from one input to the other (deconvnet, constant on ReLU networks because
  its ReLU rule ignores the forward pass, jumps here).
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense, Flatten, MaxPool2D, ReLU
from ..network import Sequential
from ._core import JUMP_EPSILONS, JUMP_RTOL, Case, CheckResult, Recheck, Witness, attribution, batch, \
    case_from_witness, flat, round_list, scalar_output, scale_of, standard_check
from .networks import random_relu_mlp, shifted_relu
from .specs import MethodSpec

__all__ = ["PROPERTY", "TITLE", "check", "recheck", "evaluate", "cases", "locate_jump"]

PROPERTY = "continuity"
TITLE = "Continuity"

THEOREMS: dict = {}


def evaluate(spec, case: Case):
    """Violated where the jump across x_c along d does not shrink with eps."""
    net = case.networks["f"]
    d = np.asarray(case.extra["direction"], dtype=np.float64)
    eps = [float(e) for e in case.extra["epsilons"]]
    n = case.size
    points = np.concatenate([case.x + s * e * d for e in eps for s in (-1.0, 1.0)])
    baseline = np.concatenate([case.baseline] * (2 * len(eps)))     # one reference per point
    phi = flat(attribution(spec, net, points, baseline, case.target)).reshape(len(eps), 2, n, -1)
    jumps = np.abs(phi[:, 1] - phi[:, 0]).max(axis=2)          # (len(eps), n)
    f = scalar_output(net, points, case.target).reshape(len(eps), 2, n)
    scale = scale_of(phi[-1, 0], phi[-1, 1])
    numbers = [{"epsilons": eps, "jumps": round_list(jumps[:, k]), "attribution_minus": round_list(phi[-1, 0, k]),
                "attribution_plus": round_list(phi[-1, 1, k]), "f_minus": float(f[-1, 0, k]),
                "f_plus": float(f[-1, 1, k])} for k in range(n)]
    return jumps[-1] > JUMP_RTOL * scale, numbers


def locate_jump(phi_along, n_grid: int = 129, n_sub: int = 16, n_iter: int = 10, top: int = 2):
    """Where on t in [0, 1] does ``phi_along(ts) -> (len(ts), F)`` change most abruptly?

    Evaluates a grid, then refines each of the ``top`` intervals with the largest change ``n_iter``
    times, ``n_sub``-fold, following the largest change. Returns ``(t, change)`` for the interval
    whose final change is largest: for a discontinuity the change stays at the jump's size; for a
    continuous function it shrinks to ~0.
    """
    ts = np.linspace(0.0, 1.0, n_grid)
    diffs = np.abs(np.diff(phi_along(ts), axis=0)).max(axis=1)
    best_t, best_change = 0.5, -1.0
    for k in np.argsort(-diffs, kind="stable")[:top]:
        lo, hi = ts[k], ts[k + 1]
        change = diffs[k]
        for _ in range(n_iter):
            sub = np.linspace(lo, hi, n_sub + 1)
            d = np.abs(np.diff(phi_along(sub), axis=0)).max(axis=1)
            j = int(np.argmax(d))
            lo, hi, change = sub[j], sub[j + 1], d[j]
        if change > best_change:
            best_t, best_change = 0.5 * (lo + hi), float(change)
    return best_t, best_change


def _scan_case(spec, kind, net, start, stop, baseline, note):
    start, stop, baseline = (np.asarray(a, dtype=np.float64) for a in (start, stop, baseline))

    def phi_along(ts):
        pts = start[None] + ts[:, None] * (stop - start)[None]
        return flat(attribution(spec, net, pts, np.broadcast_to(baseline, pts.shape).copy(), None))

    t, _ = locate_jump(phi_along)
    direction = (stop - start) / np.linalg.norm(stop - start)
    center = start + t * (stop - start)
    return Case(kind, {"f": net}, center[None], baseline[None],
                extra={"direction": direction, "epsilons": list(JUMP_EPSILONS)}, note=note)


def relu_difference() -> Sequential:
    """f(x1, x2) = relu(x1 - x2)."""
    return Sequential([Dense([[1.0, -1.0]]), ReLU(), Dense([[1.0]])])


def reveal_cancel_switch() -> Sequential:
    """u = relu(x1 - x2 + 1), v = relu(x2 + 1), f = relu(u - v + 0.7).

    At x' = (0, 0) every pre-activation is off its kink (1, 1 and 0.7). Along x = (a, 1), u's
    difference Delta u = relu(a) - 1 changes sign at a = 1 while its RevealCancel parts stay +1 and
    -1; the next Linear rule then switches u from f's positive multiplier (1/2) to its negative one
    (0.7), and the attributions jump by 0.2.
    """
    return Sequential([Dense([[1.0, -1.0], [0.0, 1.0]], [1.0, 1.0]), ReLU(), Dense([[1.0, -1.0]], [0.7]), ReLU(),
                       Dense([[1.0]])])


def maxpool_pair() -> Sequential:
    """f(x) = max(x1, x2) for an image of shape (1, 1, 2)."""
    return Sequential([MaxPool2D((1, 2)), Flatten(), Dense([[1.0]])])


def tutorial_case() -> Case:
    return Case("tutorial: f(x) = relu(x - 1), x' = 0, x = 1 +- eps", {"f": shifted_relu(1.0)}, batch([1.0]), batch([0.0]),
                extra={"direction": np.array([1.0]), "epsilons": list(JUMP_EPSILONS)},
                note="the tutorial's kink: f(x) = relu(x - 1), x' = 0, at x = 1 +- eps the attribution jumps "
                     "and the jump does not shrink with eps")


def _generic_scans(spec, rng: np.random.Generator):
    """Scans with the reference off every kink: the tutorial's line, then random networks and segments."""
    yield _scan_case(spec, "scan: relu(x - 1), x' = 0, x in [0.5, 3]", shifted_relu(1.0), [0.5], [3.0], [0.0],
                     note="f(x) = relu(x - 1), x' = 0: scanning x in [0.5, 3] finds a jump where an evaluation point "
                          "of the path crosses the kink")
    for _ in range(3):
        net = random_relu_mlp(rng, (2, 6, 6, 1))
        baseline = rng.normal(size=2)
        start, stop = rng.normal(size=2) * 2.0, rng.normal(size=2) * 2.0
        yield _scan_case(spec, "scan: random ReLU MLP, random reference, random segment", net, start, stop, baseline,
                         note="a random ReLU network with a random reference (off every kink): scanning a random "
                              "segment finds a jump")


def cases(spec, rng: np.random.Generator):
    eps = list(JUMP_EPSILONS)
    yield tutorial_case()
    yield Case("reference on a kink: relu(x1 - x2), x' = (0, 0)", {"f": relu_difference()}, batch([1.0, 1.0]),
               batch([0.0, 0.0]), extra={"direction": np.array([1.0, 0.0]), "epsilons": eps},
               note="f(x1, x2) = relu(x1 - x2) with x' = (0, 0) on its kink: at x = (1 +- eps, 1) the straight path "
                    "lies wholly on one side of the kink or the other, so the attributions jump although f is "
                    "continuous")
    yield Case("RevealCancel sign switch: reference off every kink", {"f": reveal_cancel_switch()}, batch([1.0, 1.0]),
               batch([0.0, 0.0]), extra={"direction": np.array([1.0, 0.0]), "epsilons": eps},
               note="f = relu(relu(x1 - x2 + 1) - relu(x2 + 1) + 0.7), x' = (0, 0) off every kink, x = (1 +- eps, 1): "
                    "the hidden difference relu(x1 - x2 + 1) - 1 changes sign there while its positive and negative "
                    "parts do not vanish, and the attributions jump")
    yield Case("max-pool winner switch", {"f": maxpool_pair()}, np.array([[[[1.0, 1.0]]]]),
               np.array([[[[0.3, -0.2]]]]), extra={"direction": np.array([[[1.0, 0.0]]]), "epsilons": eps},
               note="f = max(x1, x2) (MaxPool2D) with x' = (0.3, -0.2), at x = (1 +- eps, 1): the winner changes and "
                    "the attribution moves from one input to the other")
    yield from _generic_scans(spec, rng)


def check(spec: MethodSpec, *, seed: int = 0) -> CheckResult:
    """Check continuity for ``spec``; see the module docstring.

    Besides the verdict, the explanation reports the jump on the tutorial's example and how many scans
    with the reference off every kink found a jump, which separates "discontinuous only for special
    references" from "discontinuous for any reference".
    """
    result = standard_check(PROPERTY, spec, cases(spec, np.random.default_rng(seed)), evaluate, THEOREMS,
                            "no jump found")
    if result.verdict == "not applicable":
        return result
    _, numbers = evaluate(spec, tutorial_case())
    jumps = ", ".join(f"{j:.3g}" for j in numbers[0]["jumps"])
    scans = list(_generic_scans(spec, np.random.default_rng(seed + 1)))
    n_jumps = sum(int(evaluate(spec, case)[0][0]) for case in scans)
    explanation = (f"{result.explanation}; on the tutorial's example relu(x - 1), x' = 0, at x = 1 +- eps "
                   f"(eps = 1e-3, 1e-6, 1e-9) the jump is {jumps}; with the reference off every kink, "
                   f"{n_jumps} of {len(scans)} scans found a jump")
    return type(result)(result.property, result.method, result.verdict, result.basis, explanation,
                        result.witness, result.tried, result.caveat)


def recheck(witness: Witness, spec: MethodSpec) -> Recheck:
    violated, numbers = evaluate(spec, case_from_witness(witness))
    return Recheck(bool(violated[0]), numbers[0])
