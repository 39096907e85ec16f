"""Every registered method (refattr.methods.METHODS): the contract of docs/conventions.md, section 'Results'.

Adding a method to the registry brings it under these tests: float64 results of x's shape,
np.asarray support, batch invariance, determinism, and completeness_gap present exactly for the
reference-based methods.
"""

import numpy as np
import pytest

from refattr.methods import GRADIENT_FAMILY, METHODS
from refattr.testing import random_cnn, random_mlp

NETWORKS = {
    # smooth: integrated gradients' "auto" picks adaptive quadrature
    "tanh_mlp": lambda rng: (random_mlp(rng, sizes=(4, 5, 3), activation="tanh"), (4,)),
    # piecewise linear: "auto" picks the exact walk
    "relu_cnn": lambda rng: (random_cnn(rng, input_shape=(1, 5, 5), pool="avg"), (1, 5, 5)),
}


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name, network, rng):
    net, shape = NETWORKS[network](rng)
    method = METHODS[name]
    x = rng.normal(size=(3,) + shape)
    target = np.array([0, 2, 1])
    result = method(net, x.astype(np.float32), target=target)
    x32 = x.astype(np.float32).astype(np.float64)          # what the method saw, exactly
    assert result.method == name
    assert result.values.dtype == np.float64 and result.values.shape == x.shape
    np.testing.assert_array_equal(np.asarray(result), result.values)
    # Deterministic: the same call gives the same bits.
    np.testing.assert_array_equal(method(net, x32, target=target).values, result.values)
    # Batch invariance: each example alone gives its row of the batch result.
    for n in range(3):
        alone = method(net, x32[n:n + 1], target=int(target[n])).values[0]
        scale = max(np.max(np.abs(result.values[n])), 1e-300)
        assert np.max(np.abs(alone - result.values[n])) <= 1e-12 * scale
    if name in GRADIENT_FAMILY:
        assert result.completeness_gap is None
    else:
        assert result.completeness_gap.shape == (3,)
        assert result.error_estimate.shape == (3,)
