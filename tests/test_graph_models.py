"""Graphs built by hand (issue #16): a residual MLP, ResNet basic blocks, a gated (GLU-style) unit
and the IG paper's example 1 as a network of two inputs.

Where every expected number comes from:

- forward passes: plain NumPy written here (a loop-and-einsum convolution, matrix products);
- VJPs: central differences of that forward pass along random directions;
- exact integrated gradients: an independent integrator written here (:func:`path_integral`),
  which samples the ordinary gradient along the path, locates every change of it by bisection and
  sums piece length x gradient;
- DeepLIFT: summation-to-delta over every cut of the graph (computed here from the graph's
  structure), a theorem (bias-free ReLU networks at x' = 0), the Shapley split of a product worked
  by hand, and the IG paper's example worked by hand in the comments.

Tolerances. Results exact up to rounding are compared at 1e-12 relative; "relative" is to
max(|t(x)|, |t(x')|, sum |C|), the magnitudes whose rounding both sides carry. Exact IG against the
independent integrator: 1e-9 relative (the integrator brackets each kink to 2^-46 in alpha, so its
own error is below 1e-13 of the integrand's scale; 1e-9 is the bar of issue #16 and leaves margin).
Central differences: step 1e-5, rtol 1e-7 (truncation is zero on a linear piece; rounding is about
1e-16 |t| / 1e-5 = 1e-11 relative).
"""

import numpy as np
import pytest

from refattr import (Add, Conv2D, Dense, Flatten, Graph, Mul, ReLU, Sigmoid, Tanh, deeplift, deeplift_layers,
                     gradient, input_x_gradient, integrated_gradients)
from refattr.testing import central_difference

RULES = ("rescale", "reveal_cancel")


# Plain NumPy twins -----------------------------------------------------------------------------

def relu(z):
    return np.maximum(z, 0.0)


