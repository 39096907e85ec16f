"""refattr's DeepLIFT per sequence against tangermeme's deep_lift_shap, float64, same references, same run.

Run: ``python benchmarks/bench_tangermeme.py [--sequences 16] [--length 1000] [--references 20]
[--threads 1] [--repeats 7] [--models issue49 bpnet] [--quick]`` (not part of the test suite; needs
torch and tangermeme 1.6.0, and uses threadpoolctl when installed).

The genomics workflow: one-hot DNA (N, 4, L), K dinucleotide-shuffled references per sequence drawn
once with tangermeme's own shuffler (``tangermeme.ersatz.dinucleotide_shuffle``), then attributions
averaged over each sequence's references. Both libraries get the same references: refattr as
``baseline_samples`` of shape (N, K, 4, L), tangermeme as its ``references`` tensor.

Models, plain PyTorch in float64 and eval mode, imported with ``refattr.interop.from_torch``:

- ``issue49``: tangermeme issue #49 (Conv1d 8x7 -> ReLU -> MaxPool1d(4, 2) -> Dropout -> Conv1d 8x5
  -> ReLU -> MaxPool1d(10, 5) -> Dropout -> Flatten -> Linear 16 -> ReLU -> Linear 2), the model of
  ``tests/interop/genomics_models.py``; target 0.
- ``bpnet``: a BPNet-like model: Conv1d 4 -> F (width 21, padding 10) -> ReLU, then D dilated
  residual layers h = h + ReLU(Conv1d F -> F, width 3, dilation 2^i, padding 2^i), i = 1..D, then
  global average pooling (AdaptiveAvgPool1d(1)) -> Flatten -> Linear F -> 1 (a Graph with D
  residual joins). F = 32, D = 4 unless ``--bpnet-filters`` / ``--bpnet-layers`` say otherwise.

Calls timed (each the call a user makes, output (N, 4, L)):

- refattr ``deeplift(net, x, baseline_samples=refs, target=0, maxpool_rule=...)``: channel-wise
  contributions m (x - x'), mean over the references;
- refattr ``hypothetical_contributions(...)``: the same pass, plus the hypothetical and projected
  contributions (its ``values`` are the projected ones, tangermeme's default output);
- tangermeme ``deep_lift_shap(model, X, references=refs, target=0, device="cpu")`` in float64 with
  its default ``batch_size=32`` pairs (``--batch-size``): hypothetical contributions averaged over
  the references, times the one-hot input.

``maxpool_rule`` is ``"tangermeme"`` (``--maxpool-rule``): refattr's name for tangermeme 1.6.0's
max-pool convention, which reproduces its multipliers as well as its contributions
(``refattr.interop.compare_tangermeme``). Contributions and projected contributions are the same
under ``"delta_routing"``; only the multipliers (and the hypothetical contributions of absent
bases) differ, where a falling pool window's input winner has Δx == 0 exactly.

Every pair is checked before it is timed, so that a fast wrong answer cannot win (normwise relative
difference per sequence, ``refattr.interop.compare.relative_difference``, at most 1e-10):

- refattr's contributions against tangermeme's multipliers for every pair (``raw_outputs=True``)
  times x - x', averaged over the references;
- refattr's projected contributions against tangermeme's default output;
- refattr's summation-to-delta (``completeness_gap`` over |Δt|, shown as "refattr gap").

Timing: the three calls run interleaved, their order rotating from round to round, after one
warm-up round, median of the repeats, reported per sequence; ``--threads`` sets
``torch.set_num_threads``, ``numba.set_num_threads`` and (threadpoolctl) the BLAS pool together.
Ratio = refattr / tangermeme: below 1 refattr is faster.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_line, threads  # noqa: E402

from refattr.interop import from_torch  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402
from refattr.methods.deeplift import deeplift  # noqa: E402
from refattr.methods.hypothetical import hypothetical_contributions  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

TOLERANCE = 1e-10
TARGET = 0
MODELS_FILE = Path(__file__).resolve().parent.parent / "tests" / "interop" / "genomics_models.py"


def _genomics_models():
    spec = importlib.util.spec_from_file_location("genomics_models", MODELS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BPNetLike(nn.Module):
    """Conv1d stem -> ReLU -> dilated residual Conv1d + ReLU layers -> global average pool -> Linear.

    Every ReLU is its own ``nn.ReLU`` module, used once, so that tangermeme's hooks see each one.
    """

    def __init__(self, filters: int, n_layers: int):
        super().__init__()
        self.stem, self.stem_relu = nn.Conv1d(4, filters, 21, padding=10), nn.ReLU()
        self.convs = nn.ModuleList(nn.Conv1d(filters, filters, 3, padding=2 ** i, dilation=2 ** i)
                                   for i in range(1, n_layers + 1))
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(n_layers))
        self.pool, self.flat, self.head = nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(filters, 1)

    def forward(self, x):
        h = self.stem_relu(self.stem(x))
        for conv, relu in zip(self.convs, self.relus):
            h = h + relu(conv(h))
        return self.head(self.flat(self.pool(h)))


def build_model(name: str, length: int, args) -> nn.Module:
    torch.manual_seed(0)
    if name == "issue49":
        return _genomics_models().build("issue49", length, seed=0)
    if name == "bpnet":
        return BPNetLike(args.bpnet_filters, args.bpnet_layers).double().eval()
    raise SystemExit(f"--models: unknown model {name!r}; expected issue49 or bpnet")


def one_hot(n: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 4, length))
    x[np.arange(n)[:, None], rng.integers(0, 4, (n, length)), np.arange(length)] = 1.0
    return x


def interleaved(fns, repeats: int, warmup: int = 1) -> list[float]:
    """Median seconds of each fn, the fns called in turn in every round; the order rotates from round to
    round, so that no call always runs first (or always after the same one)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for r in range(repeats):
        for i in np.roll(np.arange(len(fns)), -r):
            start = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(bucket)) for bucket in times]


