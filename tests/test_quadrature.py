"""Quadrature rules on [0, 1]: weights, polynomial exactness, convergence orders, companions.

Expected values are closed forms written here: the integral of a^k over [0, 1] is 1 / (k + 1),
and the error terms below are the classical ones (Euler-Maclaurin for the Riemann sums, the
Gauss-Legendre remainder (n!)^4 / ((2n + 1) ((2n)!)^3) f^(2n) on [0, 1]).
"""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refattr.errors import RuleError
from refattr.quadrature import MIN_STEPS, RULES, companion_weights, nodes_and_weights

ALL = tuple(RULES)


def integrate(rule, n, f, weights=None):
    nodes, w = nodes_and_weights(rule, n)
    return float(np.sum((w if weights is None else weights) * f(nodes)))


@given(rule=st.sampled_from(ALL), n=st.integers(1, 400))
def test_weights_sum_to_one_and_nodes_lie_in_order_in_the_interval(rule, n):
    n = max(n, MIN_STEPS[rule])
    nodes, weights = nodes_and_weights(rule, n)
    assert nodes.shape == weights.shape == (n,)
    # a sum of n positive terms of size ~1/n: rounding at most n * 1.1e-16
    assert abs(weights.sum() - 1.0) <= 1e-14
    assert np.all(weights > 0)
    assert np.all((nodes >= 0) & (nodes <= 1)) and np.all(np.diff(nodes) > 0)
    companion = companion_weights(rule, n)
    if companion is not None:
        assert abs(companion.sum() - 1.0) <= 1e-14 and np.all(companion >= 0)


