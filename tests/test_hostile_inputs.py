"""Hostile inputs (issue 13): every one gets a refattr error that names the problem and the fix,
and no method returns values computed from an overflow.

Each test asserts the error class and the phrases that make the message useful.
"""

import numpy as np
import pytest

import refattr.network
from refattr import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Tanh, deconvnet,
                     gradient, guided_backprop, input_x_gradient)
from refattr.errors import (ArgumentError, NonFiniteError, ResourceError, ShapeError, TargetError,
                            UnsupportedLayerError)
from refattr.layers import LAYERS
from refattr.methods.deeplift import deeplift, deeplift_layers
from refattr.methods.integrated_gradients import integrated_gradients

GRADIENT_FAMILY = (gradient, input_x_gradient, guided_backprop, deconvnet)
ALL_METHODS = GRADIENT_FAMILY + (deeplift, integrated_gradients)


def tanh_net():
    # z = (x, 2x): at x = 1e308 the second unit is 2e308 > 1.8e308 = float64's largest value.
    # tanh(inf) = 1 would hide the overflow: the forward pass must catch it at the Dense layer.
    return Sequential([Dense([[1.0], [2.0]]), Tanh(), Dense([[1.0, 1.0]])])


def relu_net():
    return Sequential([Dense([[1.0], [2.0]]), ReLU(), Dense([[1.0, 1.0]])])


def image_net():
    # (2, 6, 6) -> 1x1 convolution to 1 channel -> 36 features -> 1 output
    return Sequential([Conv2D(np.ones((1, 2, 1, 1))), Flatten(), Dense(np.ones((1, 36)))])


# 1. finite inputs that overflow inside the network -------------------------------------------------

OVERFLOW_AT_LAYER_0 = r"layers\[0\] Dense\(1 -> 2, bias=None\): the output overflowed to inf or nan.*rescale the input"


@pytest.mark.parametrize("method", GRADIENT_FAMILY + (deeplift,), ids=lambda m: m.__name__)
def test_overflow_in_a_layer_names_the_layer(method):
    with pytest.raises(NonFiniteError, match=OVERFLOW_AT_LAYER_0 + ".*") as info:
        method(tanh_net(), [[1e308]])
    assert "input's largest magnitude is 1e+308" in str(info.value)


def test_overflow_message_counts_and_locates_the_bad_values():
    # example 0 is fine, example 1 overflows in one unit (2 * 1e308)
    with pytest.raises(NonFiniteError, match=r"\(1 value\(s\), first in example 1\)"):
        gradient(tanh_net(), [[1.0], [1e308]])


def test_huge_finite_activations_are_not_refused():
    # 1e308 exceeds the bound below which outputs go unchecked (half of 1.8e308): the output is
    # scanned, found finite, and the network computes as usual.
    net = Sequential([Dense([[1.0]]), ReLU(), Dense([[1.0]])])
    assert net([[1e308]])[0, 0] == 1e308
    assert gradient(net, [[1e308]]).values[0, 0] == 1.0


def test_average_pooling_overflows_in_its_sum():
    # the kernel sums 4 cells of 1e308 (4e308 -> inf) before dividing by 4
    net = Sequential([AvgPool2D(2), Flatten(), Dense([[1.0]])])
    with pytest.raises(NonFiniteError, match=r"layers\[0\] AvgPool2D\(kernel=\(2, 2\).*overflowed"):
        net(np.full((1, 1, 2, 2), 1e308))


def test_output_bounds_by_hand():
    # Dense rows |1| + |-2| = 3 and |3| + |0| = 3, largest |bias| 7: 3 * 2 + 7 = 13, reached by
    # unit 1 at x = (-2, 0): 3 * -2 - 7 = -13.
    dense = Dense([[1.0, -2.0], [3.0, 0.0]], [0.0, -7.0])
    assert dense.output_bound(2.0) == 13.0
    assert dense.forward(np.array([[-2.0, 0.0]]))[0][0, 1] == -13.0
    # one output channel, taps 1 - 2 + 3 - 4: sum of |W| = 10, |bias| 0.5; tight at x = sign(W)
    conv = Conv2D(np.array([[[[1.0, -2.0], [3.0, -4.0]]]]), [0.5])
    assert conv.output_bound(1.0) == 10.5
    assert conv.forward(np.array([[[[1.0, -1.0], [1.0, -1.0]]]]))[0][0, 0, 0, 0] == 10.5
    assert AvgPool2D((2, 3)).output_bound(1.0) == 6.0     # the sum of a window, before dividing
    assert MaxPool2D(2).output_bound(1.0) == 1.0


