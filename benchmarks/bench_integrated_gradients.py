"""Speed of integrated gradients on the benchmark CNN, as ratios against Gauss-Legendre with 50 steps.

Network: 1x28x28 -> Conv2D(8, 3x3, pad 1) -> ReLU -> Conv2D(16, 3x3, stride 2, pad 1) -> ReLU
-> Flatten -> Dense(10); random weights (fixed seed), a batch of 32 random inputs in [0, 1),
baseline 0, target n % 10 for example n.

Run: ``python benchmarks/bench_integrated_gradients.py [--batch 32] [--quad-budget 300]``. Prints
the wall time of each rule, the ratios exact / GL-50 and quad / GL-50, the number of linear
pieces per example, and the cost of one piece of the exact walk in units of one gradient
evaluation of GL-50 (one example at one node). Adaptive quadrature on a ReLU network must bisect
down to every jump of the integrand (thousands per example here), so it runs under a time budget
and is reported as "> budget" when it does not finish; the same network with tanh in place of
ReLU gives quad's cost where it is the rule of choice. Not a test: nothing is asserted.

For timings that mean something on a shared machine, pin the thread pools, e.g.
``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1`` (numba's parallel kernels wait for their slowest
thread, and lose an order of magnitude when other processes hold the cores).
"""

from __future__ import annotations

import argparse
import signal
import time
import warnings

import numpy as np

from _common import benchmark_cnn
from refattr import ReLU, Tanh
from refattr.errors import RefattrWarning
from refattr.methods.integrated_gradients import integrated_gradients


class OverBudget(Exception):
    pass


def timed(fn, budget=None):
    """(seconds, result), or (None, None) when ``budget`` seconds pass first."""
    def stop(signum, frame):
        raise OverBudget
    if budget:
        old = signal.signal(signal.SIGALRM, stop)
        signal.alarm(int(budget))
    t0 = time.perf_counter()
    try:
        out = fn()
    except OverBudget:
        return None, None
    finally:
        if budget:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    return time.perf_counter() - t0, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quad-budget", type=float, default=300.0, help="seconds for quad on the ReLU CNN")
    args = parser.parse_args(argv)

    x = np.random.default_rng(1).uniform(0.0, 1.0, size=(args.batch, 1, 28, 28))
    target = np.arange(args.batch) % 10
    relu_net, tanh_net = benchmark_cnn(activation=ReLU), benchmark_cnn(activation=Tanh)
    integrated_gradients(relu_net, x[:2], target=target[:2], rule="gauss_legendre", n_steps=2)   # warm up numba

    print(f"batch {args.batch}; CNN 1x28x28 -> conv8 -> act -> conv16/2 -> act -> dense10")
    print("ReLU network")
    t_gl, gl = timed(lambda: integrated_gradients(relu_net, x, target=target, rule="gauss_legendre", n_steps=50))
    print(f"  gauss_legendre 50 : {t_gl:8.3f} s   max |completeness gap| {np.abs(gl.completeness_gap).max():.2e}")
    t_ex, ex = timed(lambda: integrated_gradients(relu_net, x, target=target, rule="exact"))
    pieces = ex.options["n_pieces"]
    print(f"  exact             : {t_ex:8.3f} s   max |completeness gap| {np.abs(ex.completeness_gap).max():.2e}"
          f"   exact / GL-50 = {t_ex / t_gl:.1f}")
    print(f"  linear pieces per example: mean {pieces.mean():.0f}, min {pieces.min()}, max {pieces.max()}")
    per_eval = t_gl / (50 * args.batch)
    per_piece = t_ex / pieces.sum()
    print(f"  per gradient evaluation (GL-50) {per_eval * 1e6:.1f} us, per linear piece (exact) "
          f"{per_piece * 1e6:.1f} us: piece / evaluation = {per_piece / per_eval:.2f}")
    print(f"  max |GL-50 - exact| {np.abs(gl.values - ex.values).max():.2e} "
          f"(max |exact| {np.abs(ex.values).max():.2e})")
    with warnings.catch_warnings():      # quad on a ReLU network on purpose: what it costs next to exact
        warnings.simplefilter("ignore", RefattrWarning)
        t_q, q = timed(lambda: integrated_gradients(relu_net, x, target=target, rule="quad", rtol=1e-8),
                       args.quad_budget)
    if t_q is None:
        print(f"  quad rtol 1e-8    : > {args.quad_budget:.0f} s (stopped)   quad / GL-50 > {args.quad_budget / t_gl:.0f}")
    else:
        print(f"  quad rtol 1e-8    : {t_q:8.3f} s   quad / GL-50 = {t_q / t_gl:.1f}   "
              f"{q.options['n_evaluations']} batch evaluations, converged {q.options['quad_converged']}, "
              f"max |quad - exact| {np.abs(q.values - ex.values).max():.2e}")

    print("tanh network (same weights)")
    t_gl2, gl2 = timed(lambda: integrated_gradients(tanh_net, x, target=target, rule="gauss_legendre", n_steps=50))
    print(f"  gauss_legendre 50 : {t_gl2:8.3f} s")
    t_q2, q2 = timed(lambda: integrated_gradients(tanh_net, x, target=target, rule="quad", rtol=1e-8))
    print(f"  quad rtol 1e-8    : {t_q2:8.3f} s   quad / GL-50 = {t_q2 / t_gl2:.1f}   "
          f"{q2.options['n_evaluations']} batch evaluations, converged {q2.options['quad_converged']}, "
          f"max |GL-50 - quad| {np.abs(gl2.values - q2.values).max():.2e}, "
          f"max error estimate {q2.error_estimate.max():.2e}")


if __name__ == "__main__":
    main()
