"""The contract every registered join (a layer of several inputs: Add, Concat, Mul) meets; this
suite walks the registry, as tests/layers/test_layer_contract.py does for one-input layers.

Where every expected number comes from:

- VJP and JVP: central finite differences of the forward pass along random directions (step 1e-5,
  rtol 1e-7), and the adjoint identity <g, J d> = sum_k <J_k^T g, d_k>, exact up to rounding.
- DeepLIFT: the rule conserves what crosses it: sum over the inputs' neurons of m * Δ equals the
  sum over the output's of M * Δy (M = 1 here, and with unequal multipliers M+ != M- of the
  output's parts), to rounding, under Rescale and RevealCancel.
- Serialisation: to_config / from_config gives a layer computing the same function, bit for bit.
"""

import numpy as np
import pytest

from refattr.layers._join import JoinLayer
from refattr.layers.base import DeltaPair, select_by_sign
from refattr.layers.registry import from_config, registered, to_config

JOINS = [e for e in registered() if e.joins]
SHAPES = [(4,), (2, 3, 3)]


def instance(entry, rng, shape):
    layer = entry.cls.random(rng, shape)
    k = layer.n_inputs or 3
    xs = tuple(rng.normal(size=(2,) + shape) for _ in range(k))
    return layer, xs


def test_the_registry_holds_the_three_joins():
    assert {e.name for e in JOINS} == {"Add", "Concat", "Mul"}
    assert all(issubclass(e.cls, JoinLayer) for e in JOINS)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("entry", JOINS, ids=lambda e: e.name)
def test_vjp_and_jvp_against_central_differences(entry, shape):
    rng = np.random.default_rng(3)
    for _ in range(4):
        layer, xs = instance(entry, rng, shape)
        y, cache = layer.forward(xs)
        ds = tuple(rng.normal(size=x.shape) for x in xs)
        h = 1e-5
        plus = layer.forward(tuple(x + h * d for x, d in zip(xs, ds)))[0]
        minus = layer.forward(tuple(x - h * d for x, d in zip(xs, ds)))[0]
        fd = (plus - minus) / (2 * h)
        jvp = layer.jvp(ds, cache)
        np.testing.assert_allclose(jvp, fd, rtol=1e-7, atol=1e-9)
        g = rng.normal(size=y.shape)
        gs = layer.vjp(g, cache)
        assert len(gs) == len(xs) and all(a.shape == x.shape for a, x in zip(gs, xs))
        lhs = float(np.sum(g * jvp))
        rhs = sum(float(np.sum(a * d)) for a, d in zip(gs, ds))
        assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1.0)


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("entry", JOINS, ids=lambda e: e.name)
def test_deeplift_rule_conserves_what_crosses_it(entry, rule):
    rng = np.random.default_rng(5)
    for shape in SHAPES:
        layer, xs = instance(entry, rng, shape)
        refs = tuple(rng.normal(size=x.shape) for x in xs)
        refs = (xs[0].copy(),) + refs[1:] if rng.random() < 0.3 else refs   # an input that does not change
        pairs = tuple(DeltaPair(x, r, np.maximum(x - r, 0.0), np.minimum(x - r, 0.0)) for x, r in zip(xs, refs))
        y, cache = layer.forward(xs)
        y_ref, cache_ref = layer.forward(refs)
        pos, neg, dl = layer.deeplift_forward(pairs, y, y_ref, cache, cache_ref, rule=rule, maxpool_rule=None)
        np.testing.assert_allclose(pos + neg, y - y_ref, rtol=0, atol=1e-12 * (1 + np.abs(y).max()))
        for m_pos, m_neg in ((np.ones_like(y),) * 2, (rng.normal(size=y.shape), rng.normal(size=y.shape))):
            below = layer.deeplift_backward(m_pos, m_neg, dl)
            into = sum(float(np.sum(mp * p.pos + mn * p.neg)) for (mp, mn), p in zip(below, pairs))
            out = float(np.sum(m_pos * pos + m_neg * neg))
            assert abs(into - out) <= 1e-12 * (1 + abs(out) + float(np.abs(y - y_ref).sum())), (shape, into, out)


