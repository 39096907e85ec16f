"""The exported oracle set: deterministic, complete, consistent with its closed forms, and usable
by a test suite that has only NumPy and json (checked in a subprocess that never imports refattr).
"""

import hashlib
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from refattr import __version__
from refattr.testing.oracle import FORMAT_VERSION, N_STEPS, export_oracle

LAYER_TYPES = {"Dense", "Conv2D", "ReLU", "Tanh", "Sigmoid", "Swish", "Flatten", "AvgPool2D", "MaxPool2D",
               "Add", "Concat", "Mul"}


def layer_specs(network):
    """The layer specs of a case's network, a chain ({"layers"}) or a graph ({"inputs", "nodes"})."""
    return network["layers"] if "layers" in network else [node["layer"] for node in network["nodes"]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oracle")
    return directory, export_oracle(directory)


def test_export_is_deterministic(exported, tmp_path):
    directory, _ = exported
    export_oracle(tmp_path)
    files = sorted(p.relative_to(directory) for p in pathlib.Path(directory).rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (pathlib.Path(directory) / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_manifest_covers_every_layer_method_and_rule(exported):
    directory, manifest = exported
    assert json.loads((pathlib.Path(directory) / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    assert manifest["format"] == "refattr-oracle" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["refattr_version"] == __version__
    assert {layer["type"] for case in manifest["cases"] for layer in layer_specs(case["network"])} == LAYER_TYPES
    assert any("nodes" in case["network"] for case in manifest["cases"])
    keys = {a["key"] for case in manifest["cases"] for a in case["attributions"]}
    for rule in ("left", "right", "midpoint", "trapezoid", "gauss_legendre"):
        assert f"attr.integrated_gradients.{rule}.n{N_STEPS}" in keys
    for key in ("attr.gradient", "attr.input_x_gradient", "attr.guided_backprop", "attr.deconvnet",
                "attr.integrated_gradients.exact", "attr.integrated_gradients.quad", "attr.deeplift.rescale",
                "attr.deeplift.reveal_cancel", "attr.deeplift.rescale.delta_routing", "attr.deeplift.rescale.gradient",
                "attr.deeplift.rescale.baseline_samples", "attr.integrated_gradients.quad.baseline_samples"):
        assert key in keys, key
    for case in manifest["cases"]:
        data = (pathlib.Path(directory) / case["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == case["sha256"]
        assert case["provenance"] and case["description"]
        for entry in case["attributions"]:
            assert entry["tolerance"] in manifest["tolerances"]
            assert entry["method"] in manifest["formulas"] or any(f.startswith(entry["method"])
                                                                 for f in manifest["formulas"])


def test_paper_cases_match_their_closed_forms(exported):
    directory, manifest = exported
    checked = 0
    for case in manifest["cases"]:
        if not case["closed_form"]:
            continue
        arrays = np.load(pathlib.Path(directory) / case["file"])
        for key, expected in case["closed_form"].items():
            np.testing.assert_allclose(arrays[f"attr.{key}"], expected, rtol=1e-14, atol=1e-15)
            checked += 1
    assert checked >= 8


# A consumer with NumPy and json only: forward pass of every layer type, the stored outputs,
# central-difference gradients, integrated gradients rebuilt from quadrature.npz, completeness.
CONSUMER = r'''
import hashlib, json, pathlib, sys
import numpy as np

root = pathlib.Path(sys.argv[1])
manifest = json.loads((root / "manifest.json").read_text())
assert manifest["format"] == "refattr-oracle"
quad = np.load(root / manifest["quadrature"]["file"])

def conv(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    t, bo, l, r = pad
    x = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    co, cg, kh, kw = w.shape
    oh = (h + t + bo - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + l + r - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, co, oh, ow))
    per = co // groups
    for o in range(co):
        g = o // per
        for i in range(kh):
            for j in range(kw):
                patch = x[:, g * cg:(g + 1) * cg, i * dil[0]: i * dil[0] + stride[0] * (oh - 1) + 1: stride[0],
                          j * dil[1]: j * dil[1] + stride[1] * (ow - 1) + 1: stride[1]]
                out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    return out if b is None else out + b[None, :, None, None]

def pool(x, kernel, stride, pad, kind, include_pad=True):
    t, bo, l, r = pad
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)), constant_values=fill)
    real = np.pad(np.ones(x.shape[2:]), ((t, bo), (l, r)))
    kh, kw = kernel
    oh = (xp.shape[2] - kh) // stride[0] + 1
    ow = (xp.shape[3] - kw) // stride[1] + 1
    out = np.full(x.shape[:2] + (oh, ow), -np.inf if kind == "max" else 0.0)
    count = np.zeros((oh, ow))
    for i in range(kh):
        for j in range(kw):
            sl = (slice(i, i + stride[0] * (oh - 1) + 1, stride[0]), slice(j, j + stride[1] * (ow - 1) + 1, stride[1]))
            cell = xp[(slice(None), slice(None)) + sl]
            out = np.maximum(out, cell) if kind == "max" else out + cell
            count += real[sl]
    if kind == "max":
        return out
    return out / (kh * kw if include_pad else count)

def apply(spec, arrays, x):
    kind = spec["type"]
    if kind == "Dense":
        return x @ arrays[spec["weight"]].T + (0 if spec["bias"] is None else arrays[spec["bias"]])
    if kind == "Conv2D":
        return conv(x, arrays[spec["weight"]], None if spec["bias"] is None else arrays[spec["bias"]],
                    spec["stride"], spec["padding"], spec["dilation"], spec["groups"])
    if kind == "ReLU":
        return np.maximum(x, 0.0)
    if kind == "Tanh":
        return np.tanh(x)
    if kind == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "Swish":
        return x / (1 + np.exp(-spec["beta"] * x))
    if kind == "Flatten":
        assert (spec["start_dim"], spec["end_dim"]) == (1, -1)
        return x.reshape(x.shape[0], -1)
    if kind == "MaxPool2D":
        return pool(x, spec["kernel"], spec["stride"], spec["padding"], "max")
    if kind == "AvgPool2D":
        return pool(x, spec["kernel"], spec["stride"], spec["padding"], "avg", spec["count_include_pad"])
    raise AssertionError(kind)

def join(spec, values):
    kind = spec["type"]
    if kind == "Add":
        weights = spec["weights"] or [1.0] * len(values)
        return sum(w * v for w, v in zip(weights, values))
    if kind == "Concat":
        return np.concatenate(values, axis=spec["axis"])
    if kind == "Mul":
        return values[0] * values[1]
    raise AssertionError(kind)

def forward(case, arrays, x):
    network = case["network"]
    if "layers" in network:
        for spec in network["layers"]:
            x = apply(spec, arrays, x)
        return x
    (name,) = network["inputs"]
    values = {name: x}
    for node in network["nodes"]:
        ins = [values[i] for i in node["inputs"]]
        values[node["name"]] = join(node["layer"], ins) if len(ins) > 1 else apply(node["layer"], arrays, ins[0])
    return values[network["nodes"][-1]["name"]]

def fd_gradient(case, arrays, points, target, h=1e-6):
    """Central differences of t = f(.)[target], all coordinates of all points in one batch."""
    n, size = points.shape[0], points[0].size
    eye = np.eye(size).reshape((size,) + points.shape[1:])
    plus = (points[:, None] + h * eye[None]).reshape((n * size,) + points.shape[1:])
    minus = (points[:, None] - h * eye[None]).reshape((n * size,) + points.shape[1:])
    rows = np.arange(n * size)
    t = np.repeat(target, size)
    diff = forward(case, arrays, plus)[rows, t] - forward(case, arrays, minus)[rows, t]
    return (diff / (2 * h)).reshape(points.shape)

def close(actual, expected, rtol, atol):
    n = expected.shape[0]
    scale = np.abs(expected).reshape(n, -1).max(axis=1).reshape((n,) + (1,) * (expected.ndim - 1))
    return bool(np.all(np.abs(actual - expected) <= atol + rtol * scale))

checks = 0
for case in manifest["cases"]:
    data = (root / case["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == case["sha256"], case["name"]
    a = np.load(root / case["file"])
    x, b, t = a["x"], a["baseline"], a["target"]
    rows = np.arange(x.shape[0])
    assert close(forward(case, a, x), a["output.x"], 1e-12, 1e-14), case["name"]
    assert close(forward(case, a, b), a["output.baseline"], 1e-12, 1e-14), case["name"]
    delta_t = a["output.x"][rows, t] - a["output.baseline"][rows, t]
    if "baseline_samples" in a.files:
        delta_t_k = a["output.x"][rows, t] - a["output.baseline_samples"][:, t].mean(axis=0)
    grad = fd_gradient(case, a, x, t)
    assert close(a["attr.gradient"], grad, 1e-6, 1e-8), case["name"]
    assert close(a["attr.input_x_gradient"], x * a["attr.gradient"], 1e-14, 0), case["name"]
    checks += 4
    for entry in case["attributions"]:
        phi = a[entry["key"]]
        assert phi.shape == x.shape
        opts = entry["options"]
        # (paper cases put quadrature nodes exactly on ReLU kinks, where a central difference gives
        # the mean of the one-sided slopes instead of ReLU'(0) = 0: rebuilt for the random cases)
        if entry["method"] == "integrated_gradients" and opts.get("n_steps") and not case["closed_form"]:
            nodes = quad[f'{opts["rule"]}.n{opts["n_steps"]}.nodes']
            weights = quad[f'{opts["rule"]}.n{opts["n_steps"]}.weights']
            total = sum(w * fd_gradient(case, a, b + s * (x - b), t) for s, w in zip(nodes, weights))
            assert close(phi, (x - b) * total, 1e-6, 1e-8), (case["name"], entry["key"])
            checks += 1
        if entry["gap"] is not None:
            dt = delta_t_k if opts.get("baseline_samples") else delta_t
            gap = phi.reshape(x.shape[0], -1).sum(axis=1) - dt
            assert np.allclose(gap, a[entry["gap"]], rtol=0, atol=1e-12), (case["name"], entry["key"])
            if entry["complete"]:
                assert np.all(np.abs(gap) <= manifest["tolerances"]["completeness"]["atol"]), (case["name"], entry["key"])
            checks += 1
    for key, expected in (case["closed_form"] or {}).items():
        assert np.allclose(a["attr." + key], expected, rtol=1e-14, atol=1e-15)
        checks += 1
assert "refattr" not in sys.modules
print(f"{checks} checks passed on {len(manifest['cases'])} cases")
'''


def test_oracle_loads_and_checks_with_plain_numpy(exported):
    directory, manifest = exported
    # -I: isolated mode (no current directory or PYTHONPATH on sys.path); the script imports only numpy and json
    done = subprocess.run([sys.executable, "-I", "-c", CONSUMER, str(directory)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"on {len(manifest['cases'])} cases" in done.stdout
    assert int(done.stdout.split()[0]) > 100
