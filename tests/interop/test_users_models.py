"""The models users have, end to end (tests/interop/users_models.py: a ResNet-style CNN, an
Inception-style block, a residual MLP written with F.relu and +, a Conv1d model on one-hot DNA, a
two-input gated model, a Softmax head), each imported from torch (and from its ONNX export).

Where every expected value comes from:

- forward outputs and gradients: the torch module itself, float64 forward and torch.autograd;
- DeepLIFT's summation-to-delta: the module's own t(x) - t(x'), never refattr's completeness gap;
- exact integrated gradients: an integrator written here (``_ig_by_bisection``) that sees only
  torch autograd gradients along the path;
- the activations' multipliers: derivatives in closed form written here (math.erfc, math.exp).

Tolerances: 1e-12 relative (``EXACT``) where refattr computes the same float64 operations in
another order (BatchNorm folded into the convolution before it reorders them); 1e-9 for the
bisection integrator, whose error is stated where it is used.
"""

import importlib.util
import io
import math
import pathlib
import warnings

import numpy as np
import pytest

from refattr import (ELU, GELU, SELU, Graph, LeakyReLU, Sequential, Sigmoid, Softmax, Softplus, Tanh, deeplift,
                     gradient, integrated_gradients)

torch = pytest.importorskip("torch")
pytest.importorskip("captum.attr")

from refattr.interop import compare_captum, from_onnx, from_torch  # noqa: E402

_spec = importlib.util.spec_from_file_location("users_models", pathlib.Path(__file__).with_name("users_models.py"))
users_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_models)

EXACT = 1e-12


@pytest.fixture(autouse=True)
def _one_thread():
    """torch and numba on one thread: these are many small batches, where worker threads only wait
    on each other (and spin for minutes when the machine's cores are busy)."""
    numba = pytest.importorskip("numba")
    threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(threads[0])
    numba.set_num_threads(threads[1])

NAMES = list(users_models.MODELS)
PIECEWISE_LINEAR = [n for n in NAMES if users_models.MODELS[n][2]]


def _relative(actual, expected):
    """max |actual - expected| / max |expected| over the whole array (normwise)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _model(name):
    """(torch model, imported refattr network, input shapes)."""
    shapes = users_models.MODELS[name][1]
    model = users_models.build(name)
    return model, from_torch(model, input_shape=shapes[0] if len(shapes) == 1 else shapes), shapes


def _data(name, shapes, n=2, seed=7):
    """(inputs, baselines), each a tuple of arrays (N, *shape), one per model input. DNA: one-hot
    sequences against the uniform background 0.25 (the usual genomics reference)."""
    rng = np.random.default_rng(seed)
    if name == "dna":
        x = np.eye(4)[rng.integers(0, 4, size=(n, shapes[0][1]))].transpose(0, 2, 1)
        return (x,), (np.full_like(x, 0.25),)
    return (tuple(rng.normal(size=(n,) + s) for s in shapes),
            tuple(0.3 * rng.normal(size=(n,) + s) for s in shapes))


def _one(arrays):
    """What refattr takes: the array for one input, the tuple for several."""
    return arrays[0] if len(arrays) == 1 else arrays


def _parts(values):
    return values if isinstance(values, tuple) else (values,)


def _torch_forward(model, arrays):
    with torch.no_grad():
        return model(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()


def _torch_gradients(model, arrays, target):
    """d model(x)[n, target] / d x by torch.autograd, one array per input."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    model(*tensors)[:, target].sum().backward()
    return tuple(t.grad.numpy() for t in tensors)


# ------------------------------------------------------------------------------------------------
# Forward, gradients and DeepLIFT against torch
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_every_outputs_gradient_equal_torch(name):
    model, net, shapes = _model(name)
    assert isinstance(net, (Graph, Sequential))
    x, _ = _data(name, shapes)
    expected = _torch_forward(model, x)
    assert _relative(net(_one(x)), expected) <= EXACT
    for target in range(expected.shape[1]):
        got = _parts(gradient(net, _one(x), target=target).values)
        for g, want in zip(got, _torch_gradients(model, x, target), strict=True):
            assert _relative(g, want) <= EXACT, (name, target)


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
@pytest.mark.parametrize("name", NAMES)
def test_deeplift_sums_to_torchs_own_output_difference(name, rule):
    model, net, shapes = _model(name)
    x, xr = _data(name, shapes)
    out, out_ref = _torch_forward(model, x), _torch_forward(model, xr)
    maxpool_rule = "delta_routing" if users_models.MODELS[name][3] else None
    # rounding relative to the outputs' size (t(x) - t(x') itself may cancel)
    scale = max(np.max(np.abs(out)), np.max(np.abs(out_ref)))
    for target in range(out.shape[1]):
        result = deeplift(net, _one(x), _one(xr), target=target, rule=rule, maxpool_rule=maxpool_rule)
        total = sum(p.reshape(p.shape[0], -1).sum(axis=1) for p in _parts(result.values))
        assert np.max(np.abs(total - (out[:, target] - out_ref[:, target]))) <= EXACT * scale, (name, target)


