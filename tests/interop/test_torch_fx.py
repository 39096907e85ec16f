"""from_torch on modules that are not nn.Sequential: traced with torch.fx into a refattr.Graph.

Every expected value comes from PyTorch itself: the module's float64 forward (torch_forward) and
torch.autograd for gradients; DeepLIFT's summation-to-delta is held against the module's own
output difference t(x) - t(x'), not against refattr's completeness_gap. The tolerance is
EXACT_RTOL (1e-12: the same float64 operations in another order; BatchNorm folding reorders them).
"""

import importlib.util
import pathlib

import numpy as np
import pytest

from refattr import Add, Affine, Concat, Conv2D, Dense, Flatten, Graph, Mul, Reshape, deeplift, gradient
from refattr.errors import ArgumentError, ImportMismatchError, UnsupportedLayerError
from refattr.layers.registry import registered
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from refattr.interop import from_torch, torch_forward  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402

_spec = importlib.util.spec_from_file_location("users_models", pathlib.Path(__file__).with_name("users_models.py"))
users_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_models)


def _bn(module, seed):
    """Non-trivial running statistics and affine parameters (eval mode uses them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        n = module.num_features
        module.running_mean.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1)
        module.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
        module.weight.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 4 - 2)
        module.bias.copy_(torch.rand(n, generator=g, dtype=torch.float64) - 0.5)
    return module


def _ready(model, seed=0):
    """float64, eval mode, BatchNorms with non-trivial statistics."""
    torch.manual_seed(seed)
    for i, m in enumerate(model.modules()):
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _bn(m, i)
    return model.double().eval()


def _inputs(shapes, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=(n,) + s) for s in shapes)


def _torch_gradient(model, xs, target):
    """d output[:, target] / d x by torch.autograd, one array per input."""
    tensors = [torch.tensor(x, requires_grad=True) for x in xs]
    model(*tensors)[:, target].sum().backward()
    return tuple(t.grad.numpy() for t in tensors)


def _check_everything(model, shapes, target=0, maxpool_rule=None):
    """Import; forward equals torch float64 to 1e-12; gradient equals torch.autograd; DeepLIFT
    (both rules) sums to the module's own t(x) - t(0). Returns the imported graph."""
    net = from_torch(model, input_shape=shapes[0] if len(shapes) == 1 else shapes)
    assert isinstance(net, Graph)
    xs = _inputs(shapes)
    x = xs[0] if len(xs) == 1 else xs
    with torch.no_grad():
        expected = model(*(torch.from_numpy(a) for a in xs)).numpy()
    assert relative_difference(net(x), expected) <= EXACT_RTOL

    expected_gradient = _torch_gradient(model, xs, target)
    values = gradient(net, x, target=target).values
    for got, want in zip(values if len(xs) > 1 else (values,), expected_gradient):
        assert relative_difference(got, want) <= EXACT_RTOL

    with torch.no_grad():
        at_zero = model(*(torch.zeros((1,) + s, dtype=torch.float64) for s in shapes)).numpy()[0, target]
    delta = expected[:, target] - at_zero     # t(x) - t(x'), the module's own numbers
    for rule in ("rescale", "reveal_cancel"):
        result = deeplift(net, x, target=target, rule=rule, maxpool_rule=maxpool_rule)
        parts = result.values if len(xs) > 1 else (result.values,)
        total = sum(p.reshape(p.shape[0], -1).sum(axis=1) for p in parts)
        scale = max(float(np.max(np.abs(delta))), float(np.max(np.abs(expected))))
        assert np.max(np.abs(total - delta)) <= EXACT_RTOL * scale, rule
    return net


def BasicBlock(c_in, c_out, stride=1):
    """torchvision's ResNet BasicBlock written out, one ReLU module used twice with ``out += identity``
    in place, as torchvision writes it (users_models.BasicBlock)."""
    return users_models.BasicBlock(c_in, c_out, stride, shared_relu=True)


def ResNet():
    return users_models.SmallResNet(BasicBlock)


