"""Sequential: runs layers forward and walks them backward. It knows no layer by name."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._typing import GradientRule
from .errors import ArgumentError, NonFiniteError, ResourceError, ShapeError, UnsupportedLayerError
from .layers.base import Layer
from .layers.registry import supported
from .validation import as_float64

__all__ = ["Network", "Sequential", "Trace", "InputShape", "PASS_BYTES", "memory_bytes"]

#: Default activation budget of one pass (see :meth:`Sequential.pass_size`): 2 MiB, about an
#: L2 cache, measured best among 1 to 8 MiB on the benchmark networks.
PASS_BYTES = 2 * 2**20

#: The memory assumed where the operating system does not report it (1 TiB).
FALLBACK_MEMORY_BYTES = 2**40

#: Largest finite float64, for messages about overflow.
_FLOAT64_MAX = float(np.finfo(np.float64).max)

#: A layer whose output bound (:meth:`Layer.output_bound`) stays below this cannot overflow: the
#: rounding of a sum of n terms changes it by a factor of at most 1 + n * 2**-53, far below 2.
_SAFE_BOUND = _FLOAT64_MAX / 2


def _largest_magnitude(a: np.ndarray) -> float:
    """max |a| (two reductions, no temporary array): inf or nan when a holds a non-finite value."""
    return max(abs(float(a.max())), abs(float(a.min()))) if a.size else 0.0


def memory_bytes() -> int:
    """The machine's physical memory in bytes (``os.sysconf``), or ``FALLBACK_MEMORY_BYTES``
    where the operating system does not report it.

    A network whose activations for a single example exceed it is refused with a ResourceError
    before anything is allocated.
    """
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):   # no sysconf (Windows) or no such name
        return FALLBACK_MEMORY_BYTES


def _all_finite(y: np.ndarray) -> bool:
    # np.isfinite(y).all(); a BLAS dot product y . y is faster alone but several times slower
    # where BLAS threads contend with numba's
    return bool(np.isfinite(y).all())


def _format_bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _describe_shape(example_shape) -> str:
    return str(tuple(example_shape))


def _as_input_shape(value) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints; no rounding of floats, no bools."""
    expected = "input_shape: expected one example's shape as a tuple of positive ints, e.g. (1, 28, 28) or (4,)"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ArgumentError(f"{expected}; got {value!r} ({type(value).__name__})")
    shape = tuple(value)
    if not shape:
        raise ArgumentError(f"{expected}; got (): an example has at least one axis")
    for d in shape:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or d < 1:
            raise ArgumentError(f"{expected}; got {shape!r}, where {d!r} ({type(d).__name__}) is not an int >= 1")
    return tuple(int(d) for d in shape)


class InputShape:
    """The shape of a layer's input, standing in for the input in a trace taken with
    ``outputs=False`` (for layers whose backward pass reads nothing else). It has no values:
    arithmetic on it fails instead of computing with stand-in numbers."""

    __slots__ = ("shape",)

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = tuple(shape)

    def __repr__(self) -> str:
        return f"InputShape({self.shape})"


class Trace:
    """The record of one forward pass: activations[0] is the input, activations[i + 1] the output
    of layer i; caches[i] is what layer i's backward passes need. In a trace taken with
    ``outputs=False`` the activations past the last value a backward pass reads are None
    (and so is ``output``)."""

    __slots__ = ("activations", "caches")

    def __init__(self, activations: list[np.ndarray | None], caches: list[Any]) -> None:
        self.activations = activations
        self.caches = caches

    @property
    def output(self) -> np.ndarray | None:
        return self.activations[-1]