# ------------------------------------------------------------------------------------------------
# Exact integrated gradients against an integrator that sees only torch's gradients
# ------------------------------------------------------------------------------------------------
def _ig_by_bisection(model, x, xr, target, cells=2048, width=2.0 ** -42):
    """Integrated gradients of one example (x, xr: tuples of example arrays) for a piecewise-linear
    model: torch autograd gradients g(a) at x' + a (x - x') on ``cells`` equal cells of [0, 1];
    in a cell whose end gradients differ, the first change is located by bisection in a (comparing
    gradients) to an interval shorter than ``width``, the piece up to its midpoint gets the left
    gradient, and the rest of the cell is handled again. phi = Δx * sum(piece length * gradient).
    Returns (attributions per input, number of gradient changes found)."""
    shapes = [a.shape for a in x]
    sizes = [a.size for a in x]
    start = np.concatenate([a.ravel() for a in xr])
    delta = np.concatenate([a.ravel() for a in x]) - start

    def grads(alphas):
        points = start[None, :] + np.asarray(alphas)[:, None] * delta[None, :]
        tensors, at = [], 0
        for shape, size in zip(shapes, sizes):
            tensors.append(torch.tensor(points[:, at:at + size].reshape((-1,) + shape), requires_grad=True))
            at += size
        model(*tensors)[:, target].sum().backward()
        return np.concatenate([t.grad.numpy().reshape(len(alphas), -1) for t in tensors], axis=1)

    alphas = np.linspace(0.0, 1.0, cells + 1)
    g = grads(alphas)
    scale = np.max(np.abs(g))

    def same(g1, g2):
        # constant pieces give the same gradient up to the rounding of another batch size
        return np.max(np.abs(g1 - g2), axis=-1) <= 1e-11 * scale

    integral = np.zeros_like(delta)
    # segments (left, right, gradient at left, gradient at right)
    left, right, g_left, g_right = alphas[:-1], alphas[1:], g[:-1], g[1:]
    changes = 0
    while left.size:
        flat = same(g_left, g_right)
        integral += ((right[flat] - left[flat])[:, None] * g_left[flat]).sum(axis=0)
        left, right, g_left, g_right = left[~flat], right[~flat], g_left[~flat], g_right[~flat]
        if not left.size:
            break
        changes += left.size
        lo, hi, g_hi = left.copy(), right.copy(), g_right.copy()
        while np.max(hi - lo) > width:
            mid = (lo + hi) / 2
            g_mid = grads(mid)
            stay = same(g_mid, g_left)
            lo = np.where(stay, mid, lo)
            hi = np.where(stay, hi, mid)
            g_hi = np.where(stay[:, None], g_hi, g_mid)
        cut = (lo + hi) / 2
        integral += ((cut - left)[:, None] * g_left).sum(axis=0)
        left, g_left = cut, g_hi
    phi = delta * integral
    return tuple(p.reshape(shape) for p, shape in zip(np.split(phi, np.cumsum(sizes)[:-1]), shapes)), changes


@pytest.mark.parametrize("name", PIECEWISE_LINEAR)
def test_exact_integrated_gradients_against_a_bisection_integrator(name):
    model, net, shapes = _model(name)
    x, xr = _data(name, shapes, n=1 if name == "resnet" else 2)
    out, out_ref = _torch_forward(model, x), _torch_forward(model, xr)
    targets = np.arange(x[0].shape[0]) % out.shape[1]
    ours = _parts(integrated_gradients(net, _one(x), _one(xr), target=targets, rule="exact").values)
    for n, t in enumerate(targets):
        theirs, changes = _ig_by_bisection(model, tuple(a[n] for a in x), tuple(a[n] for a in xr), t)
        assert changes > 0, "a path with no kink would not test the walk"
        # Tolerance 1e-9: each change is located to 2^-42 ~ 2.3e-13 in a, so each piece's length is off
        # by at most half that times the gradient's jump there; a few hundred changes (548 on the
        # ResNet's path) give ~1e-10 of the attributions' size at most, and 1e-9 leaves a margin.
        total = sum(p.sum() for p in theirs)
        # the integrator itself: complete against torch's t(x) - t(x')
        assert abs(total - (out[n, t] - out_ref[n, t])) <= 1e-9 * max(abs(out[n, t]), abs(out_ref[n, t]))
        for got, want in zip(ours, theirs, strict=True):
            assert _relative(got[n], want) <= 1e-9, (name, n, changes)


