"""Layer base classes: the contract every layer follows, and the two families that derive their
rules from one definition each.

A layer holds its parameters and nothing else. Every pass is a pure function of its arguments:

- ``forward(x) -> (y, cache)``: the output and what the backward passes need;
- ``vjp(g, cache) -> g_x``: the vector-Jacobian product with respect to the input;
- ``backward_signal(g, cache, rule)``: the signal passed down by the gradient family
  (docs/conventions.md, section 'Gradient family'): the VJP for every layer except ReLU, which
  masks it for guided backprop and deconvnet;
- ``deeplift_forward(...)`` / ``deeplift_backward(...)``: the DeepLIFT rule (docs/conventions.md,
  section 'DeepLIFT'), propagating the positive and negative parts of the difference from
  reference forward, and the multipliers of both parts backward.

Two families share their rules:

- :class:`LinearLayer` (dense, convolution, average pooling, flatten) is defined by its bias-free
  linear map ``L`` and the positive and negative parts ``L+`` and ``L-`` of its weights; the VJP and
  the DeepLIFT Linear rule follow from those.
- :class:`ElementwiseLayer` (ReLU, tanh, sigmoid, swish) is defined by ``f`` and a numerically stable
  divided difference ``secant(a, h) = (f(a + h) - f(a)) / h`` whose limit at ``h = 0`` is ``f'(a)``;
  the VJP, Rescale and RevealCancel follow from those.

Shapes passed to ``output_shape`` are example shapes (no batch axis); ``None`` stands for a size
(or, as the whole shape, a rank) that is not known until an input arrives.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .._typing import DeepLiftRule, GradientRule, MaxPoolRule, Shape
from ..errors import RuleError, ShapeError

__all__ = ["Layer", "LinearLayer", "ElementwiseLayer", "DeltaPair", "select_by_sign"]

GRADIENT_RULES = ("gradient", "guided_backprop", "deconvnet")
DEEPLIFT_RULES = ("rescale", "reveal_cancel")


@dataclass(frozen=True)
class DeltaPair:
    """What DeepLIFT knows about the neurons that feed one layer.

    Attributes
    ----------
    x, x_ref : ndarray, shape (N, ...)
        Activations on the input and on the reference.
    pos, neg : ndarray, shape (N, ...)
        The positive and negative parts Δ+ and Δ- of the difference from reference, as split by
        the layer that produced these neurons (Δ+ + Δ- equals x - x_ref up to rounding).
    """

    x: np.ndarray
    x_ref: np.ndarray
    pos: np.ndarray
    neg: np.ndarray

    @functools.cached_property
    def delta(self) -> np.ndarray:
        """Δ = x - x', computed from the two forward passes (so exact zeros stay exact); on first
        use, once (under Rescale a linear layer never needs it)."""
        return self.x - self.x_ref


def select_by_sign(delta: np.ndarray, if_pos: np.ndarray, if_neg: np.ndarray) -> np.ndarray:
    """``if_pos`` where delta > 0, ``if_neg`` where delta < 0, and their mean where delta == 0.

    This is the tutorial's 0.5 rule (docs/conventions.md, section 'Linear rule'): a neuron whose
    difference from reference is exactly zero feeds the positive and the negative part of the next
    layer with half weight each. The comparison is exact (no tolerance).

    Computed as 1(Δ > 0) if_pos + 1(Δ < 0) if_neg + 1(Δ == 0) (if_pos + if_neg) / 2: exactly one
    indicator is 1 and the other terms are exact zeros, so this equals the three-way selection
    bit for bit (up to the sign of a zero), and avoids masked writes, which are several times
    slower on random masks.
    """
    mean = if_pos + if_neg
    mean *= 0.5
    mean *= delta == 0
    return (delta > 0) * if_pos + (delta < 0) * if_neg + mean


class _Frozen(type):
    """Metaclass of :class:`Layer`: an instance is frozen once its constructor has returned."""

    def __call__(cls, *args, **kwargs):
        layer = super().__call__(*args, **kwargs)
        object.__setattr__(layer, "_frozen", True)
        return layer


def readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array``: a layer's public parameters cannot be changed in place, so
    that nothing derived from them (W+, W-, bounds) can go stale."""
    view = array.view()
    view.flags.writeable = False
    return view


