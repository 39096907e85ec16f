"""Every registered layer round-trips through each serialised form refattr writes: the axioms'
witnesses (plain JSON lists), the oracle export (JSON spec + npz arrays) and the bundled models'
specifications (JSON + named arrays).

The layers are drawn from the registry, so a newly registered layer is covered by registering it;
a test-only layer registered for one test (conftest.py's Clamp: array, tuple, string and bool
arguments) shows that none of the three formats needs an edit for it. Expected values: the
identity (a round trip gives back the same class, the same constructor arguments bit for bit, and
the same forward pass bit for bit).
"""

import io
import json

import numpy as np
import pytest

from refattr import Add, Concat, Conv2D, Dense, Graph, Mul, ReLU, Sequential
from refattr.axioms import network_from_layers, network_to_layers
from refattr.errors import ShapeError, UnsupportedLayerError
from refattr.layers import registry
from refattr.models import build_network, digits_cnn_info, load_digits_cnn, network_specs, parameter_digest
from refattr.network_spec import layer_to_spec, network_from_spec, network_to_spec
from refattr.testing.oracle import _npz_bytes

SHAPES = ((2, 5, 5), (4,), (2, 7))     # an image, a feature vector, a sequence (C, L)


def one_input():
    """Layers of one input (joins are serialised inside graphs: test_a_graph_round_trips_node_by_node)."""
    return [entry for entry in registry.registered() if not entry.joins]


def instances(seed=3, n=3):
    """(layer, example shape) for every registered layer, n random instances each, built by the
    layer's own ``random`` constructor for the first shape it accepts."""
    out = []
    for entry in one_input():
        rng = np.random.default_rng(seed)
        for shape in SHAPES:
            try:
                entry.cls.random(np.random.default_rng(0), shape).output_shape(shape)
            except ValueError:
                continue
            out += [(entry.cls.random(rng, shape), shape) for _ in range(n)]
            break
        else:
            pytest.fail(f"{entry.name}: its random constructor accepts none of {SHAPES}")
    return out


# the three formats: net -> (what is stored, as bytes that a reader parses) -> net ------------------

def via_witness(net):
    plain = network_to_layers(net)
    text = json.dumps(plain)                       # plain data only: json refuses arrays
    again = network_from_layers(json.loads(text))
    assert network_to_layers(again) == plain
    return again


def via_oracle(net):
    arrays = {}
    spec = network_to_spec(net, arrays)
    with np.load(io.BytesIO(_npz_bytes(arrays)), allow_pickle=False) as data:
        stored = {key: data[key] for key in data.files}
    assert sorted(stored) == sorted(arrays)
    return network_from_spec(json.loads(json.dumps(spec, sort_keys=True)), stored)


def via_model(net):
    specs, arrays = network_specs(net)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        stored = {key: data[key] for key in data.files}
    return build_network(json.loads(json.dumps(specs)), stored)


FORMATS = {"witness": via_witness, "oracle": via_oracle, "model": via_model}


def assert_same_layer(again, layer, shape, rng):
    assert type(again) is type(layer)
    config, config_again = registry.to_config(layer), registry.to_config(again)
    assert config_again["params"] == config["params"]
    assert sorted(config_again["arrays"]) == sorted(config["arrays"])
    for name, array in config["arrays"].items():
        assert config_again["arrays"][name].dtype == np.float64
        np.testing.assert_array_equal(config_again["arrays"][name], array)
    x = rng.normal(size=(2,) + shape)
    np.testing.assert_array_equal(again.forward(x)[0], layer.forward(x)[0])


@pytest.mark.parametrize("form", FORMATS)
def test_every_registered_layer_round_trips(form):
    rng = np.random.default_rng(0)
    cases = instances()
    assert {type(layer) for layer, _ in cases} == {entry.cls for entry in one_input()}
    for layer, shape in cases:
        again = FORMATS[form](Sequential([layer]))
        assert len(again.layers) == 1
        assert_same_layer(again.layers[0], layer, shape, rng)