# ------------------------------------------------------------------------------------------------
# compare_captum: every difference explained
# ------------------------------------------------------------------------------------------------
GRADIENTS = ("Saliency", "InputXGradient")
IG = {"approximation", "convention"}        # Riemann / Gauss-Legendre error; trapezoid weights summing to 0.98
EXPECTED = {
    # ReLU -> MaxPool2d in the stem: Captum issue #1104
    "resnet": {**{m: {"agree"} for m in GRADIENTS + ("GuidedBackprop", "Deconvolution")},
               "DeepLift": {"peer_bug"}, "DeepLiftShap": {"peer_bug"}},
    # the input read by three branches, one of them a hooked MaxPool2d
    "inception": {**{m: {"agree"} for m in GRADIENTS + ("GuidedBackprop", "Deconvolution")},
                  "DeepLift": {"peer_bug"}, "DeepLiftShap": {"peer_bug"}},
    # F.relu: Captum's hooks see no module
    "residual_mlp": {**{m: {"agree"} for m in GRADIENTS}, "GuidedBackprop": {"convention"},
                     "Deconvolution": {"convention"}, "DeepLift": {"convention"}, "DeepLiftShap": {"convention"}},
    "dna": {**{m: {"agree"} for m in GRADIENTS + ("GuidedBackprop", "Deconvolution")},
            "DeepLift": {"peer_bug"}, "DeepLiftShap": {"peer_bug"}},
    # a product of two tensors and torch.sigmoid / torch.tanh as functions
    "two_inputs": {**{m: {"agree"} for m in GRADIENTS + ("GuidedBackprop", "Deconvolution")},
                   "DeepLift": {"convention"}, "DeepLiftShap": {"convention"}},
    # Captum's Softmax rule mixes the batch; the body's F.relu as in residual_mlp
    "softmax_head": {**{m: {"agree"} for m in GRADIENTS}, "GuidedBackprop": {"convention"},
                     "Deconvolution": {"convention"}, "DeepLift": {"peer_bug"}, "DeepLiftShap": {"peer_bug"}},
}
CAUSE = {       # (method, kind, words of its description or issue) that must be among the causes
    "resnet": ("DeepLift", "peer_bug", "Captum issue #1104"),
    "dna": ("DeepLift", "peer_bug", "Captum issue #1104"),
    "inception": ("DeepLift", "peer_bug", "reads a tensor that other modules read too ('x'"),
    "residual_mlp": ("DeepLift", "convention", "Captum hooks modules only"),
    "two_inputs": ("DeepLift", "convention", "no DeepLift rule for a product of two tensors"),
    "softmax_head": ("DeepLift", "peer_bug", "Softmax rule"),
}


@pytest.mark.parametrize("name", NAMES)
def test_compare_captum_explains_every_difference(name, capsys):
    model, _, shapes = _model(name)
    x, xr = _data(name, shapes)
    n_out = _torch_forward(model, x).shape[1]
    report = compare_captum(model, _one(x), baseline=_one(xr), targets=np.arange(x[0].shape[0]) % n_out)
    assert capsys.readouterr() == ("", "")
    assert report.all_explained and not report.unexplained, report.table()
    seen = {e.method for e in report.entries}
    assert seen >= set(EXPECTED[name]) and any(m.startswith("IntegratedGradients[") for m in seen)
    for entry in report.entries:
        allowed = IG if entry.method.startswith("IntegratedGradients[") else EXPECTED[name][entry.method]
        assert entry.verdict in allowed, (entry.method, report.table())
    method, kind, words = CAUSE[name]
    causes = report[method].causes
    assert any(c.kind == kind and (words in c.description or words == c.issue) and c.size > 1e-6 for c in causes), \
        report.table()


