"""baseline_samples as one set of K references per example, (N, K, *example_shape).

Expected values come from K separate single-reference calls averaged (each a plain ``baseline=``
call, a code path that does not pair rows), from forward passes (Δt), or from the shapes alone.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import refattr.network
from refattr import (
    Add, Conv1D, Dense, Flatten, Graph, MaxPool1D, NonFiniteError, ReLU, ResourceError, Sequential, ShapeError,
    deeplift, integrated_gradients,
)
from refattr.validation import as_baselines, as_reference_sets, pair_with_references, DEFAULT_BASELINE

C, L = 4, 12


def one_hot(rng, shape):
    """Random one-hot sequences of shape (*shape, C, L)."""
    bases = rng.integers(0, C, size=shape + (L,))
    return np.moveaxis(np.eye(C)[bases], -1, -2)


def conv_model(rng):
    """Conv1D(4 -> 3, k = 5) -> ReLU -> MaxPool1D(2) -> Flatten -> Dense(12 -> 2): the shape of a
    genomics model; piecewise linear, so integrated gradients' rule "exact" applies."""
    return Sequential([Conv1D(rng.normal(size=(3, C, 5)), rng.normal(size=3)), ReLU(), MaxPool1D(2), Flatten(),
                       Dense(rng.normal(size=(2, 3 * (L - 4) // 2)), rng.normal(size=2))])


@pytest.fixture
def case():
    rng = np.random.default_rng(2318)
    n, k = 3, 4
    return conv_model(rng), one_hot(rng, (n,)), one_hot(rng, (n, k)), np.array([0, 1, 1])


def separate_mean(method, net, x, refs, target, field="values", **options):
    """mean over j of method(net, x[n], baseline=refs[n, j]), example by example."""
    rows = []
    for n in range(x.shape[0]):
        per_ref = [getattr(method(net, x[n:n + 1], baseline=refs[n, j], target=int(target[n]), **options), field)[0]
                   for j in range(refs.shape[1])]
        rows.append(np.mean(per_ref, axis=0))
    return np.array(rows)


def close(actual, expected, rtol=1e-12):
    # relative to the largest entry: entries near 0 are differences of rounding-level size
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * max(np.abs(expected).max(), 1e-300))


# equal to separate calls ---------------------------------------------------------------------------

def test_deeplift_per_example_sets_equal_separate_calls_averaged(case):
    net, x, refs, target = case
    result = deeplift(net, x, baseline_samples=refs, target=target, maxpool_rule="delta_routing")
    for field in ("values", "multipliers"):
        close(getattr(result, field), separate_mean(deeplift, net, x, refs, target, field,
                                                     maxpool_rule="delta_routing"))
    assert result.options["n_baselines"] == 4
    # Δt from forward passes: mean_j t(x_n) - t(x'_nj)
    t_x = net(x)[np.arange(3), target]
    t_ref = np.array([[net(refs[n, j][None])[0, target[n]] for j in range(4)] for n in range(3)])
    close(result.options["delta_t"], t_x - t_ref.mean(axis=1))


def test_deeplift_summation_to_delta_holds_for_every_pair(case):
    # Every (example, reference) pair as its own example with a set of one: per-pair gaps.
    net, x, refs, target = case
    n, k = refs.shape[:2]
    x_pairs, refs_pairs = np.repeat(x, k, axis=0), refs.reshape(n * k, 1, C, L)
    result = deeplift(net, x_pairs, baseline_samples=refs_pairs, target=np.repeat(target, k),
                      maxpool_rule="delta_routing")
    t = np.repeat(target, k)
    delta_t = net(x_pairs)[np.arange(n * k), t] - net(refs_pairs[:, 0])[np.arange(n * k), t]
    gap = result.values.reshape(n * k, -1).sum(axis=1) - delta_t
    scale = np.abs(result.values).reshape(n * k, -1).sum(axis=1) + np.abs(delta_t)
    assert np.all(np.abs(gap) <= 1e-12 * scale)
    assert np.all(np.abs(delta_t) > 1e-3)        # the pairs do move the output: the check has teeth


def test_integrated_gradients_per_example_sets_equal_separate_calls_averaged(case):
    net, x, refs, target = case
    result = integrated_gradients(net, x, baseline_samples=refs, target=target, rule="exact")
    close(result.values, separate_mean(integrated_gradients, net, x, refs, target, rule="exact"))
    assert result.options["n_pieces"].shape == (3, 4)
    assert np.all(np.abs(result.completeness_gap) <= 1e-12 * np.abs(result.values).sum(axis=(1, 2)))


def test_per_example_sets_differ_from_one_shared_set(case):
    # The same numbers read as one shared set of N * K references give a different answer: the
    # per-example reading really pairs example n with its own references only.
    net, x, refs, target = case
    own = deeplift(net, x, baseline_samples=refs, target=target, maxpool_rule="delta_routing").values
    shared = deeplift(net, x, baseline_samples=refs.reshape(12, C, L), target=target,
                      maxpool_rule="delta_routing").values
    assert np.abs(own - shared).max() > 1e-3


def test_rank_decides_when_k_equals_n(case):
    # K == N: (N, K, C, L) is one set per example and (K, C, L) one shared set, by rank alone.
    net, x, refs, target = case
    refs3 = refs[:, :3]
    per_example = deeplift(net, x, baseline_samples=refs3, target=target, maxpool_rule="delta_routing").values
    close(per_example, separate_mean(deeplift, net, x, refs3, target, maxpool_rule="delta_routing"))
    shared = deeplift(net, x, baseline_samples=refs3[0], target=target, maxpool_rule="delta_routing").values
    close(shared, separate_mean(deeplift, net, x, np.broadcast_to(refs3[0], refs3.shape), target,
                                maxpool_rule="delta_routing"))


def test_pairing_is_example_major_with_own_references():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    refs = np.arange(12.0).reshape(2, 3, 2)            # example n's reference j is refs[n, j]
    inputs, references, targets, k = pair_with_references(x, np.array([0, 1]), DEFAULT_BASELINE, refs)
    assert k == 3
    np.testing.assert_array_equal(inputs, np.repeat(x, 3, axis=0))
    np.testing.assert_array_equal(references, refs.reshape(6, 2))      # row n * 3 + j is refs[n, j]
    np.testing.assert_array_equal(targets, [0, 0, 0, 1, 1, 1])
    # the shared form as a broadcast view, the per-example form as given
    shared = as_reference_sets(refs[0], x)
    assert shared.shape == (2, 3, 2) and shared.strides[0] == 0
    np.testing.assert_array_equal(as_reference_sets(refs, x), refs)


def test_several_inputs_take_one_set_per_example():
    # Two inputs: baseline_samples is a tuple of (N, K, *shape_i) arrays; reference j of example n
    # is the pair (samples[0][n, j], samples[1][n, j]).
    rng = np.random.default_rng(7)
    net = Graph(("a", "b"), [("ha", Dense(rng.normal(size=(3, 2))), "a"), ("hb", Dense(rng.normal(size=(3, 4))), "b"),
                             ("s", Add(), ("ha", "hb")), ("r", ReLU(), "s"), ("y", Dense(rng.normal(size=(1, 3))), "r")])
    xs = (rng.normal(size=(2, 2)), rng.normal(size=(2, 4)))
    samples = (rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 4)))
    result = deeplift(net, xs, baseline_samples=samples)
    for i in range(2):
        expected = [np.mean([deeplift(net, (xs[0][n:n + 1], xs[1][n:n + 1]),
                                      baseline=(samples[0][n, j], samples[1][n, j])).values[i][0]
                             for j in range(3)], axis=0) for n in range(2)]
        close(result.values[i], np.array(expected))


# errors ---------------------------------------------------------------------------------------------

def test_shape_errors_say_how_the_shape_was_read(case):
    net, x, refs, target = case
    expected = r"baseline_samples: expected shape \(K, 4, 12\) with K >= 1 .* or \(N, K, 4, 12\) = \(3, K, 4, 12\) "
    with pytest.raises(ShapeError, match=expected + r".*got \(2, 4, 4, 12\): it has two axes more than one example "
                                                    r"\(4, 12\), so it is read as one set per example.*first axis is 2 "
                                                    r"but x has N = 3"):
        deeplift(net, x, baseline_samples=refs[:2], maxpool_rule="delta_routing", target=target)
    with pytest.raises(ShapeError, match=expected + r".*read as one set per example.*trailing axes \(4, 11\)"):
        integrated_gradients(net, x, baseline_samples=refs[..., :11], target=target)
    with pytest.raises(ShapeError, match=expected + r".*got \(4, 4, 11\): it has one axis more than one example "
                                                    r"\(4, 12\), so it is read as one shared set.*trailing axes \(4, 11\)"):
        deeplift(net, x, baseline_samples=refs[0, :, :, :11], maxpool_rule="delta_routing", target=target)
    with pytest.raises(ShapeError, match=expected + r".*its 5 axes fit neither reading"):
        deeplift(net, x, baseline_samples=refs[None], maxpool_rule="delta_routing", target=target)
    with pytest.raises(ShapeError, match=expected + r".*K is 0"):
        deeplift(net, x, baseline_samples=refs[:, :0], maxpool_rule="delta_routing", target=target)
    with pytest.raises(ShapeError, match=expected + r".*shared set.*K is 0"):
        deeplift(net, x, baseline_samples=refs[0, :0], maxpool_rule="delta_routing", target=target)
    # callers that take one shared set only say why per-example sets are refused
    with pytest.raises(ShapeError, match=r"one set per example, \(N, K, \*example_shape\), which deeplift"):
        as_baselines(refs, x)


def test_overflowing_difference_names_the_example_and_its_reference():
    net = Sequential([Dense(np.ones((1, 2)))])
    x = np.array([[1e308, 0.0], [0.0, 0.0]])
    refs = np.zeros((2, 3, 2))
    refs[0, 2, 0] = -1e308
    with pytest.raises(NonFiniteError, match=r"example 0 with baseline_samples\[0, 2\]"):
        deeplift(net, x, baseline_samples=refs)


def test_resource_error_before_allocating_the_pairs(monkeypatch):
    net = Sequential([Flatten(), Dense(np.ones((1, C * L)))])
    x = np.zeros((2, C, L))
    # A real request of 10**12 references per example, given as a broadcast view (no memory): the
    # pairs would need 4 arrays x 2e12 rows x 48 values x 8 bytes = 3.07e15 bytes = 2.73 PiB.
    huge = np.broadcast_to(np.zeros((C, L)), (2, 10**12, C, L))
    with pytest.raises(ResourceError, match=r"N = 2 examples with K = 1000000000000 references.*2.79e\+03 TiB.*fewer "
                                            r"references per example, or fewer examples per call"):
        deeplift(net, x, baseline_samples=huge)
    with pytest.raises(ResourceError, match=r"K = 1000000000000"):
        integrated_gradients(net, x, baseline_samples=huge[0])      # one shared set, as large
    # A machine of 1 MiB: 2 examples x 1,000 references x 48 values x 8 bytes x 4 arrays = 3.07 MB
    # is refused, and nothing of that size was allocated on the way.
    monkeypatch.setattr(refattr.network, "memory_bytes", lambda: 2**20)
    refs = np.broadcast_to(np.zeros((C, L)), (2, 1000, C, L))
    tracemalloc.start()
    try:
        with pytest.raises(ResourceError, match=r"need about 2.93 MiB.*\(1 MiB\); ask for at most 682 rows"):
            deeplift(net, x, baseline_samples=refs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**19            # well below one array of the pairs (768 kB)
    # 682 rows fit: 2 examples x 341 references
    assert deeplift(net, x, baseline_samples=refs[:, :341]).values.shape == (2, C, L)
