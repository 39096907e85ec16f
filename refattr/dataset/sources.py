"""Where a dataset run reads its arrays: NumPy arrays, memory-mapped ``.npy`` files and ``.npz``
members (memory-mapped where stored uncompressed)."""

from __future__ import annotations

import os
import struct
import zipfile
from typing import Any

import numpy as np

from ..errors import ArgumentError

__all__ = ["open_array"]


def open_array(source: Any, name: str, key: str | None = None, lazy: bool = False) -> Any:
    """An array of real numbers, read lazily where the source allows it.

    - a NumPy array (an ``np.memmap`` included): as it is;
    - the path of a ``.npy`` file (memory-mapped) or of a ``.npz`` file and ``key`` (memory-mapped
      where the member is stored uncompressed);
    - the path of a zarr array (a folder; needs ``zarr``): opened read-only;
    - any other object with ``shape``, ``dtype`` and slicing along the first axis (a zarr or h5py
      array, a dask array): kept as it is, and read one chunk of examples at a time
      (``np.asarray(source[a:b])``), so a dataset larger than memory is never loaded whole. Only
      with ``lazy=True`` (the inputs); otherwise read into a NumPy array.
    """
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(os.fspath(source)):
        try:
            import zarr
        except ImportError:
            raise ArgumentError(f"{name}: {os.fspath(source)!r} is a folder; a zarr array needs zarr (pip install "
                                f"zarr), or save the inputs with numpy.save") from None
        source = zarr.open(os.fspath(source), mode="r")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ArgumentError(f"{name}: no such file {path!r}; expected a .npy or .npz file or an array")
        try:
            if path.endswith(".npz"):
                array = _npz_member(path, key, name)
            else:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ArgumentError(f"{name}: cannot read {path!r} as a NumPy file without unpickling ({exc}); save a "
                                f"numeric array with numpy.save") from None
    elif isinstance(source, np.ndarray):
        array = source
    elif hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__") \
            and len(source.shape) >= 1:
        array = source if lazy else np.asarray(source)     # lazy: read one chunk of examples at a time
    elif hasattr(source, "shape") and hasattr(source, "dtype"):
        array = np.asarray(source)
    else:
        raise ArgumentError(f"{name}: expected an array or the path of a .npy / .npz file, got "
                            f"{type(source).__name__}")
    try:
        kind = np.dtype(array.dtype).kind
    except TypeError:
        kind = "?"
    if kind not in "biuf":
        raise ArgumentError(f"{name}: expected real numbers, got dtype {getattr(array, 'dtype', type(array))}")
    return array


def _npz_member(path: str, key: str | None, name: str) -> np.ndarray:
    """One array of an ``.npz``: memory-mapped where stored uncompressed, else read."""
    with zipfile.ZipFile(path) as archive:
        keys = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        if key is None:
            if len(keys) != 1:
                raise ArgumentError(f"{name}: {path!r} holds {len(keys)} arrays ({', '.join(keys)}); name one with "
                                    f"input_key= (CLI: --key)")
            key = keys[0]
        if key not in keys:
            raise ArgumentError(f"{name}: {path!r} has no array {key!r}; it holds {', '.join(keys)}")
        info = archive.getinfo(key + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as data:
            return data[key]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
    if dtype.hasobject:
        raise ArgumentError(f"{name}: {path!r}[{key!r}] holds Python objects; expected real numbers")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