def test_torchvisions_shared_relu_is_captums_documented_refusal(capsys):
    # torchvision's BasicBlock calls one self.relu twice; Captum's DeepLift refuses a module used twice
    model = users_models.build("resnet", shared_relu=True)
    x, xr = _data("resnet", [(3, 16, 16)])
    report = compare_captum(model, x[0], baseline=xr[0], targets=np.array([0, 1]), methods=["DeepLift", "Saliency"])
    assert capsys.readouterr() == ("", "")
    assert report.all_explained and report["Saliency"].verdict == "agree", report.table()
    assert report["DeepLift"].verdict == "peer_error"
    assert any("used once" in c.description for c in report["DeepLift"].causes)


# ------------------------------------------------------------------------------------------------
# ONNX exports of the same models
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_imports_and_equals_torch(name):
    model, _, shapes = _model(name)
    names = [f"x{i}" for i in range(len(shapes))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, tuple(torch.zeros((2,) + s, dtype=torch.float64) for s in shapes), buffer,
                          dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes={n: {0: "batch"} for n in names})
    net = from_onnx(buffer.getvalue(), input_shape=shapes[0] if len(shapes) == 1 else shapes)
    x, _ = _data(name, shapes, seed=11)
    expected = _torch_forward(model, x)
    assert _relative(net(_one(x)), expected) <= EXACT
    for target in range(expected.shape[1]):
        got = _parts(gradient(net, _one(x), target=target).values)
        for g, want in zip(got, _torch_gradients(model, x, target), strict=True):
            assert _relative(g, want) <= EXACT, (name, target)


# ------------------------------------------------------------------------------------------------
# The activations: refattr's multiplier at |Δx| = 1e-12 against f' in closed form, and Captum's
# forward quotient at the same points
# ------------------------------------------------------------------------------------------------
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
C_TANH = math.sqrt(2.0 / math.pi)


def _gelu_tanh_derivative(x):
    u = C_TANH * (x + 0.044715 * x ** 3)
    e = math.exp(-2.0 * abs(u))
    sech2 = 4.0 * e / (1.0 + e) ** 2        # 1 / cosh(u)^2 without overflow
    half_one_plus_tanh = 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)      # (1 + tanh u) / 2, no cancellation
    return half_one_plus_tanh + 0.5 * x * C_TANH * (1.0 + 3 * 0.044715 * x * x) * sech2