def test_output_bound_bounds_every_layer(rng):
    # max |y| <= output_bound(max |x|) for every layer that states a finite bound; the forward pass
    # skips its overflow scan on that promise.
    for cls in LAYERS:
        shape = (5,) if cls is Dense else (2, 7) if cls.__name__.endswith("1D") else (2, 5, 5)
        for _ in range(20):
            layer = cls.random(rng, shape)
            if getattr(layer, "joins", False):      # several inputs: a bound per input
                k = layer.n_inputs or 3
                xs = tuple(rng.normal(size=(3,) + shape) * 10.0 ** rng.integers(-3, 4) for _ in range(k))
                bound = layer.output_bound([float(np.max(np.abs(x))) for x in xs])
                assert np.max(np.abs(layer.forward(xs)[0])) <= bound, cls.__name__
                continue
            x = rng.normal(size=(3,) + shape) * 10.0 ** rng.integers(-3, 4)
            bound = layer.output_bound(float(np.max(np.abs(x))))
            assert np.max(np.abs(layer.forward(x)[0])) <= bound, cls.__name__


@pytest.mark.parametrize("mode", ["warn", "raise"])
def test_numpy_overflow_warnings_do_not_escape_before_the_error(mode):
    # With NumPy's default error handling an overflow is a RuntimeWarning (an error under this
    # suite's filterwarnings), under "raise" a FloatingPointError: either would escape before
    # refattr's error unless the forward pass silences it and checks the result.
    with np.errstate(over=mode, invalid=mode, divide=mode):
        for method in (gradient, deeplift):
            with pytest.raises(NonFiniteError, match=r"layers\[0\] Dense"):
                method(tanh_net(), [[1e308]])


@pytest.mark.parametrize("rule", ["gauss_legendre", "quad"])
def test_integrated_gradients_on_the_path_names_the_layer(rule):
    # Path points a * 1e308 with a > 0.9 overflow 2 * a * 1e308 at layers[0].
    with pytest.raises(NonFiniteError, match=r"layers\[0\] Dense\(1 -> 2, bias=None\).*rescale the input"):
        integrated_gradients(tanh_net(), [[1e308]], rule=rule)


def test_exact_integrated_gradients_names_the_layer():
    with pytest.raises(NonFiniteError, match=OVERFLOW_AT_LAYER_0):
        integrated_gradients(relu_net(), [[1e308]], rule="exact")


def huge_derivative_net():
    # f(x) = 1e200 * tanh(1e200 x): finite everywhere, f'(0) = 1e200 * 1 * 1e200 = 1e400 > 1.8e308.
    return Sequential([Dense([[1e200]]), Tanh(), Dense([[1e200]])])


@pytest.mark.parametrize("method", GRADIENT_FAMILY, ids=lambda m: m.__name__)
def test_backward_overflow_with_finite_activations_names_the_layer(method):
    # The signal reaching layers[0] is 1e200 * tanh'(0) = 1e200 (finite); its VJP gives 1e400.
    with pytest.raises(NonFiniteError, match=r"layers\[0\] Dense\(1 -> 1, bias=None\): the backward signal "
                                             r"\(\w+\) overflowed.*largest magnitude 1e\+200.*rescale its weights"):
        method(huge_derivative_net(), [[0.0]])


def test_backward_overflow_in_integrated_gradients():
    with pytest.raises(NonFiniteError, match=r"layers\[0\] Dense.*backward signal"):
        # path points a * 1e-300: tanh'(1e200 * a * 1e-300) = 1 to rounding, so the VJP is 1e400 again
        integrated_gradients(huge_derivative_net(), [[1e-300]], rule="gauss_legendre", n_steps=4)


