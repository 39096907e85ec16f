"""from_onnx and onnx_forward on hostile and malformed ONNX files: every one is refused with a
refattr error that names the file or node, nothing is read from outside a model's folder, and
every import is checked against the model on a probe batch.

Each hostile model is built here with onnx.helper. Where a case shows that onnx or the old code
accepted it silently, the test first shows that (the attack or the silent reading is live), then
that refattr refuses it.
"""

import os

import numpy as np
import pytest

from refattr.errors import (ArgumentError, ImportMismatchError, NonFiniteError, RefattrError, UnsafeFileError,
                            UnsupportedLayerError)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import AttributeProto, TensorProto, helper, numpy_helper  # noqa: E402
from onnx.external_data_helper import load_external_data_for_model  # noqa: E402

from refattr import Sigmoid  # noqa: E402
from refattr.interop import from_onnx, onnx_forward  # noqa: E402
from refattr.interop import onnx_model  # noqa: E402

RNG = np.random.default_rng(13)
W45 = RNG.normal(size=(4, 5))
WC = RNG.normal(size=(3, 2, 2, 2))
#: What the "secret" file holds: values no weight of these tests has, so a leak is recognisable.
SECRET = np.arange(20, dtype=np.float64) + 7777.25


def N(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


def model(nodes, inits, in_dims=("N", 4), in_type=TensorProto.DOUBLE, opset=17):
    """A model with input 'x' of dims in_dims and output 'y'; inits: name -> array or TensorProto."""
    tensors = [v if isinstance(v, TensorProto) else numpy_helper.from_array(np.asarray(v), k)
               for k, v in inits.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", in_type, list(in_dims))],
                              [helper.make_tensor_value_info("y", in_type, None)], tensors)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def gemm_model(weight=W45):
    return model([N("Gemm", ["x", "W"])], {"W": weight})


def conv_model(nodes, inits=None, in_dims=("N", 2, 5, 5)):
    """nodes read 'x' and write 'c' (images); a Flatten then writes 'y'."""
    return model(nodes + [N("Flatten", ["c"])], {"W": WC, **(inits or {})}, in_dims)


def external(name, location, shape=(4, 5)):
    """A DOUBLE tensor whose values live in the file ``location`` (data_location=EXTERNAL)."""
    t = TensorProto(name=name, data_type=TensorProto.DOUBLE, dims=list(shape), data_location=TensorProto.EXTERNAL)
    t.external_data.add(key="location", value=location)
    return t


# 1. External data: read only for a model loaded from its path, only inside its folder --------
@pytest.fixture
def secret(tmp_path, monkeypatch):
    """A file the model must never read, and the working directory set to its folder."""
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    monkeypatch.chdir(tmp_path)
    return "secret.bin"


def test_external_data_in_bytes_or_proto_is_refused_and_nothing_is_read(secret):
    hostile = model([N("Gemm", ["x", "W"])], {"W": external("W", secret)})
    # The attack is live in onnx: resolved against the working directory, the weight is the secret.
    copy = onnx.ModelProto.FromString(hostile.SerializeToString())
    load_external_data_for_model(copy, ".")
    assert np.array_equal(numpy_helper.to_array(copy.graph.initializer[0]).reshape(-1), SECRET)

    x = np.ones((1, 4))
    for source in (hostile, hostile.SerializeToString(), bytearray(hostile.SerializeToString())):
        for call in (lambda: from_onnx(source), lambda: from_onnx(source, check=False),
                     lambda: onnx_forward(source, x), lambda: onnx_forward(source, x, engine="reference")):
            with pytest.raises(UnsafeFileError, match="initializer 'W'.*'secret.bin'.*path") as info:
                call()
            assert "7777" not in str(info.value)
    # Nothing was loaded into the caller's proto.
    assert hostile.graph.initializer[0].data_location == TensorProto.EXTERNAL
    assert not hostile.graph.initializer[0].raw_data


def test_external_data_in_a_constant_node_attribute_is_refused(secret):
    value = external("v", secret, shape=(5,))
    hostile = model([N("Gemm", ["x", "W"], ["g"]), helper.make_node("Constant", [], ["b"], value=value),
                     N("Add", ["g", "b"])], {"W": W45})
    with pytest.raises(UnsafeFileError, match="attribute 'value'.*'secret.bin'"):
        from_onnx(hostile.SerializeToString())


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "dotdot_inside"])
def test_external_data_outside_the_model_folder_is_refused(secret, tmp_path, where):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    location = {"parent": "../secret.bin", "absolute": str(tmp_path / "secret.bin"), "symlink": "link.bin",
                "dotdot_inside": "sub/../../secret.bin"}[where]
    if where == "symlink":
        try:
            os.symlink(tmp_path / "secret.bin", folder / "link.bin")
        except (OSError, NotImplementedError):
            pytest.skip("symbolic links are not available here")
    path = folder / "m.onnx"
    path.write_bytes(model([N("Gemm", ["x", "W"])], {"W": external("W", location)}).SerializeToString())
    with pytest.raises(UnsafeFileError, match="initializer 'W'.*not inside the model's folder") as info:
        from_onnx(str(path))
    assert "7777" not in str(info.value)
    with pytest.raises(UnsafeFileError):
        onnx_forward(path, np.ones((1, 4)))


