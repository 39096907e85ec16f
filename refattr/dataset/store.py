"""The output store of a dataset run: a folder of ``.npy`` chunks and a JSON manifest.

Layout of a store folder::

    manifest.json                 what was computed, from what, and the state of every chunk
    chunks/values.000003.npy      one file per chunk per quantity (chunk 3 here)
    chunks/completeness_gap.000003.npy, chunks/error_estimate.000003.npy, ...

Every file is written under a temporary name in the same folder and renamed over its final name
(:func:`os.replace`, atomic on POSIX and Windows): the chunk's files first, then the manifest that
marks the chunk done. A run killed at any moment leaves either the old manifest or the new one,
and a chunk is read as done only when the manifest says so and its files exist, so nothing
half-written is ever taken for a result.

The manifest's ``"identity"`` is what the stored numbers depend on (the model's hash, the
inputs' shape and dtype, the method and every option, the chunking, refattr's version); a run
whose identity differs from a store's is refused, naming the fields that differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np

from ..errors import ArgumentError

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "StoredAttributions", "open_store", "array_sha256"]

#: The format name written in every manifest, and its version.
FORMAT = "refattr-dataset-attributions"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNKS = "chunks"


def array_sha256(*arrays: np.ndarray | None) -> str:
    """SHA-256 over each array's dtype, shape and C-order bytes (None counts as an empty marker)."""
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape};".encode())
        digest.update(a.data if a.size else b"")
    return digest.hexdigest()


def _write_atomically(path: str, write) -> None:
    """Call ``write(file object)`` on a temporary file next to ``path``, then rename it to ``path``."""
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class StoredAttributions:
    """A store folder: its manifest and lazy access to the stored quantities.

    Attributes
    ----------
    path : str
    manifest : dict
        The parsed ``manifest.json``: ``format``, ``format_version``, ``identity`` (model hash,
        inputs, method, options, chunking, refattr version), ``run`` (how the last run was made)
        and ``chunks`` (one entry per chunk: ``start``, ``stop``, ``status``, ``input_sha256``,
        ``seconds``, ``worker``, ``finished_at``, ``max_abs_completeness_gap``,
        ``max_error_estimate``, ``files``).
    """

    def __init__(self, path: str, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    # -- reading -------------------------------------------------------------------------------
    @property
    def n_chunks(self) -> int:
        return len(self.manifest["chunks"])

    @property
    def complete(self) -> bool:
        """Every chunk done."""
        return all(entry["status"] == "done" for entry in self.manifest["chunks"])

    @property
    def quantities(self) -> tuple[str, ...]:
        """The stored quantities, e.g. ("values", "completeness_gap", "error_estimate")."""
        return tuple(self.manifest["identity"]["quantities"])

    def chunk(self, quantity: str, k: int) -> np.ndarray:
        """Chunk ``k`` of ``quantity``, memory-mapped read-only, its shape checked against the manifest."""
        self._check_quantity(quantity)
        entry = self.manifest["chunks"][k]
        if entry["status"] != "done":
            raise ArgumentError(f"chunk {k} (examples {entry['start']}..{entry['stop'] - 1}) of {self.path!r} is not "
                                f"done; rerun the same call to finish the store")
        return self._load(quantity, k)

    def chunks(self, quantity: str = "values") -> Iterator[np.ndarray]:
        """Each chunk of ``quantity`` in order, memory-mapped (one open file at a time)."""
        for k in range(self.n_chunks):
            yield self.chunk(quantity, k)

    def array(self, quantity: str = "values") -> np.ndarray:
        """``quantity`` for every example, as one array in memory (the chunks concatenated)."""
        missing = [k for k, entry in enumerate(self.manifest["chunks"]) if entry["status"] != "done"]
        if missing:
            raise ArgumentError(f"store {self.path!r}: {len(missing)} of {self.n_chunks} chunks are not done (first: "
                                f"chunk {missing[0]}); rerun the same call to finish it, or read the done chunks with "
                                f"chunk(quantity, k)")
        return np.concatenate([np.array(c) for c in self.chunks(quantity)])

    def __repr__(self) -> str:
        done = sum(entry["status"] == "done" for entry in self.manifest["chunks"])
        identity = self.manifest["identity"]
        return (f"StoredAttributions({self.path!r}, method={identity['method']!r}, "
                f"examples={identity['inputs']['shape'][0]}, chunks done {done}/{self.n_chunks})")

    # -- chunk files ---------------------------------------------------------------------------
    def file(self, quantity: str, k: int) -> str:
        return os.path.join(self.path, _CHUNKS, f"{quantity}.{k:06d}.npy")

    def expected_shape(self, quantity: str, k: int) -> tuple[int, ...]:
        entry = self.manifest["chunks"][k]
        n = entry["stop"] - entry["start"]
        if quantity in ("values", "peer_values"):
            return (n, *self.manifest["identity"]["inputs"]["shape"][1:])
        return (n,)

    def _check_quantity(self, quantity: str) -> None:
        if quantity not in self.quantities:
            raise ArgumentError(f"quantity: {quantity!r} is not in store {self.path!r}; it holds "
                                f"{', '.join(self.quantities)}")

    def _load(self, quantity: str, k: int) -> np.ndarray:
        path = self.file(quantity, k)
        expected = self.expected_shape(quantity, k)
        fix = f"delete {path!r} and rerun the same call (a chunk without its file is recomputed)"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArgumentError(f"store {self.path!r}: chunk file {path!r} cannot be read ({exc}); it is damaged or "
                                f"truncated: {fix}") from None
        if array.shape != expected or array.dtype != np.float64:
            raise ArgumentError(f"store {self.path!r}: chunk file {path!r} holds {array.dtype} {array.shape}; the "
                                f"manifest expects float64 {expected}: {fix}")
        return array

    def has_chunk(self, k: int) -> bool:
        """Chunk ``k`` is marked done and all its files exist (their shapes are checked: a damaged
        file is refused with ArgumentError, not silently recomputed)."""
        if self.manifest["chunks"][k]["status"] != "done":
            return False
        if not all(os.path.exists(self.file(q, k)) for q in self.quantities):
            return False
        for q in self.quantities:
            self._load(q, k)
        return True

    # -- writing -------------------------------------------------------------------------------
    def write_chunk(self, k: int, arrays: dict[str, np.ndarray], entry: dict[str, Any]) -> None:
        """Write chunk ``k``'s files, then mark it done in the manifest (each step atomic)."""
        for quantity in self.quantities:
            array = np.ascontiguousarray(arrays[quantity], dtype=np.float64)
            if array.shape != self.expected_shape(quantity, k):
                raise ArgumentError(f"chunk {k} {quantity}: computed shape {array.shape}, expected "
                                    f"{self.expected_shape(quantity, k)}")
            _write_atomically(self.file(quantity, k), lambda f, a=array: np.save(f, a, allow_pickle=False))
        self.manifest["chunks"][k] = {**self.manifest["chunks"][k], **entry, "status": "done",
                                      "files": [os.path.relpath(self.file(q, k), self.path) for q in self.quantities]}
        self.save_manifest()

    def save_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=1, sort_keys=True, allow_nan=False).encode()
        _write_atomically(os.path.join(self.path, MANIFEST), lambda f: f.write(text))


