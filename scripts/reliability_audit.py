#!/usr/bin/env python
"""Reliability catalogue: feed refattr one bad input per case and count the outcomes by class.

Each case is a small function that hands refattr one bad input (an API call, a layer, a
Sequential, a method, ``from_torch``, ``from_onnx``, ``compare_attributions`` / ``compare_captum``,
or the ``refattr`` command line run as a subprocess), together with the phrases a clear message
must contain (lower-case substrings naming the argument or layer and the fix). The outcome is one
of:

- ``clear``: a :class:`refattr.errors.RefattrError` (for the command line: exit code 2, an
  ``error:`` line on stderr, no traceback) whose message holds every expected phrase;
- ``unclear``: the same, but the message lacks an expected phrase;
- ``raw``: any other exception (KeyError, OverflowError, MemoryError, torch / onnx / protobuf
  errors, a timeout), a traceback on the command line, or exit code 1 on bad input;
- ``silent``: no error at all (a result was returned, the command exited 0), or a side effect that
  must not happen (a marker file written by a pickle, a secret file's bytes read as weights);
- ``correct``: a handful of inputs are legitimate but used to break (Gauss-Legendre with 4000
  nodes, ONNX Conv without ``kernel_shape``); a result checked against a closed form counts here;
- ``skipped``: the case needs torch / onnx / onnxruntime / captum, which is not installed.

Cases that could allocate a lot of memory or run for minutes run in a child process whose address
space is capped (``resource.setrlimit(RLIMIT_AS)``: the child's size after imports plus
``--memory-gib``) and which is killed after ``--timeout`` seconds (a timeout counts as raw).

Usage::

    python scripts/reliability_audit.py                # table of counts by area and class
    python scripts/reliability_audit.py --verbose      # plus one line per case
    python scripts/reliability_audit.py --json out.json -k onnx

To audit another checkout, put it first on the path: ``PYTHONPATH=/path/to/checkout python
scripts/reliability_audit.py``; the header prints which ``refattr`` was imported (the command-line
cases run from a temporary directory, so they import the same one).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

import refattr
from refattr.errors import RefattrError

CLASSES = ("clear", "unclear", "raw", "silent", "correct", "skipped")
OPTIONAL = ("torch", "onnx", "onnxruntime", "captum")


# The classifier ----------------------------------------------------------------------------------

class CliResult(NamedTuple):
    """What a command-line case returns: the exit code and both streams."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``run(ctx)`` feeds it to refattr. ``phrases``: every entry must occur in the lower-cased
    message; an entry may be a tuple of alternatives (any one suffices). ``needs``: optional
    packages. ``isolate``: run in a capped child process. ``side_effect(ctx)`` returns a
    description of a forbidden side effect, or None. ``verify(result)`` (legitimate inputs only)
    returns None when the returned result is right, else what is wrong.
    """

    area: str
    name: str
    run: Callable[["Context"], Any]
    phrases: tuple = ()
    needs: tuple = ()
    isolate: bool = False
    side_effect: Callable[["Context"], str | None] | None = None
    verify: Callable[[Any], str | None] | None = None


@dataclass
class Outcome:
    area: str
    name: str
    cls: str
    kind: str          # exception class, "exit N", "returned", "timeout", ...
    message: str
    missing: list = field(default_factory=list)
    seconds: float = 0.0


def _missing(message: str, phrases) -> list:
    text = message.lower()
    missing = []
    for phrase in phrases:
        alternatives = phrase if isinstance(phrase, tuple) else (phrase,)
        if not any(a.lower() in text for a in alternatives):
            missing.append(" | ".join(alternatives))
    return missing


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        finite = bool(np.all(np.isfinite(value))) if value.dtype.kind in "fc" else True
        return f"ndarray {value.shape} {value.dtype}{'' if finite else ' holding non-finite values'}"
    if type(value).__name__ == "Attribution":
        return f"Attribution {_describe(np.asarray(value.values))}"
    if type(value).__name__ == "Report":
        verdicts = [f"{e.method}: {e.verdict}" for e in getattr(value, "entries", [])]
        return f"Report ok={getattr(value, 'ok', '?')} ({', '.join(verdicts)})"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def classify_cli(result: CliResult, phrases) -> tuple[str, str, str, list]:
    """(class, kind, message, missing phrases) for a command-line outcome on bad input."""
    err = result.stderr.strip()
    kind = f"exit {result.returncode}"
    if "Traceback (most recent call last)" in err:
        last = [line for line in err.splitlines() if line.strip()][-1]
        return "raw", kind + " traceback", last, []
    if result.returncode == 0:
        return "silent", kind, (result.stdout.strip().splitlines() or [""])[0], []
    if result.returncode != 2:
        return "raw", kind, err or result.stdout.strip(), []
    lines = [line for line in err.splitlines() if "error:" in line]
    if not lines:
        return "unclear", kind + " without an error: line", err, ["error:"]
    message = " ".join(lines)
    missing = _missing(err, phrases)
    return ("unclear" if missing else "clear"), kind, message, missing


def classify(case: Case, ctx: "Context") -> Outcome:
    """Run one case in this process and classify what happened."""
    start = time.perf_counter()
    missing: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"):
            try:
                result = case.run(ctx)
            except RefattrError as exc:
                message = str(exc)
                missing = _missing(message, case.phrases)
                cls, kind = ("unclear" if missing else "clear"), type(exc).__name__
            except BaseException as exc:  # noqa: BLE001 - classifying every failure is the point
                if isinstance(exc, KeyboardInterrupt):
                    raise
                cls, kind = "raw", f"{type(exc).__module__}.{type(exc).__name__}"
                message = str(exc) or repr(exc)
            else:
                if isinstance(result, CliResult):
                    cls, kind, message, missing = classify_cli(result, case.phrases)
                elif case.verify is not None:
                    problem = case.verify(result)
                    cls = "silent" if problem else "correct"
                    kind, message = "returned", problem or f"checked: {_describe(result)}"
                else:
                    cls, kind, message = "silent", "returned", _describe(result)
    if cls == "silent" and caught:
        message += f" (only a warning: {caught[0].category.__name__}: {caught[0].message})"
    if case.side_effect is not None:
        effect = case.side_effect(ctx)
        if effect:
            cls, message = "silent", f"SIDE EFFECT: {effect}; outcome was {kind}: {message}"
    return Outcome(case.area, case.name, cls, kind, " ".join(message.split()), missing,
                   round(time.perf_counter() - start, 3))


# Running cases -----------------------------------------------------------------------------------

def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Context:
    """A temporary folder for the files cases build, and the settings of the run."""

    def __init__(self, tmp: str, timeout: float = 20.0, memory_gib: float = 2.0):
        self.tmp = Path(tmp)
        self.timeout = timeout
        self.memory_gib = memory_gib
        self._built: dict[str, Any] = {}

    def path(self, name: str) -> Path:
        return self.tmp / name

    def once(self, key: str, build: Callable[[], Any]):
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    def cli(self, *args: str, timeout: float | None = None) -> CliResult:
        """Run ``python -m refattr.cli ARGS`` from the temporary folder."""
        try:
            proc = subprocess.run([sys.executable, "-m", "refattr.cli", *map(str, args)], cwd=self.tmp,
                                  capture_output=True, text=True, timeout=timeout or self.timeout,
                                  env={**os.environ, "PYTHONWARNINGS": "default"})
        except subprocess.TimeoutExpired:
            return CliResult(-9, "", f"Traceback (most recent call last)\ntimeout after {timeout or self.timeout} s")
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_isolated(case: Case, ctx: Context) -> Outcome:
    """Run a case in a child process with capped memory and a timeout."""
    start = time.perf_counter()
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case.name, "--memory-gib", str(ctx.memory_gib)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        return Outcome(case.area, case.name, "raw", "timeout", f"did not finish within {ctx.timeout:g} s "
                       f"(killed)", [], round(time.perf_counter() - start, 3))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        outcome = Outcome(**json.loads(lines[-1]))
        outcome.seconds = round(time.perf_counter() - start, 3)
        return outcome
    tail = " ".join((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1:])
    return Outcome(case.area, case.name, "raw", f"child died (exit {proc.returncode})", tail, [],
                   round(time.perf_counter() - start, 3))


def run_case(case: Case, ctx: Context) -> Outcome:
    missing = [m for m in case.needs if not available(m)]
    if missing:
        return Outcome(case.area, case.name, "skipped", "skipped", f"needs {', '.join(missing)}")
    if case.isolate:
        return run_isolated(case, ctx)
    return classify(case, ctx)


def _child(name: str, memory_gib: float) -> None:
    import resource

    case = {c.name: c for c in CASES}[name]
    with tempfile.TemporaryDirectory(prefix="refattr-audit-child-") as tmp:
        ctx = Context(tmp, memory_gib=memory_gib)
        for module in case.needs:
            __import__(module)
        limit = _vm_bytes() + int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        outcome = classify(case, ctx)
    print(json.dumps(asdict(outcome)))


# Shared small models and files -------------------------------------------------------------------

def linear_net():
    """t(x) = x0 + 2 x1 (one output): integrated gradients of any rule give exactly (x0, 2 x1)."""
    return refattr.Sequential([refattr.Dense([[1.0, 2.0]], [0.0])])


def two_output_net():
    return refattr.Sequential([refattr.Dense([[1.0, 2.0], [3.0, -1.0]], [0.0, 0.5]), refattr.ReLU()])


def tanh_net():
    """Dense -> Tanh -> Dense, 2 -> 2 -> 1."""
    return refattr.Sequential([refattr.Dense([[2.0, 1.0], [-1.0, 1.0]], [0.0, 0.0]), refattr.Tanh(),
                               refattr.Dense([[1.0, -1.0]], [0.0])])


def relu_net():
    return refattr.Sequential([refattr.Dense([[2.0, 1.0], [-1.0, 1.0]], [0.0, 0.0]), refattr.ReLU(),
                               refattr.Dense([[1.0, -1.0]], [0.0])])


def conv_net():
    """(2, 6, 6) -> Conv2D 3x3 -> ReLU -> Flatten -> Dense -> 1 output."""
    rng = np.random.default_rng(0)
    return refattr.Sequential([refattr.Conv2D(rng.normal(size=(1, 2, 3, 3)), [0.0]), refattr.ReLU(),
                               refattr.Flatten(), refattr.Dense(rng.normal(size=(1, 16)), [0.0])],
                              input_shape=(2, 6, 6))


X2 = np.array([[1.0, 1.0], [0.5, -1.0]])


def _expect_values(expected):
    def verify(result):
        values = np.asarray(getattr(result, "values", result))
        if values.shape != np.shape(expected) or not np.allclose(values, expected, rtol=1e-12, atol=1e-12):
            return f"wrong values {values!r}, expected {expected!r}"
        return None
    return verify


# torch helpers (imported only inside cases)

def _torch():
    import torch

    torch.manual_seed(0)
    return torch


def _torch_mlp():
    torch = _torch()
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()


# ONNX helpers

def _onnx_gemm_model(weight_tensor=None, extra_inits=(), nodes=None, in_shape=(None, 2), out_dim=2,
                     in_type=None):
    """A Gemm model x (N, 2) -> (N, out_dim); pieces replaceable to make it hostile."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    in_type = TensorProto.FLOAT if in_type is None else in_type
    if weight_tensor is None:
        weight_tensor = numpy_helper.from_array(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), "W")
    inits = [weight_tensor, numpy_helper.from_array(np.zeros(out_dim, np.float32), "B"), *extra_inits]
    nodes = nodes or [helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)]
    dims = ["N" if d is None else d for d in in_shape]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", in_type, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _onnx_image_model(node, inits=(), in_shape=(None, 1, 3, 3), out_shape=("N", 1, 2, 2)):
    from onnx import TensorProto, helper

    flat = helper.make_node("Flatten", ["h"], ["y"], axis=1)
    node.output[0] = "h"
    graph = helper.make_graph([node, flat], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N" if d is None else d for d in in_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


SECRET = np.array([1234.5, -777.25, 31337.0, 42.125], np.float32)


def _secret_model(ctx, location="secret.bin"):
    """A Gemm model whose weight is ONNX external data read from ``location``."""
    from onnx import TensorProto

    def build():
        ctx.path("secret.bin").write_bytes(SECRET.tobytes())
        return True

    ctx.once("secret", build)
    weight = TensorProto()
    weight.name = "W"
    weight.data_type = TensorProto.FLOAT
    weight.dims.extend([2, 2])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _onnx_gemm_model(weight)


def _holds_secret(obj) -> bool:
    arrays = []
    for layer in getattr(obj, "layers", ()):
        arrays += [getattr(layer, "weight", None), getattr(layer, "bias", None)]
    if isinstance(obj, np.ndarray):
        arrays.append(obj)
    return any(a is not None and np.isin(SECRET.astype(np.float64), np.asarray(a, np.float64)).any() for a in arrays)


def _in_dir(ctx, fn):
    old = os.getcwd()
    os.chdir(ctx.tmp)
    try:
        result = fn()
    finally:
        os.chdir(old)
    if _holds_secret(result):
        raise _SecretLeak(f"the secret file's values were imported: {_describe(result)}")
    return result


class _SecretLeak(Exception):
    pass


def _write_onnx(ctx, name, model) -> Path:
    import onnx

    path = ctx.path(name)
    onnx.save_model(model, str(path))
    return path


# Files for the command line

def _cli_files(ctx):
    """model.onnx (Gemm 2 -> 2), x.npy (2, 2), good attributions, and assorted bad files."""
    def build():
        from onnx import numpy_helper

        w = numpy_helper.from_array(np.array([[1.0, 2.0], [3.0, 4.0]], np.float64), "W")
        model = _onnx_gemm_model(w)
        model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.zeros(2), "B"))
        from onnx import TensorProto

        model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
        _write_onnx(ctx, "model.onnx", model)
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.zeros((2, 2)), "W"))
        _write_onnx(ctx, "zero.onnx", model)     # gradient 0: NaN attributions used to "agree" with it
        np.save(ctx.path("x.npy"), X2)
        np.save(ctx.path("nan_x.npy"), np.array([[np.nan, 1.0], [0.5, -1.0]]))
        np.save(ctx.path("nan_attr.npy"), np.array([[np.nan, np.nan], [np.nan, np.nan]]))
        np.save(ctx.path("inf_attr.npy"), np.array([[np.inf, 1.0], [0.0, 1.0]]))
        np.save(ctx.path("grad.npy"), np.array([[1.0, 2.0], [1.0, 2.0]]))   # d t/d x for target 0: W[0]
        np.save(ctx.path("wrong_shape.npy"), np.zeros((3, 3)))
        np.save(ctx.path("objects.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        ctx.path("text.npy").write_text("not a numpy file\n")
        ctx.path("adir").mkdir()
        ctx.path("empty.onnx").write_bytes(b"")
        ctx.path("garbage.onnx").write_bytes(b"\xff\xfe garbage \x00\x01" * 8)
        ctx.path("model.txt").write_text("hello")
        ctx.path("afile").write_text("a file, not a folder")
        return True

    ctx.once("cli", build)


class _Payload:
    """Unpickling this runs ``open(marker, 'w')`` and then yields a working nn.Sequential."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        code = (f"(open({self.marker!r}, 'w').write('pwned'), "
                f"__import__('torch').nn.Sequential(__import__('torch').nn.Linear(2, 2).double()))[1]")
        return (eval, (code,))


def _hostile_pt(ctx, name="hostile.pt"):
    import torch

    marker = ctx.path(name + ".marker")
    path = ctx.path(name)
    if not path.exists():
        torch.save(_Payload(marker), str(path))
    return path, marker


def _marker(name):
    def check(ctx):
        marker = ctx.path(name + ".marker")
        return f"the pickle ran code: {marker.name} was written" if marker.exists() else None
    return check


def _pickled_module(ctx):
    torch = _torch()
    path = ctx.path("module.pt")
    if not path.exists():
        torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)).double(), str(path))
    return path


def _state_dict(ctx):
    torch = _torch()
    path = ctx.path("state.pt")
    if not path.exists():
        torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)).double().state_dict(), str(path))
    return path


# The catalogue -----------------------------------------------------------------------------------

CASES: list[Case] = []


def case(area, name, phrases=(), **kw):
    def register(fn):
        CASES.append(Case(area, name, fn, tuple(phrases), **kw))
        return fn
    return register


def simple(area, name, fn, phrases=(), **kw):
    CASES.append(Case(area, name, fn, tuple(phrases), **kw))


R = refattr
W22 = [[1.0, 2.0], [3.0, 4.0]]
K = np.ones((1, 1, 2, 2))

# layers: constructors ----------------------------------------------------------------------------
simple("layers", "Dense weight 1-D", lambda c: R.Dense([1.0, 2.0]), ["weight", ("2-d", "(out_features, in_features)")])
simple("layers", "Dense weight 3-D", lambda c: R.Dense(np.ones((1, 2, 2))),
       ["weight", ("2-d", "(out_features, in_features)")])
simple("layers", "Dense weight empty (0, 3)", lambda c: R.Dense(np.ones((0, 3))), ["weight", ("empty", "0")])
simple("layers", "Dense weight (2, 0)", lambda c: R.Dense(np.ones((2, 0))), ["weight", ("empty", "0")])
simple("layers", "Dense complex weight", lambda c: R.Dense(np.ones((1, 2)) * 1j), ["weight", "complex"])
simple("layers", "Dense object weight", lambda c: R.Dense(np.array([[1.0, None]], dtype=object)), ["weight", "dtype"])
simple("layers", "Dense string weight", lambda c: R.Dense("abc"), ["weight"])
simple("layers", "Dense weight None", lambda c: R.Dense(None), ["weight"])
simple("layers", "Dense NaN weight", lambda c: R.Dense([[np.nan, 1.0]]), ["weight", ("non-finite", "nan")])
simple("layers", "Dense inf bias", lambda c: R.Dense([[1.0, 1.0]], [np.inf]), ["bias", ("non-finite", "inf")])
simple("layers", "Dense bias wrong length", lambda c: R.Dense(W22, [1.0, 2.0, 3.0]), ["bias", "(2,)"])
simple("layers", "Dense ragged weight", lambda c: R.Dense([[1.0, 2.0], [3.0]]), ["weight"])
simple("layers", "Conv2D weight 3-D", lambda c: R.Conv2D(np.ones((1, 2, 2))), ["weight", "4-d"])
simple("layers", "Conv2D stride 0", lambda c: R.Conv2D(K, stride=0), ["stride"])
simple("layers", "Conv2D stride 1.5", lambda c: R.Conv2D(K, stride=1.5), ["stride"])
simple("layers", "Conv2D stride '2'", lambda c: R.Conv2D(K, stride="2"), ["stride"])
simple("layers", "Conv2D stride True", lambda c: R.Conv2D(K, stride=True), ["stride"])
simple("layers", "Conv2D stride 10**30 then forward",
       lambda c: R.Sequential([R.Conv2D(K, stride=10**30), R.Flatten()])(np.ones((1, 1, 3, 3))), ["stride"],
       isolate=True)
simple("layers", "Conv2D padding -1", lambda c: R.Conv2D(K, padding=-1), ["padding"])
simple("layers", "Conv2D padding 3 ints", lambda c: R.Conv2D(K, padding=(1, 2, 3)), ["padding"])
simple("layers", "Conv2D padding 2**62 then forward",
       lambda c: R.Sequential([R.Conv2D(K, padding=2**62), R.Flatten()])(np.ones((1, 1, 2, 2))), ["padding"],
       isolate=True)
simple("layers", "Conv2D padding 10**9 on 2x2 input",
       lambda c: R.Sequential([R.Conv2D(K, padding=10**9), R.Flatten()])(np.ones((1, 1, 2, 2))),
       ["padding", ("gib", "bytes", "memory")], isolate=True)
simple("layers", "Conv2D dilation 0", lambda c: R.Conv2D(K, dilation=0), ["dilation"])
simple("layers", "Conv2D groups 0", lambda c: R.Conv2D(K, groups=0), ["groups"])
simple("layers", "Conv2D groups not dividing channels", lambda c: R.Conv2D(np.ones((3, 1, 2, 2)), groups=2),
       ["groups"])
simple("layers", "Conv2D bias wrong length", lambda c: R.Conv2D(K, bias=[1.0, 2.0]), ["bias"])
simple("layers", "Conv2D NaN weight", lambda c: R.Conv2D(K * np.nan), ["weight", ("non-finite", "nan")])
simple("layers", "MaxPool2D kernel 0", lambda c: R.MaxPool2D(0), ["kernel"])
simple("layers", "MaxPool2D kernel 10**20 then forward",
       lambda c: R.Sequential([R.MaxPool2D(10**20), R.Flatten()])(np.ones((1, 1, 2, 2))), ["kernel"], isolate=True)
simple("layers", "MaxPool2D kernel 2.5", lambda c: R.MaxPool2D(2.5), ["kernel"])
simple("layers", "MaxPool2D stride 0", lambda c: R.MaxPool2D(2, stride=0), ["stride"])
simple("layers", "MaxPool2D padding > kernel/2 (all-padding window is -inf)",
       lambda c: R.Sequential([R.MaxPool2D(2, padding=2), R.Flatten()])(np.ones((1, 1, 2, 2))), ["padding"])
simple("layers", "AvgPool2D count_include_pad='no'", lambda c: R.AvgPool2D(2, count_include_pad="no"),
       ["count_include_pad", ("bool", "true or false")])
simple("layers", "AvgPool2D kernel (2,) one int", lambda c: R.AvgPool2D((2,)), ["kernel"])
simple("layers", "AvgPool2D kernel -1", lambda c: R.AvgPool2D(-1), ["kernel"])
simple("layers", "AvgPool2D kernel None", lambda c: R.AvgPool2D(None), ["kernel"])
simple("layers", "Swish beta nan", lambda c: R.Swish(beta=np.nan), ["beta"])
simple("layers", "Swish beta inf", lambda c: R.Swish(beta=np.inf), ["beta"])
simple("layers", "Swish beta '1'", lambda c: R.Swish(beta="1"), ["beta"])

# Sequential --------------------------------------------------------------------------------------
D23 = [[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]
simple("sequential", "Sequential(None)", lambda c: R.Sequential(None), ["layers"])
simple("sequential", "Sequential([])", lambda c: R.Sequential([]), ["layers"])
simple("sequential", "Sequential(one layer, not a list)", lambda c: R.Sequential(R.ReLU()), ["layers"])
simple("sequential", "Sequential([Dense, 'relu'])", lambda c: R.Sequential([R.Dense(W22), "relu"]), ["layers[1]"])
simple("sequential", "Sequential([ndarray])", lambda c: R.Sequential([np.eye(2)]), ["layers[0]"])
simple("sequential", "Sequential(ReLU class, not instance)", lambda c: R.Sequential([R.ReLU]), ["layers[0]"])
simple("sequential", "input_shape=(4.7,)", lambda c: R.Sequential([R.ReLU()], input_shape=(4.7,)),
       ["input_shape", ("integer", " int")])
simple("sequential", "input_shape=(True,)", lambda c: R.Sequential([R.ReLU()], input_shape=(True,)),
       ["input_shape"])
simple("sequential", "input_shape=(0,)", lambda c: R.Sequential([R.ReLU()], input_shape=(0,)), ["input_shape"])
simple("sequential", "input_shape=(-3,)", lambda c: R.Sequential([R.ReLU()], input_shape=(-3,)), ["input_shape"])
simple("sequential", "input_shape='4' (a string)", lambda c: R.Sequential([R.ReLU()], input_shape="4"),
       ["input_shape"])
simple("sequential", "input_shape=4 (an int)", lambda c: R.Sequential([R.ReLU()], input_shape=4), ["input_shape"])
simple("sequential", "input_shape wrong for layers[0] (4 vs 3 features)",
       lambda c: R.Sequential([R.Dense(D23)], input_shape=(4,)), ["input_shape", "(4,)", "3"])
simple("sequential", "input_shape gives a 3-D output (no Flatten)",
       lambda c: R.Sequential([R.Conv2D(K)], input_shape=(1, 4, 4)), ["output", "flatten"])
simple("sequential", "Dense features do not chain", lambda c: R.Sequential([R.Dense(D23), R.Dense(np.ones((1, 5)))]),
       ["layers[1]"])
simple("sequential", "Conv2D after Flatten", lambda c: R.Sequential([R.Flatten(), R.Conv2D(K)], input_shape=(1, 3, 3)),
       ["layers[1]"])

# inputs to every method --------------------------------------------------------------------------
ADD_BATCH = ("add a batch axis", "x[none]", "x[np.newaxis]")
METHOD_CALLS = {
    "gradient": lambda net, x, **kw: R.gradient(net, x, **kw),
    "input_x_gradient": lambda net, x, **kw: R.input_x_gradient(net, x, **kw),
    "guided_backprop": lambda net, x, **kw: R.guided_backprop(net, x, **kw),
    "deconvnet": lambda net, x, **kw: R.deconvnet(net, x, **kw),
    "deeplift": lambda net, x, **kw: R.deeplift(net, x, **kw),
    "deeplift_layers": lambda net, x, **kw: R.deeplift_layers(net, x, **kw),
    "integrated_gradients": lambda net, x, **kw: R.integrated_gradients(net, x, **kw),
}

for _m, _call in METHOD_CALLS.items():
    simple("methods", f"{_m}: x without batch axis (image)",
           lambda c, f=_call: f(conv_net(), np.ones((2, 6, 6))), ["x", ADD_BATCH])
    simple("methods", f"{_m}: target 10**30", lambda c, f=_call: f(two_output_net(), X2, target=10**30),
           ["target", "range"])
    simple("methods", f"{_m}: net is a string", lambda c, f=_call: f("net", X2), ["net", "sequential"])
    simple("methods", f"{_m}: x = 1e308 overflows inside (Dense -> Tanh -> Dense)",
           lambda c, f=_call: f(tanh_net(), np.array([[1e308, 1e308]])), ["layers[0]", "dense", "scale"])

G = R.gradient
simple("methods", "x a string", lambda c: G(linear_net(), "abc"), ["x"])
simple("methods", "x a dict", lambda c: G(linear_net(), {"a": 1}), ["x"])
simple("methods", "x ragged lists", lambda c: G(linear_net(), [[1.0, 2.0], [3.0]]), ["x"])
simple("methods", "x 0-d", lambda c: G(linear_net(), np.float64(1.0)), ["x", ("batch", "(n, ")])
simple("methods", "x 1-D for a 2-feature net", lambda c: G(linear_net(), [1.0, 2.0]), ["x", ADD_BATCH])
simple("methods", "x NaN", lambda c: G(linear_net(), [[np.nan, 1.0]]), ["x", ("nan", "non-finite")])
simple("methods", "x inf", lambda c: G(linear_net(), [[np.inf, 1.0]]), ["x", ("inf", "non-finite")])
simple("methods", "x empty batch", lambda c: G(linear_net(), np.ones((0, 2))), ["x", "example"])
simple("methods", "x complex", lambda c: G(linear_net(), np.ones((1, 2)) * 1j), ["x", "complex"])
simple("methods", "x 3 features for a 2-feature net", lambda c: G(linear_net(), np.ones((1, 3))), ["x", "2"])
simple("methods", "net None", lambda c: G(None, X2), ["net"])
simple("methods", "target -1", lambda c: G(two_output_net(), X2, target=-1), ["target", "range"])
simple("methods", "target 2.0", lambda c: G(two_output_net(), X2, target=2.0), ["target"])
simple("methods", "target '0'", lambda c: G(two_output_net(), X2, target="0"), ["target"])
simple("methods", "target True", lambda c: G(two_output_net(), X2, target=True), ["target"])
simple("methods", "target bool array", lambda c: G(two_output_net(), X2, target=np.array([True, False])), ["target"])
simple("methods", "target 2-D array", lambda c: G(two_output_net(), X2, target=np.zeros((2, 1), int)),
       ["target", "shape"])
simple("methods", "target uint64 2**64-1", lambda c: G(two_output_net(), X2,
                                                         target=np.array([2**64 - 1, 0], dtype=np.uint64)),
       ["target", "18446744073709551615"])
simple("methods", "target None on 2 outputs", lambda c: G(two_output_net(), X2), ["target"])
simple("methods", "target 3 entries for 2 examples", lambda c: G(two_output_net(), X2, target=np.array([0, 1, 0])),
       ["target", "(2,)"])
simple("methods", "target [10**30] list", lambda c: G(two_output_net(), X2, target=[10**30, 0]), ["target"])
DL, IG = R.deeplift, R.integrated_gradients
simple("methods", "baseline a string", lambda c: DL(linear_net(), X2, baseline="zero"), ["baseline"])
simple("methods", "baseline wrong shape", lambda c: DL(linear_net(), X2, baseline=np.zeros(3)), ["baseline", "shape"])
simple("methods", "baseline NaN", lambda c: DL(linear_net(), X2, baseline=np.nan), ["baseline", ("nan", "non-finite")])
simple("methods", "baseline_samples 1-D", lambda c: DL(linear_net(), X2, baseline_samples=np.zeros(2)),
       ["baseline_samples", "shape"])
simple("methods", "baseline_samples K = 0", lambda c: DL(linear_net(), X2, baseline_samples=np.zeros((0, 2))),
       ["baseline_samples"])
simple("methods", "baseline and baseline_samples both",
       lambda c: IG(linear_net(), X2, baseline=0.0, baseline_samples=np.zeros((2, 2))),
       ["baseline", "baseline_samples", "both"])
# `baselines` is Captum's name for one baseline per example and refattr's former name for a distribution:
# refused whatever its shape, since either reading could be the wrong one
BASELINES_PHRASES = ["baselines", "one baseline per example", "distribution", "baseline=", "baseline_samples="]
simple("methods", "deeplift baselines= of x's shape (Captum's per-example meaning)",
       lambda c: DL(linear_net(), X2, baselines=X2 * 0.5), BASELINES_PHRASES)
simple("methods", "integrated_gradients baselines= (K, *example) (the former distribution)",
       lambda c: IG(linear_net(), X2, baselines=np.zeros((3, 2))), BASELINES_PHRASES)
simple("methods", "deeplift rule 'foo'", lambda c: DL(linear_net(), X2, rule="foo"), ["rule", "rescale"])
simple("methods", "deeplift rule None", lambda c: DL(linear_net(), X2, rule=None), ["rule"])
simple("methods", "deeplift maxpool_rule 'foo'", lambda c: DL(linear_net(), X2, maxpool_rule="foo"), ["maxpool_rule"])
simple("methods", "deeplift maxpool_rule=None on a MaxPool net",
       lambda c: DL(R.Sequential([R.MaxPool2D(2), R.Flatten()]), np.ones((1, 1, 2, 2))), ["maxpool_rule"])


def _maxpool_rule_reported(result):
    opts = getattr(result, "options", {})
    if opts.get("maxpool_rule") is None or any("ignored" in str(v) or "no maxpool" in str(v).lower()
                                               for v in opts.values()):
        return None
    return (f"maxpool_rule silently ignored: options['maxpool_rule'] = {opts.get('maxpool_rule')!r} on a net "
            f"without MaxPool2D")


simple("methods", "deeplift maxpool_rule on a net without MaxPool2D",
       lambda c: DL(relu_net(), X2, maxpool_rule="gradient"), ["maxpool_rule"], verify=_maxpool_rule_reported)

# integrated gradients: rules, sizes, tolerances --------------------------------------------------
simple("integrated_gradients", "rule 'foo'", lambda c: IG(linear_net(), X2, rule="foo"), ["rule", "gauss_legendre"])
simple("integrated_gradients", "rule 'exact' on a Tanh net", lambda c: IG(tanh_net(), X2, rule="exact"),
       ["exact", "tanh"])
simple("integrated_gradients", "n_steps 0", lambda c: IG(linear_net(), X2, rule="left", n_steps=0), ["n_steps"])
simple("integrated_gradients", "n_steps 2.5", lambda c: IG(linear_net(), X2, rule="left", n_steps=2.5), ["n_steps"])
simple("integrated_gradients", "n_steps '50'", lambda c: IG(linear_net(), X2, rule="left", n_steps="50"), ["n_steps"])
simple("integrated_gradients", "n_steps True", lambda c: IG(linear_net(), X2, rule="left", n_steps=True), ["n_steps"])
simple("integrated_gradients", "trapezoid n_steps 1", lambda c: IG(linear_net(), X2, rule="trapezoid", n_steps=1),
       ["n_steps", "2"])
simple("integrated_gradients", "n_steps 10**9 (left)", lambda c: IG(linear_net(), X2, rule="left", n_steps=10**9),
       ["n_steps", ("gib", "bytes", "memory")], isolate=True)
simple("integrated_gradients", "n_steps 10**12 (midpoint)",
       lambda c: IG(linear_net(), X2, rule="midpoint", n_steps=10**12), ["n_steps", ("gib", "bytes", "memory")],
       isolate=True)
simple("integrated_gradients", "gauss_legendre n_steps 4000 (legitimate)",
       lambda c: IG(linear_net(), X2, rule="gauss_legendre", n_steps=4000), ["n_steps"], isolate=True,
       verify=_expect_values([[1.0, 2.0], [0.5, -2.0]]))
simple("integrated_gradients", "gauss_legendre n_steps 10**5",
       lambda c: IG(linear_net(), X2, rule="gauss_legendre", n_steps=10**5), ["n_steps"], isolate=True,
       verify=_expect_values([[1.0, 2.0], [0.5, -2.0]]))
simple("integrated_gradients", "rtol 0", lambda c: IG(tanh_net(), X2, rule="quad", rtol=0.0), ["rtol"])
simple("integrated_gradients", "rtol nan", lambda c: IG(tanh_net(), X2, rule="quad", rtol=np.nan), ["rtol"])
simple("integrated_gradients", "rtol -1", lambda c: IG(tanh_net(), X2, rule="quad", rtol=-1.0), ["rtol"])
simple("integrated_gradients", "rtol '1e-3'", lambda c: IG(tanh_net(), X2, rule="quad", rtol="1e-3"), ["rtol"])
simple("integrated_gradients", "chunk_size 0", lambda c: IG(linear_net(), X2, rule="left", chunk_size=0),
       ["chunk_size"])
simple("integrated_gradients", "chunk_size 2.5", lambda c: IG(linear_net(), X2, rule="left", chunk_size=2.5),
       ["chunk_size"])

# overflow: finite inputs, non-finite insides -----------------------------------------------------
simple("overflow", "forward x = 1e308 (Dense -> Tanh -> Dense)", lambda c: tanh_net()(np.array([[1e308, 1e308]])),
       ["layers[0]", "dense", "scale"])
simple("overflow", "deeplift reveal_cancel x = 1e308",
       lambda c: DL(tanh_net(), np.array([[1e308, 1e308]]), rule="reveal_cancel"), ["layers[0]", "dense", "scale"])
simple("overflow", "IG exact on a ReLU net x = 1e308",
       lambda c: IG(relu_net(), np.array([[1e308, 1e308]]), rule="exact"), ["layers[0]", "dense", "scale"])
simple("overflow", "IG quad x = 1e308", lambda c: IG(tanh_net(), np.array([[1e308, 1e308]]), rule="quad"),
       ["layers[0]", "dense", "scale"])
simple("overflow", "huge weights: output overflows (1e200 * 1e200)",
       lambda c: R.Sequential([R.Dense([[1e200]]), R.Dense([[1e200]])])(np.ones((1, 1))), ["layers[1]", "dense"])
simple("overflow", "huge weights: gradient overflows in the backward pass",
       lambda c: G(R.Sequential([R.Dense([[1e200]]), R.Tanh(), R.Dense([[1e200]])]), np.zeros((1, 1))),
       ["gradient", ("overflow", "non-finite", "finite")])
simple("overflow", "MaxPool2D all-padding window gives -inf into Dense",
       lambda c: R.Sequential([R.MaxPool2D(1, stride=1, padding=1), R.Flatten(), R.Dense(np.ones((1, 9)))])(
           np.ones((1, 1, 1, 1))), ["padding"])


# torch -------------------------------------------------------------------------------------------
def _ft(module, **kw):
    from refattr.interop import from_torch

    return from_torch(module, **kw)


@case("torch", "forward hook", ["hook", "0"], needs=("torch",))
def _(c):
    m = _torch_mlp()
    m[0].register_forward_hook(lambda mod, inp, out: out * 2)
    return _ft(m)


@case("torch", "forward pre-hook", ["hook"], needs=("torch",))
def _(c):
    m = _torch_mlp()
    m[2].register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,))
    return _ft(m)


@case("torch", "hook on the Sequential itself", ["hook"], needs=("torch",))
def _(c):
    m = _torch_mlp()
    m.register_forward_hook(lambda mod, inp, out: -out)
    return _ft(m)


@case("torch", "hook in a nested Sequential", ["hook"], needs=("torch",))
def _(c):
    torch = _torch()
    inner = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()).double()
    inner[1].register_forward_hook(lambda mod, inp, out: out + 1)
    return _ft(torch.nn.Sequential(inner, torch.nn.Linear(2, 1).double()))


@case("torch", "global forward hook", ["hook"], needs=("torch",))
def _(c):
    torch = _torch()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda mod, inp, out: out * 3)
    try:
        return _ft(_torch_mlp())
    finally:
        handle.remove()


@case("torch", "global forward pre-hook", ["hook"], needs=("torch",))
def _(c):
    torch = _torch()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda mod, inp: (inp[0] * 0.5,))
    try:
        return _ft(_torch_mlp())
    finally:
        handle.remove()


@case("torch", "forward overridden on an instance", ["forward"], needs=("torch",))
def _(c):
    m = _torch_mlp()
    relu = m[1]
    relu.forward = lambda x: x.abs()
    return _ft(m)


@case("torch", "old-style weight_norm (stale weight)", ["weight_norm"], needs=("torch",))
def _(c):
    torch = _torch()
    m = _torch_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.nn.utils.weight_norm(m[0])
    with torch.no_grad():
        m[0].weight_g.mul_(3.0)
    return _ft(m)


@case("torch", "subclass of nn.ReLU computing something else", [("doubledrelu", "mismatch")], needs=("torch",))
def _(c):
    torch = _torch()

    class DoubledReLU(torch.nn.ReLU):
        def forward(self, x):
            return 2 * torch.relu(x)

    return _ft(torch.nn.Sequential(torch.nn.Linear(2, 3), DoubledReLU(), torch.nn.Linear(3, 1)).double())


@case("torch", "Linear with NaN weight", ["linear", ("nan", "non-finite")], needs=("torch",))
def _(c):
    m = _torch_mlp()
    with _torch().no_grad():
        m[0].weight[0, 0] = float("nan")
    return _ft(m)


@case("torch", "Linear(0, 2) (no input features)", ["linear"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.Linear(0, 2)))


@case("torch", "not a Sequential (nn.Linear)", ["sequential"], needs=("torch",))
def _(c):
    return _ft(_torch().nn.Linear(2, 2))


@case("torch", "module None", ["module"], needs=("torch",))
def _(c):
    return _ft(None)


@case("torch", "unsupported LSTM", ["lstm"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.LSTM(2, 2)))


@case("torch", "Dropout in training mode", ["dropout", "eval"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train())


@case("torch", "BatchNorm1d in training mode", ["batchnorm", "eval"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train())


@case("torch", "Conv2d padding_mode='reflect'", ["padding_mode"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")))


@case("torch", "MaxPool2d ceil_mode=True", ["ceil_mode"], needs=("torch",))
def _(c):
    torch = _torch()
    return _ft(torch.nn.Sequential(torch.nn.MaxPool2d(2, ceil_mode=True)))


@case("torch", "input_shape does not fit the first Linear", ["input_shape"], needs=("torch",))
def _(c):
    return _ft(_torch_mlp(), input_shape=(5,))


@case("torch", "torch_forward on an input that requires grad (legitimate)", ["requires"], needs=("torch",),
      verify=lambda r: None if r == "torch_forward equals module(x)" else r)
def _(c):
    from refattr.interop import torch_forward

    torch = _torch()
    m = _torch_mlp()
    x = torch.tensor(X2, requires_grad=True)
    out = np.asarray(torch_forward(m, x))
    expected = m(x).detach().numpy()
    ok = out.shape == expected.shape and np.allclose(out, expected, rtol=1e-12)
    return "torch_forward equals module(x)" if ok else f"torch_forward differs from module(x): {out!r} vs {expected!r}"


@case("torch", "from_torch then to_torch round trip of a hooked module", ["hook"], needs=("torch",))
def _(c):
    m = _torch_mlp()
    m[1].register_forward_hook(lambda mod, inp, out: out + 5)
    from refattr.interop import to_torch

    return to_torch(_ft(m))


# ONNX --------------------------------------------------------------------------------------------
def _fo(model, **kw):
    from refattr.interop import from_onnx

    return from_onnx(model, **kw)


def _leak_check(ctx):
    return ctx._built.pop("leak", None)


def _guard_leak(ctx, fn):
    """Run fn in the temporary folder; a result holding the secret's values is recorded as a leak
    (read back by the case's side-effect check, which clears it)."""
    ctx._built.pop("leak", None)
    try:
        return _in_dir(ctx, fn)
    except _SecretLeak as exc:
        ctx._built["leak"] = str(exc)
        return "leaked"


@case("security", "from_onnx(bytes) with external data -> ./secret.bin", ["external", "path"], needs=("onnx",),
      side_effect=_leak_check)
def _(c):
    model = _secret_model(c)
    return _guard_leak(c, lambda: _fo(model.SerializeToString()))


@case("security", "from_onnx(ModelProto) with external data -> ./secret.bin", ["external", "path"], needs=("onnx",),
      side_effect=_leak_check)
def _(c):
    model = _secret_model(c)
    return _guard_leak(c, lambda: _fo(model))


@case("security", "onnx_forward(ModelProto) with external data -> ./secret.bin", ["external"],
      needs=("onnx", "onnxruntime"), side_effect=_leak_check)
def _(c):
    from refattr.interop import onnx_forward

    model = _secret_model(c)

    def run():
        out = onnx_forward(model, X2)
        # The weight is 2x2: an output that is x @ SECRET^T means the secret was read.
        if np.allclose(out, X2 @ SECRET.reshape(2, 2).T.astype(np.float64), rtol=1e-6):
            raise _SecretLeak("onnx_forward used the secret file's bytes as the weight")
        return out

    return _guard_leak(c, run)


@case("security", "from_onnx(path) with external data '../secret.bin' outside the model's folder", ["external"],
      needs=("onnx",), side_effect=_leak_check)
def _(c):
    model = _secret_model(c, location="../secret.bin")
    folder = c.path("models")
    folder.mkdir(exist_ok=True)
    path = _write_onnx(c, "models/escape.onnx", model)
    return _guard_leak(c, lambda: _fo(str(path)))


@case("security", "from_onnx(path) with external data at an absolute path", ["external"], needs=("onnx",),
      side_effect=_leak_check)
def _(c):
    _secret_model(c)
    model = _secret_model(c, location=str(c.path("secret.bin")))
    folder = c.path("models")
    folder.mkdir(exist_ok=True)
    path = _write_onnx(c, "models/absolute.onnx", model)
    return _guard_leak(c, lambda: _fo(str(path)))


@case("security", "load_model(hostile .pt) from Python", ["trust_pickle"], needs=("torch",),
      side_effect=_marker("hostile_api.pt"))
def _(c):
    from refattr.interop.cli import load_model

    path, _ = _hostile_pt(c, "hostile_api.pt")
    return load_model(str(path))


@case("security", "CLI compare hostile .pt (pickle writes a marker)", ["--trust-pickle"], needs=("torch", "onnx"),
      side_effect=_marker("hostile_cli.pt"))
def _(c):
    _cli_files(c)
    path, _ = _hostile_pt(c, "hostile_cli.pt")
    return c.cli("compare", path.name, "--inputs", "x.npy", "--attributions", "grad.npy", "--method", "gradient",
                 "--targets", "0")


@case("security", "CLI compare full pickled module without --trust-pickle", ["--trust-pickle"],
      needs=("torch", "onnx"))
def _(c):
    _cli_files(c)
    path = _pickled_module(c)
    return c.cli("compare", path.name, "--inputs", "x.npy", "--attributions", "grad.npy", "--method", "gradient",
                 "--targets", "0")


@case("security", "CLI compare state dict without --architecture", [("state dict", "state_dict"), "--architecture"],
      needs=("torch", "onnx"))
def _(c):
    _cli_files(c)
    path = _state_dict(c)
    return c.cli("compare", path.name, "--inputs", "x.npy", "--attributions", "grad.npy", "--method", "gradient",
                 "--targets", "0")


def _onnx_bad_init(array_like_tensor):
    return _onnx_gemm_model(array_like_tensor)


@case("onnx", "empty file", ["empty.onnx"], needs=("onnx",))
def _(c):
    _cli_files(c)
    return _fo(str(c.path("empty.onnx")))


@case("onnx", "garbage file", ["garbage.onnx"], needs=("onnx",))
def _(c):
    _cli_files(c)
    return _fo(str(c.path("garbage.onnx")))


@case("onnx", "garbage bytes", ["model"], needs=("onnx",))
def _(c):
    return _fo(b"\xff\xfe garbage \x00\x01" * 8)


@case("onnx", "truncated file", ["truncated.onnx"], needs=("onnx",))
def _(c):
    data = _onnx_gemm_model().SerializeToString()
    c.path("truncated.onnx").write_bytes(data[: len(data) // 2])
    return _fo(str(c.path("truncated.onnx")))


@case("onnx", "a directory as the model path", ["adir"], needs=("onnx",))
def _(c):
    _cli_files(c)
    return _fo(str(c.path("adir")))


@case("onnx", "a missing path", ["missing.onnx"], needs=("onnx",))
def _(c):
    return _fo(str(c.path("missing.onnx")))


@case("onnx", "model is an int", ["model"], needs=("onnx",))
def _(c):
    return _fo(123)


@case("onnx", "complex64 initializer", ["complex"], needs=("onnx",))
def _(c):
    from onnx import numpy_helper

    return _fo(_onnx_bad_init(numpy_helper.from_array(np.array([[1, 2], [3, 4j]], np.complex64), "W")))


@case("onnx", "STRING initializer", ["string"], needs=("onnx",))
def _(c):
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.STRING, [2, 2], [b"a", b"b", b"c", b"d"])
    return _fo(_onnx_bad_init(w))


@case("onnx", "declared input dim -3", ["x", "-3"], needs=("onnx",))
def _(c):
    return _fo(_onnx_gemm_model(in_shape=(None, -3)))


@case("onnx", "declared input dim 0", ["x", "0"], needs=("onnx",))
def _(c):
    return _fo(_onnx_gemm_model(in_shape=(None, 0)))


@case("onnx", "Reshape to float shape [0.5, -1]", ["reshape", ("integer", "int64")], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Reshape", ["x", "S"], ["r"]), helper.make_node("Gemm", ["r", "W", "B"], ["y"], transB=1)]
    shape = numpy_helper.from_array(np.array([0.5, -1.0], np.float32), "S")
    return _fo(_onnx_gemm_model(nodes=nodes, extra_inits=[shape]))


@case("onnx", "Reshape shape tensor with two -1", ["reshape"], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Reshape", ["x", "S"], ["r"]), helper.make_node("Gemm", ["r", "W", "B"], ["y"], transB=1)]
    shape = numpy_helper.from_array(np.array([-1, -1], np.int64), "S")
    return _fo(_onnx_gemm_model(nodes=nodes, extra_inits=[shape]))


def _conv_verify(result):
    """Conv 2x2 all-ones weight on a 3x3 input 0..8: windows sum (0+1+3+4, 1+2+4+5, 3+4+6+7, 4+5+7+8)."""
    net = result
    out = net(np.arange(9.0).reshape(1, 1, 3, 3))
    return None if np.allclose(out, [[8.0, 12.0, 20.0, 24.0]], rtol=1e-12) else f"wrong forward {out!r}"


@case("onnx", "Conv without kernel_shape (legitimate: taken from the weight)", ["kernel_shape"], needs=("onnx",),
      verify=_conv_verify)
def _(c):
    from onnx import helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W"], ["h"])
    return _fo(_onnx_image_model(node, [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "W")]))


@case("onnx", "MaxPool without kernel_shape", ["kernel_shape", "maxpool"], needs=("onnx",))
def _(c):
    from onnx import helper

    return _fo(_onnx_image_model(helper.make_node("MaxPool", ["x"], ["h"])))


@case("onnx", "AveragePool without kernel_shape", ["kernel_shape", "averagepool"], needs=("onnx",))
def _(c):
    from onnx import helper

    return _fo(_onnx_image_model(helper.make_node("AveragePool", ["x"], ["h"])))


@case("onnx", "Conv strides [0, 0]", ["strides"], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W"], ["h"], kernel_shape=[2, 2], strides=[0, 0])
    return _fo(_onnx_image_model(node, [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "W")]))


@case("onnx", "Conv pads negative", ["pads"], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W"], ["h"], kernel_shape=[2, 2], pads=[-1, -1, -1, -1])
    return _fo(_onnx_image_model(node, [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "W")]))


@case("onnx", "Conv strides as floats", ["strides"], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W"], ["h"], kernel_shape=[2, 2], strides=[1.0, 1.0])
    return _fo(_onnx_image_model(node, [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "W")]))


@case("onnx", "Conv with a 3-D weight", ["conv", "weight"], needs=("onnx",))
def _(c):
    from onnx import helper, numpy_helper

    node = helper.make_node("Conv", ["x", "W"], ["h"], kernel_shape=[2, 2])
    return _fo(_onnx_image_model(node, [numpy_helper.from_array(np.ones((1, 2, 2), np.float32), "W")]))


@case("onnx", "Gemm with one input", ["gemm"], needs=("onnx",))
def _(c):
    from onnx import helper

    return _fo(_onnx_gemm_model(nodes=[helper.make_node("Gemm", ["x"], ["y"])]))


@case("onnx", "Gemm weight is not an initializer", ["gemm"], needs=("onnx",))
def _(c):
    from onnx import helper

    return _fo(_onnx_gemm_model(nodes=[helper.make_node("Gemm", ["x", "Wmissing", "B"], ["y"], transB=1)]))


@case("onnx", "Gemm transA=1", ["transa"], needs=("onnx",))
def _(c):
    from onnx import helper

    return _fo(_onnx_gemm_model(nodes=[helper.make_node("Gemm", ["x", "W", "B"], ["y"], transA=1, transB=1)]))


@case("onnx", "unsupported op Sin", ["sin"], needs=("onnx",))
def _(c):
    from onnx import helper

    nodes = [helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Gemm", ["s", "W", "B"], ["y"], transB=1)]
    return _fo(_onnx_gemm_model(nodes=nodes))


@case("onnx", "graph with no nodes", ["model"], needs=("onnx",))
def _(c):
    from onnx import TensorProto, helper

    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])])
    return _fo(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))


@case("onnx", "Flatten axis=0", ["flatten", "axis"], needs=("onnx",))
def _(c):
    from onnx import helper

    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=0),
             helper.make_node("Gemm", ["f", "W", "B"], ["y"], transB=1)]
    return _fo(_onnx_gemm_model(nodes=nodes))