def conv2d(x, w, b=None, stride=1, pad=0):
    """Cross-correlation as torch.nn.functional.conv2d: x (N, C, H, W), w (O, C, kH, kW)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("ncij,ocij->no", window, w)
    return y if b is None else y + b[None, :, None, None]


def residual_mlp(rng, d=4, hidden=6, n_outputs=3, bias=True):
    """x -> [Dense -> ReLU -> Dense, + x] twice -> Dense head. Returns (graph, numpy forward)."""
    def b(k):
        return rng.normal(size=k) if bias else None
    w1, b1, w2, b2 = rng.normal(size=(hidden, d)), b(hidden), rng.normal(size=(d, hidden)) / 2, b(d)
    w3, b3, w4, b4 = rng.normal(size=(hidden, d)), b(hidden), rng.normal(size=(d, hidden)) / 2, b(d)
    wh, bh = rng.normal(size=(n_outputs, d)), b(n_outputs)
    net = Graph("x", [
        ("h1", Dense(w1, b1), "x"), ("a1", ReLU(), "h1"), ("o1", Dense(w2, b2), "a1"), ("r1", Add(), ("o1", "x")),
        ("h2", Dense(w3, b3), "r1"), ("a2", ReLU(), "h2"), ("o2", Dense(w4, b4), "a2"), ("r2", Add(), ("o2", "r1")),
        ("y", Dense(wh, bh), "r2"),
    ])

    def dense(x, w, bb):
        return x @ w.T + (0.0 if bb is None else bb)

    def forward(x):
        r1 = dense(relu(dense(x, w1, b1)), w2, b2) + x
        r2 = dense(relu(dense(r1, w3, b3)), w4, b4) + r1
        return dense(r2, wh, bh)
    return net, forward


def resnet_block(rng, downsample, c=2, hw=5, n_outputs=2, bias=True):
    """A ResNet basic block (He et al. 2016, figure 2) on (C, H, W) images, then Flatten -> Dense:
    conv3x3 (stride 2 when downsampling) -> ReLU -> conv3x3, + shortcut, ReLU. The shortcut is
    the input itself, or a 1x1 stride-2 convolution to 2C channels."""
    c2 = 2 * c if downsample else c
    s = 2 if downsample else 1
    w1, w2 = rng.normal(size=(c2, c, 3, 3)) / 3, rng.normal(size=(c2, c2, 3, 3)) / 3
    b1, b2 = (rng.normal(size=c2), rng.normal(size=c2)) if bias else (None, None)
    ws, bs = rng.normal(size=(c2, c, 1, 1)), (rng.normal(size=c2) if bias else None)
    side = (hw - 1) // s + 1
    wh = rng.normal(size=(n_outputs, c2 * side * side)) / 4
    bh = rng.normal(size=n_outputs) if bias else None
    nodes = [("c1", Conv2D(w1, b1, stride=s, padding=1), "x"), ("a1", ReLU(), "c1"),
             ("c2", Conv2D(w2, b2, padding=1), "a1")]
    if downsample:
        nodes += [("sc", Conv2D(ws, bs, stride=2), "x"), ("sum", Add(), ("c2", "sc"))]
    else:
        nodes += [("sum", Add(), ("c2", "x"))]
    nodes += [("out", ReLU(), "sum"), ("flat", Flatten(), "out"), ("y", Dense(wh, bh), "flat")]
    net = Graph("x", nodes)

    def forward(x):
        main = conv2d(relu(conv2d(x, w1, b1, stride=s, pad=1)), w2, b2, pad=1)
        shortcut = conv2d(x, ws, bs, stride=2) if downsample else x
        out = relu(main + shortcut).reshape(x.shape[0], -1)
        return out @ wh.T + (0.0 if bh is None else bh)
    return net, forward, (c, hw, hw)


def models(rng):
    """(name, graph, numpy forward, example shape) for every hand-built model of this file."""
    mlp, f_mlp = residual_mlp(rng)
    block, f_block, shape = resnet_block(rng, downsample=False)
    down, f_down, shape_down = resnet_block(rng, downsample=True)
    return [("residual_mlp", mlp, f_mlp, (4,)), ("resnet_identity", block, f_block, shape),
            ("resnet_downsample", down, f_down, shape_down)]


MODEL_NAMES = ("residual_mlp", "resnet_identity", "resnet_downsample")


@pytest.fixture(params=MODEL_NAMES)
def model(request):
    rng = np.random.default_rng(16)
    for name, net, forward, shape in models(rng):
        if name == request.param:
            return net, forward, shape, rng
    raise AssertionError(request.param)


def pick(out, target):
    return out[np.arange(out.shape[0]), target]


# Independent tools ----------------------------------------------------------------------------

def path_integral(net, x, x0, target, n_grid=256, width=2.0 ** -46):
    """(x - x0) * integral_0^1 grad t(x0 + a (x - x0)) da for one example (x of shape (1, ...)),
    from the ordinary gradient alone: on a piecewise-linear network the gradient is the same, bit
    for bit, at every point of one linear piece (the backward pass reads only the activation
    pattern). The gradient is sampled on a grid of ``n_grid`` cells; each cell whose two ends
    disagree is bisected, all at once, until every change is bracketed to ``width``; constant
    stretches count length x gradient, the tiny brackets the mean of their two ends (an error of at
    most width x |jump|). A pattern that changes and changes back inside one grid cell is missed;
    with 256 cells and O(1) slopes that would need two kinks within 1/256 of each other.
    Returns (values, brackets): the (lo, hi) around every change of the gradient found."""
    dx = x - x0

    def grads(alphas):
        alphas = np.asarray(alphas, dtype=float)
        points = x0 + alphas.reshape((-1,) + (1,) * (x.ndim - 1)) * dx
        return gradient(net, points, target=np.full(len(alphas), target)).values

    grid = np.linspace(0.0, 1.0, n_grid + 1)
    g = grads(grid)
    total = np.zeros(x.shape[1:])
    pending = []        # (lo, hi, g_lo, g_hi) with g_lo != g_hi
    for k in range(n_grid):
        if np.array_equal(g[k], g[k + 1]):
            total += (grid[k + 1] - grid[k]) * g[k]
        else:
            pending.append((grid[k], grid[k + 1], g[k], g[k + 1]))
    brackets = []
    while pending:
        done = [p for p in pending if p[1] - p[0] <= width]
        for lo, hi, g_lo, g_hi in done:
            total += (hi - lo) * 0.5 * (g_lo + g_hi)
            brackets.append((lo, hi))
        pending = [p for p in pending if p[1] - p[0] > width]
        if not pending:
            break
        mids = [0.5 * (lo + hi) for lo, hi, _, _ in pending]
        g_mid = grads(mids)
        new = []
        for (lo, hi, g_lo, g_hi), mid, gm in zip(pending, mids, g_mid):
            if np.array_equal(gm, g_lo):
                total += (mid - lo) * g_lo
                new.append((mid, hi, gm, g_hi))
            elif np.array_equal(gm, g_hi):
                total += (hi - mid) * g_hi
                new.append((lo, mid, g_lo, gm))
            else:       # changes on both sides of mid
                new += [(lo, mid, g_lo, gm), (mid, hi, gm, g_hi)]
        pending = new
    return dx[0] * total, sorted(brackets)


def exactly_once_cuts(net, max_size=3):
    """Every set S of at most ``max_size`` values (inputs and nodes) that each path from an input to
    the output crosses exactly once. DeepLIFT's rules conserve contributions node by node and
    fan-out adds multipliers, so the full contributions of the members of such an S sum to Δt
    (summation-to-delta on a graph). Found by brute force from the graph's structure alone: for
    each value, the set of how many members of S (0, 1, or 2 meaning "2 or more") the paths from
    the inputs to it cross; S is a cut when that set is {1} at the output."""
    from itertools import combinations
    names = list(net.inputs) + [node.name for node in net.nodes]
    cuts = []
    for size in range(1, max_size + 1):
        for chosen in combinations(names, size):
            hits = {v: {1 if v in chosen else 0} for v in net.inputs}
            for node in net.nodes:
                here = set().union(*(hits[r] for r in node.inputs))
                hits[node.name] = {min(h + 1, 2) for h in here} if node.name in chosen else here
            if hits[names[-1]] == {1}:
                cuts.append(chosen)
    return cuts


def assert_summation_to_delta_at_every_node(net, records, t_x, t_ref, rtol=1e-12, min_cuts=1):
    """Each record's own completeness_gap (its cut, as the library defines it) and, independently,
    the full contributions summed over every cut of :func:`exactly_once_cuts`, are within ``rtol``
    of Δt relative to max(|t(x)|, |t(x')|, sum |C|)."""
    delta_t = t_x - t_ref
    n = len(delta_t)
    names = [r.name for r in records]
    assert names == list(net.inputs) + [node.name for node in net.nodes]
    by_name = {r.name: r.contributions.reshape(n, -1) for r in records}
    for r in records:
        scale = np.maximum.reduce([np.abs(t_x), np.abs(t_ref), np.abs(by_name[r.name]).sum(axis=1)])
        assert np.all(np.abs(r.completeness_gap) <= rtol * scale), (r.name, r.completeness_gap, scale)
    cuts = exactly_once_cuts(net)
    assert len(cuts) >= min_cuts
    for cut in cuts:
        total = sum(by_name[v].sum(axis=1) for v in cut)
        size = sum(np.abs(by_name[v]).sum(axis=1) for v in cut)
        scale = np.maximum.reduce([np.abs(t_x), np.abs(t_ref), size])
        assert np.all(np.abs(total - delta_t) <= rtol * scale), (cut, total - delta_t, scale)


def test_exactly_once_cuts_by_hand():
    """y = Dense(relu(Dense(x)) + x): every path crosses x, r and y; {h, x} is crossed twice by
    x -> h -> a -> r and {h, a} missed by x -> r, so the cuts are {x}, {r}, {y} alone (the
    library's per-record cut, below, counts x through its later readers only, which no set of
    full contributions can express). A gate m = a * sigmoid(g) with a, g both reading x adds the
    two-member cuts {a, g} and {a, s}."""
    residual = Graph("x", [("h", Dense([[1.0]]), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "x")),
                           ("y", Dense([[1.0]]), "r")])
    assert set(exactly_once_cuts(residual)) == {("x",), ("r",), ("y",)}
    gate = Graph("x", [("a", Dense([[1.0]]), "x"), ("g", Dense([[1.0]]), "x"), ("s", Sigmoid(), "g"),
                       ("m", Mul(), ("a", "s")), ("y", Dense([[1.0]]), "m")])
    assert set(exactly_once_cuts(gate)) == {("x",), ("a", "g"), ("a", "s"), ("m",), ("y",)}


def test_the_cut_of_each_record_by_hand():
    """y = relu(x - 1) + x at x = 3, x' = 0 (Rescale): h = x - 1 moves -1 -> 2, a = relu(h) 0 -> 2
    with multiplier 2 / 3, r moves 0 -> 5 and Δt = 5. The records of h and a do not carry Δt alone
    (C_h = 3 * 2/3 = 2, C_a = 2 * 1 = 2); their cuts add x through the skip, 3 * 1 = 3: 2 + 3 = 5."""
    net = Graph("x", [("h", Dense([[1.0]], [-1.0]), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "x")),
                      ("y", Dense([[1.0]]), "r")])
    records = {r.name: r for r in deeplift_layers(net, [[3.0]], baseline=0.0)}
    assert records["h"].contributions.tolist() == [[2.0]] and records["a"].contributions.tolist() == [[2.0]]
    assert records["x"].contributions.tolist() == [[5.0]]       # 3 * (2/3 * 1 + 1): both paths
    for name in ("h", "a"):
        assert set(records[name].frontier) == {"x", name}
    for name in ("x", "h", "a", "r", "y"):
        assert abs(records[name].completeness_gap[0]) <= 1e-15 * 5, (name, records[name].completeness_gap)