def test_external_data_saved_by_onnx_loads_from_its_path_and_matches_the_inline_model(tmp_path):
    inline = model([N("Gemm", ["x", "W", "b"], ["h"]), N("Tanh", ["h"])], {"W": W45, "b": RNG.normal(size=5)})
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir()
    onnx.save_model(onnx.ModelProto.FromString(inline.SerializeToString()), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").exists()
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    x = RNG.normal(size=(3, 4))
    expected = from_onnx(inline)(x)
    assert np.array_equal(from_onnx(str(path))(x), expected)
    assert np.array_equal(from_onnx(path)(x), expected)  # a pathlib.Path
    # What the command line does: read the file once (cli.load_model), then import the proto.
    assert np.array_equal(from_onnx(onnx_model._load(str(path)))(x), expected)
    assert np.allclose(onnx_forward(path, x), np.tanh(x @ W45 + numpy_helper.to_array(inline.graph.initializer[1])),
                       rtol=1e-12, atol=0)


def test_missing_external_file_is_an_argument_error_naming_the_model(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(model([N("Gemm", ["x", "W"])], {"W": external("W", "absent.bin")}).SerializeToString())
    with pytest.raises(ArgumentError, match="m.onnx.*external data could not be read"):
        from_onnx(path)


# 2. Files that are not ONNX models -----------------------------------------------------------
def test_files_that_are_not_models(tmp_path):
    valid = gemm_model().SerializeToString()
    truncated = valid[: len(valid) // 2]
    garbage = b"\xff" * 64
    for data in (truncated, garbage):  # raw protobuf errors in onnx
        with pytest.raises(Exception, match="Error parsing message"):
            onnx.load_from_string(data)
    cases = {"empty.onnx": (b"", "empty \\(0 bytes\\)"), "truncated.onnx": (truncated, "could not be decoded"),
             "garbage.onnx": (garbage, "could not be decoded"),
             "no_graph.onnx": (b"\x08\x07", "holds no graph")}  # ir_version = 7, nothing else
    for name, (data, pattern) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ArgumentError, match=f"model file '.*{name}'.*{pattern}"):
            from_onnx(str(tmp_path / name))
        with pytest.raises(ArgumentError, match=f"model \\({len(data)} serialized bytes\\).*{pattern}"):
            from_onnx(data)
    with pytest.raises(ArgumentError, match="is a directory"):
        from_onnx(str(tmp_path))
    with pytest.raises(ArgumentError, match="no such file"):
        from_onnx(str(tmp_path / "absent.onnx"))
    with pytest.raises(ArgumentError, match="expected an onnx.ModelProto, a path or serialized bytes, got "
                                            "builtins.int"):
        from_onnx(3)
    with pytest.raises(ArgumentError, match="engine"):
        onnx_forward(gemm_model(), np.ones((1, 4)), engine="torch")


# 3. Malformed content ------------------------------------------------------------------------
def raw_tensor(name, data_type, dims, raw):
    return TensorProto(name=name, data_type=data_type, dims=list(dims), raw_data=raw)


def with_attr(node, name, value, kind):
    """node with an attribute of an explicit (possibly wrong) type."""
    a = AttributeProto(name=name, type=kind)
    {AttributeProto.INT: lambda: setattr(a, "i", value), AttributeProto.FLOAT: lambda: setattr(a, "f", value),
     AttributeProto.STRING: lambda: setattr(a, "s", value), AttributeProto.INTS: lambda: a.ints.extend(value),
     AttributeProto.FLOATS: lambda: a.floats.extend(value), AttributeProto.UNDEFINED: lambda: None}[kind]()
    node.attribute.append(a)
    return node


MAXPOOL = ("N", 2, 5, 5)
HOSTILE = {
    # element types
    "complex128_weight": (lambda: gemm_model(W45.astype(np.complex128) + 1j), UnsupportedLayerError,
                          "initializer 'W' has element type COMPLEX128"),
    "complex64_weight": (lambda: gemm_model(W45.astype(np.complex64)), UnsupportedLayerError, "COMPLEX64"),
    "string_weight": (lambda: gemm_model(np.array([["a"] * 5] * 4, dtype=object)), UnsupportedLayerError,
                      "initializer 'W' has element type STRING"),
    "bool_weight": (lambda: gemm_model(np.ones((4, 5), dtype=bool)), ArgumentError,
                    "node 0 \\(Gemm\\): B 'W' has element type bool; expected a floating-point type"),
    "string_input": (lambda: model([N("Identity", ["x"])], {}, in_type=TensorProto.STRING), UnsupportedLayerError,
                     "graph input 'x' has element type STRING"),
    "int_input": (lambda: model([N("Identity", ["x"])], {}, in_type=TensorProto.INT64), UnsupportedLayerError,
                  "graph input 'x' has element type INT64"),
    # dims
    "negative_dims": (lambda: gemm_model(raw_tensor("W", TensorProto.DOUBLE, [-1, 5], W45.tobytes())), ArgumentError,
                      "initializer 'W' has dims \\[-1, 5\\]"),
    "dims_do_not_fit_data": (lambda: gemm_model(raw_tensor("W", TensorProto.DOUBLE, [4, 5], W45[:1].tobytes())),
                             ArgumentError, "initializer 'W' could not be read"),
    "zero_size_weight": (lambda: gemm_model(np.zeros((0, 5))), ArgumentError, "node 0 \\(Gemm\\): B 'W' is empty"),
    "negative_input_dim": (lambda: model([N("Gemm", ["x", "W"])], {"W": W45}, in_dims=("N", -4)), ArgumentError,
                           "graph input 'x' declares dimension 1 as -4"),
    "zero_input_dim": (lambda: model([N("Gemm", ["x", "W"])], {"W": W45}, in_dims=(0, 4)), ArgumentError,
                       "dimension 0 as 0"),
    # Reshape's shape tensor
    "reshape_to_half": (lambda: model([N("Reshape", ["x", "s"])], {"s": np.array([0.5, -1])}, MAXPOOL), ArgumentError,
                        "node 0 \\(Reshape\\): the shape 's' has element type float64; expected int64"),
    "reshape_int32": (lambda: model([N("Reshape", ["x", "s"])], {"s": np.array([0, -1], dtype=np.int32)}, MAXPOOL),
                      ArgumentError, "expected int64"),
    "reshape_2d_shape": (lambda: model([N("Reshape", ["x", "s"])], {"s": np.array([[0, -1]])}, MAXPOOL), ArgumentError,
                         "1-D int64"),
    # missing or wrong attributes
    "maxpool_no_kernel": (lambda: model([N("MaxPool", ["x"], ["c"]), N("Flatten", ["c"])], {}, MAXPOOL),
                          ArgumentError, "node 0 \\(MaxPool\\): .*kernel_shape.* is missing"),
    "avgpool_no_kernel": (lambda: model([N("AveragePool", ["x"], ["c"]), N("Flatten", ["c"])], {}, MAXPOOL),
                          ArgumentError, "node 0 \\(AveragePool\\): .*kernel_shape.* is missing"),
    "conv_stride_0": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], strides=[0, 1])]), ArgumentError,
                      "node 0 \\(Conv\\): attribute strides=\\[0, 1\\]; expected 2 integers >= 1"),
    "maxpool_stride_0": (lambda: model([N("MaxPool", ["x"], ["c"], kernel_shape=[2, 2], strides=[1, 0]),
                                        N("Flatten", ["c"])], {}, MAXPOOL), ArgumentError, "strides=\\[1, 0\\]"),
    "conv_negative_pads": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], pads=[0, -1, 0, 0])]), ArgumentError,
                           "node 0 \\(Conv\\): attribute pads=\\[0, -1, 0, 0\\]; expected 4 integers >= 0"),
    "conv_three_pads": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], pads=[1, 1, 1])]), ArgumentError,
                        "pads=\\[1, 1, 1\\]"),
    "conv_dilation_0": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], dilations=[0, 1])]), ArgumentError,
                        "dilations"),
    "conv_group_0": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], group=0)]), ArgumentError,
                     "group=0; expected an integer >= 1"),
    "conv_group_float": (lambda: conv_model([with_attr(N("Conv", ["x", "W"], ["c"]), "group", 1.0,
                                                       AttributeProto.FLOAT)]), ArgumentError,
                         "node 0 \\(Conv\\): .*group"),
    "conv_strides_floats": (lambda: conv_model([with_attr(N("Conv", ["x", "W"], ["c"]), "strides", [1.0, 1.0],
                                                          AttributeProto.FLOATS)]), ArgumentError, "strides"),
    "conv_kernel_shape_mismatch": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3])]),
                                   ArgumentError, "kernel_shape \\[3, 3\\] differs from the weight's \\(2, 2\\)"),
    "conv_auto_pad_unknown": (lambda: conv_model([N("Conv", ["x", "W"], ["c"], auto_pad="SAME")]), ArgumentError,
                              "auto_pad='SAME'"),
    "conv_auto_pad_not_utf8": (lambda: conv_model([with_attr(N("Conv", ["x", "W"], ["c"]), "auto_pad", b"\xff\xfe",
                                                             AttributeProto.STRING)]), ArgumentError, "auto_pad="),
    "conv_on_vectors": (lambda: model([N("Conv", ["x", "W"], auto_pad="SAME_UPPER", strides=[2, 2])], {"W": WC}),
                        UnsupportedLayerError, "node 0 \\(Conv\\): its input has per-example shape \\(4,\\)"),
    "pool_ceil_mode_2": (lambda: model([N("MaxPool", ["x"], ["c"], kernel_shape=[2, 2], ceil_mode=2),
                                        N("Flatten", ["c"])], {}, MAXPOOL), ArgumentError, "ceil_mode=2"),
    "avgpool_count_include_pad_2": (lambda: model([N("AveragePool", ["x"], ["c"], kernel_shape=[2, 2],
                                                     count_include_pad=2), N("Flatten", ["c"])], {}, MAXPOOL),
                                    ArgumentError, "count_include_pad=2; expected one of \\[0, 1\\]"),
    "gemm_transB_2": (lambda: model([N("Gemm", ["x", "W"], transB=2)], {"W": W45.T}), ArgumentError, "transB=2"),
    "gemm_alpha_nan": (lambda: model([N("Gemm", ["x", "W"], alpha=float("nan"))], {"W": W45}), ArgumentError,
                       "alpha=nan; expected a finite float"),
    "gemm_alpha_string": (lambda: model([N("Gemm", ["x", "W"], alpha="2")], {"W": W45}), ArgumentError,
                          "node 0 \\(Gemm\\): .*alpha"),
    "gemm_undefined_attribute": (lambda: model([with_attr(N("Gemm", ["x", "W"]), "alpha", None,
                                                          AttributeProto.UNDEFINED)], {"W": W45}), ArgumentError,
                                 "node 0 \\(Gemm\\): .*alpha"),
    "flatten_axis_string": (lambda: model([N("Flatten", ["x"], axis="1")], {}), ArgumentError,
                            "node 0 \\(Flatten\\): .*axis"),
    # missing inputs and outputs, wrong shapes
    "gemm_one_input": (lambda: model([N("Gemm", ["x"])], {}), ArgumentError,
                       "node 0 \\(Gemm\\): .*input size 1|node 0 \\(Gemm\\): it has 1 inputs"),
    "gemm_scalar_B": (lambda: gemm_model(np.array(2.0)), ArgumentError, "B has shape \\(\\); Gemm takes a 2-D"),
    "gemm_vector_B": (lambda: gemm_model(np.ones(4)), ArgumentError, "B has shape \\(4,\\)"),
    "gemm_nan_weight": (lambda: gemm_model(np.full((4, 5), np.nan)), NonFiniteError, "node 0 \\(Gemm\\): Dense weight"),
    "batchnorm_three_inputs": (lambda: model([N("BatchNormalization", ["x", "g", "b"])], {"g": np.ones(4),
                                                                                         "b": np.ones(4)}),
                               ArgumentError, "node 0 \\(BatchNormalization\\): .*(input size 3|3 inputs)"),
    "batchnorm_shapes": (lambda: model([N("BatchNormalization", ["x", "g", "b", "m", "v"])],
                                       {"g": np.ones(4), "b": np.ones(3), "m": np.ones(4), "v": np.ones(4)}),
                         ArgumentError, "one value per channel \\(4,\\)"),
    "batchnorm_channels": (lambda: model([N("Gemm", ["x", "W"], ["h"]),
                                          N("BatchNormalization", ["h", "g", "b", "m", "v"])],
                                         {"W": W45, **{k: np.ones(4) for k in "gbmv"}}), ArgumentError,
                           "node 1 \\(BatchNormalization\\).*one value per channel \\(5,\\)"),
    "batchnorm_negative_variance": (lambda: model([N("BatchNormalization", ["x", "g", "b", "m", "v"])],
                                                  {"g": np.ones(4), "b": np.ones(4), "m": np.ones(4),
                                                   "v": -np.ones(4)}), ArgumentError,
                                    "node 0 \\(BatchNormalization\\): .*running_var \\+ eps > 0"),
    "constant_without_value": (lambda: model([helper.make_node("Constant", [], ["b"]), N("Gemm", ["x", "W", "b"])],
                                             {"W": W45}), ArgumentError,
                               "node 0 \\(Constant\\): it has 0 attributes"),
    "constant_string": (lambda: model([helper.make_node("Constant", [], ["b"], value_string="x"),
                                       N("Gemm", ["x", "W", "b"])], {"W": W45}), UnsupportedLayerError,
                        "value_string"),
    "node_without_output": (lambda: model([N("Relu", ["x"], []), N("Identity", ["x"])], {}), ArgumentError,
                            "node 0 \\(Relu\\): it has no output"),
    "dropout_float_training_mode": (lambda: model([N("Dropout", ["x", "r", "t"])], {"r": np.array(0.5),
                                                                                   "t": np.array(1.0)}),
                                    ArgumentError, "training_mode 't' has element type float64; expected bool"),
}