def test_deeplift_multiplier_overflow_is_refused_and_located():
    # x = x' = 0: Δ = 0 everywhere and the multipliers are the derivatives; m at the input is
    # 1e200 * tanh'(0) * 1e200 = 1e400 -> inf, and inf * Δx = inf * 0 is nan.
    with pytest.raises(NonFiniteError, match=r"deeplift: values.*overflowed.*deeplift_layers\(\) names"):
        deeplift(huge_derivative_net(), [[0.0]])
    with pytest.raises(NonFiniteError, match=r"deeplift_layers: layers\[0\] Dense\(1 -> 1, bias=None\): the "
                                             r"multipliers it passes to its input overflowed"):
        deeplift_layers(huge_derivative_net(), [[0.0]])


def test_input_x_gradient_product_overflow():
    # x = 2**996, w1 = 2**20, b = -2**1016: z = 2**1016 - 2**1016 = 0 exactly, tanh'(0) = 1, so the
    # gradient is 2**40 * 2**20 = 2**60 and every activation is finite; x * gradient = 2**1056 is not.
    net = Sequential([Dense([[2.0**20]], [-(2.0**1016)]), Tanh(), Dense([[2.0**40]])])
    np.testing.assert_array_equal(gradient(net, [[2.0**996]]).values, [[2.0**60]])
    with pytest.raises(NonFiniteError, match=r"input_x_gradient: 1 value\(s\) overflowed.*x \* gradient.*rescale x"):
        input_x_gradient(net, [[2.0**996]])


@pytest.mark.parametrize("method", [deeplift, integrated_gradients], ids=lambda m: m.__name__)
def test_difference_from_the_baseline_overflow(method):
    # relu(1e308) = 1e308 and relu(-1e308) = 0 are finite, the output 1e-300 * 1e308 = 1e8 too;
    # only x - x' = 2e308 overflows.
    net = Sequential([ReLU(), Dense([[1e-300]])])
    with pytest.raises(NonFiniteError, match=r"baseline: x - baseline overflows float64.*example 0, element "
                                             r"\(0,\): x = 1e\+308, reference = -1e\+308.*rescale x"):
        method(net, [[1e308]], baseline=-1e308)
    with pytest.raises(NonFiniteError, match=r"baseline_samples: .*example 0 with baseline_samples\[1\]"):
        method(net, [[1e308]], baseline_samples=[[0.0], [-1e308]])


# 2. arguments that used to be silently rounded or ignored ----------------------------------------

@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 1.0])
def test_count_include_pad_must_be_a_bool(value):
    with pytest.raises(ArgumentError, match=r"AvgPool2D count_include_pad: expected True or False, got "):
        AvgPool2D(2, count_include_pad=value)


def test_count_include_pad_accepts_numpy_bools():
    assert AvgPool2D(2, count_include_pad=np.False_).count_include_pad is False
    assert AvgPool2D(2, count_include_pad=True).count_include_pad is True


@pytest.mark.parametrize("shape, seen", [
    ((4.7,), r"got \(4\.7,\), where 4\.7 \(float\) is not an int >= 1"),
    ((4.0,), r"4\.0 \(float\) is not"), ((True,), r"True \(bool\) is not"), ((-4,), r"-4 \(int\) is not"),
    ((0,), r"0 \(int\) is not"), ((4, None), r"None \(NoneType\) is not"), (4, r"got 4 \(int\)"),
    ("4", r"got '4' \(str\)"), ((), r"got \(\): an example has at least one axis"),
])
def test_input_shape_must_be_positive_ints(shape, seen):
    with pytest.raises(ArgumentError, match=r"input_shape: expected one example's shape as a tuple of positive "
                                            r"ints, e\.g\. \(1, 28, 28\) or \(4,\); .*" + seen):
        Sequential([Dense(np.ones((1, 4)))], input_shape=shape)


def test_input_shape_accepts_numpy_ints_and_lists():
    assert Sequential([Dense(np.ones((1, 4)))], input_shape=[np.int64(4)]).input_shape == (4,)


def test_input_shape_checks_the_output_rank_at_construction():
    layers = [Conv2D(np.ones((1, 1, 1, 1)))]
    with pytest.raises(ShapeError, match=r"input_shape: \(1, 2, 2\) does not fit the network: network output: "
                                         r"expected one vector.*end the network with Flatten"):
        Sequential(layers, input_shape=(1, 2, 2))
    Sequential(layers)     # without input_shape a partial network may be built (and measured)