@pytest.mark.parametrize("form", FORMATS)
def test_a_newly_registered_layer_round_trips_with_no_edit(form, with_clamp):
    rng = np.random.default_rng(1)
    for layer in (with_clamp(), with_clamp.random(rng, (3,))):
        again = FORMATS[form](Sequential([Dense(rng.normal(size=(3, 2))), layer]))
        assert again.layers[1].label == layer.label and again.layers[1].strict is layer.strict
        assert again.layers[1].gain == layer.gain
        assert_same_layer(again.layers[1], layer, (3,), rng)
    # and the classes present before are unaffected by the extra entry
    assert any(type(layer) is with_clamp for layer, _ in instances(n=1))


@pytest.mark.parametrize("form", FORMATS)
def test_absent_biases_stay_absent(form, rng):
    net = Sequential([Conv2D(rng.normal(size=(2, 1, 2, 2)), None, stride=(2, 1), padding=(1, 0, 0, 1),
                             dilation=(1, 2), groups=1), ReLU()])
    again = FORMATS[form](net)
    assert again.layers[0].bias is None
    assert_same_layer(again.layers[0], net.layers[0], (1, 4, 5), rng)
    dense = FORMATS[form](Sequential([Dense(rng.normal(size=(2, 3)))])).layers[0]
    assert dense.bias is None