# 1. Residual MLP and ResNet blocks -----------------------------------------------------------

def test_forward_matches_numpy(model):
    net, forward, shape, rng = model
    x = rng.normal(size=(5,) + shape)
    np.testing.assert_allclose(net(x), forward(x), rtol=1e-13, atol=1e-13 * np.abs(forward(x)).max())


def test_the_repr_shows_every_node(model):
    net, _, _, _ = model
    text = repr(net)
    for node in net.nodes:
        assert repr(node.name) in text
    assert "Add()" in text


def test_vjp_matches_central_differences(model):
    net, forward, shape, rng = model
    x = rng.normal(size=(3,) + shape)
    n_outputs = forward(x).shape[1]
    for target in range(n_outputs):
        g = gradient(net, x, target=target).values
        for _ in range(3):
            d = rng.normal(size=x.shape)
            fd = central_difference(lambda z: forward(z)[:, target], x, d, 1e-5)
            an = (g * d).reshape(len(x), -1).sum(axis=1)
            # relative to |grad| |d|: a directional derivative near 0 is not judged by its own size
            scale = np.linalg.norm(g.reshape(len(x), -1), axis=1) * np.linalg.norm(d.reshape(len(x), -1), axis=1)
            assert np.all(np.abs(fd - an) <= 1e-7 * scale), (target, fd, an)


