"""Dense (fully connected) layer: y = x @ W.T + b."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Shape
from ..errors import ShapeError
from ..validation import as_float64
from .base import LinearLayer, _check_part, check_rank, readonly
from .registry import register

__all__ = ["Dense"]


@register
class Dense(LinearLayer):
    """Fully connected layer ``y = x @ weight.T + bias``.

    Parameters
    ----------
    weight : array_like, shape (out_features, in_features)
        The PyTorch / ONNX layout, so imported weights are copied, not transposed.
    bias : array_like, shape (out_features,), or None
        None means no bias.

    Examples
    --------
    >>> import numpy as np
    >>> from refattr import Dense
    >>> layer = Dense([[1.0, -2.0]], [0.5])
    >>> layer.forward(np.array([[3.0, 1.0]]))[0]     # 1*3 - 2*1 + 0.5
    array([[1.5]])
    """

    torch_modules = ("Linear",)
    onnx_ops = ("Gemm", "MatMul")

    def __init__(self, weight: ArrayLike, bias: ArrayLike | None = None) -> None:
        self.weight = as_float64(weight, "Dense weight", ndim=2)
        if self.weight.shape[0] == 0 or self.weight.shape[1] == 0:
            raise ShapeError(f"Dense weight: expected shape (out_features >= 1, in_features >= 1), got {self.weight.shape}")
        self.bias = None
        if bias is not None:
            self.bias = as_float64(bias, "Dense bias", ndim=1)
            if self.bias.shape != (self.weight.shape[0],):
                raise ShapeError(
                    f"Dense bias: expected shape ({self.weight.shape[0]},) to match weight "
                    f"{self.weight.shape} (out_features, in_features), got {self.bias.shape}"
                )
        # private copies for the computations, read-only views for everyone else
        weight, self._bias = self.weight.copy(), None if self.bias is None else self.bias.copy()
        self.weight, self.bias = readonly(weight), None if self._bias is None else readonly(self._bias)
        self._signed = {None: weight, "pos": np.maximum(weight, 0.0), "neg": np.minimum(weight, 0.0)}
        # |y_j| <= sum_i |W_ji| |x_i| + |b_j|: the largest row sum, and the largest |b|
        self._gain = float(np.abs(self.weight).sum(axis=1).max())
        self._bias_bound = 0.0 if self.bias is None else float(np.abs(self.bias).max())

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def output_shape(self, input_shape: Shape | None) -> Shape:
        check_rank(self, input_shape, 1, "features")
        if input_shape is not None and input_shape[0] is not None and input_shape[0] != self.in_features:
            raise ShapeError(
                f"Dense: expected {self.in_features} input features (weight shape {self.weight.shape}), "
                f"got {input_shape[0]}"
            )
        return (self.out_features,)

    def output_bound(self, bound: float) -> float:
        return self._gain * bound + self._bias_bound

    # forward -------------------------------------------------------------------------------
    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        return x @ self._signed[part].T

    def affine(self, x: np.ndarray) -> np.ndarray:
        z = self.linear(x)
        if self.bias is not None:
            z += self.bias   # in place: z is the fresh output of linear()
        return z

    # backward ------------------------------------------------------------------------------
    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        _check_part(part)
        return g @ self._signed[part]

    def param_vjp(self, g: np.ndarray, cache: np.ndarray) -> dict[str, np.ndarray | None]:
        """Gradients of <g, y> with respect to weight and bias (for training)."""
        return {"weight": g.T @ cache, "bias": None if self.bias is None else g.sum(axis=0)}

    def __repr__(self) -> str:
        return f"Dense({self.in_features} -> {self.out_features}{'' if self.bias is not None else ', bias=None'})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Dense:
        n_in = input_shape[0]
        n_out = int(rng.integers(1, 6))
        return cls(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.5)
