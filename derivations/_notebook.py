"""What the notebook builders share: collect markdown and code cells, write them as .ipynb.

Each ``build_*_notebook.py`` script lists its cells with ``md(...)`` and ``code(...)`` and calls
``CELLS.write(...)``; the notebooks are generated, never hand-edited.
"""

from __future__ import annotations

import json
import pathlib


class NotebookCells:
    """An ordered list of (kind, text) cells."""

    def __init__(self):
        self.cells: list[tuple[str, str]] = []

    def md(self, text: str) -> None:
        self.cells.append(("markdown", text.strip("\n")))

    def code(self, text: str) -> None:
        self.cells.append(("code", text.strip("\n")))

    def write(self, path, id_prefix: str) -> pathlib.Path:
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
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = pathlib.Path(path)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
        return path


def execute_in_place(path) -> None:
    """Run a notebook with nbclient (optional; needs nbclient and ipykernel) and store its outputs."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": "."}}).execute()
    nbformat.write(notebook, path)
