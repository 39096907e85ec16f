"""The plain reference walk and the fast exact-IG walk agree on random ReLU / max-pool networks.

``refattr.methods._walk_reference.walk_reference`` recomputes every piece from scratch, one
example at a time; ``integrated_gradients(rule="exact")`` walks many examples at once with
incremental updates. Both evaluate the same exact integral, so their values agree to rounding
(1e-12 relative to the largest attribution: a few hundred pieces, each adding length x gradient
with relative rounding ~1e-16) and their breakpoints are the same alphas: the same number per
example (a missed or spurious kink would change it), each equal to rounding (1e-12: the fast walk
moves deeper layers incrementally, the reference recomputes them, so a crossing's alpha can
differ in its last bits).

One difference is known and allowed: where a kink in one layer puts a unit of a layer above
exactly on its own kink at the same alpha (a ReLU turning on makes two zero cells of a max-pool
window tie), either walk may see the second kink a few ulps after the first (the fast walk moves the layers in
between incrementally, the reference recomputes them from their own roundings), as an extra
piece of length ~1e-15 (harmless for the values: its weight is its length). So breakpoints are
compared after merging those closer than 1e-12. Completeness is checked on the reference alone, independently of both:
sum(values) == t(x) - t(x').
"""

from __future__ import annotations

import numpy as np
import pytest

from refattr.layers import AvgPool2D, Conv2D, MaxPool2D, ReLU
from refattr.methods._walk_reference import walk_reference
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.testing.networks import random_cnn, random_mlp, random_network


def _networks():
    rng = np.random.default_rng(2024)
    yield "mlp", random_mlp(rng, sizes=(5, 8, 7, 3))
    yield "cnn-max", random_cnn(rng, input_shape=(2, 6, 6), pool="max")
    yield "cnn-avg", random_cnn(rng, input_shape=(1, 5, 5), pool="avg")
    for k in range(3):
        yield f"random-{k}", random_network(rng, input_shape=(2, 5, 5), n_layers=4,
                                            layer_types=[Conv2D, ReLU, MaxPool2D, AvgPool2D])


NETWORKS = list(_networks())


def _merged(alphas):
    """The breakpoints with runs closer than 1e-12 collapsed onto their first."""
    return alphas[np.r_[True, np.diff(alphas) > 1e-12]] if alphas.size else alphas


@pytest.mark.parametrize("seed, name, net", [(i, n, net) for i, (n, net) in enumerate(NETWORKS)],
                         ids=[n for n, _ in NETWORKS])
def test_reference_walk_equals_the_exact_walk(seed, name, net):
    rng = np.random.default_rng(seed)
    shape = net.input_shape
    x = rng.normal(size=(3, *shape)) * 2.0
    refs = rng.normal(size=(3, *shape)) * 0.5
    n_out = net.n_outputs(shape)
    targets = np.arange(3) % n_out
    fast = integrated_gradients(net, x, baseline=refs, target=targets, rule="exact")
    values, pieces, breaks = walk_reference(net, x, refs, targets)

    scale = np.abs(values).max()
    np.testing.assert_allclose(fast.values, values, rtol=0, atol=1e-12 * scale)
    assert pieces.min() > 1                       # the paths do cross kinks
    for got, want, n in zip(fast.options["breakpoints"], breaks, pieces):
        assert want.size == n - 1                 # every piece but the last ends at a breakpoint
        assert np.all(np.diff(want) > 0) and np.all((want > 0) & (want < 1))
        assert _merged(got).shape == _merged(want).shape
        np.testing.assert_allclose(_merged(got), _merged(want), rtol=0, atol=1e-12)
    # completeness of the reference, from two forward passes
    out = net.forward(x)
    out_ref = net.forward(refs)
    gap = values.reshape(3, -1).sum(axis=1) - (out[np.arange(3), targets] - out_ref[np.arange(3), targets])
    assert np.all(np.abs(gap) <= 1e-12 * (1 + np.abs(values).reshape(3, -1).sum(axis=1)))
