"""refattr.dataset in-process: bitwise reproducibility, the store, resuming, refusals, peer grading."""

import json
import os

import numpy as np
import pytest

from refattr import Dense, Graph, ReLU, Sequential
from refattr.dataset import attribute_dataset, open_store
from refattr.errors import ArgumentError, RuleError
from refattr.layers import Add
from refattr.methods import (deconvnet, deeplift, gradient, guided_backprop, input_x_gradient,
                             integrated_gradients)


def mlp(seed=1):
    rng = np.random.default_rng(seed)
    return Sequential([Dense(rng.normal(size=(16, 6)), rng.normal(size=16)), ReLU(),
                       Dense(rng.normal(size=(12, 16)), rng.normal(size=12)), ReLU(),
                       Dense(rng.normal(size=(3, 12)), rng.normal(size=3))], input_shape=(6,))


def residual_graph(seed=2):
    rng = np.random.default_rng(seed)
    nodes = [("h", Dense(rng.normal(size=(8, 6)), rng.normal(size=8)), "x"), ("r", ReLU(), "h"),
             ("d", Dense(rng.normal(size=(6, 8)), rng.normal(size=6)), "r"), ("s", Add(), ("d", "x")),
             ("r2", ReLU(), "s"), ("y", Dense(rng.normal(size=(3, 6)), rng.normal(size=3)), "r2")]
    return Graph("x", nodes, input_shape=(6,))


#: (method, options, the direct call); the methods and rules the store must reproduce bit for bit
CASES = [("gradient", {}, lambda net, x, t: gradient(net, x, t)),
         ("ig", {"rule": "exact"}, lambda net, x, t: integrated_gradients(net, x, target=t, rule="exact")),
         ("integrated_gradients", {"rule": "gauss_legendre", "n_steps": 8},
          lambda net, x, t: integrated_gradients(net, x, target=t, rule="gauss_legendre", n_steps=8)),
         ("deeplift", {}, lambda net, x, t: deeplift(net, x, target=t)),
         ("deeplift", {"rule": "reveal_cancel"}, lambda net, x, t: deeplift(net, x, target=t, rule="reveal_cancel")),
         ("input_x_gradient", {}, lambda net, x, t: input_x_gradient(net, x, t)),
         ("guided_backprop", {}, lambda net, x, t: guided_backprop(net, x, t)),
         ("deconvnet", {}, lambda net, x, t: deconvnet(net, x, t))]


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(11, 6)), np.arange(11) % 3


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def quantities(store):
    return {q: store.array(q) for q in store.quantities}


@pytest.mark.parametrize("make_net", [mlp, residual_graph])
@pytest.mark.parametrize("method, options, direct", CASES)
def test_store_is_the_method_on_fixed_blocks_whatever_the_chunking(tmp_path, data, make_net, method, options, direct):
    net, (x, t) = make_net(), data
    stores = [quantities(attribute_dataset(net, x, tmp_path / f"c{c}", method=method, target=t, chunk_size=c, block=1,
                                           **options)) for c in (1, 3, 7)]
    # block=1: the method called on each example alone, the calls concatenated
    calls = [direct(net, x[i:i + 1], t[i:i + 1]) for i in range(len(x))]
    assert np.array_equal(stores[0]["values"], np.concatenate([c.values for c in calls]))
    if calls[0].completeness_gap is not None:
        assert np.array_equal(stores[0]["completeness_gap"], np.concatenate([c.completeness_gap for c in calls]))
    for other in stores[1:]:
        assert other.keys() == stores[0].keys()
        assert all(np.array_equal(other[q], stores[0][q]) for q in other)
    # a block holding every example is one call on the whole array
    whole = quantities(attribute_dataset(net, x, tmp_path / "whole", method=method, target=t, chunk_size=11, block=11,
                                         **options))
    assert np.array_equal(whole["values"], direct(net, x, t).values)
    # blocks of 1 and of 11 differ at most by rounding
    np.testing.assert_allclose(stores[0]["values"], whole["values"], rtol=1e-12, atol=1e-13)


def test_blocks_of_four_any_multiple_chunking_and_thread_count(tmp_path, data):
    net, (x, t) = mlp(), data
    runs = [quantities(attribute_dataset(net, x, tmp_path / f"{c}-{n}", method="ig", target=t, rule="exact",
                                         chunk_size=c, block=4, threads=n)) for c, n in ((4, 1), (8, 2), (12, 1))]
    calls = [integrated_gradients(net, x[i:i + 4], target=t[i:i + 4], rule="exact") for i in range(0, 11, 4)]
    assert np.array_equal(runs[0]["values"], np.concatenate([c.values for c in calls]))
    assert all(np.array_equal(r[q], runs[0][q]) for r in runs[1:] for q in r)