@case("onnx", "input_shape argument (4.7,)", ["input_shape"], needs=("onnx",))
def _(c):
    return _fo(_onnx_gemm_model(), input_shape=(4.7,))


@case("onnx", "NaN initializer", ["w", ("nan", "non-finite")], needs=("onnx",))
def _(c):
    from onnx import numpy_helper

    return _fo(_onnx_bad_init(numpy_helper.from_array(np.array([[np.nan, 1], [1, 1]], np.float32), "W")))


@case("onnx", "Gemm weight of rank 3", ["gemm"], needs=("onnx",))
def _(c):
    from onnx import numpy_helper

    return _fo(_onnx_bad_init(numpy_helper.from_array(np.ones((2, 2, 1), np.float32), "W")))


# compare -----------------------------------------------------------------------------------------
def _ca(*args, **kw):
    from refattr.interop import compare_attributions

    return compare_attributions(*args, **kw)


GRAD = np.array([[1.0, 2.0], [1.0, 2.0]])
simple("compare", "compare_attributions NaN attributions", lambda c: _ca(linear_net(), X2, np.full((2, 2), np.nan),
                                                                         "gradient"),
       ["attributions", ("nan", "non-finite")])
simple("compare", "compare_attributions NaN where the reference is 0",
       lambda c: _ca(R.Sequential([R.Dense([[0.0, 0.0]])]), X2, np.full((2, 2), np.nan), "gradient"),
       ["attributions", ("nan", "non-finite")])
