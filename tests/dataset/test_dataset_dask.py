"""refattr.dataset on a Dask LocalCluster (2 worker processes on 127.0.0.1): bitwise equal to the
in-process store, resumable, and complete when a worker dies mid-run."""

import importlib.util
import os
import pathlib
import signal
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from refattr.dataset import attribute_dataset  # noqa: E402

_spec = importlib.util.spec_from_file_location("_dataset_store_tests",
                                               pathlib.Path(__file__).with_name("test_dataset_store.py"))
_store_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_store_tests)
mlp, residual_graph, CASES = _store_tests.mlp, _store_tests.residual_graph, _store_tests.CASES


@pytest.fixture
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def same_store(a, b):
    return a.quantities == b.quantities and all(np.array_equal(a.array(q), b.array(q)) for q in a.quantities)


def test_distributed_equals_in_process_for_every_method(tmp_path, client):
    rng = np.random.default_rng(4)
    x, t = rng.normal(size=(13, 6)), np.arange(13) % 3
    for make_net in (mlp, residual_graph):
        for i, (method, options, _) in enumerate(CASES):
            args = dict(method=method, target=t, chunk_size=4, block=2, **options)
            local = attribute_dataset(make_net(), x, tmp_path / f"{make_net.__name__}{i}-here", **args)
            remote = attribute_dataset(make_net(), x, tmp_path / f"{make_net.__name__}{i}-dask", scheduler=client,
                                       **args)
            assert same_store(local, remote), (make_net.__name__, method, options)
            workers = {entry["worker"] for entry in remote.manifest["chunks"]}
            assert workers <= set(client.scheduler_info()["workers"])


def test_local_cluster_started_by_the_call_and_resumed_in_process(tmp_path):
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(10, 6)), np.arange(10) % 3
    args = dict(method="ig", target=t, rule="exact", chunk_size=2, block=1)
    here = attribute_dataset(mlp(), x, tmp_path / "here", **args)
    part = attribute_dataset(mlp(), x, tmp_path / "mixed", scheduler="local", n_workers=2, max_chunks=3, **args)
    assert [c["status"] for c in part.manifest["chunks"]] == ["done"] * 3 + ["pending"] * 2
    assert all(c["worker"].startswith("tcp://127.0.0.1:") for c in part.manifest["chunks"][:3])
    first = [dict(c) for c in part.manifest["chunks"][:3]]
    done = attribute_dataset(mlp(), x, tmp_path / "mixed", **args)        # the rest in this process
    assert done.manifest["chunks"][:3] == first
    assert same_store(done, here)


def test_a_worker_killed_mid_run_still_completes_with_the_same_values(tmp_path, client):
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(24, 6)), np.arange(24) % 3
    # about 0.1 s per chunk, so that chunks are still running on both workers when one dies
    args = dict(method="ig", target=t, rule="gauss_legendre", n_steps=300, chunk_size=1, block=1)
    result, kill = {}, {}

    def run():
        result["store"] = attribute_dataset(mlp(), x, tmp_path / "dask", scheduler=client, **args)

    runner = threading.Thread(target=run)
    runner.start()
    manifest = tmp_path / "dask" / "manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and b'"done"' not in (manifest.read_bytes() if manifest.exists() else b""):
        time.sleep(0.02)
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    kill["done_before"] = manifest.read_bytes().count(b'"done"')
    os.kill(pid, signal.SIGKILL)                                      # as kill -9 / the OOM killer
    runner.join(120)
    assert not runner.is_alive() and "store" in result
    assert kill["done_before"] < 24                                   # killed mid-run
    here = attribute_dataset(mlp(), x, tmp_path / "here", **args)
    assert result["store"].complete and same_store(result["store"], here)