def test_inputs_from_npy_and_npz_files(tmp_path, data):
    net, (x, t) = mlp(), data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    np.savez(tmp_path / "plain.npz", images=x, other=t)
    np.savez_compressed(tmp_path / "packed.npz", images=x)
    reference = attribute_dataset(net, x, tmp_path / "a", method="gradient", target=t, chunk_size=4, block=2)
    for name, source, key in (("npy", tmp_path / "x.npy", None), ("npz", tmp_path / "plain.npz", "images"),
                              ("packed", tmp_path / "packed.npz", None)):
        store = attribute_dataset(net, source, tmp_path / name, method="gradient", target=tmp_path / "t.npy",
                                  chunk_size=4, block=2, input_key=key)
        assert np.array_equal(store.array(), reference.array())
    with pytest.raises(ArgumentError, match="holds 2 arrays.*images, other"):
        attribute_dataset(net, tmp_path / "plain.npz", tmp_path / "b", method="gradient", target=t)


class LazyArray:
    """An array read only by slices of examples, as a zarr or h5py array is: converting it whole
    fails, and every read is recorded."""

    def __init__(self, data):
        self._data, self.reads = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        assert isinstance(index, slice) and index.step is None, index
        start, stop, _ = index.indices(self.shape[0])
        self.reads.append((start, stop))
        return self._data[index].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read at once")


def test_a_lazy_array_is_read_one_chunk_at_a_time(tmp_path, data):
    net, (x, t) = mlp(), data
    lazy = LazyArray(x)
    store = attribute_dataset(net, lazy, tmp_path / "lazy", method="deeplift", target=t, chunk_size=4, block=2)
    reference = attribute_dataset(net, x, tmp_path / "eager", method="deeplift", target=t, chunk_size=4, block=2)
    assert np.array_equal(store.array(), reference.array())
    assert max(stop - start for start, stop in lazy.reads) <= 4        # never more than one chunk per read
    assert {(0, 4), (4, 8), (8, 11)} <= set(lazy.reads)


def test_manifest_records_identity_and_chunks(tmp_path, data):
    net, (x, t) = mlp(), data
    store = attribute_dataset(net, x, tmp_path / "s", method="deeplift", target=t, chunk_size=4, block=2)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["format"] == "refattr-dataset-attributions" and manifest["format_version"] == 1
    identity = manifest["identity"]
    assert identity["inputs"] == {"shape": [11, 6], "dtype": "<f8"} and identity["method"] == "deeplift"
    assert identity["chunk_size"] == 4 and identity["block"] == 2 and len(identity["model_sha256"]) == 64
    assert [(c["start"], c["stop"]) for c in manifest["chunks"]] == [(0, 4), (4, 8), (8, 11)]
    gap = store.array("completeness_gap")
    for entry in manifest["chunks"]:
        assert entry["status"] == "done" and entry["seconds"] >= 0 and entry["worker"].startswith("in-process")
        assert entry["max_abs_completeness_gap"] == np.max(np.abs(gap[entry["start"]:entry["stop"]]))
    assert not [f for f in os.listdir(tmp_path / "s" / "chunks") if f.startswith(".tmp")]


def test_resume_computes_only_the_missing_chunks(tmp_path, data):
    net, (x, t) = mlp(), data
    whole = attribute_dataset(net, x, tmp_path / "whole", method="ig", target=t, rule="exact", chunk_size=2, block=1)
    part = attribute_dataset(net, x, tmp_path / "part", method="ig", target=t, rule="exact", chunk_size=2, block=1,
                             max_chunks=2)
    assert [c["status"] for c in part.manifest["chunks"]] == ["done"] * 2 + ["pending"] * 4
    with pytest.raises(ArgumentError, match="4 of 6 chunks are not done"):
        part.array()
    first = [dict(c) for c in part.manifest["chunks"][:2]]
    stamps = [os.stat(part.file("values", k)).st_mtime_ns for k in range(2)]
    done = attribute_dataset(net, x, tmp_path / "part", method="ig", target=t, rule="exact", chunk_size=2, block=1)
    assert done.manifest["chunks"][:2] == first                       # not recomputed: same timings, same stamps
    assert [os.stat(done.file("values", k)).st_mtime_ns for k in range(2)] == stamps
    assert [r["chunks_computed"] for r in done.manifest["runs"]] == [2, 4]
    for q in whole.quantities:
        for k in range(6):
            assert read_bytes(whole.file(q, k)) == read_bytes(done.file(q, k))
    # a done chunk whose file was deleted is recomputed
    os.remove(done.file("values", 3))
    again = attribute_dataset(net, x, tmp_path / "part", method="ig", target=t, rule="exact", chunk_size=2, block=1)
    assert again.manifest["runs"][-1]["chunks_computed"] == 1
    assert np.array_equal(again.array(), whole.array())


