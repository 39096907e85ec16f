"""Integrated gradients: fixed quadrature rules, adaptive quadrature, and the exact path walk."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from numpy.typing import ArrayLike

from .. import quadrature
from .._typing import IGRule, Target
from ..errors import ArgumentError, RefattrError, ResourceError, RuleError
from ..kernels.walk import add_scaled_rows
from ..layers._join import JoinLayer, LinearJoin
from ..layers.base import ElementwiseLayer, LinearLayer
from ..layers.registry import registered
from ..network import Network, Sequential
from ..progress import SILENT, RefattrWarning, caller_stacklevel, enabled, task
from ..validation import DEFAULT_BASELINE, pair_with_references, refuses_baselines
from ._adaptive import integrate_rows
from ._common import check_finite, one_hot, pick, prepare
from ._pieces import PieceLog
from ._piecewise_quad import integrate_piecewise, kinked_nodes, path_probe
from ._inputs import several_inputs
from ._walk_graph import walk_graph
from .result import Attribution

__all__ = ["integrated_gradients", "IG_RULES", "DEFAULT_CHUNK_SIZE"]

#: Every value ``rule`` accepts.
IG_RULES = ("auto", "exact", "quad", "piecewise") + tuple(quadrature.RULES)

#: Default number of path points (one example at one alpha) per forward/backward pass.
DEFAULT_CHUNK_SIZE = 1024

#: The exact walk recomputes every activation from scratch every this many pieces, so that the
#: rounding of the incremental updates a += ds * da cannot accumulate.
_REFRESH_EVERY = 64

#: quad's absolute tolerance, in units of each example's integrand scale (see ``_quad``):
#: below this the float64 rounding of the integrand itself dominates.
_QUAD_ATOL = 1e-15

#: Intervals quad may use for one (example, baseline) row before it stops unconverged.
QUAD_MAX_INTERVALS = 1000

#: Largest memory the fixed rules' node and weight arrays may take (3 arrays of n_steps float64).
_MAX_NODE_BYTES = 2**30

#: Factor on a fixed rule's companion difference |Q_n - Q_companion|. Asymptotically (a resolved
#: smooth integrand) the difference is about 1x the error (left, right), 3x (trapezoid), 8x
#: (midpoint) and far more (Gauss-Legendre); before that regime it can fall below the error: on
#: 5,000 random tanh/sigmoid/swish/ReLU MLP paths with 3 to 24 nodes the error reached 3.1x the
#: bare difference for trapezoid n = 3, 2.8x for Gauss-Legendre n = 3, 4.4x for left n = 4 and at
#: most 1.6x from n = 6 on. 4 (8 for left and right) covers them, together with _RESOLVED.
_COMPANION_SAFETY = {"left": 8.0, "right": 8.0, "midpoint": 4.0, "trapezoid": 4.0, "gauss_legendre": 4.0}

#: A fixed rule's bound is claimed only where it is at most this fraction of the integrand's scale
#: (the largest |(x - x')_i dt/dx_i| at the first, middle and last nodes): beyond it the rule does not resolve the
#: integrand and the companion difference says little. With the factors above, none of the 1,147
#: bounds within 1 % was below the true error on the 5,000 random paths; of the bounds above 1 %,
#: 15 were.
_RESOLVED = 1e-2

#: Relative rounding allowed in the completeness check of an error estimate (see ``_honest``).
_GAP_ROUNDING = 1e-12

#: The smallest ``max_evaluations``: quad's first interval takes 17 points, piecewise's first grid 17 probes.
_MIN_BUDGET = 17

#: Examples that ran out of ``max_evaluations`` named one by one in the error message.
_BUDGET_LISTED = 5




@refuses_baselines
@several_inputs
def integrated_gradients(net: Network, x: ArrayLike, baseline: ArrayLike = DEFAULT_BASELINE, target: Target = None,
                         rule: IGRule = "auto", n_steps: int = 50, rtol: float = 1e-10,
                         baseline_samples: ArrayLike | None = None,
                         chunk_size: int = DEFAULT_CHUNK_SIZE, max_evaluations: int | None = None,
                         progress: bool | None = None) -> Attribution:
    r"""Integrated gradients along the straight path from the baseline x' to the input x.

    .. math::

        \phi_i = (x_i - x'_i) \int_0^1 \frac{\partial t}{\partial x_i}\big(x' + a (x - x')\big)\, da
               \approx (x_i - x'_i) \sum_k w_k \frac{\partial t}{\partial x_i}\big(x' + a_k (x - x')\big)

    where t = f(.)[target] is the explained output. By the fundamental theorem of line integrals
    the attributions sum to t(x) - t(x') (completeness) when the integral is exact;
    ``completeness_gap`` reports sum(values) - (t(x) - t(x')) per example.

    Parameters
    ----------
    net : Sequential or Graph
    x : array_like, shape (N, *example_shape)
    baseline : float or array_like, shape example_shape, (1, *example_shape) or (N, *example_shape)
        x'. Default 0.0. Cannot be combined with ``baseline_samples``.
    target : int, int array of shape (N,), or None
        Which output to explain; None when the network has one output.
    rule : str
        How the integral is computed (docs/conventions.md, section 'Integrated gradients'):

        - ``"left"``, ``"right"`` (the IG paper's Riemann sum), ``"midpoint"``, ``"trapezoid"``,
          ``"gauss_legendre"``: fixed rules from :mod:`refattr.quadrature` with ``n_steps``
          gradient evaluations per example;
        - ``"quad"``: adaptive Gauss-Kronrod (7-15 points) on each example's integrand to relative
          tolerance ``rtol``, every example subdivided on its own (see Notes);
        - ``"exact"``: piecewise-linear networks only (Dense, Conv2D, AvgPool2D, Flatten, ReLU,
          MaxPool2D). The gradient is constant between the points where a ReLU input crosses 0 or
          a max-pool winner changes; the walk finds every such point and sums gradient x length
          over the pieces, exact up to rounding;
        - ``"piecewise"``: networks that mix kinked layers (ReLU, LeakyReLU, max pooling) with smooth
          ones (tanh, sigmoid, swish, GELU, ...). Per example the path is split where a ReLU input
          crosses 0 or a max-pool winner changes (bracketed on a grid of probes, each a forward
          pass with its directional derivative, and closed by a safeguarded Newton iteration to
          a few units of rounding in alpha), and each smooth piece is integrated by Gauss-Legendre
          of increasing order (2, 3, 5, 8, 13, 21, then bisection) to relative tolerance ``rtol``
          (see Notes);
        - ``"auto"`` (default): ``"exact"`` when ``net.piecewise_linear``; ``"piecewise"`` when the
          network mixes kinked layers with smooth ones (on small mixed networks it measured 15-40x
          fewer gradient evaluations than ``"quad"``, with a smaller true error, and it cannot miss a
          unit that opens and closes between quad's nodes); ``"quad"`` on smooth networks.
    n_steps : int
        Number of gradient evaluations per example for the fixed rules (>= 1, >= 2 for
        trapezoid; at most 44,739,242, whose nodes and weights take 1 GiB, and 10,000 for
        Gauss-Legendre). Ignored (but validated) by the other rules.
    rtol : float
        Relative tolerance of ``"quad"``, > 0. Validated, and ignored by the other rules.
    baseline_samples : array_like, shape (K, *example_shape) or (N, K, *example_shape), optional
        K references per example: one set shared by the batch, or one set per example, told
        apart by rank alone (:func:`~refattr.validation.as_reference_sets`). The result is the
        mean of the K attributions (expected gradients / DeepSHAP style), equal to K
        single-reference calls averaged, and completeness holds against mean_k (t(x) - t(x'_k)).
        The N * K pairs are checked against the machine's memory first (ResourceError).
        ``baselines=`` is refused (see Warnings).
    chunk_size : int
        Largest number of path points (one example at one alpha) that go through the network in
        one pass; memory grows linearly with it (about ``chunk_size`` x the total size of all
        activations x 8 bytes x 3). Fixed rules and ``"exact"`` pass fewer points at a time where
        ``chunk_size`` points would hold more than 2 MiB of activations (a cache-sized pass is
        faster), but never fewer than 8. For ``"exact"`` it bounds the number of examples walked
        together.
        Results do not depend on it beyond rounding (1e-14).
    max_evaluations : int or None
        A budget for ``"quad"`` and ``"piecewise"``: gradient evaluations (for piecewise, plus the
        probes that locate the kinks) one example may use, per (example, baseline) pair with
        ``baseline_samples``; at least 17. The first pass is always made (quad: the 17 points of
        [0, 1]; piecewise: the 17-probe grid and Gauss-Legendre orders 2 and 3 on every piece found,
        which on a network with many kinks can pass the budget); after it, an example refines only
        while the next step fits. An example that stops short of ``rtol`` because of the budget
        raises ResourceError once the whole batch is done (see Raises). The error estimate of an
        example stopped early is the rule's own at that point: on 450 partial results (random
        ReLU + tanh MLPs, budgets 17 to 527) quad's was never below the true error, piecewise's
        (stopped at low Gauss-Legendre orders, where |Q_3 - Q_2| says little) was once.
        Default None: no budget (quad still stops at 1,000 intervals and piecewise at 1,000
        bisections per example, with ``*_converged`` False and no error). Validated, and ignored
        by the other rules.
    progress : bool or None
        Show progress on standard error (examples done, pieces or evaluations so far, ETA; drawn
        by tqdm where it is installed) once the call has run 2 seconds. None (default): as
        :mod:`refattr.progress` decides (the innermost ``refattr.progress.enabled(...)``, else the
        environment variable ``REFATTR_PROGRESS``, else whether standard error is a terminal);
        True: always; False: never. Nothing is written to standard output.

    Returns
    -------
    Attribution
        ``values`` of x's shape; ``completeness_gap`` (N,); ``error_estimate`` (N,), a bound on
        max_i |values_i - exact_i| per example, or ``inf`` where no bound can be claimed:

        - exact: 0.0 (exact up to rounding);
        - quad: the sum over the example's intervals of each interval's bound (see Notes);
        - piecewise: per feature, the sum over pieces of |Q_n - Q_m| (the last two Gauss-Legendre
          orders) plus, per crossing, its final bracket's width times 2 max |v_i| (Notes);
        - fixed rules: max_i of c |Q_n - Q_companion|, where the companion rule reuses the same
          gradients with coarser weights (:func:`refattr.quadrature.companion_weights`) and c = 8
          for left and right (whose difference is asymptotically equal to the error, not above
          it), 4 for the others (before the asymptotic regime the difference was seen up to 4.4
          times below the error at n <= 4, 1.6 times from n = 6 on). ``inf`` where the
          activation pattern (ReLU signs, max-pool winners) differs between the nodes of the
          example (the integrand jumps between nodes, and no difference of two rules on the same
          nodes bounds the error there), and where the bound exceeds 1 % of the integrand's scale
          (the largest |(x - x')_i dt/dx_i| at the first, middle and last nodes: the rule does not
          resolve the integrand). None when n_steps is too small to have a companion (n = 1; midpoint and
          trapezoid n = 2).

        Every finite estimate is checked against completeness: the exact integral is complete,
        so |completeness_gap| is at most the sum over features of their errors. Where the gap
        exceeds the sum of the per-feature bounds (plus 1e-12 relative rounding), the estimate is
        disproved and reported as ``inf`` (and quad's ``quad_converged`` is False).
        ``options["error_estimate_note"]`` gives the reason per example ("" where the bound
        stands). With ``baseline_samples`` the estimate is the mean of the K per-baseline estimates (a
        bound for the error of the mean whenever each is a bound).

        ``options`` holds ``rule`` (the rule used; ``requested_rule`` is what was passed),
        ``target``, ``chunk_size``, ``n_baselines`` (K or None) and:

        - exact: ``breakpoints`` (per example an increasing array of the alphas in (0, 1) where
          the activation pattern changes; with ``baseline_samples`` a list of K such arrays per example)
          and ``n_pieces`` (pieces of positive length, shape (N,) or (N, K));
        - quad: ``n_evaluations`` (gradient evaluations of the whole batch), ``quad_converged``
          (per example; (N, K) pairs reduce to "all converged"), ``n_intervals`` (per example, or
          (N, K)), ``rtol``, ``error_scale`` (the per-example scale s_n of the Notes),
          ``error_estimate_note``;
        - piecewise: ``n_evaluations`` (per example: ``n_gradients``, the gradient evaluations of
          the rules, plus ``n_probes``, the forward passes with a directional derivative that
          located the kinks), ``n_gradients``, ``n_probes``, ``n_pieces`` (crossings + 1),
          ``n_intervals`` (the rules' intervals, pieces after bisection), ``breakpoints`` (as for exact), ``piecewise_converged``, ``rtol``, ``error_estimate_note``; with
          ``baseline_samples`` per (example, baseline) pair, (N, K);
        - fixed rules: ``n_steps``, ``nodes``, ``weights``, ``error_estimate_note``.

    Raises
    ------
    RuleError
        Unknown rule; ``"exact"`` on a network with a smooth nonlinearity (the message names the
        layer); ``n_steps`` not an int or too small; ``rtol`` not a positive number.
    ResourceError
        ``n_steps`` too large to hold its nodes and weights, or Gauss-Legendre above 10,000 nodes.
        ``baseline_samples`` whose N * K (input, reference) pairs would not fit in memory.
        ``max_evaluations`` reached by an example before ``rtol``: the message gives, per such
        example, the sum of the attributions reached against t(x) - t(x'), the error estimate and
        the evaluations used, and how to ask for less; the error's ``partial`` attribute holds the
        whole result reached (an Attribution, as would have been returned; for a graph of several
        inputs its ``values`` are the inputs' flattened features side by side).
    ShapeError, NonFiniteError, TargetError
        Bad ``x``, ``baseline``, ``baseline_samples`` or ``target``; both ``baseline`` and
        ``baseline_samples``.
    ArgumentError
        ``baselines=`` (see Warnings); nothing is computed.
        ``max_evaluations`` not None nor an int >= 17; ``progress`` not a bool nor None.

    Warns
    -----
    RefattrWarning
        ``rule="quad"`` on a piecewise-linear network, where ``rule="exact"`` (what ``"auto"``
        picks) is exact and cheaper.

    Notes
    -----
    Conventions at kinks and ties (exact comparisons, no tolerance anywhere):

    - Fixed rules and quad evaluate the ordinary gradient, so at a node that lands exactly on a
      ReLU kink ReLU'(0) = 0, and at an exact max-pool tie the first cell in row-major window
      order wins (the IG paper's right sum puts nodes on such kinks in the examples below).
    - The exact walk determines each piece's pattern at its left end from (value, slope)
      lexicographically: a ReLU unit is active on the piece iff z > 0, or z == 0 and dz/da > 0;
      a max-pool window's winner is the largest value, then the steepest slope, then the first
      cell. This is the pattern at every interior point of the piece, so it agrees with what the
      gradient returns there, including a unit that stays at exactly 0 along a whole piece
      (inactive, as ReLU'(0) = 0). When a kink is reached, the units (or max-pool challengers)
      that define it are set exactly onto it before the next piece's pattern is read, so rounding
      cannot create spurious pieces.
    - quad: each example (and baseline) starts from [0, 1] and bisects its own worst intervals
      until the sum of their bounds, in units of the example's integrand scale s_n (the largest
      |(x - x')_i dt/dx_i| at the ends and nodes of [0, 1]; 1 where that is 0), is at most
      max(1e-15, rtol * max_i |phi_i| / s_n), or it has used 1,000 intervals
      (``quad_converged`` False). Its decisions read only its own integrand, so its result does
      not depend on the batch beyond rounding. An interval's bound is |K15 - G7| (Kronrod minus
      the embedded Gauss result) where the activation pattern is the same at its ends and all 15
      nodes, and h (max v - min v) over those 17 points where it changes: the integrand jumps
      inside, both the integral and K15 lie in [h min v, h max v], and bisection brackets the
      jump. What no sampled bound sees: a pattern that changes and changes back between two
      neighbouring points, or a smooth spike that no node hits (tanh(10^6 x)); the completeness
      check above catches such a miss whenever it moves the sum of the attributions. quad on a
      ReLU network brackets every kink, which costs about 35 bisections each: use ``"exact"``
      there (``"auto"`` does).
    - piecewise: what its estimate covers, and what it cannot see, is said in
      :mod:`refattr.methods._piecewise_quad`. In short: the estimate covers every piece's rule
      error and the location of every crossing found; a crossing is missed only where a pattern
      changes and changes back between two probes although both tangent lines predict no kink
      there, and no node of the piece's rules falls inside. Every node is checked to lie on its
      piece's pattern, and the completeness gap (the exact integral is complete) against the
      summed estimate; where either fails the example is located again on a grid 8 times finer
      (three times at most, then the estimate is ``inf`` with the reason in
      ``error_estimate_note``). Kinks of layers declared smooth (ELU with alpha != 1, SELU,
      Softplus's switch to the identity) are not located: Gauss-Legendre and bisection resolve
      them as a rough spot of a smooth piece, at a higher cost.
    - The exact walk advances all examples of a chunk together, each to its own next kink: per
      piece one forward-mode pass (JVP) above the first kinked layer and one VJP, each restricted
      to the examples whose pattern changed below or above the layer, respectively; the linear
      layers below the first kink are applied once.

    Warnings
    --------
    Captum's ``baselines=`` is one baseline per example (refattr's ``baseline``, which also takes
    x's shape); a distribution of references to average over is ``baseline_samples=``. The
    ambiguous name ``baselines=`` raises ArgumentError naming both.

    Captum's ``riemann_trapezoid`` uses weights that sum to (n - 1) / n and rounds nodes and
    weights to float32; refattr's rules sum to 1 in float64 (docs/conventions.md, section
    'Captum 0.9.0'). Captum's default method is Gauss-Legendre with 50 steps, the same as
    ``rule="gauss_legendre"``.

    References
    ----------
    Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks", ICML: eq. (1)
    (the definition), proposition 1 (completeness), section 5 (the Riemann approximation with
    m steps, the ``"right"`` rule).

    Examples
    --------
    The tutorial's saturation example f(x) = 1 - max(0, 1 - x) with x = 2 and x' = 0: the gradient
    is 1 on [0, 1) and 0 beyond, so along x' + a (x - x') = 2a it is 1 for a < 1/2 and the
    integral is 2 * 1/2 = 1 = f(2) - f(0).

    >>> from refattr import Dense, ReLU, Sequential
    >>> from refattr.methods.integrated_gradients import integrated_gradients
    >>> f = Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])
    >>> result = integrated_gradients(f, [[2.0]])
    >>> result.values, result.options["breakpoints"]
    (array([[1.]]), [array([0.5])])

    The IG paper's right Riemann sum with 4 steps has nodes 1/4, 1/2, 3/4, 1 and gradients
    1, 0 (ReLU'(0) = 0 at the kink), 0, 0: the value is 2 * 1/4 = 0.5.

    >>> integrated_gradients(f, [[2.0]], rule="right", n_steps=4).values
    array([[0.5]])
    """
    x, t = prepare(net, x, target)
    if not isinstance(rule, str) or rule not in IG_RULES:
        raise RuleError(f"rule: unknown integrated-gradients rule {rule!r}; expected one of {IG_RULES}")
    if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise RuleError(f"n_steps: expected an int >= 1 (gradient evaluations per example), got {n_steps!r}")
    if rule in quadrature.RULES:
        quadrature.check_n(n_steps, rule, quadrature.MIN_STEPS[rule])
        if 24 * int(n_steps) > _MAX_NODE_BYTES:
            raise ResourceError(
                f"n_steps: {n_steps} nodes would need {24 * int(n_steps) / 2**30:.3g} GiB for the nodes and "
                f"weights alone (and {n_steps} gradient evaluations per example); at most "
                f"{_MAX_NODE_BYTES // 24} are accepted. Fixed rules converge long before on smooth networks; "
                f"use rule='quad' for a tolerance-driven result or rule='exact' on piecewise-linear networks"
            )
    if (isinstance(rtol, (bool, np.bool_)) or not isinstance(rtol, numbers.Real)
            or not math.isfinite(rtol) or not 0 < rtol < 1):
        raise RuleError(f"rtol: expected a float with 0 < rtol < 1 (relative tolerance of rule 'quad'), "
                        f"got {rtol!r}")
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise RefattrError(f"chunk_size: expected an int >= 1 (path points per pass), got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if max_evaluations is not None:
        if (isinstance(max_evaluations, (bool, np.bool_)) or not isinstance(max_evaluations, numbers.Integral)
                or max_evaluations < _MIN_BUDGET):
            raise ArgumentError(f"max_evaluations: expected None (no budget) or an int >= {_MIN_BUDGET} (gradient "
                                f"evaluations per example; quad's first interval takes 17), got {max_evaluations!r}")
        max_evaluations = int(max_evaluations)

    n = x.shape[0]
    inputs, refs, targets, k = pair_with_references(x, t, baseline, baseline_samples)

    if rule == "auto":
        used = "exact" if net.piecewise_linear else ("piecewise" if kinked_nodes(net) else "quad")
    else:
        used = rule
    if used in ("piecewise", "exact"):
        for i, layer in enumerate(net.layers):
            if layer.piecewise_linear is None:
                raise RuleError(
                    f"rule: {used!r} needs every layer to declare piecewise_linear; layers[{i}] {layer!r} does "
                    f"not (a layer class sets it to True only with the kink protocol of exact integrated "
                    f"gradients: forward_along, next_kink, snap_to_kink); use rule='quad' or a fixed rule such "
                    f"as 'gauss_legendre'"
                )
    if used == "quad" and net.piecewise_linear:
        warnings.warn(
            "integrated_gradients: rule='quad' on a piecewise-linear network; its integrand is piecewise "
            "constant, and quad brackets every kink by bisection (about 35 bisections of 17 gradient "
            "evaluations each), while rule='exact' (what rule='auto' picks here) is exact up to rounding and "
            "cheaper: one gradient per linear piece. Where quad is deliberate (comparing integrators), filter "
            "refattr.progress.RefattrWarning", RefattrWarning, stacklevel=caller_stacklevel())
    if used == "exact":
        pl = ", ".join(e.name for e in registered() if e.piecewise_linear)
        for i, layer in enumerate(net.layers):
            if layer.piecewise_linear is not True:
                raise RuleError(
                    f"rule: 'exact' needs a piecewise-linear network ({pl}); layers[{i}] {layer!r} is not "
                    f"piecewise linear; use rule='quad' or a fixed rule such as 'gauss_legendre'"
                )

    options = {"rule": used, "requested_rule": rule, "target": t, "chunk_size": chunk_size,
               "n_baselines": k if baseline_samples is not None else None}
    m = inputs.shape[0]
    fixed = used in quadrature.RULES
    unit = "gradients" if fixed else ("examples" if baseline_samples is None else "paths")
    with enabled(progress), task(f"integrated gradients ({used})", m * int(n_steps) if fixed else m, unit) as bar:
        # t at both ends first: a finite input that overflows inside the network is reported naming the
        # layer (by the checked forward pass) before any rule runs
        t_in, t_ref = _outputs(net, inputs, targets, chunk_size), _outputs(net, refs, targets, chunk_size)
        bounds, why_not = None, None      # per-row per-feature error bounds; why a row has none ("" if it has)
        budget = {}                       # quad, piecewise: per row evaluations used and budget exhausted
        if used == "exact":
            values, pieces, breaks = _exact(net, inputs, refs, targets, chunk_size, bar)
            if baseline_samples is None:
                options.update(breakpoints=breaks, n_pieces=pieces)
            else:
                options.update(breakpoints=[breaks[i * k:(i + 1) * k] for i in range(n)],
                               n_pieces=pieces.reshape(n, k))
        elif used == "quad":
            values, bounds, info = _quad(net, inputs, refs, targets, float(rtol), chunk_size, max_evaluations, bar)
            budget = {"used": info.pop("evaluations"), "out": info.pop("out_of_budget")}
            why_not = np.full(m, "")
            options.update(rtol=float(rtol), **info)
        elif used == "piecewise":
            values, bounds, info = _piecewise(net, inputs, refs, targets, float(rtol), chunk_size, t_in, t_ref,
                                              max_evaluations, bar)
            budget = {"used": info["n_probes"] + info["n_gradients"], "out": info["out_of_budget"]}
            why_not = np.where(info["missed_crossing"], "a crossing was missed (a node off its piece's pattern, "
                               "or the completeness gap above the estimate) after locating on finer grids: no "
                               "bound", "")
            counts = {"n_evaluations": info["n_probes"] + info["n_gradients"], "n_gradients": info["n_gradients"],
                      "n_probes": info["n_probes"], "n_pieces": info["n_pieces"], "n_intervals": info["n_intervals"]}
            breaks = info["breakpoints"]
            if k > 1:
                counts = {key: v.reshape(n, k) for key, v in counts.items()}
                breaks = [breaks[i * k:(i + 1) * k] for i in range(n)]
            options.update(rtol=float(rtol), breakpoints=breaks, piecewise_converged=info["converged"], **counts)
        else:
            values, bounds, why_not, nodes, weights = _fixed(net, inputs, refs, targets, used, int(n_steps),
                                                             chunk_size, bar)
            options.update(n_steps=int(n_steps), nodes=nodes, weights=weights)

    values = check_finite(values, "integrated_gradients: values",
                          "the path integral overflowed between finite ends; rescale the input or the weights")
    # completeness against t(x) - t(x'), per (example, baseline) pair, then the mean over baselines
    with np.errstate(over="ignore", invalid="ignore"):
        delta_t = t_in - t_ref
    delta_t = check_finite(delta_t, "integrated_gradients: t(x) - t(x')",
                           "the difference of the two outputs overflowed; rescale the network's output")
    if used == "exact":
        error = np.zeros(m)
    elif bounds is None:
        error = None
    else:
        error, contradicted = _honest(values, bounds, why_not != "", delta_t, np.abs(t_in) + np.abs(t_ref))
        note = np.where(contradicted, "the completeness gap exceeds the summed error bounds: no bound", why_not)
        if used in ("quad", "piecewise"):
            options[f"{used}_converged"] = options[f"{used}_converged"] & ~contradicted
            budget["short"] = budget["out"] & ~options[f"{used}_converged"]
        if used == "piecewise" and k > 1:
            options["piecewise_converged"] = options["piecewise_converged"].reshape(n, k).all(axis=1)
        options["error_estimate_note"] = note if k == 1 else note.reshape(n, k)
        if used == "quad" and k > 1:
            options["quad_converged"] = options["quad_converged"].reshape(n, k).all(axis=1)
            options["n_intervals"] = options["n_intervals"].reshape(n, k)
            options["error_scale"] = options["error_scale"].reshape(n, k)
    rows = (values.reshape(m, -1), delta_t, error)      # per (example, baseline) pair, for the budget error
    if k > 1:
        values = values.reshape((n, k) + x.shape[1:]).mean(axis=1)
        delta_t = delta_t.reshape(n, k).mean(axis=1)
        error = None if error is None else error.reshape(n, k).mean(axis=1)
    gap = values.reshape(n, -1).sum(axis=1) - delta_t
    result = Attribution(values=values, completeness_gap=gap, error_estimate=error,
                         method="integrated_gradients", options=options)
    if budget.get("short", np.zeros(0, dtype=bool)).any():
        raise _budget_error(result, rows, budget, max_evaluations, float(rtol), k if baseline_samples is not None
                            else None, net.piecewise_linear)
    return result


def _budget_error(result, rows, budget, max_evaluations, rtol, k, piecewise_linear):
    """The ResourceError of examples that ran out of ``max_evaluations`` before ``rtol``, with the
    estimate reached per example and ``partial``, the whole result."""
    flat, delta_t, error = rows
    short = np.flatnonzero(budget["short"])
    rule = result.options["rule"]
    lines = []
    for r in short[:_BUDGET_LISTED]:
        where = f"example {r}" if k is None else f"example {r // k}, baseline {r % k}"
        wanted = rtol * np.abs(flat[r]).max()
        lines.append(f"{where}: sum of attributions {flat[r].sum():.10g} against t(x) - t(x') = {delta_t[r]:.10g}, "
                     f"error estimate {error[r]:.3g} (rtol x max|values| = {wanted:.3g}), "
                     f"{int(budget['used'][r]):,} evaluations")
    if short.size > _BUDGET_LISTED:
        lines.append(f"... and {short.size - _BUDGET_LISTED} more")
    exact = " rule='exact' on this piecewise-linear network (exact, one gradient per linear piece)," \
        if piecewise_linear else ""
    err = ResourceError(
        f"max_evaluations: {short.size} of {len(flat)} {'paths' if k else 'examples'} used their budget of "
        f"{max_evaluations:,} evaluations before rule={rule!r} reached rtol={rtol:g}: " + "; ".join(lines)
        + ". The result reached is in this error's attribute `partial` (values, error_estimate and options of "
        f"every example). To ask for less: a larger rtol (e.g. rtol={min(rtol * 1e4, 1e-2):g}),{exact} a fixed "
        "rule that costs n_steps gradients per example (rule='gauss_legendre', n_steps=64, with a companion "
        "error estimate), or a larger max_evaluations")
    err.partial = result
    return err


def _honest(values, bounds, untrusted, delta_t, t_size):
    """max_i of the per-feature bounds, or inf where no bound can be claimed. Returns (error, contradicted).

    The completeness gap sum_i values_i - (t(x) - t(x')) is the sum of the per-feature errors
    (the exact integral is complete), so |gap| <= sum_i bound_i must hold up to the rounding of the
    sums; where it does not, the bounds are disproved and the row gets inf. Rows flagged
    ``untrusted`` (no valid bound at all) get inf too.
    """
    m = values.shape[0]
    flat, b = values.reshape(m, -1), bounds.reshape(m, -1)
    gap = np.abs(flat.sum(axis=1) - delta_t)
    rounding = _GAP_ROUNDING * (np.abs(flat).sum(axis=1) + t_size)
    contradicted = ~untrusted & (gap > b.sum(axis=1) + rounding)
    error = np.where(untrusted | contradicted, np.inf, b.max(axis=1))
    return error, contradicted


# --------------------------------------------------------------------------------------------
# gradients and outputs in chunks
# --------------------------------------------------------------------------------------------
def _outputs(net, points, targets, chunk_size):
    """t(points) per row, in chunks."""
    out = np.empty(points.shape[0])
    for start in range(0, points.shape[0], chunk_size):
        stop = min(start + chunk_size, points.shape[0])
        out[start:stop] = pick(net.trace(points[start:stop]).output, targets[start:stop])
    return out


def _gradients(net, points, targets, patterns=False):
    """dt/dx at each row of ``points`` (one pass), and the rows' activation patterns (see
    ``_pattern``; None without ``patterns`` or for a network without kinks)."""
    trace = net.trace(points, outputs=False)
    grads = net.backward(one_hot(targets, net.n_outputs(points.shape[1:])), trace)
    return grads, (_pattern(net, trace) if patterns else None)


def _pattern(net, trace):
    """Per row, a fingerprint of the smooth piece the point lies on: (P,) uint64, or None.

    Piecewise-linear non-linear layers (ReLU, max pooling) make the integrand jump where their
    pattern changes. A layer's pattern is, for an element-wise layer, the label of the linear
    piece of each input (``ElementwiseLayer.piece``; ReLU: x > 0), for any other the integer arrays
    of its cache (max pooling: the winning cells); a layer whose cache holds no integer array, and
    any layer that does not declare ``piecewise_linear``, gives its input, so every point differs
    from every other (no interval is trusted to be smooth: the safe side). The fingerprint hashes each row's pattern bytes as 64-bit words with fixed random
    odd multipliers, summed modulo 2^64: integer arithmetic, so a row's fingerprint does not
    depend on the rows computed with it, equal patterns give equal fingerprints, and different
    ones collide with probability about 2^-64 (a collision would only leave a companion bound
    standing). Storing and comparing full float patterns made Gauss-Legendre on the benchmark CNN
    1.5x slower.
    """
    fingerprint = None
    for i, layer in enumerate(net.layers):
        if layer.piecewise_linear is False or isinstance(layer, (LinearLayer, LinearJoin)):
            continue
        if isinstance(layer, JoinLayer):    # a join of undeclared linearity: its inputs, as one part
            x_in = np.concatenate([trace.activations[a].reshape(trace.activations[a].shape[0], -1)
                                   for a in net.node_args[i]], axis=1)
        else:
            x_in = trace.activations[net.node_args[i][0]]
        rows = x_in.shape[0]
        if layer.piecewise_linear is None:      # undeclared: kinks may be anywhere
            parts = [x_in.reshape(rows, -1)]
        elif isinstance(layer, ElementwiseLayer):
            parts = [layer.piece(x_in).reshape(rows, -1)]
        else:
            cache = trace.caches[i] if isinstance(trace.caches[i], tuple) else (trace.caches[i],)
            parts = [c.reshape(rows, -1) for c in cache if isinstance(c, np.ndarray) and c.dtype.kind in "iu"
                     and c.ndim >= 1 and c.shape[0] == rows] or [x_in.reshape(rows, -1)]
        for j, part in enumerate(parts):
            f = _row_hash(part, i, j)
            fingerprint = f if fingerprint is None else fingerprint + f
    return fingerprint


_HASH_WEIGHTS: dict = {}


def _row_hash(part: np.ndarray, layer_index: int, part_index: int) -> np.ndarray:
    """sum_k word_k * c_k mod 2^64 over the 64-bit words of each row's bytes (bools packed to bits)."""
    rows = part.shape[0]
    data = np.packbits(part, axis=1) if part.dtype == bool else np.ascontiguousarray(part).view(np.uint8)
    data = data.reshape(rows, -1)
    pad = (-data.shape[1]) % 8
    if pad:
        data = np.concatenate([data, np.zeros((rows, pad), dtype=np.uint8)], axis=1)
    words = np.ascontiguousarray(data).view(np.uint64)
    key = (layer_index, part_index, words.shape[1])
    if key not in _HASH_WEIGHTS:
        rng = np.random.default_rng(list(key))
        _HASH_WEIGHTS[key] = rng.integers(0, 2**63, size=words.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return (words * _HASH_WEIGHTS[key]).sum(axis=1, dtype=np.uint64)


# --------------------------------------------------------------------------------------------
# fixed rules
# --------------------------------------------------------------------------------------------
def _fixed(net, inputs, refs, targets, rule, n_steps, chunk_size, bar=SILENT):
    """sum_k w_k grad(x' + a_k (x - x')) for every row, evaluated in chunks of (node, row) pairs.

    Pairs are ordered node-major and each row's sum is accumulated in increasing k, so the result
    does not depend on ``chunk_size`` (only on the gradient of each row, which is computed the
    same way in any batch up to the rounding of BLAS blocking).

    Returns values, per-feature error bounds (|Q_n - Q_companion| times the rule's safety factor,
    or None without a companion), per row why it has no bound ("" where it has one: see
    ``_COMPANION_SAFETY`` and ``_RESOLVED``), nodes, weights.
    """
    nodes, weights = quadrature.nodes_and_weights(rule, n_steps)
    companion = quadrature.companion_weights(rule, n_steps)
    delta = inputs - refs
    m = inputs.shape[0]
    total = np.zeros_like(inputs)
    total_c = None if companion is None else np.zeros_like(inputs)
    first_pattern = None
    kinked = np.zeros(m, dtype=bool)
    # the integrand's scale per row: its largest entry |(x - x')_i dt/dx_i| at the first, middle
    # and last nodes (three nodes are enough to size it; all of them cost 1.1-1.3x on the CNN)
    scale = np.zeros(m)
    scale_nodes = {0, n_steps // 2, n_steps - 1}
    # at most chunk_size points per pass, fewer where they would not fit in the caches (the
    # benchmark CNN's 1600 GL-50 points: ~640 ms in passes of 1024, ~310 ms in passes of 11)
    pass_size = min(chunk_size, net.pass_size(inputs.shape[1:]))
    for start in range(0, n_steps * m, pass_size):
        stop = min(start + pass_size, n_steps * m)
        pair = np.arange(start, stop)
        node, row = pair // m, pair % m
        shape = (-1,) + (1,) * (inputs.ndim - 1)
        points = refs[row] + nodes[node].reshape(shape) * delta[row]
        grads, pattern = _gradients(net, points, targets[row], patterns=companion is not None)
        bar.add(stop - start)
        if pattern is not None:
            if first_pattern is None:
                first_pattern = np.empty(m, dtype=np.uint64)
            at_first = node == 0
            first_pattern[row[at_first]] = pattern[at_first]
            later = ~at_first
            kinked[row[later]] |= pattern[later] != first_pattern[row[later]]
        # rows of one node are contiguous within the chunk and hold consecutive examples
        for kk in np.unique(node):
            sel = np.nonzero(node == kk)[0]
            lo, hi = sel[0], sel[-1] + 1
            rows = slice(row[lo], row[hi - 1] + 1)
            total[rows] += weights[kk] * grads[lo:hi]
            if total_c is not None:
                total_c[rows] += companion[kk] * grads[lo:hi]
                if kk in scale_nodes:
                    size = np.abs(grads[lo:hi] * delta[rows]).reshape(hi - lo, -1).max(axis=1)
                    scale[rows] = np.maximum(scale[rows], size)
    values = delta * total
    if total_c is None:
        return values, None, np.full(m, ""), nodes, weights
    bounds = _COMPANION_SAFETY[rule] * np.abs(values - delta * total_c)
    unresolved = bounds.reshape(m, -1).max(axis=1) > _RESOLVED * scale
    why_not = np.where(kinked, "the activation pattern changes between nodes: no bound",
                       np.where(unresolved, "the rule does not resolve the integrand (its bound exceeds 1% of the "
                                            "integrand's scale): no bound", ""))
    return values, bounds, why_not, nodes, weights


# --------------------------------------------------------------------------------------------
# adaptive quadrature
# --------------------------------------------------------------------------------------------
def _quad(net, inputs, refs, targets, rtol, chunk_size, max_evaluations=None, bar=SILENT):
    """Adaptive Gauss-Kronrod on each row's integrand (x - x') * grad(x' + a (x - x')), row by row.

    Returns values, per-feature error bounds, and the diagnostics for ``options`` (with
    ``evaluations`` and ``out_of_budget`` per row, for the budget).
    """
    delta = inputs - refs
    m = inputs.shape[0]
    shape = (-1,) + (1,) * (inputs.ndim - 1)

    def evaluate(rows, alphas):
        points = refs[rows] + alphas.reshape(shape) * delta[rows]
        grads, pattern = _gradients(net, points, targets[rows], patterns=True)
        return (grads * delta[rows]).reshape(rows.size, -1), pattern

    def scale(first):
        # s_n: the largest integrand entry at the ends and nodes of [0, 1]; 1 where it is 0 there
        s = np.abs(first).max(axis=(1, 2))
        return np.where(s > 0, s, 1.0)

    d = int(np.prod(inputs.shape[1:]))
    batch = max(min(chunk_size, net.pass_size(inputs.shape[1:])), 17)
    integral, bounds, converged, n_intervals, n_points, s, used, out = integrate_rows(
        evaluate, m, d, scale, rtol, _QUAD_ATOL, QUAD_MAX_INTERVALS, batch, max_evaluations, bar)
    return (integral.reshape(inputs.shape), bounds.reshape(inputs.shape),
            {"n_evaluations": n_points, "quad_converged": converged, "n_intervals": n_intervals,
             "error_scale": s, "evaluations": used, "out_of_budget": out})


def _piecewise(net, inputs, refs, targets, rtol, chunk_size, t_in, t_ref, max_evaluations=None, bar=SILENT):
    """Each row's path split at its kinks, every smooth piece integrated by Gauss-Legendre
    (:mod:`refattr.methods._piecewise_quad`). Returns values, per-feature error bounds, diagnostics."""
    delta = inputs - refs
    shape = (-1,) + (1,) * (inputs.ndim - 1)

    def evaluate(rows, alphas):
        points = refs[rows] + alphas.reshape(shape) * delta[rows]
        grads, pattern = _gradients(net, points, targets[rows], patterns=True)
        return (grads * delta[rows]).reshape(rows.size, -1), pattern

    with np.errstate(over="ignore", invalid="ignore"):
        delta_t, t_size = t_in - t_ref, np.abs(t_in) + np.abs(t_ref)
    d = int(np.prod(inputs.shape[1:]))
    batch = min(chunk_size, net.pass_size(inputs.shape[1:]))
    values, bounds, info = integrate_piecewise(path_probe(net, refs, delta, _pattern), evaluate, inputs.shape[0], d,
                                               delta_t, t_size, rtol, _QUAD_ATOL, batch,
                                               kinked=bool(kinked_nodes(net)), max_evaluations=max_evaluations,
                                               bar=bar)
    return values.reshape(inputs.shape), bounds.reshape(inputs.shape), info


# --------------------------------------------------------------------------------------------
# the exact walk (piecewise-linear networks)
# --------------------------------------------------------------------------------------------
def _exact(net, inputs, refs, targets, chunk_size, bar=SILENT):
    """Exact IG for every row, walking chunks of rows together. Returns values, n_pieces, breakpoints.

    ``bar`` hears of every finished example and piece as the walk (chain or graph) goes."""
    m = inputs.shape[0]
    values = np.empty_like(inputs)
    pieces = np.zeros(m, dtype=np.int64)
    breaks: list[np.ndarray] = []
    # Walk at most a cache-sized pass of rows together, as _fixed does. Besides the cache, this
    # keeps each step's dense products small: on the benchmark CNN with 2 threads, 32 rows walked
    # together took 57 s (numba's and OpenBLAS's thread pools contending for two cores, every
    # step), 11 rows at a time 8.9 s for the same 32 rows.
    size = min(chunk_size, net.pass_size(inputs.shape[1:]))
    for start in range(0, m, size):
        stop = min(start + size, m)
        if isinstance(net, Sequential):
            v, p, b = _walk(net, inputs[start:stop], refs[start:stop], targets[start:stop], bar)
        else:
            v, p, b = walk_graph(net, inputs[start:stop], refs[start:stop], targets[start:stop], bar)
        values[start:stop] = v
        pieces[start:stop] = p
        breaks.extend(b)
    return values, pieces, breaks


def _changed_rows(old, new, n):
    """Rows whose piece cache differs (arrays compared exactly; tuples element by element)."""
    if isinstance(old, np.ndarray):
        return (old != new).reshape(n, -1).any(axis=1)
    if isinstance(old, tuple):
        out = np.zeros(n, dtype=bool)
        for a, b in zip(old, new):
            if isinstance(a, np.ndarray):
                out |= _changed_rows(a, b, n)
        return out
    return np.ones(n, dtype=bool)


def _bshape(v, ndim):
    return v.reshape((-1,) + (1,) * (ndim - 1))


def _walk(net, inputs, refs, targets, bar=SILENT):
    """Walk the straight paths of a batch from alpha = 0 to 1, each example to its own kinks.

    Layers below the first non-linear layer (index ``p``) are affine along the path, so the input
    of layer p is exactly A0 + alpha * dA, and the VJP through them is applied once, to the
    accumulated signal S = sum over pieces of (length x gradient at layer p's input).

    Above p, per example: ``xs[i]`` / ``dxs[i]`` are the value and slope (d/d alpha) of layer i's
    input, ``caches[i]`` the activation pattern of the current piece, ``g_in[i]`` the backward
    signal at layer i's input. Each step: every kinked layer proposes the distance to its next
    kink, every example moves to the nearest of them (or to alpha = 1), the elements that define
    that kink are snapped onto it, the new patterns are read bottom-up (JVPs of linear layers
    recomputed only for examples whose slope below changed) and the signals top-down (VJPs only
    where a pattern above changed).
    """
    layers = net.layers
    nl = len(layers)
    p = next((i for i, layer in enumerate(layers) if not isinstance(layer, LinearLayer)), nl)
    delta = inputs - refs
    n_all = inputs.shape[0]

    # affine part below the first kinked layer
    a0, da, lin_shapes = refs, delta, []
    for layer in layers[:p]:
        lin_shapes.append(a0.shape)
        a0, _ = layer.forward(a0)
        da = layer.linear(da)
    g_top = one_hot(targets, net.n_outputs(inputs.shape[1:]))

    def finish(signal_at_p):
        g = signal_at_p
        for layer, shape in zip(reversed(layers[:p]), reversed(lin_shapes)):
            g = layer.linear_vjp(g, shape)
        return delta * g

    if p == nl:     # an affine network: one piece
        bar.add(n_all, pieces=n_all)
        return finish(g_top), np.ones(n_all, dtype=np.int64), [np.empty(0) for _ in range(n_all)]

    kinked = [i for i in range(p, nl) if not isinstance(layers[i], LinearLayer)]
    linear = [i for i in range(p, nl) if isinstance(layers[i], LinearLayer)]

    row_id = np.arange(n_all)
    alpha = np.zeros(n_all)
    A0, dA = np.ascontiguousarray(a0), np.ascontiguousarray(da)
    S = np.zeros_like(A0)
    S_out = np.empty_like(A0)
    log = PieceLog(n_all, "")

    xs = [None] * (nl + 1)
    dxs = [None] * (nl + 1)
    caches = [None] * nl
    g_in = [None] * (nl + 1)

    # first pass at alpha = 0, everything from scratch
    xs[p], dxs[p] = A0.copy(), dA
    for i in range(p, nl):
        layer = layers[i]
        if isinstance(layer, LinearLayer):
            xs[i + 1] = layer.forward(xs[i])[0]
            dxs[i + 1] = layer.linear(dxs[i])
        else:
            xs[i + 1], dxs[i + 1], caches[i] = layer.forward_along(xs[i], dxs[i])
    g_in[nl] = g_top
    for i in range(nl - 1, p - 1, -1):
        g_in[i] = _backward(layers[i], g_in[i + 1], caches[i], xs[i].shape)
    log.max_stalls = sum(int(np.prod(xs[i].shape[1:])) for i in kinked) + 16

    step = 0
    while row_id.size:
        step += 1
        n = row_id.size
        # 1. the nearest kink of every example
        proposals = {}
        s = np.full(n, np.inf)
        for i in kinked:
            proposals[i] = layers[i].next_kink(xs[i], dxs[i], caches[i])
            s = np.minimum(s, proposals[i][0])
        new_alpha = alpha + s
        done = new_alpha >= 1.0
        new_alpha[done] = 1.0
        ds = new_alpha - alpha
        moved = ds > 0
        # 2. integrate the current piece
        add_scaled_rows(S, ds, g_in[p], out=S)
        log.step(row_id, new_alpha, moved, done)
        if bar:
            bar.add(np.count_nonzero(done), pieces=np.count_nonzero(moved))
        alpha = new_alpha
        # 3. retire finished examples
        if done.any():
            S_out[row_id[done]] = S[done]
            keep = ~done
            row_id, alpha, ds, moved, s = row_id[keep], alpha[keep], ds[keep], moved[keep], s[keep]
            if not row_id.size:
                break
            A0, dA, S, g_in[nl] = A0[keep], dA[keep], S[keep], g_in[nl][keep]
            for i in range(p, nl + 1):
                xs[i], dxs[i] = xs[i][keep], dxs[i][keep]
            for i in range(p, nl):
                g_in[i] = g_in[i][keep]
            for i in kinked:
                dist, events = proposals[i]
                proposals[i] = (dist[keep], None if events is None else events[keep])
                # the cache of the kept rows, recomputed from the same (x, dx): bit-identical
                caches[i] = layers[i].forward_along(xs[i], dxs[i])[2]
            n = row_id.size
        # 4. move along the piece and read the next piece's patterns, bottom-up
        refresh = step % _REFRESH_EVERY == 0
        all_moved = bool(moved.all())
        # (an example that did not move keeps its values: they may hold snaps made at this alpha)
        if all_moved:
            add_scaled_rows(A0, alpha, dA, out=xs[p])
        else:
            xs[p][moved] = A0[moved] + _bshape(alpha[moved], A0.ndim) * dA[moved]
        if not refresh:
            for i in linear:
                add_scaled_rows(xs[i + 1], ds, dxs[i + 1], out=xs[i + 1])
        slope_changed = np.zeros(n, dtype=bool)       # a pattern below changed: redo JVPs
        pattern_changed = {}
        for i in range(p, nl):
            layer = layers[i]
            if isinstance(layer, LinearLayer):
                if refresh:
                    if all_moved:
                        xs[i + 1] = layer.forward(xs[i])[0]
                    elif moved.any():
                        xs[i + 1][moved] = layer.forward(xs[i][moved])[0]
                if slope_changed.all():
                    dxs[i + 1] = layer.linear(dxs[i])
                elif slope_changed.any():
                    dxs[i + 1][slope_changed] = layer.linear(dxs[i][slope_changed])
                continue
            dist, events = proposals[i]
            layer.snap_to_kink(xs[i], events, dist == s)
            y, dy, cache = layer.forward_along(xs[i], dxs[i])
            changed = _changed_rows(caches[i], cache, n)
            pattern_changed[i] = changed
            caches[i] = cache
            slope_changed |= changed
            dxs[i + 1] = dy
            # values of kinked layers' outputs follow their inputs, except for examples that did not
            # move (a kink reached twice at one alpha), whose snapped values must stay
            if all_moved:
                xs[i + 1] = y
            else:
                xs[i + 1][moved] = y[moved]
        # 5. backward signals of the new piece, top-down
        above = np.zeros(n, dtype=bool)               # a pattern above changed: redo VJPs
        for i in range(nl - 1, p - 1, -1):
            layer = layers[i]
            if isinstance(layer, LinearLayer):
                if above.all():
                    g_in[i] = layer.linear_vjp(g_in[i + 1], xs[i].shape)
                elif above.any():
                    sub = g_in[i + 1][above]
                    g_in[i][above] = layer.linear_vjp(sub, (sub.shape[0],) + xs[i].shape[1:])
                continue
            above |= pattern_changed[i]
            g_in[i] = _backward(layer, g_in[i + 1], caches[i], xs[i].shape)

    values = finish(S_out)
    return values, log.pieces, log.breakpoints()


def _backward(layer, g, cache, input_shape):
    """The VJP of one layer on the current piece."""
    if isinstance(layer, LinearLayer):
        return layer.linear_vjp(g, input_shape)
    return layer.backward_signal(g, cache, "gradient")
