"""Methods that split a batch into cache-sized passes (``Sequential.pass_size``) give the same
result as one pass over the whole batch.

Every example goes through the same arithmetic in any pass; only the rounding of BLAS blocking in
the dense layers may differ, so the comparison is at EXACT_RTOL (1e-12), normwise per example.
"""

import numpy as np
import pytest

from refattr import Conv2D, Dense, Flatten, ReLU, Sequential, Tanh, gradient, guided_backprop
from refattr.methods.deeplift import deeplift
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.testing import EXACT_RTOL


def small_cnn(activation):
    rng = np.random.default_rng(3)
    return Sequential([
        Conv2D(rng.normal(size=(4, 1, 3, 3)) / 3.0, rng.normal(size=4) * 0.1, padding=1),
        activation(),
        Conv2D(rng.normal(size=(6, 4, 3, 3)) / 6.0, rng.normal(size=6) * 0.1, stride=2, padding=1),
        activation(),
        Flatten(),
        Dense(rng.normal(size=(3, 6 * 5 * 5)) / 12.0, rng.normal(size=3) * 0.1),
    ], input_shape=(1, 10, 10))


def test_activation_size_counts_the_input_and_every_output():
    net = small_cnn(ReLU)
    # input 100, conv 4x10x10, relu 4x10x10, conv 6x5x5, relu 6x5x5, flatten 150, dense 3
    assert net.activation_size((1, 10, 10)) == 100 + 400 + 400 + 150 + 150 + 150 + 3
    assert net.pass_size((1, 10, 10), budget_bytes=8 * 1353 * 20 + 7) == 20
    assert net.pass_size((1, 10, 10), budget_bytes=1) == 8          # the minimum


@pytest.mark.parametrize("activation", [ReLU, Tanh])
def test_results_do_not_depend_on_the_pass_size(monkeypatch, activation):
    net = small_cnn(activation)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(21, 1, 10, 10))
    ref = rng.normal(size=(21, 1, 10, 10)) * 0.1
    refs = rng.normal(size=(3, 1, 10, 10)) * 0.1
    target = np.arange(21) % 3

    def run():
        return [gradient(net, x, target).values, guided_backprop(net, x, target).values,
                deeplift(net, x, ref, target).values, deeplift(net, x, target=target, baseline_samples=refs).values,
                integrated_gradients(net, x, ref, target, rule="gauss_legendre", n_steps=5).values]

    one_pass = run()
    original = Sequential.pass_size
    monkeypatch.setattr(Sequential, "pass_size",
                        lambda self, shape, budget_bytes=0, minimum=8: original(self, shape, 1, minimum))
    assert net.pass_size((1, 10, 10)) == 8    # 21 rows: passes of 8, 8 and 5
    for a, b in zip(run(), one_pass):
        scale = np.abs(b).reshape(21, -1).max(axis=1)
        assert np.all(np.abs(a - b).reshape(21, -1).max(axis=1) <= EXACT_RTOL * scale)