def test_maxpool_rule_without_max_pooling_is_reported_unused():
    net = relu_net()
    plain = deeplift(net, [[1.5]])
    for rule in ("gradient", "delta_routing"):
        result = deeplift(net, [[1.5]], maxpool_rule=rule)
        assert result.options["maxpool_rule"] is None
        assert result.options["requested_maxpool_rule"] == rule
        np.testing.assert_array_equal(result.values, plain.values)
    pooled = Sequential([MaxPool2D(2), Flatten(), Dense([[1.0]])])
    result = deeplift(pooled, np.arange(4.0).reshape(1, 1, 2, 2), maxpool_rule="delta_routing")
    assert result.options["maxpool_rule"] == result.options["requested_maxpool_rule"] == "delta_routing"


# 3. what used to raise raw exceptions -----------------------------------------------------------

@pytest.mark.parametrize("target", [10**30, -10**30, 2**63, np.uint64(2**64 - 1)])
def test_huge_targets(target):
    with pytest.raises(TargetError, match=rf"target: index {int(target)} is out of range for a network with "
                                          r"2 output\(s\); expected 0 <= target < 2"):
        gradient(Sequential([Dense(np.ones((2, 1)))]), [[1.0]], target=target)


@pytest.mark.parametrize("make, phrase", [
    (lambda: Conv2D(np.ones((1, 1, 1, 1)), stride=10**30), r"Conv2D stride: 10{30} is too large"),
    (lambda: Conv2D(np.ones((1, 1, 1, 1)), padding=2**62), r"Conv2D padding: 4611686018427387904 is too large"),
    (lambda: Conv2D(np.ones((1, 1, 1, 1)), dilation=(1, 2**31)), r"Conv2D dilation: 2147483648 is too large"),
    (lambda: Conv2D(np.ones((1, 1, 1, 1)), groups=10**30), r"Conv2D groups: 10{30} is too large"),
    (lambda: MaxPool2D(10**20), r"MaxPool2D kernel: 10{20} is too large"),
    (lambda: AvgPool2D(1, stride=10**20), r"AvgPool2D stride: 10{20} is too large"),
])
def test_huge_hyperparameters_are_refused_at_construction(make, phrase):
    with pytest.raises(ShapeError, match=phrase + r"; expected an int from \d to 2\*\*31 - 1 = 2147483647"):
        make()


def test_the_largest_hyperparameter_is_accepted():
    assert Conv2D(np.ones((1, 1, 1, 1)), stride=2**31 - 1).stride == (2**31 - 1, 2**31 - 1)


def test_activations_larger_than_memory_are_refused_before_allocating():
    # padding 10**9 on a 2x2 input: a (1, 2 + 2 * 10**9, 2 + 2 * 10**9) output per example,
    # 8 * 2000000002**2 bytes ~ 2.9e7 TiB (twice, with the Flatten).
    layers = [Conv2D(np.ones((1, 1, 1, 1)), padding=10**9), Flatten()]
    message = (r"one example of shape \(1, 2, 2\) needs .* of activations, more than this machine's memory.*"
               r"layers\[0\] Conv2D.*of shape \(1, 2000000002, 2000000002\): reduce that layer's padding")
    with pytest.raises(ResourceError, match=r"x: " + message):
        gradient(Sequential(layers), np.ones((1, 1, 2, 2)), target=0)
    with pytest.raises(ResourceError, match=r"input_shape: " + message):
        Sequential(layers, input_shape=(1, 2, 2))


def test_the_memory_limit_is_the_size_of_one_examples_activations(monkeypatch):
    # 1x1 convolution with padding 1 on (1, 2, 2): 4 input values, a (1, 4, 4) output and its
    # 16 flattened values: 36 float64 = 288 bytes for one example.
    net = Sequential([Conv2D(np.ones((1, 1, 1, 1)), padding=1), Flatten()])
    monkeypatch.setattr(refattr.network, "memory_bytes", lambda: 288)
    assert gradient(net, np.ones((3, 1, 2, 2)), target=0).values.shape == (3, 1, 2, 2)
    monkeypatch.setattr(refattr.network, "memory_bytes", lambda: 287)
    with pytest.raises(ResourceError, match=r"needs 288 bytes of activations, more than this machine's memory "
                                            r"\(287 bytes\)"):
        gradient(net, np.ones((3, 1, 2, 2)), target=0)


