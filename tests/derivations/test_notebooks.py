"""Execute every derivation notebook top to bottom; each ends with assertions against refattr."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("derivations_run", ROOT / "derivations" / "run.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)


@pytest.mark.parametrize("path", runner.NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    runner.run_notebook(path)


def test_every_issue_notebook_is_there():
    names = {p.name for p in runner.NOTEBOOKS}
    assert {"integrated_gradients.ipynb", "deeplift.ipynb", "axioms.ipynb"} <= names
