"""Attributions over a whole dataset: chunked, in-process or on Dask, into a resumable store.

:func:`attribute_dataset` computes one method's attributions for every example of an array or a
``.npy`` / ``.npz`` file and writes them, chunk by chunk, to a store folder (``.npy`` chunks and a
JSON manifest); :func:`open_store` reads a store back. Dask (``pip install 'refattr[dask]'``) is
imported only when a scheduler is named; without it the same call runs in this process with the
same results. ``attribute_dataset(..., peer="captum")`` also grades Captum's attribution of every
example; :func:`write_report` writes a Markdown report with figures. The command line is
``refattr dataset run`` and ``refattr dataset report``.
"""

from .run import attribute_dataset as attribute_dataset
from .report import write_report as write_report
from .store import StoredAttributions as StoredAttributions, open_store as open_store

__all__ = ["attribute_dataset", "open_store", "StoredAttributions", "write_report"]
