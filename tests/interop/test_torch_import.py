"""from_torch / to_torch: every supported module computes PyTorch's float64 function to 1e-12.

Expected values come from PyTorch itself (float64 forward of the same module); the tolerance is
EXACT_RTOL (a few dozen float64 operations per output; BatchNorm folding reorders them).
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from refattr import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Swish, Tanh
from refattr.errors import UnsupportedLayerError
from refattr.layers.registry import registered
from refattr.testing import EXACT_RTOL, random_network

torch = pytest.importorskip("torch")
nn = torch.nn

from refattr.interop import from_torch, to_torch, torch_forward  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402


def _bn(module, seed):
    """Give a BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.running_mean.copy_(torch.rand(module.num_features, generator=g, dtype=torch.float64) * 2 - 1)
        module.running_var.copy_(torch.rand(module.num_features, generator=g, dtype=torch.float64) + 0.5)
        if module.affine:
            module.weight.copy_(torch.rand(module.num_features, generator=g, dtype=torch.float64) * 4 - 2)
            module.bias.copy_(torch.rand(module.num_features, generator=g, dtype=torch.float64) - 0.5)
    return module


def _model(*modules):
    torch.manual_seed(0)
    model = nn.Sequential(*modules).double()
    for i, m in enumerate(model.modules()):
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _bn(m, i)
    return model.eval()


def _check(model, example_shape, n_layers=None):
    x = np.random.default_rng(1).normal(size=(3,) + example_shape)
    net = from_torch(model)
    with warnings.catch_warnings():
        # padding='same' with an even kernel: PyTorch warns that it pads a copy (expected here)
        warnings.simplefilter("ignore", UserWarning)
        expected = torch_forward(model, x)
    assert relative_difference(net(x), expected) <= EXACT_RTOL
    if n_layers is not None:
        assert len(net.layers) == n_layers, net
    return net


IMG = (2, 7, 6)

ROUND_TRIPS = {
    "linear": (lambda: _model(nn.Linear(4, 3)), (4,), 1),
    "linear_no_bias": (lambda: _model(nn.Linear(4, 3, bias=False)), (4,), 1),
    "relu_tanh_sigmoid_silu": (lambda: _model(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5),
                                              nn.Sigmoid(), nn.Linear(5, 5), nn.SiLU(), nn.Linear(5, 2)), (4,), 9),
    "conv_int_padding": (lambda: _model(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten()), IMG, 2),
    "conv_tuple_padding_stride": (lambda: _model(nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), nn.Flatten()),
                                  IMG, 2),
    "conv_valid": (lambda: _model(nn.Conv2d(2, 3, 3, padding="valid"), nn.Flatten()), IMG, 2),
    "conv_same_dilated": (lambda: _model(nn.Conv2d(2, 3, 3, padding="same", dilation=2), nn.Flatten()), IMG, 2),
    "conv_same_even_kernel": (lambda: _model(nn.Conv2d(2, 3, (2, 4), padding="same"), nn.Flatten()), IMG, 2),
    "conv_groups_no_bias": (lambda: _model(nn.Conv2d(2, 4, 3, groups=2, bias=False), nn.Flatten()), IMG, 2),
    "conv_depthwise": (lambda: _model(nn.Conv2d(2, 2, 2, groups=2, dilation=(2, 1)), nn.Flatten()), IMG, 2),
    "maxpool": (lambda: _model(nn.MaxPool2d(2, stride=1, padding=1), nn.Flatten()), IMG, 2),
    "maxpool_rect_default_stride": (lambda: _model(nn.MaxPool2d((3, 2)), nn.Flatten()), IMG, 2),
    "avgpool_include_pad": (lambda: _model(nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten()), IMG, 2),
    "avgpool_exclude_pad": (lambda: _model(nn.AvgPool2d((2, 3), stride=1, padding=(1, 1), count_include_pad=False),
                                           nn.Flatten()), IMG, 2),
    "batchnorm1d_folded": (lambda: _model(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh()), (4,), 2),
    "batchnorm1d_at_input": (lambda: _model(nn.BatchNorm1d(4), nn.Linear(4, 2)), (4,), 2),
    "batchnorm1d_no_affine_after_dropout": (lambda: _model(nn.Linear(4, 5), nn.Dropout(0.5),
                                                           nn.BatchNorm1d(5, affine=False)), (4,), 1),
    "batchnorm2d_folded": (lambda: _model(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.Flatten()), IMG, 2),
    "batchnorm2d_after_relu": (lambda: _model(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.BatchNorm2d(3), nn.Flatten()), IMG, 4),
    "zeropad_conv_and_avgpool": (lambda: _model(nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(),
                                                nn.ZeroPad2d((0, 1, 1, 0)), nn.AvgPool2d(3, stride=1), nn.Flatten()),
                                 IMG, 4),
    "dropout_identity_nested": (lambda: _model(nn.Sequential(nn.Linear(4, 5), nn.Dropout()),
                                               nn.Sequential(nn.Identity(), nn.Sequential(nn.ReLU())), nn.Linear(5, 2)),
                                (4,), 3),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_round_trip(name):
    build, shape, n_layers = ROUND_TRIPS[name]
    _check(build(), shape, n_layers)


