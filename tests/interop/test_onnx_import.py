"""from_onnx: every supported op computes what ONNX runtimes compute.

Expected values come from the runtimes: onnxruntime in float64 where it has a kernel, and ONNX's
own reference evaluator (``onnx.reference``, NumPy, float64) always; tolerance EXACT_RTOL.
onnxruntime's CPU provider has no float64 Conv or AveragePool, so graphs with those are also run
in onnxruntime as float32 copies, compared at FLOAT32_RTOL (float32 rounding, 6e-8 per operation).
"""

import io
import warnings

import numpy as np
import pytest

from refattr import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Swish
from refattr.errors import UnsupportedLayerError
from refattr.testing import EXACT_RTOL

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refattr.interop import from_onnx, onnx_forward  # noqa: E402
from refattr.interop.compare import FLOAT32_RTOL, relative_difference  # noqa: E402

RNG = np.random.default_rng(7)


def model(nodes, inits, in_shape, opset=17, outputs=("y",)):
    """A float64 ONNX model with input 'x' of shape (N, *in_shape) (N symbolic)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", *in_shape])],
        [helper.make_tensor_value_info(o, TensorProto.DOUBLE, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v), k)
         for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset <= 17 else 10
    return m


def image_model(nodes, inits, in_shape=None, **kw):
    """As model(), for graphs whose last node outputs images: a Flatten is appended (refattr
    networks end with one vector per example)."""
    *rest, last = nodes
    last = helper.make_node(last.op_type, list(last.input), ["pre"], name=last.name)
    last.attribute.extend(nodes[-1].attribute)
    return model(rest + [last, N("Flatten", ["pre"])], inits, in_shape or IMG, **kw)


def as_float32(m):
    """A float32 copy (initializers and input/output types), for onnxruntime's float32-only kernels."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for init in m.graph.initializer:
        if init.data_type == TensorProto.DOUBLE:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


def check(m, in_shape, n=3):
    x = RNG.normal(size=(n,) + tuple(in_shape))
    net = from_onnx(m)
    ours = net(x)
    reference = onnx_forward(m, x, engine="reference")
    assert relative_difference(ours, reference) <= EXACT_RTOL
    try:
        runtime = onnx_forward(m, x, engine="onnxruntime")
    except Exception as exc:  # onnxruntime's own exception type
        assert "NOT_IMPLEMENTED" in str(exc)
        m32 = as_float32(m)
        assert relative_difference(ours, onnx_forward(m32, x, engine="onnxruntime")) <= FLOAT32_RTOL
    else:
        assert relative_difference(ours, runtime) <= EXACT_RTOL
    return net


