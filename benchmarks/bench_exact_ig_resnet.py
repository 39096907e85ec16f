"""Exact integrated gradients on a ResNet-style CNN against its floor: one batched PyTorch gradient per piece.

The model (plain torch, imported with refattr.interop.from_torch as a Graph): 3x32x32 -> conv3x3
(width w) -> ReLU -> BasicBlock(w) -> BasicBlock(2w, stride 2, 1x1 downsample) -> global average
pooling -> Linear 10, BasicBlock = conv-ReLU-conv, + shortcut, ReLU. Also the benchmark CNN of
bench_captum.py. For each model: the pieces of every example's path (kinks of every ReLU), refattr's
time per example (rule="exact"), and the floor: the time PyTorch's autograd takes for one gradient
per piece, measured on a batch of 256 path points in the same run. Ratio = refattr / floor.

    python benchmarks/bench_exact_ig_resnet.py                      # widths 8 16 32, one example each
    python benchmarks/bench_exact_ig_resnet.py --widths 8 16 --examples 2 --plot figures/benchmarks/exact_ig_pieces.png
    python benchmarks/bench_exact_ig_resnet.py --widths 32 --known 8:11887 16:25870 --plot ...   # add earlier runs

One thread for both libraries (torch, numba, BLAS), as the floor is per core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import benchmark_cnn, machine_line, resnet


def floor_per_gradient(module, x, target: int, batch: int = 256, repeats: int = 3) -> float:
    """Seconds per gradient of PyTorch autograd on a batch of ``batch`` copies of x (median)."""
    import torch

    points = torch.tensor(np.repeat(x[:1], batch, axis=0), requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.autograd.grad(module(points)[:, target].sum(), points)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:])) / batch


def measure(name, net, module, x, target):
    from refattr import integrated_gradients

    start = time.perf_counter()
    result = integrated_gradients(net, x, target=target, rule="exact")
    per_example = (time.perf_counter() - start) / x.shape[0]
    pieces = float(np.mean(result.options["n_pieces"]))
    per_gradient = floor_per_gradient(module, x, target)
    gap = float(np.max(np.abs(result.completeness_gap)))
    ratio = per_example / (per_gradient * pieces)
    print(f"| {name} | {pieces:,.0f} | {per_example:.2f} | {per_gradient * 1e3:.3f} | {ratio:.2f} | {gap:.1e} |",
          flush=True)
    return pieces, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--examples", type=int, default=1)
    parser.add_argument("--plot", default=None, help="write pieces per example against width to this PNG")
    parser.add_argument("--known", nargs="*", default=[], metavar="WIDTH:PIECES",
                        help="pieces per example measured in an earlier run, added to the plot")
    args = parser.parse_args()

    import numba
    import torch
    from threadpoolctl import threadpool_limits

    from refattr.interop import from_torch, to_torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    print(machine_line())
    print("| model | pieces / example | refattr s / example | torch ms / gradient | refattr / floor | max gap |")
    print("| --- | --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        cnn = benchmark_cnn()
        from refattr import integrated_gradients     # compile the kernels once, on a small example
        integrated_gradients(cnn, rng.normal(size=(1, 1, 28, 28)), target=0, rule="exact")
        measure("CNN 1x28x28", cnn, to_torch(cnn), rng.normal(size=(args.examples, 1, 28, 28)), 0)
        widths, pieces = [], []
        for width in args.widths:
            module = resnet(width)
            net = from_torch(module, input_shape=(3, 32, 32))
            p, _ = measure(f"ResNet-style 3x32x32, width {width}", net, module,
                           rng.normal(size=(args.examples, 3, 32, 32)), 0)
            widths.append(width)
            pieces.append(p)
    for item in args.known:
        width, count = item.split(":")
        widths.append(int(width))
        pieces.append(float(count))
    order = np.argsort(widths)
    widths, pieces = [widths[i] for i in order], [pieces[i] for i in order]
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot(widths, pieces, "o-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xlabel("width (channels of the first block)")
        ax.set_ylabel("pieces per example (exact IG)")
        ax.set_title("ResNet-style CNN, 3x32x32, random weights", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
