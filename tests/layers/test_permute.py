"""Permute: a per-example axis permutation (the layer contract suite covers gradients, DeepLIFT
summation-to-delta, serialisation; these pin the definition, DeepLIFT's pass-through and refusals).

Expected values: NumPy's transpose (an independent implementation of the same definition), hand
layouts in comments, and attributions of the same network fed the permuted input directly.
"""

import numpy as np
import pytest

from refattr import Conv1D, Dense, Flatten, Permute, ReLU, Sequential, Tanh, deeplift
from refattr.errors import ArgumentError, ShapeError, UnsupportedLayerError


def test_forward_is_numpy_transpose_with_the_batch_axis_fixed():
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    y = Permute((2, 0, 1)).forward(x)[0]
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    assert y.shape == (1, 4, 2, 3) and y.flags.c_contiguous
    # by hand: (N, 3, 2) rows (0 1), (2 3), (4 5) -> (N, 2, 3) rows (0 2 4), (1 3 5)
    np.testing.assert_array_equal(Permute((1, 0)).forward(np.arange(6.0).reshape(1, 3, 2))[0],
                                  [[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]])
    assert Permute((2, 0, 1)).output_shape((2, 3, 4)) == (4, 2, 3)
    assert Permute((1, 0)).output_shape(None) == (None, None)


def test_vjp_is_the_inverse_permutation():
    layer, rng = Permute((2, 0, 1)), np.random.default_rng(0)
    x, g = rng.normal(size=(2, 2, 3, 4)), rng.normal(size=(2, 4, 2, 3))
    y, cache = layer.forward(x)
    # adjoint identity <g, P x> = <P^T g, x>, and P^T is the inverse permutation (2, 0, 1)^-1 = (1, 2, 0)
    back = layer.vjp(g, cache)
    np.testing.assert_array_equal(back, g.transpose(0, 2, 3, 1))
    assert np.isclose(np.sum(g * y), np.sum(back * x), rtol=1e-14)


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_deeplift_through_a_permute_is_deeplift_on_the_permuted_input(rule):
    # ReLU -> Permute -> Conv1D on x equals ReLU -> Conv1D on x transposed: attributions are only moved
    rng = np.random.default_rng(1)
    conv = Conv1D(rng.normal(size=(3, 4, 2)), rng.normal(size=3))
    head = [ReLU(), Flatten(), Dense(rng.normal(size=(2, 15)), rng.normal(size=2)), Tanh()]
    with_permute = Sequential([Tanh(), Permute((1, 0)), conv] + head, input_shape=(6, 4))
    direct = Sequential([Tanh(), conv] + head, input_shape=(4, 6))
    x, x_ref = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 4))
    a = deeplift(with_permute, x, baseline=x_ref, target=1, rule=rule)
    b = deeplift(direct, x.transpose(0, 2, 1), baseline=x_ref.transpose(0, 2, 1), target=1, rule=rule)
    np.testing.assert_allclose(a.values, b.values.transpose(0, 2, 1), rtol=0, atol=1e-13 * np.abs(b.values).max())
    np.testing.assert_allclose(a.multipliers, b.multipliers.transpose(0, 2, 1), rtol=0,
                               atol=1e-13 * np.abs(b.multipliers).max())


@pytest.mark.parametrize("dims", [(), (0, 0), (1, 2), (0, -1), ("a", "b"), (True, False), 3, "01"])
def test_constructor_refuses_what_is_not_a_permutation(dims):
    with pytest.raises(ArgumentError, match="Permute dims"):
        Permute(dims)


def test_a_shape_of_another_rank_is_refused_naming_the_layer():
    with pytest.raises(ShapeError, match=r"Permute\(\(1, 0\)\): expected examples of rank 2"):
        Permute((1, 0)).output_shape((2, 3, 4))
    with pytest.raises(ShapeError, match="rank 2"):
        Permute((1, 0)).forward(np.zeros((1, 2, 3, 4)))


def test_to_torch_refuses_it_by_name():
    pytest.importorskip("torch")
    from refattr.interop import to_torch

    with pytest.raises(UnsupportedLayerError, match="Permute has no PyTorch equivalent"):
        to_torch(Sequential([Permute((1, 0)), Flatten()], input_shape=(2, 3)))
