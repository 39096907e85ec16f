"""Integrated gradients on mixed networks (kinked and smooth layers): rule="piecewise" against rule="quad".

Networks (random weights, fixed seeds), baseline 0, target n % 10 for example n:

- MLP: 64 -> Dense 128 -> ReLU -> Dense 128 -> Tanh -> Dense 10 (``--width`` sets 128);
- CNN: 1xSxS -> Conv 4 3x3 pad 1 -> ReLU -> Conv 8 3x3 stride 2 pad 1 -> Sigmoid -> Flatten -> Dense 10
  (``--size`` sets S, 12 by default).

For each rule: wall time, gradient evaluations per example (quad: all of its evaluations over the
batch, divided by N; piecewise: gradients of the rules plus the probes that located the kinks, each
a forward pass with its directional derivative), the reported error estimate and the true error
max_i |phi_i - exact_i| per example. The exact values come from an independent integrator written
here (no code shared with either rule): the activation pattern (ReLU signs) is sampled on a grid of
``--grid`` intervals, every change is located by bisection to the last bit of alpha, and every piece
is integrated by Gauss-Legendre with 40 and 50 nodes (their difference is printed: the reference's
own accuracy).

Run: ``python benchmarks/bench_mixed_ig.py [--batch 4] [--size 12] [--width 128] [--grid 2000]``.
Not a test: nothing is asserted. Pin the thread pools for timings (``OPENBLAS_NUM_THREADS=1
NUMBA_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine_line
from refattr import Conv2D, Dense, Flatten, ReLU, Sequential, Sigmoid, Tanh
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.quadrature import gauss_legendre


def mixed_mlp(width: int, seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential([
        Dense(rng.normal(size=(width, 64)) / 8.0, rng.normal(size=width) * 0.3), ReLU(),
        Dense(rng.normal(size=(width, width)) / np.sqrt(width), rng.normal(size=width) * 0.3), Tanh(),
        Dense(rng.normal(size=(10, width)) / np.sqrt(width), rng.normal(size=10) * 0.1),
    ], input_shape=(64,))


def mixed_cnn(size: int, seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    half = (size + 1) // 2
    return Sequential([
        Conv2D(rng.normal(size=(4, 1, 3, 3)) / 3.0, rng.normal(size=4) * 0.1, padding=1), ReLU(),
        Conv2D(rng.normal(size=(8, 4, 3, 3)) / 6.0, rng.normal(size=8) * 0.1, stride=2, padding=1), Sigmoid(),
        Flatten(),
        Dense(rng.normal(size=(10, 8 * half * half)) / np.sqrt(8 * half * half), rng.normal(size=10) * 0.1),
    ], input_shape=(1, size, size))


def _pattern(net, points):
    trace = net.trace(points)
    parts = [(trace.activations[i] > 0).reshape(len(points), -1)
             for i, layer in enumerate(net.layers) if isinstance(layer, ReLU)]
    return np.concatenate(parts, axis=1)


def _integrand(net, x, target, alphas):
    points = alphas.reshape((-1,) + (1,) * x.ndim) * x[None]
    trace = net.trace(points)
    g = np.zeros_like(trace.output)
    g[:, target] = 1.0
    return net.backward(g, trace) * x[None]


def reference(net, x, target, n_grid):
    """Exact IG of one example (baseline 0): (values, |GL40 - GL50|, number of pieces)."""
    def at(a):
        return _pattern(net, np.atleast_1d(a).reshape((-1,) + (1,) * x.ndim) * x[None])

    grid = np.linspace(0.0, 1.0, n_grid + 1)
    pats = np.concatenate([at(grid[s:s + 256]) for s in range(0, grid.size, 256)])
    edges = [0.0]
    for k in np.flatnonzero((pats[1:] != pats[:-1]).any(axis=1)):
        lo, p_lo, hi_end, p_end = grid[k], pats[k], grid[k + 1], pats[k + 1]
        while not np.array_equal(p_lo, p_end):
            lo_b, hi_b = lo, hi_end
            while lo_b < 0.5 * (lo_b + hi_b) < hi_b:
                mid = 0.5 * (lo_b + hi_b)
                lo_b, hi_b = (mid, hi_b) if np.array_equal(at(mid)[0], p_lo) else (lo_b, mid)
            edges.append(0.5 * (lo_b + hi_b))
            lo, p_lo = hi_b, at(hi_b)[0]
    edges.append(1.0)
    totals = []
    for n in (40, 50):
        nodes, weights = gauss_legendre(n)
        a, b = np.array(edges[:-1]), np.array(edges[1:])
        alphas = (a[:, None] + (b - a)[:, None] * nodes[None]).ravel()
        v = np.concatenate([_integrand(net, x, target, alphas[s:s + 512]) for s in range(0, alphas.size, 512)])
        w = ((b - a)[:, None] * weights[None]).ravel()
        totals.append(np.tensordot(w, v, 1))
    return totals[1], np.abs(totals[0] - totals[1]).max(), len(edges) - 1


def run(name, net, x, n_grid):
    n = x.shape[0]
    targets = np.arange(n) % 10
    refs = [reference(net, x[i], targets[i], n_grid) for i in range(n)]
    print(f"\n{name}: {n} examples; pieces per example (reference) {[r[2] for r in refs]}; "
          f"reference GL40 vs GL50 at most {max(r[1] for r in refs):.1e}")
    print(f"{'rule':>10} {'time s':>8} {'evals/example':>14} {'max estimate':>13} {'max true error':>15} "
          f"{'true > estimate':>16}")
    for rule in ("quad", "piecewise"):
        start = time.perf_counter()
        result = integrated_gradients(net, x, target=targets, rule=rule)
        seconds = time.perf_counter() - start
        errors = np.array([np.abs(result.values[i] - refs[i][0]).max() for i in range(n)])
        evals = result.options["n_evaluations"]
        per_example = evals / n if np.ndim(evals) == 0 else float(np.mean(evals))
        under = int(np.sum(errors > result.error_estimate + 1e-13 * np.abs(result.values).max()))
        print(f"{rule:>10} {seconds:8.2f} {per_example:14.0f} {result.error_estimate.max():13.1e} "
              f"{errors.max():15.1e} {under:>13d}/{n}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--grid", type=int, default=2000)
    args = parser.parse_args()
    print(machine_line())
    rng = np.random.default_rng(1)
    # warm-up (numba compiles on the first call)
    integrated_gradients(mixed_mlp(8), rng.normal(size=(1, 64)), target=0, rule="piecewise")
    run(f"ReLU + tanh MLP (width {args.width})", mixed_mlp(args.width), rng.normal(size=(args.batch, 64)), args.grid)
    run(f"ReLU + sigmoid CNN (1x{args.size}x{args.size})", mixed_cnn(args.size),
        rng.uniform(size=(args.batch, 1, args.size, args.size)), args.grid)


if __name__ == "__main__":
    main()