class Layer(metaclass=_Frozen):
    """Base class of every refattr layer (see the module docstring for the contract).

    Layers are immutable: assigning an attribute after construction raises AttributeError, and
    parameter arrays are read-only, since derived arrays (W+ and W- for DeepLIFT, bounds) are
    computed once from them. Build a new layer to change a parameter.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen", False):
            raise AttributeError(
                f"{type(self).__name__}.{name}: layers are immutable (what is derived from the parameters, "
                f"such as W+ and W-, is computed when the layer is built); build a new "
                f"{type(self).__name__}(...) instead"
            )
        object.__setattr__(self, name, value)

    #: True when the layer is piecewise linear in its input, promising the kink protocol of exact
    #: integrated gradients (``forward_along``, ``next_kink``, ``snap_to_kink``); False when it is
    #: not. None (undeclared) counts as not piecewise linear, with kinks possible anywhere: a
    #: default must never claim exactness. Registered layers must declare it
    #: (:func:`refattr.layers.registry.register`).
    piecewise_linear: ClassVar[bool | None] = None

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        """Example shape of the output for an example input shape; raises ShapeError."""
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def vjp(self, g: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def output_bound(self, bound: float) -> float:
        """An upper bound, in exact arithmetic, on max |y| and on every partial sum the forward
        pass accumulates on the way (AvgPool2D sums a window before dividing), for inputs with
        max |x| <= ``bound``.

        The forward pass propagates it from the input instead of scanning every output for
        inf or nan: only where it exceeds half of float64's largest value (the other half covers
        the rounding of sums) is the output itself checked. ``math.inf`` (always check) unless a
        layer says otherwise, so that a new layer is always checked.
        """
        return math.inf

    #: Whether :meth:`vjp` and :meth:`backward_signal` read the values in the cache, or only the
    #: input's shape (a linear layer's VJP is L^T g at any input). True unless a layer says
    #: otherwise, so that a new layer is never handed a shape for its input.
    backward_reads_input: ClassVar[bool] = True

    def backward_cache(self, x: np.ndarray) -> Any:
        """The cache :meth:`forward` would return for ``x``, without the output where the layer
        can skip it (a backward pass needs caches, not outputs)."""
        return self.forward(x)[1]

    def backward_signal(self, g: np.ndarray, cache: Any, rule: GradientRule) -> np.ndarray:
        """Signal passed to the input by the gradient family.

        Every layer except ReLU passes the ordinary VJP under all three rules (docs/conventions.md,
        section 'Gradient family'; this matches Captum, whose guided backprop and deconvolution
        hook only ReLU modules).
        """
        if rule not in GRADIENT_RULES:
            raise RuleError(f"rule: unknown gradient-family rule {rule!r}; expected one of {GRADIENT_RULES}")
        return self.vjp(g, cache)

    # straight-line paths (exact integrated gradients, docs/conventions.md) ----------------------
    def forward_along(self, x: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """Forward pass and directional derivative on the path x + s dx just after s = 0.

        Returns ``(y, dy, cache)``: the output at s = 0, its derivative along the path for s in
        (0, ε) (the right limit), and a cache for which ``backward_signal(g, cache, "gradient")``
        is the VJP on that stretch of the path. For a smooth layer this is the ordinary forward
        pass and JVP; ReLU and MaxPool2D decide the activation pattern from (value, slope)
        lexicographically, so an input exactly at a kink takes the side the path moves into.
        """
        y, cache = self.forward(x)
        return y, self.jvp(dx, cache), cache

    def next_kink(self, x: np.ndarray, dx: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """Distance along dx to the next kink of this layer on the path x + s dx, s > 0.

        ``cache`` comes from :meth:`forward_along` at (x, dx). Returns ``(distance, events)``:
        ``distance`` of shape (N,) (inf where the layer has no kink ahead; linear and smooth layers
        have none) and ``events``, layer-specific data naming the elements whose kink lies at
        exactly that distance, to be passed to :meth:`snap_to_kink`.
        """
        return np.full(x.shape[0], np.inf), None

    def snap_to_kink(self, x: np.ndarray, events: Any, rows: np.ndarray) -> np.ndarray:
        """Put the elements named by ``events`` (from :meth:`next_kink`) exactly on their kink.

        ``x`` has moved by the kink distance, so these elements are at their kink up to rounding;
        this sets them there exactly (an ReLU input to 0, a max-pool challenger to its window's
        maximum) for the examples where ``rows`` is True, so that :meth:`forward_along` sees the
        kink and picks the side the path moves into. Returns x (modified in place).
        """
        return x

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any,
                         cache_ref: Any, *, rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        """Split the output's difference from reference into parts.

        Returns ``(pos, neg, dl_cache)``: the output's Δy+ and Δy-, and what
        :meth:`deeplift_backward` needs. With ``parts=False`` (nobody downstream reads Δy+ and
        Δy-, see :meth:`deeplift_reads_parts`) a layer may skip computing them and return None
        for both; ``dl_cache`` and the multipliers are the same either way.
        """
        raise NotImplementedError

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        """Multipliers (m_{Δx+ Δt}, m_{Δx- Δt}) of the input's parts, from those of the output.

        Callers pass the same array object twice when the two multipliers are equal (always so
        under Rescale); a layer may then skip the sign bookkeeping, which is an exact identity
        in that case, and should return one array object twice when its results are equal.
        """
        raise NotImplementedError

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        """Whether :meth:`deeplift_forward` reads ``inp.pos`` / ``inp.neg`` under ``rule``
        (otherwise only ``inp.x``, ``inp.x_ref`` and ``inp.delta``). True unless a layer says
        otherwise, so that a new layer is never handed parts that were not computed."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> Layer:
        """A random instance that accepts ``input_shape`` (used by the contract tests)."""
        raise NotImplementedError