def _read_manifest(path: str) -> dict[str, Any]:
    manifest_path = os.path.join(path, MANIFEST)
    fix = "delete the folder (or name another --out) and rerun"
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"store {path!r}: {MANIFEST} is not valid JSON ({exc}); the store is damaged: {fix}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        seen = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ArgumentError(f"store {path!r}: {MANIFEST} has format {seen!r}, expected {FORMAT!r}; this folder is not "
                            f"a refattr dataset store: {fix}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArgumentError(f"store {path!r}: format version {manifest.get('format_version')!r}; this refattr reads "
                            f"version {FORMAT_VERSION}: {fix}")
    chunks = manifest.get("chunks")
    if not isinstance(manifest.get("identity"), dict) or not isinstance(chunks, list) or not all(
            isinstance(c, dict) and {"start", "stop", "status"} <= set(c) for c in chunks):
        raise ArgumentError(f"store {path!r}: {MANIFEST} lacks its 'identity' or a valid 'chunks' list: {fix}")
    return manifest


def open_store(path) -> StoredAttributions:
    """Open a store written by :func:`refattr.dataset.attribute_dataset`.

    Returns
    -------
    StoredAttributions
        ``.manifest`` (dict), ``.array("values")`` (every example, in memory),
        ``.chunk("values", k)`` / ``.chunks("values")`` (memory-mapped chunks), ``.complete``.

    Raises
    ------
    ArgumentError
        No manifest, a manifest that is not valid JSON or not of this format; later, a chunk file
        whose shape or dtype does not match the manifest (named, with the fix).
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, MANIFEST)):
        raise ArgumentError(f"store: {path!r} holds no {MANIFEST}; expected a folder written by attribute_dataset "
                            f"(refattr dataset run)")
    return StoredAttributions(path, _read_manifest(path))


def create_or_resume(path: str, identity: dict[str, Any], chunks: list[tuple[int, int]]) -> StoredAttributions:
    """The store at ``path`` for a run of ``identity``: a new one (the folder is created), or the
    existing one when its identity is the same; another identity is refused naming what differs."""
    os.makedirs(os.path.join(path, _CHUNKS), exist_ok=True)
    if not os.path.exists(os.path.join(path, MANIFEST)):
        if any(not name.startswith(".") for name in os.listdir(os.path.join(path, _CHUNKS))):
            raise ArgumentError(f"store {path!r}: chunk files without a {MANIFEST}; name an empty or a new folder")
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "identity": identity, "run": {},
                    "chunks": [{"start": a, "stop": b, "status": "pending"} for a, b in chunks]}
        store = StoredAttributions(path, manifest)
        store.save_manifest()
        return store
    manifest = _read_manifest(path)
    stored = manifest["identity"]
    identity = json.loads(json.dumps(identity))          # tuples -> lists, as they were stored
    differ = sorted(set(stored) | set(identity), key=str)
    differ = [key for key in differ if stored.get(key) != identity.get(key)]
    if differ:
        details = "; ".join(f"{key}: stored {_short(stored.get(key))}, now {_short(identity.get(key))}"
                            for key in differ)
        raise ArgumentError(f"store {path!r} was written for another run ({details}); name a new --out folder, or "
                            f"repeat the stored run's arguments to resume it")
    return StoredAttributions(path, manifest)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
