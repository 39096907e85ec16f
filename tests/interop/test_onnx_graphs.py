"""from_onnx on graphs: models written in PyTorch, exported with torch.onnx.export (the TorchScript
exporter, dynamo=False), imported as refattr.Graph (or Sequential for a chain).

Every expected value comes from PyTorch itself: the module's float64 forward and torch.autograd for
gradients, and from_torch's import of the same module (its forward). The tolerance is EXACT_RTOL
(1e-12: the same float64 operations in another order; the exporter folds BatchNorm into the conv
before it, which reorders them).
"""

import importlib.util
import io
import pathlib
import warnings

import numpy as np
import pytest

from refattr import (GELU, AdaptiveAvgPool1D, AdaptiveAvgPool2D, Add, Affine, AvgPool1D, Concat, Conv1D, Conv2D, Dense,
                     Flatten, Graph, LogSoftmax, MaxPool1D, MaxPool2D, Mul, Permute, Reshape, Sequential, Softmax, Softplus, Swish,
                     gradient)
from refattr.errors import ArgumentError, ImportMismatchError, UnsupportedLayerError
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
nn = torch.nn
F = nn.functional
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refattr.interop import from_onnx, from_torch, onnx_forward  # noqa: E402
from refattr.interop import onnx_model  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402

_spec = importlib.util.spec_from_file_location("users_models", pathlib.Path(__file__).with_name("users_models.py"))
users_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_models)


def _ready(model, seed=0):
    """float64, eval mode, BatchNorms with non-trivial running statistics and affine parameters."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 4 - 2)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.double().eval()


def _export(model, shapes, opset=17, dynamic=True):
    """The ONNX model of ``model`` (inputs x0, x1, ... of example shapes ``shapes``; output y)."""
    names = [f"x{i}" for i in range(len(shapes))]
    example = tuple(torch.zeros((3,) + s, dtype=torch.float64) for s in shapes)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the TorchScript exporter (dynamo=False) is deprecated
        torch.onnx.export(model, example, buffer, dynamo=False, opset_version=opset, input_names=names,
                          output_names=["y"], dynamic_axes={n: {0: "N"} for n in names} if dynamic else None)
    return onnx.load_from_string(buffer.getvalue())


def _inputs(shapes, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=(n,) + s) for s in shapes)


def _torch_gradient(model, xs, target):
    """d output[:, target] / d x by torch.autograd, one array per input."""
    tensors = [torch.tensor(x, requires_grad=True) for x in xs]
    model(*tensors)[:, target].sum().backward()
    return tuple(t.grad.numpy() for t in tensors)


def _check(model, shapes, target=0, traced=True, **export):
    """Export and import; forward equals torch's float64 forward, gradient equals torch.autograd,
    and (``traced``) from_torch's import of the same module computes the same function. Returns
    the import."""
    proto = _export(model, shapes, **export)
    net = from_onnx(proto)          # checked against onnxruntime / onnx.reference on a probe batch too
    xs = _inputs(shapes)
    x = xs[0] if len(xs) == 1 else xs
    with torch.no_grad():
        expected = model(*(torch.from_numpy(a) for a in xs)).numpy()
    assert relative_difference(net(x), expected) <= EXACT_RTOL
    values = gradient(net, x, target=target).values
    for got, want in zip(values if len(xs) > 1 else (values,), _torch_gradient(model, xs, target)):
        assert relative_difference(got, want) <= EXACT_RTOL
    if traced:
        other = from_torch(model, input_shape=shapes[0] if len(shapes) == 1 else list(shapes))
        assert relative_difference(net(x), other(x)) <= EXACT_RTOL
    return net


def _types(net):
    return [type(layer) for layer in net.layers]


# The models of issue 17 ------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, written out: conv-BN-ReLU-conv-BN, + shortcut, ReLU."""

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def ResNet():
    return users_models.SmallResNet(BasicBlock)


def test_resnet():
    net = _check(_ready(ResNet()), [(2, 8, 8)])
    assert isinstance(net, Graph)
    types = _types(net)
    # every BatchNorm folded into its conv (the exporter does it); two residual joins; GAP -> AdaptiveAvgPool2D(1)
    assert types.count(Add) == 2 and types.count(Conv2D) == 6 and AdaptiveAvgPool2D in types
    assert net.layers[types.index(AdaptiveAvgPool2D)].output_size == (1, 1)