class Head(nn.Module):
    """A block then a linear head (a block alone returns an image)."""

    def __init__(self, block, features):
        super().__init__()
        self.block, self.fc = block, nn.Linear(features, 2)

    def forward(self, x):
        return self.fc(self.block(x).flatten(1))


@pytest.mark.parametrize("downsample", [False, True])
def test_basic_block(downsample):
    block = BasicBlock(2, 3, stride=2) if downsample else BasicBlock(2, 2)
    model = _ready(Head(block, 3 * 3 * 3 if downsample else 2 * 5 * 5))
    net = _check_everything(model, [(2, 5, 5)], target=1)
    kinds = [type(node.layer) for node in net.nodes]
    # every BatchNorm follows a conv whose value nothing else reads: all folded (no 1x1 depthwise conv)
    assert kinds.count(Conv2D) == (3 if downsample else 2), net
    assert kinds.count(Add) == 1
    names = [node.name for node in net.nodes]
    assert "block_bn1" not in names and "block_bn2" not in names


def test_resnet():
    # the max-pool needs a DeepLIFT rule; delta_routing keeps summation-to-delta
    _check_everything(_ready(ResNet()), [(2, 8, 8)], target=2, maxpool_rule="delta_routing")


class BatchNormTwoReaders(nn.Module):
    """The Linear's value is read by the BatchNorm and by the sum: the BatchNorm cannot be folded."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(torch.tanh(self.bn(h)) + h)


def test_batchnorm_with_another_reader_stays_a_layer():
    model = _ready(BatchNormTwoReaders())
    net = _check_everything(model, [(3,)])
    bn = net.nodes[[node.name for node in net.nodes].index("bn")].layer
    # its own Affine: scale_c = gamma_c / sqrt(var_c + eps), shift_c = beta_c - mean_c scale_c
    m = model.bn
    scale = (m.weight / torch.sqrt(m.running_var + m.eps)).detach().numpy()
    assert isinstance(bn, Affine)
    np.testing.assert_allclose(bn.scale, scale, rtol=EXACT_RTOL)
    np.testing.assert_allclose(bn.shift, (m.bias - m.running_mean * torch.from_numpy(scale)).detach().numpy(),
                               rtol=EXACT_RTOL, atol=EXACT_RTOL)


class BatchNormOnSequences(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d on (N, C, L): the BatchNorm cannot fold (a ReLU is between)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv1d(4, 3, 3), nn.BatchNorm1d(3), nn.Linear(3 * 6, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.bn(F.relu(self.conv(x))), 1))


def test_a_batchnorm1d_on_sequences_stays_a_per_channel_layer():
    net = _check_everything(_ready(BatchNormOnSequences()), [(4, 8)])
    assert any(isinstance(node.layer, Affine) and node.layer.scale.shape == (3,) for node in net.nodes)


class Inception(nn.Module):
    """Two branches written with F.relu, joined by torch.cat, flattened by x.view."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], dim=1)
        return self.fc(y.view(y.size(0), -1))


def test_functional_relu_cat_and_view():
    net = _check_everything(_ready(Inception()), [(2, 4, 4)], target=2)
    kinds = [type(node.layer).__name__ for node in net.nodes]
    assert kinds.count("ReLU") == 2 and kinds.count("Concat") == 1 and kinds.count("Flatten") == 1, net


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Conv2d(1, 2, 3)
        self.vector = nn.Linear(3, 4)
        self.head = nn.Linear(2 * 2 * 2 + 4, 2)

    def forward(self, x1, x2):
        a = torch.flatten(torch.tanh(self.image(x1)), 1)
        b = F.silu(self.vector(x2))
        return self.head(torch.cat((a, b), 1))


def test_two_inputs():
    net = _check_everything(_ready(TwoInputs()), [(1, 4, 4), (3,)], target=1)
    assert net.inputs == ("x1", "x2")


def test_two_inputs_need_their_shapes():
    with pytest.raises(ArgumentError, match=r"input_shape: .*2 inputs \['x1', 'x2'\]"):
        from_torch(_ready(TwoInputs()))
    with pytest.raises(ArgumentError, match="one example shape per input"):
        from_torch(_ready(TwoInputs()), input_shape=(3,))


