"""Attributions for a whole dataset, chunk by chunk, in-process or on Dask, into a resumable store."""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import numbers
import os
import time
from collections import Counter
from typing import Any

import numpy as np

from .. import __version__, progress as _progress
from ..errors import ArgumentError, ShapeError
from ..graph import Graph
from ..methods import GRADIENT_FAMILY, METHODS
from ..network import Sequential
from ..network_spec import network_to_spec
from ..validation import DEFAULT_BASELINE
from .schedulers import (available_cores, describe_scheduler, drive, host_of, local_cluster_size, pinned_threads,
                         positive_int)
from .sources import open_array
from .store import StoredAttributions, array_sha256, create_or_resume

__all__ = ["attribute_dataset", "compute_chunk", "pinned_threads", "available_cores", "local_cluster_size",
           "METHOD_ALIASES"]

#: Short names accepted for ``method`` (the full names are the keys of refattr.methods.METHODS).
METHOD_ALIASES = {"ig": "integrated_gradients"}

#: The arguments attribute_dataset sets itself; not accepted among ``method_options``.
_OWN = ("net", "x", "target", "baseline", "baseline_samples", "progress")


def attribute_dataset(model: Any, inputs: Any, store: Any, *, method: str, target: Any = None,
                      baseline: Any = DEFAULT_BASELINE, baseline_samples: Any = None, chunk_size: int = 256,
                      block: int = 16, scheduler: Any = None, n_workers: int | None = None,
                      threads: int | None = None, peer_attributions: Any = None, peer: str | None = None,
                      peer_options: dict[str, Any] | None = None, input_key: str | None = None,
                      max_chunks: int | None = None, progress: bool | None = None,
                      **method_options: Any) -> StoredAttributions:
    """Attribute every example of a dataset with one method and keep the results in a store folder.

    The examples are cut into chunks of ``chunk_size``; each chunk is computed (in this process, or
    as one Dask task) and written to ``store`` as one ``.npy`` file per quantity, then marked done
    in the store's ``manifest.json``. Calling again with the same arguments skips the chunks already
    done and computes the rest, so a run stopped at any point (Ctrl-C, a killed worker or client,
    ``max_chunks``) resumes where it stopped.

    Parameters
    ----------
    model : Sequential, Graph, torch.nn.Module, onnx.ModelProto or str / path of an ``.onnx`` file
        A torch module is imported with :func:`refattr.interop.from_torch`, an ONNX model with
        :func:`refattr.interop.from_onnx`, each with one example's shape from ``inputs``.
        Networks of one input only.
    inputs : array (NumPy or np.memmap), or str / path of a ``.npy`` or ``.npz`` file
        (N, *example_shape), real numbers. A ``.npy`` file is memory-mapped (read chunk by chunk);
        so is an uncompressed ``.npz`` member (``input_key`` names it; optional when the file
        holds one array); a compressed member is read into memory.
    store : str or path
        The output folder (created if needed). A folder holding a store of another run (another
        model, inputs, method or option) is refused, naming what differs.
    method : str
        A key of :data:`refattr.methods.METHODS` ("gradient", "input_x_gradient",
        "guided_backprop", "deconvnet", "integrated_gradients" or its alias "ig", "deeplift").
    target : int, int array of shape (N,), str / path of a ``.npy`` of them, or None
    baseline, baseline_samples
        As for the method. An array of the inputs' shape (resp. (N, K, *example_shape)) is one
        baseline (set) per example and is cut into chunks with the inputs.
    chunk_size : int
        Examples per chunk (one task, one file per quantity); a multiple of ``block``.
    block : int
        Examples per call of the method. Results are bitwise reproducible because the method is
        always called on the same blocks, examples [k * block, (k + 1) * block), whatever
        ``chunk_size``, the scheduler or the number of workers (see Notes).
    scheduler : None, "local", "tcp://host:port" or a dask.distributed.Client
        None: in this process, without importing Dask. "local": a
        ``dask.distributed.LocalCluster`` on 127.0.0.1, started for this call and closed at its
        end, of ``n_workers`` processes with one task slot each (default: the available cores
        divided by ``threads``, so that workers x threads <= cores). An address: a running
        scheduler (a client is connected for the call). A Client: used as it is, left open.
    n_workers : int, optional
        With "local": the number of worker processes (lower it where a worker's memory, about
        the model plus a chunk's activations for ``block`` examples, is scarce).
    threads : int, optional
        numba and BLAS (through threadpoolctl, when installed) threads of one task, pinned while
        it runs and restored afterwards. Default: all available cores in-process; 1 on a
        "local" cluster; on another scheduler, each host's cores divided by the task slots of
        the workers on that host.
    peer_attributions : array or str / path of a ``.npy`` file, optional
        Another library's attributions of the same examples (the inputs' shape). Per example the
        store then also holds ``peer_relative_difference`` (max_i |peer_i - ref_i| / max_i |ref_i|,
        as :func:`refattr.interop.compare.relative_difference`) and ``peer_max_abs_difference``.
    peer : "captum", optional
        Also run Captum's attribution of the same method (Saliency with ``abs=False``,
        InputXGradient, GuidedBackprop, Deconvolution, IntegratedGradients, DeepLift, or
        DeepLiftShap with ``baseline_samples``) on every example and grade it as
        :func:`refattr.interop.compare_captum` does. The store then also holds, per example,
        ``peer_values`` (Captum's attributions), ``peer_relative_difference``,
        ``peer_max_abs_difference``, ``peer_verdict`` (an index into the manifest's
        ``identity["peer"]["verdicts"]``: agree, convention, approximation, peer_bug, unexplained)
        and the largest part of the difference of each kind, ``peer_convention``,
        ``peer_approximation`` and ``peer_bug`` (relative sizes, 0 where there is none). Captum
        runs on one example at a time with one torch thread (see
        :class:`refattr.dataset.peer.CaptumPeer`). The reference must be what Captum approximates:
        integrated gradients with rule "auto" (or "exact" / "quad"), DeepLIFT's Rescale rule.
        Not with ``peer_attributions``.
    peer_options : dict, optional
        With ``peer="captum"``: ``rtol`` (rounding tolerance of the verdicts, default 1e-12); for
        integrated gradients Captum's ``method`` (default "gausslegendre") and ``n_steps``
        (default 50).
    input_key : str, optional
        The array's name inside an ``.npz`` file.
    max_chunks : int, optional
        Compute at most this many chunks in this call (the rest stay pending for a later call).
    progress : bool or None
        A progress line on standard error, one tick per finished chunk (:mod:`refattr.progress`).
    **method_options
        Passed to the method (``rule=``, ``n_steps=``, ``rtol=``, ``maxpool_rule=``, ...).

    Returns
    -------
    StoredAttributions
        :func:`refattr.dataset.open_store` of the folder: ``.array("values")``, ``.chunk(q, k)``,
        ``.manifest``, ``.complete``.

    Notes
    -----
    **What is guaranteed.** The stored values, completeness gaps and error estimates are bitwise
    equal to calling the method on each block of ``block`` examples in this process and
    concatenating, for any ``chunk_size`` (a multiple of ``block``), any scheduler and any
    number of workers, given the same versions of refattr, NumPy and its BLAS on every machine.
    They are *not* always bitwise equal to one call on the whole array: refattr's methods are not
    batch invariant in the last bit (a matrix product of one row takes another BLAS kernel than
    one of many rows; the exact integrated-gradients walk rounds differently for examples walked
    together), and differ from it by rounding only (a few 1e-16 relative). ``block`` is therefore
    part of the store's identity. refattr's own kernels split work over independent rows only and
    OpenBLAS does not split a dot product across threads, so the thread count does not change
    the bits (tested on 1 and 2 threads).

    The model is sent to each worker once (``Client.scatter``); a chunk's inputs travel with its
    task and its results come back to this process, which alone writes the store, so workers need
    no shared file system. A worker that dies mid-chunk has its task rerun elsewhere by Dask.

    Raises
    ------
    ArgumentError
        Bad arguments, a store of another run, a damaged store, inputs that differ from those a
        done chunk was computed from.
    """
    with _progress.enabled(progress):
        plan = _plan(model, inputs, store, method, target, baseline, baseline_samples, chunk_size, block,
                     peer_attributions, input_key, method_options, peer, peer_options)
        out = create_or_resume(os.fspath(store), plan.identity, plan.chunks)
        todo = _pending(out, plan)
        if max_chunks is not None:
            todo = todo[:positive_int(max_chunks, "max_chunks")]
        started = _now()
        done_before = sum(b - a for k, (a, b) in enumerate(plan.chunks) if out.manifest["chunks"][k]["status"] == "done")
        with _progress.task(f"dataset: {plan.method.replace('_', ' ')}", total=plan.n, unit="examples") as bar:
            bar.set(done=done_before)
            for k, arrays, entry in drive(scheduler, n_workers, threads, plan, todo, compute_chunk):
                out.write_chunk(k, arrays, entry)
                bar.add(done=plan.chunks[k][1] - plan.chunks[k][0])
        out.manifest.setdefault("runs", []).append(
            {"started_at": started, "finished_at": _now(), "scheduler": describe_scheduler(scheduler),
             "chunks_computed": len(todo), "refattr_version": __version__})
        out.save_manifest()
        return out