@pytest.mark.parametrize("schema_check", [True, False], ids=["schema_check", "own_checks_only"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_malformed_models_are_refused_naming_what_is_wrong(name, schema_check, monkeypatch):
    """Each case with onnx's per-node schema check (onnx.checker.check_node), and without it, so
    that from_onnx's own checks (which also cover values the schema allows, such as strides of
    0) are exercised on their own."""
    if not schema_check:
        monkeypatch.setattr(onnx_model._Walker, "validate", lambda self, node: None)
    build, error, pattern = HOSTILE[name]
    data = build().SerializeToString()
    with pytest.raises(error, match=pattern):
        from_onnx(data)


def test_every_node_is_checked_against_its_operator_schema():
    """An attribute the operator does not have (Relu has no alpha; LeakyRelu has) was ignored, so
    this imported as a plain ReLU; onnx.checker.check_node now refuses it."""
    with pytest.raises(ArgumentError, match="node 0 \\(Relu\\): .*Unrecognized attribute: alpha"):
        from_onnx(model([N("Relu", ["x"], alpha=0.1)], {}), check=False)


def test_the_old_reader_accepted_these_silently():
    """What two of the cases above guard against: onnx reads dims [-1, 5] as numpy's "infer this
    size" (a (4, 5) weight from 20 values), and int() turned the Reshape shape [0.5, -1] into the
    flatten (0, -1)."""
    assert numpy_helper.to_array(raw_tensor("W", TensorProto.DOUBLE, [-1, 5], W45.tobytes())).shape == (4, 5)
    assert [int(v) for v in np.array([0.5, -1])] == [0, -1]


def test_conv_without_kernel_shape_takes_it_from_the_weight():
    m = conv_model([N("Conv", ["x", "W"], ["c"], pads=[1, 0, 0, 1])])
    assert not any(a.name == "kernel_shape" for a in m.graph.node[0].attribute)
    x = RNG.normal(size=(2, 2, 5, 5))
    net = from_onnx(m)
    assert net.layers[0].weight.shape[2:] == (2, 2)
    assert np.allclose(net(x), onnx_forward(m, x, engine="reference"), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(4.7,), (4.0,), (0,), (-4,), (True,), "4", 4])
def test_input_shape_argument_is_checked(shape):
    with pytest.raises(ArgumentError, match="input_shape: expected a tuple of ints >= 1"):
        from_onnx(gemm_model(), input_shape=shape)


def test_input_shape_must_fit_what_the_graph_declares():
    with pytest.raises(ArgumentError, match="input_shape: \\(5,\\) does not fit the graph input 'x'.*\\[4\\]"):
        from_onnx(gemm_model(), input_shape=(5,))
    with pytest.raises(ArgumentError, match="\\[\\?, 5, 5\\]"):
        from_onnx(conv_model([N("Conv", ["x", "W"], ["c"])], in_dims=("N", "C", 5, 5)), input_shape=(2, 5))
    assert from_onnx(gemm_model(), input_shape=(np.int64(4),)).input_shape == (4,)


# Every crafted model gets a refattr error, never a raw one ------------------------------------
def _bases():
    conv = model([N("Conv", ["x", "W", "cb"], ["c"], pads=[1, 0, 1, 0], strides=[1, 2]),
                  N("BatchNormalization", ["c", "g", "be", "mu", "v"], ["n"]), N("Relu", ["n"], ["r"]),
                  N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2]), N("AveragePool", ["p"], ["q"], kernel_shape=[1, 1]),
                  N("Reshape", ["q", "s"], ["f"]), N("Gemm", ["f", "V", "vb"], transB=1)],
                 {"W": WC, "cb": np.ones(3), "g": np.ones(3), "be": np.zeros(3), "mu": np.zeros(3), "v": np.ones(3),
                  "s": np.array([0, -1]), "V": RNG.normal(size=(2, 3 * 3 * 1)), "vb": np.ones(2)}, ("N", 2, 3, 4))
    mlp = model([N("MatMul", ["x", "W"], ["h"]), N("Add", ["h", "b"], ["a"]), N("Mul", ["a", "k"], ["u"]),
                 N("Sigmoid", ["u"], ["s"]), N("Mul", ["a", "s"], ["w"]), N("Dropout", ["w"], ["d"]),
                 N("Flatten", ["d"], ["f"]),
                 helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(0.5))),
                 N("Gemm", ["f", "U", "c"], alpha=0.5)],
                {"W": W45, "b": np.ones(5), "k": np.array(1.5), "U": RNG.normal(size=(5, 2))})
    return [conv, mlp]