class Inception(nn.Module):
    """Two branches (1x1 conv; 1x1 then 3x3 conv) joined by torch.cat along the channels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b1, self.b2 = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(7 * 3 * 3, 2)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b2(F.relu(self.b1(x))))], dim=1)
        y = F.max_pool2d(y, 2)
        return self.fc(y.view(y.size(0), -1))


@pytest.mark.parametrize("dynamic", [True, False], ids=["batch_symbolic", "batch_fixed"])
def test_inception(dynamic):
    """With a symbolic batch, x.view(x.size(0), -1) exports as Shape -> Gather -> Unsqueeze -> Concat
    -> Reshape; with a fixed batch (3) as a Reshape to the constant [3, -1]."""
    net = _check(_ready(Inception()), [(2, 6, 6)], dynamic=dynamic)
    concat = next(layer for layer in net.layers if isinstance(layer, Concat))
    assert concat.axis == 1 and Flatten in _types(net)


class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, 2)

    def forward(self, x):
        h = x + F.relu(self.l1(x))
        h = h - F.relu(self.l2(h))
        return self.l3(F.relu(h))


def test_residual_mlp():
    net = _check(_ready(ResidualMLP()), [(5,)])
    adds = [layer for layer in net.layers if isinstance(layer, Add)]
    assert [a.weights for a in adds] == [None, (1.0, -1.0)]      # + and - (Sub)


class DNA(nn.Module):
    """A genomics CNN on one-hot DNA (4 x 20): Conv1d, ReLU, MaxPool1d, BatchNorm1d after the ReLU
    (not foldable: its own per-channel affine layer), AvgPool1d, global average pooling, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.pool = nn.MaxPool1d(2)
        self.bn = nn.BatchNorm1d(6)
        self.conv2 = nn.Conv1d(6, 5, 3, stride=2, dilation=2)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h = self.bn(self.pool(F.relu(self.conv(x))))
        h = F.avg_pool1d(F.relu(self.conv2(h)), 2, count_include_pad=True)
        return self.fc(torch.flatten(F.adaptive_avg_pool1d(h, 1), 1))


def test_conv1d_on_one_hot_dna():
    net = _check(_ready(DNA()), [(4, 20)])
    types = _types(net)
    assert types.count(Conv1D) == 2 and MaxPool1D in types and AvgPool1D in types
    assert isinstance(net, Sequential)          # a chain
    bn = net.layers[types.index(MaxPool1D) + 1]
    assert isinstance(bn, Affine) and bn.scale.shape == (6,)      # BatchNorm1d, one scale per channel
    # one-hot input, as the model's users give it
    x = np.eye(4)[np.random.default_rng(5).integers(0, 4, size=(2, 20))].transpose(0, 2, 1)
    model = _ready(DNA())
    with torch.no_grad():
        np.testing.assert_allclose(net(x), model(torch.from_numpy(x)).numpy(), rtol=EXACT_RTOL, atol=0)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)
        self.head = nn.Linear(8, 2)

    def forward(self, x1, x2):
        a, b = torch.tanh(self.a(x1)), F.leaky_relu(self.b(x2), 0.25)   # a slope float32 holds exactly (ONNX stores float32)
        return self.head(torch.cat([a + b, a], dim=-1))


def test_two_inputs():
    net = _check(_ready(TwoInputs()), [(3,), (2,)], target=1)
    assert net.inputs == ("x0", "x1") and net.input_shape == ((3,), (2,))


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.sigmoid(self.a(x)) * self.b(x))


def test_gate():
    net = _check(_ready(Gate()), [(4,)])
    assert Mul in _types(net) and Swish not in _types(net)


class Head(nn.Module):
    def __init__(self, last):
        super().__init__()
        self.l1, self.l2, self.last = nn.Linear(4, 5), nn.Linear(5, 3), last

    def forward(self, x):
        return self.last(self.l2(F.silu(self.l1(x))))


@pytest.mark.parametrize("last, cls", [(nn.Softmax(dim=1), Softmax), (nn.LogSoftmax(dim=-1), LogSoftmax)],
                         ids=["softmax", "log_softmax"])
def test_softmax_heads(last, cls):
    net = _check(_ready(Head(last)), [(4,)], target=2)
    assert _types(net) == [Dense, Swish, Dense, cls]           # x * Sigmoid(x) is swish