class Network:
    """What every refattr network offers the attribution methods: input checks, shapes, batch
    sizes and the passes (``trace``, ``backward``). :class:`Sequential` (a chain) and
    :class:`~refattr.graph.Graph` (any directed acyclic graph of layers) are the two kinds.

    A network's values are numbered: its inputs first (0 for a one-input network), then the output
    of every layer in order; ``node_args[i]`` holds the numbers of the values layer i reads, and a
    :class:`Trace` keeps ``activations`` by value number and ``caches`` by layer.
    """

    #: How many inputs the network takes (a tuple of arrays where more than one).
    n_inputs: int = 1
    layers: tuple[Layer, ...]
    node_args: tuple[tuple[int, ...], ...]

    def _propagate(self, example_shape):
        """The example shape of the network's output (ShapeError naming the layer if none)."""
        return self._value_shapes(example_shape)[-1][1]

    def _value_shapes(self, example_shape) -> list[tuple[str, tuple]]:
        """(label, example shape) of every value, by value number: the inputs, then every layer's
        output (ShapeError naming the layer where one does not fit)."""
        raise NotImplementedError

    def value_names(self) -> tuple[str, ...]:
        """A name for every value, by value number."""
        raise NotImplementedError

    def output_shape(self, example_shape: Sequence[int]) -> tuple[int]:
        """Shape of one example's output; raises ShapeError if the input does not fit."""
        out = self._propagate(tuple(example_shape))
        if len(out) != 1:
            raise ShapeError(
                f"network output: expected one vector of outputs per example, got example shape {out}; "
                f"end the network with Flatten() and/or Dense"
            )
        return out

    def _fits(self, example_shape: tuple) -> bool:
        try:
            self.output_shape(example_shape)
        except ShapeError:
            return False
        return self.input_shape is None or tuple(example_shape) == self.input_shape

    def _missing_axis_hint(self, shape: tuple) -> str:
        """Advice when x lacks one axis: the batch axis (x is one example) or, for images, the
        channel axis (x is a batch of one-channel images); empty when neither fits."""
        if self._fits(shape):
            return (f"; x looks like one example of shape {shape} without the batch axis: add a batch "
                    f"axis, x[None] (shape {(1,) + shape})")
        if len(shape) >= 1 and self._fits((1,) + shape[1:]):
            return (f"; x looks like {shape[0]} one-channel example(s) without the channel axis: "
                    f"x[:, None] (shape {(shape[0], 1) + shape[1:]})")
        return ""

    def check_input(self, x: ArrayLike, name: str = "x") -> np.ndarray:
        """Validate a batch (N, *example_shape): float64, finite, the right shape, and a size whose
        activations fit in memory (ResourceError otherwise)."""
        arr = as_float64(x, name)
        if arr.ndim < 2:
            raise ShapeError(
                f"{name}: expected at least 2 dimensions, got shape {arr.shape} (a batch is (N, *example_shape))"
                + self._missing_axis_hint(arr.shape)
            )
        if arr.shape[0] == 0:
            raise ShapeError(f"{name}: expected at least one example (batch axis first), got shape {arr.shape}")
        if self.input_shape is not None and arr.shape[1:] != self.input_shape:
            raise ShapeError(
                f"{name}: expected examples of shape {self.input_shape} (batch axis first: "
                f"(N, {', '.join(map(str, self.input_shape))})), got {arr.shape}"
                + self._missing_axis_hint(arr.shape)
            )
        try:
            self.output_shape(arr.shape[1:])
        except ShapeError as exc:
            raise ShapeError(
                f"{name}: input of shape {arr.shape} does not fit the network: {exc}"
                + self._missing_axis_hint(arr.shape)
            ) from None
        self._check_memory(arr.shape[1:], name)
        return arr

    def _check_memory(self, example_shape: tuple, name: str) -> None:
        """ResourceError when one example's activations would not fit in the machine's memory."""
        limit = memory_bytes()
        needed = 8 * self.activation_size(example_shape)
        if needed <= limit:
            return
        values = self._value_shapes(example_shape)[self.n_inputs:]
        label, shape = max(values, key=lambda v: math.prod(v[1]))   # the first of the largest
        raise ResourceError(
            f"{name}: one example of shape {_describe_shape(example_shape)} needs {_format_bytes(needed)} of "
            f"activations, more than this machine's memory ({_format_bytes(limit)}); the largest is the output "
            f"of {label}, of shape {shape}: reduce that layer's padding, kernel or dilation (or raise its "
            f"stride), or the input size"
        )

    def n_outputs(self, example_shape: Sequence[int]) -> int:
        return self.output_shape(example_shape)[0]

    def activation_size(self, example_shape: Sequence[int]) -> int:
        """Number of float64 values one example holds in a trace: its input and every layer's output."""
        # Python ints: no wrap-around for absurd shapes
        return max(sum(math.prod(shape) for _, shape in self._value_shapes(example_shape)), 1)

    def pass_size(self, example_shape: Sequence[int], budget_bytes: int = PASS_BYTES, minimum: int = 8) -> int:
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
    def __call__(self, x: ArrayLike) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: ArrayLike) -> np.ndarray:
        """The output (N, n_outputs) for a batch x (validated first)."""
        return self.trace(self.check_input(x)).output

    @property
    def piecewise_linear(self) -> bool:
        """True when every layer declares itself piecewise linear (ReLU, MaxPool2D and linear
        layers); a layer that does not declare it (``piecewise_linear = None``) counts as not."""
        return all(layer.piecewise_linear is True for layer in self.layers)


