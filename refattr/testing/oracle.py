"""A versioned set of canonical cases with reference attributions, for other libraries' test suites.

``export_oracle(directory)`` (CLI: ``refattr oracle export DIR``) writes::

    DIR/manifest.json        provenance, refattr version, conventions, formulas, tolerances, and for
                             every case its network (a chain or a graph, in the one form
                             of :mod:`refattr.network_spec`; weights stored in the case's
                             npz), arrays and expected results
    DIR/cases/<name>.npz     weights, inputs, baseline (one per example), baseline_samples (K
                             references), targets, outputs, reference attributions,
                             completeness gaps and error estimates of one case (an error
                             estimate is inf where refattr claims no bound: a fixed rule whose
                             nodes straddle a kink of the example's path)
    DIR/quadrature.npz       the nodes and weights of every fixed integrated-gradients rule used

Everything is readable with NumPy and ``json`` alone (``np.load(path)`` for the .npz files; no
pickles), so a test suite can use the cases without importing refattr. The export is
deterministic: the same refattr version writes the same bytes (fixed zip timestamps, sorted keys,
fixed seeds), and the manifest records the SHA-256 of every file.

Cases: the papers' examples (the tutorial's saturation example, DeepLIFT's thresholding and min
examples) with their closed forms, and small random networks covering every layer type (MLPs with
each activation, CNNs with strided/padded/dilated/grouped convolution, average and max pooling).
For each: gradient, input x gradient, guided backprop, deconvnet, integrated gradients with every
rule (fixed rules at ``N_STEPS`` steps, and the reference: exact on piecewise-linear networks,
adaptive quadrature otherwise), DeepLIFT Rescale and RevealCancel (each max-pool rule where the
network pools), and the K-reference (``baseline_samples``: DeepSHAP / expected-gradients) variants.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import numpy as np

from .. import __version__
from ..graph import Graph
from ..layers import Add, AvgPool2D, Concat, Conv2D, Dense, Flatten, MaxPool2D, Mul, ReLU, Sigmoid, Swish, Tanh
from ..layers.max_pool import MAXPOOL_RULES, is_max_pooling
from ..methods import deconvnet, gradient, guided_backprop, input_x_gradient
from ..methods.deeplift import deeplift
from ..methods.integrated_gradients import integrated_gradients
from ..network import Sequential
from ..network_spec import network_from_spec, network_to_spec
from .. import quadrature

__all__ = ["export_oracle", "oracle_cases", "network_from_spec", "FORMAT_VERSION", "N_STEPS", "SEED"]

#: Bumped whenever the layout of the exported files changes (2: the K references are
#: ``baseline_samples``, formerly ``baselines``, in array names, attribution keys and options;
#: 3: a case's ``"network"`` (:mod:`refattr.network_spec`: ``{"layers": [...]}`` for a chain,
#: ``{"inputs": [...], "nodes": [...]}`` for a graph) replaces its ``"layers"`` list).
FORMAT_VERSION = 3
#: Steps of the fixed integrated-gradients rules in the oracle.
N_STEPS = 16
#: Seed of every random case (numpy.random.default_rng(SEED + case index)).
SEED = 20261126
FIXED_RULES = ("left", "right", "midpoint", "trapezoid", "gauss_legendre")

CONVENTIONS = {
    "batch": "batch axis first; images NCHW",
    "Dense": "y = x @ weight.T + bias; weight (out_features, in_features) (PyTorch/ONNX layout)",
    "Conv2D": "cross-correlation; weight (C_out, C_in // groups, kH, kW); padding (top, bottom, left, right), "
              "zeros; stride and dilation (height, width); output channel o reads the input channels of group "
              "o // (C_out // groups)",
    "AvgPool2D": "mean over each kernel window; padded cells count as zeros when count_include_pad, else the "
                 "divisor is the number of real cells; floor mode",
    "MaxPool2D": "max over each window; padded cells are -inf; a tie goes to the first maximum in row-major "
                 "window order; floor mode",
    "Flatten": "merges axes start_dim..end_dim of each example (batch axis 0, negative from the end, as "
               "torch.nn.Flatten), row-major",
    "Reshape": "row-major reshape of each example to shape (one -1 inferred)",
    "ReLU": "max(x, 0) with ReLU'(0) = 0",
    "Swish": "x * sigmoid(beta * x)",
    "target": "the attribution explains t_n = f(x_n)[target_n]",
    "baseline": "array of x's shape: the reference input x' of example n is baseline[n]",
    "baseline_samples": "array (K, *example_shape): K references; the attribution is the mean over them and "
                 "completeness holds against the mean of t(x) - t(x'_k)",
}

FORMULAS = {
    "gradient": "phi = dt/dx",
    "input_x_gradient": "phi = x * dt/dx",
    "guided_backprop": "backward pass where each ReLU with input z passes g * 1(z > 0) * 1(g > 0); every other "
                       "layer its ordinary vector-Jacobian product (Springenberg et al. 2015)",
    "deconvnet": "backward pass where each ReLU passes g * 1(g > 0) (forward input ignored); every other layer "
                 "its ordinary vector-Jacobian product (Zeiler & Fergus 2014)",
    "integrated_gradients": "phi = (x - x') * int_0^1 dt/dx(x' + a (x - x')) da ~ (x - x') * sum_k w_k "
                            "dt/dx(x' + a_k (x - x')); nodes and weights of each fixed rule in quadrature.npz",
    "integrated_gradients.left": "a_k = (k - 1)/n, w_k = 1/n, k = 1..n",
    "integrated_gradients.right": "a_k = k/n, w_k = 1/n",
    "integrated_gradients.midpoint": "a_k = (k - 1/2)/n, w_k = 1/n",
    "integrated_gradients.trapezoid": "a_k = (k - 1)/(n - 1), w_k = 1/(n - 1) with both ends halved (sum 1)",
    "integrated_gradients.gauss_legendre": "Gauss-Legendre nodes x_k on [-1, 1]: a_k = (1 + x_k)/2, w_k = W_k/2",
    "integrated_gradients.exact": "piecewise-linear networks: the path split where a ReLU input crosses zero or a "
                                  "max-pool winner changes; the gradient is constant on each piece (exact up to "
                                  "rounding)",
    "integrated_gradients.quad": "adaptive Gauss-Kronrod 7-15, adapted per example, to rtol 1e-10",
    "deeplift.rescale": "Shrikumar et al. 2017, Linear rule (sign of w_i dx_i splits dy+ / dy-, 0.5 each at "
                        "dx_i == 0) and Rescale rule m = dy/dx as a stable divided difference (limit f'(x') at "
                        "dx -> 0, no threshold); phi = m * (x - x')",
    "deeplift.reveal_cancel": "RevealCancel: dy+ = 1/2 (f(x'+dx+) - f(x')) + 1/2 (f(x'+dx-+dx+) - f(x'+dx-)), "
                              "dy- likewise, m+- = dy+- / dx+-; no cross terms",
    "deeplift.maxpool.delta_routing": "per window route max(y, y') - y' to the input's winner and y - max(y, y') "
                                      "to the reference's winner (keeps completeness)",
    "deeplift.maxpool.gradient": "multiplier 1 at the input's winner (original DeepLIFT code; completeness not "
                                 "guaranteed, see the gap arrays)",
    "completeness_gap": "sum_i phi_ni - (t(x_n) - t(x'_n)), stored as gap.<key>",
}

TOLERANCES = {
    "scale": "per example: |actual - expected| <= atol + rtol * max_i |expected_ni|",
    "exact": {"rtol": 1e-10, "atol": 1e-13,
              "reason": "gradient family, fixed quadrature rules, exact IG and DeepLIFT are deterministic float64 "
                        "computations; an independent float64 implementation differs by accumulated rounding "
                        "(~1e-14 on these sizes); 1e-10 leaves margin and still catches any real difference"},
    "quad": {"rtol": 1e-8, "atol": 1e-12,
             "reason": "the reference integral is adaptive quadrature to rtol 1e-10 (error estimate stored as "
                       "error.<key>); 1e-8 covers the quadrature error of the reference and of a consumer's own "
                       "high-accuracy integral"},
    "float32": {"rtol": 1e-4, "atol": 1e-6,
                "reason": "a float32 implementation rounds each operation to 6e-8; over a network and a sum of "
                          "gradients 1e-4 relative separates rounding from real differences"},
    "completeness": {"atol": 1e-10,
                     "reason": "for methods marked complete, |gap| is rounding-level (exact IG, DeepLIFT "
                               "delta_routing) or bounded by the quadrature error (quad)"},
}


# cases -----------------------------------------------------------------------------------------
def _rng(i):
    return np.random.default_rng(SEED + i)


def _mlp(rng, activation, sizes=(4, 6, 5, 3)):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.5))
        if i < len(sizes) - 2:
            layers.append(activation())
    return Sequential(layers, input_shape=(sizes[0],))


def _conv(rng, c_in, c_out, k, **kw):
    groups = kw.get("groups", 1)
    return Conv2D(rng.normal(size=(c_out, c_in // groups) + k) / np.sqrt(c_in // groups * k[0] * k[1]),
                  rng.normal(size=c_out) * 0.3, **kw)


def _head(rng, net_layers, input_shape, n_out=3):
    shape = Sequential(net_layers).output_shape(input_shape) if net_layers else input_shape
    n = int(np.prod(shape))
    return Dense(rng.normal(size=(n_out, n)) / np.sqrt(n), rng.normal(size=n_out) * 0.3)


def oracle_cases() -> list[dict]:
    """The canonical cases: name, description, provenance, net, x, baseline, target, baseline_samples,
    closed_form."""
    cases = []
    # The tutorial's saturation example f(x) = 1 - max(0, 1 - x): gradient 0 at x = 2 although
    # f(2) - f(0) = 1.
    cases.append(dict(
        name="paper_saturation",
        provenance="the tutorial \"Feature Attribution in Deep Neural Networks\" (docs/axioms.md), section "
                   "Gradients (f(x) = 1 - max(0, 1 - x))",
        description="f(x) = 1 - relu(1 - x) at x = 2 and x = 0.5, baseline 0",
        net=Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])], input_shape=(1,)),
        x=np.array([[2.0], [0.5]]), baseline=np.zeros((2, 1)), target=np.array([0, 0]),
        closed_form={"gradient": [[0.0], [1.0]], "integrated_gradients.exact": [[1.0], [0.5]],
                     "deeplift.rescale": [[1.0], [0.5]]}))
    # Shrikumar et al. 2017, figure 2: y = relu(x - 10), reference 0; at x = 15 the multiplier is 5/15.
    cases.append(dict(
        name="paper_deeplift_threshold", provenance="Shrikumar et al. 2017 (DeepLIFT), figure 2",
        description="y = relu(x - 10) at x = 15 and x = 9, reference 0",
        net=Sequential([Dense([[1.0]], [-10.0]), ReLU()], input_shape=(1,)),
        x=np.array([[15.0], [9.0]]), baseline=np.zeros((2, 1)), target=np.array([0, 0]),
        closed_form={"gradient": [[1.0], [0.0]], "deeplift.rescale": [[5.0], [0.0]],
                     "integrated_gradients.exact": [[5.0], [0.0]]}))
    # Shrikumar et al. 2017, section 3.5.3 / figure 3: o = i1 - relu(i1 - i2) = min(i1, i2) at (3, 1),
    # reference (0, 0), written with a second hidden unit relu(i1) = i1 (i1 >= 0 here).
    # Rescale: relu(i1 - i2) has multiplier 2/2 = 1, so C_i1 = 3 (1 - 1) = 0 and C_i2 = 1 * 1 = 1.
    # RevealCancel on relu(i1 - i2): dz+ = 3, dz- = -1, dh+ = (3 + 2)/2 = 2.5, dh- = (0 - 1)/2 = -0.5,
    # so C_i1 = 3 - 2.5 = 0.5 and C_i2 = 0.5. IG: the path a (3, 1) crosses no kink (i1 - i2 = 2a >= 0),
    # so phi = (3 (1 - 1), 1 * 1) = (0, 1). The exported values are refattr's; these closed forms are
    # stored next to them in the manifest and checked in tests/interop/test_oracle.py.
    cases.append(dict(
        name="paper_deeplift_min", provenance="Shrikumar et al. 2017 (DeepLIFT), section 3.5.3, figure 3",
        description="o = i1 - relu(i1 - i2) = min(i1, i2) at (3, 1), reference (0, 0)",
        net=Sequential([Dense([[1.0, -1.0], [1.0, 0.0]]), ReLU(), Dense([[-1.0, 1.0]])], input_shape=(2,)),
        x=np.array([[3.0, 1.0]]), baseline=np.zeros((1, 2)), target=np.array([0]),
        closed_form={"deeplift.rescale": [[0.0, 1.0]], "deeplift.reveal_cancel": [[0.5, 0.5]],
                     "integrated_gradients.exact": [[0.0, 1.0]]}))
    for i, (name, act) in enumerate((("relu", ReLU), ("tanh", Tanh), ("sigmoid", Sigmoid), ("swish", Swish))):
        rng = _rng(i)
        net = _mlp(rng, act)
        cases.append(dict(name=f"mlp_{name}", provenance=f"random (numpy default_rng({SEED + i}))",
                          description=f"Dense 4-6-5-3 with {act.__name__} between the dense layers",
                          net=net, x=rng.normal(size=(3, 4)), baseline=rng.normal(size=(3, 4)) * 0.3,
                          target=np.array([0, 2, 1]), baseline_samples=rng.normal(size=(3, 4)) * 0.5,
                          closed_form=None))
    # CNN, piecewise linear: asymmetric padding, stride, ReLU, overlapping max pooling, average pooling.
    rng = _rng(10)
    shape = (2, 6, 6)
    layers = [_conv(rng, 2, 3, (3, 3), padding=(1, 0, 1, 1)), ReLU(), MaxPool2D(2, stride=1),
              _conv(rng, 3, 4, (2, 2), stride=2, dilation=1), ReLU(), AvgPool2D(2, stride=1, padding=1), Flatten()]
    layers.append(_head(rng, layers, shape))
    cases.append(dict(name="cnn_relu_maxpool", provenance=f"random (numpy default_rng({SEED + 10}))",
                      description="Conv(3x3, asymmetric padding) ReLU MaxPool(2, stride 1) Conv(2x2, stride 2) ReLU "
                                  "AvgPool(2, stride 1, padding 1, count_include_pad) Flatten Dense",
                      net=Sequential(layers, input_shape=shape), x=rng.normal(size=(2,) + shape),
                      baseline=rng.normal(size=(2,) + shape) * 0.3, target=np.array([0, 2]),
                      baseline_samples=rng.normal(size=(2,) + shape) * 0.5, closed_form=None))
    # CNN, smooth: dilation, groups, tanh, sigmoid, swish, average pooling without padded cells counted.
    rng = _rng(11)
    shape = (2, 7, 7)
    layers = [_conv(rng, 2, 4, (3, 3), dilation=2, padding=1), Tanh(), _conv(rng, 4, 4, (2, 2), groups=2), Swish(),
              AvgPool2D(3, stride=2, padding=1, count_include_pad=False), Sigmoid(), Flatten()]
    layers.append(_head(rng, layers, shape, n_out=2))
    cases.append(dict(name="cnn_smooth", provenance=f"random (numpy default_rng({SEED + 11}))",
                      description="Conv(3x3, dilation 2, padding 1) Tanh Conv(2x2, groups 2) Swish "
                                  "AvgPool(3, stride 2, padding 1, count_include_pad=False) Sigmoid Flatten Dense",
                      net=Sequential(layers, input_shape=shape), x=rng.normal(size=(2,) + shape),
                      baseline=rng.normal(size=(2,) + shape) * 0.3, target=np.array([1, 0]),
                      baseline_samples=rng.normal(size=(2,) + shape) * 0.5, closed_form=None))
    cases += _graph_cases()
    return cases


def _graph_cases() -> list[dict]:
    """Graphs: a ResNet basic block with a 1x1 downsampling shortcut (piecewise linear: exact IG),
    and a gated, branching MLP (Mul gate, Concat of branches, a weighted Add; smooth)."""
    rng = _rng(20)
    shape = (2, 6, 6)
    block = [("c1", _conv(rng, 2, 4, (3, 3), stride=2, padding=1), "x"), ("r1", ReLU(), "c1"),
             ("c2", _conv(rng, 4, 4, (3, 3), padding=1), "r1"),
             ("down", _conv(rng, 2, 4, (1, 1), stride=2), "x"), ("sum", Add(), ("c2", "down")),
             ("r2", ReLU(), "sum"), ("pool", MaxPool2D(2, stride=1), "r2"), ("flat", Flatten(), "pool")]
    n = int(np.prod(Graph("x", block).output_shape(shape)))
    block.append(("y", Dense(rng.normal(size=(3, n)) / np.sqrt(n), rng.normal(size=3) * 0.3), "flat"))
    resnet = dict(name="graph_resnet_block", provenance=f"random (numpy default_rng({SEED + 20}))",
                  description="ResNet basic block: Conv(3x3, stride 2) ReLU Conv(3x3) + Conv(1x1, stride 2) "
                              "shortcut, Add, ReLU, MaxPool(2, stride 1), Flatten, Dense",
                  net=Graph("x", block, input_shape=shape), x=rng.normal(size=(2,) + shape),
                  baseline=rng.normal(size=(2,) + shape) * 0.3, target=np.array([0, 2]),
                  baseline_samples=rng.normal(size=(2,) + shape) * 0.5, closed_form=None)
    rng = _rng(21)

    def dense(n_out, n_in):
        return Dense(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.5)

    nodes = [("h", dense(6, 4), "x"), ("a", Tanh(), "h"), ("g_in", dense(6, 4), "x"), ("g", Sigmoid(), "g_in"),
             ("gated", Mul(), ("a", "g")), ("s_in", dense(3, 4), "x"), ("s", Swish(), "s_in"),
             ("cat", Concat(), ("gated", "s")), ("mix", dense(4, 9), "cat"), ("skip", dense(4, 4), "x"),
             ("res", Add(weights=(1.0, -0.5)), ("mix", "skip")), ("y", dense(2, 4), "res")]
    gated = dict(name="graph_gated_branches", provenance=f"random (numpy default_rng({SEED + 21}))",
                 description="tanh(Dense x) * sigmoid(Dense x) (a Mul gate), concatenated with Swish(Dense x), "
                             "Dense, minus half a Dense shortcut of x (weighted Add), Dense",
                 net=Graph("x", nodes, input_shape=(4,)), x=rng.normal(size=(3, 4)),
                 baseline=rng.normal(size=(3, 4)) * 0.3, target=np.array([0, 1, 1]),
                 baseline_samples=rng.normal(size=(3, 4)) * 0.5, closed_form=None)
    return [resnet, gated]


def _results(case):
    """[(key, method, options, values, gap, error, tolerance name, complete)] for one case."""
    net, x, b, t = case["net"], case["x"], case["baseline"], case["target"]
    has_pool = any(is_max_pooling(layer) for layer in net.layers)
    out = []

    def add(key, method, options, result, tolerance, complete):
        gap = result.completeness_gap
        error = result.error_estimate
        out.append((key, method, options, result.values, gap, None if error is None else np.asarray(error, float),
                    tolerance, complete))

    for name, fn in (("gradient", gradient), ("input_x_gradient", input_x_gradient),
                     ("guided_backprop", guided_backprop), ("deconvnet", deconvnet)):
        add(f"attr.{name}", name, {}, fn(net, x, t), "exact", False)
    for rule in FIXED_RULES:
        add(f"attr.integrated_gradients.{rule}.n{N_STEPS}", "integrated_gradients", {"rule": rule, "n_steps": N_STEPS},
            integrated_gradients(net, x, b, target=t, rule=rule, n_steps=N_STEPS), "exact", False)
    reference = "exact" if net.piecewise_linear else "quad"
    add(f"attr.integrated_gradients.{reference}", "integrated_gradients", {"rule": reference},
        integrated_gradients(net, x, b, target=t, rule=reference), reference, True)
    for rule in ("rescale", "reveal_cancel"):
        for pool_rule in (MAXPOOL_RULES if has_pool else (None,)):
            key = f"attr.deeplift.{rule}" + (f".{pool_rule}" if pool_rule else "")
            add(key, "deeplift", {"rule": rule, "maxpool_rule": pool_rule},
                deeplift(net, x, b, target=t, rule=rule, maxpool_rule=pool_rule), "exact", pool_rule != "gradient")
    if case.get("baseline_samples") is not None:
        bs = case["baseline_samples"]
        pool_rule = "delta_routing" if has_pool else None
        add("attr.deeplift.rescale.baseline_samples", "deeplift",
            {"rule": "rescale", "maxpool_rule": pool_rule, "baseline_samples": "baseline_samples"},
            deeplift(net, x, target=t, rule="rescale", baseline_samples=bs, maxpool_rule=pool_rule), "exact", True)
        add(f"attr.integrated_gradients.{reference}.baseline_samples", "integrated_gradients",
            {"rule": reference, "baseline_samples": "baseline_samples"},
            integrated_gradients(net, x, target=t, rule=reference, baseline_samples=bs), reference, True)
    return out


# deterministic files ---------------------------------------------------------------------------
def _npz_bytes(arrays: dict) -> bytes:
    """An .npz (uncompressed zip of .npy files) with sorted names and a fixed timestamp."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, npy.getvalue())
    return buffer.getvalue()


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def export_oracle(directory) -> dict:
    """Write the oracle set to ``directory`` (created if needed) and return the manifest.

    Parameters
    ----------
    directory : str or path
        Existing files of the same names are overwritten; nothing else there is touched.

    Returns
    -------
    dict
        The manifest also written to ``directory/manifest.json``.

    Notes
    -----
    Deterministic: the same refattr version writes byte-identical files on a given platform
    (NumPy's matrix products may round differently across BLAS builds; the tolerances in the
    manifest cover that). A consumer needs only NumPy and ``json``; see ``manifest.json`` for the
    array names, formulas and tolerances, and the module docstring for the layout.
    """
    directory = os.fspath(directory)
    os.makedirs(os.path.join(directory, "cases"), exist_ok=True)
    quad_arrays = {}
    for rule in FIXED_RULES:
        nodes, weights = quadrature.nodes_and_weights(rule, N_STEPS)
        quad_arrays[f"{rule}.n{N_STEPS}.nodes"] = nodes
        quad_arrays[f"{rule}.n{N_STEPS}.weights"] = weights
    manifest = {
        "format": "refattr-oracle", "format_version": FORMAT_VERSION, "refattr_version": __version__,
        "generator": "refattr.testing.oracle.export_oracle (CLI: refattr oracle export DIR)",
        "seed": SEED, "n_steps": N_STEPS, "dtype": "float64",
        "conventions": CONVENTIONS, "formulas": FORMULAS, "tolerances": TOLERANCES,
        "quadrature": {"file": "quadrature.npz", "sha256": _write(os.path.join(directory, "quadrature.npz"),
                                                                  _npz_bytes(quad_arrays)),
                       "arrays": sorted(quad_arrays)},
        "cases": [],
    }
    for case in oracle_cases():
        net = case["net"]
        arrays = {"x": case["x"], "baseline": case["baseline"], "target": case["target"].astype(np.int64),
                  "output.x": net(case["x"]), "output.baseline": net(case["baseline"])}
        if case.get("baseline_samples") is not None:
            arrays["baseline_samples"] = case["baseline_samples"]
            arrays["output.baseline_samples"] = net(case["baseline_samples"])
        network = network_to_spec(net, arrays)
        entries = []
        for key, method, options, values, gap, error, tolerance, complete in _results(case):
            arrays[key] = values
            entry = {"key": key, "method": method, "options": options, "tolerance": tolerance,
                     "complete": complete, "gap": None, "error_estimate": None}
            if gap is not None:
                arrays[f"gap.{key[5:]}"] = gap
                entry["gap"] = f"gap.{key[5:]}"
            if error is not None:
                arrays[f"error.{key[5:]}"] = error
                entry["error_estimate"] = f"error.{key[5:]}"
            entries.append(entry)
        rel = f"cases/{case['name']}.npz"
        manifest["cases"].append({
            "name": case["name"], "description": case["description"], "provenance": case["provenance"],
            "closed_form": case["closed_form"], "file": rel,
            "sha256": _write(os.path.join(directory, rel), _npz_bytes(arrays)),
            "input_shape": list(net.input_shape), "n_outputs": int(arrays["output.x"].shape[1]),
            "piecewise_linear": bool(net.piecewise_linear), "network": network, "arrays": sorted(arrays),
            "attributions": entries,
        })
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _write(os.path.join(directory, "manifest.json"), text.encode())
    return manifest