def test_softmax_below_opset_13_is_refused():
    """Softmax at opset 11 flattens each example from its axis on: refused, saying why."""
    proto = _export(_ready(Head(nn.Softmax(dim=1))), [(4,)], opset=11)
    with pytest.raises(UnsupportedLayerError, match=r"\(Softmax.*opset 11: before opset 13 it flattens"):
        from_onnx(proto)


class Activations(nn.Module):
    """Softplus(beta=2) (exported as Mul -> Softplus -> Div), GELU (the Erf pattern below opset 20),
    ELU and a residual join. (SELU's ONNX constants are float32, 3e-8 from torch's: its ONNX import
    is tested against ONNX in tests/layers/test_elu_selu_softplus.py.)"""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        self.softplus = nn.Softplus(beta=2.0)

    def forward(self, x):
        h = self.softplus(self.l1(x))
        h = F.gelu(self.l2(h)) + F.elu(h, 0.5)
        return self.l3(torch.tanh(h))


@pytest.mark.parametrize("opset", [17, 20])
def test_softplus_beta_and_gelu(opset):
    """At opset 20 GELU is the Gelu operator, below it the pattern 0.5 x (1 + erf(x / sqrt 2))."""
    net = _check(_ready(Activations()), [(4,)], opset=opset)
    softplus = next(layer for layer in net.layers if isinstance(layer, Softplus))
    assert (softplus.beta, softplus.threshold) == (2.0, float("inf"))   # ONNX's Softplus never switches
    assert GELU in _types(net) and net.layers[_types(net).index(GELU)].approximate == "none"


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(x.reshape(x.shape[0], 2, 3)).unsqueeze(1)       # (N, 1, 2, 3)
        h = torch.flatten(h.squeeze(1), 1)
        return self.l2(torch.tanh(self.l1(h)) + h)


def test_reshape_squeeze_unsqueeze_keep_the_batch_axis():
    net = _check(_ready(Shapes()), [(6,)], traced=False)    # from_torch has no squeeze / unsqueeze
    assert Reshape in _types(net)


# BatchNormalization anywhere -----------------------------------------------------------------------
def _model(nodes, inits, inputs, outputs=("y",), opset=17):
    """A float64 ONNX model; ``inputs``: name -> example shape (the batch axis N symbolic)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.DOUBLE, ["N", *s]) for k, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.DOUBLE, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


N = helper.make_node
RNG = np.random.default_rng(11)
BN = {"g": RNG.uniform(-2, 2, 3), "be": RNG.normal(size=3), "mu": RNG.normal(size=3), "v": RNG.uniform(0.5, 2, 3)}


def _bn_by_hand(z, axis=1):
    shape = [1] * z.ndim
    shape[axis] = -1
    g, be, mu, v = (BN[k].reshape(shape) for k in ("g", "be", "mu", "v"))
    return g * (z - mu) / np.sqrt(v + 1e-5) + be


def test_batchnorm_on_a_conv_output_read_twice_is_its_own_layer():
    """y = BN(conv(x)) + conv(x): the conv's output has another reader, so BN cannot fold into it."""
    w = RNG.normal(size=(3, 2, 3))
    m = _model([N("Conv", ["x", "w"], ["c"]), N("BatchNormalization", ["c", "g", "be", "mu", "v"], ["n"]),
                N("Add", ["n", "c"], ["s"]), N("Flatten", ["s"], ["y"])], {"w": w, **BN}, {"x": (2, 7)})
    net = from_onnx(m)
    assert _types(net) == [Conv1D, Affine, Add, Flatten]
    x = RNG.normal(size=(2, 2, 7))
    conv = np.stack([sum(np.convolve(x[n, c], w[o, c][::-1], mode="valid") for c in range(2)) for n in range(2)
                     for o in range(3)]).reshape(2, 3, 5)     # cross-correlation, written with numpy
    np.testing.assert_allclose(net(x), (_bn_by_hand(conv) + conv).reshape(2, -1), rtol=EXACT_RTOL, atol=1e-15)


