"""Softmax and LogSoftmax: forward, VJP and JVP against torch in float64, their DeepLIFT rules
(docs/softmax.md), and Captum 0.9.0's softmax rule reproduced.

Where every expected number comes from:

- forward, VJP, JVP: ``torch.softmax`` / ``torch.log_softmax`` and torch autograd in float64, and the
  closed-form Jacobians diag(s) - s s^T and I - 1 s^T written here.
- the rules' multipliers: their closed form μ_j = s'_j φ(Δx_j) / φ(ΔL), r_i = s'_i φ(Δz_i),
  φ(t) = (e^t - 1) / t, evaluated by mpmath at 60 digits from the same float64 inputs (so the stable
  float64 branches are held to the unrounded formula), and a hand computation on two logits.
- summation-to-delta: the identity Σ_j m_ij Δx_j = Δy_i, with Δy_i computed in mpmath at 60 digits.
  Tolerance 1e-12 of rounding's scale for one row: every multiplier of row i carries an error of a
  few ulps of r_i (1 + max_j μ_j), the size of its terms before δ_ij - μ_j cancels (which it does
  when μ_i ~ 1: saturation), so the sum's rounding is bounded by that times Σ_j |Δx_j|; a wrong
  formula is off by O(1) of it.
- two logits: centered Softmax equals Rescale on σ(x_1 - x_2), σ's divided difference written here.
- Captum: captum.attr.DeepLift itself on nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1)) in float64.
"""

import warnings

import mpmath as mp
import numpy as np
import pytest

from refattr import Dense, ReLU, Sequential, deeplift
from refattr.errors import ArgumentError, RefattrError, RuleError, ShapeError
from refattr.interop._captum_softmax import captum_softmax_grad_input
from refattr.layers import SOFTMAX_RULES, LogSoftmax, Softmax
from refattr.layers.base import DeltaPair
from refattr.layers.registry import info
from refattr.methods.deeplift import deeplift_layers

RTOL = 1e-12
LAYERS = (Softmax, LogSoftmax)
mp.mp.dps = 60


