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
    with pytest.raises(UnsupportedLayerError, match=r"net: expected a refattr network \(Sequential or Graph\)"):
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
    with pytest.raises(ShapeError, match=r"baseline_samples: expected shape \(K, 3\)"):
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
            with pytest.raises(ShapeError, match="baseline and baseline_samples: pass one of them, got both"):
                method(net, x, baseline=baseline, baseline_samples=refs)


def test_a_baseline_with_a_batch_axis_of_one_is_broadcast_and_the_message_lists_four_forms():
    from refattr.validation import broadcast_baseline

    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(broadcast_baseline([[1.0, 2.0, 3.0]], x), [[1.0, 2.0, 3.0]] * 2)
    # one example: (1, 3) is x's shape as well, and both readings give the same array
    np.testing.assert_array_equal(broadcast_baseline([[1.0, 2.0, 3.0]], x[:1]), [[1.0, 2.0, 3.0]])
    images = np.zeros((4, 2, 3, 3))
    ref = np.arange(18.0).reshape(1, 2, 3, 3)
    np.testing.assert_array_equal(broadcast_baseline(ref, images), np.concatenate([ref] * 4))
    for bad in (np.zeros((3, 3)), np.zeros((1, 1, 3))):     # neither (1, 3) nor (2, 3) nor (3,)
        with pytest.raises(ShapeError) as info:
            broadcast_baseline(bad, x)
        for form in (f"shape {bad.shape}", "a scalar", "(3,)", "(1, 3)", "(2, 3)"):
            assert form in str(info.value), (form, str(info.value))


def _reference_functions():
    """(function, whether it takes baseline_samples) for every public function taking a reference."""
    from refattr import deeplift, integrated_gradients
    from refattr.interop import captum_conventions as cc, compare_attributions, compare_captum
    from refattr.methods.deeplift import deeplift_layers

    return [(integrated_gradients, True), (deeplift, True), (deeplift_layers, False), (compare_captum, True),
            (compare_attributions, False), (cc.captum_integrated_gradients, False), (cc.captum_deeplift, False),
            (cc.captum_deeplift_shap, True)]


@pytest.mark.parametrize("index", range(8))
def test_baselines_is_refused_naming_both_meanings_before_anything_is_computed(index):
    from refattr.errors import ArgumentError

    function, takes_samples = _reference_functions()[index]
    # The network is None: any validation or computation before the refusal would fail differently.
    with pytest.raises(ArgumentError) as info:
        function(None, np.zeros((2, 3)), baselines=np.ones((2, 3)))
    message = str(info.value)
    for phrase in (f"baselines: {function.__name__} does not take `baselines`", "one baseline per example",
                   "Captum's IntegratedGradients and DeepLift", "distribution", "DeepLiftShap",
                   "got an array of shape (2, 3)", "baseline= for one reference per example",
                   "(1, *example_shape)", "x's shape"):
        assert phrase in message, (phrase, message)
    assert ("baseline_samples= (K, *example_shape)" in message) == takes_samples, message
    # the signature shows the real arguments, not the refusing wrapper's
    import inspect

    parameters = inspect.signature(function).parameters
    assert "baselines" not in parameters
    assert ("baseline_samples" in parameters) == takes_samples


def test_baselines_as_a_torch_tensor_that_requires_grad_is_described_by_its_shape():
    torch = pytest.importorskip("torch")
    from refattr import integrated_gradients
    from refattr.errors import ArgumentError

    with pytest.raises(ArgumentError, match=r"got an array of shape \(5, 3\)"):
        integrated_gradients(None, np.zeros((5, 3)), baselines=torch.zeros(5, 3, requires_grad=True))


@pytest.mark.parametrize("method_name", ["integrated_gradients", "deeplift"])
def test_the_two_readings_of_baselines_give_different_answers(method_name):
    # Why `baselines` is refused rather than read one way: on f(x) = 2 x0 - x1 every reference method
    # gives phi = w * (x - x'), so the two readings of the same array b differ visibly.
    import refattr

    method = getattr(refattr, method_name)
    net = Sequential([Dense([[2.0, -1.0]])])
    x = np.array([[1.0, 1.0], [3.0, 2.0]])
    b = np.array([[0.0, 0.0], [1.0, 4.0]])
    # one reference per example: (2 (1 - 0), -(1 - 0)) = (2, -1); (2 (3 - 1), -(2 - 4)) = (4, 2)
    per_example = method(net, x, baseline=b).values
    np.testing.assert_allclose(per_example, [[2.0, -1.0], [4.0, 2.0]], rtol=0, atol=1e-14)
    # a distribution, mean reference (0.5, 2): (2 (1 - 0.5), -(1 - 2)) = (1, 1); (2 (3 - 0.5), -(2 - 2)) = (5, 0)
    averaged = method(net, x, baseline_samples=b).values
    np.testing.assert_allclose(averaged, [[1.0, 1.0], [5.0, 0.0]], rtol=0, atol=1e-14)