def check(net, model, x, refs, maxpool_rule, batch_size, deep_lift_shap) -> dict:
    """Relative differences of refattr's results from tangermeme's; raises above TOLERANCE."""
    tx, trefs = torch.from_numpy(x), torch.from_numpy(refs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a convergence-delta warning from tangermeme fails the check
        raw = deep_lift_shap(model, tx, references=trefs, target=TARGET, raw_outputs=True, batch_size=batch_size,
                             device="cpu").numpy()
        projected = deep_lift_shap(model, tx, references=trefs, target=TARGET, batch_size=batch_size,
                                   device="cpu").numpy()
    ours = hypothetical_contributions(net, x, baseline_samples=refs, target=TARGET, maxpool_rule=maxpool_rule)
    plain = deeplift(net, x, baseline_samples=refs, target=TARGET, maxpool_rule=maxpool_rule)
    peer_contributions = (raw * (x[:, None] - refs)).mean(axis=1)      # m (x - x'), mean over the K references
    delta_t = np.abs(ours.options["delta_t"])
    found = {
        "contributions": relative_difference(plain.values, peer_contributions),
        "projected": relative_difference(ours.projected, projected),
        "hypothetical's contributions": relative_difference(ours.contributions, plain.values),
        "refattr gap": float(np.max(np.abs(plain.completeness_gap) / np.where(delta_t > 0, delta_t, 1.0))),
    }
    for what, d in found.items():
        if not d <= TOLERANCE:
            raise AssertionError(f"{what}: refattr differs from tangermeme (or from itself) by {d:.2e} > "
                                 f"{TOLERANCE:.0e}; nothing is timed")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=None, help="N sequences (default 16, --quick 2)")
    parser.add_argument("--length", type=int, default=None, help="L (default 1000, --quick 400)")
    parser.add_argument("--references", type=int, default=None, help="K shuffles per sequence (default 20, --quick 8)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=None, help="default 7, --quick 3")
    parser.add_argument("--models", nargs="+", default=["issue49", "bpnet"], choices=["issue49", "bpnet"])
    parser.add_argument("--maxpool-rule", default="tangermeme", choices=["tangermeme", "delta_routing"])
    parser.add_argument("--batch-size", type=int, default=32, help="tangermeme's batch_size in pairs (its default 32)")
    parser.add_argument("--bpnet-filters", type=int, default=32)
    parser.add_argument("--bpnet-layers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes: 2 sequences, L = 400, K = 8, 3 repeats")
    args = parser.parse_args(argv)
    quick = args.quick
    n = args.sequences or (2 if quick else 16)
    length = args.length or (400 if quick else 1000)
    k = args.references or (8 if quick else 20)
    repeats = args.repeats or (3 if quick else 7)

    import tangermeme
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    command = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# refattr DeepLIFT vs tangermeme {tangermeme.__version__} deep_lift_shap (torch {torch.__version__}, "
          f"CPU), float64, {n} sequences, L = {length}, K = {k} dinucleotide shuffles per sequence")
    print(f"{machine_line()}; numba {numba.__version__}, threadpoolctl "
          f"{'yes' if threadpool_limits else 'not installed'}; maxpool_rule={args.maxpool_rule!r}, tangermeme "
          f"batch_size {args.batch_size}, {repeats} repeats; command: python benchmarks/bench_tangermeme.py {command}")
    print()
    print("| model | threads | refattr deeplift ms/seq | refattr hypothetical ms/seq | tangermeme ms/seq | "
          "deeplift/tangermeme | hypothetical/tangermeme | contributions rel diff | projected rel diff | "
          "refattr gap |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    x = one_hot(n, length)
    refs = dinucleotide_shuffle(torch.from_numpy(x), n=k, random_state=0).double().numpy()     # (N, K, 4, L)
    tx, trefs = torch.from_numpy(x), torch.from_numpy(refs)
    for name in args.models:
        model = build_model(name, length, args)
        net = from_torch(model, input_shape=(4, length))
        found = check(net, model, x, refs, args.maxpool_rule, args.batch_size, deep_lift_shap)

        def ours():
            return deeplift(net, x, baseline_samples=refs, target=TARGET, maxpool_rule=args.maxpool_rule).values

        def ours_hypothetical():
            return hypothetical_contributions(net, x, baseline_samples=refs, target=TARGET,
                                              maxpool_rule=args.maxpool_rule).values

        def theirs():
            return deep_lift_shap(model, tx, references=trefs, target=TARGET, batch_size=args.batch_size,
                                  device="cpu")

        for n_threads in args.threads:
            with threads(n_threads):
                t_ours, t_hyp, t_theirs = interleaved([ours, ours_hypothetical, theirs], repeats)
            print(f"| {name} | {n_threads} | {1e3 * t_ours / n:.2f} | {1e3 * t_hyp / n:.2f} | "
                  f"{1e3 * t_theirs / n:.2f} | {t_ours / t_theirs:.2f} | {t_hyp / t_theirs:.2f} | "
                  f"{found['contributions']:.1e} | {found['projected']:.1e} | {found['refattr gap']:.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