def torch_reference(cls, x, dim, g):
    """torch's forward and autograd VJP in float64."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = (torch.softmax if cls is Softmax else torch.log_softmax)(t, dim)
    y.backward(torch.tensor(g, dtype=torch.float64))
    return y.detach().numpy(), t.grad.numpy()


# ------------------------------------------------------------------------------------------------
# forward, VJP, JVP
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape, dim", [((4, 5), 1), ((4, 5), -1), ((2, 3, 4), 1), ((2, 3, 4), 2),
                                        ((2, 3, 2, 4), -2)])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_forward_and_vjp_match_torch(cls, shape, dim, scale):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * scale           # scale 1e3: logits of ±1e3, softmax saturates
    g = rng.normal(size=shape)
    layer = cls(dim)
    y, cache = layer.forward(x)
    y_torch, vjp_torch = torch_reference(cls, x, dim, g)
    assert np.all(np.isfinite(y))                 # log_softmax of -2e3 below the top is -2e3, not -inf
    np.testing.assert_allclose(y, y_torch, rtol=RTOL, atol=1e-300)
    vjp = layer.vjp(g, cache)
    np.testing.assert_allclose(vjp, vjp_torch, rtol=0, atol=RTOL * np.abs(g).max() * (1 + np.abs(vjp_torch).max()))


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_jvp_is_the_closed_form_jacobian(cls):
    rng = np.random.default_rng(1)
    x, d = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    layer = cls(1)
    _, cache = layer.forward(x)
    for n in range(3):
        e = np.exp(x[n] - x[n].max())
        s = e / e.sum()
        jac = np.diag(s) - np.outer(s, s) if cls is Softmax else np.eye(4) - np.outer(np.ones(4), s)
        np.testing.assert_allclose(layer.jvp(d, cache)[n], jac @ d[n], rtol=0, atol=1e-15)


def test_softmax_of_a_hand_example():
    # logits log 1, log 3: softmax (1/4, 3/4), log softmax (log 1/4, log 3/4)
    x = np.log([[1.0, 3.0]])
    np.testing.assert_allclose(Softmax().forward(x)[0], [[0.25, 0.75]], rtol=1e-15)
    np.testing.assert_allclose(LogSoftmax().forward(x)[0], np.log([[0.25, 0.75]]), rtol=1e-15)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_dim_is_checked(cls):
    with pytest.raises(ArgumentError, match=r"dim: 0 is the batch axis"):
        cls(0)
    with pytest.raises(ArgumentError, match=r"dim: None is torch's deprecated implicit dim"):
        cls(None)
    with pytest.raises(ArgumentError, match=r"dim: expected an int"):
        cls(True)
    with pytest.raises(ShapeError, match=r"dim 3 is axis 3; expected an axis of the example, 1 to 2"):
        cls(3).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ShapeError, match=r"dim -3 is axis 0"):
        cls(-3).output_shape((5, 4))
    assert cls(-1).output_shape((5, 4)) == (5, 4)


def test_declarations():
    assert info(Softmax).captum == "softmax" and info(LogSoftmax).captum == "gradient"
    assert info(Softmax).onnx_attributes == {"axis": "dim"} == info(LogSoftmax).onnx_attributes
    assert not info(Softmax).piecewise_linear and not info(LogSoftmax).piecewise_linear
    assert info(Softmax).torch_modules == ("Softmax",) and info(LogSoftmax).onnx_ops == ("LogSoftmax",)


# ------------------------------------------------------------------------------------------------
# the DeepLIFT rules
# ------------------------------------------------------------------------------------------------

def layer_multipliers(layer, x, x_ref, softmax_rule=None, rule="rescale"):
    """The (C, C) multiplier matrix m_ij of each example of a (N, C) batch, from deeplift_backward
    with a one-hot output multiplier per output i."""
    y, cache = layer.forward(x)
    y_ref, cache_ref = layer.forward(x_ref)
    delta = x - x_ref
    inp = DeltaPair(x, x_ref, np.maximum(delta, 0), np.minimum(delta, 0))
    _, _, dl_cache = layer.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule, maxpool_rule=None,
                                            softmax_rule=softmax_rule)
    n, c = x.shape
    m = np.empty((n, c, c))
    for i in range(c):
        top = np.zeros_like(y)
        top[:, i] = 1.0
        m[:, i, :] = layer.deeplift_backward(top, top, dl_cache)[0]
    return m


def mp_row(cls, x, x_ref, centered):
    """The closed form of the rule in mpmath, for one example: (m, Δy, scale), m a list of rows,
    scale[i] = r_i (1 + max_j μ_j) the size of the terms of row i before δ_ij - μ_j cancels."""
    x, x_ref = [mp.mpf(v) for v in x], [mp.mpf(v) for v in x_ref]
    c = len(x)
    if centered:
        mx, mr = mp.fsum(x) / c, mp.fsum(x_ref) / c
        x, x_ref = [v - mx for v in x], [v - mr for v in x_ref]
    lse = lambda v: mp.log(mp.fsum(mp.exp(t) for t in v))
    ll, lr = lse(x), lse(x_ref)
    s = [mp.exp(v - ll) for v in x]
    sr = [mp.exp(v - lr) for v in x_ref]
    phi = lambda t: mp.mpf(1) if t == 0 else mp.expm1(t) / t
    dl = ll - lr
    mu = [sr[j] * phi(x[j] - x_ref[j]) / phi(dl) for j in range(c)]
    dz = [(x[i] - ll) - (x_ref[i] - lr) for i in range(c)]
    if cls is Softmax:
        r = [sr[i] * phi(dz[i]) for i in range(c)]
        dy = [s[i] - sr[i] for i in range(c)]
    else:
        r = [mp.mpf(1)] * c
        dy = dz
    m = [[r[i] * ((1 if i == j else 0) - mu[j]) for j in range(c)] for i in range(c)]
    if centered:        # the transpose of the centering: subtract each row's mean
        m = [[m[i][j] - mp.fsum(m[i]) / c for j in range(c)] for i in range(c)]
    return m, dy, [float(r[i] * (1 + max(mu))) for i in range(c)]


def cases():
    rng = np.random.default_rng(5)
    out = []
    for scale in (0.5, 3.0, 30.0, 300.0, 1e3):          # 300 and 1e3: saturated softmax
        x_ref = rng.normal(size=(3, 4)) * scale
        out.append((f"scale {scale}", x_ref + rng.normal(size=(3, 4)) * scale, x_ref))
    x_ref = rng.normal(size=(2, 4))
    out.append(("Δx 1e-13", x_ref + 1e-13 * rng.normal(size=(2, 4)), x_ref))
    x = x_ref + rng.normal(size=(2, 4))
    x[:, 1] = x_ref[:, 1]
    out.append(("some Δx_j == 0", x, x_ref))
    return out


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("softmax_rule", SOFTMAX_RULES)
@pytest.mark.parametrize("name, x, x_ref", cases(), ids=[c[0] for c in cases()])
def test_rule_matches_its_closed_form_and_sums_to_delta(cls, softmax_rule, name, x, x_ref):
    layer = cls(1)
    m = layer_multipliers(layer, x, x_ref, softmax_rule)
    delta = x - x_ref
    for n in range(x.shape[0]):
        m_mp, dy_mp, scales = mp_row(cls, x[n], x_ref[n], softmax_rule == "centered")
        for i in range(x.shape[1]):
            row_scale = scales[i]
            expected = np.array([float(v) for v in m_mp[i]])
            np.testing.assert_allclose(m[n, i], expected, rtol=0, atol=RTOL * row_scale + 1e-300)
            # summation-to-delta, against Δy in mpmath (the float64 forward rounds Δy itself)
            total = mp.fsum(mp.mpf(m[n, i, j]) * mp.mpf(delta[n, j]) for j in range(x.shape[1]))
            assert abs(float(total - dy_mp[i])) <= RTOL * row_scale * np.abs(delta[n]).sum() + 1e-300


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("softmax_rule", SOFTMAX_RULES)
@pytest.mark.parametrize("size", [0.0, 1e-300, 1e-15, 1e-13])
def test_rule_tends_to_the_jacobian(cls, softmax_rule, size):
    """As Δx -> 0 every rule's multiplier is the Jacobian at x (= at x'): exactly at Δx = 0, and
    within O(|Δx|) <= 1e-12 for |Δx| <= 1e-13."""
    rng = np.random.default_rng(2)
    x_ref = rng.normal(size=(3, 5)) * 4
    x = x_ref + size * rng.normal(size=(3, 5))
    m = layer_multipliers(cls(1), x, x_ref, softmax_rule)
    for n in range(3):
        e = np.exp(x[n] - x[n].max())
        s = e / e.sum()
        jac = np.diag(s) - np.outer(s, s) if cls is Softmax else np.eye(5) - np.outer(np.ones(5), s)
        np.testing.assert_allclose(m[n], jac, rtol=0, atol=RTOL)


def test_the_two_logit_hand_example():
    # LogSoftmax, rule "logsumexp", x = (ln 3, 0), x' = (0, 0): L(x) = ln 4, L(x') = ln 2, ΔL = ln 2;
    # s' = (1/2, 1/2); μ_1 = (1/2) φ(ln 3) / φ(ln 2) = (1/2)(2 / ln 3)(ln 2 / 1) = ln 2 / ln 3,
    # μ_2 = (1/2) φ(0) / φ(ln 2) = ln 2 / 2; output 1: m = (1 - μ_1, -μ_2),
    # C = ((1 - ln2/ln3) ln 3, 0) = (ln 3 - ln 2, 0) = (ln(3/4) - ln(1/2), 0).
    x, x_ref = np.array([[np.log(3.0), 0.0]]), np.zeros((1, 2))
    m = layer_multipliers(LogSoftmax(), x, x_ref, "logsumexp")[0]
    np.testing.assert_allclose(m[0], [1 - np.log(2) / np.log(3), -np.log(2) / 2], rtol=1e-14)
    np.testing.assert_allclose(m[1], [-np.log(2) / np.log(3), 1 - np.log(2) / 2], rtol=1e-14)


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_two_centered_logits_are_rescale_on_the_sigmoid_of_their_difference(scale):
    """softmax(x)_1 = σ(x_1 - x_2). "centered" gives C_1 = w Δx_1, C_2 = -w Δx_2 with
    w = (σ(u) - σ(u')) / (u - u'), u = x_1 - x_2: DeepLIFT's Rescale on the sigmoid."""
    rng = np.random.default_rng(3)
    x_ref = rng.normal(size=(4, 2)) * scale
    x = x_ref + rng.normal(size=(4, 2)) * scale
    m = layer_multipliers(Softmax(), x, x_ref, "centered")
    u, u_ref = x[:, 0] - x[:, 1], x_ref[:, 0] - x_ref[:, 1]
    sigma = lambda v: 1 / (1 + mp.exp(-mp.mpf(v)))
    w = np.array([float((sigma(a) - sigma(b)) / (mp.mpf(a) - mp.mpf(b))) for a, b in zip(u, u_ref)])
    # to rounding of r_1 = Δs_1 / Δz_1 (z = log s), the size of the terms before 1 - μ_1 cancels:
    # in saturation (scale 40) w is far below r_1 and is then accurate in absolute terms only
    r = np.array([float((sigma(a) - sigma(b)) / (mp.log(sigma(a)) - mp.log(sigma(b)))) for a, b in zip(u, u_ref)])
    np.testing.assert_allclose(m[:, 0, 0], w, rtol=1e-12, atol=1e-12 * r.max())
    assert np.all(np.abs(m[:, 0, 0] - w) <= 1e-12 * (np.abs(w) + r))
    np.testing.assert_array_equal(m[:, 0, 1], -m[:, 0, 0])     # the row sums to 0


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_shift_invariance(cls):
    """Softmax ignores a constant added to an example's logits. Both rules give the same multipliers
    when the same constant is added to x and x'; "centered" also when x and x' get different ones,
    and its rows sum to 0 (as the Jacobian's: J 1 = 0), which "logsumexp"'s do not."""
    rng = np.random.default_rng(4)
    x_ref = rng.normal(size=(3, 5)) * 3
    x = x_ref + rng.normal(size=(3, 5)) * 3
    c = np.array([[7.0], [-250.0], [0.5]])         # one constant per example
    for rule in SOFTMAX_RULES:
        np.testing.assert_allclose(layer_multipliers(cls(1), x + c, x_ref + c, rule),
                                   layer_multipliers(cls(1), x, x_ref, rule), rtol=0, atol=1e-12)
    centered = layer_multipliers(cls(1), x, x_ref, "centered")
    np.testing.assert_allclose(layer_multipliers(cls(1), x + c, x_ref - 2 * c, "centered"), centered,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(centered.sum(axis=2), 0.0, atol=1e-15)
    other = layer_multipliers(cls(1), x + c, x_ref - 2 * c, "logsumexp")
    assert np.abs(other - layer_multipliers(cls(1), x, x_ref, "logsumexp")).max() > 1e-3
    assert np.abs(other.sum(axis=2)).max() > 1e-3


@pytest.mark.parametrize("softmax_rule", SOFTMAX_RULES)
def test_a_pure_shift(softmax_rule):
    """x = x' + c 1: LogSoftmax does not change. Δx̄ = 0 and ΔL = c, so μ = s' under both rules:
    m_ij = δ_ij - s'_j, C_ij = c (δ_ij - s'_j), summing to c - c = 0 for every output."""
    rng = np.random.default_rng(11)
    x_ref = rng.normal(size=(3, 5)) * 3
    c = np.array([[7.0], [-25.0], [0.5]])
    s_ref = np.exp(x_ref - x_ref.max(1, keepdims=True))
    s_ref /= s_ref.sum(1, keepdims=True)
    m = layer_multipliers(LogSoftmax(), x_ref + c, x_ref, softmax_rule)
    np.testing.assert_allclose(m, np.eye(5)[None] - s_ref[:, None, :], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_rule_names_and_reveal_cancel(cls):
    rng = np.random.default_rng(6)
    x_ref = rng.normal(size=(2, 3))
    x = x_ref + rng.normal(size=(2, 3))
    default = layer_multipliers(cls(1), x, x_ref, None)
    np.testing.assert_array_equal(default, layer_multipliers(cls(1), x, x_ref, "centered"))
    assert np.abs(default - layer_multipliers(cls(1), x, x_ref, "logsumexp")).max() > 1e-3
    # RevealCancel is an element-wise rule: the layer gives both parts one multiplier, from Δx
    np.testing.assert_array_equal(layer_multipliers(cls(1), x, x_ref, None, rule="reveal_cancel"), default)
    with pytest.raises(RuleError, match=r"softmax_rule: unknown rule 'shapley'.*\('centered', 'logsumexp'\)"):
        layer_multipliers(cls(1), x, x_ref, "shapley")


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_whole_network_deeplift_sums_to_delta(cls, rule):
    """Dense -> ReLU -> Dense -> Softmax, one target per example: summation-to-delta of the network,
    against the network's own outputs (the layer identities are each exact to rounding)."""
    rng = np.random.default_rng(8)
    net = Sequential([Dense(rng.normal(size=(6, 4)), rng.normal(size=6)), ReLU(),
                      Dense(rng.normal(size=(3, 6)) * 3, rng.normal(size=3)), cls(dim=1)])
    x, baseline = rng.normal(size=(5, 4)) * 2, rng.normal(size=4)
    target = np.array([0, 1, 2, 1, 0])
    result = deeplift(net, x, baseline, target=target, rule=rule)
    out, out_ref = net(x), net(baseline[None])
    delta_t = out[np.arange(5), target] - out_ref[0, target]
    scale = np.abs(result.values).sum(axis=1) + np.abs(out[np.arange(5), target]) + np.abs(out_ref[0, target])
    assert np.all(np.abs(result.values.sum(axis=1) - delta_t) <= RTOL * scale)
    for layer in deeplift_layers(net, x, baseline, target=target, rule=rule):
        assert np.all(np.abs(layer.completeness_gap) <= RTOL * (scale + np.abs(layer.contributions).sum(axis=1)))
    # the target selects the output: explaining output 2 for every example changes the values
    other = deeplift(net, x, baseline, target=2, rule=rule)
    assert np.abs(other.values[0] - result.values[0]).max() > 1e-6
    np.testing.assert_allclose(other.values[2], result.values[2], rtol=0, atol=0)


def test_from_torch_matches_torch():
    torch = pytest.importorskip("torch")
    from torch import nn

    from refattr.interop import from_torch

    torch.manual_seed(0)
    x = np.random.default_rng(9).normal(size=(5, 3)) * 4
    for last in (nn.Softmax(dim=1), nn.LogSoftmax(dim=-1)):
        model = nn.Sequential(nn.Linear(3, 4), last).double()
        net = from_torch(model)
        assert isinstance(net.layers[-1], (Softmax, LogSoftmax)) and net.layers[-1].dim == last.dim
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(net(x), expected, rtol=RTOL, atol=1e-300)
    with pytest.raises(RefattrError, match=r"Softmax dim: None is torch's deprecated implicit dim"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softmax()).double())


# ------------------------------------------------------------------------------------------------
# Captum 0.9.0's rule
# ------------------------------------------------------------------------------------------------

def captum_deeplift(model, x, baseline, target):
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # Captum warns that it sets hooks, every call
        values = captum_attr.DeepLift(model).attribute(torch.from_numpy(x).clone().requires_grad_(),
                                                       torch.from_numpy(baseline), target=target)
    return values.detach().numpy()


def reproduced(weight, bias, x, baseline, target):
    """(x - x') times the input half of the gradient Captum's hook passes on, through the Linear."""
    logits, logits_ref = x @ weight.T + bias, baseline @ weight.T + bias
    n = x.shape[0]
    grad_output = np.zeros((2 * n, weight.shape[0]))
    grad_output[np.arange(2 * n), np.concatenate([target, target])] = 1.0   # the target on both halves
    g = captum_softmax_grad_input(logits, logits_ref, grad_output)
    return (x - baseline) * (g[:n] @ weight)


def test_captum_softmax_rule_is_reproduced_and_mixes_examples():
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1)).double()
    weight, bias = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    rng = np.random.default_rng(10)
    x, baseline = rng.normal(size=(3, 3)) * 2, rng.normal(size=(3, 3))
    target = np.array([1, 3, 0])
    batch = captum_deeplift(model, x, baseline, target.tolist())
    alone = captum_deeplift(model, x[:1], baseline[:1], [1])
    for got, args in ((batch, (x, baseline, target)), (alone, (x[:1], baseline[:1], target[:1]))):
        expected = reproduced(weight, bias, *args)
        np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * np.abs(expected).max())
    # the batch-dependence defect: example 0 alone and in a batch of three get other attributions
    assert np.abs(batch[0] - alone[0]).max() > 1e-3 * np.abs(alone[0]).max()
    # ... and neither sums to Δt, while refattr's rule does
    s = lambda v: np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)
    delta_t = (s(x @ weight.T + bias) - s(baseline @ weight.T + bias))[np.arange(3), target]
    assert np.abs(batch.sum(axis=1) - delta_t).max() > 1e-3 * np.abs(delta_t).max()
    net = Sequential([Dense(weight, bias), Softmax(1)])
    ours = deeplift(net, x, baseline, target=target)
    assert np.all(np.abs(ours.values.sum(axis=1) - delta_t) <= RTOL * (np.abs(ours.values).sum(axis=1) + 1))


