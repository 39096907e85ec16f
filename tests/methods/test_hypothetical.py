"""Hypothetical contributions (Shrikumar et al. 2018, TF-MoDISco).

Expected values: in-silico mutagenesis by forward passes (linear model), Δt by forward passes,
the closed form m - x'·m from single-reference DeepLIFT multipliers, and hand computations.
References are dinucleotide shuffles made by the shuffler below (Altschul & Erickson 1985).
"""

from __future__ import annotations

import numpy as np
import pytest

from refattr import (
    Add, ArgumentError, Conv1D, Dense, Flatten, Graph, MaxPool1D, ReLU, Sequential, Tanh, deeplift,
    hypothetical_contributions,
)

C, L = 4, 16


# A dinucleotide shuffler (Altschul & Erickson 1985) -------------------------------------------------

def dinucleotide_shuffle(seq, rng):
    """A random sequence with the same first base and the same count of every dinucleotide.

    The dinucleotides are the edges of a multigraph on the bases; a shuffle is a random Eulerian
    path from seq[0]. Choose for every base other than the last one a random 'last exit' edge; if
    these edges form a tree towards seq[-1], walking the other exits in random order and each
    last exit last is an Eulerian path (Altschul & Erickson 1985; Kandel et al. 1996).
    """
    first, last = int(seq[0]), int(seq[-1])
    exits = {b: [int(t) for a, t in zip(seq[:-1], seq[1:]) if a == b] for b in range(C)}
    while True:
        last_exit = {b: int(rng.integers(len(e))) for b, e in exits.items() if e and b != last}

        def reaches_last(b):
            seen = set()
            while b != last:
                if b in seen:
                    return False
                seen.add(b)
                b = exits[b][last_exit[b]]
            return True

        if all(reaches_last(b) for b in last_exit):
            break
    order = {}
    for b, e in exits.items():
        rest = [t for i, t in enumerate(e) if i != last_exit.get(b, -1)]
        rng.shuffle(rest)
        order[b] = rest + ([e[last_exit[b]]] if b in last_exit else [])
    out, b = [first], first
    for _ in range(len(seq) - 1):
        b = order[b].pop(0)
        out.append(b)
    return np.array(out)


def dinucleotide_counts(seq):
    counts = np.zeros((C, C), dtype=int)
    np.add.at(counts, (seq[:-1], seq[1:]), 1)
    return counts


def encode(bases):
    return np.eye(C)[bases].T          # (C, L)


def sequences_and_shuffles(rng, n, k):
    bases = rng.integers(0, C, size=(n, L))
    shuffles = np.array([[dinucleotide_shuffle(b, rng) for _ in range(k)] for b in bases])
    for b, sh in zip(bases, shuffles):
        for s in sh:
            np.testing.assert_array_equal(dinucleotide_counts(s), dinucleotide_counts(b))
            assert s[0] == b[0] and s[-1] == b[-1]
    assert (shuffles != bases[:, None]).any(axis=2).all()    # (these random draws give real shuffles)
    return (np.array([encode(b) for b in bases]),
            np.array([[encode(s) for s in sh] for sh in shuffles]))


# Models ----------------------------------------------------------------------------------------------

def linear_model(rng):
    """Conv1D -> Flatten -> Dense: Conv1D(4 -> 2, k = 3) gives 2 x 14 = 28 features."""
    return Sequential([Conv1D(rng.normal(size=(2, C, 3)), rng.normal(size=2)), Flatten(),
                       Dense(rng.normal(size=(3, 2 * (L - 2))), rng.normal(size=3))])


def relu_pool_model(rng):
    """The shape of a genomics CNN: Conv1D -> ReLU -> MaxPool1D -> Flatten -> Dense."""
    return Sequential([Conv1D(rng.normal(size=(3, C, 5)), rng.normal(size=3)), ReLU(), MaxPool1D(3), Flatten(),
                       Dense(rng.normal(size=(1, 3 * 4)), [0.1])])


# The closed form ---------------------------------------------------------------------------------------