def test_batchnorm_after_a_join_on_images():
    m = _model([N("Relu", ["x"], ["r"]), N("Add", ["x", "r"], ["s"]),
                N("BatchNormalization", ["s", "g", "be", "mu", "v"], ["n"]), N("GlobalAveragePool", ["n"], ["p"]),
                N("Flatten", ["p"], ["y"])], BN, {"x": (3, 2, 2)})
    net = from_onnx(m)
    x = RNG.normal(size=(2, 3, 2, 2))
    expected = _bn_by_hand(x + np.maximum(x, 0)).mean(axis=(2, 3))
    np.testing.assert_allclose(net(x), expected, rtol=EXACT_RTOL, atol=1e-15)


def test_sum_of_three_and_a_graph_output_read_by_nothing_else():
    m = _model([N("Relu", ["x"], ["r"]), N("Sigmoid", ["x"], ["s"]), N("Sum", ["x", "r", "s"], ["y"])], {},
               {"x": (4,)})
    net = from_onnx(m)
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(net(x), x + np.maximum(x, 0) + 1 / (1 + np.exp(-x)), rtol=EXACT_RTOL)


def test_two_graph_inputs_probe_each_and_onnx_forward_takes_a_tuple():
    m = _model([N("Mul", ["a", "b"], ["p"]), N("Concat", ["p", "a"], ["y"], axis=1)], {}, {"a": (2,), "b": (2,)})
    net = from_onnx(m)
    a, b = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    np.testing.assert_array_equal(net((a, b)), np.concatenate([a * b, a], axis=1))
    np.testing.assert_array_equal(onnx_forward(m, (a, b)), np.concatenate([a * b, a], axis=1))
    with pytest.raises(ArgumentError, match="2 graph inputs \\['a', 'b'\\]; pass a tuple"):
        onnx_forward(m, a)
    assert from_onnx(m, input_shape=[(2,), (2,)]).input_shape == ((2,), (2,))
    with pytest.raises(ArgumentError, match="one example shape per input"):
        from_onnx(m, input_shape=(2,))


