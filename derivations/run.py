"""Run derivation notebooks top to bottom without Jupyter.

Usage: python derivations/run.py [NOTEBOOK ...]   (default: every derivations/*.ipynb)

Each notebook's code cells run in order with ``exec`` in one namespace, from the repository root,
with matplotlib's Agg backend; a notebook ends with assertions against refattr, so a run that
returns is a passing run. The tests (tests/derivations) and figures/make_figures.py use this.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "derivations").glob("*.ipynb"))


def run_notebook(path) -> dict:
    """Execute every code cell of the notebook at ``path``; return the namespace."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    path = pathlib.Path(path)
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with np.printoptions():      # notebooks may change print options; keep them local
            for i, cell in enumerate(cells):
                if cell["cell_type"] == "code":
                    exec(compile("".join(cell["source"]), f"{path.name}[cell {i}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


if __name__ == "__main__":
    for notebook in sys.argv[1:] or NOTEBOOKS:
        run_notebook(notebook)
        print(f"ran {pathlib.Path(notebook).name}")