ACTIVATIONS = {   # name: (refattr layer, torch module, f' in closed form)
    "ELU": (ELU(alpha=1.0), torch.nn.ELU(alpha=1.0), lambda x: 1.0 if x > 0 else math.exp(x)),
    "SELU": (SELU(), torch.nn.SELU(), lambda x: SELU_SCALE if x > 0 else SELU_SCALE * SELU_ALPHA * math.exp(x)),
    "Softplus": (Softplus(), torch.nn.Softplus(),         # beta 1, threshold 20: x itself above 20
                 lambda x: 1.0 if x > 20 else 1.0 / (1.0 + math.exp(-x))),
    "GELU": (GELU(), torch.nn.GELU(),                     # Φ(x) + x φ(x)
             lambda x: 0.5 * math.erfc(-x / math.sqrt(2)) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "GELU_tanh": (GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh"), _gelu_tanh_derivative),
    "LeakyReLU": (LeakyReLU(0.01), torch.nn.LeakyReLU(0.01), lambda x: 1.0 if x > 0 else 0.01),
    "Tanh": (Tanh(), torch.nn.Tanh(), lambda x: 4.0 * math.exp(-2 * abs(x)) / (1.0 + math.exp(-2 * abs(x))) ** 2),
    "Sigmoid": (Sigmoid(), torch.nn.Sigmoid(), lambda x: math.exp(-abs(x)) / (1.0 + math.exp(-abs(x))) ** 2),
}
# away from the kinks (0) and from GELU's stationary point (-0.75), where f' = 0 makes a relative error meaningless
POINTS = np.array([-8.0, -3.0, -1.3, -0.4, 0.3, 1.1, 2.7, 6.0, 25.0])


def captum_quotient(module, x, x_ref):
    """Captum 0.9.0's `nonlinear` rule above its eps: (f(x) - f(x')) / (x - x') in torch float64."""
    with torch.no_grad():
        xt, rt = torch.from_numpy(x), torch.from_numpy(x_ref)
        return ((module(xt) - module(rt)) / (xt - rt)).numpy()


def worst_quotient_errors(name, step=1e-12):
    """(refattr's worst relative error, Captum's quotient's worst relative error) of the multiplier
    against f' at the midpoint, over POINTS and both signs of Δx = ``step``."""
    layer, module, derivative = ACTIVATIONS[name]
    x_ref = np.concatenate([POINTS, POINTS])[:, None]
    x = x_ref + np.concatenate([np.full(POINTS.size, step), np.full(POINTS.size, -step)])[:, None]
    # f' at x' + Δx/2, with the Δx that float64 holds: the exact divided difference equals it up to
    # f''' Δx² / 24 (~1e-25), while it differs from f'(x') itself by f'' Δx / 2, up to ~1.3e-12 f'
    # at these points (GELU at -3): as large as the tolerance, so the midpoint is the fair target
    exact = np.array([derivative(r + (a - r) / 2) for a, r in zip(x.ravel(), x_ref.ravel())])
    ours = deeplift(Sequential([layer]), x, x_ref, target=0).multipliers.ravel()
    theirs = captum_quotient(module, x, x_ref).ravel()
    return np.max(np.abs(ours - exact) / np.abs(exact)), np.max(np.abs(theirs - exact) / np.abs(exact))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_multiplier_at_a_tiny_step_is_the_derivative_where_captums_quotient_is_not(name):
    ours, captum = worst_quotient_errors(name)
    assert ours <= EXACT, ours
    # f(x) - f(x') loses ~1e-16 |f| to rounding, divided by Δx = 1e-12: ~1e-4 relative
    assert captum > 1e-6, captum
    for rule in ("rescale", "reveal_cancel"):
        layer, _, derivative = ACTIVATIONS[name]
        m = deeplift(Sequential([layer]), np.array([[1.1 + 1e-12]]), np.array([[1.1]]), target=0, rule=rule)
        assert abs(m.multipliers.item() / derivative(1.1 + 5e-13) - 1) <= EXACT, rule


def _softmax_jacobian(z):
    """J_ij = s_i (δ_ij - s_j), s = softmax(z) (closed form, float64)."""
    s = np.exp(z - z.max())
    s /= s.sum()
    return np.diag(s) - np.outer(s, s)


def softmax_errors(step=1e-12):
    """(refattr's worst normwise error of the multiplier rows against the Jacobian at x' + Δx/2, and
    Captum's worst relative error of Δs_k / Δx_k, Δx in coordinate k alone, against J_kk there)."""
    rng = np.random.default_rng(5)
    logits = np.array([rng.normal(size=4) * scale for scale in (0.5, 2.0, 6.0)])
    signs = rng.choice([-1.0, 1.0], size=logits.shape)
    ours_error = 0.0
    for target in range(4):
        x = logits + step * signs
        m = deeplift(Sequential([Softmax(dim=1)]), x, logits, target=target).multipliers
        for n in range(logits.shape[0]):
            want = _softmax_jacobian(logits[n] + (x[n] - logits[n]) / 2)[target]
            ours_error = max(ours_error, np.max(np.abs(m[n] - want)) / np.max(np.abs(want)))
    captum_error = 0.0
    module = torch.nn.Softmax(dim=1)
    for k in range(4):
        for sign in (1.0, -1.0):
            x = logits.copy()
            x[:, k] += sign * step
            with torch.no_grad():
                xt, rt = torch.from_numpy(x), torch.from_numpy(logits)
                quotient = ((module(xt) - module(rt))[:, k] / (xt - rt)[:, k]).numpy()
            want = np.array([_softmax_jacobian(r + (a - r) / 2)[k, k] for a, r in zip(x, logits)])
            captum_error = max(captum_error, np.max(np.abs(quotient - want) / np.abs(want)))
    return ours_error, captum_error


def test_softmax_multipliers_at_a_tiny_step_are_the_jacobian_where_captums_quotient_is_not():
    ours, captum = softmax_errors()
    assert ours <= EXACT, ours
    assert captum > 1e-6, captum


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")   # Captum's notice
def test_captum_on_functional_relus_is_delta_times_the_gradient():
    # The residual MLP computes every ReLU with F.relu: Captum hooks none of them, so its DeepLift is
    # (x - x') * grad t(x), the cause compare_captum names "convention" above; refattr's Rescale differs.
    from captum.attr import DeepLift

    model, net, shapes = _model("residual_mlp")
    (x,), (xr,) = _data("residual_mlp", shapes)
    targets = torch.tensor([0, 1])
    peer = DeepLift(model).attribute(torch.tensor(x, requires_grad=True), torch.tensor(xr), target=targets)
    peer = peer.detach().numpy()
    tensor = torch.tensor(x, requires_grad=True)
    model(tensor).gather(1, targets[:, None]).sum().backward()
    assert _relative(peer, (x - xr) * tensor.grad.numpy()) <= EXACT
    assert _relative(deeplift(net, x, xr, target=targets.numpy()).values, peer) > 1e-3
