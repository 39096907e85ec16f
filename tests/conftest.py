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


# ------------------------------------------------------------------------------------------------
# The suite must leave the repository as it found it: tests write to temporary directories only.
# ------------------------------------------------------------------------------------------------
def _repository_state():
    """(git status lines, hash of the working tree's diff against HEAD), or None outside a checkout."""
    import hashlib
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                                capture_output=True, check=True).stdout
        diff = subprocess.run(["git", "diff", "--binary", "HEAD"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return status.decode(errors="replace").splitlines(), hashlib.sha256(diff).hexdigest()


def pytest_sessionstart(session):
    session.config._repository_state = _repository_state()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_repository_state", None)
    after = _repository_state()
    if before is None or after is None or after == before:
        return
    changed = sorted(set(after[0]) ^ set(before[0])) or ["(a file that was already modified changed again)"]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line("FAILED: the test session changed the repository (tests must write to tmp_path):",
                            red=True)
        for line in changed[:20]:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
