"""Quadrature rules on [0, 1] as data: ``n -> (nodes, weights)``.

Integrated gradients replaces the path integral ``int_0^1 g(a) da`` by ``sum_k w_k g(a_k)``
(docs/conventions.md, section 'Quadrature rules'). Each rule here is a plain function of ``n``,
the number of integrand (gradient) evaluations, returning the nodes a_k in [0, 1] (increasing) and
the weights w_k, which sum to 1:

==================  =================================  ====================================
rule                nodes a_k                          weights w_k
==================  =================================  ====================================
``left``            (k - 1) / n,  k = 1..n             1 / n
``right``           k / n  (the IG paper's sum)        1 / n
``midpoint``        (k - 1/2) / n                      1 / n
``trapezoid``       (k - 1) / (n - 1),  n >= 2         1 / (n - 1), both ends halved
``gauss_legendre``  Gauss-Legendre nodes mapped        Gauss-Legendre weights / 2
                    from [-1, 1] to [0, 1]
==================  =================================  ====================================

Error orders on smooth integrands: left and right O(1/n), midpoint and trapezoid O(1/n^2),
Gauss-Legendre exponential (it integrates polynomials of degree 2n - 1 exactly). On integrands
with jumps (the gradient of a ReLU network along a path is piecewise constant) every rule falls to
O(1/n).

Every rule also has an *embedded companion*: a second set of weights on the same nodes
(:func:`companion_weights`), of a coarser or lower-degree rule, so that the difference between
the two sums estimates the error at no extra evaluation:

- ``left``, ``right``: the same rule on the partition that merges neighbouring cells in pairs
  (a last odd cell stays as it is), i.e. roughly the n/2 rule;
- ``midpoint``: merge cells in threes (the midpoint of three cells is the midpoint of the middle
  one); one or two left-over cells stay as they are;
- ``trapezoid``: merge cells in pairs (the ends of two cells are nodes);
- ``gauss_legendre``: the interpolatory rule on the n - 1 nodes left after dropping the middle
  one (index n // 2), exact for degree n - 2 (its weights are positive), computed in O(n) from
  barycentric weights.

For smooth integrands ``|Q_n - Q_companion|`` is then about the error of the fine rule (left,
right), 3 times it (trapezoid), 8 times it (midpoint), and orders of magnitude above it
(Gauss-Legendre): above the error except for left/right, where it is asymptotically equal to it
(``integrated_gradients`` multiplies it by 8 there, by 4 for the other rules, to cover small n). On an integrand that jumps between nodes it bounds
nothing, and ``integrated_gradients`` reports no bound there. The companion needs n >= 2
(left, right, gauss_legendre) or n >= 3 (midpoint, trapezoid); :func:`companion_weights` returns
None below that.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import special

from ._typing import QuadratureRule
from .errors import ResourceError, RuleError

__all__ = ["RULES", "MIN_STEPS", "MAX_GAUSS_LEGENDRE", "left", "right", "midpoint", "trapezoid", "gauss_legendre",
           "nodes_and_weights", "companion_weights", "check_n"]


#: Largest n :func:`gauss_legendre` accepts (its nodes cost O(n^2) to compute).
MAX_GAUSS_LEGENDRE = 10_000


def check_n(n: int | np.integer, rule: str, minimum: int = 1) -> int:
    """Validate a number of nodes: a Python or NumPy int (not bool) >= minimum."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise RuleError(f"n_steps: expected an int >= {minimum} for rule {rule!r}, got {n!r} "
                        f"({type(n).__name__})")
    if n < minimum:
        raise RuleError(
            f"n_steps: rule {rule!r} needs at least {minimum} node(s) (gradient evaluations), got {int(n)}"
        )
    return int(n)


def left(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Left Riemann sum: nodes (k - 1) / n, weights 1 / n, k = 1..n.

    >>> left(4)
    (array([0.  , 0.25, 0.5 , 0.75]), array([0.25, 0.25, 0.25, 0.25]))
    """
    n = check_n(n, "left")
    return np.arange(n) / n, np.full(n, 1.0 / n)


def right(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Right Riemann sum: nodes k / n, weights 1 / n (Sundararajan et al. 2017, section 5).

    >>> right(4)
    (array([0.25, 0.5 , 0.75, 1.  ]), array([0.25, 0.25, 0.25, 0.25]))
    """
    n = check_n(n, "right")
    return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)


