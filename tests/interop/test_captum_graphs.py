"""compare_captum on graphs: the exported torch module computes the graph, Captum agrees with
refattr where its hooks see one reader per tensor (a ResNet block), and where a hooked module
shares its input with another reader (relu(h) + h) or a product of two tensors appears, Captum's
result is reproduced exactly and the difference is named.

Expected values: closed forms worked out in the comments (the fan-out case by hand), Captum's own
output (the sizes are recomputed here from it), and refattr's methods.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

from refattr import Add, Concat, Conv2D, Dense, Flatten, Graph, MaxPool2D, Mul, ReLU, Sigmoid, Tanh  # noqa: E402
from refattr import deeplift, guided_backprop  # noqa: E402
from refattr.errors import ArgumentError  # noqa: E402
from refattr.interop import compare_captum, to_torch  # noqa: E402
from refattr.interop import captum_conventions as cc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def relu_plus_skip():
    """y = relu(h) + h with h = x: the ReLU and the skip connection both read h."""
    return Graph("x", [("h", Dense([[1.0]]), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "h")),
                       ("y", Dense([[1.0]]), "r")])


def gated(rng):
    return Graph("x", [("h", Dense(rng.normal(size=(5, 4)), rng.normal(size=5)), "x"), ("a", ReLU(), "h"),
                       ("r", Add(), ("a", "h")), ("t", Tanh(), "r"), ("g", Sigmoid(), "h"), ("m", Mul(), ("t", "g")),
                       ("c", Concat(), ("m", "a")), ("y", Dense(rng.normal(size=(3, 10))), "c")])


def resnet_block(rng, shape=(2, 6, 6)):
    def conv(c_out, c_in, k, **kw):
        return Conv2D(rng.normal(size=(c_out, c_in, k, k)) / np.sqrt(c_in * k * k), rng.normal(size=c_out) * 0.3, **kw)

    nodes = [("c1", conv(4, 2, 3, stride=2, padding=1), "x"), ("r1", ReLU(), "c1"), ("c2", conv(4, 4, 3, padding=1), "r1"),
             ("down", conv(4, 2, 1, stride=2), "x"), ("sum", Add(), ("c2", "down")), ("r2", ReLU(), "sum"),
             ("f", Flatten(), "r2"), ("y", Dense(rng.normal(size=(3, 36)) / 6), "f")]
    return Graph("x", nodes, input_shape=shape)


def test_the_exported_module_computes_the_graph(rng):
    for net, x in ((gated(rng), rng.normal(size=(3, 4))), (resnet_block(rng), rng.normal(size=(2, 2, 6, 6)))):
        module = to_torch(net)
        with torch.no_grad():
            out = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, net(x), rtol=1e-13, atol=1e-14)
    two = Graph(("x1", "x2"), [("c", Concat(), ("x1", "x2")), ("y", Dense([[1.0, 2.0, -1.0]]), "c")])
    with torch.no_grad():
        out = to_torch(two)(torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[2.0, 3.0]], dtype=torch.float64))
    assert out.item() == 1.0 + 4.0 - 3.0


def test_captum_drops_the_skip_connection_at_a_shared_relu_input_by_hand():
    # x = 2, x' = 0: f(2) - f(0) = relu(2) + 2 = 4, and refattr's Rescale gives 4 (the ReLU's
    # multiplier 2/2 = 1 plus the skip's 1). Captum's hook on h replaces h's gradient 1 + 1 = 2 by
    # the ReLU's own term 1 * 2/2 = 1, so Captum gives 2 * 1 = 2.
    net = relu_plus_skip()
    x, b = np.array([[2.0]]), np.array([[0.0]])
    assert deeplift(net, x, b).values.item() == 4.0
    peer = captum_attr.DeepLift(to_torch(net)).attribute(torch.tensor(x), torch.tensor(b), target=0)
    assert peer.item() == 2.0
    assert cc.captum_deeplift(net, x, b, 0).item() == 2.0
    assert cc.captum_deeplift(net, x, b, 0, shared_input_replaced=False).item() == 4.0
    report = compare_captum(net, x, baseline=b, targets=[0], methods=["DeepLift"])
    entry = report["DeepLift"]
    assert entry.verdict == "peer_bug"
    bug = [c for c in entry.causes if c.kind == "peer_bug"]
    assert len(bug) == 1 and "'h' (read by ReLU, Add)" in bug[0].description
    assert bug[0].size == pytest.approx(abs(peer.item() - 4.0) / 4.0, rel=1e-12)      # 50 %
    assert not report.peer_correct and report.all_explained


def test_guided_backprop_clamps_the_sum_of_every_readers_term():
    # y = relu(h) + h at x = -1 (h = -1): the ReLU is closed, its own term is 0, the skip sends 1.
    # refattr's guided backprop: 0 (ReLU) + 1 (skip) = 1. Captum clamps the sum at h: relu(0 + 1) = 1;
    # with the output weight -1 the skip sends -1 and Captum gives relu(-1) = 0 where refattr gives -1.
    net = Graph("x", [("h", Dense([[1.0]]), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "h")), ("y", Dense([[-1.0]]), "r")])
    x = np.array([[-1.0]])
    assert guided_backprop(net, x, 0).values.item() == -1.0
    peer = captum_attr.GuidedBackprop(to_torch(net)).attribute(torch.tensor(x, requires_grad=True), target=0)
    assert peer.item() == 0.0
    assert cc.captum_modified_relu(net, x, 0).item() == 0.0
    assert compare_captum(net, x, targets=[0], methods=["GuidedBackprop"])["GuidedBackprop"].verdict == "peer_bug"


def test_every_difference_on_a_gated_graph_is_reproduced_and_named(rng):
    net = gated(rng)
    x, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4)) * 0.3
    report = compare_captum(net, x, baseline=b, targets=np.array([0, 1, 2, 0]),
                            methods=["DeepLift", "GuidedBackprop", "Deconvolution", "Saliency"])
    assert report.all_explained, report.table()
    assert report["Saliency"].verdict == "agree"
    for method in ("DeepLift", "GuidedBackprop", "Deconvolution"):
        entry = report[method]
        assert entry.verdict == "peer_bug", report.table()
        matched = [c for c in entry.causes if c.description.startswith("peer vs")]
        assert matched and matched[0].kind == "rounding" and matched[0].size < 1e-12
    kinds = {c.description.split(" (")[0] for c in report["DeepLift"].causes if c.kind == "convention"}
    assert any(k.startswith("Captum has no DeepLift rule for a product of two tensors") for k in kinds)


def test_captum_agrees_on_a_resnet_block_where_each_hooked_input_has_one_reader(rng):
    net = resnet_block(rng)
    x, b = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(2, 2, 6, 6)) * 0.3
    report = compare_captum(net, x, baseline=b, targets=np.array([0, 2]),
                            methods=["Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "DeepLift"])
    for method in ("Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "DeepLift"):
        assert report[method].verdict == "agree", report.table()


def test_a_graph_with_max_pooling_after_a_join_is_reproduced(rng):
    # Add -> ReLU -> MaxPool2D: the #1104 pair (ReLU -> MaxPool) sits after a join
    net = Graph("x", [("c", Conv2D(rng.normal(size=(2, 1, 2, 2)), rng.normal(size=2)), "x"),
                      ("d", Conv2D(rng.normal(size=(2, 1, 2, 2))), "x"), ("s", Add(), ("c", "d")), ("r", ReLU(), "s"),
                      ("p", MaxPool2D(2, stride=1), "r"), ("f", Flatten(), "p"), ("y", Dense(rng.normal(size=(2, 12))), "f")],
                input_shape=(1, 4, 5))
    x, b = rng.normal(size=(3, 1, 4, 5)), rng.normal(size=(3, 1, 4, 5)) * 0.3
    entry = compare_captum(net, x, baseline=b, targets=np.array([0, 1, 0]), methods=["DeepLift"])["DeepLift"]
    matched = [c for c in entry.causes if c.description.startswith("peer vs")]
    assert matched and matched[0].kind == "rounding", entry


def test_captums_softmax_rule_is_reproduced_and_its_batch_dependence_named(rng):
    from refattr import Sequential, Softmax
    net = Sequential([Dense(rng.normal(size=(5, 4)), rng.normal(size=5)), ReLU(), Dense(rng.normal(size=(3, 5))),
                      Softmax(dim=1)])
    x, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4)) * 0.3
    entry = compare_captum(net, x, baseline=b, targets=np.array([0, 1, 2, 0]), methods=["DeepLift"])["DeepLift"]
    matched = [c for c in entry.causes if c.description.startswith("peer vs")]
    assert matched[0].kind == "rounding" and matched[0].size < 1e-12
    assert entry.verdict == "peer_bug" and any("Softmax rule" in c.description for c in entry.causes)
    # the batch dependence itself: example 0 alone and in the batch differ under Captum's rule
    alone = cc.captum_deeplift(net, x[:1], b[:1], 0)
    together = cc.captum_deeplift(net, x, b, np.array([0, 1, 2, 0]))[:1]
    assert np.abs(alone - together).max() > 1e-6
    assert np.abs(deeplift(net, x[:1], b[:1], 0).values
                  - deeplift(net, x, b, np.array([0, 1, 2, 0])).values[:1]).max() < 1e-15


class PaperExample(torch.nn.Module):
    """The IG paper's example 1, f(x1, x2) = relu(relu(x1) - 1 - relu(x2)), written with F.relu."""

    def forward(self, x1, x2):
        relu = torch.nn.functional.relu
        return relu(relu(x1) - 1 - relu(x2))