@pytest.mark.parametrize("layers", [None, 3, Dense(np.ones((1, 1))), "relu"], ids=repr)
def test_sequential_needs_a_list_of_layers(layers):
    with pytest.raises(ArgumentError, match=r"layers: expected a list of refattr layers, e\.g\. Sequential\(\["):
        Sequential(layers)


def test_sequential_refuses_what_is_not_a_layer():
    with pytest.raises(UnsupportedLayerError, match=r"layers\[1\]: builtins\.str is not a refattr layer"):
        Sequential([Dense(np.ones((1, 1))), "relu"])
    # a layer class where an instance belongs: say to build one
    with pytest.raises(UnsupportedLayerError, match=r"layers\[0\]: the class ReLU, not a layer; build one, e\.g\. ReLU\(\.\.\.\)"):
        Sequential([ReLU])


BAD_X = [
    ("abc", r"x: expected a real numeric array \(floats or ints\), got dtype <U3 \(str 'abc'\)"),
    ({"a": 1}, r"x: expected a real numeric array \(floats or ints\), got dict \{'a': 1\}"),
    (None, r"x: expected a real numeric array \(floats or ints\), got NoneType None"),
    ([[1.0], [1.0, 2.0]], r"x: could not convert list to an array"),
    (np.array(1.0), r"x: expected at least 2 dimensions, got shape \(\)"),
    (np.array([[1j]]), r"x: expected a real numeric array \(floats or ints\), got dtype complex128"),
]


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("x, phrase", BAD_X, ids=[repr(x)[:12] for x, _ in BAD_X])
def test_every_method_refuses_bad_x(method, x, phrase):
    with pytest.raises(ShapeError, match=phrase):
        method(relu_net(), x)


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("net", ["net", Dense(np.ones((1, 1))), None], ids=repr)
def test_every_method_refuses_what_is_not_a_network(method, net):
    with pytest.raises(UnsupportedLayerError, match=r"net: expected a refattr network \(Sequential or Graph\), got "):
        method(net, [[1.0]])


BAD_TARGETS = [
    (1.0, r"got dtype float64 with value 1\.0"),
    ("a", r"got dtype <U1 with value 'a'"),
    (np.array([True]), r"got dtype bool"),
    (True, r"got a bool"),
    (np.array([[0]]), r"expected shape \(1,\) \(one index per example\), got \(1, 1\)"),
    ([None], r"got dtype object"),
]


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("target, phrase", BAD_TARGETS, ids=[repr(t)[:12] for t, _ in BAD_TARGETS])
def test_every_method_refuses_bad_targets(method, target, phrase):
    with pytest.raises(TargetError, match=r"target: .*" + phrase):
        method(Sequential([Dense(np.ones((2, 1)))]), [[1.0]], target=target)


@pytest.mark.parametrize("method", [deeplift, integrated_gradients], ids=lambda m: m.__name__)
def test_reference_methods_refuse_bad_baselines(method):
    net = Sequential([Dense(np.ones((1, 2)))])
    with pytest.raises(ShapeError, match=r"baseline: expected a real numeric array.*got dtype <U4 \(str 'zero'\)"):
        method(net, [[1.0, 2.0]], baseline="zero")
    with pytest.raises(ShapeError, match=r"baseline: shape \(3,\) fits neither one example \(2,\)"):
        method(net, [[1.0, 2.0]], baseline=[1.0, 2.0, 3.0])
    for samples in (np.zeros((2, 1, 2)), np.zeros(2), np.zeros((0, 2))):
        with pytest.raises(ShapeError, match=r"baseline_samples: expected shape \(K, 2\) with K >= 1"):
            method(net, [[1.0, 2.0]], baseline_samples=samples)


