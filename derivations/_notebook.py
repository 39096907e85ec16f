"""What the notebook builders share: collect markdown and code cells, write them as .ipynb.

Each ``build_*_notebook.py`` script lists its cells with ``md(...)`` and ``code(...)`` and ends
with ``build(CELLS, name)``, which writes the notebook and stores its executed outputs; the
notebooks are generated, never hand-edited.
"""

from __future__ import annotations

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


class NotebookCells:
    """An ordered list of (kind, text) cells."""

    def __init__(self):
        self.cells: list[tuple[str, str]] = []

    def md(self, text: str) -> None:
        self.cells.append(("markdown", text.strip("\n")))

    def code(self, text: str) -> None:
        self.cells.append(("code", text.strip("\n")))

    def write(self, path, id_prefix: str, metadata: dict) -> pathlib.Path:
        """Write the cells as an nbformat-4.5 notebook (no outputs) and return the path."""
        cells = []
        for i, (kind, text) in enumerate(self.cells):
            cell = {"cell_type": kind, "id": f"{id_prefix}-{i:02d}", "metadata": {},
                    "source": text.splitlines(keepends=True)}
            if kind == "code":
                cell.update(execution_count=None, outputs=[])
            cells.append(cell)
        notebook = {
            "cells": cells,
            "metadata": metadata,
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = pathlib.Path(path)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")
        return path


def build(cells: NotebookCells, name: str) -> None:
    """Write ``derivations/<name>.ipynb`` and store its outputs (``--no-outputs``: only write the cells).

    Storing executes the notebook in a Jupyter kernel (the ``notebooks`` extra: nbclient, ipykernel).
    """
    from run import METADATA, store  # run.py sits next to this file

    target = cells.write(HERE / f"{name}.ipynb", name, METADATA)
    if "--no-outputs" not in sys.argv[1:]:
        store(target)
        print(f"stored the outputs of {target.name}")
