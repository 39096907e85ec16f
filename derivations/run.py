"""Run the derivation notebooks, check their stored outputs, or store fresh ones.

Usage::

    python derivations/run.py [NOTEBOOK ...]           run each notebook top to bottom, without Jupyter
    python derivations/run.py --check [NOTEBOOK ...]   run, then compare with the outputs stored in the file
    python derivations/run.py --store [NOTEBOOK ...]   execute in a Jupyter kernel and store the outputs

The default is every ``derivations/*.ipynb``. Each notebook ends with assertions against refattr, so
a run that returns is a passing run.

Without Jupyter, the code cells run in order with ``exec`` in one namespace, in the notebook's own
folder (where Jupyter runs it), with matplotlib's Agg backend. Like Jupyter's inline backend, the
figures a cell leaves open are its output and are closed after the cell; the namespace keeps them
(the integrated-gradients notebook's ``convergence_figure``). Nothing is written to disk, and the
notebook file is only read. ``--store`` (needs the ``notebooks`` extra: nbclient, ipykernel) is the
one command that writes, and only the notebook files it is given.
"""

import ast
import contextlib
import io
import json
import math
import os
import pathlib
import re
import sys
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "derivations").glob("*.ipynb"))
METADATA = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "pygments_lexer": "ipython3"}}


@dataclass
class CellOutput:
    """What one code cell shows: printed text, markdown displays, and how many figures."""

    stdout: str = ""
    markdown: list = field(default_factory=list)
    n_figures: int = 0


def run_cells(path) -> tuple[dict, list[CellOutput]]:
    """Execute every code cell of the notebook at ``path``; return the namespace and each cell's output.

    A cell's last expression is shown as Jupyter shows it: a value with ``_repr_markdown_`` becomes
    a markdown output (an expression ending in ``;`` is not shown).
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path).resolve()
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    namespace = {"__name__": "__main__"}
    outputs = []
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        # notebooks may change print options and rcParams; keep both local to the run
        with np.printoptions(), matplotlib.rc_context():
            for i, cell in enumerate(cells):
                if cell["cell_type"] == "code":
                    outputs.append(_run_cell("".join(cell["source"]), f"{path.name}[cell {i}]", namespace, plt))
    finally:
        os.chdir(cwd)
    return namespace, outputs


def _run_cell(source: str, name: str, namespace: dict, plt) -> CellOutput:
    tree = ast.parse(source, name)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    out = CellOutput()
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(tree, name, "exec"), namespace)
            value = None if last is None else eval(compile(last, name, "eval"), namespace)
        if hasattr(value, "_repr_markdown_"):
            out.markdown.append(value._repr_markdown_())
        out.n_figures = len(plt.get_fignums())
    finally:
        plt.close("all")
        out.stdout = buffer.getvalue()
    return out


def run_notebook(path) -> dict:
    """Execute every code cell of the notebook at ``path`` without Jupyter; return the namespace."""
    return run_cells(path)[0]


def stored_outputs(path) -> list[CellOutput]:
    """The outputs stored in the notebook at ``path``, one per code cell, in the form ``run_cells`` gives."""
    cells = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        out = CellOutput()
        for item in cell["outputs"]:
            if item["output_type"] == "stream" and item["name"] == "stdout":
                out.stdout += "".join(item["text"])
            elif item["output_type"] in ("display_data", "execute_result"):
                data = item["data"]
                if "text/markdown" in data:
                    out.markdown.append("".join(data["text/markdown"]))
                if "image/png" in data:
                    out.n_figures += 1
        found.append(out)
    return found


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf")


def same_text(stored: str, fresh: str, rtol: float = 1e-6, atol: float = 1e-12) -> bool:
    """Whether two printouts say the same thing: equal words, numbers equal to ``rtol``/``atol``.

    Whitespace is ignored (NumPy pads arrays by their widest entry). The tolerance absorbs the last
    printed digits, which differ between machines (JIT or not, BLAS); ``atol`` covers values at
    rounding level, such as a completeness gap of 1e-17 on one machine and 0 on another.
    """
    words = [re.sub(r"\s+", "", part) for part in _NUMBER.split(stored)]
    if words != [re.sub(r"\s+", "", part) for part in _NUMBER.split(fresh)]:
        return False
    return all(math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol) or a == b
               for a, b in zip(_NUMBER.findall(stored), _NUMBER.findall(fresh)))


def differences(path) -> list[str]:
    """Run the notebook without Jupyter and list where its outputs differ from the stored ones."""
    return compare(stored_outputs(path), run_cells(path)[1], pathlib.Path(path).name)


def compare(stored: list[CellOutput], fresh: list[CellOutput], name: str) -> list[str]:
    """Where two lists of cell outputs say different things (empty when they agree)."""
    problems = []
    for i, (s, f) in enumerate(zip(stored, fresh, strict=True)):
        where = f"{name}, code cell {i + 1}"
        if not same_text(s.stdout, f.stdout):
            problems.append(f"{where}: printed\n{f.stdout}\nbut the stored output is\n{s.stdout}")
        if len(s.markdown) != len(f.markdown) or not all(map(same_text, s.markdown, f.markdown)):
            problems.append(f"{where}: the markdown it shows differs from the stored one")
        if s.n_figures != f.n_figures:
            problems.append(f"{where}: {f.n_figures} figure(s), {s.n_figures} stored")
    return problems


def store(path) -> None:
    """Execute the notebook at ``path`` in a Jupyter kernel, in its folder, and save it with its outputs.

    Timings and the kernel's version details are left out, so a rerun changes nothing unless an
    output changed.
    """
    import nbclient
    import nbformat

    path = pathlib.Path(path).resolve()
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    backend = os.environ.pop("MPLBACKEND", None)     # the kernel's inline backend draws the figures
    try:
        client.execute()
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    for cell in notebook.cells:      # one stream output per run of prints, however the kernel flushed them
        merged = []
        for item in cell.get("outputs", []):
            if merged and item.output_type == "stream" == merged[-1].output_type and item.name == merged[-1].name:
                merged[-1].text += item.text
            else:
                merged.append(item)
        if cell.cell_type == "code":
            cell.outputs = merged
    notebook.metadata = nbformat.from_dict(METADATA)
    path.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    mode = argv[0] if argv and argv[0] in ("--check", "--store") else None
    notebooks = [pathlib.Path(p) for p in argv[1 if mode else 0:]] or NOTEBOOKS
    failed = False
    for notebook in notebooks:
        if mode == "--store":
            store(notebook)
            print(f"stored the outputs of {notebook.name}")
        elif mode == "--check":
            problems = differences(notebook)
            failed |= bool(problems)
            print("\n".join(problems) or f"{notebook.name}: the stored outputs are current")
        else:
            run_notebook(notebook)
            print(f"ran {notebook.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
