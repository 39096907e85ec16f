"""Hypothetical contributions of one-hot inputs (Shrikumar et al. 2018, TF-MoDISco).

For a one-hot sequence x (C channels, e.g. the bases A, C, G, T, at every position), DeepLIFT's
multipliers say what every base *would* contribute at every position, not only the base that is
there: the hypothetical contribution of base c at position j is the contribution that DeepLIFT's
linear prediction gives to writing base c at j into the reference. docs/hypothetical.md derives it
and its completeness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any  # noqa: F401 - resolves the inherited hint options: dict[str, Any] of __init__

import numpy as np
from numpy.typing import ArrayLike

from .._typing import DeepLiftRule, MaxPoolRule, SoftmaxRule, Target
from ..errors import ArgumentError
from ..layers._softmax_math import SOFTMAX_RULES
from ..network import Network
from ..validation import DEFAULT_BASELINE, refuses_baselines
from ._common import check_finite
from .deeplift import _OVERFLOW_ADVICE, _has_max_pooling, _has_softmax, _propagate_in_passes, _validate
from .result import Attribution

__all__ = ["hypothetical_contributions", "HypotheticalContributions"]


@dataclass(frozen=True, eq=False, repr=False)     # Attribution's short repr, not every array
class HypotheticalContributions(Attribution):
    """The result of :func:`hypothetical_contributions`: an :class:`Attribution` whose ``values``
    are the projected contributions, with the hypothetical and channel-wise ones beside them.

    Attributes
    ----------
    values : ndarray, x's shape
        The projected contributions ``hypothetical * x`` (also :attr:`projected`): at every
        position, the credit of the base that is there; they sum to Δt (``completeness_gap``).
    hypothetical : ndarray, x's shape
        h[n, c, j]: what base c would contribute at position j, mean over the references.
    contributions : ndarray, x's shape
        DeepLIFT's channel-wise contributions C = m (x - x'), mean over the references (what
        :func:`~refattr.methods.deeplift.deeplift` returns as ``values``).
    multipliers : ndarray, x's shape
        DeepLIFT's m_{Δx Δt}, mean over the references.
    completeness_gap, error_estimate, method, options
        As for every :class:`Attribution`; ``options["delta_t"]`` is mean_k t(x) - t(x'_k).
    """

    hypothetical: np.ndarray | None = None
    contributions: np.ndarray | None = None

    @property
    def projected(self) -> np.ndarray:
        """The projected contributions, ``hypothetical * x`` (the same array as ``values``)."""
        return self.values


def _check_one_hot(x: np.ndarray) -> None:
    """ArgumentError naming the first position of x that is not one-hot along axis 1."""
    if x.ndim < 2:     # pragma: no cover - prepare() gives (N, *example_shape)
        raise ArgumentError(f"x: expected (N, C, *positions), got shape {x.shape}")
    is_bit = (x == 0.0) | (x == 1.0)
    one_per_position = x.sum(axis=1) == 1.0
    bad = ~(is_bit.all(axis=1) & one_per_position)
    if not bad.any():
        return
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    column = x[(at[0], slice(None)) + at[1:]]
    where = f"example {at[0]}" + (f", position {at[1:]}" if len(at) > 1 else "")
    raise ArgumentError(
        f"x: hypothetical contributions need a one-hot input, exactly one 1 and zeros along axis 1 (the "
        f"{x.shape[1]} channels) at every position; {where} has {np.array2string(column, threshold=8)} "
        f"({int(bad.sum())} such position(s) in all). An unknown base (all zeros) or a soft encoding has no "
        f"single base to project its credit onto, and the projected contributions would not sum to the "
        f"output's difference; use deeplift() for channel-wise contributions of such inputs, or encode every "
        f"position as one base"
    )


@refuses_baselines
def hypothetical_contributions(net: Network, x: ArrayLike, baseline: ArrayLike = DEFAULT_BASELINE,
                               target: Target = None, rule: DeepLiftRule = "rescale",
                               baseline_samples: ArrayLike | None = None, maxpool_rule: MaxPoolRule | None = None,
                               softmax_rule: SoftmaxRule | None = None) -> HypotheticalContributions:
    r"""Hypothetical and projected DeepLIFT contributions of a one-hot input (channel axis 1).

    For every (example, reference) pair, with m = DeepLIFT's multipliers m_{Δx Δt} of the input
    (:func:`~refattr.methods.deeplift.deeplift`'s ``multipliers`` for that pair alone), the
    hypothetical contribution of base c at position j is DeepLIFT's linear prediction of the
    output change from writing base c at j into the reference x'::

        h[c, j] = m[c, j] - sum_c' x'[c', j] m[c', j]  =  sum_c' m[c', j] (e_c - x'[:, j])_c'

    It is formed per pair and then averaged over the references (the mean of the products, not a
    product of means); the projected contributions are ``hypothetical * x``. docs/hypothetical.md
    gives the derivation.

    Completeness: at the base b that x holds at j, e_b - x'[:, j] = x[:, j] - x'[:, j], so h[b, j]
    is the sum over channels of DeepLIFT's contributions m (x - x') at j, and the projected
    contributions sum to Δt = mean_k t(x) - t(x'_k) (``completeness_gap``, rounding-level, except
    with ``maxpool_rule="gradient"``) whenever x is one-hot.

    Parameters
    ----------
    net : Sequential or Graph of one input
    x : array_like, shape (N, C, *positions)
        One-hot along axis 1 at every position: zeros and one 1 (e.g. (N, 4, L) for DNA, or
        (N, 4, 1, L) for a model written with 2-D convolutions). Anything else raises
        ArgumentError, before anything is computed.
    baseline : float or array_like
        One reference per example, as for :func:`~refattr.methods.deeplift.deeplift`; default 0.0
        (then h = m). Leave at 0.0 when ``baseline_samples`` is given.
    target : int, int array of shape (N,), or None
        Which output to explain; None when the network has one output.
    rule, maxpool_rule, softmax_rule
        DeepLIFT's rules, as for :func:`~refattr.methods.deeplift.deeplift` (a network with max
        pooling needs ``maxpool_rule``; ``"delta_routing"`` keeps summation-to-delta).
    baseline_samples : array_like, shape (K, C, *positions) or (N, K, C, *positions), optional
        References: one set shared by the batch, or one set per example (e.g. K dinucleotide
        shuffles of each sequence), read by rank (:func:`~refattr.validation.as_reference_sets`).
        References need not be one-hot (a background of 0.25 per base is fine).

    Returns
    -------
    HypotheticalContributions
        ``values`` (= ``projected``), ``hypothetical``, ``contributions`` (channel-wise DeepLIFT),
        ``multipliers``, all of x's shape and averaged over the references; ``completeness_gap``
        sum(projected) - Δt per example; ``error_estimate`` zeros (exact up to rounding);
        ``options``: rule, maxpool_rule, requested_maxpool_rule, softmax_rule, target,
        n_baselines, delta_t.

    Raises
    ------
    ArgumentError
        x not one-hot along axis 1; a graph of several inputs; ``baselines=``.
    ShapeError, NonFiniteError, TargetError, RuleError, UnsupportedLayerError, ResourceError
        As :func:`~refattr.methods.deeplift.deeplift`.

    Warnings
    --------
    The order matters: h is formed for every reference and then averaged. Averaging the
    multipliers and the references first and forming m̄ - x̄'·m̄ gives another result whenever the
    multipliers vary with the reference (the mean of a product is not the product of the means),
    and its projection no longer sums to Δt.

    m is one multiplier per input: m+ where Δx > 0, m- where Δx < 0, and their mean where
    Δx == 0 (DeepLIFT's 0.5 rule). They are equal under Rescale, and under RevealCancel whenever
    the first layer is linear (Dense, Conv1D/2D), as in genomics models: a linear layer gives both
    parts of an input the multiplier of its total Δx. For a base that is in neither x nor x' at
    j (Δx == 0), RevealCancel's m there is that 0.5 blend: h is then a linear prediction, not an
    exact output change, as it is on every nonlinear model.

    References
    ----------
    Shrikumar, Tian, Avsec, Shcherbina, Banerjee, Sharmin, Nair & Kundaje 2018, "Technical Note on
    Transcription Factor Motif Discovery from Importance Scores (TF-MoDISco) version 0.5.6.5",
    arXiv:1811.00416 (hypothetical importance scores). Shrikumar, Greenside & Kundaje 2017,
    "Learning Important Features Through Propagating Activation Differences", ICML.

    Examples
    --------
    One position, two bases, t = 2 x_A + 5 x_C, reference (0.5, 0.5), so t(x') = 3.5 and m = (2, 5):
    h = (2 - 3.5, 5 - 3.5) = (-1.5, 1.5), the output changes from writing A or C into the reference.

    >>> from refattr import Dense, Flatten, Sequential
    >>> net = Sequential([Flatten(), Dense([[2.0, 5.0]])])
    >>> result = hypothetical_contributions(net, [[[1.0], [0.0]]], baseline=0.5)
    >>> result.hypothetical[0, :, 0], result.projected[0, :, 0]
    (array([-1.5,  1.5]), array([-1.5,  0. ]))
    """
    graph_inputs = getattr(net, "n_inputs", 1)
    if graph_inputs != 1:
        raise ArgumentError(
            f"net: hypothetical_contributions takes a network of one one-hot input; this graph has {graph_inputs} "
            f"inputs {list(getattr(net, 'inputs', ()))}. Attribute each sequence input with a graph that takes "
            f"it alone (the others fixed inside), or use deeplift() for channel-wise contributions of all inputs"
        )
    x, t, x_rep, ref_rep, t_rep, k = _validate(net, x, baseline, target, rule, baseline_samples, maxpool_rule,
                                               softmax_rule)
    _check_one_hot(x)
    n = x.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        values, mult, delta_t = _propagate_in_passes(net, x_rep, ref_rep, t_rep, rule, maxpool_rule, softmax_rule)
        # per pair, before the mean: h[c, j] = m[c, j] - sum_c' x'[c', j] m[c', j]
        hyp = mult - (ref_rep * mult).sum(axis=1, keepdims=True)
        per_example = (n, k) + x.shape[1:]
        hyp = hyp.reshape(per_example).mean(axis=1)
        values = values.reshape(per_example).mean(axis=1)
        mult = mult.reshape(per_example).mean(axis=1)
        delta_t = delta_t.reshape(n, k).mean(axis=1)
        projected = hyp * x
        gap = projected.reshape(n, -1).sum(axis=1) - delta_t
    check_finite(delta_t, "hypothetical_contributions: t(x) - t(x')", "the explained output's difference from "
                 "reference exceeds float64's range (1.8e308): rescale the network's output")
    for name, array in (("hypothetical", hyp), ("contributions", values), ("multipliers", mult),
                        ("completeness_gap", gap)):
        check_finite(array, f"hypothetical_contributions: {name}", _OVERFLOW_ADVICE)
    return HypotheticalContributions(
        values=projected, completeness_gap=gap, error_estimate=np.zeros(n), method="hypothetical_contributions",
        options={"rule": rule, "maxpool_rule": maxpool_rule if _has_max_pooling(net) else None,
                 "requested_maxpool_rule": maxpool_rule,
                 "softmax_rule": (softmax_rule or SOFTMAX_RULES[0]) if _has_softmax(net) else None,
                 "target": t, "n_baselines": None if baseline_samples is None else k, "delta_t": delta_t},
        multipliers=mult, hypothetical=hyp, contributions=values,
    )