def test_cnn_with_batchnorm():
    model = _model(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                   nn.Conv2d(4, 3, 2, stride=2), nn.BatchNorm2d(3), nn.Tanh(), nn.AvgPool2d(2, padding=1),
                   nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.SiLU(), nn.Linear(6, 3))
    net = _check(model, (2, 8, 8), n_layers=10)  # the three BatchNorms fold away
    assert [type(layer) for layer in net.layers[:3]] == [Conv2D, ReLU, MaxPool2D]


def test_swish_mlp():
    net = _check(_model(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 3)), (4,), 5)
    assert isinstance(net.layers[1], Swish) and net.layers[1].beta == 1.0


def test_reused_module_is_imported_at_every_use():
    relu = nn.ReLU()
    model = _model(nn.Linear(3, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2))
    net = _check(model, (3,), n_layers=5)
    assert isinstance(net.layers[3], ReLU)


def test_float32_module_is_converted_exactly_and_left_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()
    net = from_torch(model)
    assert model[0].weight.dtype == torch.float32
    # float32 -> float64 is exact, so refattr's weights are the float32 values themselves
    np.testing.assert_array_equal(net.layers[0].weight, model[0].weight.detach().numpy().astype(np.float64))
    x = np.random.default_rng(0).normal(size=(2, 4))
    assert relative_difference(net(x), torch_forward(model, x)) <= EXACT_RTOL
    assert model[0].weight.dtype == torch.float32


class Custom(nn.Module):
    def forward(self, x):
        return x


REFUSED = {
    "mish": (lambda: nn.Sequential(nn.Linear(2, 2), nn.Mish()), r"'1' \(torch.nn.modules.activation.Mish\) at position 1"),
    "hardswish": (lambda: nn.Sequential(nn.Hardswish()), "not swish"),
    "reflect_padding": (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), "padding_mode"),
    "maxpool_ceil": (lambda: nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "ceil_mode"),
    "maxpool_dilation": (lambda: nn.Sequential(nn.MaxPool2d(2, dilation=2)), "dilation"),
    "maxpool_indices": (lambda: nn.Sequential(nn.MaxPool2d(2, return_indices=True)), "return_indices"),
    "avgpool_ceil": (lambda: nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)), "ceil_mode"),
    "avgpool_divisor": (lambda: nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), "divisor_override"),
    "flatten_batch": (lambda: nn.Sequential(nn.Flatten(0)), "start_dim: 0 is the batch axis"),
    "batchnorm_training": (lambda: nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train(), "training mode"),
    "batchnorm_no_stats": (lambda: nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)).eval(),
                           "track_running_stats"),
    "dropout_training": (lambda: nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train(), "training mode"),
    "nested_custom": (lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 2), Custom())), r"'0.1' .*Custom"),
    "module_list": (lambda: nn.Sequential(nn.ModuleList([nn.ReLU()])), "ModuleList"),
    "zeropad_before_relu": (lambda: nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), "ZeroPad2d is supported only"),
    "zeropad_cropping": (lambda: nn.Sequential(nn.ZeroPad2d((-1, 0, 0, 0)), nn.Conv2d(1, 1, 2)), "cropping"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_modules_name_module_position_and_support(name):
    build, pattern = REFUSED[name]
    with pytest.raises(UnsupportedLayerError, match=pattern) as info:
        from_torch(build())
    assert "Supported:" in str(info.value)


def test_a_module_that_computes_nothing_is_refused():
    # any other module is traced (torch.fx) into a Graph; one that returns its input has no layers
    with pytest.raises(UnsupportedLayerError, match="returns its input 'x' with nothing computed"):
        from_torch(Custom())


def test_to_torch_round_trip_of_every_layer_type(rng):
    exportable = [e.cls for e in registered() if e.torch_modules and not e.joins]
    nets = [random_network(np.random.default_rng(seed), input_shape=(2, 6, 6), n_layers=5, layer_types=exportable)
            for seed in range(6)]
    nets.append(Sequential([Conv2D(rng.normal(size=(3, 2, 2, 3)), rng.normal(size=3), padding=(0, 1, 2, 1)),
                            AvgPool2D(2, padding=(1, 0, 1, 1)), Tanh(), Flatten(), Dense(rng.normal(size=(2, 36)))]))
    for net in nets:
        model = to_torch(net)
        x = rng.normal(size=(2, 2, 6, 6))
        assert relative_difference(net(x), torch_forward(model, x)) <= EXACT_RTOL
        again = from_torch(model)
        assert relative_difference(again(x), net(x)) <= EXACT_RTOL


def test_to_torch_refusals(rng):
    with pytest.raises(UnsupportedLayerError, match="beta"):
        to_torch(Sequential([Dense(np.ones((2, 2))), Swish(2.0)]))
    with pytest.raises(UnsupportedLayerError, match="asymmetric"):
        to_torch(Sequential([MaxPool2D(2, padding=(1, 0, 0, 0)), Flatten()]))
    with pytest.raises(UnsupportedLayerError, match="count_include_pad"):
        to_torch(Sequential([AvgPool2D(2, padding=(1, 0, 0, 0), count_include_pad=False), Flatten()]))


def test_importing_refattr_and_interop_does_not_import_torch():
    code = ("import sys, refattr, refattr.interop, refattr.interop.cli, refattr.testing.oracle;"
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'captum') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
