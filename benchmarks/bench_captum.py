"""refattr against Captum 0.9.0 on PyTorch CPU, both in float64, same weights, same inputs, same run.

Run: ``python benchmarks/bench_captum.py [--repeats 15] [--threads 1 2] [--quick]``
(not part of the test suite; needs torch and captum, and uses threadpoolctl when installed).

Models (batch 32, float64), each with ReLU, tanh, sigmoid and swish (SiLU) activations:

- MLP 64-128-64-10;
- CNN 1x28x28: conv8 3x3 pad 1, act, conv16 3x3 stride 2 pad 1, act, flatten, dense 10
  (``benchmarks/_common.benchmark_cnn``);
- ResNet (``--models ResNet``, ReLU only): the ResNet-style CNN of ``_common.resnet``, 3x32x32, stem
  conv 16 + two BasicBlocks (16, and 32 with stride 2 and a 1x1 downsample), global average pooling,
  Linear 10, written in plain torch with an ``nn.ReLU`` module per activation and imported with
  ``refattr.interop.from_torch`` (a Graph with two residual joins).

Methods: saliency (Captum ``Saliency(abs=False)``), guided backprop, integrated gradients
(Gauss-Legendre, 50 steps, Captum's default), DeepLift (Rescale) and DeepLiftShap with 8 baselines.
The torch model is ``refattr.interop.to_torch(net)``: the same weights.

Every pair is checked before it is timed, so that a fast wrong answer cannot win (normwise
relative difference per example, ``refattr.interop.compare.relative_difference``):

- saliency, guided backprop: refattr vs Captum <= 1e-12;
- IG: refattr's reproduction of Captum's convention (``captum_conventions``) vs Captum <= 1e-12,
  and refattr's own ``rule="gauss_legendre"`` vs Captum <= 1e-6 (Captum rounds the Gauss-Legendre
  weights to float32, a relative change of up to ~6e-8 per weight);
- DeepLift, DeepLiftShap: refattr Rescale, and refattr's reproduction of Captum's convention, vs
  Captum <= 1e-10 on ReLU, tanh and sigmoid (1e-12 up to a rounding amplification): Captum divides
  the forward differences, (y - y') / (x - x'), so a one-ulp difference between torch's and NumPy's
  sigmoid in y or y' is amplified by |y| / |y - y'| where x - x' is small (refattr uses a stable
  divided difference); the sigmoid networks show 2e-12 to 5e-12. With swish the results differ by
  convention (Captum has no SiLU rule and passes the plain gradient there, docs/conventions.md,
  section 'Captum 0.9.0'), so only the timing is compared; the table marks those rows
  "convention".

Timing: both libraries run interleaved (refattr call, Captum call, refattr call, ...) after warm-up
calls, and the median of the repeats is reported, at 1 and 2 threads: ``torch.set_num_threads``,
``numba.set_num_threads`` and (threadpoolctl) the BLAS pool all set to the same count.
Memory: ``tracemalloc`` peak during one refattr call: NumPy registers its buffers with tracemalloc,
so this is the peak of Python + NumPy allocations above the start of the call (numba's arrays are
NumPy arrays too). torch's CPU allocator does not report to tracemalloc, so Captum's peak is not
comparable this way and is not shown.
Cold start: the first refattr call in a fresh subprocess against the call that follows, once with an
empty numba cache (every kernel compiles) and once with the cache that first run wrote (numba loads
the machine code from disk), in a temporary NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numba
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import benchmark_cnn, machine_line, resnet, threads  # noqa: E402

from refattr import Dense, ReLU, Sequential, Sigmoid, Swish, Tanh  # noqa: E402
from refattr.interop import captum_conventions as cc  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402
from refattr.interop import from_torch  # noqa: E402
from refattr.interop.torch_model import to_torch  # noqa: E402
from refattr.methods.deeplift import deeplift  # noqa: E402
from refattr.methods.gradient import gradient  # noqa: E402
from refattr.methods.guided_backprop import guided_backprop  # noqa: E402
from refattr.methods.integrated_gradients import integrated_gradients  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}
BATCH = 32
N_STEPS = 50
N_SHAP = 8
RESNET_WIDTH = 16


def benchmark_mlp(seed: int = 0, activation=ReLU) -> Sequential:
    """64 -> 128 -> act -> 64 -> act -> 10."""
    rng = np.random.default_rng(seed)
    sizes = (64, 128, 64, 10)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.1))
        if i < len(sizes) - 2:
            layers.append(activation())
    return Sequential(layers, input_shape=(64,))


def case(model: str, act: str, seed: int = 1):
    """(refattr net, torch model, x, baseline, baselines (K, ...), target) for one model.

    "ResNet" is the plain-torch module of ``_common.resnet`` (ReLU only, ``act`` ignored), imported
    with ``from_torch`` as a Graph; Captum runs on that original module, not on a re-export.
    """
    if model == "ResNet":
        tmodel = resnet(RESNET_WIDTH)
        net = from_torch(tmodel, input_shape=(3, 32, 32))
    else:
        net = benchmark_mlp(activation=ACTIVATIONS[act]) if model == "MLP" else benchmark_cnn(activation=ACTIVATIONS[act])
        tmodel = to_torch(net).eval()
    shape = net.input_shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH,) + shape)
    baseline = rng.normal(size=(BATCH,) + shape) * 0.1
    baselines = rng.normal(size=(N_SHAP,) + shape) * 0.1
    target = np.arange(BATCH) % 10
    return net, tmodel, x, baseline, baselines, target


def methods(net, tmodel, x, baseline, baselines, target):
    """{name: (refattr fn, Captum fn, checks)}; checks is a list of (what, refattr-side fn, tolerance)
    compared against the Captum result, or the string "convention"."""
    from captum.attr import DeepLift, DeepLiftShap, GuidedBackprop, IntegratedGradients, Saliency

    tx = torch.from_numpy(x)
    tb = torch.from_numpy(baseline)
    tbs = torch.from_numpy(baselines)
    tt = torch.from_numpy(target)
    sal, gbp = Saliency(tmodel), GuidedBackprop(tmodel)
    ig, dl, dls = IntegratedGradients(tmodel), DeepLift(tmodel), DeepLiftShap(tmodel)
    smooth_swish = any(isinstance(layer, Swish) for layer in net.layers) if hasattr(net, "layers") else False

    def captum(fn, **kw):
        def run():
            return fn(tx.clone().requires_grad_(True), target=tt, **kw).detach().numpy()
        return run

    ours = {
        "saliency": lambda: gradient(net, x, target=target).values,
        "guided backprop": lambda: guided_backprop(net, x, target=target).values,
        "IG GL-50": lambda: integrated_gradients(net, x, baseline, target=target, rule="gauss_legendre",
                                                 n_steps=N_STEPS).values,
        "DeepLift": lambda: deeplift(net, x, baseline, target=target).values,
        "DeepLiftShap K=8": lambda: deeplift(net, x, target=target, baseline_samples=baselines).values,
    }
    theirs = {
        "saliency": captum(sal.attribute, abs=False),
        "guided backprop": captum(gbp.attribute),
        "IG GL-50": captum(ig.attribute, baselines=tb, n_steps=N_STEPS, method="gausslegendre"),
        "DeepLift": captum(dl.attribute, baselines=tb),
        "DeepLiftShap K=8": captum(dls.attribute, baselines=tbs),
    }
    checks = {
        "saliency": [("refattr", ours["saliency"], 1e-12)],
        "guided backprop": [("refattr", ours["guided backprop"], 1e-12)],
        "IG GL-50": [
            ("captum_conventions reproduction",
             lambda: cc.captum_integrated_gradients(net, x, baseline, target, "gausslegendre", N_STEPS), 1e-12),
            ("refattr gauss_legendre (float64 weights)", ours["IG GL-50"], 1e-6),
        ],
        "DeepLift": "convention" if smooth_swish else [
            ("captum_conventions reproduction", lambda: cc.captum_deeplift(net, x, baseline, target), 1e-10),
            ("refattr rescale", ours["DeepLift"], 1e-10),
        ],
        "DeepLiftShap K=8": "convention" if smooth_swish else [
            ("captum_conventions reproduction", lambda: cc.captum_deeplift_shap(net, x, baselines, target), 1e-10),
            ("refattr rescale", ours["DeepLiftShap K=8"], 1e-10),
        ],
    }
    return {name: (ours[name], theirs[name], checks[name]) for name in ours}


def check(name, peer, checks):
    """Relative difference of the last check (refattr's own method); raises when any check
    exceeds its tolerance."""
    if checks == "convention":
        return "convention"
    worst = 0.0
    for what, fn, tol in checks:
        d = relative_difference(fn(), peer)
        if not d <= tol:
            raise AssertionError(f"{name}: {what} differs from Captum by {d:.2e} > {tol:.0e}")
        worst = d
    return f"{worst:.1e}"


def interleaved(fn_a, fn_b, repeats, warmup=2):
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return float(np.median(ta)), float(np.median(tb))


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


COLD_SNIPPET = """
import sys, time
sys.path.insert(0, {bench_dir!r})
import numpy as np
t0 = time.perf_counter()
from _common import benchmark_cnn
from refattr.methods.gradient import gradient
net = benchmark_cnn()
x = np.random.default_rng(1).normal(size=(32, 1, 28, 28))
t1 = time.perf_counter()
gradient(net, x, target=0)
t2 = time.perf_counter()
gradient(net, x, target=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def cold_start(cache_dir):
    """(import s, first call s, warm call s) of saliency on the CNN in a fresh interpreter whose
    numba cache is ``cache_dir``."""
    code = COLD_SNIPPET.format(bench_dir=os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return tuple(float(v) for v in out.stdout.split())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["MLP", "CNN", "ResNet"])
    parser.add_argument("--activations", nargs="+", default=list(ACTIVATIONS))
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="5 repeats (IG and DeepLiftShap 3)")
    parser.add_argument("--cold-start-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    import captum

    print(f"# refattr vs Captum {captum.__version__} (torch {torch.__version__}, CPU), float64, batch {BATCH}")
    print(f"{machine_line()}; numba {numba.__version__}, threadpoolctl "
          f"{'yes' if threadpool_limits else 'not installed'}; command: python benchmarks/bench_captum.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    print()
    if args.cold_start_only:
        args.models = []
    print("| model | act | method | threads | refattr ms | Captum ms | refattr/Captum | max rel diff | refattr peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        for act in args.activations:
            if model == "ResNet" and act != "relu":
                continue   # the ResNet-style CNN has ReLU only
            net, tmodel, x, baseline, baselines, target = case(model, act)
            table = methods(net, tmodel, x, baseline, baselines, target)
            for name, (ours, theirs, checks) in table.items():
                if args.methods and not any(m.lower() in name.lower() for m in args.methods):
                    continue
                if checks == "convention" and name == "DeepLiftShap K=8":
                    continue   # the brief asks for DeepLift timing only with swish
                verdict = check(name, theirs(), checks)
                heavy = name.startswith(("IG", "DeepLiftShap"))
                repeats = (3 if heavy else 5) if args.quick else (max(5, args.repeats // 3) if heavy else args.repeats)
                peak = peak_bytes(ours) / 2**20
                for n_threads in args.threads:
                    with threads(n_threads):
                        t_ours, t_theirs = interleaved(ours, theirs, repeats, warmup=1 if heavy else 2)
                    print(f"| {model} | {act} | {name} | {n_threads} | {1e3 * t_ours:.2f} | {1e3 * t_theirs:.2f} | "
                          f"{t_ours / t_theirs:.2f} | {verdict} | {peak:.1f} |", flush=True)
    print()
    with tempfile.TemporaryDirectory() as cache_dir:
        for what in ("empty numba cache (compiles)", "numba cache filled by the run above"):
            imp, first, warm = cold_start(cache_dir)
            print(f"Cold start, fresh subprocess, saliency on the CNN, batch 32, {what}: import "
                  f"{1e3 * imp:.0f} ms, first call {1e3 * first:.1f} ms, second call {1e3 * warm:.2f} ms")


if __name__ == "__main__":
    main()
