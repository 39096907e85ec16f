"""Shared pieces of the benchmark scripts: the benchmark CNN and a robust timer."""

from __future__ import annotations

import contextlib
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


def resnet(width: int = 16, classes: int = 10):
    """A ResNet-style CNN in plain torch (float64, eval mode), seeded by its width.

    3x32x32 -> conv3x3 (width) -> ReLU -> BasicBlock(width) -> BasicBlock(2 width, stride 2, 1x1
    downsample) -> global average pooling -> Linear(classes); BasicBlock = conv-ReLU-conv, + shortcut,
    ReLU. Every ReLU is its own ``nn.ReLU`` module, so Captum's hooks see each one (a functional
    ``F.relu`` is a plain gradient to Captum's DeepLift and GuidedBackprop).
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(c_in, c_out, 3, stride, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
            self.r1, self.r2 = nn.ReLU(), nn.ReLU()
            self.down = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

        def forward(self, x):
            skip = x if self.down is None else self.down(x)
            return self.r2(self.c2(self.r1(self.c1(x))) + skip)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.relu = nn.Conv2d(3, width, 3, 1, 1), nn.ReLU()
            self.b1, self.b2 = Block(width, width, 1), Block(width, 2 * width, 2)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2 * width, classes)

        def forward(self, x):
            h = self.b2(self.b1(self.relu(self.stem(x))))
            return self.fc(torch.flatten(self.pool(h), 1))

    torch.manual_seed(width)
    return Net().double().eval()


@contextlib.contextmanager
def threads(n: int):
    """torch, numba and the BLAS pool (threadpoolctl, where installed) all limited to ``n`` threads."""
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        threadpool_limits = None
    with threadpool_limits(limits=n) if threadpool_limits is not None else contextlib.nullcontext():
        yield


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
