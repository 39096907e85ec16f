"""Dataset-scale attribution: examples per second in-process and on a Dask LocalCluster.

Run: ``python benchmarks/bench_dataset.py [--examples 256] [--quick]`` (not part of the test suite;
needs dask[distributed], and torch for the ResNet-style CNN, imported with refattr.interop.from_torch).

For the bundled digits CNN (exact integrated gradients) and the ResNet-style CNN of
``_common.resnet`` (width 16, 3x32x32; gauss_legendre IG with 16 steps), one store is written per
configuration into a temporary folder:

- in-process, numba and BLAS pinned to all cores (``threads=None``);
- ``scheduler="local"`` with 1 worker x 1 thread and 2 workers x 1 thread (the default policy:
  workers x threads <= cores);
- 2 workers x 2 threads each (oversubscribed on a 2-core machine): the policy's effect.

Each row reports examples per second of the whole call (cluster start and stop included, as a
user sees it) and of the chunks alone (the sum of the manifest's per-chunk seconds divided by the
workers), and checks that the store equals the in-process one bit for bit.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from _common import machine_line  # noqa: E402

from refattr.dataset import attribute_dataset  # noqa: E402
from refattr.models import load_digits_cnn  # noqa: E402


def models(n: int):
    net, images, labels = load_digits_cnn()
    rng = np.random.default_rng(0)
    x = np.clip(images[rng.integers(0, len(images), n)] + rng.normal(scale=0.05, size=(n, 1, 8, 8)), 0, 1)
    yield "digits CNN, IG exact", net, x, labels[rng.integers(0, len(labels), n)], {"rule": "exact"}
    try:
        from _common import resnet
        from refattr.interop import from_torch
    except ImportError:
        return
    cnn = from_torch(resnet(16), input_shape=(3, 32, 32))
    yield ("ResNet-style CNN w16, IG gauss_legendre 16", cnn, rng.normal(size=(n, 3, 32, 32)), rng.integers(0, 10, n),
           {"rule": "gauss_legendre", "n_steps": 16})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="16 examples, to check that the script runs")
    args = parser.parse_args(argv)
    n = 16 if args.quick else args.examples
    configs = [("in-process", dict(scheduler=None)),
               ("local 1 worker x 1 thread", dict(scheduler="local", n_workers=1, threads=1)),
               ("local 2 workers x 1 thread", dict(scheduler="local", n_workers=2, threads=1)),
               ("local 2 workers x 2 threads (oversubscribed)", dict(scheduler="local", n_workers=2, threads=2))]
    print(machine_line())
    print(f"| model | configuration | examples/s (call) | examples/s (chunks) | bitwise equal |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, net, x, t, options) in enumerate(models(n)):
            reference = None
            for j, (label, config) in enumerate(configs):
                path = pathlib.Path(folder) / f"store-{i}-{j}"
                start = time.perf_counter()
                store = attribute_dataset(net, x, path, method="ig", target=t, chunk_size=16, block=8, progress=False,
                                          **config, **options)
                elapsed = time.perf_counter() - start
                workers = max(1, config.get("n_workers", 1))
                busy = sum(c["seconds"] for c in store.manifest["chunks"]) / workers
                values = store.array()
                reference = values if reference is None else reference
                print(f"| {name} | {label} | {n / elapsed:.1f} | {n / busy:.1f} | "
                      f"{np.array_equal(values, reference)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