# ------------------------------------------------------------------------------------------------
# planning
# ------------------------------------------------------------------------------------------------
class _Plan:
    """Everything a run needs, checked: the network, the data sources and the store's identity."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    def chunk_data(self, k: int) -> dict[str, Any]:
        """Chunk ``k``'s slices of everything cut along the examples, and their hash."""
        a, b = self.chunks[k]
        data = {"x": np.asarray(self.x[a:b]),
                "target": self.target[a:b] if isinstance(self.target, np.ndarray) else self.target,
                "baseline": self.baseline[a:b] if self.baseline_per_example else self.baseline,
                "baseline_samples": (self.baseline_samples[a:b] if self.samples_per_example
                                     else self.baseline_samples),
                "peer": None if self.peer is None else np.asarray(self.peer[a:b])}
        cut = [data["x"], data["target"] if isinstance(self.target, np.ndarray) else None,
               data["baseline"] if self.baseline_per_example else None,
               data["baseline_samples"] if self.samples_per_example else None, data["peer"]]
        data["sha256"] = array_sha256(*cut)
        data["cut"] = {"baseline": self.baseline_per_example, "baseline_samples": self.samples_per_example}
        return data


def _plan(model, inputs, store, method, target, baseline, baseline_samples, chunk_size, block, peer,
          input_key, method_options, peer_name=None, peer_options=None) -> _Plan:
    x = open_array(inputs, "inputs", input_key, lazy=True)
    if len(x.shape) < 2 or x.shape[0] < 1:
        raise ShapeError(f"inputs: expected (N, *example_shape) with N >= 1, got shape {tuple(x.shape)}")
    n = x.shape[0]
    net = _network(model, x.shape[1:])
    name = METHOD_ALIASES.get(method, method)
    if name not in METHODS:
        raise ArgumentError(f"method: unknown {method!r}; expected one of {', '.join(sorted(METHODS))} (or 'ig')")
    function = METHODS[name]
    accepted = set(inspect.signature(function).parameters) - set(_OWN)
    unknown = sorted(set(method_options) - accepted)
    if unknown:
        raise ArgumentError(f"{', '.join(unknown)}: not an option of {name}; it accepts "
                            f"{', '.join(sorted(accepted)) or 'no options'}")
    if name in GRADIENT_FAMILY and (baseline is not DEFAULT_BASELINE or baseline_samples is not None):
        raise ArgumentError(f"baseline: {name} takes no baseline; drop baseline= and baseline_samples=")
    chunk_size, block = positive_int(chunk_size, "chunk_size"), positive_int(block, "block")
    if chunk_size % block:
        raise ArgumentError(f"chunk_size: {chunk_size} is not a multiple of block={block}; the method is called on "
                            f"fixed blocks of {block} examples so that results do not depend on the chunking: use "
                            f"chunk_size={max(block, chunk_size // block * block)} or change block")
    target = _targets(target, n)
    baseline_arr, baseline_per_example, baseline_id = _reference(baseline, x, 0, "baseline")
    samples_arr, samples_per_example, samples_id = _reference(baseline_samples, x, 1, "baseline_samples")
    peer = None if peer is None else open_array(peer, "peer_attributions")
    if peer is not None and peer.shape != tuple(x.shape):
        raise ShapeError(f"peer_attributions: shape {peer.shape}, expected the inputs' shape {tuple(x.shape)}")
    captum = _captum_peer(model, net, name, method_options, samples_arr is not None, peer, peer_name, peer_options)
    chunks = [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
    plan = _Plan(x=x, n=n, net=net, method=name, function=function, options=dict(method_options), target=target,
                 baseline=baseline_arr, baseline_per_example=baseline_per_example, baseline_samples=samples_arr,
                 samples_per_example=samples_per_example, peer=peer, captum=captum, block=block, chunks=chunks)
    # one example through the method: checks the options before anything is stored, and says
    # which quantities the method reports (None ones are not stored)
    probe, _ = compute_chunk(net, name, _first(plan), method_options, block=1, threads=None, worker="",
                             peer=captum)
    quantities = [q for q in ("values", "completeness_gap", "error_estimate", "peer_values",
                              "peer_relative_difference", "peer_max_abs_difference", "peer_verdict",
                              "peer_convention", "peer_approximation", "peer_bug") if q in probe]
    plan.identity = {
        "model_sha256": model_sha256(net), "model_type": type(net).__name__,
        "inputs": {"shape": list(x.shape), "dtype": np.dtype(x.dtype).str},
        "method": name, "options": _jsonable(method_options), "target": _describe_target(target),
        "baseline": baseline_id, "baseline_samples": samples_id,
        "peer_attributions": None if peer is None else {"shape": list(peer.shape), "dtype": peer.dtype.str},
        **({} if captum is None else {"peer": captum.identity()}),
        "chunk_size": chunk_size, "block": block, "quantities": quantities, "refattr_version": __version__}
    return plan


def _captum_peer(model, net, method, options, samples, attributions, peer, peer_options):
    """The CaptumPeer of ``peer="captum"``, or None."""
    if peer is None:
        if peer_options is not None:
            raise ArgumentError("peer_options: given without peer=; pass peer='captum' or drop peer_options")
        return None
    from .peer import PEERS, captum_peer

    if peer not in PEERS:
        raise ArgumentError(f"peer: unknown {peer!r}; expected one of {', '.join(PEERS)} (another library's stored "
                            f"attributions: peer_attributions=)")
    if attributions is not None:
        raise ArgumentError("peer: given with peer_attributions; a store grades one peer, pass one of the two")
    return captum_peer(model, net, method, options, samples, peer_options)


def _first(plan: _Plan) -> dict[str, Any]:
    data = dict(plan.chunk_data(0))
    for key in ("x", "peer"):
        data[key] = None if data[key] is None else data[key][:1]
    for key, per_example in (("target", isinstance(plan.target, np.ndarray)), ("baseline", plan.baseline_per_example),
                             ("baseline_samples", plan.samples_per_example)):
        if per_example:
            data[key] = data[key][:1]
    return data


def _pending(store: StoredAttributions, plan: _Plan) -> list[int]:
    """Chunks to compute; done chunks are checked against the inputs first (a mismatch is refused)."""
    todo = []
    for k, entry in enumerate(store.manifest["chunks"]):
        if not store.has_chunk(k):
            todo.append(k)
            continue
        sha = plan.chunk_data(k)["sha256"]
        if entry.get("input_sha256") != sha:
            raise ArgumentError(f"store {store.path!r}: chunk {k} (examples {entry['start']}..{entry['stop'] - 1}) was "
                                f"computed from other inputs, targets, baselines or peer attributions (stored sha256 "
                                f"{entry.get('input_sha256')}, now {sha}); name a new store folder")
    return todo


def _network(model: Any, example_shape: tuple[int, ...]):
    if isinstance(model, (Sequential, Graph)):
        net = model
    elif isinstance(model, (str, os.PathLike)) or type(model).__name__ == "ModelProto":
        if isinstance(model, (str, os.PathLike)) and not os.fspath(model).endswith(".onnx"):
            raise ArgumentError(f"model: {os.fspath(model)!r} is not an .onnx file; pass a refattr network, a torch "
                                f"module or an .onnx path (torch files: refattr.interop.cli.load_model)")
        from ..interop import from_onnx
        net = from_onnx(model, input_shape=example_shape)
    elif any(c.__module__.startswith("torch.") and c.__name__ == "Module" for c in type(model).__mro__):
        from ..interop import from_torch
        net = from_torch(model, input_shape=example_shape)
    else:
        raise ArgumentError(f"model: expected a refattr Sequential or Graph, a torch.nn.Module, an ONNX model or an "
                            f".onnx path, got {type(model).__name__}")
    if isinstance(net, Graph) and len(net.inputs) != 1:
        raise ArgumentError(f"model: a network of {len(net.inputs)} inputs; attribute_dataset handles networks of "
                            f"one input")
    return net


def model_sha256(net) -> str:
    """SHA-256 of the network's serialised form (refattr.network_spec): its JSON, then every array."""
    arrays: dict[str, np.ndarray] = {}
    spec = network_to_spec(net, arrays)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(array_sha256(np.asarray(arrays[key])).encode())
    return digest.hexdigest()


def _targets(target: Any, n: int):
    if target is None or (isinstance(target, numbers.Integral) and not isinstance(target, bool)):
        return None if target is None else int(target)
    array = open_array(target, "target")
    if array.dtype.kind not in "iu" or array.shape != (n,):
        raise ArgumentError(f"target: expected an int or {n} integers (one per example), got dtype {array.dtype} "
                            f"shape {array.shape}")
    return array


def _reference(value: Any, x: np.ndarray, extra: int, name: str):
    """(array or scalar, cut along the examples?, description for the identity)."""
    if value is None or value is DEFAULT_BASELINE:
        return None, False, None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value), False, {"value": float(value)}
    array = open_array(value, name)
    per_example = array.ndim == len(x.shape) + extra and array.shape[0] == x.shape[0] and (extra or x.shape[0] > 1)
    array = array if per_example else np.asarray(array)
    description = {"shape": list(array.shape), "per_example": bool(per_example)}
    if not per_example:
        description["sha256"] = array_sha256(array)
    return array, bool(per_example), description


