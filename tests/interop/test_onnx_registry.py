"""The ONNX round trip of every registered element-wise layer, read from the layer registry.

For each registered :class:`~refattr.layers.base.ElementwiseLayer` and each ONNX op it declares
(``onnx_ops``), a float64 model Gemm -> op -> Gemm is built with the op's attributes taken from a
random instance through the inverse of its ``onnx_attributes``; ``from_onnx`` (check=True, so the
model is also run in onnxruntime or ONNX's reference evaluator) must return the same network as the
one built in refattr directly from the test's weights, bit for bit. Linear and pooling layers (Gemm,
MatMul, Conv, Flatten, Reshape, MaxPool, AveragePool) have their own import code and are covered by
tests/interop/test_onnx_import.py.

Expected values: the directly built network (identity of weights and arguments), and for GELU the
closed forms x Phi(x) = x erfc(-x / sqrt 2) / 2 and x (1 + tanh(u)) / 2, u = sqrt(2/pi) (x + 0.044715
x^3), evaluated in mpmath at 40 digits.
"""

import numpy as np
import pytest

from refattr import GELU, Dense, Sequential
from refattr.errors import ImportMismatchError
from refattr.layers.base import ElementwiseLayer
from refattr.layers.gelu import gelu_tanh
from refattr.layers.registry import register, registered, to_config

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
mpmath = pytest.importorskip("mpmath")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refattr.interop import from_onnx, onnx_forward  # noqa: E402

ELEMENTWISE = [(entry, op) for entry in registered() if issubclass(entry.cls, ElementwiseLayer)
               for op in entry.onnx_ops]


def _opset(op):
    """The newest opset version of op's schema (at least 13, for Gemm's current form)."""
    return max(13, onnx.defs.get_schema(op).since_version)