simple("compare", "compare_attributions inf attributions",
       lambda c: _ca(linear_net(), X2, np.array([[np.inf, 2.0], [1.0, 2.0]]), "gradient"),
       ["attributions", ("inf", "non-finite")])
simple("compare", "compare_attributions rtol inf", lambda c: _ca(linear_net(), X2, GRAD * 7, "gradient", rtol=np.inf),
       ["rtol"])
simple("compare", "compare_attributions rtol nan", lambda c: _ca(linear_net(), X2, GRAD, "gradient", rtol=np.nan),
       ["rtol"])
simple("compare", "compare_attributions rtol 0", lambda c: _ca(linear_net(), X2, GRAD, "gradient", rtol=0.0), ["rtol"])
simple("compare", "compare_attributions rtol -1", lambda c: _ca(linear_net(), X2, GRAD, "gradient", rtol=-1.0),
       ["rtol"])
simple("compare", "compare_attributions rtol 5", lambda c: _ca(linear_net(), X2, GRAD * 3, "gradient", rtol=5.0),
       ["rtol"])
simple("compare", "compare_attributions rtol True", lambda c: _ca(linear_net(), X2, GRAD, "gradient", rtol=True),
       ["rtol"])
simple("compare", "compare_attributions rtol '1e-3'", lambda c: _ca(linear_net(), X2, GRAD, "gradient", rtol="1e-3"),
       ["rtol"])
