"""SELU (Klambauer et al. 2017): scale * ELU_alpha(x) with the self-normalising constants, computed
by the exponential-linear family of :mod:`refattr.layers.elu`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._typing import Shape
from .base import ElementwiseLayer
from .elu import (_real, exponential_linear, exponential_linear_bound, exponential_linear_derivative,
                  exponential_linear_secant)
from .registry import register

__all__ = ["SELU", "SELU_ALPHA", "SELU_SCALE"]

#: PyTorch's constants (``torch.nn.SELU``: 1.6732632423543772848170429916717 and
#: 1.0507009873554804934193349852946), as float64.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


@register
class SELU(ElementwiseLayer):
    """f(x) = scale x for x > 0 and scale alpha (e^x - 1) for x <= 0 (Klambauer et al. 2017;
    PyTorch's ``nn.SELU``, ONNX's ``Selu`` with ``gamma`` = scale).

    The defaults are PyTorch's constants :data:`SELU_ALPHA` and :data:`SELU_SCALE`; ``nn.SELU`` has
    no others, so a SELU exports to PyTorch only with them. ONNX's ``Selu`` keeps ``alpha`` and
    ``gamma`` as float32 attributes (defaults 1.6732631921768188 and 1.0507010221481323, 3e-8
    relative from PyTorch's): an ONNX import reads them, so that the imported layer computes what the
    ONNX model computes. As in PyTorch's kernel, the exponential side's coefficient is the float64
    product alpha * scale (1.7580993408473766 for the defaults), and f'(0) = alpha * scale, the
    exponential side's slope (PyTorch's autograd at 0.0 and -0.0). The divided difference is
    :func:`~refattr.layers.elu.exponential_linear_secant`, ELU's.

    .. warning:: Captum 0.9.0's DeepLift does not list ``nn.SELU`` among its non-linearities and
       passes the plain gradient through it, not the Rescale multiplier refattr uses.

    References
    ----------
    Klambauer, Unterthiner, Mayr, Hochreiter, "Self-normalizing neural networks", NeurIPS 2017,
    equation (2).

    Examples
    --------
    >>> import numpy as np
    >>> SELU().forward(np.array([[1.0, 0.0]]))[0]       # scale * 1, 0
    array([[1.05070099, 0.        ]])
    >>> SELU().derivative(np.array([0.0]))             # alpha * scale * e^0
    array([1.75809934])
    """

    piecewise_linear = False
    torch_modules = ("SELU",)
    torch_arguments = {"alpha": None, "scale": None}   # nn.SELU has PyTorch's constants only
    onnx_ops = ("Selu",)
    onnx_attributes = {"alpha": "alpha", "gamma": "scale"}
    captum = "gradient"           # not in Captum 0.9.0's list of non-linearities

    def __init__(self, alpha: float = SELU_ALPHA, scale: float = SELU_SCALE) -> None:
        self.alpha = _real("SELU", "alpha", alpha, f"alpha={SELU_ALPHA} (PyTorch's)")
        self.scale = _real("SELU", "scale", scale, f"scale={SELU_SCALE} (PyTorch's)")

    @property
    def _negative(self) -> float:
        return self.alpha * self.scale   # rounded once, as PyTorch's negcoef

    def function(self, x: np.ndarray) -> np.ndarray:
        return exponential_linear(x, self.scale, self._negative)

    def mp_function(self, z: Any) -> Any:
        """f in mpmath, for the high-precision tests (the coefficients as the float64 values used)."""
        import mpmath

        return mpmath.mpf(self.scale) * z if z > 0 else mpmath.mpf(self._negative) * mpmath.expm1(z)

    def output_bound(self, bound: float) -> float:
        return exponential_linear_bound(bound, self.scale, self._negative)

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return exponential_linear_secant(a, h, self.scale, self._negative)

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        return exponential_linear_derivative(x, self.scale, self._negative, g)

    def __repr__(self) -> str:
        return f"SELU(alpha={self.alpha}, scale={self.scale})"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> SELU:
        """PyTorch's constants (the self-normalising ones; no others are in use)."""
        return cls()