class Gate(nn.Module):
    """A GLU-style gate: sigmoid(a) * b."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(4, 1)

    def forward(self, x):
        return self.out(torch.sigmoid(self.a(x)) * self.b(x))


def test_gate():
    net = _check_everything(_ready(Gate()), [(3,)])
    assert sum(isinstance(node.layer, Mul) for node in net.nodes) == 1


class Nested(nn.Module):
    """A Sequential inside a traced module: one node per child."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5),
                                      nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.Tanh()))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.features(x))


def test_nested_sequential_dropout_identity_and_folding():
    net = _check_everything(_ready(Nested()), [(3,)])
    # Linear+BatchNorm folded, Dropout and Identity gone: Linear, ReLU, Linear, Tanh, Linear
    assert [type(node.layer).__name__ for node in net.nodes] == ["Dense", "ReLU", "Dense", "Tanh", "Dense"]
    assert [node.name for node in net.nodes][:2] == ["features_0", "features_2"]


class Functional(nn.Module):
    """The functional and method forms, one after another (the call in ``forward``)."""

    def __init__(self, call, features=4):
        super().__init__()
        self.fc1, self.fc2, self.call = nn.Linear(3, 4), nn.Linear(features, 2), call

    def forward(self, x):
        return self.fc2(self.call(self.fc1(x)))


FUNCTIONAL = {
    "F.relu": lambda h: F.relu(h),
    "torch.relu": lambda h: torch.relu(h),
    "x.relu": lambda h: h.relu(),
    "F.gelu": lambda h: F.gelu(h),
    "F.gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
    "torch.tanh": lambda h: torch.tanh(h),
    "x.tanh": lambda h: h.tanh(),
    "torch.sigmoid": lambda h: torch.sigmoid(h),
    "x.sigmoid": lambda h: h.sigmoid(),
    "F.silu": lambda h: F.silu(h),
    "F.leaky_relu": lambda h: F.leaky_relu(h, 0.2),
    "add": lambda h: h + torch.tanh(h),
    "torch.add_alpha": lambda h: torch.add(h, torch.tanh(h), alpha=-0.5),
    "x.add": lambda h: h.add(torch.tanh(h)),
    "sub": lambda h: h - torch.tanh(h),
    "mul": lambda h: h * torch.tanh(h),
    "torch.mul_same": lambda h: torch.mul(h, h),
    "x.reshape": lambda h: h.reshape(-1, 2, 2).tanh().reshape(h.shape[0], 4),
    "F.dropout_eval": lambda h: F.dropout(h, 0.5, training=False),
    "contiguous": lambda h: h.contiguous(),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_forms(name):
    _check_everything(_ready(Functional(FUNCTIONAL[name])), [(3,)], target=1)


def test_sub_and_alpha_are_weighted_adds():
    net = from_torch(_ready(Functional(FUNCTIONAL["torch.add_alpha"])))
    assert [n.layer.weights for n in net.nodes if isinstance(n.layer, Add)] == [(1.0, -0.5)]
    net = from_torch(_ready(Functional(FUNCTIONAL["sub"])))
    assert [n.layer.weights for n in net.nodes if isinstance(n.layer, Add)] == [(1.0, -1.0)]


class FunctionalImage(nn.Module):
    """F.conv2d / F.linear on the module's parameters, and the functional pools."""

    def __init__(self, pool):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(3, 2, 3, 3))
        self.b1 = nn.Parameter(torch.randn(3))
        self.w2 = nn.Parameter(torch.randn(2, 3))
        self.pool = pool

    def forward(self, x):
        h = F.conv2d(x, self.w1, self.b1, padding=1)
        h = self.pool(F.relu(h))
        return F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), self.w2)


@pytest.mark.parametrize("pool, rule", [(lambda h: F.max_pool2d(h, 2), "delta_routing"),
                                        (lambda h: F.avg_pool2d(h, 2, stride=1, padding=1), None)])