def _mutate(m, rng):
    """A copy of m with one random structural change of the kind a crafted file can make."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    g = m.graph
    node = g.node[rng.integers(len(g.node))]
    kind = rng.integers(9)
    if kind == 0 and len(node.input):
        del node.input[rng.integers(len(node.input))]
    elif kind == 1 and len(node.attribute):
        del node.attribute[rng.integers(len(node.attribute))]
    elif kind == 2:
        name = rng.choice(["strides", "pads", "kernel_shape", "dilations", "group", "alpha", "beta", "transB",
                           "axis", "epsilon", "auto_pad", "count_include_pad", "ceil_mode", "value_float"])
        kinds = [AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.STRING, AttributeProto.INTS,
                 AttributeProto.FLOATS, AttributeProto.UNDEFINED]
        kind_ = kinds[rng.integers(len(kinds))]
        value = {AttributeProto.INT: int(rng.integers(-3, 4)),
                 AttributeProto.FLOAT: float(rng.choice([np.nan, 0.5, -1])),
                 AttributeProto.STRING: bytes(rng.integers(0, 256, 3).astype(np.uint8)),
                 AttributeProto.INTS: [int(v) for v in rng.integers(-2, 4, rng.integers(0, 6))],
                 AttributeProto.FLOATS: [0.5] * int(rng.integers(0, 5)), AttributeProto.UNDEFINED: None}[kind_]
        for i in reversed(range(len(node.attribute))):
            if node.attribute[i].name == name:
                del node.attribute[i]
        with_attr(node, name, value, kind_)
    elif kind == 3 and len(g.initializer):
        t = g.initializer[rng.integers(len(g.initializer))]
        dims = [int(d) for d in rng.integers(-2, 6, rng.integers(0, 4))]
        del t.dims[:]
        t.dims.extend(dims)
    elif kind == 4 and len(g.initializer):
        t = g.initializer[rng.integers(len(g.initializer))]
        t.data_type = int(rng.choice([TensorProto.COMPLEX64, TensorProto.STRING, TensorProto.INT32, TensorProto.BOOL,
                                      TensorProto.FLOAT8E4M3FN, TensorProto.UNDEFINED, 99]))
    elif kind == 5 and len(node.output):
        del node.output[:]
    elif kind == 6:
        d = g.input[0].type.tensor_type.shape.dim[rng.integers(1, len(g.input[0].type.tensor_type.shape.dim))]
        d.dim_value = int(rng.integers(-3, 3))
    elif kind == 7 and len(node.input):
        names = [t.name for t in g.initializer] + [o for n in g.node for o in n.output] + ["x", "nowhere"]
        node.input[rng.integers(len(node.input))] = str(rng.choice(names))
    else:
        node.op_type = str(rng.choice(["Conv", "MaxPool", "Gemm", "Reshape", "BatchNormalization", "Constant",
                                       "Dropout", "Flatten", "Add"]))
    return m


def test_crafted_variants_of_valid_models_give_refattr_errors_only():
    """Random single changes to valid models: each either imports (and then passes the probe
    check against onnxruntime) or raises a RefattrError; a KeyError, IndexError, TypeError or
    FloatingPointError would fail here. A plausible bug this catches: an attrs[...] lookup or an
    int(...) conversion left unchecked."""
    rng = np.random.default_rng(2024)
    outcomes = {"imported": 0, "refused": 0}
    for base in _bases():
        from_onnx(base)  # the base models themselves import and pass the check
        for _ in range(150):
            mutant = _mutate(base, rng)
            try:
                from_onnx(mutant.SerializeToString())
            except RefattrError:
                outcomes["refused"] += 1
            else:
                outcomes["imported"] += 1
    assert outcomes["refused"] > 150 and outcomes["imported"] > 10, outcomes


# 4. Every import is checked against the model on a probe batch -------------------------------
def _misread_tanh_as_sigmoid(monkeypatch):
    """A plausible importer bug: the Tanh op read as the Sigmoid layer."""
    real = onnx_model.registry.by_onnx_op
    monkeypatch.setattr(onnx_model.registry, "by_onnx_op", lambda op: real("Sigmoid" if op == "Tanh" else op))


def test_a_misread_op_is_caught_by_the_probe(monkeypatch):
    """A plausible importer bug (an op mapped to the wrong layer) raises ImportMismatchError."""
    m = model([N("Gemm", ["x", "W"], ["h"]), N("Tanh", ["h"])], {"W": W45})
    from_onnx(m)
    _misread_tanh_as_sigmoid(monkeypatch)
    with pytest.raises(ImportMismatchError, match="differs from the ONNX model \\(onnxruntime\\).*1e-12"):
        from_onnx(m)
    assert isinstance(from_onnx(m, check=False).layers[1], Sigmoid)  # check=False: unchecked


def test_same_upper_read_as_same_lower_is_caught_by_the_probe_on_a_float32_model(monkeypatch):
    """auto_pad SAME_UPPER puts the odd pad at the end, SAME_LOWER at the start: mixing them up is
    a plausible importer bug that keeps every shape. The float32 model runs in onnxruntime at
    float32, so the check uses the float32 tolerance, and the correct import passes it."""
    m = model([N("Conv", ["x", "W"], ["c"], auto_pad="SAME_UPPER"), N("Flatten", ["c"])],
              {"W": WC.astype(np.float32)}, ("N", 2, 5, 5), in_type=TensorProto.FLOAT)
    assert from_onnx(m).layers[0].padding == (0, 1, 0, 1)  # kernel 2: total pad 1, at the end
    original = onnx_model._spatial_pads

    def lower(*args):
        top, bottom, left, right = original(*args)
        return (bottom, top, right, left)

    monkeypatch.setattr(onnx_model, "_spatial_pads", lower)
    with pytest.raises(ImportMismatchError, match="above the 1e-05 that FLOAT rounding explains"):
        from_onnx(m)


def test_the_probe_uses_a_fixed_batch_size_and_is_skipped_when_the_shape_is_unknown(monkeypatch):
    fixed = model([N("Gemm", ["x", "W"], ["h"]), N("Tanh", ["h"])], {"W": W45}, in_dims=(1, 4))
    unknown = model([N("Gemm", ["x", "W"], ["h"]), N("Tanh", ["h"])], {"W": W45}, in_dims=("N", "D"))
    from_onnx(fixed)  # onnxruntime refuses a batch of 2 here: the probe has 1 example
    _misread_tanh_as_sigmoid(monkeypatch)
    with pytest.raises(ImportMismatchError, match="\\(1, 4\\)"):
        from_onnx(fixed)
    from_onnx(unknown)  # no example shape: no probe (documented)
    with pytest.raises(ImportMismatchError):
        from_onnx(unknown, input_shape=(4,))


def test_a_model_the_runtime_cannot_run_is_reported():
    """Valid for refattr's reader, rejected by onnxruntime (the output is declared FLOAT while
    the graph computes DOUBLE): the check cannot be made, and says how to skip it."""
    m = gemm_model()
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    with pytest.raises(ImportMismatchError, match="could not be run to check the import.*check=False"):
        from_onnx(m)
    assert from_onnx(m, check=False).layers[0].weight.shape == (5, 4)


def test_check_must_be_a_bool():
    with pytest.raises(ArgumentError, match="check: expected True or False"):
        from_onnx(gemm_model(), check="no")


# A batch size fixed in the graph (an export with a batch of 1) --------------------------------------
def test_a_model_fixed_at_batch_1_runs_example_by_example(tmp_path):
    m = model([N("Gemm", ["x", "W"])], {"W": W45}, in_dims=(1, 4))
    x = RNG.normal(size=(3, 4))
    # onnxruntime itself refuses a batch of 3 for this model (the crash compare used to show)
    import onnxruntime as ort

    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Got: 3 Expected: 1|INVALID_ARGUMENT"):
        session.run(None, {"x": x})
    out, engine = onnx_forward(m, x, return_engine=True)
    np.testing.assert_allclose(out, x @ W45, rtol=1e-13)  # Gemm(x, W) = x W, written out
    assert "in batches of 1" in engine
    path = tmp_path / "fixed.onnx"
    onnx.save(m, str(path))
    from refattr.interop import compare_attributions

    # gradient of output 2 is W[:, 2] for every example (a linear model), written out
    report = compare_attributions(str(path), x, np.tile(W45[:, 2], (3, 1)), "gradient", targets=2)
    assert report.entries[0].verdict == "agree" and report.forward_max_rel_diff <= 1e-12
    assert any("in batches of 1" in n for n in report.notes)


def test_a_batch_that_does_not_fit_a_fixed_batch_size_is_a_clear_error():
    from refattr.errors import ShapeError

    m = model([N("Gemm", ["x", "W"])], {"W": W45}, in_dims=(2, 4))
    np.testing.assert_allclose(onnx_forward(m, RNG.normal(size=(4, 4))).shape, (4, 5))  # two batches of 2
    with pytest.raises(ShapeError, match=r"fixes the batch size at 2, got a batch of 3.*dynamic_axes"):
        onnx_forward(m, RNG.normal(size=(3, 4)))