def test_exact_ig_matches_an_independent_integrator(model):
    net, forward, shape, rng = model
    x = rng.normal(size=(2,) + shape)
    x0 = 0.3 * rng.normal(size=(2,) + shape)
    target = np.array([0, 1])
    res = integrated_gradients(net, x, baseline=x0, target=target, rule="exact")
    for n in range(len(x)):
        values, brackets = path_integral(net, x[n:n + 1], x0[n:n + 1], target[n])
        assert len(brackets) >= 2       # the path crosses kinks, so the test is not of a linear map
        scale = np.abs(values).max()
        np.testing.assert_allclose(res.values[n], values, rtol=1e-9, atol=1e-9 * scale)
        # every change of the gradient is one of the walk's breakpoints; the walk may list more
        # (a unit that switches where nothing downstream reads it changes the pattern, not the
        # gradient)
        breakpoints = np.asarray(res.options["breakpoints"][n])
        for lo, hi in brackets:
            assert np.any((breakpoints >= lo) & (breakpoints <= hi)), (lo, hi, breakpoints)
    t_x, t_ref = pick(forward(x), target), pick(forward(x0), target)
    gap = res.values.reshape(len(x), -1).sum(axis=1) - (t_x - t_ref)
    np.testing.assert_allclose(res.completeness_gap, gap, rtol=0, atol=1e-13 * np.abs(t_x - t_ref).max())
    assert np.all(np.abs(gap) <= 1e-12 * (np.abs(t_x) + np.abs(t_ref)))


