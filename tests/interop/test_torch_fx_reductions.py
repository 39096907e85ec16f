"""The tensor operations users write in forward: mean / sum / max reductions, squeeze / unsqueeze,
transpose / permute, imported by from_torch (torch.fx) as existing layers or Permute.

Every expected forward value is torch's own forward of the module (float64); gradients are torch's
autograd; exact integrated gradients is held to completeness (an identity, so rounding: 1e-12 of
the magnitudes); Captum's differences must all be explained.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum.attr")

from refattr import (AdaptiveAvgPool1D, Affine, Conv1D, MaxPool1D, Permute, ReLU, gradient,  # noqa: E402
                     integrated_gradients)
from refattr.errors import UnsupportedLayerError  # noqa: E402
from refattr.interop import compare_captum, from_torch  # noqa: E402

RTOL = 1e-12    # the same sums in another order: a few roundings of 1.1e-16


class Seq(torch.nn.Module):
    """(N, L, 4) one-hot-like input -> ``before`` -> Conv1d(4, 3, 3) -> ReLU -> ``after`` -> Linear(k, 2)."""

    def __init__(self, after, k=3, before=lambda x: x.transpose(1, 2)):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = torch.nn.Conv1d(4, 3, 3), torch.nn.Linear(k, 2)
        self.before, self.after = before, after

    def forward(self, x):
        return self.fc(self.after(torch.relu(self.conv(self.before(x)))))


class Img(torch.nn.Module):
    """(N, 2, 6, 5) -> Conv2d(2, 3, 3) -> ReLU -> ``after`` -> Linear(k, 2)."""

    def __init__(self, after, k=3):
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.fc, self.after = torch.nn.Conv2d(2, 3, 3), torch.nn.Linear(k, 2), after

    def forward(self, x):
        return self.fc(self.after(torch.relu(self.conv(x))))


def torch_out(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def assert_same_function(model, shape, n=5, seed=0):
    net = from_torch(model.double(), input_shape=shape)
    x = np.random.default_rng(seed).normal(size=(n,) + shape)
    expected = torch_out(model, x)
    np.testing.assert_allclose(net(x), expected, rtol=0, atol=RTOL * np.abs(expected).max())
    return net


# conv output (N, 3, 8) for L = 10
SEQUENCE_PATTERNS = {
    "h.mean(dim=-1)": lambda h: h.mean(dim=-1),
    "torch.mean(h, dim=2)": lambda h: torch.mean(h, dim=2),
    "h.mean(-1, keepdim=True).squeeze(-1)": lambda h: h.mean(-1, keepdim=True).squeeze(-1),
    "h.sum(-1)": lambda h: h.sum(-1),
    "torch.sum(h, dim=-1, keepdim=True)[flattened]": lambda h: torch.sum(h, dim=-1, keepdim=True).flatten(1),
    "h.max(dim=-1)[0]": lambda h: h.max(dim=-1)[0],
    "h.max(-1).values": lambda h: h.max(-1).values,
    "h.amax(dim=-1)": lambda h: h.amax(dim=-1),
    "torch.amax(h, -1)": lambda h: torch.amax(h, -1),
    "torch.squeeze(h.amax(-1, keepdim=True), -1)": lambda h: torch.squeeze(h.amax(-1, keepdim=True), -1),
    "h.unsqueeze(-1).mean((2, 3))": lambda h: h.unsqueeze(-1).mean((2, 3)),
    "torch.unsqueeze(h, 2).amax((-2, -1))": lambda h: torch.unsqueeze(h, 2).amax((-2, -1)),
    "h.transpose(1, 2).mean(1)": lambda h: h.transpose(1, 2).mean(1),     # a mean over channels after a swap
}


@pytest.mark.parametrize("name", SEQUENCE_PATTERNS)
def test_each_sequence_pattern_imports_and_equals_torch(name):
    assert_same_function(Seq(SEQUENCE_PATTERNS[name]), (10, 4))


IMAGE_PATTERNS = {    # conv output (N, 3, 4, 3)
    "h.mean((2, 3))": (lambda h: h.mean((2, 3)), 3),
    "h.mean((-2, -1))": (lambda h: h.mean((-2, -1)), 3),
    "h.sum((2, 3))": (lambda h: h.sum((2, 3)), 3),
    "h.amax((2, 3))": (lambda h: h.amax((2, 3)), 3),
    "h.mean(-1).flatten(1)": (lambda h: h.mean(-1).flatten(1), 12),          # over W only: (3, 4)
    "h.mean(2, keepdim=True).flatten(1)": (lambda h: h.mean(2, keepdim=True).flatten(1), 9),   # over H only
    "h.amax(-1).flatten(1)": (lambda h: h.amax(-1).flatten(1), 12),
    "h.mean(1).flatten(1)": (lambda h: h.mean(1).flatten(1), 12),           # over channels: weights 1/C
    "h.permute(0, 3, 2, 1).mean((1, 2))": (lambda h: h.permute(0, 3, 2, 1).mean((1, 2)), 3),
}


@pytest.mark.parametrize("name", IMAGE_PATTERNS)
def test_each_image_pattern_imports_and_equals_torch(name):
    after, k = IMAGE_PATTERNS[name]
    assert_same_function(Img(after, k), (2, 6, 5))


def test_the_layers_chosen_for_a_mean_a_sum_and_a_max():
    # mean -> global average pooling; sum -> the mean times L = 8 (conv output length 10 - 3 + 1);
    # max -> max pooling whose kernel is the whole axis
    nodes = {k: [type(n.layer) for n in from_torch(Seq(f).double(), input_shape=(10, 4)).nodes]
             for k, f in (("mean", lambda h: h.mean(-1)), ("sum", lambda h: h.sum(-1)), ("max", lambda h: h.amax(-1)))}
    assert nodes["mean"][:4] == [Permute, Conv1D, ReLU, AdaptiveAvgPool1D]
    assert Affine in nodes["sum"] and MaxPool1D in nodes["max"]
    net = from_torch(Seq(lambda h: h.sum(-1)).double(), input_shape=(10, 4))
    assert next(n.layer for n in net.nodes if isinstance(n.layer, Affine)).scale == 8.0
    pool = next(n.layer for n in from_torch(Seq(lambda h: h.amax(-1)).double(), input_shape=(10, 4)).nodes
                if isinstance(n.layer, MaxPool1D))
    assert pool.kernel == 8


def test_a_mean_needs_no_input_shape_and_accepts_every_length():
    # AdaptiveAvgPool1D(1) averages any length: imported without input_shape, the graph is not tied
    # to the probe's length
    model = Seq(lambda h: h.mean(-1), before=lambda x: x.permute(0, 2, 1)).double()
    net = from_torch(model)
    for length in (5, 17):
        x = np.random.default_rng(length).normal(size=(3, length, 4))
        expected = torch_out(model, x)
        np.testing.assert_allclose(net(x), expected, rtol=0, atol=RTOL * np.abs(expected).max())


def test_gradients_equal_torch_autograd_through_every_new_mapping():
    model = Seq(lambda h: h.unsqueeze(-1).amax((2, 3)) + h.mean(-1) + 0.5 * h.sum(-1, keepdim=True).squeeze(-1)
                ).double()
    net = from_torch(model, input_shape=(10, 4))
    x = np.random.default_rng(2).normal(size=(4, 10, 4))
    xt = torch.from_numpy(x).requires_grad_()
    model(xt)[:, 1].sum().backward()
    expected = xt.grad.numpy()
    np.testing.assert_allclose(gradient(net, x, target=1).values, expected, rtol=0,
                               atol=RTOL * np.abs(expected).max())


def test_exact_integrated_gradients_is_complete_on_a_model_with_every_op():
    model = Seq(lambda h: h.amax(-1) + h.mean(-1)).double()
    net = from_torch(model, input_shape=(10, 4))
    rng = np.random.default_rng(3)
    x, baseline = rng.normal(size=(4, 10, 4)), rng.normal(size=(10, 4))
    result = integrated_gradients(net, x, baseline=baseline, target=0, rule="exact")
    # completeness: sum of attributions = f(x)_0 - f(x')_0, with f from torch
    delta = torch_out(model, x)[:, 0] - torch_out(model, np.broadcast_to(baseline, x.shape).copy())[:, 0]
    scale = np.abs(result.values).sum(axis=(1, 2)) + np.abs(delta)
    assert np.all(np.abs(result.values.sum(axis=(1, 2)) - delta) <= RTOL * scale)


class DNA(torch.nn.Module):
    """(N, L, 4) -> permute -> Conv1d -> ReLU -> mean(-1) -> Linear(3, 6) -> view (2, 3) -> amax(-1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.conv, self.fc = torch.nn.Conv1d(4, 3, 3), torch.nn.Linear(3, 6)

    def forward(self, x):
        h = torch.relu(self.conv(x.permute(0, 2, 1))).mean(-1)
        return self.fc(h).view(h.size(0), 2, 3).amax(-1)


def test_compare_captum_explains_every_difference_and_names_the_max_written_as_a_function():
    rng = np.random.default_rng(5)
    x = np.eye(4)[rng.integers(0, 4, size=(3, 12))]            # one-hot (N, L, 4)
    report = compare_captum(DNA(), x, baseline=0.25, targets=1,
                            methods=["Saliency", "IntegratedGradients", "DeepLift"])
    assert report.all_explained, report.table()
    assert report["Saliency"].verdict == "agree", report.table()
    # Captum hooks modules only: the max over the last axis, written amax(-1), gets no max-pool rule,
    # and the report says which node that is
    causes = " ".join(c.description for c in report["DeepLift"].causes)
    assert "'amax.0' (MaxPool1D)" in causes, report.table()


@pytest.mark.parametrize("after, shape, words", [
    (lambda h: h.mean(0), (10, 4), ["mean(dim=0)", "batch axis", "dim=-1"]),
    (lambda h: h.mean(), (10, 4), ["mean(dim=None)", "every axis", "mean(dim=-1)"]),
    (lambda h: h.squeeze(0), (10, 4), ["squeeze(0)", "batch axis"]),
    (lambda h: h.squeeze(), (10, 4), ["squeeze() without dim", "x.squeeze(-1)"]),
    (lambda h: h.transpose(0, 1).mean(-1), (10, 4), ["transpose(0, 1)", "batch axis"]),
    (lambda h: h.permute(1, 0, 2).mean(-1), (10, 4), ["permute(1, 0, 2)", "moves the batch axis", "permute(0, ...)"]),
    (lambda h: h.amax(1, keepdim=True).mean(-1), (10, 4), ["amax(dim=1, keepdim=True)", "across channels"]),
    (lambda h: h.max(-1)[0] + h.max(-1)[1], (10, 4), ["indices of max(x, dim)", ".values"]),
    (lambda h: h.unsqueeze(0).mean(-1), (10, 4), ["unsqueeze(0)", "batch axis"]),
])
def test_refusals_name_the_op_the_axes_and_the_fix(after, shape, words):
    with pytest.raises(UnsupportedLayerError) as info:
        from_torch(Seq(after).double(), input_shape=shape)
    message = str(info.value)
    assert all(w in message for w in words), message


@pytest.mark.parametrize("after, op", [(lambda h: h.sum(-1), "sum(dim=-1)"), (lambda h: h.amax(-1), "amax(dim=-1)")])
def test_a_sum_or_max_without_input_shape_asks_for_it(after, op):
    # the sizes are unknown without input_shape (a mean is not: it averages any length)
    with pytest.raises(UnsupportedLayerError, match="input_shape=") as info:
        from_torch(Seq(after, before=lambda x: x.permute(0, 2, 1)).double())
    assert op in str(info.value)


def test_a_transpose_without_input_shape_asks_for_it():
    with pytest.raises(UnsupportedLayerError, match=r"transpose\(1, 2\) needs the rank .*input_shape="):
        from_torch(Seq(lambda h: h.mean(-1)).double())


class RawTranspose(torch.nn.Module):
    """One-hot DNA stored (N, L, 4): transposed on the raw input, a sum over positions."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.conv, self.fc = torch.nn.Conv1d(4, 3, 3, padding=1), torch.nn.Linear(3, 2)
        self.double().eval()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x.transpose(1, 2))).sum(-1))


def test_compare_captum_reads_the_input_shape_from_the_inputs_and_a_graph_with_permute_exports():
    """compare_captum imports with the inputs' example shape, which a transpose of the raw input and
    a sum need; the imported Graph (Permute, AdaptiveAvgPool1D, Affine) goes back to torch with
    graph_to_torch and computes the same function (compared by compare_captum's forward check)."""
    from refattr.interop.torch_graph import graph_to_torch

    rng = np.random.default_rng(7)
    x = np.eye(4)[rng.integers(0, 4, size=(3, 10))]            # (N, L, 4)
    model = RawTranspose()
    report = compare_captum(model, x, baseline=0.25, targets=0, methods=["Saliency", "IntegratedGradients"])
    assert report.all_explained and report.forward_max_rel_diff <= 1e-12, report.table()
    net = from_torch(model, input_shape=(10, 4))
    exported = graph_to_torch(net)
    with torch.no_grad():
        np.testing.assert_allclose(exported(torch.tensor(x)).numpy(), model(torch.tensor(x)).numpy(), rtol=0,
                                   atol=1e-13)
    assert compare_captum(net, x, baseline=0.25, targets=0, methods=["Saliency"]).all_explained