simple("compare", "compare_attributions wrong shape", lambda c: _ca(linear_net(), X2, np.zeros((3, 3)), "gradient"),
       ["attributions", "shape"])
simple("compare", "compare_attributions method 'foo'", lambda c: _ca(linear_net(), X2, GRAD, "foo"), ["method"])
simple("compare", "compare_attributions IG rule 'foo'",
       lambda c: _ca(linear_net(), X2, GRAD, "integrated_gradients", rule="foo"), ["rule"])
simple("compare", "compare_attributions inputs NaN",
       lambda c: _ca(linear_net(), np.array([[np.nan, 1.0]]), np.ones((1, 2)), "gradient"), ["inputs"])
simple("compare", "compare_attributions model object()", lambda c: _ca(object(), X2, GRAD, "gradient"), ["model"])
simple("compare", "compare_attributions attributions a string", lambda c: _ca(linear_net(), X2, "abc", "gradient"),
       ["attributions"])
simple("compare", "compare_attributions object-dtype attributions",
       lambda c: _ca(linear_net(), X2, np.array([[1, None], [2, 3]], dtype=object), "gradient"), ["attributions"])


def _cc(*args, **kw):
    from refattr.interop import compare_captum

    return compare_captum(*args, **kw)


simple("compare", "compare_captum baselines= (Captum's own name)", lambda c: _cc(linear_net(), X2, baselines=X2),
       BASELINES_PHRASES, needs=("torch", "captum"))