@pytest.mark.parametrize("rule", RULES)
def test_deeplift_summation_to_delta_at_every_node(model, rule):
    net, forward, shape, rng = model
    x = rng.normal(size=(3,) + shape)
    x0 = 0.3 * rng.normal(size=(3,) + shape)
    target = np.array([0, 1, 0])
    t_x, t_ref = pick(forward(x), target), pick(forward(x0), target)
    records = deeplift_layers(net, x, baseline=x0, target=target, rule=rule)
    assert_summation_to_delta_at_every_node(net, records, t_x, t_ref)
    res = deeplift(net, x, baseline=x0, target=target, rule=rule)
    np.testing.assert_array_equal(res.values, records[0].contributions)
    scale = np.maximum.reduce([np.abs(t_x), np.abs(t_ref), np.abs(res.values).reshape(3, -1).sum(axis=1)])
    assert np.all(np.abs(res.completeness_gap) <= 1e-12 * scale)


def test_the_integrator_finds_the_kinks_of_a_hand_example():
    """The test's own integrator on y = relu(x - 1) + x from x' = 0 to x = 3: the gradient is 1 on
    [0, 1/3) and 2 on (1/3, 1], so IG = 3 (1/3 + 2 (2/3)) = 5 = y(3) - y(0) = 2 + 3."""
    net = Graph("x", [("h", Dense([[1.0]], [-1.0]), "x"), ("a", ReLU(), "h"), ("y", Add(), ("a", "x"))])
    values, brackets = path_integral(net, np.array([[3.0]]), np.array([[0.0]]), 0)
    assert len(brackets) == 1 and brackets[0][0] <= 1.0 / 3.0 <= brackets[0][1]
    np.testing.assert_allclose(values, [5.0], rtol=1e-13)


# 2. A bias-free residual ReLU network at x' = 0 --------------------------------------------------

