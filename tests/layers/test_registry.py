"""The layer registry: declarations are required, layers are immutable, and the serialised form
round-trips for every registered layer.

Expected values: the identity of a round trip (bit for bit), and the closed form of integrated
gradients of |x| along the path from -1 to 1: f(1) - f(-1) = 0, split as -1 on [0, 1/2) and +1 on
(1/2, 1] for the single feature, so phi = 2 * (1/2 * -1 + 1/2 * 1) = 0.
"""

import numpy as np
import pytest

import refattr
from refattr import Dense, Sequential, integrated_gradients
from refattr.errors import RuleError, UnsupportedLayerError
from refattr.layers import LAYERS
from refattr.layers.base import Layer
from refattr.layers.registry import from_config, info, register, registered, to_config


def _input_shape(cls, rng):
    """The first of an image, a sequence (C, L) and a feature vector that the class's random layers accept."""
    if cls is Dense:
        return (int(rng.integers(2, 6)),)
    if getattr(cls, "joins", False):       # several inputs of one example shape each
        return (2, 5, 5)
    for shape in ((2, 5, 5), (2, 7), (4,)):
        try:
            cls.random(np.random.default_rng(0), shape).output_shape(shape)
        except ValueError:
            continue
        return shape
    raise AssertionError(f"{cls.__name__}.random accepts none of the shapes tried")


#: Registered layers the ONNX importer does not read yet: the 1-D layers share their ONNX ops (Conv,
#: MaxPool, AveragePool) with the 2-D ones, and an op imports as one class (issue 17, ONNX graphs).
ONNX_PENDING = {"Conv1D", "MaxPool1D", "AvgPool1D", "AdaptiveAvgPool1D"}


# ------------------------------------------------------------------------------------------------
# declarations
# ------------------------------------------------------------------------------------------------

def test_every_registered_layer_is_exported_and_declares_itself():
    names = [entry.name for entry in registered()]
    assert len(names) == len(set(names)) == len(LAYERS) >= 9
    for entry in registered():
        assert getattr(refattr, entry.name) is entry.cls            # exported without a list
        assert isinstance(entry.piecewise_linear, bool)
        assert entry.captum in ("linear", "nonlinear", "maxpool", "gradient", "softmax")
        # joins (Add, Concat, Mul), Affine (x * c + d) and Permute (x.permute) are torch functions,
        # operators and tensor methods (torch.add, torch.cat, *), not modules; they import with the
        # graph they sit in, not through a declaration
        assert entry.joins or entry.name in ("Reshape", "Affine", "Permute") or (entry.torch_modules and (entry.onnx_ops
                                                                                   or entry.name in ONNX_PENDING))


def test_register_refuses_a_layer_that_does_not_declare_piecewise_linear():
    class Undeclared(Layer):
        captum = "gradient"

    with pytest.raises(TypeError, match=r"Undeclared: declare piecewise_linear = True or False"):
        register(Undeclared)

    class NoCaptum(Layer):
        piecewise_linear = False

    with pytest.raises(TypeError, match=r"NoCaptum: declare captum"):
        register(NoCaptum)
    assert "Undeclared" not in [e.name for e in registered()] and "NoCaptum" not in [e.name for e in registered()]


def test_an_unregistered_layer_is_named_in_the_error():
    class Mine(Layer):
        pass

    with pytest.raises(UnsupportedLayerError, match=r"Mine is not a registered refattr layer; registered: .*Dense"):
        info(Mine)


class Abs(Layer):
    """|x| with forward, VJP and JVP only: a custom layer that declares nothing."""

    def output_shape(self, input_shape):
        return input_shape

    def forward(self, x):
        return np.abs(x), x

    def vjp(self, g, cache):
        return g * np.sign(cache)

    def jvp(self, dx, cache):
        return dx * np.sign(cache)


ABS_NET = Sequential([Dense([[1.0]]), Abs(), Dense([[1.0]])])


def test_an_undeclared_custom_layer_never_gets_an_exact_value():
    # The old default (piecewise_linear = True) sent this network to the exact walk, which saw no
    # kink in Abs and returned -2 with error_estimate 0; the true value is 0 (module docstring).
    assert ABS_NET.piecewise_linear is False
    with pytest.raises(RuleError, match=r"needs every layer to declare piecewise_linear; layers\[1\] Abs\(\) does not"):
        integrated_gradients(ABS_NET, [[1.0]], baseline=-1.0, rule="exact")
    auto = integrated_gradients(ABS_NET, [[1.0]], baseline=-1.0)
    assert auto.options["rule"] == "quad"
    assert abs(auto.values[0, 0]) <= auto.error_estimate[0] <= 1e-9
    # a fixed rule cannot bound its error where the undeclared layer may have kinks
    fixed = integrated_gradients(ABS_NET, [[1.0]], baseline=-1.0, rule="gauss_legendre", n_steps=8)
    assert fixed.error_estimate[0] == np.inf


# ------------------------------------------------------------------------------------------------
# immutability
# ------------------------------------------------------------------------------------------------

def test_reassigning_a_parameter_raises_and_arrays_are_read_only():
    weight = np.array([[1.0, -2.0]])
    layer = Dense(weight, [0.5])
    with pytest.raises(AttributeError, match=r"Dense\.weight: layers are immutable .* build a new Dense"):
        layer.weight = np.array([[3.0, 3.0]])
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0] = 3.0
    with pytest.raises(ValueError, match="read-only"):
        layer.bias[0] = 3.0
    # the caller's array is copied, not frozen, and the layer computes with what it was built with
    weight[0, 0] = 100.0
    np.testing.assert_array_equal(layer.forward(np.array([[3.0, 1.0]]))[0], [[1.5]])   # 3 - 2 + 0.5


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_every_layer_is_frozen(cls):
    rng = np.random.default_rng(0)
    layer = cls.random(rng, _input_shape(cls, rng))
    with pytest.raises(AttributeError, match="layers are immutable"):
        layer.anything = 1


# ------------------------------------------------------------------------------------------------
# serialisation
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_config_round_trip(cls):
    rng = np.random.default_rng(1)
    shape = _input_shape(cls, rng)
    layer = cls.random(rng, shape)
    config = to_config(layer)
    assert config["type"] == cls.__name__
    for value in config["params"].values():       # plain data only
        assert isinstance(value, (bool, int, float, str, list))
    again = from_config(config)
    assert type(again) is cls and repr(again) == repr(layer)
    x = rng.normal(size=(2,) + shape)
    np.testing.assert_array_equal(again.forward(x)[0], layer.forward(x)[0])
    for name, array in config["arrays"].items():
        np.testing.assert_array_equal(getattr(again, name), array)


def test_from_config_names_an_unknown_type():
    with pytest.raises(UnsupportedLayerError, match=r"layer type 'GELU2' is not registered; registered: .*ReLU"):
        from_config({"type": "GELU2"})
