"""Every bad input gets a ValueError subclass whose message names the problem and the fix."""

import numpy as np
import pytest

from refattr import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, NonFiniteError, ReLU, Sequential,
                     ShapeError, Swish, TargetError, UnsupportedLayerError, gradient)
from refattr.errors import RefattrError


def mlp():
    return Sequential([Dense(np.ones((3, 2))), ReLU(), Dense(np.ones((2, 3)))])


def test_every_error_is_a_value_error():
    for cls in (ShapeError, NonFiniteError, TargetError, UnsupportedLayerError, RefattrError):
        assert issubclass(cls, ValueError)


def test_dense_after_conv_without_flatten_fails_at_build():
    with pytest.raises(ShapeError, match=r"layers\[2\] Dense.*rank 1.*Flatten"):
        Sequential([Conv2D(np.ones((2, 1, 3, 3))), ReLU(), Dense(np.ones((1, 8)))])


def test_feature_and_channel_mismatches_fail_at_build():
    with pytest.raises(ShapeError, match=r"layers\[1\] Dense: expected 4 input features.*got 3"):
        Sequential([Dense(np.ones((3, 2))), Dense(np.ones((1, 4)))])
    with pytest.raises(ShapeError, match=r"layers\[1\] Conv2D: expected 3 input channels.*got 2"):
        Sequential([Conv2D(np.ones((2, 1, 1, 1))), Conv2D(np.ones((1, 3, 1, 1)))])
    with pytest.raises(ShapeError, match="expected examples of shape|smaller than"):
        Sequential([Conv2D(np.ones((2, 1, 3, 3))), Flatten(), Dense(np.ones((1, 8)))], input_shape=(1, 2, 2))


def test_flattened_size_mismatch_is_caught_before_computing():
    net = Sequential([Conv2D(np.ones((2, 1, 3, 3))), Flatten(), Dense(np.ones((1, 8)))])
    # 3x3 convolution of a 5x5 image: 2 channels of 3x3 = 18 features, the Dense wants 8.
    with pytest.raises(ShapeError, match=r"x: input of shape \(1, 1, 5, 5\).*expected 8 input features.*got 18"):
        net(np.ones((1, 1, 5, 5)))


def test_wrong_input_rank_and_shape():
    with pytest.raises(ShapeError, match=r"x: expected at least 2 dimensions, got shape \(2,\)"):
        mlp()(np.ones(2))
    with pytest.raises(ShapeError, match=r"expected 2 input features.*got 5"):
        mlp()(np.ones((1, 5)))
    with pytest.raises(ShapeError, match="at least one example"):
        mlp()(np.ones((0, 2)))


def test_output_must_be_a_vector_per_example():
    net = Sequential([Conv2D(np.ones((2, 1, 1, 1)))])
    with pytest.raises(ShapeError, match="end the network with Flatten"):
        net(np.ones((1, 1, 2, 2)))


def test_non_finite_inputs_and_weights():
    with pytest.raises(NonFiniteError, match=r"x: holds 1 non-finite value\(s\) \(first at index \(0, 1\): nan\)"):
        gradient(mlp(), [[1.0, np.nan]], target=0)
    with pytest.raises(NonFiniteError, match="Dense weight: holds 1 non-finite"):
        Dense([[1.0, np.inf]])
    with pytest.raises(NonFiniteError, match="Conv2D bias"):
        Conv2D(np.ones((1, 1, 1, 1)), [np.nan])
    with pytest.raises(NonFiniteError, match="Swish beta"):
        Swish(np.nan)


