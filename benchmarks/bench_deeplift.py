"""DeepLIFT (Rescale, RevealCancel) against one forward + input VJP of the same network.

Run: python benchmarks/bench_deeplift.py        (not part of the test suite)

The benchmark CNN (benchmarks/_common.py) at batch 32 in float64, with a random reference per
example. DeepLIFT needs two forward passes (input and reference); under Rescale the multipliers
of the two parts stay equal, so the backward pass is one VJP-sized pass with secants in place of
derivatives; RevealCancel needs the Linear rule's signed maps W+ and W- in both directions (four
batch-sized passes per linear layer each way) and four divided differences per activation.
Goals: Rescale within 3x and RevealCancel within 6x of forward + VJP, measured in the same run.
Set NUMBA_NUM_THREADS to compare thread counts: the kernels are parallel over the batch only.
"""

from __future__ import annotations

import numba
import numpy as np

from _common import benchmark_cnn, machine_line, median_time
from refattr.methods._common import one_hot
from refattr.methods.deeplift import deeplift


def forward_vjp(net, x, g_out):
    trace = net.trace(x)
    return net.backward(g_out, trace)


def main():
    net = benchmark_cnn()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 1, 28, 28))
    reference = rng.normal(size=(32, 1, 28, 28)) * 0.1
    target = np.arange(32) % 10
    g_out = one_hot(target, 10)
    for rule in ("rescale", "reveal_cancel"):   # sanity: summation-to-delta before timing
        gap = deeplift(net, x, reference, target=target, rule=rule).completeness_gap
        assert np.max(np.abs(gap)) < 1e-10, (rule, gap)
    t_base = median_time(lambda: forward_vjp(net, x, g_out))
    t_rescale = median_time(lambda: deeplift(net, x, reference, target=target, rule="rescale"))
    t_reveal = median_time(lambda: deeplift(net, x, reference, target=target, rule="reveal_cancel"))
    print(f"# DeepLIFT vs forward + input VJP, benchmark CNN, batch 32, float64 ({machine_line()}, "
          f"{numba.get_num_threads()} numba threads)")
    print("| path | median ms | ratio | goal |")
    print("| --- | --- | --- | --- |")
    print(f"| forward + VJP | {1e3 * t_base:.2f} | 1.00 | |")
    print(f"| DeepLIFT Rescale | {1e3 * t_rescale:.2f} | {t_rescale / t_base:.2f} | <= 3 |")
    print(f"| DeepLIFT RevealCancel | {1e3 * t_reveal:.2f} | {t_reveal / t_base:.2f} | <= 6 |")


if __name__ == "__main__":
    main()