def test_functional_relus_and_several_inputs_the_ig_papers_example():
    # At (3, 1), x' = 0: every ReLU is open on the path's end, so Captum, which hooks modules only
    # and sees no module here, returns x * gradient = (3 * 1, 1 * -1) = (3, -1); DeepLIFT Rescale
    # gives (1.5, -0.5) (the IG paper, section 2.2), as integrated gradients does.
    pair = (np.array([[3.0]]), np.array([[1.0]]))
    peer = captum_attr.DeepLift(PaperExample()).attribute(tuple(torch.tensor(a) for a in pair))
    assert [p.item() for p in peer] == [3.0, -1.0]
    report = compare_captum(PaperExample(), pair, methods=["DeepLift", "GuidedBackprop", "Saliency"])
    assert report.all_explained and report["Saliency"].verdict == "agree", report.table()
    entry = report["DeepLift"]
    assert entry.verdict == "convention"
    assert entry.max_abs_diff == pytest.approx(1.5, rel=1e-15)      # |3 - 1.5|
    assert any("Captum hooks modules only" in c.description and "'relu_1' (ReLU)" in c.description
               for c in entry.causes)
    assert report["GuidedBackprop"].verdict == "convention"


def test_several_inputs_of_a_refattr_graph_agree_with_captum(rng):
    two = Graph(("a", "b"), [("h", Dense(rng.normal(size=(4, 3)), rng.normal(size=4)), "a"), ("r", ReLU(), "h"),
                             ("c", Concat(), ("r", "b")), ("y", Dense(rng.normal(size=(2, 6))), "c")])
    x = (rng.normal(size=(3, 3)), rng.normal(size=(3, 2)))
    b = (0.0, rng.normal(size=(1, 2)))          # a scalar for one input, a (1, *shape) row for the other
    report = compare_captum(two, x, baseline=b, targets=np.array([0, 1, 1]),
                            methods=["Saliency", "InputXGradient", "DeepLift", "IntegratedGradients"],
                            ig_methods=["gausslegendre"])
    assert report.all_explained, report.table()
    for method in ("Saliency", "InputXGradient", "DeepLift"):
        assert report[method].verdict == "agree", report.table()
    with pytest.raises(ArgumentError, match=r"baseline: expected one entry per input \(2: \['a', 'b'\]\), got 3"):
        compare_captum(two, x, baseline=(0.0, 0.0, 0.0), methods=["Saliency"])


def test_captum_on_a_conv1d_genomics_model_is_reproduced():
    # one-hot DNA (4 x 20), Conv1d -> ReLU -> MaxPool1d (overlapping windows) -> Linear: Captum's
    # max-pool rule and its stale output gradient (ReLU -> MaxPool, issue #1104) on 1-D pooling
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(3, stride=2),
                                torch.nn.Flatten(), torch.nn.Linear(6 * 9, 2)).double().eval()
    rng = np.random.default_rng(0)
    x = np.eye(4)[rng.integers(0, 4, size=(3, 20))].transpose(0, 2, 1)
    report = compare_captum(model, x, baseline=np.full_like(x, 0.25), targets=np.array([0, 1, 0]),
                            methods=["DeepLift", "Saliency", "GuidedBackprop"])
    assert report.all_explained, report.table()
    entry = report["DeepLift"]
    matched = [c for c in entry.causes if c.description.startswith("peer vs")]
    assert matched[0].kind == "rounding" and matched[0].size < 1e-12
    assert entry.verdict == "peer_bug" and any(c.issue == "Captum issue #1104" for c in entry.causes)
