"""Models shipped with refattr: small trained networks to run every method on.

A shipped model is two files side by side: ``NAME.npz`` holds the parameters (and a handful of
example inputs with their labels and the logits computed when the model was trained), and
``NAME.json`` describes the architecture as a list of layer specifications, plus the provenance
(data, seed, accuracy, versions, the command that produced it). Loading needs NumPy and refattr
only; the training script (``scripts/train_digits_cnn.py``) is the only place scikit-learn is used.

A layer specification is a dict::

    {"type": "Conv2D", "params": {"weight": "layers.0.weight", "bias": "layers.0.bias"},
     "config": {"padding": 1}}

``type`` names a registered layer class (:data:`refattr.layers.LAYERS`); ``params`` maps constructor
arguments to arrays in the npz; ``config`` holds the other constructor arguments (JSON lists are
read as tuples). The layer is built as ``cls(**params, **config)`` by the layer registry
(:func:`refattr.layers.registry.from_config`), and :func:`network_specs` writes a network in this
form, so a newly registered layer needs no change here.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedLayerError
from ..layers.registry import from_config, to_config
from ..network import Sequential

__all__ = ["load_digits_cnn", "digits_cnn_info", "build_network", "network_specs", "parameter_digest"]

_DIGITS_CNN = "digits_cnn"


def build_network(layer_specs: list[dict[str, Any]], arrays: dict[str, np.ndarray],
                  input_shape: tuple | None = None) -> Sequential:
    """Build a :class:`~refattr.Sequential` from layer specifications and named arrays.

    Parameters
    ----------
    layer_specs : list of dict
        One dict per layer, with ``type`` (a class name from :data:`refattr.layers.LAYERS`) and
        optionally ``params`` (constructor argument -> key in ``arrays``) and ``config`` (other
        constructor arguments, JSON values).
    arrays : mapping of str to ndarray
    input_shape : tuple of int, optional
        One example's shape, passed to :class:`~refattr.Sequential` so that every shape is checked
        at once.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> import numpy as np
    >>> specs = [{"type": "Dense", "params": {"weight": "w", "bias": "b"}}, {"type": "ReLU"}]
    >>> net = build_network(specs, {"w": np.array([[1.0, -2.0]]), "b": np.array([0.5])}, (2,))
    >>> net(np.array([[3.0, 1.0]]))     # relu(3 - 2 + 0.5)
    array([[1.5]])
    """
    layers = []
    for i, spec in enumerate(layer_specs):
        name = spec.get("type")
        config: dict[str, Any] = {"type": name, "params": dict(spec.get("config", {})), "arrays": {}}
        for argument, key in spec.get("params", {}).items():
            if key not in arrays:
                raise ShapeError(f"layers[{i}] ({name}) {argument}: array {key!r} is missing from the parameters")
            config["arrays"][argument] = arrays[key]
        try:
            layers.append(from_config(config))     # JSON lists (pairs, 4-tuples of ints) become tuples
        except UnsupportedLayerError as error:
            raise UnsupportedLayerError(f"layers[{i}] type: {error}") from None
    return Sequential(layers, input_shape=input_shape)


def network_specs(net: Sequential) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The layer specifications and named arrays of ``net``: what :func:`build_network` reads.

    Read from the layer registry, so a newly registered layer is written with no change here: an
    array argument goes to ``params`` under the key ``"layers.{i}.{argument}"``, any other argument
    to ``config`` (tuples as lists); an argument that is None is left out (its default applies).

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential
    >>> specs, arrays = network_specs(Sequential([Dense([[1.0, -2.0]], [0.5]), ReLU()]))
    >>> specs
    [{'type': 'Dense', 'params': {'weight': 'layers.0.weight', 'bias': 'layers.0.bias'}}, {'type': 'ReLU'}]
    """
    specs, named = [], {}
    for i, layer in enumerate(net.layers):
        config = to_config(layer)
        spec: dict[str, Any] = {"type": config["type"]}
        if config["arrays"]:
            spec["params"] = {argument: f"layers.{i}.{argument}" for argument in config["arrays"]}
            named.update({f"layers.{i}.{argument}": array for argument, array in config["arrays"].items()})
        if config["params"]:
            spec["config"] = config["params"]
        specs.append(spec)
    return specs, named


def parameter_digest(layer_specs: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the network's parameters, in layer order, as little-endian float64 bytes.

    Recorded at training time; two training runs that produce the same weights bit for bit give
    the same digest, whatever the npz file's own bytes (zip timestamps) are.
    """
    digest = hashlib.sha256()
    for spec in layer_specs:
        for argument in sorted(spec.get("params", {})):
            key = spec["params"][argument]
            arr = np.ascontiguousarray(arrays[key], dtype="<f8")
            digest.update(key.encode())
            digest.update(repr(arr.shape).encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()


def _read_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))


def _read_npz(name: str) -> dict[str, np.ndarray]:
    with resources.files(__name__).joinpath(f"{name}.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}


def digits_cnn_info() -> dict[str, Any]:
    """The description of the bundled digits CNN (``digits_cnn.json``) as a dict.

    Holds the layer specifications, the input shape, the train and test accuracy, the data split,
    the random seed and optimiser, the date, the versions of scikit-learn, NumPy and refattr used, and the
    command that produced the model.
    """
    return _read_json(_DIGITS_CNN)


def load_digits_cnn(return_logits: bool = False):
    """The bundled CNN trained on scikit-learn's 8x8 handwritten digits, and example images.

    The architecture, data and accuracy are recorded in :func:`digits_cnn_info`; it is built from
    refattr layers only (ReLU and average pooling, so the network is piecewise linear and exact
    integrated gradients applies, and DeepLIFT needs no max-pooling rule).

    Parameters
    ----------
    return_logits : bool
        Also return the logits the training script computed on the shipped images.

    Returns
    -------
    net : Sequential
        Input (N, 1, 8, 8) pixel intensities in [0, 1]; output (N, 10) logits, one per digit.
    images : ndarray, shape (K, 1, 8, 8), float64
        Held-out test images (never seen in training), one per digit 0..9.
    labels : ndarray, shape (K,), int64
        Their true digits.
    logits : ndarray, shape (K, 10), float64
        Only when ``return_logits`` is True.

    Examples
    --------
    >>> net, images, labels = load_digits_cnn()
    >>> images.shape, labels.tolist()
    ((10, 1, 8, 8), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> net(images).shape
    (10, 10)
    """
    info = _read_json(_DIGITS_CNN)
    arrays = _read_npz(_DIGITS_CNN)
    net = build_network(info["layers"], arrays, tuple(info["input_shape"]))
    images = np.ascontiguousarray(arrays["images"], dtype=np.float64)
    labels = np.asarray(arrays["labels"], dtype=np.int64)
    if return_logits:
        return net, images, labels, np.asarray(arrays["logits"], dtype=np.float64)
    return net, images, labels