simple("compare", "compare_attributions baselines=", lambda c: _ca(linear_net(), X2, GRAD, "integrated_gradients",
                                                                   baselines=X2), BASELINES_PHRASES[:-1])
simple("compare", "compare_captum rtol inf", lambda c: _cc(linear_net(), X2, methods=["Saliency"], rtol=np.inf),
       ["rtol"], needs=("torch", "captum"))
simple("compare", "compare_captum rtol nan", lambda c: _cc(linear_net(), X2, methods=["Saliency"], rtol=np.nan),
       ["rtol"], needs=("torch", "captum"))
simple("compare", "compare_captum method 'Foo'", lambda c: _cc(linear_net(), X2, methods=["Foo"]), ["foo"],
       needs=("torch", "captum"))
simple("compare", "compare_captum n_steps 0",
       lambda c: _cc(linear_net(), X2, methods=["IntegratedGradients"], n_steps=0), ["n_steps"],
       needs=("torch", "captum"))
simple("compare", "compare_captum on a hooked torch module", lambda c: _cc(
    (lambda m: (m[0].register_forward_hook(lambda mod, i, o: o * 2), m)[1])(_torch_mlp()), X2, methods=["Saliency"]),
       ["hook"], needs=("torch", "captum"))
simple("compare", "compare_captum x = 1e308", lambda c: _cc(tanh_net(), np.array([[1e308, 1e308]]),
                                                             methods=["Saliency"]),
       [("dense", "inputs"), ("finite", "scale")], needs=("torch", "captum"))


