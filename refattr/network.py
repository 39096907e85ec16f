"""Sequential: runs layers forward and walks them backward. It knows no layer by name."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .errors import ShapeError, UnsupportedLayerError
from .layers.base import Layer
from .validation import as_float64

__all__ = ["Sequential", "Trace", "InputShape", "PASS_BYTES"]

#: Default activation budget of one pass (see :meth:`Sequential.pass_size`): 2 MiB, about an
#: L2 cache, measured best among 1 to 8 MiB on the benchmark networks.
PASS_BYTES = 2 * 2**20


class InputShape:
    """The shape of a layer's input, standing in for the input in a trace taken with
    ``outputs=False`` (for layers whose backward pass reads nothing else). It has no values:
    arithmetic on it fails instead of computing with stand-in numbers."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple):
        self.shape = tuple(shape)

    def __repr__(self) -> str:
        return f"InputShape({self.shape})"


class Trace:
    """The record of one forward pass: activations[0] is the input, activations[i + 1] the output
    of layer i; caches[i] is what layer i's backward passes need. In a trace taken with
    ``outputs=False`` the activations past the last value a backward pass reads are None
    (and so is ``output``)."""

    __slots__ = ("activations", "caches")

    def __init__(self, activations: list[np.ndarray | None], caches: list[Any]):
        self.activations = activations
        self.caches = caches

    @property
    def output(self) -> np.ndarray | None:
        return self.activations[-1]