@pytest.mark.parametrize("which", ["mlp", "resnet"])
def test_bias_free_rescale_at_zero_is_input_x_gradient(which):
    """Theorem. In a network of bias-free Dense / Conv2D layers, ReLUs and Adds, every value at
    x' = 0 is 0 (a linear map without bias, ReLU(0) = 0 and 0 + 0 = 0). A ReLU unit's Rescale
    multiplier is Δy / Δz = (relu(z) - relu(0)) / (z - 0) = 1 if z > 0 and 0 if z < 0, which is
    relu'(z): every multiplier equals the local derivative, the linear layers and the Add pass
    multipliers back with their weights exactly as the gradient does, and so
    m_{Δx Δt} = dt/dx and C = (x - 0) dt/dx, the input x gradient. (The same network is
    positively homogeneous of degree 1, t(a x) = a t(x) for a >= 0, so by Euler's identity
    sum C = x . grad t(x) = t(x) - t(0): both sides are complete.) Random inputs hit z == 0 with
    probability 0; the assertion below checks that none did."""
    rng = np.random.default_rng(1616)
    if which == "mlp":
        net, forward = residual_mlp(rng, bias=False)
        x = rng.normal(size=(4, 4))
    else:
        net, forward, shape = resnet_block(rng, downsample=True, bias=False)
        x = rng.normal(size=(4,) + shape)
    target = np.array([0, 1, 1, 0])
    relu_inputs = {node.inputs[0] for node in net.nodes if isinstance(node.layer, ReLU)}
    records = deeplift_layers(net, x, baseline=0.0, target=target)
    assert all(np.all(r.delta_pos + r.delta_neg != 0.0) for r in records if r.name in relu_inputs)
    dl = deeplift(net, x, baseline=0.0, target=target, rule="rescale")
    ixg = input_x_gradient(net, x, target=target)
    scale = np.abs(ixg.values).max()
    np.testing.assert_allclose(dl.values, ixg.values, rtol=1e-12, atol=1e-12 * scale)
    phi = ixg.values.reshape(4, -1)
    assert np.all(np.abs(phi.sum(axis=1) - pick(forward(x), target)) <= 1e-12 * np.abs(phi).sum(axis=1))


# 3. The Mul rule ---------------------------------------------------------------------------------

def glu(rng, d=3, k=4, order=("a", "s"), tail=False):
    """y = Dense(a * sigmoid(g)) with a = Dense(x), g = Dense(x) (a gated linear unit, Dauphin et
    al. 2017), the product's inputs in ``order``; ``tail`` adds a Tanh after the product."""
    wa, ba, wg, bg = rng.normal(size=(k, d)), rng.normal(size=k), rng.normal(size=(k, d)), rng.normal(size=k)
    wo, bo = rng.normal(size=(2, k)), rng.normal(size=2)
    nodes = [("a", Dense(wa, ba), "x"), ("g", Dense(wg, bg), "x"), ("s", Sigmoid(), "g"), ("m", Mul(), order)]
    nodes += [("t", Tanh(), "m"), ("y", Dense(wo, bo), "t")] if tail else [("y", Dense(wo, bo), "m")]
    net = Graph("x", nodes)

    def forward(x):
        m = (x @ wa.T + ba) / (1.0 + np.exp(-(x @ wg.T + bg)))
        return (np.tanh(m) if tail else m) @ wo.T + bo
    return net, forward


@pytest.mark.parametrize("tail", [False, True])
@pytest.mark.parametrize("rule", RULES)
def test_gated_unit_summation_to_delta(rule, tail):
    rng = np.random.default_rng(7)
    net, forward = glu(rng, tail=tail)
    x, x0 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    target = np.array([0, 1, 0, 1])
    t_x, t_ref = pick(forward(x), target), pick(forward(x0), target)
    np.testing.assert_allclose(net(x), forward(x), rtol=1e-13)
    records = deeplift_layers(net, x, baseline=x0, target=target, rule=rule)
    assert_summation_to_delta_at_every_node(net, records, t_x, t_ref)
    res = deeplift(net, x, baseline=x0, target=target, rule=rule)
    scale = np.maximum.reduce([np.abs(t_x), np.abs(t_ref), np.abs(res.values).sum(axis=1)])
    assert np.all(np.abs(res.values.sum(axis=1) - (t_x - t_ref)) <= 1e-12 * scale)


@pytest.mark.parametrize("tail", [False, True])
@pytest.mark.parametrize("rule", RULES)
def test_mul_is_symmetric_in_its_inputs(rule, tail):
    net_as, _ = glu(np.random.default_rng(8), order=("a", "s"), tail=tail)
    net_sa, _ = glu(np.random.default_rng(8), order=("s", "a"), tail=tail)
    rng = np.random.default_rng(9)
    x, x0 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    one = {r.name: r for r in deeplift_layers(net_as, x, baseline=x0, target=1, rule=rule)}
    two = {r.name: r for r in deeplift_layers(net_sa, x, baseline=x0, target=1, rule=rule)}
    assert one.keys() == two.keys()
    for name in one:
        scale = np.abs(one[name].contributions).max()
        np.testing.assert_allclose(two[name].contributions, one[name].contributions, rtol=1e-15, atol=1e-15 * scale)