# command line ------------------------------------------------------------------------------------
def cli_case(name, args, phrases, needs=("onnx",), **kw):
    def run(c):
        _cli_files(c)
        return c.cli(*args)
    CASES.append(Case("cli", name, run, tuple(phrases), needs=needs, **kw))


ATTR = ("--attributions", "grad.npy", "--method", "gradient", "--targets", "0")
cli_case("compare MODEL is a directory", ["compare", "adir", "--inputs", "x.npy", *ATTR], ["model", "adir"])
cli_case("compare MODEL missing", ["compare", "nothere.onnx", "--inputs", "x.npy", *ATTR], ["model", "nothere.onnx"])
cli_case("compare MODEL .txt", ["compare", "model.txt", "--inputs", "x.npy", *ATTR], ["model", ".onnx"])
cli_case("compare MODEL empty .onnx", ["compare", "empty.onnx", "--inputs", "x.npy", *ATTR], ["empty.onnx"])
cli_case("compare MODEL garbage .onnx", ["compare", "garbage.onnx", "--inputs", "x.npy", *ATTR], ["garbage.onnx"])
cli_case("compare --inputs a directory", ["compare", "model.onnx", "--inputs", "adir", *ATTR], ["--inputs", "adir"])
cli_case("compare --inputs missing", ["compare", "model.onnx", "--inputs", "none.npy", *ATTR], ["--inputs"])
cli_case("compare --inputs not a .npy file", ["compare", "model.onnx", "--inputs", "text.npy", *ATTR],
         ["--inputs", "text.npy"])
