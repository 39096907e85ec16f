"""Random networks for property tests (every layer type) and small hand-built ones."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from ..layers import AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sigmoid, Swish, Tanh
from ..network import Sequential

__all__ = ["random_mlp", "random_cnn", "random_network", "ACTIVATIONS"]

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "swish": Swish}


def random_mlp(rng: np.random.Generator, sizes: Sequence[int] = (4, 6, 5, 3),
               activation: Literal["relu", "tanh", "sigmoid", "swish"] = "relu", bias: bool = True) -> Sequential:
    """Dense layers of the given sizes with ``activation`` between them (none after the last)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        layers.append(Dense(w, rng.normal(size=n_out) * 0.5 if bias else None))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return Sequential(layers, input_shape=(sizes[0],))


def random_cnn(rng: np.random.Generator, input_shape: tuple[int, int, int] = (2, 7, 7),
               activation: Literal["relu", "tanh", "sigmoid", "swish"] = "relu",
               pool: Literal["avg", "max"] | None = "avg", n_outputs: int = 3, bias: bool = True) -> Sequential:
    """Conv (3x3, pad 1) -> act -> [pool 2x2] -> Conv (2x2, stride 2 or 1) -> act -> Flatten -> Dense."""
    c, h, w = input_shape
    act = ACTIVATIONS[activation]
    layers = [Conv2D(rng.normal(size=(3, c, 3, 3)) / np.sqrt(9 * c), rng.normal(size=3) * 0.3 if bias else None,
                     padding=1), act()]
    if pool == "avg":
        layers.append(AvgPool2D(2, stride=1))
    elif pool == "max":
        layers.append(MaxPool2D(2, stride=1))
    layers += [Conv2D(rng.normal(size=(4, 3, 2, 2)) / np.sqrt(12), rng.normal(size=4) * 0.3 if bias else None,
                      stride=2), act(), Flatten()]
    shape = Sequential(layers).output_shape(input_shape)
    layers.append(Dense(rng.normal(size=(n_outputs, shape[0])) / np.sqrt(shape[0]),
                        rng.normal(size=n_outputs) * 0.3 if bias else None))
    return Sequential(layers, input_shape=input_shape)


def random_network(rng: np.random.Generator, input_shape: tuple[int, int, int] = (2, 6, 6), n_layers: int = 4,
                   layer_types: Sequence[type[Layer]] | None = None, n_outputs: int = 2) -> Sequential:
    """A random stack mixing every image layer type, then Flatten -> Dense(n_outputs).

    ``layer_types`` restricts the layers drawn (classes from ``refattr.layers``); by default every
    layer type is eligible. Layers whose input would become too small are skipped.
    """
    image_layers = (Conv2D, ReLU, Tanh, Sigmoid, Swish, AvgPool2D, MaxPool2D)
    choices = [t for t in (layer_types or image_layers) if t in image_layers]
    layers, shape = [], tuple(input_shape)
    for _ in range(n_layers):
        cls = choices[int(rng.integers(len(choices)))]
        if cls in (Conv2D, AvgPool2D, MaxPool2D) and min(shape[1:]) < 2:
            continue
        layer = cls.random(rng, shape)
        shape = layer.output_shape(shape)
        layers.append(layer)
    layers.append(Flatten())
    n_in = int(np.prod(shape))
    activations = [t for t in choices if t in (ReLU, Tanh, Sigmoid, Swish)] or [Tanh]
    hidden = 5
    layers.append(Dense(rng.normal(size=(hidden, n_in)) / np.sqrt(n_in), rng.normal(size=hidden) * 0.3))
    layers.append(activations[int(rng.integers(len(activations)))]())
    n_in = hidden
    layers.append(Dense(rng.normal(size=(n_outputs, n_in)) / np.sqrt(n_in), rng.normal(size=n_outputs) * 0.3))
    return Sequential(layers, input_shape=input_shape)