def test_mul_shapley_split_by_hand():
    """y = x1 * x2 from (x1', x2') = (0, 1) to (3, 2): Δa = 3, Δb = 1, a' = 0, b' = 1.
    C_a = Δa (b' + Δb / 2) = 3 (1 + 0.5) = 4.5 and C_b = Δb (a' + Δa / 2) = 1 (0 + 1.5) = 1.5;
    they sum to 6 = 3 * 2 - 0 * 1. The two orders of moving the inputs give (a first) 3 * 1 - 0 = 3
    then 6 - 3 = 3 for b, and (b first) 0 * 2 - 0 = 0 then 6 - 0 = 6 for a: the Shapley values are
    a: (3 + 6) / 2 = 4.5 and b: (3 + 0) / 2 = 1.5."""
    net = Graph(("x1", "x2"), [("m", Mul(), ("x1", "x2"))])
    x = (np.array([[3.0]]), np.array([[2.0]]))
    for rule in RULES:
        res = deeplift(net, x, baseline=(0.0, 1.0), rule=rule)
        assert res.values[0].tolist() == [[4.5]] and res.values[1].tolist() == [[1.5]]
        assert res.multipliers[0].tolist() == [[1.5]] and res.multipliers[1].tolist() == [[1.5]]
    # one factor does not change (x2 = x2' = 2): the Linear rule with weight b' = b = 2, so
    # C_a = Δa b' = 3 * 2 = 6 and C_b = 0 (whose multiplier a' + Δa / 2 = 1.5 multiplies Δb = 0)
    res = deeplift(net, (np.array([[3.0]]), np.array([[2.0]])), baseline=(0.0, 2.0))
    assert res.values[0].tolist() == [[6.0]] and res.values[1].tolist() == [[0.0]]


@pytest.mark.parametrize("rule", RULES)
def test_mul_reduces_to_the_linear_rule_when_one_input_does_not_change(rule):
    """A gate whose branch reads an input that equals its reference: b = sigmoid(Dense(x2)) with
    x2 = x2' has Δb = 0 exactly, so the product a * b is the linear map a -> diag(b) a on this
    pair, and DeepLIFT must give x1 the same contributions as the graph with the product replaced
    by Dense(diag(b)) (the Linear rule), under both rules, with a Tanh after it (whose RevealCancel
    reads the product's parts)."""
    rng = np.random.default_rng(11)
    wa, ba, wg, bg = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=4)
    wo, bo = rng.normal(size=(2, 4)), rng.normal(size=2)
    x1, x1_ref = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    x2 = rng.normal(size=(1, 2))
    gated = Graph(("x1", "x2"), [
        ("a", Dense(wa, ba), "x1"), ("g", Dense(wg, bg), "x2"), ("s", Sigmoid(), "g"),
        ("m", Mul(), ("a", "s")), ("t", Tanh(), "m"), ("y", Dense(wo, bo), "t"),
    ])
    b = 1.0 / (1.0 + np.exp(-(x2 @ wg.T + bg)))[0]
    linear = Graph("x1", [("a", Dense(wa, ba), "x1"), ("m", Dense(np.diag(b)), "a"), ("t", Tanh(), "m"),
                          ("y", Dense(wo, bo), "t")])
    res = deeplift(gated, (x1, x2), baseline=(x1_ref, x2), target=1, rule=rule)
    ref = deeplift(linear, x1, baseline=x1_ref, target=1, rule=rule)
    scale = np.abs(ref.values).max()
    np.testing.assert_allclose(res.values[0], ref.values, rtol=1e-13, atol=1e-13 * scale)
    assert res.values[1].tolist() == [[0.0, 0.0]]


# 4. The IG paper's example 1 ----------------------------------------------------------------------