cli_case("compare --inputs object array", ["compare", "model.onnx", "--inputs", "objects.npy", *ATTR],
         ["--inputs", "objects.npy"])
cli_case("compare --inputs NaN", ["compare", "model.onnx", "--inputs", "nan_x.npy", *ATTR],
         ["inputs", ("nan", "non-finite")])
cli_case("compare --baseline wrong shape", ["compare", "model.onnx", "--inputs", "x.npy", "--baseline",
                                            "wrong_shape.npy", *ATTR], ["baseline", "shape"])
cli_case("compare --baseline a directory", ["compare", "model.onnx", "--inputs", "x.npy", "--baseline", "adir",
                                            *ATTR], ["--baseline", "adir"])
cli_case("compare --baselines (Captum's name)", ["compare", "model.onnx", "--inputs", "x.npy", "--baselines", "x.npy",
                                                 *ATTR], ["--baselines", "one baseline per example", "--baseline b.npy",
                                                          "--baseline-samples s.npy"])
cli_case("compare --targets 'abc'", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "grad.npy",
                                     "--method", "gradient", "--targets", "abc"], ["--targets"])
cli_case("compare --targets 99", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "grad.npy",
                                  "--method", "gradient", "--targets", "99"], ["target", "range"])
cli_case("compare --targets a directory", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "grad.npy",
                                           "--method", "gradient", "--targets", "adir"], ["--targets"])