def test_mul_uses_the_shapley_split_and_is_symmetric():
    from refattr import Mul
    a, a_ref, b, b_ref = 3.0, 1.0, 5.0, 2.0        # Δa = 2, Δb = 3, Δ(ab) = 15 - 2 = 13
    layer = Mul()

    def contributions(x1, r1, x2, r2):
        xs, refs = (np.array([[x1]]), np.array([[x2]])), (np.array([[r1]]), np.array([[r2]]))
        pairs = tuple(DeltaPair(x, r, np.maximum(x - r, 0.0), np.minimum(x - r, 0.0)) for x, r in zip(xs, refs))
        y, c = layer.forward(xs)
        y_ref, c_ref = layer.forward(refs)
        _, _, dl = layer.deeplift_forward(pairs, y, y_ref, c, c_ref, rule="rescale", maxpool_rule=None)
        one = np.ones((1, 1))
        return [float(m[0][0, 0] * (x - r)) for m, x, r in zip(layer.deeplift_backward(one, one, dl), (x1, x2), (r1, r2))]

    # C_a = Δa (b' + Δb / 2) = 2 * 3.5 = 7, C_b = Δb (a' + Δa / 2) = 3 * 2 = 6; 7 + 6 = 13
    assert contributions(a, a_ref, b, b_ref) == [7.0, 6.0]
    assert contributions(b, b_ref, a, a_ref) == [6.0, 7.0]
    # Δb = 0: the Linear rule with weight b: C_a = Δa b = 10, C_b = 0
    assert contributions(a, a_ref, b, b) == [10.0, 0.0]


@pytest.mark.parametrize("entry", JOINS, ids=lambda e: e.name)
def test_serialisation_round_trips(entry):
    rng = np.random.default_rng(9)
    for shape in SHAPES:
        layer, xs = instance(entry, rng, shape)
        again = from_config(to_config(layer))
        assert type(again) is type(layer) and repr(again) == repr(layer)
        np.testing.assert_array_equal(again.forward(xs)[0], layer.forward(xs)[0])


def test_select_by_sign_is_the_half_rule_used_by_linear_joins():
    from refattr import Add
    layer = Add(weights=(2.0, -1.0))
    x = (np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]))
    r = (np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]))
    pairs = tuple(DeltaPair(a, b, np.maximum(a - b, 0.0), np.minimum(a - b, 0.0)) for a, b in zip(x, r))
    y, c = layer.forward(x)
    y_ref, c_ref = layer.forward(r)
    pos, neg, dl = layer.deeplift_forward(pairs, y, y_ref, c, c_ref, rule="rescale", maxpool_rule=None)
    # input 1: Δ = (1, 0), w = 2 > 0: feeds Δy+ = 2; input 2: Δ = (-1, 0), w = -1: -1 * -1 = +1 feeds Δy+
    np.testing.assert_array_equal(pos, [[3.0, 0.0]])
    np.testing.assert_array_equal(neg, [[0.0, 0.0]])
    m_pos, m_neg = np.array([[10.0, 10.0]]), np.array([[20.0, 20.0]])
    (m1, _), (m2, _) = layer.deeplift_backward(m_pos, m_neg, dl)
    # Δx1 > 0 at element 0: w+ M+ = 2 * 10; Δx1 == 0 at element 1: the mean of 2 * 10 and 2 * 20
    np.testing.assert_array_equal(m1, [[20.0, 30.0]])
    # Δx2 < 0 at element 0: m(Δx < 0) = w- M+ + w+ M- = -1 * 10 + 0 = -10; element 1: mean of -20 and -10
    np.testing.assert_array_equal(m2, [[-10.0, -15.0]])
    assert select_by_sign(np.array([0.0]), np.array([1.0]), np.array([3.0]))[0] == 2.0