def _describe_target(target) -> Any:
    return {"per_example": True} if isinstance(target, np.ndarray) else target


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in options.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ArgumentError(f"{key}: expected a number, string or None (recorded in the store's manifest), got "
                                f"{type(value).__name__}")
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------
# one chunk
# ------------------------------------------------------------------------------------------------
def compute_chunk(net, method: str, data: dict[str, Any], options: dict[str, Any], *, block: int,
                  threads: int | dict[str, int] | None, worker: str | None,
                  peer: Any = None) -> tuple[dict[str, np.ndarray], dict]:
    """The method on one chunk, ``block`` examples per call; returns (arrays, manifest entry).

    ``peer``: a :class:`refattr.dataset.peer.CaptumPeer` graded on every block after the method.

    Runs in a Dask worker (``worker`` None: the worker's address is looked up, and ``threads``
    may map host -> threads) or in-process. The chunk's first example is at a multiple of
    ``block``, so the calls fall on the same absolute blocks whatever the chunking.
    """
    if worker is None:
        from distributed import get_worker

        worker = get_worker().address
        if isinstance(threads, dict):
            threads = threads.get(host_of(worker), 1)
    function, x, n = METHODS[method], data["x"], len(data["x"])
    start, parts, graded = time.perf_counter(), [], []
    with pinned_threads(threads), _progress.enabled(False):
        for a in range(0, n, block):
            b = min(a + block, n)
            kwargs = dict(options)
            kwargs["target"] = data["target"][a:b] if isinstance(data["target"], np.ndarray) else data["target"]
            for key in ("baseline", "baseline_samples"):
                if data[key] is not None:
                    kwargs[key] = data[key][a:b] if data["cut"][key] else data[key]
            parts.append(function(net, np.asarray(x[a:b], dtype=np.float64), **kwargs))
            if peer is not None:
                graded.append(peer.grade(net, np.asarray(x[a:b], dtype=np.float64), kwargs, parts[-1]))
    arrays = {"values": np.concatenate([p.values for p in parts])}
    for q in ("completeness_gap", "error_estimate"):
        if parts[0].__dict__[q] is not None:
            arrays[q] = np.concatenate([p.__dict__[q] for p in parts])
    if graded:
        arrays.update({q: np.concatenate([g[0][q] for g in graded]) for q in graded[0][0]})
    if data.get("peer") is not None or graded:
        arrays.update(peer_differences(arrays["peer_values"] if graded else data["peer"], arrays["values"]))
    entry = {"seconds": time.perf_counter() - start, "worker": worker, "finished_at": _now(),
             "input_sha256": data.get("sha256"),
             "max_abs_completeness_gap": _max(arrays.get("completeness_gap"), absolute=True),
             "max_error_estimate": _max(arrays.get("error_estimate"))}
    if graded:
        issues = sum((g[1]["issues"] for g in graded), Counter())
        entry["peer_bug_examples"] = dict(sorted(issues.items()))
        entry["peer_warnings"] = sorted(set().union(*(g[1]["warnings"] for g in graded)))
    return arrays, entry


def peer_differences(peer: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Per example: the normwise relative difference of
    :func:`refattr.interop.compare.relative_difference` and the largest absolute difference."""
    from ..interop.compare import relative_difference

    p = np.asarray(peer, dtype=np.float64).reshape(len(peer), -1)
    r = reference.reshape(len(reference), -1)
    relative = np.array([relative_difference(p[i:i + 1], r[i:i + 1]) for i in range(len(r))])
    finite = np.all(np.isfinite(p), axis=1) & np.all(np.isfinite(r), axis=1)
    largest = np.full(len(r), np.inf)
    if np.any(finite):
        largest[finite] = np.max(np.abs(p[finite] - r[finite]), axis=1)
    return {"peer_relative_difference": relative, "peer_max_abs_difference": largest}


def _max(values: np.ndarray | None, absolute: bool = False) -> float | str | None:
    if values is None or values.size == 0:
        return None
    m = float(np.max(np.abs(values) if absolute else values))
    return m if np.isfinite(m) else repr(m)          # JSON has no inf / nan: "inf", "nan"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