class Sequential:
    """A feed-forward network: layer i + 1 consumes the output of layer i.

    Parameters
    ----------
    layers : iterable of Layer
    input_shape : tuple of int, optional
        One example's shape, e.g. (1, 28, 28) or (4,). When given, every shape is checked now;
        otherwise what can be checked (ranks, feature and channel counts) is checked now and the
        rest when an input arrives. Either way nothing is computed on an input that does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, -2.0]], [0.5]), ReLU()])
    >>> net(np.array([[3.0, 1.0], [0.0, 1.0]]))    # relu(3 - 2 + 0.5), relu(0 - 2 + 0.5)
    array([[1.5],
           [0. ]])
    """

    def __init__(self, layers: Iterable[Layer], input_shape: tuple | None = None):
        self.layers = tuple(layers)
        if not self.layers:
            raise ShapeError("layers: expected at least one layer, got none")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise UnsupportedLayerError(
                    f"layers[{i}]: {type(layer).__module__}.{type(layer).__name__} is not a refattr layer; "
                    f"expected one of Dense, Conv2D, ReLU, Tanh, Sigmoid, Swish, Flatten, AvgPool2D, "
                    f"MaxPool2D (use refattr.interop to convert a PyTorch or ONNX model)"
                )
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self._propagate(self.input_shape)

    # shapes --------------------------------------------------------------------------------
    def _propagate(self, example_shape):
        shape = example_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ShapeError as exc:
                raise type(exc)(f"layers[{i}] {exc}") from None
        return shape

    def output_shape(self, example_shape: tuple) -> tuple:
        """Shape of one example's output; raises ShapeError if the input does not fit."""
        out = self._propagate(tuple(example_shape))
        if len(out) != 1:
            raise ShapeError(
                f"network output: expected one vector of outputs per example, got example shape {out}; "
                f"end the network with Flatten() and/or Dense"
            )
        return out

    def check_input(self, x, name: str = "x") -> np.ndarray:
        """Validate a batch (N, *example_shape): float64, finite, and the right shape."""
        arr = as_float64(x, name, min_ndim=2)
        if arr.shape[0] == 0:
            raise ShapeError(f"{name}: expected at least one example (batch axis first), got shape {arr.shape}")
        if self.input_shape is not None and arr.shape[1:] != self.input_shape:
            raise ShapeError(
                f"{name}: expected examples of shape {self.input_shape} (batch axis first), got {arr.shape}"
            )
        try:
            self.output_shape(arr.shape[1:])
        except ShapeError as exc:
            raise ShapeError(f"{name}: input of shape {arr.shape} does not fit the network: {exc}") from None
        return arr

    def n_outputs(self, example_shape: tuple) -> int:
        return self.output_shape(example_shape)[0]

    def activation_size(self, example_shape: tuple) -> int:
        """Number of float64 values one example holds in a trace: its input and every layer's output."""
        shape = tuple(example_shape)
        size = int(np.prod(shape))
        for layer in self.layers:
            shape = layer.output_shape(shape)
            size += int(np.prod(shape))
        return max(size, 1)

    def pass_size(self, example_shape: tuple, budget_bytes: int = PASS_BYTES, minimum: int = 8) -> int:
        """How many examples to send through the network together so that their activations
        stay within ``budget_bytes`` (at least ``minimum``).

        Methods that run many examples split them into passes of this size: a pass whose
        activations fit in the CPU caches runs up to twice as fast per example as one that
        streams through main memory (on the benchmark CNN, 1x28x28 -> conv8 -> conv16/2 ->
        dense10, 180 kB of activations per example: DeepLiftShap with 256 (input, baseline)
        pairs 207 ms in one pass, 126 ms in passes of 8 to 16; see benchmarks/bench_captum.py).
        Every example is computed by the same arithmetic in any pass, so results do not depend
        on the pass size beyond the rounding of BLAS blocking.
        """
        return max(int(minimum), int(budget_bytes) // (8 * self.activation_size(example_shape)))

    # passes --------------------------------------------------------------------------------
    def __call__(self, x) -> np.ndarray:
        return self.forward(x)

    def forward(self, x) -> np.ndarray:
        """The output (N, n_outputs) for a batch x (validated first)."""
        return self.trace(self.check_input(x)).output

    def trace(self, x: np.ndarray, outputs: bool = True) -> Trace:
        """Forward pass keeping every activation and cache. ``x`` must already be validated.

        With ``outputs=False`` the trace holds only what :meth:`backward` reads: the forward pass
        stops at the last layer whose backward pass reads its input's values (see
        ``Layer.backward_reads_input``), which gives its cache without its output; from there on
        the activations are None and the caches of the (linear) layers after it are
        :class:`InputShape` records. The gradient family never needs the network's output values,
        so it saves the tail of the forward pass (on the benchmark CNN, the last activation and
        the dense layer: 7 % of a saliency call). :meth:`backward` gives the same result, bit for
        bit, from either trace.
        """
        # Layers before k run forward; k is the last layer whose backward pass reads its input
        # (every layer when outputs are wanted).
        k = len(self.layers)
        if not outputs:
            k = max((i for i, layer in enumerate(self.layers) if layer.backward_reads_input), default=-1)
        activations, caches = [x], []
        shape = x.shape   # the input shape of layer i, once i > k
        for i, layer in enumerate(self.layers):
            if i < k:
                y, cache = layer.forward(activations[-1])
            else:
                if i == k:
                    shape = activations[-1].shape
                    y, cache = None, layer.backward_cache(activations[-1])
                else:
                    y, cache = None, InputShape(shape)
                shape = (shape[0],) + tuple(layer.output_shape(shape[1:]))
            activations.append(y)
            caches.append(cache)
        return Trace(activations, caches)

    def backward(self, g: np.ndarray, trace: Trace, rule: str = "gradient") -> np.ndarray:
        """Walk the layers backward from a signal g at the output (N, n_outputs).

        ``rule`` is "gradient" (the VJP: g^T J), "guided_backprop" or "deconvnet" (SPEC section 4).
        """
        for layer, cache in zip(reversed(self.layers), reversed(trace.caches)):
            g = layer.backward_signal(g, cache, rule)
        return g

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n])"

    @property
    def piecewise_linear(self) -> bool:
        """True when every layer is piecewise linear (ReLU, MaxPool2D and linear layers)."""
        return all(layer.piecewise_linear for layer in self.layers)