def _model(op, attributes, weights, n_in):
    """Gemm(W1, b1) -> op(**attributes) -> Gemm(W2, b2) in float64, batch size symbolic."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node(op, ["h"], ["a"], **attributes),
             helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _opset(op))])


def _random_instance(entry, rng):
    """A random instance, redrawn (up to 50 times) until its arguments differ from the defaults
    where the layer reads attributes, so that an attribute the importer ignored would show; a
    layer whose ``random`` draws only its defaults keeps them (Swish: its ``alpha`` import is
    tested with alpha = 0.7 in tests/interop/test_onnx_import.py)."""
    default = to_config(entry.cls()) if len(entry.defaults) == len(entry.arguments) else None
    for _ in range(50):
        layer = entry.cls.random(rng, (6,))
        if not entry.onnx_attributes or to_config(layer) != default:
            break
    return layer


@pytest.mark.parametrize("entry, op", ELEMENTWISE, ids=[f"{e.name}-{op}" for e, op in ELEMENTWISE])
def test_elementwise_layer_round_trips_through_onnx(entry, op):
    rng = np.random.default_rng(sum(map(ord, op)))
    layer = _random_instance(entry, rng)
    attributes = {attribute: getattr(layer, argument) for attribute, argument in entry.onnx_attributes.items()}
    weights = {"W1": rng.standard_normal((6, 4)), "b1": rng.standard_normal(6),
               "W2": rng.standard_normal((3, 6)), "b2": rng.standard_normal(3)}
    model = _model(op, attributes, weights, 4)
    x = 3.0 * rng.standard_normal((5, 4))           # hidden values on both sides of 0, up to ~10
    try:
        onnx_forward(model, x)
    except Exception as exc:  # onnxruntime's and the reference evaluator's own types
        pytest.skip(f"neither onnxruntime nor onnx.reference runs {op} (opset {_opset(op)}) in float64: {exc}")

    # ONNX stores a float attribute as float32: the layer built directly takes the stored value
    node = model.graph.node[1]
    stored = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    stored = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in stored.items()}
    for attribute, value in attributes.items():
        if isinstance(value, float):
            assert stored[attribute] == float(np.float32(value))
        else:
            assert stored[attribute] == value
    direct = Sequential([Dense(weights["W1"], weights["b1"]),
                         entry.cls(**entry.onnx_arguments, **{entry.onnx_attributes[k]: v for k, v in stored.items()}),
                         Dense(weights["W2"], weights["b2"])])

    net = from_onnx(model, check=True)
    assert [type(la) for la in net.layers] == [Dense, entry.cls, Dense]
    for ours, theirs in zip(net.layers, direct.layers):
        a, b = to_config(ours), to_config(theirs)
        assert a["type"] == b["type"] and a["params"] == b["params"]
        assert a["arrays"].keys() == b["arrays"].keys()
        for name in a["arrays"]:
            np.testing.assert_array_equal(a["arrays"][name], b["arrays"][name])
    np.testing.assert_array_equal(net(x), direct(x))


def test_every_onnx_elementwise_op_is_covered():
    """The walk above is not empty and includes the layers whose ONNX import reads attributes."""
    names = {entry.name for entry, _ in ELEMENTWISE}
    assert {"ReLU", "Sigmoid", "Tanh", "GELU", "LeakyReLU"} <= names


# ------------------------------------------------------------------------------------------------
# GELU: the runtimes are less precise than refattr, and the import check allows for it
# ------------------------------------------------------------------------------------------------

def _gelu_model(approximate, n):
    node = helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", n])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", n])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def _gelu_mp(x, approximate):
    """x Phi(x) or PyTorch's tanh form at 40 digits (the tanh form's constants as float64, as in
    PyTorch's float64 kernel: sqrt(2/pi) = 0.7978845608028654, 0.044715)."""
    with mpmath.workdps(40):
        z = mpmath.mpf(float(x))
        if approximate == "none":
            value = z * mpmath.erfc(-z / mpmath.sqrt(2)) / 2
        else:
            u = mpmath.mpf(0.7978845608028654) * (z + mpmath.mpf(0.044715) * z ** 3)
            value = z * (1 + mpmath.tanh(u)) / 2
        return float(value)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_imports_checked_and_is_accurate_where_the_runtimes_are_not(approximate):
    x = np.concatenate([np.linspace(-8.0, 8.0, 33), [-0.7518, -1e-3, 1e-3, 0.3, -25.0]]).reshape(2, 19)
    net = from_onnx(_gelu_model(approximate, 19), check=True)     # the probe passes at GELU's allowance
    assert [type(la) for la in net.layers] == [GELU] and net.layers[0].approximate == approximate
    exact = np.vectorize(lambda v: _gelu_mp(v, approximate))(x)
    ours = net(x)
    nonzero = exact != 0
    assert np.all(ours[~nonzero] == 0.0)
    assert np.max(np.abs(ours[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])) <= 1e-15

    runtime, engine = onnx_forward(_gelu_model(approximate, 19), x, return_engine=True)
    # the runtime's float32 pieces: far beyond float64 rounding, within the declared allowance
    per_example = np.max(np.abs(runtime - exact), axis=1) / np.max(np.abs(exact), axis=1)
    assert np.max(per_example) > 1e-10, engine
    assert np.max(per_example) <= GELU.onnx_runtime_rtol, engine


def test_gelu_allowance_still_catches_the_other_form(monkeypatch):
    """An import that computed the tanh form for an erf Gelu (they differ by up to 4.7e-4 near
    |x| = 2) still fails the check at GELU's allowance, and the message names the allowance."""
    monkeypatch.setattr(GELU, "function", lambda self, x: gelu_tanh(x))
    with pytest.raises(ImportMismatchError, match=r"above the 1e-05 that the runtimes' precision for GELU "
                                                  r"\(onnx_runtime_rtol\) explains"):
        from_onnx(_gelu_model("none", 19), check=True)


def test_only_layers_that_declare_it_loosen_the_check():
    declared = {entry.name: entry.onnx_runtime_rtol for entry in registered() if entry.onnx_runtime_rtol is not None}
    assert declared == {"GELU": GELU.onnx_runtime_rtol}


def test_register_refuses_an_onnx_runtime_rtol_that_is_not_a_small_float():
    class Loose(ElementwiseLayer):
        piecewise_linear = False
        captum = "gradient"
        onnx_runtime_rtol = "1e-8"

    with pytest.raises(TypeError, match=r"Loose: onnx_runtime_rtol must be None or a float in \(0, 1\)"):
        register(Loose)
    assert "Loose" not in [entry.name for entry in registered()]