def N(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


W45, B5 = RNG.normal(size=(4, 5)), RNG.normal(size=5)
WC = RNG.normal(size=(4, 2, 3, 2))
BC = RNG.normal(size=4)
IMG = (2, 7, 6)

CASES = {
    "gemm_transB_bias": (lambda: model([N("Gemm", ["x", "W", "b"], transB=1)], {"W": W45.T, "b": B5}, (4,)), (4,)),
    "gemm_alpha_beta_row_bias": (lambda: model([N("Gemm", ["x", "W", "b"], alpha=0.5, beta=2.0)],
                                               {"W": W45, "b": B5[None]}, (4,)), (4,)),
    "gemm_scalar_bias": (lambda: model([N("Gemm", ["x", "W", "b"])], {"W": W45, "b": np.array(0.3)}, (4,)), (4,)),
    "gemm_no_bias": (lambda: model([N("Gemm", ["x", "W"])], {"W": W45}, (4,)), (4,)),
    "matmul_add": (lambda: model([N("MatMul", ["x", "W"], ["h"]), N("Add", ["h", "b"])], {"W": W45, "b": B5}, (4,)),
                   (4,)),
    "matmul_add_bias_first": (lambda: model([N("MatMul", ["x", "W"], ["h"]), N("Add", ["b", "h"])],
                                            {"W": W45, "b": B5}, (4,)), (4,)),
    "relu_tanh_sigmoid": (lambda: model([N("Gemm", ["x", "W"], ["a"]), N("Relu", ["a"], ["b"]), N("Tanh", ["b"], ["c"]),
                                         N("Sigmoid", ["c"])], {"W": W45}, (4,)), (4,)),
    "swish_mul_x_sigmoid": (lambda: model([N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"])], {}, (4,)), (4,)),
    "swish_mul_sigmoid_x": (lambda: model([N("Gemm", ["x", "W"], ["h"]), N("Sigmoid", ["h"], ["s"]),
                                           N("Mul", ["s", "h"], ["m"]), N("Relu", ["m"])], {"W": W45}, (4,)), (4,)),
    "swish_beta": (lambda: model([N("Mul", ["x", "beta"], ["u"]), N("Sigmoid", ["u"], ["s"]), N("Mul", ["x", "s"])],
                                 {"beta": np.array(1.5)}, (4,)), (4,)),
    "swish_op_opset24": (lambda: model([N("Swish", ["x"], alpha=0.7)], {}, (4,), opset=24), (4,)),
    "conv_pads_strides_dilations_group": (
        lambda: image_model([N("Conv", ["x", "W", "b"], pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2], group=2)],
                      {"W": RNG.normal(size=(4, 1, 3, 2)), "b": BC}, IMG), IMG),
    "conv_add_bias": (lambda: image_model([N("Conv", ["x", "W"], ["c"]), N("Add", ["c", "b"])],
                                    {"W": WC, "b": BC.reshape(1, 4, 1, 1)}, IMG), IMG),
    "conv_valid": (lambda: image_model([N("Conv", ["x", "W"], auto_pad="VALID")], {"W": WC}, IMG), IMG),
    "conv_same_upper_even_kernel": (lambda: image_model([N("Conv", ["x", "W"], auto_pad="SAME_UPPER")], {"W": WC}, IMG), IMG),
    "conv_same_lower_stride2": (lambda: image_model([N("Conv", ["x", "W"], auto_pad="SAME_LOWER", strides=[2, 2])], {"W": WC},
                                              IMG), IMG),
    "flatten": (lambda: model([N("Conv", ["x", "W"], ["c"]), N("Flatten", ["c"], ["f"], axis=1), N("Gemm", ["f", "V"])],
                              {"W": WC, "V": RNG.normal(size=(4 * 5 * 5, 3))}, IMG), IMG),
    "reshape_0_minus1": (lambda: model([N("Relu", ["x"], ["r"]), N("Reshape", ["r", "s"])],
                                       {"s": np.array([0, -1], dtype=np.int64)}, IMG), IMG),
    "reshape_minus1_d": (lambda: model([N("Relu", ["x"], ["r"]), N("Reshape", ["r", "s"])],
                                       {"s": np.array([-1, 84], dtype=np.int64)}, IMG), IMG),
    "maxpool_pads_strides": (lambda: image_model([N("MaxPool", ["x"], kernel_shape=[3, 2], pads=[1, 0, 1, 1],
                                              strides=[2, 1])], {}, IMG), IMG),
    "maxpool_default_stride_1": (lambda: image_model([N("MaxPool", ["x"], kernel_shape=[2, 2])], {}, IMG), IMG),
    "avgpool_exclude_pad_default": (lambda: image_model([N("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 0],
                                                     strides=[2, 2])], {}, IMG), IMG),
    "avgpool_include_pad": (lambda: image_model([N("AveragePool", ["x"], kernel_shape=[2, 3], pads=[1, 1, 0, 1],
                                             count_include_pad=1)], {}, IMG), IMG),
    "batchnorm_after_conv": (lambda: image_model([N("Conv", ["x", "W", "b"], ["c"]), N("BatchNormalization",
                                                                             ["c", "g", "be", "mu", "var"], epsilon=1e-3)],
                                           {"W": WC, "b": BC, "g": RNG.normal(size=4), "be": RNG.normal(size=4),
                                            "mu": RNG.normal(size=4), "var": RNG.uniform(0.5, 2, size=4)}, IMG), IMG),
    "batchnorm_after_gemm": (lambda: model([N("Gemm", ["x", "W"], ["h"]), N("BatchNormalization",
                                                                          ["h", "g", "be", "mu", "var"])],
                                           {"W": W45, "g": RNG.normal(size=5), "be": RNG.normal(size=5),
                                            "mu": RNG.normal(size=5), "var": RNG.uniform(0.5, 2, size=5)}, (4,)), (4,)),
    "batchnorm_at_image_input": (lambda: image_model([N("BatchNormalization", ["x", "g", "be", "mu", "var"], ["h"]),
                                                N("Relu", ["h"])],
                                               {"g": RNG.normal(size=2), "be": RNG.normal(size=2),
                                                "mu": RNG.normal(size=2), "var": RNG.uniform(0.5, 2, size=2)}, IMG), IMG),
    "batchnorm_at_vector_input": (lambda: model([N("BatchNormalization", ["x", "g", "be", "mu", "var"])],
                                                {"g": RNG.normal(size=4), "be": RNG.normal(size=4),
                                                 "mu": RNG.normal(size=4), "var": RNG.uniform(0.5, 2, size=4)}, (4,)),
                                  (4,)),
    # graphs (residual joins and gates) import as refattr.Graph; tests/interop/test_onnx_graphs.py has more
    "residual": (lambda: model([N("Relu", ["x"], ["r"]), N("Add", ["x", "r"])], {}, (4,)), (4,)),
    "second_dynamic_input": (lambda: model([N("Relu", ["x"], ["r"]), N("Sigmoid", ["r"], ["s"]), N("Tanh", ["r"], ["t"]),
                                            N("Mul", ["s", "t"])], {}, (4,)), (4,)),
    "identity_dropout_constant": (lambda: model([helper.make_node("Constant", [], ["r"], value_float=0.3),
                                                 N("Identity", ["x"], ["i"]), N("Dropout", ["i", "r"], ["d"]),
                                                 N("Gemm", ["d", "W"])], {"W": W45}, (4,)), (4,)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_round_trip(name):
    if name == "swish_op_opset24" and onnx.defs.onnx_opset_version() < 24:
        pytest.skip("the Swish operator needs onnx with opset 24")
    build, shape = CASES[name]
    check(build(), shape)


def test_layer_mapping_details():
    assert isinstance(from_onnx(CASES["swish_beta"][0]()).layers[0], Swish)
    assert from_onnx(CASES["swish_beta"][0]()).layers[0].beta == 1.5
    conv = from_onnx(CASES["conv_pads_strides_dilations_group"][0]()).layers[0]
    assert isinstance(conv, Conv2D) and conv.padding == (1, 2, 0, 1) and conv.groups == 2  # ONNX [t, l, b, r]
    pool = from_onnx(CASES["avgpool_exclude_pad_default"][0]()).layers[0]
    assert isinstance(pool, AvgPool2D) and pool.count_include_pad is False
    assert from_onnx(CASES["maxpool_default_stride_1"][0]()).layers[0].stride == (1, 1)
    # BatchNormalization folds into the Conv before it
    assert [type(la) for la in from_onnx(CASES["batchnorm_after_conv"][0]()).layers] == [Conv2D, Flatten]
    assert [type(la) for la in from_onnx(CASES["matmul_add"][0]()).layers] == [Dense]
    assert [type(la) for la in from_onnx(CASES["reshape_0_minus1"][0]()).layers][-1] is Flatten


def test_same_padding_with_stride_needs_the_input_size():
    m = image_model([N("Conv", ["x", "W"], auto_pad="SAME_UPPER", strides=[2, 2])], {"W": WC}, ("C", "H", "W"))
    with pytest.raises(UnsupportedLayerError, match="input_shape"):
        from_onnx(m)
    net = from_onnx(m, input_shape=(2, 7, 6))
    x = RNG.normal(size=(2, 2, 7, 6))
    assert relative_difference(net(x), onnx_forward(m, x, engine="reference")) <= EXACT_RTOL


REFUSED = {
    "gemm_transA": (lambda: model([N("Gemm", ["x", "W"], transA=1)], {"W": W45}, (4,)), "node 0 \\(Gemm.*transA"),
    "hardswish": (lambda: model([N("HardSwish", ["x"])], {}, (4,), opset=14), "not swish"),
    "x_times_hardsigmoid": (lambda: model([N("HardSigmoid", ["x"], ["s"]), N("Mul", ["x", "s"])], {}, (4,)),
                            "HardSwish"),
    "softsign": (lambda: model([N("Gemm", ["x", "W"], ["h"]), N("Softsign", ["h"])], {"W": W45}, (4,)),
                 "node 1 \\(Softsign\\): no refattr layer"),
    "reshape_merges_the_batch": (lambda: model([N("Reshape", ["x", "s"])], {"s": np.array([-1], dtype=np.int64)}, IMG),
                                 "Reshape to \\[-1\\]; refattr keeps the batch axis"),
    "maxpool_ceil": (lambda: model([N("MaxPool", ["x"], kernel_shape=[2, 2], ceil_mode=1)], {}, IMG), "ceil_mode"),
    "maxpool_dilation": (lambda: model([N("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], {}, IMG),
                         "dilations"),
    "maxpool_indices_used": (lambda: model([N("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])], {}, IMG,
                                           outputs=("y", "i")), "one graph output"),
    "batchnorm_training": (lambda: model([N("BatchNormalization", ["x", "g", "be", "mu", "var"], training_mode=1)],
                                         {k: np.ones(4) for k in ("g", "be", "mu", "var")}, (4,), opset=15),
                           "training mode"),
    "dropout_training": (lambda: model([N("Dropout", ["x", "r", "t"])], {"r": np.array(0.5),
                                                                        "t": np.array(True)}, (4,)), "training_mode"),
    "mul_by_a_vector": (lambda: model([N("Relu", ["x"], ["r"]), N("Mul", ["r", "k"])], {"k": np.ones(4)}, (4,)),
                        "node 1 \\(Mul\\): Mul by a constant that is not a single number"),
    "add_without_linear": (lambda: model([N("Relu", ["x"], ["r"]), N("Add", ["r", "b"])], {"b": B5[:4]}, (4,)),
                           "Add is supported only"),
    "two_outputs": (lambda: model([N("Relu", ["x"], ["y"]), N("Tanh", ["x"], ["z"])], {}, (4,), outputs=("y", "z")),
                    "one graph output"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_graphs(name):
    build, pattern = REFUSED[name]
    with pytest.raises(UnsupportedLayerError, match=pattern):
        from_onnx(build())


def _export(module, example):
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False; the default exporter needs onnxscript) is deprecated.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(example),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    return onnx.load_from_string(buffer.getvalue())


def test_torch_exported_cnn_with_batchnorm():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 3, 2), nn.Tanh(), nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
                           nn.Flatten(), nn.Linear(3 * 3 * 3, 5), nn.BatchNorm1d(5), nn.SiLU(), nn.Linear(5, 2)).double()
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(-2, 2)
    module.eval()
    x = RNG.normal(size=(3, 2, 6, 6))
    exported = _export(module, x)
    net = check(exported, (2, 6, 6))
    from refattr.interop import torch_forward

    assert relative_difference(net(x), torch_forward(module, x)) <= EXACT_RTOL
    assert MaxPool2D in [type(la) for la in net.layers]


def test_torch_exported_swish_mlp():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(4)
    module = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 3)).double().eval()
    x = RNG.normal(size=(3, 4))
    net = check(_export(module, x), (4,))
    assert [type(la).__name__ for la in net.layers] == ["Dense", "Swish", "Dense", "Swish", "Dense"]
    from refattr.interop import torch_forward

    assert relative_difference(net(x), torch_forward(module, x)) <= EXACT_RTOL


def test_onnx_forward_auto_falls_back_to_the_reference_evaluator_for_float64_conv():
    m = CASES["conv_valid"][0]()
    x = RNG.normal(size=(2,) + IMG)
    _, engine = onnx_forward(m, x, return_engine=True)
    assert engine == "onnx.reference"
    _, engine = onnx_forward(CASES["gemm_no_bias"][0](), RNG.normal(size=(2, 4)), return_engine=True)
    assert engine == "onnxruntime"


def test_model_from_path_and_bytes(tmp_path):
    m = CASES["relu_tanh_sigmoid"][0]()
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    x = RNG.normal(size=(2, 4))
    assert np.array_equal(from_onnx(str(path))(x), from_onnx(m.SerializeToString())(x))
