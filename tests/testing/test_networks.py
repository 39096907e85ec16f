"""The random-network generator reads the layer registry: every registered element-wise layer is an
activation, every registered image-to-image layer is drawn (a newly registered one included), and
random_mlp / random_cnn keep the draws they always made for a given seed.

Expected values: the draw order of random_mlp / random_cnn written out below with their own
generator (the weights and biases are the generator's normal draws, in that order, scaled as the
docstrings say), and membership in the registry.
"""

import numpy as np
import pytest

from refattr import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Swish, Tanh
from refattr.errors import ArgumentError
from refattr.layers import ElementwiseLayer
from refattr.layers.registry import registered
from refattr.testing import random_cnn, random_mlp, random_network
from refattr.testing.networks import ACTIVATIONS

IMAGE = (2, 6, 6)


def image_to_image(cls):
    """Whether the registry's class maps an image to an image (what random_network may stack)."""
    try:
        layer = cls.random(np.random.default_rng(0), IMAGE)
        return len(layer.output_shape(IMAGE)) == 3
    except (NotImplementedError, ValueError):
        return False


def test_activations_are_the_registered_elementwise_layers():
    expected = {e.name.lower(): e.cls for e in registered() if issubclass(e.cls, ElementwiseLayer)}
    assert ACTIVATIONS == expected
    assert {"relu", "tanh", "sigmoid", "swish"} <= set(ACTIVATIONS)


def test_random_mlp_draws_what_it_always_drew():
    net = random_mlp(np.random.default_rng(5), sizes=(4, 3, 2), activation="swish")
    r = np.random.default_rng(5)
    w0 = r.normal(size=(3, 4)) / 2.0          # / sqrt(n_in), n_in = 4
    b0 = r.normal(size=3) * 0.5
    w1 = r.normal(size=(2, 3)) / np.sqrt(3)
    b1 = r.normal(size=2) * 0.5
    dense0, act, dense1 = net.layers
    assert type(act) is Swish and act.beta == 1.0
    for layer, w, b in ((dense0, w0, b0), (dense1, w1, b1)):
        np.testing.assert_array_equal(layer.weight, w)
        np.testing.assert_array_equal(layer.bias, b)
    assert random_mlp(np.random.default_rng(5), sizes=(4, 3, 2), bias=False).layers[2].bias is None


def test_random_cnn_draws_what_it_always_drew():
    net = random_cnn(np.random.default_rng(7), input_shape=(1, 5, 5), activation="tanh", pool="max", n_outputs=2)
    r = np.random.default_rng(7)
    w0, b0 = r.normal(size=(3, 1, 3, 3)) / 3.0, r.normal(size=3) * 0.3       # / sqrt(9 * c), c = 1
    w1, b1 = r.normal(size=(4, 3, 2, 2)) / np.sqrt(12), r.normal(size=4) * 0.3
    # 5x5 -> conv pad 1 -> 5x5 -> max pool 2, stride 1 -> 4x4 -> conv 2x2 stride 2 -> 2x2: 4 * 2 * 2 = 16
    w2, b2 = r.normal(size=(2, 16)) / 4.0, r.normal(size=2) * 0.3
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Conv2D, Tanh, MaxPool2D, Conv2D, Tanh, Flatten, Dense]
    assert net.layers[0].padding == (1, 1, 1, 1) and net.layers[3].stride == (2, 2)
    for layer, w, b in ((net.layers[0], w0, b0), (net.layers[3], w1, b1), (net.layers[6], w2, b2)):
        np.testing.assert_array_equal(layer.weight, w)
        np.testing.assert_array_equal(layer.bias, b)
    assert type(random_cnn(np.random.default_rng(7), pool="avg").layers[2]) is AvgPool2D


def test_unknown_activation_names_the_choices():
    with pytest.raises(ArgumentError, match=r"activation: expected one of .*'relu'.*got 'gelu2'"):
        random_mlp(np.random.default_rng(0), activation="gelu2")


def stacks(n_seeds=40, **kw):
    """The classes drawn for the image stack (everything before the Flatten -> Dense head)."""
    out = []
    for seed in range(n_seeds):
        net = random_network(np.random.default_rng(seed), input_shape=IMAGE, n_layers=4, **kw)
        *stack, flatten, dense0, act, dense1 = net.layers
        assert (type(flatten), type(dense0), type(dense1)) == (Flatten, Dense, Dense)
        assert isinstance(act, ElementwiseLayer)
        assert net.input_shape == IMAGE and net.n_outputs(IMAGE) == 2
        out.append([type(layer) for layer in stack])
    return out


def test_random_network_draws_every_registered_image_layer():
    drawn = {cls for stack in stacks() for cls in stack}
    assert drawn == {e.cls for e in registered() if not e.joins and image_to_image(e.cls)}
    assert {Conv2D, ReLU, AvgPool2D, MaxPool2D} <= drawn and not drawn & {Dense, Flatten}


def test_random_network_draws_a_newly_registered_layer(with_clamp):
    drawn = [cls for stack in stacks() for cls in stack]
    assert with_clamp in drawn
    assert type(random_mlp(np.random.default_rng(0), activation="clamp").layers[1]) is with_clamp


def test_layer_types_restrict_the_draw():
    allowed = (Conv2D, ReLU, AvgPool2D)
    for stack in stacks(layer_types=allowed):
        assert set(stack) <= set(allowed)
    with pytest.raises(ArgumentError, match=r"layer_types: none of \['Dense', 'Flatten'\] accepts an image"):
        random_network(np.random.default_rng(0), layer_types=(Dense, Flatten))