def test_linear_model_hypothetical_is_in_silico_mutagenesis_of_the_references():
    # For a linear model, the hypothetical contribution of base c at position j is the output change
    # from writing base c at j into the reference, mean over the references: forward passes only.
    rng = np.random.default_rng(23)
    net = linear_model(rng)
    x, refs = sequences_and_shuffles(rng, 2, 5)
    target = np.array([2, 0])
    result = hypothetical_contributions(net, x, baseline_samples=refs, target=target)
    expected = np.zeros_like(x)
    for n in range(2):
        for j in range(L):
            for c in range(C):
                changes = []
                for ref in refs[n]:
                    mutated = ref.copy()
                    mutated[:, j] = 0.0
                    mutated[c, j] = 1.0
                    changes.append(net(mutated[None])[0, target[n]] - net(ref[None])[0, target[n]])
                expected[n, c, j] = np.mean(changes)
    np.testing.assert_allclose(result.hypothetical, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # projected: the present base's entry, zero elsewhere
    np.testing.assert_array_equal(result.projected, result.hypothetical * x)
    assert result.values is result.projected


def test_projected_contributions_sum_to_delta_on_relu_maxpool_model():
    rng = np.random.default_rng(49)
    net = relu_pool_model(rng)
    x, refs = sequences_and_shuffles(rng, 4, 6)
    result = hypothetical_contributions(net, x, baseline_samples=refs, maxpool_rule="delta_routing")
    # Δt by forward passes: mean_k t(x_n) - t(x'_nk)
    t_refs = net(refs.reshape(24, C, L))[:, 0].reshape(4, 6)
    delta_t = net(x)[:, 0] - t_refs.mean(axis=1)
    assert np.abs(delta_t).min() > 1e-3
    total = result.projected.sum(axis=(1, 2))
    scale = np.abs(result.projected).sum(axis=(1, 2)) + np.abs(delta_t)
    assert np.all(np.abs(total - delta_t) <= 1e-12 * scale)
    assert np.all(np.abs(result.completeness_gap) <= 1e-12 * scale)
    # The channel-wise contributions and multipliers are deeplift's, and at each position the
    # projected credit is the channel-wise credit of that position gathered on the present base.
    plain = deeplift(net, x, baseline_samples=refs, maxpool_rule="delta_routing")
    np.testing.assert_allclose(result.contributions, plain.values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.multipliers, plain.multipliers, rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.projected, x * plain.values.sum(axis=1, keepdims=True), rtol=0, atol=1e-13)
    # ... and differ from them: a shuffled reference puts credit on absent bases
    assert np.abs(result.projected - plain.values).max() > 1e-3


def test_hypothetical_is_formed_per_reference_before_the_mean():
    # h = mean_k (m_k - sum_c' x'_k[c'] m_k[c']), m_k from a single-reference deeplift call; averaging
    # the multipliers and references first gives another answer on a nonlinear model.
    rng = np.random.default_rng(11)
    net = relu_pool_model(rng)
    x, refs = sequences_and_shuffles(rng, 2, 4)
    result = hypothetical_contributions(net, x, baseline_samples=refs, maxpool_rule="delta_routing")
    per_pair, biased = [], []
    for n in range(2):
        ms = np.array([deeplift(net, x[n:n + 1], baseline=ref, maxpool_rule="delta_routing").multipliers[0]
                       for ref in refs[n]])
        per_pair.append(np.mean([m - (ref * m).sum(axis=0) for m, ref in zip(ms, refs[n])], axis=0))
        m_bar, ref_bar = ms.mean(axis=0), refs[n].mean(axis=0)
        biased.append(m_bar - (ref_bar * m_bar).sum(axis=0))
    per_pair, biased = np.array(per_pair), np.array(biased)
    np.testing.assert_allclose(result.hypothetical, per_pair, rtol=0, atol=1e-12 * np.abs(per_pair).max())
    assert np.abs(per_pair - biased).max() > 1e-3


def test_hand_example_with_a_soft_reference():
    # t = 2 x_A + 5 x_C (one position, two bases), reference (0.5, 0.5): t(x') = 3.5, m = (2, 5);
    # h = (2 - 3.5, 5 - 3.5) = (-1.5, 1.5); x = A: projected (-1.5, 0), Δt = 2 - 3.5 = -1.5.
    net = Sequential([Flatten(), Dense([[2.0, 5.0]])])
    result = hypothetical_contributions(net, [[[1.0], [0.0]]], baseline=0.5)
    np.testing.assert_array_equal(result.hypothetical, [[[-1.5], [1.5]]])
    np.testing.assert_array_equal(result.projected, [[[-1.5], [0.0]]])
    np.testing.assert_array_equal(result.contributions, [[[1.0], [-2.5]]])    # 2 (1 - .5), 5 (0 - .5)
    np.testing.assert_array_equal(result.options["delta_t"], [-1.5])
    assert repr(result) == ("Attribution(method='hypothetical_contributions', shape=(1, 2, 1), completeness_gap: "
                            "max |gap| 0)")
    # the default reference 0: h = m
    np.testing.assert_array_equal(hypothetical_contributions(net, [[[0.0], [1.0]]]).hypothetical, [[[2.0], [5.0]]])


def test_reveal_cancel_uses_the_multiplier_of_the_actual_difference():
    # Under RevealCancel the one Dense unit z = w . x splits Δz into Δz+ and Δz-, with multipliers
    # m_z+ != m_z-. The input's multiplier is w_i m_z+ where w_i Δx_i > 0, w_i m_z- where w_i Δx_i < 0,
    # and w_i (m_z+ + m_z-) / 2 where Δx_i == 0 (the 0.5 rule); h = m - x'.m and the projection still
    # sums to Δt. t = tanh(x_A - x_C + 0.3 x_G), one position, x = A, reference G.
    net = Sequential([Flatten(), Dense([[1.0, -1.0, 0.3, 0.0]]), Tanh()])
    x, ref = np.array([[[1.0], [0.0], [0.0], [0.0]]]), np.array([[0.0], [0.0], [1.0], [0.0]])
    result = hypothetical_contributions(net, x, baseline=ref, rule="reveal_cancel")
    # z' = 0.3, Δz+ = 1 (from A), Δz- = -0.3 (from G); RevealCancel's Shapley split at tanh:
    zr, dp, dn = 0.3, 1.0, -0.3
    dy_pos = 0.5 * (np.tanh(zr + dp) - np.tanh(zr)) + 0.5 * (np.tanh(zr + dn + dp) - np.tanh(zr + dn))
    dy_neg = 0.5 * (np.tanh(zr + dn) - np.tanh(zr)) + 0.5 * (np.tanh(zr + dp + dn) - np.tanh(zr + dp))
    m_zp, m_zn = dy_pos / dp, dy_neg / dn
    assert abs(m_zp - m_zn) > 1e-2                  # the two parts really differ here
    m = np.array([1.0 * m_zp,                       # A: Δx = +1, w = 1 > 0
                  -1.0 * (m_zp + m_zn) / 2,         # C: Δx = 0
                  0.3 * m_zn,                       # G: Δx = -1, w = 0.3 > 0: w Δx < 0
                  0.0])                             # T: w = 0
    expected = m - m[2]                             # h[c] = m[c] - sum_c' x'[c'] m[c'], x' = G
    np.testing.assert_allclose(result.multipliers[0, :, 0], m, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result.hypothetical[0, :, 0], expected, rtol=1e-13, atol=1e-15)
    delta_t = np.tanh(1.0) - np.tanh(0.3)
    np.testing.assert_allclose(result.projected.sum(), delta_t, rtol=1e-13)


def test_shared_and_per_example_references_and_2d_layout():
    # A shared set is the per-example set repeated; a model on (N, 4, 1, L) (a height-1 image) takes
    # channel axis 1 with positions (1, L).
    rng = np.random.default_rng(5)
    net = linear_model(rng)
    x, refs = sequences_and_shuffles(rng, 2, 3)
    shared = hypothetical_contributions(net, x, baseline_samples=refs[0], target=1)
    own = hypothetical_contributions(net, x, baseline_samples=np.stack([refs[0], refs[0]]), target=1)
    np.testing.assert_array_equal(shared.hypothetical, own.hypothetical)
    from refattr import Conv2D
    net2 = Sequential([Conv2D(net.layers[0].weight[:, :, None, :], net.layers[0].bias), Flatten(), net.layers[2]])
    flat = hypothetical_contributions(net2, x[:, :, None], baseline_samples=refs[:, :, :, None], target=1)
    per = hypothetical_contributions(net, x, baseline_samples=refs, target=1)
    np.testing.assert_allclose(flat.hypothetical[:, :, 0], per.hypothetical, rtol=0, atol=1e-13)


# Refusals ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("column, seen", [((0.25, 0.25, 0.25, 0.25), r"\[0.25 0.25 0.25 0.25\]"),
                                          ((0.0, 0.0, 0.0, 0.0), r"\[0. 0. 0. 0.\]"),
                                          ((2.0, 0.0, 0.0, 0.0), r"\[2. 0. 0. 0.\]"),
                                          ((1.0, 1.0, 0.0, 0.0), r"\[1. 1. 0. 0.\]")])
def test_non_one_hot_input_is_refused(column, seen):
    rng = np.random.default_rng(3)
    net = linear_model(rng)
    x, _ = sequences_and_shuffles(rng, 2, 1)
    x[1, :, 7] = column
    with pytest.raises(ArgumentError, match=rf"one-hot input.*example 1, position \(7,\) has {seen} \(1 such "
                                            rf"position\(s\) in all\).*use deeplift\(\)"):
        hypothetical_contributions(net, x, target=0)


def test_several_inputs_are_refused():
    net = Graph(("a", "b"), [("s", Add(), ("a", "b")), ("f", Flatten(), "s"), ("y", Dense(np.ones((1, 8))), "f")])
    x = np.zeros((1, 2, 4))
    x[:, 0] = 1.0
    with pytest.raises(ArgumentError, match=r"this graph has 2 inputs \['a', 'b'\]"):
        hypothetical_contributions(net, (x, x))


def test_baselines_is_refused_and_nothing_else_changes():
    net = Sequential([Flatten(), Dense([[2.0, 5.0]])])
    with pytest.raises(ArgumentError, match="baselines"):
        hypothetical_contributions(net, [[[1.0], [0.0]]], baselines=np.zeros((1, 2, 1)))
