"""Floating-point errors and warnings are failures (pyproject sets filterwarnings = error)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "refattr", deadline=None, max_examples=30, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("refattr")


@pytest.fixture(autouse=True)
def _raise_on_floating_point_errors():
    # Underflow to zero is the correct float64 answer for values like exp(-1400); everything else
    # (overflow, division by zero, invalid operations) is a bug.
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)
