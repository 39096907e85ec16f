"""Execute every derivation notebook top to bottom; each ends with assertions against refattr.

The cells run with plain ``exec`` in one namespace per notebook (no Jupyter needed), from the
repository root, with matplotlib's non-interactive Agg backend.
"""

import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "derivations").glob("*.ipynb"))


def run_notebook(path: pathlib.Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    # Notebooks may change print options; keep them from leaking into later tests.
    with np.printoptions():
        run_notebook(path)


def test_there_are_notebooks():
    assert NOTEBOOKS, "derivations/ holds no notebooks"