def test_functional_conv_linear_and_pools(pool, rule):
    net = _check_everything(_ready(FunctionalImage(pool)), [(2, 6, 6)], target=1, maxpool_rule=rule)
    assert isinstance(net.nodes[0].layer, Conv2D) and isinstance(net.nodes[-1].layer, Dense)


@pytest.mark.parametrize("name, build", [("ELU", lambda h: F.elu(h, 0.7)), ("SELU", lambda h: F.selu(h)),
                                         ("Softplus", lambda h: F.softplus(h, beta=2.0, threshold=5.0))])
def test_activations_that_another_layer_provides(name, build):
    """F.elu / F.selu / F.softplus import when a layer for nn.ELU / nn.SELU / nn.Softplus is
    registered, and are refused naming the module otherwise."""
    model = _ready(Functional(build))
    if any(name in entry.torch_modules for entry in registered()):
        _check_everything(model, [(3,)])
    else:
        with pytest.raises(UnsupportedLayerError, match=rf"fx node '\w+' .*{name}.*no refattr layer computes it"):
            from_torch(model)


class Sorter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.sort(self.fc(x), dim=1).values


def test_unsupported_function_names_node_op_target_and_line():
    with pytest.raises(UnsupportedLayerError) as info:
        from_torch(_ready(Sorter()))
    message = str(info.value)
    assert "fx node 'sort' (call_function torch.sort, at " in message, message
    assert "test_torch_fx.py:" in message and "return torch.sort(self.fc(x), dim=1).values" in message
    assert "Supported: call_module of" in message and "F.relu" in message and "Tensor.view" in message


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_data_dependent_control_flow_is_refused():
    with pytest.raises(UnsupportedLayerError, match=r"torch.fx cannot trace Branchy.forward \(TraceError: .*control "
                                                    r"flow.*Write the model as an nn.Sequential"):
        from_torch(_ready(Branchy()))



@pytest.mark.parametrize("call, expected", [
    (lambda h: h + 1.5, (1.0, 1.5)), (lambda h: 1.5 + h, (1.0, 1.5)), (lambda h: h - 2.0, (1.0, -2.0)),
    (lambda h: 3.0 - h, (-1.0, 3.0)), (lambda h: 0.5 * h, (0.5, 0.0)), (lambda h: h * -2.0, (-2.0, 0.0)),
    (lambda h: h / 4.0, (0.25, 0.0)), (lambda h: torch.sub(h, 1.0, alpha=2.0), (1.0, -2.0)),
    (lambda h: torch.subtract(h, 0.5), (1.0, -0.5)),     # tangermeme issue #43 writes torch.subtract
])
def test_arithmetic_with_a_number_imports_as_affine(call, expected):
    # (scale, shift) of y = scale * h + shift, worked out by hand from each expression
    net = _check_everything(_ready(Functional(call)), [(3,)])
    affine = [node.layer for node in net.nodes if isinstance(node.layer, Affine)]
    assert len(affine) == 1 and (affine[0].scale, affine[0].shift) == expected


@pytest.mark.parametrize("call, pattern", [
    (lambda h: 1.0 / h, r"fx node 'truediv' .*only a tensor divided by a non-zero Python number"),
    (lambda h: h / h, r"fx node 'truediv' .*a division by a tensor has no refattr layer"),
    (lambda h: h.view(1, -1)[:, :4], r"fx node 'view' .*keeps the batch axis"),
    (lambda h: F.relu(h, inplace=True) + h, r"fx node 'relu' .*in place on 'fc1', which \['add'\] read afterwards"),
    (lambda h: F.dropout(h, 0.5), r"fx node 'dropout' .*training=True"),
    (lambda h: torch.flatten(h), r"start_dim: 0 is the batch axis"),
])
def test_refusals_name_the_node(call, pattern):
    with pytest.raises(UnsupportedLayerError, match=pattern):
        from_torch(_ready(Functional(call)))


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x), x


def test_several_outputs_are_refused():
    with pytest.raises(UnsupportedLayerError, match=r"fx node 'output' .*returns tuple of values"):
        from_torch(_ready(Pair()))