# Refusals name the node -----------------------------------------------------------------------------
REFUSED = {
    "mul_by_a_vector": ([N("Relu", ["x"], ["r"]), N("Mul", ["r", "k"], ["y"])], {"k": np.array([2.0, 3.0])},
                        r"node 1 \(Mul\): Mul by a constant that is not a single number"),
    "div_of_a_constant": ([N("Relu", ["x"], ["r"]), N("Div", ["k", "r"], ["y"])], {"k": np.array(2.0)},
                          r"node 1 \(Div\): Div is imported only as a computed tensor divided by a scalar"),
    "erf_alone": ([N("Erf", ["x"], ["y"])], {}, r"node 0 \(Erf\): Erf is imported only inside a pattern"),
    "gelu_pattern_with_another_constant": (
        [N("Div", ["x", "c"], ["u"]), N("Erf", ["u"], ["e"]), N("Add", ["e", "one"], ["s"]),
         N("Mul", ["x", "s"], ["p"]), N("Mul", ["p", "half"], ["y"])],
        {"c": np.array(1.5), "one": np.array(1.0), "half": np.array(0.5)}, r"node 1 \(Erf\)"),
    "sub_of_a_vector": ([N("Relu", ["x"], ["r"]), N("Sub", ["r", "k"], ["y"])], {"k": np.array([1.0, 2.0])},
                        r"node 1 \(Sub\): Sub by a constant that is not a single number"),
    "concat_along_the_batch": ([N("Relu", ["x"], ["r"]), N("Concat", ["x", "r"], ["y"], axis=0)], {},
                               r"node 1 \(Concat\): Concat along axis 0"),
    "flatten_axis_2": ([N("Flatten", ["x"], ["y"], axis=2)], {}, r"node 0 \(Flatten\): axis=2"),
    "unsqueeze_batch": ([N("Unsqueeze", ["x", "ax"], ["u"]), N("Flatten", ["u"], ["y"])],
                        {"ax": np.array([0])}, r"node 0 \(Unsqueeze\): Unsqueeze of axis 0"),
    "squeeze_without_axes": ([N("Squeeze", ["x"], ["y"])], {}, r"node 0 \(Squeeze\): Squeeze without axes"),
    "reshape_merging_examples": ([N("Reshape", ["x", "s"], ["y"])], {"s": np.array([-1, 2])},
                                 r"node 0 \(Reshape\): Reshape to \[-1, 2\]; refattr keeps the batch axis"),
    "conv_3d": ([N("Conv", ["x", "w"], ["y"])], {"w": np.ones((1, 4, 1, 1, 1))}, r"node 0 \(Conv\): weight of shape"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_name_the_node(name):
    nodes, inits, pattern = REFUSED[name]
    with pytest.raises(UnsupportedLayerError, match=pattern):
        from_onnx(_model(nodes, inits, {"x": (4,)}))


def test_the_import_check_covers_graphs(monkeypatch):
    """A plausible bug in the join code (Sub read as Add) is caught by the probe on a graph."""
    m = _model([N("Relu", ["x"], ["r"]), N("Sub", ["x", "r"], ["y"])], {}, {"x": (4,)})
    from_onnx(m)
    real = onnx_model._Importer.join

    def as_add(self, node, layer, dynamic):
        return real(self, node, Add if node.op_type == "Sub" else layer, dynamic)

    monkeypatch.setattr(onnx_model._Importer, "join", as_add)
    with pytest.raises(ImportMismatchError, match="differs from the ONNX model"):
        from_onnx(m)


def test_a_chain_stays_a_sequential():
    net = from_onnx(_model([N("Relu", ["x"], ["r"]), N("Identity", ["r"], ["i"]), N("Tanh", ["i"], ["y"])], {},
                           {"x": (4,)}))
    assert isinstance(net, Sequential) and [type(la).__name__ for la in net.layers] == ["ReLU", "Tanh"]


def test_arithmetic_with_a_scalar_imports_as_affine():
    # y = 0.5 - ((2 relu(x) - 1) / 4 + 0.25), written with Mul, Sub, Div, Add of scalar constants
    # (the shapes () and (1,) both hold one number); the closed form is computed here with NumPy
    m = _model([N("Relu", ["x"], ["r"]), N("Mul", ["k2", "r"], ["m"]), N("Sub", ["m", "one"], ["s"]),
                N("Div", ["s", "four"], ["d"]), N("Add", ["d", "q"], ["a"]), N("Sub", ["half", "a"], ["y"])],
               {"k2": np.array(2.0), "one": np.array([1.0]), "four": np.array(4.0), "q": np.array(0.25),
                "half": np.array(0.5)}, {"x": (3,)})
    net = from_onnx(m)
    affine = [layer for layer in net.layers if type(layer).__name__ == "Affine"]
    assert [(a.scale, a.shift) for a in affine] == [(2.0, 0.0), (1.0, -1.0), (0.25, 0.0), (1.0, 0.25), (-1.0, 0.5)]
    x = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(net(x), 0.5 - ((2 * np.maximum(x, 0) - 1) / 4 + 0.25), rtol=1e-15, atol=1e-16)


class Reductions(nn.Module):
    """One-hot DNA stored (N, L, 4): transposed, then the reductions users write for global pooling."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(4, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x.transpose(1, 2)))
        return self.fc(h.mean(-1)) + self.fc(h.sum(-1)) - self.fc(h.amax(-1)) + self.fc(h.max(dim=-1)[0])


class ImageReductions(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(6, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(torch.cat([h.mean((2, 3)), h.amax((-2, -1))], dim=1))


@pytest.mark.parametrize("opset", [17, 18])       # 18: ReduceMean / ReduceMax take their axes as an input
def test_reductions_and_transpose(opset):
    """ReduceMean / ReduceSum / ReduceMax over the spatial axes and Transpose keeping the batch axis:
    forward and gradient against torch, and the same function as from_torch's import."""
    net = _check(_ready(Reductions()), [(10, 4)], opset=opset)
    types = {type(layer) for layer in net.layers}
    assert {Permute, AdaptiveAvgPool1D, MaxPool1D, Affine} <= types
    image = _check(_ready(ImageReductions()), [(2, 5, 6)], opset=opset)
    assert {AdaptiveAvgPool2D, MaxPool2D} <= {type(layer) for layer in image.layers}


def test_reductions_that_mix_examples_or_channels_are_refused():
    class OverChannels(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 3, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x)).mean(1)

    with pytest.raises(UnsupportedLayerError, match=r"ReduceMean over axes \[1\].*global pooling"):
        from_onnx(_export(_ready(OverChannels()), [(4, 6)]))

    class BatchFirst(nn.Module):
        def forward(self, x):
            return x.transpose(0, 1).reshape(x.shape[1], -1)

    with pytest.raises(UnsupportedLayerError, match=r"moves the batch axis"):
        from_onnx(_export(BatchFirst(), [(3, 2)], dynamic=False))
