"""Shared pieces of the benchmark scripts: the benchmark CNN and a robust timer."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from refattr import Conv2D, Dense, Flatten, ReLU, Sequential


def benchmark_cnn(seed: int = 0, activation=ReLU) -> Sequential:
    """1x28x28 -> Conv 8 3x3 pad 1 -> act -> Conv 16 3x3 stride 2 pad 1 -> act -> Flatten -> Dense 10."""
    rng = np.random.default_rng(seed)
    return Sequential([
        Conv2D(rng.normal(size=(8, 1, 3, 3)) / 3.0, rng.normal(size=8) * 0.1, padding=1),
        activation(),
        Conv2D(rng.normal(size=(16, 8, 3, 3)) / np.sqrt(72), rng.normal(size=16) * 0.1, stride=2, padding=1),
        activation(),
        Flatten(),
        Dense(rng.normal(size=(10, 16 * 14 * 14)) / np.sqrt(16 * 14 * 14), rng.normal(size=10) * 0.1),
    ], input_shape=(1, 28, 28))


def median_time(fn, repeats: int = 15, warmup: int = 2) -> float:
    """Median wall time of fn() in seconds, after warm-up calls (numba compiles on the first)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine_line() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, numpy {np.__version__}, {time.strftime('%Y-%m-%d')}")