def test_captum_reproduction_below_eps_uses_the_gradient():
    # Δx == 0 everywhere: Captum's quotient falls back to the autograd gradient on both halves, and
    # the mean over the doubled batch is subtracted: with s = (1/2, 1/2) and g = (1, 0) the gradient
    # is s (g - <g, s>) = (1/4, -1/4), whose mean is 0, so the result is the gradient itself.
    x = np.zeros((1, 2))
    got = captum_softmax_grad_input(x, x, np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(got, [[0.25, -0.25], [0.25, -0.25]], rtol=1e-15)
    with pytest.raises(ShapeError, match=r"doubled batch"):
        captum_softmax_grad_input(x, x, np.zeros((1, 2)))


def test_deeplift_takes_the_softmax_rule_by_name():
    # both rules keep summation-to-delta on a whole network and differ from each other (they split
    # the logits' shift differently); the choice is recorded; an unknown name is refused first
    from refattr import deeplift, deeplift_layers
    from refattr.errors import RuleError
    rng = np.random.default_rng(4)
    net = Sequential([Dense(rng.normal(size=(5, 4)), rng.normal(size=5)), ReLU(), Dense(rng.normal(size=(3, 5))),
                      Softmax(dim=1)])
    x, b, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), np.array([0, 2, 1])
    out = {}
    for rule in (None, "centered", "logsumexp"):
        result = deeplift(net, x, b, target=t, softmax_rule=rule)
        assert result.options["softmax_rule"] == (rule or "centered")
        delta = net(x)[np.arange(3), t] - net(b)[np.arange(3), t]
        assert np.max(np.abs(result.values.sum(axis=1) - delta)) <= 1e-12 * np.max(np.abs(delta))
        out[rule] = result.values
    np.testing.assert_array_equal(out[None], out["centered"])
    assert np.max(np.abs(out["centered"] - out["logsumexp"])) > 1e-6
    layers = deeplift_layers(net, x, b, target=t, softmax_rule="logsumexp")
    np.testing.assert_allclose(layers[0].contributions, out["logsumexp"], rtol=1e-13, atol=1e-15)
    with pytest.raises(RuleError, match=r"softmax_rule: unknown Softmax rule 'mean'.*\('centered', 'logsumexp'\)"):
        deeplift(net, x, b, target=t, softmax_rule="mean")
    assert deeplift(Sequential([Dense(rng.normal(size=(2, 4)))]), x, target=0).options["softmax_rule"] is None
