"""Random networks for property tests, drawn from the layer registry, and small hand-built ones.

The layers come from :func:`refattr.layers.registry.registered`: the element-wise activations are
the registered :class:`~refattr.layers.ElementwiseLayer` subclasses, and :func:`random_network`
draws from every registered layer whose ``random`` constructor accepts the current image shape, so
a newly registered layer is drawn with no change here.
"""

from __future__ import annotations

import inspect
from typing import Literal, Sequence

import numpy as np

from .._typing import Shape
from ..errors import ArgumentError
from ..layers import AvgPool2D, Conv2D, Dense, ElementwiseLayer, Flatten, Layer, MaxPool2D
from ..layers.registry import registered
from ..network import Sequential

__all__ = ["random_mlp", "random_cnn", "random_network", "ACTIVATIONS"]


def _activations() -> dict[str, type[ElementwiseLayer]]:
    """Every registered element-wise layer that can be built without arguments, by lower-case name."""
    out = {}
    for entry in registered():
        if issubclass(entry.cls, ElementwiseLayer):
            parameters = list(inspect.signature(entry.cls.__init__).parameters.values())[1:]
            if all(p.default is not p.empty for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)):
                out[entry.name.lower()] = entry.cls
    return out


#: The element-wise activations by name (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"swish"``, and
#: every element-wise layer registered when refattr was imported): the values ``activation`` takes
#: in :func:`random_mlp` and :func:`random_cnn`, which build the layer with its default arguments.
ACTIVATIONS = _activations()


def _activation(name: str) -> type[ElementwiseLayer]:
    classes = _activations()
    if name not in classes:
        raise ArgumentError(f"activation: expected one of {sorted(classes)} (registered element-wise layers), "
                         f"got {name!r}")
    return classes[name]


def random_mlp(rng: np.random.Generator, sizes: Sequence[int] = (4, 6, 5, 3),
               activation: str = "relu", bias: bool = True) -> Sequential:
    """Dense layers of the given sizes with ``activation`` (a key of :data:`ACTIVATIONS`, built with
    its default arguments) between them (none after the last)."""
    act = _activation(activation)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        layers.append(Dense(w, rng.normal(size=n_out) * 0.5 if bias else None))
        if i < len(sizes) - 2:
            layers.append(act())
    return Sequential(layers, input_shape=(sizes[0],))


def random_cnn(rng: np.random.Generator, input_shape: tuple[int, int, int] = (2, 7, 7),
               activation: str = "relu", pool: Literal["avg", "max"] | None = "avg", n_outputs: int = 3,
               bias: bool = True) -> Sequential:
    """Conv (3x3, pad 1) -> act -> [pool 2x2] -> Conv (2x2, stride 2 or 1) -> act -> Flatten -> Dense.

    ``activation`` is a key of :data:`ACTIVATIONS`.
    """
    c, h, w = input_shape
    act = _activation(activation)
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


def _fits(cls: type[Layer], input_shape: Shape) -> bool:
    """Whether ``cls.random`` builds a layer that maps ``input_shape`` to a shape of the same rank
    (an image to an image).

    Tried on a throwaway generator (the caller's is not advanced): a class without a ``random``
    constructor (NotImplementedError), or whose constructor or ``output_shape`` rejects the shape
    (ValueError, which every refattr shape error is), does not fit.
    """
    try:
        layer = cls.random(np.random.default_rng(0), tuple(input_shape))
        return len(layer.output_shape(tuple(input_shape))) == len(input_shape)
    except (NotImplementedError, ValueError):
        return False


def random_network(rng: np.random.Generator, input_shape: tuple[int, int, int] = (2, 6, 6), n_layers: int = 4,
                   layer_types: Sequence[type[Layer]] | None = None, n_outputs: int = 2) -> Sequential:
    """A random stack of image layers, then Flatten -> Dense(5) -> activation -> Dense(n_outputs).

    Each of the ``n_layers`` steps draws uniformly among the candidate classes that fit the
    current shape (image to image) and builds one with its ``random`` constructor. The candidates are
    ``layer_types`` (classes from ``refattr.layers``) or, by default, every registered layer, in the
    order of their names (one-input layers: joins belong in a :class:`~refattr.graph.Graph`). The activation of the head is drawn among the element-wise candidates
    (every registered element-wise layer when ``layer_types`` names none).
    """
    candidates = list(layer_types) if layer_types else sorted((e.cls for e in registered() if not e.joins),
                                                                   key=lambda c: c.__name__)
    layers, shape = [], tuple(input_shape)
    for _ in range(n_layers):
        choices = [cls for cls in candidates if _fits(cls, shape)]
        if not choices:
            raise ArgumentError(f"layer_types: none of {[c.__name__ for c in candidates]} accepts an image of "
                                f"shape {shape}; pass image-to-image layer classes (e.g. Conv2D, ReLU)")
        cls = choices[int(rng.integers(len(choices)))]
        layer = cls.random(rng, shape)
        shape = layer.output_shape(shape)
        layers.append(layer)
    layers.append(Flatten())
    n_in = int(np.prod(shape))
    activations = [t for t in candidates if issubclass(t, ElementwiseLayer)] or list(_activations().values())
    hidden = 5
    layers.append(Dense(rng.normal(size=(hidden, n_in)) / np.sqrt(n_in), rng.normal(size=hidden) * 0.3))
    layers.append(activations[int(rng.integers(len(activations)))].random(rng, (hidden,)))
    n_in = hidden
    layers.append(Dense(rng.normal(size=(n_outputs, n_in)) / np.sqrt(n_in), rng.normal(size=n_outputs) * 0.3))
    return Sequential(layers, input_shape=input_shape)
