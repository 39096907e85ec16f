"""The derivation notebooks: they run, their stored outputs are current, and they read like a textbook.

Each notebook ends with assertions against refattr, so running it is a test of the library; the
stored outputs (what a reader sees on opening the file) must be what the code prints now.
"""

import importlib.util
import json
import pathlib
import re
import shutil

import matplotlib.figure
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "derivations"
_spec = importlib.util.spec_from_file_location("derivations_run", HERE / "run.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

NOTEBOOKS = runner.NOTEBOOKS
by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def outputs(path):
    return [item for cell in cells(path) if cell["cell_type"] == "code" for item in cell["outputs"]]


def test_every_issue_notebook_is_there():
    names = {p.name for p in NOTEBOOKS}
    assert {"integrated_gradients.ipynb", "deeplift.ipynb", "axioms.ipynb"} <= names


@by_name
def test_runs_writes_nothing_and_matches_the_stored_outputs(path, tmp_path, monkeypatch):
    # Run from an unrelated folder: the notebook must resolve paths from its own folder, save no
    # figure, leave its file and folder as they were, and print what the file shows.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(a))
    before = path.read_bytes()
    listing = sorted(p.name for p in HERE.iterdir())

    namespace, fresh = runner.run_cells(path)

    assert saved == []
    assert path.read_bytes() == before
    assert sorted(p.name for p in HERE.iterdir()) == listing
    assert list(tmp_path.iterdir()) == []
    assert pathlib.Path.cwd() == tmp_path
    assert runner.compare(runner.stored_outputs(path), fresh, path.name) == []
    assert any(out.stdout or out.markdown or out.n_figures for out in fresh)


@by_name
def test_outputs_are_stored_from_one_clean_run(path):
    code_cells = [c for c in cells(path) if c["cell_type"] == "code"]
    # executed top to bottom in one kernel, each cell once
    assert [c["execution_count"] for c in code_cells] == list(range(1, len(code_cells) + 1))
    for item in outputs(path):
        assert item["output_type"] != "error"
        assert not (item["output_type"] == "stream" and item["name"] == "stderr"), "".join(item["text"])
    # nothing that changes from run to run: no timings, no kernel or Python version, no addresses
    assert all(c["metadata"] == {} for c in cells(path))
    assert json.loads(path.read_text(encoding="utf-8"))["metadata"] == runner.METADATA
    assert not re.search(r" at 0x[0-9a-f]+", path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, figures", [("integrated_gradients.ipynb", 1), ("deeplift.ipynb", 1)])
def test_figures_are_shown_inline(name, figures):
    pngs = [item for item in outputs(HERE / name) if "image/png" in item.get("data", {})]
    assert len(pngs) == figures
    for item in pngs:
        assert item["data"]["image/png"].startswith("iVBORw0KGgo")       # base64 of the PNG signature


def test_the_axioms_table_is_rendered():
    tables = ["".join(item["data"]["text/markdown"])        # a list of lines, or one string
              for item in outputs(HERE / "axioms.ipynb") if "text/markdown" in item.get("data", {})]
    assert len(tables) == 1
    table = tables[0]
    assert "| Property |" in table and "| --- |" in table
    # eight property rows, and the cells that contradict the original summary table say so
    assert len(re.findall(r"^\| (?!Property|---)", table, flags=re.M)) == 8
    assert "**No** (was Yes)" in table and "**Yes** (was blank)" in table


@by_name
def test_formulas_are_latex_not_ascii_blocks(path):
    markdown = ["".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"]
    for text in markdown:
        assert not re.search(r"^ {4}\S", text, flags=re.M), text      # an indented block renders as code
    assert any("$$" in text for text in markdown)


@by_name
def test_sources_are_what_the_builder_writes(path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    builder_path = HERE / f"build_{path.stem}_notebook.py"
    spec = importlib.util.spec_from_file_location(f"build_{path.stem}", builder_path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert [(c["cell_type"], "".join(c["source"])) for c in cells(path)] == builder.CELLS.cells


_INTERNAL = re.compile(r"\bSPEC\b|\b(?i:seed)'?s?\b|\.\./shared")


def _internal_references(texts):
    # "seed" as the name of a random-number argument (default_rng(seed), seed=0) is not a reference
    return [m.group(0) for text in texts for m in _INTERNAL.finditer(text)
            if not re.search(r"(rng|seed\s*=|--seed)", text[max(m.start() - 16, 0):m.end() + 2])]


@by_name
def test_sources_cite_papers_not_internal_documents(path):
    assert _internal_references("".join(c["source"]) for c in cells(path)) == []


def test_stored_outputs_cite_papers_not_internal_documents():
    texts = []
    for path in NOTEBOOKS:
        for item in outputs(path):
            texts.append("".join(item.get("text", "")))
            texts.extend("".join(v) for k, v in item.get("data", {}).items() if k.startswith("text/"))
    assert _internal_references(texts) == []


def test_same_text_ignores_last_digits_and_padding_only():
    assert runner.same_text("gap [ 1.5e-17 -0.5 ]", "gap [0. -0.5000000000001]")
    assert runner.same_text("slope -1.0213", "slope -1.02130000001")
    assert not runner.same_text("slope -1.02", "slope -1.03")
    assert not runner.same_text("rescale: 9 layers", "rescale: 8 layers")
    assert not runner.same_text("holds", "fails")


def test_compare_reports_stale_outputs():
    stored = runner.stored_outputs(HERE / "deeplift.ipynb")
    figure_cell = next(i for i, out in enumerate(stored) if out.n_figures)
    printing_cell = next(i for i, out in enumerate(stored) if out.stdout)
    fresh = [runner.CellOutput(out.stdout, list(out.markdown), out.n_figures) for out in stored]
    assert runner.compare(stored, fresh, "deeplift.ipynb") == []
    fresh[figure_cell].n_figures = 0                              # a figure no longer drawn
    fresh[printing_cell].stdout += "one more line\n"              # code that prints something new
    problems = runner.compare(stored, fresh, "deeplift.ipynb")
    assert len(problems) == 2
    assert f"code cell {figure_cell + 1}: 0 figure(s), 1 stored" in problems[0 if figure_cell < printing_cell else 1]


def test_store_executes_in_a_kernel_and_reproduces_the_stored_outputs(tmp_path):
    # The --store path: Jupyter's kernel, with the inline backend, gives what the file holds.
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    original = HERE / "deeplift.ipynb"
    copy = tmp_path / original.name
    shutil.copy(original, copy)
    runner.store(copy)
    assert runner.compare(runner.stored_outputs(original), runner.stored_outputs(copy), copy.name) == []
    assert [c["source"] for c in cells(copy)] == [c["source"] for c in cells(original)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [copy.name]


def test_the_command_line_runs_a_notebook(capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert runner.main(["--check", str(HERE / "integrated_gradients.ipynb")]) == 0
    assert "integrated_gradients.ipynb: the stored outputs are current" in capsys.readouterr().out