def test_targets():
    net, x = mlp(), np.ones((2, 2))
    with pytest.raises(TargetError, match=r"index 2 is out of range.*2 output\(s\)"):
        gradient(net, x, target=2)
    with pytest.raises(TargetError, match="index -1 is out of range"):
        gradient(net, x, target=np.array([0, -1]))
    with pytest.raises(TargetError, match="got dtype float64"):
        gradient(net, x, target=np.array([0.0, 1.0]))
    with pytest.raises(TargetError, match="expected an int or an integer array"):
        gradient(net, x, target=1.0)
    with pytest.raises(TargetError, match="got a bool"):
        gradient(net, x, target=True)
    with pytest.raises(TargetError, match=r"expected shape \(2,\)"):
        gradient(net, x, target=np.array([0, 1, 1]))
    with pytest.raises(TargetError, match="None is only allowed for a network with one output"):
        gradient(net, x)


def test_not_a_layer_and_not_a_network():
    with pytest.raises(UnsupportedLayerError, match=r"layers\[1\]: builtins.str is not a refattr layer"):
        Sequential([Dense(np.ones((1, 1))), "relu"])
    with pytest.raises(UnsupportedLayerError, match="net: expected a refattr.Sequential"):
        gradient(lambda v: v, np.ones((1, 1)))


def test_layer_hyperparameters():
    with pytest.raises(ShapeError, match=r"Dense bias: expected shape \(3,\)"):
        Dense(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ShapeError, match="groups: 2 does not divide C_out = 3"):
        Conv2D(np.ones((3, 1, 1, 1)), groups=2)
    with pytest.raises(ShapeError, match="Conv2D stride: expected an int >= 1, got 0"):
        Conv2D(np.ones((1, 1, 1, 1)), stride=0)
    with pytest.raises(ShapeError, match="four ints"):
        Conv2D(np.ones((1, 1, 1, 1)), padding=(1, 2, 3))
    with pytest.raises(ShapeError, match="exceeds half the kernel"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ShapeError, match="exceeds half the kernel"):
        AvgPool2D(3, padding=(2, 0))
    with pytest.raises(ShapeError, match="expected a real numeric array"):
        Dense(np.array([["a"]]))


def test_baseline_forms_broadcast_to_the_batch():
    from refattr.validation import as_baselines, broadcast_baseline

    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(broadcast_baseline(0.5, x), np.full((2, 3), 0.5))
    np.testing.assert_array_equal(broadcast_baseline(np.float32(2.0), x), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(broadcast_baseline([1.0, 2.0, 3.0], x), [[1.0, 2.0, 3.0]] * 2)
    np.testing.assert_array_equal(broadcast_baseline(x + 1, x), x + 1)
    with pytest.raises(ShapeError, match=r"baseline: shape \(2,\) fits neither one example \(3,\)"):
        broadcast_baseline([1.0, 2.0], x)
    with pytest.raises(NonFiniteError, match="baseline: holds 1 non-finite"):
        broadcast_baseline([1.0, np.inf, 0.0], x)
    with pytest.raises(ShapeError, match=r"baselines: expected shape \(K, 3\)"):
        as_baselines(np.ones((2, 4)), x)


def test_pair_with_references_is_example_major_and_refuses_both_forms():
    from refattr import deeplift, integrated_gradients
    from refattr.validation import DEFAULT_BASELINE, pair_with_references

    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    refs = np.array([[0.0, 0.0], [10.0, 20.0], [5.0, 5.0]])
    inputs, references, targets, k = pair_with_references(x, np.array([0, 1]), DEFAULT_BASELINE, refs)
    assert k == 3
    # row n * K + j pairs example n with baseline j
    np.testing.assert_array_equal(inputs, np.repeat(x, 3, axis=0))
    np.testing.assert_array_equal(references, np.concatenate([refs, refs]))
    np.testing.assert_array_equal(targets, [0, 0, 0, 1, 1, 1])
    net = Sequential([Dense(np.ones((1, 2)))])
    for method in (integrated_gradients, deeplift):
        # Both forms at once are refused, even an explicit 0.0 (the default is a distinct object).
        for baseline in (0.0, 1.0):
            with pytest.raises(ShapeError, match="baseline and baselines: pass one of them, got both"):
                method(net, x, baseline=baseline, baselines=refs)
