"""DeepLIFT (Shrikumar, Greenside & Kundaje 2017) with the Rescale and RevealCancel rules.

The per-layer rules live next to each layer's forward pass and VJP
(:meth:`~refattr.layers.base.Layer.deeplift_forward` / ``deeplift_backward``); this module is the
driver: it runs the network on the input and on the reference, propagates the positive and
negative parts of the difference from reference forward through every layer, then the
multipliers of both parts backward from the target, and reads off the contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .._typing import DeepLiftRule, MaxPoolRule, SoftmaxRule, Target
from ..errors import NonFiniteError, RuleError, UnsupportedLayerError
from ..layers._join import JoinLayer
from ..layers.base import DEEPLIFT_RULES, DeltaPair, Layer, select_by_sign
from ..layers._softmax_math import SOFTMAX_RULES, AlongDim
from ..layers.max_pool import MAXPOOL_RULES, is_max_pooling
from ..network import Network
from ..validation import DEFAULT_BASELINE, pair_with_references, refuses_baselines
from ._common import check_finite, one_hot, pick, prepare
from ._inputs import several_inputs
from .result import Attribution

__all__ = ["deeplift", "deeplift_layers", "LayerContributions"]


@dataclass(frozen=True, eq=False)
class LayerContributions:
    """What DeepLIFT assigns to the neurons of one layer (see :func:`deeplift_layers`).

    Attributes
    ----------
    index : int
        The value's number: for a Sequential, 0 is the network input and i >= 1 the output of
        ``net.layers[i - 1]``; for a Graph, its inputs come first, then its nodes in order.
    name : str
        "input", or the repr of the layer whose output these neurons are.
    delta_pos, delta_neg : ndarray, shape (N, *neuron_shape)
        Δ+ and Δ-, the two parts of the difference from reference, as split by the layer that
        produced the neurons (for the input, max(Δx, 0) and min(Δx, 0)).
    m_pos, m_neg : ndarray, shape (N, *neuron_shape)
        The multipliers m_{Δ+ Δt} and m_{Δ- Δt}.
    contributions : ndarray, shape (N, *neuron_shape)
        C_{Δ Δt} = m_pos Δ+ + m_neg Δ- for every neuron.
    completeness_gap : ndarray, shape (N,)
        The contributions that cross the cut just after this value (``frontier``), summed over
        its neurons, minus Δt = t(x) - t(x'). Summation-to-delta says it is zero at every value;
        it is rounding-level for every layer rule in refattr except ``maxpool_rule="gradient"``,
        which does not conserve it. On a chain the cut is the value alone, so this is the sum of
        ``contributions`` minus Δt.
    frontier : tuple of str
        The values of that cut: in a Graph, the values defined up to this one (in the nodes'
        order) that a later node reads; every path from the inputs to the output crosses it once,
        and its values count with the multipliers their later readers pass back. A value that
        a skip connection bypasses does not carry all of Δt alone; its cut does.
    """

    index: int
    name: str
    delta_pos: np.ndarray
    delta_neg: np.ndarray
    m_pos: np.ndarray
    m_neg: np.ndarray
    contributions: np.ndarray
    completeness_gap: np.ndarray
    frontier: tuple[str, ...] = ()


# Validation -------------------------------------------------------------------------------------

def _check_rule_names(rule, maxpool_rule, softmax_rule=None):
    if not isinstance(rule, str) or rule not in DEEPLIFT_RULES:
        raise RuleError(f"rule: unknown DeepLIFT rule {rule!r}; expected one of {DEEPLIFT_RULES}")
    if softmax_rule is not None and (not isinstance(softmax_rule, str) or softmax_rule not in SOFTMAX_RULES):
        raise RuleError(f"softmax_rule: unknown Softmax rule {softmax_rule!r}; expected None (the default, "
                        f"{SOFTMAX_RULES[0]!r}) or one of {SOFTMAX_RULES} (docs/softmax.md)")
    if maxpool_rule is not None and (not isinstance(maxpool_rule, str) or maxpool_rule not in MAXPOOL_RULES):
        raise RuleError(
            f"maxpool_rule: unknown max-pooling rule {maxpool_rule!r}; expected None or one of {MAXPOOL_RULES}"
        )


def _check_layers(net, maxpool_rule):
    """Every layer has a DeepLIFT rule, and max pooling has the one the caller chose."""
    for i, layer in enumerate(net.layers):
        if type(layer).deeplift_forward is Layer.deeplift_forward or \
                type(layer).deeplift_backward is Layer.deeplift_backward:
            raise UnsupportedLayerError(
                f"net: layers[{i}] {type(layer).__name__} has no DeepLIFT rule; DeepLIFT is defined for "
                f"linear layers (Dense, Conv1D/2D, AvgPool1D/2D, AdaptiveAvgPool1D/2D, Flatten, Reshape, Add, Concat), "
                f"element-wise activations, Mul and, with maxpool_rule=, MaxPool1D/2D"
            )
        if is_max_pooling(layer) and maxpool_rule is None:
            raise RuleError(
                f"maxpool_rule: the network has a {type(layer).__name__} layer (layers[{i}]), for which DeepLIFT "
                f"defines no rule, and maxpool_rule is None; pass maxpool_rule= one of {MAXPOOL_RULES} "
                f"('delta_routing' keeps summation-to-delta, 'gradient' reproduces the original "
                f"DeepLIFT code and may leave a completeness gap)"
            )


_OVERFLOW_ADVICE = ("DeepLIFT's multipliers or contributions exceed float64's range (1.8e308) although every "
                    "activation is finite: rescale the weights, or x and the baseline; deeplift_layers() names "
                    "the layer where they stop being finite")


def _has_softmax(net) -> bool:
    return any(isinstance(layer, AlongDim) for layer in net.layers)


def _has_max_pooling(net) -> bool:
    return any(is_max_pooling(layer) for layer in net.layers)


def _validate(net, x, baseline, target, rule, baseline_samples, maxpool_rule, softmax_rule=None):
    # Cheap checks only, all before the first forward pass.
    _check_rule_names(rule, maxpool_rule, softmax_rule)
    x, t = prepare(net, x, target)      # net is a Sequential, x fits it, target is in range
    _check_layers(net, maxpool_rule)
    x_rep, ref_rep, t_rep, k = pair_with_references(x, t, baseline, baseline_samples)
    return x, t, x_rep, ref_rep, t_rep, k


# The propagation --------------------------------------------------------------------------------

def _propagate(net, x, x_ref, t, rule, maxpool_rule, keep_layers, softmax_rule=None):
    """Run DeepLIFT on one batch of (input, reference) pairs, all validated.

    Works on any network by its value numbering (``net.node_args``): a value read by several
    layers (fan-out) gets the sum of the multipliers they pass back (the chain rule for
    multipliers, Shrikumar et al. 2017, section 3.2); a join (Add, Concat, Mul) takes the parts of
    each value it reads and returns one pair of multipliers per input.

    Returns (values, multipliers, delta_t, layers) where ``layers`` is None unless
    ``keep_layers``, else the list of :class:`LayerContributions` for every value.
    """
    # Two forward passes of the same shape: row i of both goes through the same arithmetic, so
    # a neuron whose inputs agree exactly has Δ exactly 0 (the 0.5 rule sees true zeros).
    trace = net.trace(x)
    trace_ref = net.trace(x_ref)
    acts, acts_ref = trace.activations, trace_ref.activations
    layers, node_args = net.layers, net.node_args
    n_in = net.n_inputs
    n_values = n_in + len(layers)
    delta = x - x_ref
    # A value's parts are computed only when a layer reading it reads parts (RevealCancel at an
    # element-wise layer) or when they are reported; under Rescale no layer reads them.
    read = [keep_layers] * n_values
    for layer, args in zip(layers, node_args):
        if layer.deeplift_reads_parts(rule):
            for a in args:
                read[a] = True
    parts = [None] * n_values
    parts[0] = (np.maximum(delta, 0.0), np.minimum(delta, 0.0))
    dl_caches = []
    for j, (layer, args) in enumerate(zip(layers, node_args)):
        out = n_in + j
        pairs = tuple(DeltaPair(acts[a], acts_ref[a], *(parts[a] or (None, None))) for a in args)
        joins = isinstance(layer, JoinLayer)
        own = {"softmax_rule": softmax_rule} if isinstance(layer, AlongDim) else {}     # Softmax, LogSoftmax
        pos, neg, dl_cache = layer.deeplift_forward(
            pairs if joins else pairs[0], acts[out], acts_ref[out], trace.caches[j], trace_ref.caches[j],
            rule=rule, maxpool_rule=maxpool_rule, parts=read[out], **own,
        )
        dl_caches.append(dl_cache)
        if read[out]:
            parts[out] = (pos, neg)
    # m_{Δt+ Δt} = m_{Δt- Δt} = 1 for the target output, 0 for the others. The same array is
    # passed for both parts: layers recognise m_pos is m_neg and skip the sign bookkeeping,
    # which is then an exact identity (both parts would get the same multiplier).
    m = [None] * n_values
    top = one_hot(t, acts[-1].shape[1])
    m[-1] = (top, top)
    edges = [None] * len(layers)      # per node, the multipliers it passes to each value it reads
    for j in range(len(layers) - 1, -1, -1):
        layer, out = layers[j], n_in + j
        below = layer.deeplift_backward(*m[out], dl_caches[j])
        below = below if isinstance(layer, JoinLayer) else (below,)
        if keep_layers:
            edges[j] = below
        else:
            m[out] = None
        for a, (mp, mn) in zip(node_args[j], below):
            if m[a] is None:
                m[a] = (mp, mn)
            else:       # fan-out: the multipliers of every reader add up
                sp = m[a][0] + mp
                m[a] = (sp, sp) if (m[a][0] is m[a][1] and mp is mn) else (sp, m[a][1] + mn)
    m_pos, m_neg = m[0] if m[0] is not None else ((z := np.zeros_like(delta)), z)
    in_pos, in_neg = parts[0]
    values = m_pos * in_pos + m_neg * in_neg
    mult = m_pos if m_pos is m_neg else select_by_sign(delta, m_pos, m_neg)
    delta_t = pick(trace.output, t) - pick(trace_ref.output, t)
    records = None
    if keep_layers:
        names = net.value_names()
        records = []
        for i in range(n_values):
            d_pos, d_neg = parts[i]
            mp, mn = m[i] if m[i] is not None else ((z := np.zeros_like(d_pos)), z)
            c = mp * d_pos + mn * d_neg
            frontier, flow = _frontier(i, n_in, node_args, edges, parts, c)
            gap = flow - delta_t
            records.append(LayerContributions(
                index=i, name=names[i], delta_pos=d_pos, delta_neg=d_neg, m_pos=mp, m_neg=mn,
                contributions=c, completeness_gap=gap, frontier=tuple(names[v] for v in frontier),
            ))
    return values, mult, delta_t, records


def _frontier(i, n_in, node_args, edges, parts, c_i):
    """The cut of the graph just after value ``i`` and the contributions that cross it.

    In the nodes' order, the values defined up to ``i`` (all inputs together when ``i`` is an
    input) that a later node reads, plus ``i`` itself where nothing reads it (the output): every
    path from the inputs to the output crosses this set once, so summation-to-delta holds over it.
    A value's neurons count with the multipliers passed back by its later readers only (those
    through earlier readers are already inside other members of the cut). On a chain the cut is
    ``{i}`` and the sum is value i's own contributions. Returns (cut, per-row sum).
    """
    last = max(i, n_in - 1) - n_in          # the last node defined (-1: only the inputs)
    flow = np.zeros(c_i.shape[0])
    cut = []
    for v in range(last + n_in + 1):
        crossing = [(r, k) for r in range(last + 1, len(node_args)) for k, a in enumerate(node_args[r]) if a == v]
        if not crossing:
            if v == i and v == len(node_args) + n_in - 1:   # the output
                cut.append(v)
                flow = flow + c_i.reshape(c_i.shape[0], -1).sum(axis=1)
            continue
        cut.append(v)
        d_pos, d_neg = parts[v]
        for r, k in crossing:
            mp, mn = edges[r][k]
            flow = flow + (mp * d_pos + mn * d_neg).reshape(d_pos.shape[0], -1).sum(axis=1)
    return cut, flow


def _propagate_in_passes(net, x, x_ref, t, rule, maxpool_rule, softmax_rule=None):
    """:func:`_propagate` on passes of ``net.pass_size`` rows (values, multipliers, delta_t).

    Every row's arithmetic is the same in any pass (each layer rule acts row by row), so this
    only bounds the working set: passes whose activations fit in the caches are up to twice as
    fast per row (:meth:`~refattr.network.Sequential.pass_size`).
    """
    rows = x.shape[0]
    size = net.pass_size(x.shape[1:])
    if rows <= size:
        return _propagate(net, x, x_ref, t, rule, maxpool_rule, False, softmax_rule)[:3]
    values = np.empty_like(x)
    mult = np.empty_like(x)
    delta_t = np.empty(rows)
    for start in range(0, rows, size):
        part = slice(start, min(start + size, rows))
        values[part], mult[part], delta_t[part], _ = _propagate(net, x[part], x_ref[part], t[part], rule,
                                                                 maxpool_rule, False, softmax_rule)
    return values, mult, delta_t


# Public functions -------------------------------------------------------------------------------

@refuses_baselines
@several_inputs
def deeplift(net: Network, x: ArrayLike, baseline: ArrayLike = DEFAULT_BASELINE, target: Target = None,
             rule: DeepLiftRule = "rescale", baseline_samples: ArrayLike | None = None,
             maxpool_rule: MaxPoolRule | None = None, softmax_rule: SoftmaxRule | None = None) -> Attribution:
    r"""DeepLIFT contributions C_{Δx_i Δt} of every input feature to Δt = t(x) - t(x').

    With Δx = x - x', split into Δx+ = max(Δx, 0) and Δx- = min(Δx, 0), each neuron carries
    two multipliers, one per part, propagated backward from m_{Δt+ Δt} = m_{Δt- Δt} = 1 by the
    chain rule for multipliers, m_{Δx Δt} = Σ_j Σ_{*∈{+,-}} m_{Δx Δy_j*} m_{Δy_j* Δt}; then::

        values = C_{Δx Δt} = m+ Δx+ + m- Δx-        Σ_i C_{Δx_i Δt} = Δt  (summation-to-delta)

    Layer rules (docs/conventions.md, section 'DeepLIFT'):

    - **Reshapes** (Flatten, Reshape): the parts and their multipliers pass through unchanged.
    - **Joins** (in a :class:`~refattr.graph.Graph`): Add and Concat by the Linear rule; Mul by the
      Shapley split C_a = Δa (b' + Δb/2), C_b = Δb (a' + Δa/2) (docs/conventions.md, section
      'Graphs'); a value read by several nodes sums the multipliers they pass back.
    - **Linear** (Dense, Conv2D, AvgPool2D): the sign of w_i Δx_i, with Δx_i the
      total difference, decides whether input i feeds Δy+ or Δy- (both of its parts go the
      same way); an input with Δx_i == 0 exactly feeds both with 0.5 w_i. With W+ = max(W, 0),
      W- = min(W, 0): Δy+ = W+ max(Δx, 0) + W- min(Δx, 0), Δy- = W- max(Δx, 0) + W+ min(Δx, 0).
    - **Rescale** (``rule="rescale"``; element-wise y = f(x)): m = Δy / Δx, computed as a stable
      divided difference of f that tends to f'(x') as Δx -> 0 (no threshold).
    - **RevealCancel** (``rule="reveal_cancel"``): Δy+ = ½[f(x' + Δx+) - f(x')] +
      ½[f(x' + Δx- + Δx+) - f(x' + Δx-)], and Δy- likewise with + and - swapped (a two-player
      Shapley split); m+ = Δy+ / Δx+, m- = Δy- / Δx-, as averages of divided differences.
      Δx+ feeds only Δy+ and Δx- only Δy- (no cross terms); for a non-monotonic f (swish) Δy+
      may be negative: it is the contribution of Δx+, not a positive part.
    - **MaxPool2D**: DeepLIFT defines no rule; ``maxpool_rule`` must name one
      (:class:`~refattr.layers.MaxPool2D` documents ``"delta_routing"`` and ``"gradient"``).

    Parameters
    ----------
    net : Sequential or Graph
    x : array_like, shape (N, *example_shape)
        Converted to float64; NaN or Inf raise NonFiniteError.
    baseline : float or array_like, shape example_shape, (1, *example_shape) or (N, *example_shape)
        The reference x'. Default 0.0. Leave at 0.0 when ``baseline_samples`` is given.
    target : int, int array of shape (N,), or None
        Which output t_n = f(x_n)[target_n] to explain; None when the network has one output.
    rule : {"rescale", "reveal_cancel"}
        The rule at element-wise layers.
    baseline_samples : array_like, shape (K, *example_shape) or (N, K, *example_shape), optional
        K references per example: one set shared by the batch, or one set per example (e.g. K
        dinucleotide-shuffled copies of each sequence), told apart by rank alone
        (:func:`~refattr.validation.as_reference_sets`: an array of x's shape is N shared
        references). The result is the mean of the K attributions (the DeepSHAP construction,
        Lundberg & Lee 2017), equal to K single-reference calls averaged, and completeness holds
        against mean_k t(x) - t(x'_k). The N * K pairs are checked against the machine's memory
        first (ResourceError). ``baselines=`` is refused (see Warnings).
    maxpool_rule : {None, "delta_routing", "gradient"}
        Required when the network has a MaxPool2D layer; checked before anything is computed.
        On a network without max pooling it has nothing to apply to and is not used:
        ``options["maxpool_rule"]`` is then None and ``options["requested_maxpool_rule"]`` what
        was passed (no warning, so that one call can serve networks with and without pooling).
    softmax_rule : {None, "centered", "logsumexp"}
        The rule of Softmax and LogSoftmax layers, which DeepLIFT does not define (docs/softmax.md):
        None is ``"centered"``; both keep summation-to-delta. Not used on a network without them
        (``options["softmax_rule"]`` is then None).

    Returns
    -------
    Attribution
        ``values``: C_{Δx Δt}, x's shape. ``multipliers``: m_{Δx Δt}, x's shape: m+ where
        Δx > 0, m- where Δx < 0, and their mean where Δx == 0 (the input's own 0.5 rule; there
        the value is 0 whatever the multiplier). With ``baseline_samples`` it is the mean over the K
        references of those multipliers, so ``values`` is mean_k m_k (x - x'_k), not
        ``multipliers * (x - mean(baseline_samples))``. ``completeness_gap``: sum(values) - Δt per
        example (rounding-level, except with ``maxpool_rule="gradient"``). ``error_estimate``:
        zeros (the result is exact up to rounding: no integral is approximated).
        ``options``: rule, maxpool_rule (the rule applied, None without max pooling),
        requested_maxpool_rule, target, n_baselines, delta_t.

    Raises
    ------
    RuleError
        Unknown ``rule`` or ``maxpool_rule``; a MaxPool2D layer with ``maxpool_rule=None``.
    ResourceError
        ``baseline_samples`` whose N * K (input, reference) pairs would not fit in memory.
    ShapeError, NonFiniteError, TargetError, UnsupportedLayerError
        As every method; nothing is computed on bad input. NonFiniteError also when a finite
        input overflows: in a layer's output (the message names the layer), in x - baseline, or
        in the multipliers (:func:`deeplift_layers` names the layer).
    ArgumentError
        ``baselines=`` (see Warnings); nothing is computed.

    Warnings
    --------
    refattr differs from peers by design (docs/conventions.md, section 'Peer conventions'):

    - Captum's ``DeepLift`` takes ``baselines=``, one baseline per example (refattr's
      ``baseline``, which also takes x's shape); its ``DeepLiftShap`` takes ``baselines=`` as a
      distribution (refattr's ``baseline_samples``). The ambiguous name ``baselines=`` raises
      ArgumentError naming both.
    - Captum's ``DeepLift`` (0.9.0) falls back to the gradient f'(x) at a nonlinearity where
      |Δx| < 1e-10, and has no rule for SiLU/swish: modules outside its list of supported
      nonlinearities are not hooked, so the plain gradient passes through them. refattr uses
      the divided difference at every Δx (its limit at Δx -> 0 is f'(x')), and swish gets
      Rescale and RevealCancel like any element-wise f.
    - The original DeepLIFT code adds a 1e-7 pseudocount to near-zero Δx+ / Δx- in RevealCancel
      and falls back to the gradient below |Δx| < 1e-7 in Rescale; refattr has no threshold.
    - Near-zero differences therefore give slightly different multipliers from both peers; the
      contributions differ by at most about 1e-7 |f'| per neuron (the pseudocount), and by
      O(f'' Δx²) where a peer switches to the gradient.

    References
    ----------
    Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through Propagating
    Activation Differences", ICML, sections 3.2 (multipliers, chain rule), 3.3 (the reference),
    3.4 (positive and negative parts), 3.5.1-3.5.3 (Linear, Rescale, RevealCancel rules).
    Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions" (DeepSHAP).

    Examples
    --------
    The paper's thresholding example (Shrikumar et al. 2017, figure 2): y = relu(x - 10) with
    reference 0. At x = 15, Δy = 5 and the multiplier is 5 / 15.

    >>> from refattr import Dense, ReLU, Sequential
    >>> from refattr.methods.deeplift import deeplift
    >>> net = Sequential([Dense([[1.0]], [-10.0]), ReLU()])
    >>> result = deeplift(net, [[15.0], [9.0]])
    >>> result.values                      # relu(15 - 10) - relu(0 - 10), relu(9 - 10) - 0
    array([[5.],
           [0.]])
    >>> float(result.multipliers[0, 0]) == 5 / 15
    True
    """
    x, t, x_rep, ref_rep, t_rep, k = _validate(net, x, baseline, target, rule, baseline_samples, maxpool_rule,
                                               softmax_rule)
    # Overflow in the layer rules shows as non-finite values, checked below (the two forward
    # passes check every activation themselves).
    with np.errstate(over="ignore", invalid="ignore"):
        values, mult, delta_t = _propagate_in_passes(net, x_rep, ref_rep, t_rep, rule, maxpool_rule, softmax_rule)
        if k > 1:
            n = x.shape[0]
            values = values.reshape((n, k) + x.shape[1:]).mean(axis=1)
            mult = mult.reshape((n, k) + x.shape[1:]).mean(axis=1)
            delta_t = delta_t.reshape(n, k).mean(axis=1)
        gap = values.reshape(values.shape[0], -1).sum(axis=1) - delta_t
    check_finite(delta_t, "deeplift: t(x) - t(x')", "the explained output's difference from reference exceeds "
                 "float64's range (1.8e308): rescale the network's output (or x and the baseline)")
    check_finite(values, "deeplift: values", _OVERFLOW_ADVICE)
    check_finite(mult, "deeplift: multipliers", _OVERFLOW_ADVICE)
    check_finite(gap, "deeplift: completeness_gap", _OVERFLOW_ADVICE)
    used_pool_rule = maxpool_rule if _has_max_pooling(net) else None
    return Attribution(
        values=values, completeness_gap=gap, error_estimate=np.zeros(x.shape[0]), method="deeplift",
        options={"rule": rule, "maxpool_rule": used_pool_rule, "requested_maxpool_rule": maxpool_rule,
                 "softmax_rule": (softmax_rule or SOFTMAX_RULES[0]) if _has_softmax(net) else None,
                 "target": t, "n_baselines": None if baseline_samples is None else k, "delta_t": delta_t},
        multipliers=mult,
    )


@refuses_baselines
@several_inputs
def deeplift_layers(net: Network, x: ArrayLike, baseline: ArrayLike = DEFAULT_BASELINE, target: Target = None,
                    rule: DeepLiftRule = "rescale", maxpool_rule: MaxPoolRule | None = None,
                    softmax_rule: SoftmaxRule | None = None) -> list[LayerContributions]:
    """DeepLIFT's parts, multipliers and contributions for the neurons of every layer.

    Same arguments and rules as :func:`deeplift` (one reference per example; tile ``x`` to use
    several). Returns ``len(net.layers) + 1`` :class:`LayerContributions`, for the network
    input (index 0, whose ``contributions`` are ``deeplift(...).values``) and the output of
    every layer (the last is the network output, whose contributions are Δ of the target
    output and 0 elsewhere). Summation-to-delta holds at every one: each ``completeness_gap``
    is rounding-level (except with ``maxpool_rule="gradient"``).

    Examples
    --------
    >>> from refattr import Dense, ReLU, Sequential
    >>> from refattr.methods.deeplift import deeplift_layers
    >>> net = Sequential([Dense([[1.0, -1.0]]), ReLU(), Dense([[2.0]])])
    >>> [float(layer.contributions.sum()) for layer in deeplift_layers(net, [[3.0, 1.0]])]
    [4.0, 4.0, 4.0, 4.0]
    """
    x, t, x_rep, ref_rep, _, _ = _validate(net, x, baseline, target, rule, None, maxpool_rule, softmax_rule)
    with np.errstate(over="ignore", invalid="ignore"):
        records = _propagate(net, x_rep, ref_rep, t, rule, maxpool_rule, True, softmax_rule)[3]
    where = _first_overflow(net, records)
    if where is not None:
        raise NonFiniteError(f"deeplift_layers: {where} overflowed to inf or nan although every activation is "
                             f"finite; float64 holds magnitudes up to 1.8e308: rescale the weights, or x and "
                             f"the baseline")
    return records


def _first_overflow(net, records) -> str | None:
    """Where DeepLIFT's arithmetic first stopped being finite: the parts going up, the multipliers
    coming down, then the contributions; None when everything is finite."""
    def finite(*arrays):
        return all(np.isfinite(a).all() for a in arrays)
    for r in records[1:]:
        if not finite(r.delta_pos, r.delta_neg):
            return f"layers[{r.index - 1}] {r.name}: the parts Δ+ and Δ- of its output"
    for r in reversed(records[:-1]):
        if not finite(r.m_pos, r.m_neg):
            if len(net.node_args) == len(records) - 1 and net.n_inputs == 1 and not hasattr(net, "nodes"):
                return f"layers[{r.index}] {net.layers[r.index]!r}: the multipliers it passes to its input"
            return f"value {r.name!r}: the multipliers passed back to it by the nodes that read it"
    for r in records:
        if not finite(r.contributions):
            return f"the contributions of the neurons of {r.name} (multiplier times difference)"
    return None