class ParameterOperand(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.scale = nn.Linear(3, 2), nn.Parameter(torch.ones(2))

    def forward(self, x):
        return self.fc(x) * self.scale


def test_a_parameter_outside_a_weight_is_refused():
    with pytest.raises(UnsupportedLayerError, match=r"fx node 'mul' .*the module's tensor 'scale' \(a get_attr\)"):
        from_torch(_ready(ParameterOperand()))


class Overwrite(nn.Module):
    """``h += x`` overwrites h, which is read again: torch.fx records a new value and reads the old h."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        h = self.fc(x)
        out = h
        out += x
        return out * h


def test_a_graph_that_departs_from_the_module_fails_the_import_check():
    with pytest.raises(ImportMismatchError, match=r"computes a different function.*in-place operation"):
        from_torch(_ready(Overwrite()))


def test_hooks_are_refused():
    model = _ready(Gate())
    model.a.register_forward_hook(lambda module, args, out: out * 2)
    with pytest.raises(ImportMismatchError, match=r"module 'a' .*forward hook"):
        from_torch(model)


def test_a_module_that_computes_nothing_is_refused():
    class Passthrough(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(UnsupportedLayerError, match="returns its input 'x' with nothing computed"):
        from_torch(Passthrough())


def test_nothing_leaks_into_the_module():
    """The import reads the module and leaves it as it was (the import check runs a copy)."""
    model = _ready(ResNet())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _inputs([(2, 8, 8)])[0]
    out = torch_forward(model, x)
    from_torch(model)
    functional = _ready(FunctionalImage(lambda h: h))
    random_state = torch.get_rng_state()
    from_torch(functional)          # F.conv2d / F.linear become modules without a draw from torch's generator
    assert torch.equal(torch.get_rng_state(), random_state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    np.testing.assert_array_equal(torch_forward(model, x), out)
    assert not model.training


def test_reshape_layer_and_flatten_layer():
    net = from_torch(_ready(Functional(FUNCTIONAL["x.reshape"])))
    reshapes = [n.layer for n in net.nodes if isinstance(n.layer, (Reshape, Flatten))]
    assert [type(r).__name__ for r in reshapes] == ["Reshape", "Reshape"]
    assert [r.shape for r in reshapes] == [(2, 2), (4,)]
    assert not any(isinstance(n.layer, Concat) for n in net.nodes)


class CeilPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool, self.fc = nn.MaxPool2d(2, ceil_mode=True), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


def test_a_module_refusal_names_the_node_and_the_module():
    # the Sequential importer's reason, located by the fx node instead of a position in a Sequential
    with pytest.raises(UnsupportedLayerError, match=r"^fx node 'pool' \(call_module pool, at .*test_torch_fx.py:\d+: "
                                                    r"return self.fc\(self.pool\(x\).flatten\(1\)\)\): module 'pool' "
                                                    r"\(torch.nn.modules.pooling.MaxPool2d\): ceil_mode=True") as info:
        from_torch(CeilPool())
    assert "position" not in str(info.value)


def test_float32_module_and_a_bare_layer():
    model = ResNet().eval()          # float32 weights: copied exactly into float64
    net = from_torch(model)
    x = _inputs([(2, 8, 8)])[0]
    assert relative_difference(net(x), torch_forward(model, x)) <= EXACT_RTOL
    linear = nn.Linear(3, 2)         # a layer alone is a module fx traces: F.linear on its parameters
    net = from_torch(linear)
    np.testing.assert_array_equal(net.nodes[0].layer.weight, linear.weight.detach().double().numpy())


class Genomics(nn.Module):
    """One-hot DNA (4 x L): F.conv1d on parameters, F.max_pool1d, global F.adaptive_avg_pool1d."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 4, 5))
        self.b = nn.Parameter(torch.randn(3))
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        h = F.max_pool1d(F.relu(F.conv1d(x, self.w, self.b, padding=2)), 2)
        return self.fc(F.adaptive_avg_pool1d(h, 1).view(-1, 3))


def test_functional_conv1d_and_pools():
    _check_everything(_ready(Genomics()), [(4, 12)], target=1, maxpool_rule="delta_routing")
