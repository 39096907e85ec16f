"""A layer refattr does not ship, registered for one test at a time: what a contributor's new layer
looks like to the consumers of the registry (serialisation, the random-network generator)."""

import numpy as np
import pytest

from refattr.layers import ElementwiseLayer
from refattr.layers import registry
from refattr.layers.base import readonly
from refattr.validation import as_float64


class Clamp(ElementwiseLayer):
    """y = min(max(x, lo), hi) * gain, a layer that refattr does not ship (test only)."""

    piecewise_linear = False      # no kink protocol is implemented here
    captum = "gradient"

    def __init__(self, bounds=(-1.0, 1.0), gain: tuple = (1.0,), label: str = "clamp", strict: bool = False):
        self.bounds = readonly(as_float64(bounds, "Clamp bounds", ndim=1))
        self.gain, self.label, self.strict = tuple(gain), label, strict

    def function(self, x):
        return np.clip(x, self.bounds[0], self.bounds[1]) * self.gain[0]

    @classmethod
    def random(cls, rng, input_shape):
        lo = -float(rng.uniform(0.5, 1.5))
        return cls(np.array([lo, -lo / 2]), gain=(float(rng.uniform(1, 2)),), label="drawn", strict=True)


@pytest.fixture
def with_clamp(monkeypatch):
    """The registry with Clamp added for one test (restored afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register(Clamp)
    return Clamp