def test_foreign_and_damaged_stores_are_refused(tmp_path, data):
    net, (x, t) = mlp(), data
    path = tmp_path / "s"
    args = dict(method="ig", target=t, rule="gauss_legendre", n_steps=8, chunk_size=4, block=2)
    attribute_dataset(net, x, path, **args)
    with pytest.raises(ArgumentError, match="another run.*model_sha256"):
        attribute_dataset(mlp(seed=9), x, path, **args)
    with pytest.raises(ArgumentError, match="another run.*options: stored .*\"n_steps\": 8.*now .*\"n_steps\": 9"):
        attribute_dataset(net, x, path, **{**args, "n_steps": 9})
    with pytest.raises(ArgumentError, match="another run.*chunk_size"):
        attribute_dataset(net, x, path, **{**args, "chunk_size": 8})
    with pytest.raises(ArgumentError, match="another run.*inputs"):
        attribute_dataset(net, x[:10], path, **{**args, "target": t[:10]})
    changed = x.copy()
    changed[5, 0] += 1.0
    with pytest.raises(ArgumentError, match=r"chunk 1 \(examples 4\.\.7\) was computed from other inputs"):
        attribute_dataset(net, changed, path, **args)
    # a truncated chunk file, a chunk file of another shape
    values = open_store(path).file("values", 1)
    content = read_bytes(values)
    with open(values, "wb") as f:
        f.write(content[:-8])
    with pytest.raises(ArgumentError, match="cannot be read.*truncated.*delete"):
        attribute_dataset(net, x, path, **args)
    np.save(values, np.zeros((3, 6)))
    with pytest.raises(ArgumentError, match=r"holds float64 \(3, 6\); the manifest expects float64 \(4, 6\)"):
        open_store(path).chunk("values", 1)
    # a manifest that is not JSON, or not ours
    manifest = path / "manifest.json"
    manifest.write_text("{\"format\": ")
    with pytest.raises(ArgumentError, match="not valid JSON"):
        attribute_dataset(net, x, path, **args)
    manifest.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArgumentError, match="format 'something-else', expected 'refattr-dataset-attributions'"):
        open_store(path)


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, data):
    net, (x, t) = mlp(), data
    with pytest.raises(ArgumentError, match="chunk_size: 6 is not a multiple of block=4"):
        attribute_dataset(net, x, tmp_path / "a", method="gradient", target=t, chunk_size=6, block=4)
    with pytest.raises(ArgumentError, match="method: unknown 'saliency'"):
        attribute_dataset(net, x, tmp_path / "a", method="saliency", target=t)
    with pytest.raises(ArgumentError, match="n_step: not an option of integrated_gradients"):
        attribute_dataset(net, x, tmp_path / "a", method="ig", target=t, n_step=3)
    with pytest.raises(RuleError, match="unknown integrated-gradients rule 'simpson'"):
        attribute_dataset(net, x, tmp_path / "a", method="ig", target=t, rule="simpson")
    assert not (tmp_path / "a").exists()


def test_peer_attributions_graded_per_example(tmp_path, data):
    net, (x, t) = mlp(), data
    reference = attribute_dataset(net, x, tmp_path / "r", method="deeplift", target=t, chunk_size=4, block=1).array()
    peer = reference.copy()
    peer[2] *= 2.0               # differs by the reference itself: relative difference exactly 1
    peer[7, 3] += 0.25           # one feature off by 0.25 (exact in binary)
    np.save(tmp_path / "peer.npy", peer)
    store = attribute_dataset(net, x, tmp_path / "p", method="deeplift", target=t, chunk_size=4, block=1,
                              peer_attributions=tmp_path / "peer.npy")
    assert np.array_equal(store.array(), reference)
    relative, largest = store.array("peer_relative_difference"), store.array("peer_max_abs_difference")
    expected_largest = np.zeros(11)
    expected_largest[2], expected_largest[7] = np.max(np.abs(reference[2])), 0.25
    assert np.array_equal(largest, expected_largest)
    expected_relative = np.zeros(11)
    expected_relative[2], expected_relative[7] = 1.0, 0.25 / np.max(np.abs(reference[7]))
    assert np.array_equal(relative, expected_relative)