cli_case("compare --attributions NaN", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "nan_attr.npy",
                                        "--method", "gradient", "--targets", "0"],
         ["attributions", ("nan", "non-finite")])
cli_case("compare --attributions NaN where the reference is 0",
         ["compare", "zero.onnx", "--inputs", "x.npy", "--attributions", "nan_attr.npy", "--method", "gradient",
          "--targets", "0"], ["attributions", ("nan", "non-finite")])
cli_case("compare --attributions inf", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "inf_attr.npy",
                                        "--method", "gradient", "--targets", "0"],
         ["attributions", ("inf", "non-finite")])
cli_case("compare --attributions without --method", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions",
                                                      "grad.npy", "--targets", "0"], ["--method"])
cli_case("compare --attributions a directory", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "adir",
                                                "--method", "gradient", "--targets", "0"], ["--attributions"])
cli_case("compare --attributions wrong shape", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions",
                                                "wrong_shape.npy", "--method", "gradient", "--targets", "0"],
         ["attributions", "shape"])
cli_case("compare --method foo", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "grad.npy",
                                  "--method", "foo", "--targets", "0"], ["method", "foo"])
cli_case("compare --rtol inf", ["compare", "model.onnx", "--inputs", "x.npy", *ATTR, "--rtol", "inf"], ["rtol"])
cli_case("compare --rtol nan", ["compare", "model.onnx", "--inputs", "x.npy", *ATTR, "--rtol", "nan"], ["rtol"])
cli_case("compare --rtol -1", ["compare", "model.onnx", "--inputs", "x.npy", *ATTR, "--rtol", "-1"], ["rtol"])
cli_case("compare --rtol abc", ["compare", "model.onnx", "--inputs", "x.npy", *ATTR, "--rtol", "abc"], ["--rtol"])
cli_case("compare --n-steps 0 (IG)", ["compare", "model.onnx", "--inputs", "x.npy", "--attributions", "grad.npy",
                                      "--method", "integrated_gradients", "--rule", "left", "--n-steps", "0",
                                      "--targets", "0"], ["n_steps"])
cli_case("compare --baseline-samples a directory", ["compare", "model.onnx", "--inputs", "x.npy", "--baseline-samples",
                                                    "adir", "--methods", "DeepLiftShap", "--targets", "0"],
         ["--baseline-samples"], needs=("onnx", "torch", "captum"))
cli_case("compare --methods Foo", ["compare", "model.onnx", "--inputs", "x.npy", "--methods", "Foo", "--targets", "0"],
         ["foo"], needs=("onnx", "torch", "captum"))
cli_case("compare without arguments", ["compare"], ["model"], needs=())
cli_case("unknown subcommand", ["bogus"], ["bogus"], needs=())
cli_case("oracle without an action", ["oracle"], ["export"], needs=())
cli_case("oracle export onto a file", ["oracle", "export", "afile"], ["afile"], needs=())
cli_case("demo --out onto a file", ["demo", "--out", "afile", "--quiet"], ["afile"], needs=())
cli_case("audit --seed abc", ["audit", "--seed", "abc"], ["--seed"], needs=())


# Reporting ---------------------------------------------------------------------------------------

def counts(outcomes) -> dict:
    table: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = table.setdefault(o.area, dict.fromkeys(CLASSES, 0))
        row[o.cls] += 1
    total = dict.fromkeys(CLASSES, 0)
    for row in table.values():
        for k, v in row.items():
            total[k] += v
    table["total"] = total
    return table


def format_table(table: dict) -> str:
    header = ["area", *CLASSES, "cases"]
    rows = [[area, *(str(row[k]) for k in CLASSES), str(sum(row.values()))] for area, row in table.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def header() -> dict:
    commit = None
    root = Path(refattr.__file__).resolve().parent.parent
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = commit and commit + (" (with uncommitted changes)" if dirty else "")
    return {"refattr_file": refattr.__file__, "refattr_version": refattr.__version__, "commit": commit,
            "python": sys.version.split()[0], "date": datetime.date.today().isoformat(),
            "optional": {m: available(m) for m in OPTIONAL}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per case")
    parser.add_argument("--json", metavar="FILE", help="write the header, every outcome and the counts to FILE")
    parser.add_argument("-k", metavar="TEXT", help="only cases whose area or name contains TEXT")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before an isolated case counts as raw")
    parser.add_argument("--memory-gib", type=float, default=2.0, help="memory an isolated case may allocate")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.memory_gib)
        return 0
    info = header()
    print(f"refattr {info['refattr_version']} from {info['refattr_file']} (commit {info['commit']}), "
          f"python {info['python']}, {info['date']}")
    print("optional packages: " + ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in info["optional"].items()))
    selected = [c for c in CASES if not args.k or args.k.lower() in (c.area + " " + c.name).lower()]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="refattr-audit-") as tmp:
        ctx = Context(tmp, timeout=args.timeout, memory_gib=args.memory_gib)
        cli_import = subprocess.run([sys.executable, "-c", "import refattr; print(refattr.__file__)"], cwd=tmp,
                                    capture_output=True, text=True).stdout.strip()
        print(f"command-line cases import refattr from {cli_import}")
        for c in selected:
            outcome = run_case(c, ctx)
            outcomes.append(outcome)
            if args.verbose:
                print(f"{outcome.cls:8} {outcome.area:20} {outcome.name}: {outcome.kind}: {outcome.message[:100]}",
                      flush=True)
    table = counts(outcomes)
    print()
    print(format_table(table))
    if args.json:
        Path(args.json).write_text(json.dumps({"header": {**info, "cli_refattr_file": cli_import},
                                               "counts": table, "outcomes": [asdict(o) for o in outcomes]},
                                              indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