def ig_example_1():
    """f(x1, x2) = relu(relu(x1) - 1 - relu(x2)) (Sundararajan, Taly & Yan 2017, section 2,
    example 1), two inputs; the bias is exactly -1."""
    return Graph(("x1", "x2"), [
        ("r1", ReLU(), "x1"), ("r2", ReLU(), "x2"),
        ("d", Add(weights=(1.0, -1.0)), ("r1", "r2")),
        ("z", Dense([[1.0]], [-1.0]), "d"),
        ("y", ReLU(), "z"),
    ])


X_EXAMPLE_1 = (np.array([[3.0]]), np.array([[1.0]]))


def test_ig_example_1_exact():
    """On the path (3a, a), the inner value is 3a - 1 - a = 2a - 1, positive for a > 1/2, where
    df/dx1 = 1 and df/dx2 = -1 (and 0 before). IG_1 = (3 - 0) * (1 - 1/2) * 1 = 1.5 and
    IG_2 = (1 - 0) * (1 - 1/2) * (-1) = -0.5, summing to f(3, 1) - f(0, 0) = 1 - 0. The kink sits at
    a = 1/2 exactly (1 / 2 is exact in binary), so the exact rule is exact here."""
    res = integrated_gradients(ig_example_1(), X_EXAMPLE_1, baseline=0.0, rule="exact")
    assert isinstance(res.values, tuple) and [v.shape for v in res.values] == [(1, 1), (1, 1)]
    assert res.values[0].tolist() == [[1.5]] and res.values[1].tolist() == [[-0.5]]
    assert res.completeness_gap.tolist() == [0.0]
    np.testing.assert_array_equal(res.options["breakpoints"][0], [0.5])


def test_ig_example_1_gauss_legendre():
    """The integrand is piecewise constant: 0 on [0, 1/2), (1, -1) on (1/2, 1]. Gauss-Legendre
    nodes and weights are symmetric about 1/2 and, for an even n, no node lies on 1/2, so the
    nodes above 1/2 carry exactly half of the total weight 1: the rule gives (1.5, -0.5) in exact
    arithmetic. What remains is the rounding of 32 weights and their sum (about 32 ulp of 1/2);
    1e-14 is honest. (For a generic kink position the rule would be off by O(1/n).)"""
    res = integrated_gradients(ig_example_1(), X_EXAMPLE_1, baseline=0.0, rule="gauss_legendre", n_steps=64)
    np.testing.assert_allclose(res.values[0], [[1.5]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(res.values[1], [[-0.5]], rtol=0, atol=1e-14)


@pytest.mark.parametrize("rule", RULES)
def test_ig_example_1_deeplift(rule):
    """At x' = 0: relu(x1) moves 0 -> 3, relu(x2) 0 -> 1, z moves -1 -> 1 (Δz = 2) and y 0 -> 1.
    Rescale: the output ReLU's multiplier is Δy / Δz = 1 / 2, the linear layers pass it back, so
    C_x1 = 3 * 1/2 = 1.5 and C_x2 = 1 * (-1) * 1/2 = -0.5 (the DeepLIFT paper's remark on this
    example). RevealCancel: z's parts are Δz+ = 3 (from x1) and Δz- = -1 (from x2), and
    Δy+ = (relu(-1 + 3) - relu(-1)) / 2 + (relu(-1 + 3 - 1) - relu(-1 - 1)) / 2 = 1 + 1/2 = 3/2,
    Δy- = (relu(-1 - 1) - relu(-1)) / 2 + (relu(1) - relu(2)) / 2 = -1/2; multipliers 3/2 / 3 = 1/2
    and -1/2 / -1 = 1/2, so the same (1.5, -0.5)."""
    res = deeplift(ig_example_1(), X_EXAMPLE_1, baseline=0.0, rule=rule)
    assert res.values[0].tolist() == [[1.5]] and res.values[1].tolist() == [[-0.5]]
    assert res.completeness_gap.tolist() == [0.0]