def midpoint(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint rule: nodes (k - 1/2) / n, weights 1 / n.

    >>> midpoint(4)
    (array([0.125, 0.375, 0.625, 0.875]), array([0.25, 0.25, 0.25, 0.25]))
    """
    n = check_n(n, "midpoint")
    return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)


def trapezoid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite trapezoid rule on n equally spaced nodes (n - 1 cells), n >= 2.

    Nodes (k - 1) / (n - 1); weights 1 / (n - 1) with both ends halved, so they sum to 1.
    (Captum's ``riemann_trapezoid`` keeps weights 1 / n, which sum to (n - 1) / n; see
    docs/conventions.md, section 'Captum 0.9.0'.)

    >>> trapezoid(5)
    (array([0.  , 0.25, 0.5 , 0.75, 1.  ]), array([0.125, 0.25 , 0.25 , 0.25 , 0.125]))
    """
    n = check_n(n, "trapezoid", 2)
    w = np.full(n, 1.0 / (n - 1))
    w[0] *= 0.5
    w[-1] *= 0.5
    return np.arange(n) / (n - 1), w


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre rule mapped to [0, 1]: nodes (t_k + 1) / 2, weights w_k / 2.

    (t_k, w_k) are ``scipy.special.roots_legendre(n)`` on [-1, 1] (Golub-Welsch followed by Newton
    polishing; about 0.1 s for n = 2000 and 2 s for n = 10^4, growing as n^2). The rule integrates
    polynomials of degree 2n - 1 exactly. n is limited to :data:`MAX_GAUSS_LEGENDRE`: a rule that
    integrates degree 2 * 10^4 exactly and still does not meet the tolerance is integrating a kink,
    where ``rule="exact"`` or ``"quad"`` is the tool.

    >>> nodes, weights = gauss_legendre(2)      # (1 -+ 1/sqrt(3)) / 2 = 0.2113..., 0.7887...
    >>> [round(a, 12) for a in nodes.tolist()], weights.tolist()
    ([0.211324865405, 0.788675134595], [0.5, 0.5])
    """
    n = check_n(n, "gauss_legendre")
    if n > MAX_GAUSS_LEGENDRE:
        raise ResourceError(
            f"n_steps: Gauss-Legendre with {n} nodes is refused (at most {MAX_GAUSS_LEGENDRE}: computing the "
            f"nodes grows as n^2, about {2.0 * (n / 1e4) ** 2:.3g} s here); a smooth integrand converges "
            f"long before, so use rule='quad' (adaptive, with an error estimate) or, on a piecewise-linear "
            f"network, rule='exact'"
        )
    t, w = _legendre_roots(n)
    return (t + 1.0) / 2.0, w / 2.0


def _legendre_roots(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (increasing) and weights on [-1, 1]."""
    t, w = special.roots_legendre(n)
    return np.asarray(t, dtype=np.float64), np.asarray(w, dtype=np.float64)


#: name -> rule function; every function maps n to (nodes, weights) on [0, 1].
RULES = {
    "left": left,
    "right": right,
    "midpoint": midpoint,
    "trapezoid": trapezoid,
    "gauss_legendre": gauss_legendre,
}

#: Smallest n each rule accepts.
MIN_STEPS = {"left": 1, "right": 1, "midpoint": 1, "trapezoid": 2, "gauss_legendre": 1}


def _rule(rule: str):
    if not isinstance(rule, str) or rule not in RULES:
        raise RuleError(f"rule: unknown quadrature rule {rule!r}; expected one of {tuple(RULES)}")
    return RULES[rule]


def nodes_and_weights(rule: QuadratureRule, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, weights) of the named rule with n nodes; RuleError for an unknown name or small n."""
    return _rule(rule)(n)


def _merged_cells(n_cells: int, group: int) -> list[tuple[int, int]]:
    """Cells 0..n_cells-1 merged in groups of ``group``; a short remainder stays cell by cell."""
    cells = [(start, start + group) for start in range(0, n_cells - n_cells % group, group)]
    cells += [(c, c + 1) for c in range(n_cells - n_cells % group, n_cells)]
    return cells


def companion_weights(rule: QuadratureRule, n: int) -> np.ndarray | None:
    """Weights of the embedded companion rule on the same n nodes (see the module docstring).

    Returns None when n is too small for a companion (left and right n < 2, trapezoid n < 3,
    midpoint n < 3, Gauss-Legendre n < 2). The weights sum to 1.

    >>> companion_weights("left", 4)         # the left rule with 2 cells: nodes 0 and 1/2
    array([0.5, 0. , 0.5, 0. ])
    """
    _rule(rule)
    n = check_n(n, rule, MIN_STEPS[rule])
    w = np.zeros(n)
    if rule in ("left", "right"):
        if n < 2:
            return None
        for start, stop in _merged_cells(n, 2):
            # cell c is [c/n, (c+1)/n]; left node index c, right node index c (node (c+1)/n)
            w[start if rule == "left" else stop - 1] += (stop - start) / n
        return w
    if rule == "midpoint":
        if n < 3:
            return None
        for start, stop in _merged_cells(n, 3):
            w[(start + stop - 1) // 2] += (stop - start) / n   # the middle cell's midpoint
        return w
    if rule == "trapezoid":
        if n < 3:
            return None
        h = 1.0 / (n - 1)
        for start, stop in _merged_cells(n - 1, 2):          # cells between nodes start..stop
            w[start] += 0.5 * (stop - start) * h
            w[stop] += 0.5 * (stop - start) * h
        return w
    # gauss_legendre: the interpolatory rule on the n - 1 nodes without the middle one (index m).
    # Its weight at node j is the integral of that node's Lagrange polynomial l_j (degree n - 2),
    # which the n-point rule integrates exactly: sum_k W_k l_j(t_k) = W_j + W_m l_j(t_m). With the
    # barycentric weights of all n nodes, lam_k (product over i != k of (t_k - t_i))^-1,
    # l_j(t_m) = -lam_j / lam_m, and for Gauss-Legendre nodes lam_k is proportional to
    # (-1)^k sqrt((1 - t_k^2) W_k) (Wang & Xiang 2012, Theorem 3.1), so the weights cost O(n).
    if n < 2:
        return None
    t, big_w = _legendre_roots(n)
    lam = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * np.sqrt((1.0 - t * t) * big_w)
    m = n // 2
    w = (big_w - big_w[m] * lam / lam[m]) / 2.0
    w[m] = 0.0
    return w
