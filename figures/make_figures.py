"""Regenerate every figure in figures/: python figures/make_figures.py [--out FOLDER]

- ig_convergence.png: the error of every quadrature rule against exact integrated gradients as n
  grows, drawn by derivations/integrated_gradients.ipynb (its ``convergence_figure``, run here
  without Jupyter by derivations/run.py, which writes nothing itself).
- digits_attributions.png: every method on the first bundled digit (refattr.demo, one colour scale
  for all maps, and the 50-point Gauss-Legendre minus exact integrated gradients on its own scale).
- digits_ig_integrand.png: the integrated-gradients integrand along the straight path for that
  digit, with the exact rule's breakpoints as ticks on the axis (refattr.demo).

The bytes depend only on the code and the matplotlib version: the figures are drawn in
matplotlib's default style (a user's matplotlibrc is ignored) at a fixed size and dpi, and the PNGs
carry no date. tests/test_demo.py runs this script twice into temporary folders and compares the
bytes with each other and, under the matplotlib version recorded in the tracked PNGs, with them.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

#: File written by refattr.demo.run_demo -> its name in figures/.
FIGURES = {"attributions_0_digit0.png": "digits_attributions.png",
           "ig_integrand.png": "digits_ig_integrand.png"}


def _notebook_namespace(name: str) -> dict:
    """The namespace of derivations/NAME after derivations/run.py has run its code cells."""
    spec = importlib.util.spec_from_file_location("derivations_run", ROOT / "derivations" / "run.py")
    runner = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = runner          # run.py's dataclasses look their module up
    spec.loader.exec_module(runner)
    return runner.run_notebook(ROOT / "derivations" / name)


def main(argv=None) -> list[pathlib.Path]:
    parser = argparse.ArgumentParser(description="regenerate the figures in figures/")
    parser.add_argument("--out", type=pathlib.Path, default=HERE,
                        help="folder to write the figures into (default: figures/ next to this script)")
    out = parser.parse_args(argv).out

    import matplotlib.style

    from refattr.demo import run_demo
    from refattr.plotting import save_figure

    written = []
    with matplotlib.style.context("default"), tempfile.TemporaryDirectory() as tmp:
        namespace = _notebook_namespace("integrated_gradients.ipynb")
        written.append(save_figure(namespace["convergence_figure"], out / "ig_convergence.png", dpi=120))
        run_demo(tmp, progress=False, audit=False, n_figure_images=1, stream=io.StringIO())
        for source, name in FIGURES.items():
            written.append(pathlib.Path(shutil.copyfile(pathlib.Path(tmp) / source, out / name)))
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
