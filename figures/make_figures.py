"""Regenerate every figure in figures/: python figures/make_figures.py

- ig_convergence.png: written by derivations/integrated_gradients.ipynb (run here without Jupyter).
- digits_attributions.png, digits_ig_integrand.png: the bundled digits CNN, drawn by refattr.demo.
"""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    spec = importlib.util.spec_from_file_location("derivations_run", ROOT / "derivations" / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    runner.run_notebook(ROOT / "derivations" / "integrated_gradients.ipynb")

    from refattr.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        run_demo(tmp, progress=False, audit=False, n_figure_images=1)
        shutil.copy(pathlib.Path(tmp) / "attributions_0_digit0.png", HERE / "digits_attributions.png")
        shutil.copy(pathlib.Path(tmp) / "ig_integrand.png", HERE / "digits_ig_integrand.png")
    for name in sorted(p.name for p in HERE.glob("*.png")):
        print(f"figures/{name}")


if __name__ == "__main__":
    main()