@pytest.mark.parametrize("make, phrase", [
    (lambda: Dense(np.ones(3)), r"Dense weight: expected a 2-D array, got shape \(3,\) \(1-D\)"),
    (lambda: Dense(np.ones((1, 1, 1))), r"Dense weight: expected a 2-D array, got shape \(1, 1, 1\)"),
    (lambda: Dense(np.ones((0, 1))), r"Dense weight: expected shape \(out_features >= 1, in_features >= 1\)"),
    (lambda: Dense([]), r"Dense weight: expected a 2-D array, got shape \(0,\)"),
    (lambda: Dense(np.ones((1, 1)) * 1j), r"Dense weight: expected a real numeric array.*complex128"),
    (lambda: Dense(np.array([[object()]])), r"Dense weight: expected a real numeric array.*ndarray"),
    (lambda: Dense(None), r"Dense weight: expected a real numeric array.*NoneType"),
    (lambda: Conv2D(np.ones((1, 1))), r"Conv2D weight: expected a 4-D array, got shape \(1, 1\) \(2-D\)"),
    (lambda: Conv2D(np.ones((1, 0, 1, 1))), r"Conv2D weight: expected \(C_out, C_in // groups, kH, kW\) with no "
                                            r"zero size"),
    (lambda: Conv2D(np.ones((1, 1, 1, 1)) * 1j), r"Conv2D weight: expected a real numeric array.*complex128"),
    (lambda: Conv2D(np.array([[[[None]]]])), r"Conv2D weight: expected a real numeric array"),
    (lambda: Conv2D(np.ones((1, 1, 1, 1)), groups=1.5), r"Conv2D groups: expected an int >= 1, got 1\.5 \(float\)"),
])
def test_bad_weights_and_hyperparameters(make, phrase):
    with pytest.raises(ShapeError, match=phrase):
        make()


# 4. messages that say what to do ----------------------------------------------------------------

def test_missing_batch_axis_with_input_shape():
    net = Sequential(image_net().layers, input_shape=(2, 6, 6))
    with pytest.raises(ShapeError, match=r"x: expected examples of shape \(2, 6, 6\) \(batch axis first: "
                                         r"\(N, 2, 6, 6\)\), got \(2, 6, 6\); .*add a batch axis, x\[None\] "
                                         r"\(shape \(1, 2, 6, 6\)\)"):
        gradient(net, np.ones((2, 6, 6)))


def test_missing_batch_axis_without_input_shape():
    with pytest.raises(ShapeError, match=r"x: input of shape \(2, 6, 6\) does not fit.*add a batch axis, x\[None\]"):
        gradient(image_net(), np.ones((2, 6, 6)))
    with pytest.raises(ShapeError, match=r"x: expected at least 2 dimensions, got shape \(1,\).*add a batch axis"):
        gradient(relu_net(), np.ones(1))


def test_missing_channel_axis():
    # a batch of two 6x6 one-channel images without the channel axis
    net = Sequential([Conv2D(np.ones((1, 1, 1, 1))), Flatten(), Dense(np.ones((1, 36)))])
    with pytest.raises(ShapeError, match=r"x looks like 2 one-channel example\(s\) without the channel axis: "
                                         r"x\[:, None\] \(shape \(2, 1, 6, 6\)\)"):
        gradient(net, np.ones((2, 6, 6)))


def test_a_wrong_input_shape_is_blamed_on_input_shape():
    with pytest.raises(ShapeError, match=r"input_shape: \(3,\) does not fit the network: layers\[0\] Dense: "
                                         r"expected 4 input features \(weight shape \(1, 4\)\), got 3"):
        Sequential([Dense(np.ones((1, 4)))], input_shape=(3,))


def test_uint64_targets_are_reported_as_given():
    with pytest.raises(TargetError, match=r"target: index 18446744073709551615 is out of range"):
        gradient(Sequential([Dense(np.ones((2, 1)))]), [[1.0]], target=np.array([2**64 - 1], dtype=np.uint64))
    # in range, any integer dtype is accepted and converted exactly
    result = gradient(Sequential([Dense([[1.0], [3.0]])]), [[1.0]], target=np.array([1], dtype=np.uint64))
    assert result.values[0, 0] == 3.0 and result.options["target"].dtype == np.int64