class Sequential(Network):
    """A feed-forward network: layer i + 1 consumes the output of layer i.

    Parameters
    ----------
    layers : iterable of Layer
    input_shape : tuple of int, optional
        One example's shape, e.g. (1, 28, 28) or (4,). When given, every shape is checked now,
        the output included (one vector per example), and so is the memory one example's
        activations take; otherwise what can be checked (ranks, feature and channel counts) is
        checked now and the rest when an input arrives. Either way nothing is computed on an
        input that does not fit.

    Raises
    ------
    ArgumentError
        ``layers`` is not a list, or ``input_shape`` is not a tuple of positive ints.
    UnsupportedLayerError, ShapeError
        An entry is not a refattr layer; layers (or ``input_shape``) do not fit together.
    ResourceError
        One example of ``input_shape`` would need more memory than the machine has
        (:func:`memory_bytes`).

    Notes
    -----
    Every pass raises NonFiniteError, naming the layer, where a finite input overflows: forward,
    where a layer's output holds inf or nan (scanned only where :meth:`~refattr.layers.base.Layer.output_bound`,
    propagated from the input's largest magnitude, exceeds half of float64's range), and
    backward, where the signal does.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Dense, ReLU, Sequential
    >>> net = Sequential([Dense([[1.0, -2.0]], [0.5]), ReLU()])
    >>> net(np.array([[3.0, 1.0], [0.0, 1.0]]))    # relu(3 - 2 + 0.5), relu(0 - 2 + 0.5)
    array([[1.5],
           [0. ]])
    """

    def __init__(self, layers: Iterable[Layer], input_shape: Sequence[int] | None = None) -> None:
        if isinstance(layers, (Layer, str, bytes)) or not hasattr(layers, "__iter__"):
            raise ArgumentError(
                f"layers: expected a list of refattr layers, e.g. Sequential([Dense(w), ReLU()]), got "
                f"{layers!r} ({type(layers).__name__})"
            )
        self.layers = tuple(layers)
        if not self.layers:
            raise ShapeError("layers: expected at least one layer, got none")
        for i, layer in enumerate(self.layers):
            if isinstance(layer, type) and issubclass(layer, Layer):
                raise UnsupportedLayerError(
                    f"layers[{i}]: the class {layer.__name__}, not a layer; build one, e.g. {layer.__name__}(...)"
                )
            if not isinstance(layer, Layer):
                raise UnsupportedLayerError(
                    f"layers[{i}]: {type(layer).__module__}.{type(layer).__name__} is not a refattr layer; "
                    f"expected one of {supported()} (use refattr.interop to convert a PyTorch or ONNX model)"
                )
        self.node_args = tuple((i,) for i in range(len(self.layers)))
        self.input_shape = None if input_shape is None else _as_input_shape(input_shape)
        if self.input_shape is None:
            self._propagate(None)
        else:
            try:
                self.output_shape(self.input_shape)
            except ShapeError as exc:
                raise ShapeError(f"input_shape: {self.input_shape} does not fit the network: {exc}") from None
            self._check_memory(self.input_shape, "input_shape")

    # shapes --------------------------------------------------------------------------------
    def _value_shapes(self, example_shape):
        shape = example_shape
        values = [("the input", None if shape is None else tuple(shape))]
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ShapeError as exc:
                raise type(exc)(f"layers[{i}] {exc}") from None
            values.append((f"layers[{i}] {layer!r}", shape))
        return values

    def value_names(self) -> tuple[str, ...]:
        return ("input",) + tuple(repr(layer) for layer in self.layers)

    # passes --------------------------------------------------------------------------------
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
        # An output that stops being finite is an error naming its layer (NumPy's own overflow
        # warnings are silenced). Outputs are scanned only where Layer.output_bound, propagated
        # from the input's largest magnitude, cannot rule overflow out; a scan gives a new bound.
        bound = _largest_magnitude(x)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i, layer in enumerate(self.layers):
                if i < k:
                    y, cache = layer.forward(activations[-1])
                    bound = layer.output_bound(bound)
                    if not bound <= _SAFE_BOUND:
                        bound = _largest_magnitude(y)
                        if not math.isfinite(bound):
                            raise self._forward_error(i, x, activations[-1], y)
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

    def backward(self, g: np.ndarray, trace: Trace, rule: GradientRule = "gradient") -> np.ndarray:
        """Walk the layers backward from a signal g at the output (N, n_outputs).

        ``rule`` is "gradient" (the VJP: g^T J), "guided_backprop" or "deconvnet"
        (docs/conventions.md, section 'Gradient family').
        Raises NonFiniteError, naming the layer, when the signal overflows (huge weights can make
        derivatives exceed float64's range although every activation is finite).
        """
        g_top = g
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for layer, cache in zip(reversed(self.layers), reversed(trace.caches)):
                g = layer.backward_signal(g, cache, rule)
        if not _all_finite(g):
            raise self._backward_error(g_top, trace, rule)
        return g

    # errors ----------------------------------------------------------------------------------
    def _forward_error(self, i: int, x: np.ndarray, inp: np.ndarray, y: np.ndarray) -> NonFiniteError:
        bad = ~np.isfinite(y)
        example = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
        return NonFiniteError(
            f"layers[{i}] {self.layers[i]!r}: the output overflowed to inf or nan ({int(bad.sum())} value(s), "
            f"first in example {example}) although its input is finite; the network input's largest "
            f"magnitude is {np.max(np.abs(x)):.3g} and this layer's input's {np.max(np.abs(inp)):.3g}, while "
            f"float64 holds magnitudes up to {_FLOAT64_MAX:.3g}: rescale the input (or the weights) so that "
            f"every activation stays in range"
        )

    def _backward_error(self, g: np.ndarray, trace: Trace, rule: str) -> NonFiniteError:
        """Walk back again, checking after every layer, to name the one whose VJP overflowed
        (only on the error path, so the ordinary pass checks only its result)."""
        i = len(self.layers) - 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i in range(len(self.layers) - 1, -1, -1):
                below = self.layers[i].backward_signal(g, trace.caches[i], rule)
                if not _all_finite(below):
                    break
                g = below
        return NonFiniteError(
            f"layers[{i}] {self.layers[i]!r}: the backward signal ({rule}) overflowed to inf or nan there; "
            f"the signal it received was finite (largest magnitude {np.max(np.abs(g)):.3g}), while float64 "
            f"holds magnitudes up to {_FLOAT64_MAX:.3g}: the network's derivatives are too large, rescale "
            f"its weights (or its output)"
        )

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n])"