def test_the_formats_keep_their_shapes():
    # The JSON each format has always written (readers outside refattr depend on it): a witness
    # layer is {"layer": name, argument: value, ...} with nested lists for arrays and null for an
    # absent bias; an oracle layer names its arrays "layers.{i}.{argument}"; a model spec has
    # "params" (argument -> array key) and "config".
    dense, relu, conv = Dense([[1.0, -2.0]], None), ReLU(), Conv2D(np.ones((1, 1, 1, 1)), [0.5], stride=2)
    assert network_to_layers(Sequential([dense, relu])) == [
        {"layer": "Dense", "weight": [[1.0, -2.0]], "bias": None}, {"layer": "ReLU"}]
    assert network_to_layers(Sequential([conv])) == [
        {"layer": "Conv2D", "weight": [[[[1.0]]]], "bias": [0.5], "stride": [2, 2], "padding": [0, 0, 0, 0],
         "dilation": [1, 1], "groups": 1}]
    arrays = {}
    spec = layer_to_spec(conv, arrays, "layers.2")
    assert spec == {"type": "Conv2D", "weight": "layers.2.weight", "bias": "layers.2.bias", "stride": [2, 2],
                    "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}
    assert sorted(arrays) == ["layers.2.bias", "layers.2.weight"]
    arrays = {}
    spec = layer_to_spec(dense, arrays, "layers.0")
    assert spec == {"type": "Dense", "weight": "layers.0.weight", "bias": None} and list(arrays) == ["layers.0.weight"]
    np.testing.assert_array_equal(arrays["layers.0.weight"], [[1.0, -2.0]])
    assert layer_to_spec(relu, arrays, "layers.1") == {"type": "ReLU"} and len(arrays) == 1
    specs, named = network_specs(Sequential([conv, relu]))
    assert specs == [{"type": "Conv2D", "params": {"weight": "layers.0.weight", "bias": "layers.0.bias"},
                      "config": {"stride": [2, 2], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}},
                     {"type": "ReLU"}]
    assert sorted(named) == ["layers.0.bias", "layers.0.weight"]
    assert network_specs(Sequential([dense]))[0] == [{"type": "Dense", "params": {"weight": "layers.0.weight"}}]


def test_the_bundled_model_is_written_back_in_its_own_form():
    # network_specs names the arrays as the shipped JSON does, so the recorded parameter digest
    # (computed when the model was trained) comes out of the rewritten form unchanged.
    info = digits_cnn_info()
    net, images, _ = load_digits_cnn()
    specs, arrays = network_specs(net)
    assert [spec["type"] for spec in specs] == [spec["type"] for spec in info["layers"]]
    assert [spec.get("params") for spec in specs] == [spec.get("params") for spec in info["layers"]]
    assert parameter_digest(specs, arrays) == info["parameter_sha256"]
    again = build_network(specs, arrays, tuple(info["input_shape"]))
    np.testing.assert_array_equal(again(images), net(images))


@pytest.mark.parametrize("read", [
    lambda spec: network_from_layers([{"layer": "ReLU"}, {"layer": spec}]),
    lambda spec: network_from_spec({"layers": [{"type": "ReLU"}, {"type": spec}]}, {}),
    lambda spec: build_network([{"type": "ReLU"}, {"type": spec}], {}),
], ids=FORMATS)
def test_an_unknown_layer_is_named_with_its_position(read):
    with pytest.raises(UnsupportedLayerError, match=r"layers\[1\].*'Softmax2'.*registered: .*ReLU"):
        read("Softmax2")


def test_a_missing_oracle_array_is_named():
    with pytest.raises(ShapeError, match=r"layers\[0\] \(Dense\) weight: array 'layers.0.weight' is missing"):
        network_from_spec({"layers": [{"type": "Dense", "weight": "layers.0.weight", "bias": None}]}, {})


def residual_gate_graph(rng):
    """Every join in one graph: a weighted Add, a Concat along the feature axis, a Mul gate."""
    return Graph(("x", "z"), [
        ("h", Dense(rng.normal(size=(3, 2)), rng.normal(size=3)), "x"),
        ("a", ReLU(), "h"),
        ("cat", Concat(axis=1), ("a", "z")),
        ("g", Dense(rng.normal(size=(5, 5))), "cat"),
        ("gate", Mul(), ("g", "cat")),
        ("r", Add(weights=(1.0, -0.5)), ("gate", "cat")),
        ("y", Dense(rng.normal(size=(2, 5))), "r"),
    ], input_shape=((2,), (2,)))


@pytest.mark.parametrize("stored", [False, True], ids=["inline", "stored"])
def test_a_graph_round_trips_node_by_node(stored, rng):
    # identity: the same names, reads, layers (arguments bit for bit) and outputs bit for bit
    net = residual_gate_graph(rng)
    arrays = {} if stored else None
    spec = json.loads(json.dumps(network_to_spec(net, arrays)))
    assert spec["inputs"] == ["x", "z"] and spec["input_shape"] == [[2], [2]]
    assert [n["inputs"] for n in spec["nodes"]] == [["x"], ["h"], ["a", "z"], ["cat"], ["g", "cat"],
                                                    ["gate", "cat"], ["r"]]
    if stored:
        assert sorted(arrays) == ["nodes.g.weight", "nodes.h.bias", "nodes.h.weight", "nodes.y.weight"]
        assert spec["nodes"][0]["layer"]["weight"] == "nodes.h.weight"
    again = network_from_spec(spec, arrays)
    assert isinstance(again, Graph) and again.inputs == net.inputs and again.input_shape == net.input_shape
    for node, node_again in zip(net.nodes, again.nodes, strict=True):
        assert (node_again.name, node_again.inputs) == (node.name, node.inputs)
        assert registry.to_config(node_again.layer)["params"] == registry.to_config(node.layer)["params"]
    x = (rng.normal(size=(4, 2)), rng.normal(size=(4, 2)))
    np.testing.assert_array_equal(again(x), net(x))


def test_a_malformed_graph_spec_is_named():
    with pytest.raises(ValueError, match="'layers' \\(a chain\\) or 'inputs' and 'nodes'"):
        network_from_spec({"inputs": ["x"]})
    with pytest.raises(ValueError, match=r"nodes\[0\]: expected \{'name', 'inputs', 'layer'\}"):
        network_from_spec({"inputs": ["x"], "nodes": [{"name": "y", "layer": {"type": "ReLU"}}]})
    with pytest.raises(UnsupportedLayerError, match=r"nodes\[0\] \('y'\): layer type 'Nope'"):
        network_from_spec({"inputs": ["x"], "nodes": [{"name": "y", "inputs": ["x"], "layer": {"type": "Nope"}}]})
