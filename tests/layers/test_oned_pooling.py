"""1-D convolution and pooling, adaptive average pooling (issue 17).

Where the expected numbers come from: torch's float64 functional ops (an independent
implementation), a hand computation of adaptive windows, the 2-D layers on the height-1 view
(the 1-D layers are defined as those, so the comparison is bit for bit), completeness
f(x) - f(x') evaluated by torch, and scipy's adaptive quad_vec on torch's autograd gradient.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import quad_vec

from refattr import deeplift, integrated_gradients
from refattr.errors import RuleError, ShapeError, UnsupportedLayerError
from refattr.interop import from_torch, to_torch
from refattr.interop.torch_model import torch_forward
from refattr.layers import (AdaptiveAvgPool1D, Affine, AdaptiveAvgPool2D, AvgPool1D, AvgPool2D, Conv1D, Conv2D,
                            Flatten, MaxPool1D, MaxPool2D, Reshape)
from refattr.layers.base import DeltaPair
from refattr.layers.registry import from_config, info, to_config
from refattr.network import Sequential

RTOL = 1e-13   # two float64 implementations summing in different orders


def t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def close(actual, expected, rtol=RTOL):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * max(np.abs(expected).max(), 1e-300)


# --------------------------------------------------------------------------------------------
# forward against torch float64
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, (2, 0), 2, 1), (3, (0, 1), 1, 3), (2, 2, 3, 3), (1, (1, 2), 1, 6)])
def test_conv1d_forward_matches_torch(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    weight, bias, x = rng.normal(size=(6, 6 // groups, 3)), rng.normal(size=6), rng.normal(size=(2, 6, 11))
    layer = Conv1D(weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    left, right = (padding, padding) if isinstance(padding, int) else padding
    expected = F.conv1d(F.pad(t(x), (left, right)), t(weight), t(bias), stride=stride, dilation=dilation,
                        groups=groups).numpy()
    close(layer.forward(x)[0], expected)
    assert layer.output_shape((6, 11)) == expected.shape[1:]


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2), (1, 1, 0)])
def test_pooling_1d_forward_matches_torch(kernel, stride, padding):
    x = np.random.default_rng(1).normal(size=(2, 3, 10))
    close(MaxPool1D(kernel, stride, padding).forward(x)[0],
          F.max_pool1d(t(x), kernel, stride, padding).numpy(), rtol=0)
    for include in (True, False):
        close(AvgPool1D(kernel, stride, padding, count_include_pad=include).forward(x)[0],
              F.avg_pool1d(t(x), kernel, stride, padding, count_include_pad=include).numpy())


def test_adaptive_windows_by_hand():
    # L = 7 -> 3: starts floor(0), floor(7/3) = 2, floor(14/3) = 4; ends ceil(7/3) = 3, ceil(14/3) = 5, 7:
    # windows [0, 3), [2, 5), [4, 7), overlapping at cells 2 and 4; on 0..6 the means are 1, 3, 5
    x = np.arange(7.0).reshape(1, 1, 7)
    np.testing.assert_array_equal(AdaptiveAvgPool1D(3).forward(x)[0], [[[1.0, 3.0, 5.0]]])
    # L = 2 -> 3 repeats cells: [0, 1), [0, 2), [1, 2) -> 10, 15, 20
    np.testing.assert_array_equal(AdaptiveAvgPool1D(3).forward(np.array([[[10.0, 20.0]]]))[0], [[[10, 15, 20]]])


@pytest.mark.parametrize("length, out", [(7, 3), (10, 4), (5, 5), (3, 5), (9, 1), (13, 6)])
def test_adaptive_avg_pool_1d_matches_torch(length, out):
    x = np.random.default_rng(2).normal(size=(2, 3, length))
    close(AdaptiveAvgPool1D(out).forward(x)[0], F.adaptive_avg_pool1d(t(x), out).numpy())


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 3), (4, None), (7, 2)])
def test_adaptive_avg_pool_2d_matches_torch(size):
    x = np.random.default_rng(3).normal(size=(2, 3, 7, 5))
    expected = torch.nn.AdaptiveAvgPool2d(size)(t(x)).numpy()
    layer = AdaptiveAvgPool2D(size)
    close(layer.forward(x)[0], expected)
    assert layer.output_shape((3, 7, 5)) == expected.shape[1:]


def test_global_average_pooling_is_the_default_and_the_mean():
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 6))
    close(AdaptiveAvgPool2D().forward(x)[0], x.mean(axis=(2, 3), keepdims=True))
    assert info(AdaptiveAvgPool2D).onnx_ops == ("GlobalAveragePool",)


# --------------------------------------------------------------------------------------------
# each 1-D layer is the 2-D layer on the height-1 view, bit for bit
# --------------------------------------------------------------------------------------------

def pairs(rng):
    w, b = rng.normal(size=(4, 2, 3)), rng.normal(size=4)
    return [
        (Conv1D(w, b, stride=2, padding=(1, 2), dilation=2, groups=2),
         Conv2D(w[:, :, None], b, stride=(1, 2), padding=(0, 0, 1, 2), dilation=(1, 2), groups=2)),
        (MaxPool1D(3, 2, 1), MaxPool2D((1, 3), (1, 2), (0, 0, 1, 1))),
        (AvgPool1D(3, 1, 1, count_include_pad=False), AvgPool2D((1, 3), (1, 1), (0, 0, 1, 1), False)),
        (AdaptiveAvgPool1D(4), AdaptiveAvgPool2D((1, 4))),
    ]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_one_d_layer_equals_two_d_layer_on_height_one(index, rule):
    rng = np.random.default_rng(5)
    one, two = pairs(rng)[index]
    x, x_ref = rng.normal(size=(3, 4, 9)), rng.normal(size=(3, 4, 9))
    x[:, :, 3] = x_ref[:, :, 3]                          # exact zeros of Δx: the 0.5 rule
    view = lambda a: a[:, :, None, :]
    y1, c1 = one.forward(x)
    y2, c2 = two.forward(view(x))
    np.testing.assert_array_equal(view(y1), y2)
    g, d = rng.normal(size=y1.shape), rng.normal(size=x.shape)
    np.testing.assert_array_equal(view(one.vjp(g, c1)), two.vjp(view(g), c2))
    np.testing.assert_array_equal(view(one.jvp(d, c1)), two.jvp(view(d), c2))
    delta = x - x_ref
    spread = np.abs(delta) * 0.3
    parts = (np.maximum(delta, 0) + spread, np.minimum(delta, 0) - spread)
    r1, r2 = one.forward(x_ref), two.forward(view(x_ref))
    maxpool_rule = "delta_routing" if isinstance(one, MaxPool1D) else None
    p1, n1, dl1 = one.deeplift_forward(DeltaPair(x, x_ref, *parts), y1, r1[0], c1, r1[1], rule=rule,
                                       maxpool_rule=maxpool_rule)
    p2, n2, dl2 = two.deeplift_forward(DeltaPair(*map(view, (x, x_ref) + parts)), y2, r2[0], c2, r2[1], rule=rule,
                                       maxpool_rule=maxpool_rule)
    np.testing.assert_array_equal(view(p1), p2)
    np.testing.assert_array_equal(view(n1), n2)
    m_pos, m_neg = rng.normal(size=y1.shape), rng.normal(size=y1.shape)
    for a, b in ((m_pos, m_pos), (m_pos, m_neg)):
        got = one.deeplift_backward(a, b, dl1)
        va = view(a)                                     # one object twice: the equal-multiplier path
        want = two.deeplift_backward(va, va if a is b else view(b), dl2)
        for u, v in zip(got, want):
            np.testing.assert_array_equal(view(u), v)
    if isinstance(one, MaxPool1D):                       # the kink protocol of exact IG
        y1, dy1, k1 = one.forward_along(x, d)
        y2, dy2, k2 = two.forward_along(view(x), view(d))
        np.testing.assert_array_equal(view(dy1), dy2)
        s1, e1 = one.next_kink(x, d, k1)
        s2, e2 = two.next_kink(view(x), view(d), k2)
        np.testing.assert_array_equal(s1, s2)
        rows = np.ones(3, dtype=bool)
        np.testing.assert_array_equal(view(one.snap_to_kink(x + s1[:, None, None] * d, e1, rows)),
                                      two.snap_to_kink(view(x + s1[:, None, None] * d), e2, rows))


def test_one_d_layers_refuse_images_and_bad_arguments():
    with pytest.raises(ShapeError, match=r"Conv1D.*\(C, L\) sequences"):
        Conv1D(np.ones((2, 1, 3))).output_shape((1, 5, 5))
    with pytest.raises(ShapeError, match="MaxPool1D padding"):
        MaxPool1D(2, padding=2)
    with pytest.raises(ShapeError, match="Conv1D weight"):
        Conv1D(np.ones((2, 1, 3, 3)))
    with pytest.raises(ShapeError, match="Conv1D.*smaller than the dilated kernel"):
        Conv1D(np.ones((2, 1, 3)), dilation=3).output_shape((1, 5))
    with pytest.raises(RuleError, match="MaxPool1D"):
        deeplift(Sequential([MaxPool1D(2), Flatten()]), np.ones((1, 1, 4)), 0.0, target=0)


def test_serialisation_keeps_one_d_arguments():
    layer = Conv1D(np.ones((2, 1, 3)), [1.0, 2.0], stride=2, padding=(0, 1), dilation=2)
    config = to_config(layer)
    assert config["params"] == {"stride": 2, "padding": [0, 1], "dilation": 2, "groups": 1}
    assert config["arrays"]["weight"].shape == (2, 1, 3)
    assert repr(from_config(config)) == repr(layer)
    assert to_config(AdaptiveAvgPool2D((None, 3)))["params"] == {"output_size": [None, 3]}


# --------------------------------------------------------------------------------------------
# a genomics-style network: one-hot DNA (4, 20) -> Conv1d -> ReLU -> MaxPool1d -> Flatten -> Linear
# --------------------------------------------------------------------------------------------

def dna_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 5, 6, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(3, 2),
                                torch.nn.Flatten(), torch.nn.Linear(45, 2)).double().eval()
    rng = np.random.default_rng(6)
    x = np.zeros((2, 4, 20))
    x[np.arange(2)[:, None], rng.integers(0, 4, size=(2, 20)), np.arange(20)[None, :]] = 1.0
    return model, from_torch(model, input_shape=(4, 20)), x


def test_exact_integrated_gradients_on_one_hot_dna():
    model, net, x = dna_model()
    baseline = np.full((4, 20), 0.25)                          # the uniform background
    result = integrated_gradients(net, x, baseline, target=1)
    assert result.options["rule"] == "exact"
    delta_t = torch_forward(model, x)[:, 1] - torch_forward(model, baseline[None])[0, 1]
    assert np.all(np.abs(result.values.sum(axis=(1, 2)) - delta_t) <= 1e-12 * np.abs(result.values).sum(axis=(1, 2)))

    def integrand(alpha, i=0):
        point = t(baseline + alpha * (x[i] - baseline))[None].requires_grad_(True)
        model(point)[0, 1].backward()
        return ((x[i] - baseline) * point.grad[0].numpy()).ravel()

    expected, _ = quad_vec(integrand, 0.0, 1.0, epsrel=1e-12, epsabs=1e-14, limit=10000)
    close(result.values[0].ravel(), expected, rtol=1e-9)       # quad_vec across unknown kinks: ~1e-10


@pytest.mark.parametrize("maxpool_rule", ["delta_routing", "gradient"])
def test_deeplift_on_one_hot_dna_equals_the_two_d_network(maxpool_rule):
    model, net, x = dna_model()
    conv, relu, pool = net.layers[:3]
    as_images = Sequential([Reshape((4, 1, 20)), conv.plane, relu, pool.plane, Flatten(), net.layers[4]])
    baseline = np.full((4, 20), 0.25)
    result = deeplift(net, x, baseline, target=1, rule="rescale", maxpool_rule=maxpool_rule)
    images = deeplift(as_images, x, baseline, target=1, rule="rescale", maxpool_rule=maxpool_rule)
    np.testing.assert_array_equal(result.values, images.values)
    np.testing.assert_array_equal(result.multipliers, images.multipliers)
    delta_t = torch_forward(model, x)[:, 1] - torch_forward(model, baseline[None])[0, 1]
    gap = result.values.sum(axis=(1, 2)) - delta_t
    np.testing.assert_allclose(result.completeness_gap, gap, rtol=0, atol=1e-12 * np.abs(delta_t).max())
    if maxpool_rule == "delta_routing":                        # summation-to-delta by construction
        assert np.all(np.abs(gap) <= 1e-12 * np.abs(result.values).sum(axis=(1, 2)))


# --------------------------------------------------------------------------------------------
# torch import and export
# --------------------------------------------------------------------------------------------

def round_trip(model, shape):
    x = np.random.default_rng(7).normal(size=(3,) + shape)
    net = from_torch(model.double().eval(), input_shape=shape)
    back = to_torch(net)
    close(net(x), torch_forward(model, x), rtol=1e-12)
    close(torch_forward(back, x), torch_forward(model, x), rtol=1e-12)
    return net, back


def test_torch_round_trip_of_every_one_d_layer():
    nn = torch.nn
    torch.manual_seed(1)
    model = nn.Sequential(nn.ZeroPad1d((2, 0)), nn.Conv1d(4, 6, 3, stride=1, dilation=1, groups=2), nn.ReLU(),
                          nn.Conv1d(6, 6, 4, padding="same", dilation=1), nn.MaxPool1d(3, 1, 1),
                          nn.AvgPool1d(2, count_include_pad=False), nn.AdaptiveAvgPool1d(3), nn.Flatten(),
                          nn.Linear(18, 2))
    net, back = round_trip(model, (4, 13))
    assert [type(la).__name__ for la in net.layers] == ["Conv1D", "ReLU", "Conv1D", "MaxPool1D", "AvgPool1D",
                                                       "AdaptiveAvgPool1D", "Flatten", "Dense"]
    assert net.layers[0].padding == (2, 0) and net.layers[2].padding == (1, 2)   # 'same', k = 4: (3 // 2, 3 - 1)
    assert isinstance(back[0], nn.ZeroPad1d)


def test_torch_round_trip_of_adaptive_avg_pool_2d():
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d((None, 2)), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(3, 2))
    net, _ = round_trip(model, (2, 9, 7))
    assert net.layers[1].output_size == (None, 2) and net.layers[3].output_size == (1, 1)


def test_torch_import_refuses_what_the_one_d_layers_do_not_model():
    nn = torch.nn
    for module in (nn.MaxPool1d(2, ceil_mode=True), nn.MaxPool1d(3, dilation=2), nn.AvgPool1d(2, ceil_mode=True)):
        with pytest.raises(UnsupportedLayerError):
            from_torch(nn.Sequential(module, nn.Flatten()), input_shape=(2, 8))
    with pytest.raises(UnsupportedLayerError, match="ZeroPad1d"):
        from_torch(nn.Sequential(nn.ZeroPad1d(1), nn.ReLU()), input_shape=(2, 8))
    with pytest.raises(UnsupportedLayerError, match="asymmetric padding"):
        to_torch(Sequential([MaxPool1D(3, padding=(1, 0)), Flatten()]))


def test_batchnorm1d_after_conv1d_is_folded_and_alone_is_per_channel():
    nn = torch.nn
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.BatchNorm1d(4), nn.Flatten(),
                          nn.Linear(24, 1)).double()
    for bn in (model[1], model[3]):
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
    model.eval()
    net, _ = round_trip(model, (3, 8))
    conv, bn_alone = net.layers[0], net.layers[2]
    assert isinstance(conv, Conv1D) and isinstance(bn_alone, Affine) and len(net.layers) == 5
    # BN(z) = gamma (z - mean) / sqrt(var + eps) + beta: scale = gamma / sqrt(var + eps)
    bn = model[1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    shift = bn.bias.detach().numpy() - bn.running_mean.numpy() * scale
    close(conv.weight, model[0].weight.detach().numpy() * scale[:, None, None])
    close(conv.bias, model[0].bias.detach().numpy() * scale + shift)
    assert bn_alone.scale.shape == (4,)         # one scale and shift per channel