def test_nodes_match_the_table_of_spec_section_5():
    np.testing.assert_array_equal(nodes_and_weights("left", 4)[0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(nodes_and_weights("right", 4)[0], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(nodes_and_weights("midpoint", 4)[0], [0.125, 0.375, 0.625, 0.875])
    nodes, weights = nodes_and_weights("trapezoid", 5)
    np.testing.assert_array_equal(nodes, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(weights, [0.125, 0.25, 0.25, 0.25, 0.125])
    # two-point Gauss-Legendre on [0, 1]: (1 -+ 1/sqrt(3)) / 2, weights 1/2
    nodes, weights = nodes_and_weights("gauss_legendre", 2)
    np.testing.assert_allclose(nodes, [(1 - 3 ** -0.5) / 2, (1 + 3 ** -0.5) / 2], rtol=1e-15)
    np.testing.assert_allclose(weights, [0.5, 0.5], rtol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
def test_riemann_sums_of_a_linear_function(n):
    # left sum of a: (1/n) sum_{k=0}^{n-1} k/n = (n - 1) / (2n); right: (n + 1) / (2n). Midpoint
    # and trapezoid integrate degree 1 exactly: 1/2.
    f = lambda a: a
    assert integrate("left", n, f) == pytest.approx((n - 1) / (2 * n), rel=1e-15, abs=1e-16)
    assert integrate("right", n, f) == pytest.approx((n + 1) / (2 * n), rel=1e-15)
    assert integrate("midpoint", n, f) == pytest.approx(0.5, rel=1e-15)
    if n >= 2:
        assert integrate("trapezoid", n, f) == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_midpoint_and_trapezoid_are_not_exact_for_degree_two(n):
    # a^2: midpoint error -1/(12 n^2) (sum = 1/3 - 1/(12 n^2)); trapezoid with h = 1/(n - 1):
    # sum = 1/3 + h^2 / 6. Both exact closed forms of the sums.
    f = lambda a: a * a
    assert integrate("midpoint", n, f) == pytest.approx(1 / 3 - 1 / (12 * n * n), rel=1e-14)
    h = 1.0 / (n - 1)
    assert integrate("trapezoid", n, f) == pytest.approx(1 / 3 + h * h / 6, rel=1e-14)


@pytest.mark.parametrize("n", range(1, 11))
def test_gauss_legendre_is_exact_to_degree_2n_minus_1_and_not_2n(n):
    for k in range(2 * n):
        assert integrate("gauss_legendre", n, lambda a: a ** k) == pytest.approx(1 / (k + 1), rel=2e-14)
    # degree 2n: the remainder is (n!)^4 / ((2n + 1) ((2n)!)^3) * f^(2n), and f^(2n) = (2n)! for a^(2n)
    remainder = math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 2)
    error = 1 / (2 * n + 1) - integrate("gauss_legendre", n, lambda a: a ** (2 * n))
    assert error == pytest.approx(remainder, rel=1e-6)
    assert error > 1e3 * 2.2e-16   # far above rounding: the rule really is not exact there


def fitted_order(rule, f, exact, ns):
    """Slope of log |error| against log n (least squares)."""
    errors = [abs(integrate(rule, n, f) - exact) for n in ns]
    return np.polyfit(np.log(ns), np.log(errors), 1)[0]


SMOOTH = (lambda a: np.exp(a) * np.cos(3 * a), (np.exp(1) * (np.cos(3) + 3 * np.sin(3)) - 1) / 10)


@pytest.mark.parametrize("rule, order", [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_observed_convergence_orders_on_a_smooth_integrand(rule, order):
    # int_0^1 e^a cos(3a) da = (e (cos 3 + 3 sin 3) - 1) / 10. The fitted slope over n = 16..1024
    # must be within 0.05 of -order (the next Euler-Maclaurin term changes it by O(1/n)).
    f, exact = SMOOTH
    slope = fitted_order(rule, f, exact, [16, 32, 64, 128, 256, 512, 1024])
    assert abs(slope + order) < 0.05


def test_gauss_legendre_converges_exponentially():
    # e^a cos(3a) is entire: the error falls faster than geometrically; each step n -> n + 1
    # gains more than a factor 10 until rounding (1e-15) is reached at about n = 9.
    f, exact = SMOOTH
    errors = [abs(integrate("gauss_legendre", n, f) - exact) for n in range(2, 9)]
    assert all(b < a / 10 for a, b in zip(errors, errors[1:]))
    assert abs(integrate("gauss_legendre", 12, f) - exact) < 1e-15


@pytest.mark.parametrize("rule, n", [("left", 64), ("right", 64), ("midpoint", 63), ("trapezoid", 65),
                                     ("gauss_legendre", 6), ("left", 63), ("midpoint", 64),
                                     ("trapezoid", 64)])
def test_companion_difference_estimates_the_error_on_a_smooth_integrand(rule, n):
    # The companion's difference |Q - Q_c| is about 1x (left, right), 3x (trapezoid), 8x
    # (midpoint) and >> 1x (Gauss-Legendre) the error of Q (module docstring): it must not
    # underestimate by more than a factor 2, nor, for the Riemann sums, overestimate by more than
    # a factor 20.
    f, exact = SMOOTH
    nodes, _ = nodes_and_weights(rule, n)
    error = abs(integrate(rule, n, f) - exact)
    estimate = abs(integrate(rule, n, f) - integrate(rule, n, f, companion_weights(rule, n)))
    assert estimate >= 0.5 * error
    if rule != "gauss_legendre":
        assert estimate <= 20 * error


def test_gauss_legendre_companion_is_exact_to_degree_n_minus_2():
    n = 9
    nodes, _ = nodes_and_weights("gauss_legendre", n)
    w = companion_weights("gauss_legendre", n)
    assert w[n // 2] == 0
    for k in range(n - 1):
        assert np.sum(w * nodes ** k) == pytest.approx(1 / (k + 1), rel=1e-13)


def test_companion_is_none_where_no_coarser_rule_exists():
    assert companion_weights("left", 1) is None and companion_weights("right", 1) is None
    assert companion_weights("midpoint", 2) is None and companion_weights("trapezoid", 2) is None
    assert companion_weights("gauss_legendre", 1) is None
    np.testing.assert_array_equal(companion_weights("left", 4), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(companion_weights("right", 5), [0, 0.4, 0, 0.4, 0.2])
    np.testing.assert_array_equal(companion_weights("midpoint", 3), [0, 1, 0])


@pytest.mark.parametrize("rule, n, words", [
    ("simpson", 4, ["simpson", "left", "gauss_legendre"]),
    ("left", 0, ["n_steps", "at least 1", "0"]),
    ("trapezoid", 1, ["n_steps", "trapezoid", "at least 2", "1"]),
    ("midpoint", 2.0, ["n_steps", "int", "2.0"]),
    ("right", True, ["n_steps", "int", "True"]),
])
def test_bad_rules_and_sizes_are_refused_with_a_clear_message(rule, n, words):
    with pytest.raises(RuleError) as info:
        nodes_and_weights(rule, n)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("n", [2, 3, 4, 9, 20, 41])
def test_gauss_legendre_companion_matches_the_vandermonde_solve(n):
    # The O(n) barycentric formula against the interpolatory rule computed the direct way: solve
    # V^T w = moments in the Legendre basis on the n - 1 nodes left after dropping the middle one.
    from numpy.polynomial import legendre
    t, _ = legendre.leggauss(n)
    keep = np.arange(n) != n // 2
    moments = np.zeros(n - 1)
    moments[0] = 2.0                              # int_{-1}^{1} P_k = 2 [k == 0]
    expected = np.zeros(n)
    expected[keep] = np.linalg.solve(legendre.legvander(t[keep], n - 2).T, moments) / 2.0
    np.testing.assert_allclose(companion_weights("gauss_legendre", n), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [1, 5, 50, 100])
def test_gauss_legendre_nodes_agree_with_numpys_eigenvalue_method(n):
    # scipy's roots_legendre (Golub-Welsch + Newton) against numpy's leggauss (companion matrix
    # eigenvalues + Newton): two implementations, the same nodes and weights to rounding (against
    # 40-digit weights at n = 50 both are off by 3e-15 to 5e-15, relative 1e-13).
    from numpy.polynomial import legendre
    t, w = legendre.leggauss(n)
    nodes, weights = nodes_and_weights("gauss_legendre", n)
    np.testing.assert_allclose(nodes, (t + 1) / 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights, w / 2, rtol=0, atol=1e-14)


def test_large_gauss_legendre_rules_are_computed_and_the_largest_are_refused():
    from refattr.errors import ResourceError
    from refattr.quadrature import MAX_GAUSS_LEGENDRE
    nodes, weights = nodes_and_weights("gauss_legendre", 4000)      # 114 s with eigenvalues; 0.3 s here
    assert abs(weights.sum() - 1.0) <= 1e-13 and np.all(np.diff(nodes) > 0)
    # degree 2: int_0^1 a^2 = 1/3, exact for any n >= 2
    assert float(np.sum(weights * nodes ** 2)) == pytest.approx(1 / 3, rel=1e-13)
    companion = companion_weights("gauss_legendre", 4000)
    assert abs(companion.sum() - 1.0) <= 1e-12 and companion.min() >= 0
    with pytest.raises(ResourceError, match=r"n_steps.*Gauss-Legendre.*quad"):
        nodes_and_weights("gauss_legendre", MAX_GAUSS_LEGENDRE + 1)


def test_gauss_kronrod_pair_of_the_adaptive_rule():
    # K15 integrates x^k exactly on [-1, 1] for k <= 22 (2 / (k + 1) for even k, 0 for odd) and
    # not k = 24; the embedded G7 is numpy's 7-point Gauss rule; the constants were computed in
    # 40 digits by tests/data/gauss_kronrod_15.py.
    from numpy.polynomial import legendre
    from refattr.methods._adaptive import GAUSS_INDEX, GAUSS_WEIGHTS, KRONROD_NODES, KRONROD_WEIGHTS
    exact = lambda k: 0.0 if k % 2 else 2.0 / (k + 1)
    for k in range(23):
        # a sum of 15 terms of size <= 0.21: rounding below 15 * 1.1e-16 * 0.21 * 2
        assert np.sum(KRONROD_WEIGHTS * KRONROD_NODES ** k) == pytest.approx(exact(k), abs=1e-15)
    assert abs(np.sum(KRONROD_WEIGHTS * KRONROD_NODES ** 24) - exact(24)) > 1e-9     # 5.7e-9
    t, w = legendre.leggauss(7)
    np.testing.assert_allclose(KRONROD_NODES[GAUSS_INDEX], t, rtol=0, atol=5e-16)
    np.testing.assert_allclose(GAUSS_WEIGHTS, w, rtol=0, atol=5e-16)   # numpy's rounding
