"""Captum's layer and neuron methods against refattr's (compare_captum_layer): each of Captum's results
is reproduced to rounding in the comparison layer, and what separates it from refattr's reference is
named and sized; LayerConductance's left-out ends are shown against its own completeness.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from refattr import Add, Conv2D, Dense, Flatten, Graph, ReLU, layer_conductance  # noqa: E402
from refattr.errors import ArgumentError  # noqa: E402
from refattr.interop.compare_layers import compare_captum_layer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def block(rng):
    def conv(c_out, c_in, k, **kw):
        return Conv2D(rng.normal(size=(c_out, c_in, k, k)) / np.sqrt(c_in * k * k), rng.normal(size=c_out) * 0.3, **kw)

    return Graph("x", [("c1", conv(4, 2, 3, stride=2, padding=1), "x"), ("r1", ReLU(), "c1"),
                       ("c2", conv(4, 4, 3, padding=1), "r1"), ("down", conv(4, 2, 1, stride=2), "x"),
                       ("sum", Add(), ("c2", "down")), ("r2", ReLU(), "sum"), ("f", Flatten(), "r2"),
                       ("y", Dense(rng.normal(size=(3, 36)) / 6), "f")], input_shape=(2, 6, 6))


def matched(entry):
    return [c for c in entry.causes if c.description.startswith("peer vs")]


def test_every_layer_and_neuron_method_is_reproduced_on_a_resnet_block(rng):
    net = block(rng)
    x, b, t = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6)) * 0.3, np.array([0, 2])
    report = compare_captum_layer(net, x, "r2", b, targets=t, neuron=(1, 0, 2))
    assert report.all_explained and report.peer_correct, report.table()
    for entry in report.entries:
        if entry.verdict != "agree":
            assert matched(entry)[0].kind == "rounding" and matched(entry)[0].size < 1e-12, entry
    assert {e.method.split("[")[0]: e.verdict for e in report.entries}["LayerGradientXActivation"] == "agree"


def test_captums_layer_conductance_leaves_out_the_ends_of_the_path(rng):
    # Over a cut (r2: every path crosses it) conductance sums to t(x) - t(x'); refattr's exact sum
    # does, Captum's misses the pieces of the path before its first node and after its last
    net = block(rng)
    x, b, t = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6)) * 0.3, np.array([0, 2])
    peer = torch.from_numpy(x).requires_grad_()
    from refattr.interop.torch_graph import graph_to_torch
    import captum.attr as cattr
    model = graph_to_torch(net)
    theirs = cattr.LayerConductance(model, model.nodes["r2"]).attribute(
        peer, torch.from_numpy(b), target=torch.from_numpy(t), n_steps=50).detach().numpy()
    delta = net(x)[np.arange(2), t] - net(b)[np.arange(2), t]
    ours = layer_conductance(net, x, "r2", b, target=t)
    assert np.max(np.abs(ours.completeness_gap)) <= 1e-12 * np.max(np.abs(delta))
    assert np.max(np.abs(theirs.reshape(2, -1).sum(axis=1) - delta)) > 1e-6 * np.max(np.abs(delta))
    entry = compare_captum_layer(net, x, "r2", b, targets=t, methods=["LayerConductance"]).entries[0]
    assert entry.verdict == "approximation"
    assert any(c.kind == "approximation" and "leaves out the path" in c.description for c in entry.causes)


class Traced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.fc2(h + 0.5 * h)


def test_a_traced_torch_module_by_node_name_and_a_join_refused():
    torch.manual_seed(0)
    model = Traced().double().eval()
    x = np.random.default_rng(3).normal(size=(4, 3))
    report = compare_captum_layer(model, x, "act", targets=np.array([0, 1, 1, 0]), neuron=2)
    assert report.all_explained, report.table()
    with pytest.raises(ArgumentError, match=r"'add' is not computed by a module .*\['act', 'fc1', 'fc2'\]"):
        compare_captum_layer(model, x, "add", targets=0)


def test_layer_deeplift_carries_captums_max_pool_defects_to_the_layer(rng):
    # ReLU -> MaxPool above the layer: Captum's #1104 and its un-pooling by assignment change the
    # gradient that reaches the layer; both are reproduced exactly. The neuron below the pool is
    # explained by hooks that see no max pool: Captum's NeuronDeepLift agrees with refattr's.
    def conv(c_out, c_in, k, **kw):
        return Conv2D(rng.normal(size=(c_out, c_in, k, k)) / np.sqrt(c_in * k * k), rng.normal(size=c_out) * 0.3, **kw)

    from refattr import MaxPool2D
    net = Graph("x", [("c1", conv(4, 2, 3, stride=2, padding=1), "x"), ("r1", ReLU(), "c1"),
                      ("c2", conv(4, 4, 3, padding=1), "r1"), ("down", conv(4, 2, 1, stride=2), "x"),
                      ("sum", Add(), ("c2", "down")), ("r2", ReLU(), "sum"), ("p", MaxPool2D(2, stride=1), "r2"),
                      ("f", Flatten(), "p"), ("y", Dense(rng.normal(size=(3, 16)) / 6), "f")], input_shape=(2, 6, 6))
    x, b, t = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6)) * 0.3, np.array([0, 2])
    report = compare_captum_layer(net, x, "c2", b, targets=t, neuron=(1, 0, 2),
                                  methods=["LayerDeepLift", "NeuronDeepLift"])
    layer, neuron = report.entries
    assert matched(layer)[0].kind == "rounding" and matched(layer)[0].size < 1e-12
    assert layer.verdict == "peer_bug" and any(c.issue == "Captum issue #1104" for c in layer.causes)
    assert neuron.verdict == "agree", report.table()


def test_captums_layer_ig_holds_what_bypasses_the_layer_at_x(rng):
    # Captum overrides the layer's output while the model runs on x: at 'down' (the shortcut, which
    # the residual branch bypasses) and at a module's input (attribute_to_layer_input), reproduced
    net = block(rng)
    x, b, t = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6)) * 0.3, np.array([0, 2])
    for layer, to_input in (("down", False), ("r2", True)):
        entry = compare_captum_layer(net, x, layer, b, targets=t, methods=["LayerIntegratedGradients"],
                                     attribute_to_layer_input=to_input).entries[0]
        assert matched(entry)[0].kind == "rounding" and matched(entry)[0].size < 1e-12, (layer, entry)
    with pytest.raises(ArgumentError, match=r"attribute_to_layer_input: .*NeuronDeepLift is not reproduced"):
        compare_captum_layer(net, x, "r2", b, targets=t, neuron=(0, 1, 1), methods=["NeuronDeepLift"],
                             attribute_to_layer_input=True)


def test_layer_deeplift_at_a_modules_input_skips_the_modules_rule():
    """Captum's LayerDeepLift(relu, attribute_to_layer_input=True) on Linear -> ReLU -> Linear:
    written here by hand, it is Δz * 1[z > 0] * w (the ReLU's plain gradient), not DeepLIFT's
    Δz * (relu(z) - relu(z'))/Δz * w = (relu(z) - relu(z')) * w, which sums to Δt. Captum's value is
    checked against that hand formula, then compare_captum_layer reproduces it and names the bug."""
    from captum.attr import LayerDeepLift
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    rng = np.random.default_rng(0)
    x, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)) * 0.5
    peer = LayerDeepLift(model, model[1]).attribute(torch.tensor(x), torch.tensor(b),
                                                    attribute_to_layer_input=True).detach().numpy()
    w1, c1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w2 = model[2].weight.detach().numpy()[0]
    z, zr = x @ w1.T + c1, b @ w1.T + c1
    np.testing.assert_allclose(peer, (z - zr) * (z > 0) * w2, rtol=0, atol=1e-14)
    report = compare_captum_layer(model, x, "_1", b, methods=["LayerDeepLift"], attribute_to_layer_input=True)
    (entry,) = report.entries
    assert entry.verdict == "peer_bug" and matched(entry)[0].size < 1e-12, report.table()
    (bug,) = [c for c in entry.causes if "attribute_to_layer_input=True" in c.description]
    rescale = (np.maximum(z, 0) - np.maximum(zr, 0)) * w2       # DeepLIFT at the ReLU's input, by hand
    size = np.max([np.max(np.abs(p - r)) / np.max(np.abs(r)) for p, r in zip(peer, rescale)])
    assert bug.kind == "peer_bug" and bug.size == pytest.approx(size, rel=1e-12)


def test_every_layer_and_neuron_method_on_a_model_of_two_inputs():
    """forward(a, b) = head(relu(relu(A a) + B b)): Captum gets tuples, refattr the packed graph;
    every Captum result is reproduced to rounding and every difference explained. Independently,
    Captum's NeuronGradient per input equals torch's own autograd of that neuron."""
    from captum.attr import NeuronGradient
    from torch import nn

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(3, 4), nn.Linear(2, 4), nn.Linear(4, 2)
            self.ra, self.r = nn.ReLU(), nn.ReLU()

        def forward(self, a, b):
            return self.head(self.r(self.ra(self.a(a)) + self.b(b)))

    torch.manual_seed(5)
    model = TwoInputs().double().eval()
    rng = np.random.default_rng(5)
    xa, xb = rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    ba, bb = rng.normal(size=(3, 3)) * 0.3, rng.normal(size=(3, 2)) * 0.3
    report = compare_captum_layer(model, (xa, xb), "r", (ba, bb), targets=1, neuron=(2,))
    assert report.all_explained and report.peer_correct, report.table()
    assert len(report.entries) == 7
    for entry in report.entries:
        if entry.verdict != "agree":
            assert matched(entry)[0].kind == "rounding" and matched(entry)[0].size < 1e-12, entry
    ta, tb = torch.tensor(xa, requires_grad=True), torch.tensor(xb, requires_grad=True)
    captum = NeuronGradient(model, model.r).attribute((ta, tb), (2,))
    hidden = model.r(model.ra(model.a(ta)) + model.b(tb))[:, 2].sum()
    for got, want in zip(captum, torch.autograd.grad(hidden, (ta, tb))):
        np.testing.assert_allclose(got.detach().numpy(), want.numpy(), rtol=0, atol=1e-15)


def test_multiply_by_inputs_false_for_the_layer_and_neuron_classes():
    """Linear -> ReLU -> Linear -> ReLU -> Linear, layer = the first ReLU, neuron 2. Written here by
    hand from the weights and checked against what Captum returns with the flag: the gradient at the
    layer (w3 diag(relu' at z2) W2) and the neuron's DeepLIFT multipliers ((relu(z) - relu(z')) / Δz
    times W1[2]); the report's agreement ties refattr to them; the mean gradient at the layer along the
    layer's path, by hand, against refattr's. The neuron's mean gradient is compared
    with refattr's exact one (tested against kinks in closed form in test_captum_multipliers.py):
    Captum reproduced, its Gauss-Legendre sum an approximation."""
    from torch import nn

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    rng = np.random.default_rng(3)
    x, b = rng.normal(size=(3, 3)) * 2, rng.normal(size=(3, 3))
    report = compare_captum_layer(model, x, "_1", b, targets=1, neuron=(2,), multiply_by_inputs=False)
    assert report.all_explained, report.table()
    by_name = {e.method.split("[")[0]: e for e in report.entries}
    for name in ("LayerConductance", "LayerDeepLift"):
        assert by_name[name].verdict == "skipped" and "multiply_by_inputs=False" in by_name[name].notes[0]
    for name in ("LayerGradientXActivation", "NeuronDeepLift", "NeuronIntegratedGradients",
                 "LayerIntegratedGradients"):
        entry = by_name[name]
        assert "multiply_by_inputs=False" in entry.method
        reproduced = matched(entry)
        assert entry.verdict in ("agree", "approximation", "convention") and (not reproduced or
                                                                                reproduced[0].size < 1e-12), entry
    assert by_name["LayerGradientXActivation"].verdict == "agree"
    assert by_name["NeuronDeepLift"].verdict == "agree"
    # the quantities by hand, against what Captum returns with the flag (Captum itself, so the entries'
    # agreement above ties refattr to them)
    from captum.attr import LayerGradientXActivation, NeuronDeepLift

    w1, c1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w2, c2 = model[2].weight.detach().numpy(), model[2].bias.detach().numpy()
    w3 = model[4].weight.detach().numpy()[1]
    z1 = x @ w1.T + c1
    z2 = np.maximum(z1, 0) @ w2.T + c2
    grad_layer = (w3 * (z2 > 0)) @ w2
    got = LayerGradientXActivation(model, model[1], multiply_by_inputs=False).attribute(
        torch.tensor(x), target=1).detach().numpy()
    np.testing.assert_allclose(got, grad_layer, rtol=0, atol=1e-14)
    zr = b @ w1.T + c1
    dz = z1[:, 2] - zr[:, 2]
    m = np.where(dz != 0, (np.maximum(z1[:, 2], 0) - np.maximum(zr[:, 2], 0)) / np.where(dz != 0, dz, 1), 0.0)
    with pytest.warns(UserWarning):
        got = NeuronDeepLift(model, model[1], multiply_by_inputs=False).attribute(
            torch.tensor(x), (2,), torch.tensor(b)).detach().numpy()
    np.testing.assert_allclose(got, m[:, None] * w1[2], rtol=0, atol=1e-14)
    # the mean gradient at the layer along a(x') -> a(x): z2 is affine in α, each unit switches at a
    # known α, and between switches the gradient is w3 diag(open units) W2
    from refattr.interop.compare_layers import _layer_mean_gradient
    from refattr.interop import from_torch

    a, a_ref = np.maximum(z1, 0), np.maximum(zr, 0)
    expected = np.zeros_like(a)
    for n in range(3):
        s0, s1 = w2 @ a_ref[n] + c2, w2 @ (a[n] - a_ref[n])
        edges = sorted({0.0, 1.0} | {float(-u / v) for u, v in zip(s0, s1) if v != 0 and 0 < -u / v < 1})
        for lo, hi in zip(edges[:-1], edges[1:]):
            expected[n] += (hi - lo) * (w3 * ((s0 + (lo + hi) / 2 * s1) > 0)) @ w2
    net = from_torch(model, input_shape=(3,))
    np.testing.assert_allclose(_layer_mean_gradient(net, x, b, np.full(3, 1), 2), expected, rtol=0, atol=1e-14)