class LinearLayer(Layer):
    """A layer y = L(x) + b with L linear: dense, convolution, average pooling, flatten.

    Subclasses define ``linear(x, part)`` and ``linear_vjp(g, part, input_shape)`` for
    ``part`` in (None, "pos", "neg"): the bias-free map with the layer's weights W, with
    W+ = max(W, 0), or with W- = min(W, 0), and its transpose.

    The DeepLIFT Linear rule (Shrikumar et al. 2017, section 3.5.1; the tutorial's "Linear layers"):
    the sign of w_i Δx_i, with Δx_i the total difference of input i, decides whether input i feeds
    Δy+ or Δy-, so with Δx+ = max(Δx, 0) and Δx- = min(Δx, 0)::

        Δy+ = L+(Δx+) + L-(Δx-)        Δy- = L-(Δx+) + L+(Δx-)

    and backwards, with M+ and M- the multipliers of Δy+ and Δy-::

        m(Δx_i > 0) = L+^T M+ + L-^T M-     m(Δx_i < 0) = L-^T M+ + L+^T M-

    and the mean of the two where Δx_i == 0 exactly (the 0.5 rule). The input's positive and
    negative parts receive the same multiplier. No per-example weight masking is needed.
    """

    piecewise_linear = True
    captum = "linear"      # Captum's DeepLift does not hook linear modules: the plain gradient

    def linear(self, x: np.ndarray, part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        raise NotImplementedError

    def linear_vjp(self, g: np.ndarray, input_shape: tuple[int, ...],
                   part: Literal["pos", "neg"] | None = None) -> np.ndarray:
        raise NotImplementedError

    backward_reads_input: ClassVar[bool] = False   # the VJP reads only cache.shape

    def affine(self, x: np.ndarray) -> np.ndarray:
        """L(x) + b, the forward map (layers with a bias override it; without one it is L(x))."""
        return self.linear(x)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The cache is the input itself (no copy); its shape is what the VJP needs, and the
        # parameter VJP of dense and convolution layers needs its values.
        return self.affine(x), x

    def vjp(self, g: np.ndarray, cache: np.ndarray) -> np.ndarray:
        return self.linear_vjp(g, cache.shape)

    def jvp(self, dx: np.ndarray, cache: Any) -> np.ndarray:
        """Directional derivative of the output along dx (forward mode): L(dx)."""
        return self.linear(dx)

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return False   # the sign of the total Δx_i decides, not the input's own split

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if not parts:
            return None, None, (inp, cache.shape)
        delta = inp.delta
        # Stack Δx+ = max(Δx, 0) over Δx- = min(Δx, 0) so that each signed map runs once.
        n = delta.shape[0]
        stacked = np.empty((2 * n,) + delta.shape[1:])
        np.maximum(delta, 0.0, out=stacked[:n])
        np.minimum(delta, 0.0, out=stacked[n:])
        lp = self.linear(stacked, "pos")
        ln = self.linear(stacked, "neg")
        pos = lp[:n] + ln[n:]
        neg = ln[:n] + lp[n:]
        return pos, neg, (inp, cache.shape)

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        inp, input_shape = dl_cache
        if m_pos is m_neg:
            # M+ == M- = M: both sign cases (and their mean) give L+^T M + L-^T M = L^T M.
            m = self.linear_vjp(m_pos, input_shape)
            return m, m
        n = m_pos.shape[0]
        stacked = np.concatenate([m_pos, m_neg])
        stacked_shape = (2 * n,) + tuple(input_shape[1:])
        gp = self.linear_vjp(stacked, stacked_shape, "pos")
        gn = self.linear_vjp(stacked, stacked_shape, "neg")
        if_pos = gp[:n] + gn[n:]   # L+^T M+ + L-^T M-
        if_neg = gn[:n] + gp[n:]   # L-^T M+ + L+^T M-
        m = select_by_sign(inp.delta, if_pos, if_neg)
        return m, m


def _check_part(part):
    if part not in (None, "pos", "neg"):
        raise RuleError(f"part: expected None, 'pos' or 'neg', got {part!r}")


class ElementwiseLayer(Layer):
    """y = f(x) applied to every element.

    Subclasses define ``function(x)`` and ``secant(a, h)``, the divided difference
    (f(a + h) - f(a)) / h computed without cancellation, equal to f'(a) at h == 0. Everything else
    derives from those two:

    - VJP: g * secant(x, 0).
    - Rescale (Shrikumar et al. 2017, section 3.5.2): m = Δy / Δx = secant(x', Δx) (see
      :meth:`deeplift_rescale_multiplier`); the output's parts are Δy+ = max(Δy, 0),
      Δy- = min(Δy, 0) (the tutorial's split); both input parts get m * M(Δy), where M(Δy) is M+ if
      Δy > 0, M- if Δy < 0 and their mean if Δy == 0 (the 0.5 rule, which keeps the split
      computation equal to the unsplit one). The paper instead sets Δy± = m Δx±; the resulting
      multipliers are the same whenever M+ == M-, which holds at every layer when all
      element-wise layers use Rescale.
    - RevealCancel (ibid., section 3.5.3; the tutorial's formulas)::

          Δy+ = ½ (f(x' + Δx+) - f(x')) + ½ (f(x' + Δx- + Δx+) - f(x' + Δx-))
          Δy- = ½ (f(x' + Δx-) - f(x')) + ½ (f(x' + Δx+ + Δx-) - f(x' + Δx+))

      with m+ = Δy+ / Δx+ = ½ secant(x', Δx+) + ½ secant(x' + Δx-, Δx+), likewise m-, so the
      limits Δx± -> 0 are exact derivatives. Δx+ feeds only Δy+ and Δx- only Δy- (no cross terms):
      for a non-monotonic f, Δy+ may be negative; it is the contribution of Δx+, not a positive part.
    """

    piecewise_linear: ClassVar[bool | None] = False

    def function(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def secant(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mp_function(self, z: Any) -> Any:
        """The same f evaluated in mpmath (``z`` an ``mpmath.mpf``, at the caller's working
        precision): the reference the contract tests hold ``secant`` to (1e-13 relative). Every
        element-wise layer declares it; mpmath is imported inside, only the tests need it."""
        raise NotImplementedError(f"{type(self).__name__} declares no mp_function")

    def derivative(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """g * f'(x) (f'(x) when g is None), f' as the limit of the divided difference.

        Subclasses override this with a closed form; taking g lets them fuse the product of
        a VJP or JVP into the same pass.
        """
        d = self.secant(x, np.zeros_like(x))
        return d if g is None else g * d

    def piece(self, x: np.ndarray) -> np.ndarray:
        """For a piecewise-linear f: a label of the linear piece each element of x lies on (equal
        labels, same piece), with the convention of :meth:`derivative` at a kink. Integrated
        gradients compares them between quadrature nodes to see where the integrand jumps. The
        default is f'(x) itself; a layer may return something cheaper (ReLU: x > 0)."""
        return self.derivative(x)

    def output_shape(self, input_shape: Shape | None) -> Shape | None:
        return input_shape

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.function(x), x

    def backward_cache(self, x: np.ndarray) -> np.ndarray:
        return x

    def vjp(self, g: np.ndarray, cache: np.ndarray) -> np.ndarray:
        return self.derivative(cache, g)

    def jvp(self, dx: np.ndarray, cache: np.ndarray) -> np.ndarray:
        return self.derivative(cache, dx)

    def deeplift_reads_parts(self, rule: DeepLiftRule) -> bool:
        return rule == "reveal_cancel"

    def deeplift_rescale_multiplier(self, x_ref: np.ndarray, delta: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Rescale's m = Δy / Δx: the stable divided difference secant(x', Δx), with limit f'(x')
        at Δx == 0. A piecewise-linear f may instead divide the forward differences (ReLU)."""
        return self.secant(x_ref, delta)

    def deeplift_forward(self, inp: DeltaPair, y: np.ndarray, y_ref: np.ndarray, cache: Any, cache_ref: Any, *,
                         rule: DeepLiftRule, maxpool_rule: MaxPoolRule | None,
                         parts: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if rule == "rescale":
            dy = y - y_ref
            m = self.deeplift_rescale_multiplier(inp.x_ref, inp.delta, dy)
            if not parts:
                return None, None, ("rescale", m, dy)
            return np.maximum(dy, 0.0), np.minimum(dy, 0.0), ("rescale", m, dy)
        if rule == "reveal_cancel":
            x_ref, d_pos, d_neg = inp.x_ref, inp.pos, inp.neg
            m_pos = 0.5 * (self.secant(x_ref, d_pos) + self.secant(x_ref + d_neg, d_pos))
            m_neg = 0.5 * (self.secant(x_ref, d_neg) + self.secant(x_ref + d_pos, d_neg))
            return m_pos * d_pos, m_neg * d_neg, ("reveal_cancel", m_pos, m_neg)
        raise RuleError(f"rule: unknown DeepLIFT rule {rule!r}; expected one of {DEEPLIFT_RULES}")

    def deeplift_backward(self, m_pos: np.ndarray, m_neg: np.ndarray, dl_cache: Any) -> tuple[np.ndarray, np.ndarray]:
        if dl_cache[0] == "rescale":
            _, m, dy = dl_cache
            out = m * (m_pos if m_pos is m_neg else select_by_sign(dy, m_pos, m_neg))
            return out, out
        _, mult_pos, mult_neg = dl_cache
        return mult_pos * m_pos, mult_neg * m_neg

    @classmethod
    def random(cls, rng: np.random.Generator, input_shape: Shape) -> ElementwiseLayer:
        return cls()


def check_rank(layer: Layer, input_shape: Shape | None, rank: int, what: str) -> None:
    """Raise ShapeError unless the example shape has the given rank (None passes)."""
    if input_shape is not None and len(input_shape) != rank:
        raise ShapeError(
            f"{type(layer).__name__}: expected {what} (an example of rank {rank}), got example shape "
            f"{tuple(input_shape)}; " + (
                "insert Flatten() before a Dense layer that follows a convolution or pooling layer"
                if rank == 1 else "the input must be NCHW images"
            )
        )
