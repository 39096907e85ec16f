"""Captum as a peer over a dataset: its attribution of every example, graded as compare_captum grades it.

:func:`captum_peer` checks that Captum has the run's method and that the run's reference is the
one :func:`refattr.interop.compare_captum` grades against, and returns a :class:`CaptumPeer`,
which :func:`refattr.dataset.run.compute_chunk` calls on every block. Per example it stores
Captum's values, the verdict (an index into :data:`refattr.interop.compare.VERDICTS`) and the
largest convention, approximation and known-bug part of the difference, each a normwise relative
size as in :func:`refattr.interop.compare.relative_difference`.
"""

from __future__ import annotations

import contextlib
import numbers
import types
import warnings
from collections import Counter
from typing import Any, Iterator

import numpy as np

from ..errors import ArgumentError
from ..layers.max_pool import is_max_pooling
from ..methods import integrated_gradients
from ..methods._common import prepare
from ..validation import broadcast_baseline

__all__ = ["PEERS", "CAPTUM_CLASSES", "PEER_QUANTITIES", "CaptumPeer", "captum_peer"]

#: The peers ``attribute_dataset(peer=...)`` runs itself.
PEERS = ("captum",)

#: refattr method -> the Captum class computing the same attribution (DeepLift with
#: ``baseline_samples``: DeepLiftShap).
CAPTUM_CLASSES = {"gradient": "Saliency", "input_x_gradient": "InputXGradient", "guided_backprop": "GuidedBackprop",
                  "deconvnet": "Deconvolution", "integrated_gradients": "IntegratedGradients", "deeplift": "DeepLift"}

#: What a graded peer adds to the store, per example (besides the two differences of
#: :func:`refattr.dataset.run.peer_differences`).
PEER_QUANTITIES = ("peer_values", "peer_verdict", "peer_convention", "peer_approximation", "peer_bug")

#: The reference rules of integrated gradients that are the integral itself (to its error estimate).
_INTEGRAL_RULES = ("auto", "exact", "piecewise", "quad")


def captum_peer(model: Any, net, method: str, options: dict[str, Any], samples: bool,
                peer_options: dict[str, Any] | None) -> "CaptumPeer":
    """The Captum peer of a run of ``method`` with ``options`` on ``net`` (imported from ``model``).

    ``peer_options``: ``rtol`` (the verdict's rounding tolerance, default 1e-12), and for
    integrated gradients Captum's ``method`` (default "gausslegendre", Captum's default) and
    ``n_steps`` (default 50). Refused with ArgumentError: a reference Captum does not approximate
    (a fixed integrated-gradients rule, DeepLIFT's RevealCancel or another max-pool rule than
    delta_routing, which compare_captum grades against), unknown options.
    """
    from ..interop import compare

    peer_options = dict(peer_options or {})
    allowed = {"rtol", "method", "n_steps"} if method == "integrated_gradients" else {"rtol"}
    unknown = sorted(set(peer_options) - allowed)
    if unknown:
        raise ArgumentError(f"peer_options: {', '.join(unknown)} not accepted for {method}; it accepts "
                            f"{', '.join(sorted(allowed))}")
    rtol = compare._check_rtol(peer_options.get("rtol", compare.FLOAT64_RTOL))
    kwargs: dict[str, Any] = {}
    name = CAPTUM_CLASSES[method]
    if method == "integrated_gradients":
        rule = options.get("rule", "auto")
        if rule not in _INTEGRAL_RULES:
            raise ArgumentError(f"rule: {rule!r}; Captum's integrated gradients are graded against the integral "
                                f"itself, so the reference needs rule='auto' (or exact / quad), not a fixed "
                                f"{rule!r} rule; choose Captum's rule and steps with peer_options={{'method': ..., "
                                f"'n_steps': ...}}")
        if samples:
            raise ArgumentError("baseline_samples: Captum's IntegratedGradients takes one baseline per example; "
                                "pass baseline= for a peer graded run")
        kwargs = {"method": peer_options.get("method", "gausslegendre"), "n_steps": peer_options.get("n_steps", 50)}
        from ..interop.captum_conventions import CAPTUM_IG_METHODS

        if kwargs["method"] not in CAPTUM_IG_METHODS:
            raise ArgumentError(f"peer_options['method']: unknown Captum method {kwargs['method']!r}; expected one of "
                                f"{', '.join(CAPTUM_IG_METHODS)}")
        steps = kwargs["n_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
            raise ArgumentError(f"peer_options['n_steps']: expected an int >= 2, got {steps!r}")
    if method == "deeplift":
        pooled = any(is_max_pooling(layer) for layer in net.layers)
        wanted = {"rule": "rescale", "maxpool_rule": "delta_routing" if pooled else None}
        for key, value in wanted.items():
            if options.get(key, wanted[key] if key == "rule" else None) != value:
                raise ArgumentError(f"{key}: {options.get(key)!r}; Captum's DeepLift is graded against refattr's "
                                    f"deeplift(rule='rescale'{', maxpool_rule=' + repr(value) if pooled else ''}) "
                                    f"(Captum implements Rescale, routes max pooling to the winner); pass {key}="
                                    f"{value!r}")
        name = "DeepLiftShap" if samples else "DeepLift"
    captum, _ = compare._load_captum()
    from ..interop.torch_model import require_torch

    torch = require_torch()
    is_module = any(c.__module__.startswith("torch.") and c.__name__ == "Module" for c in type(model).__mro__)
    _, module, functions = compare._as_models(model if is_module else net)
    return CaptumPeer(module, functions, method, name, kwargs, rtol,
                      versions={"captum": captum.__version__, "torch": torch.__version__})


class CaptumPeer:
    """Captum's ``class_name`` on a float64 torch ``module`` and its grading, one example at a time.

    Captum is called on one example at a time, with one torch thread, so that an example's values
    and verdict depend neither on its batchmates (Captum's DeepLift max-pool fallback reads example
    0 of its batch, captum issue #1276) nor on the machine's threads: results are bitwise the same
    in-process and on any worker. Sent to Dask workers once, as the network is.
    """

    def __init__(self, module, functions, method: str, class_name: str, kwargs: dict[str, Any], rtol: float,
                 versions: dict[str, str]) -> None:
        self.module, self.functions, self.method, self.class_name = module, tuple(functions), method, class_name
        self.kwargs, self.rtol, self.versions = dict(kwargs), rtol, dict(versions)

    def identity(self) -> dict[str, Any]:
        """What the peer's stored numbers depend on (recorded in the store's manifest)."""
        from ..interop.compare import VERDICTS

        return {"name": "captum", "class": self.class_name, "options": dict(self.kwargs), "rtol": self.rtol,
                "versions": dict(self.versions), "verdicts": list(VERDICTS)}

    def grade(self, net, x: np.ndarray, kwargs: dict[str, Any], reference) -> tuple[dict[str, np.ndarray], dict]:
        """Captum's values on each example of ``x`` (one block) and their grading against ``reference``
        (refattr's Attribution of the block; ``kwargs`` the method's target and baselines).

        Returns the arrays of :data:`PEER_QUANTITIES` and notes: ``{"issues": Counter of the known
        Captum bugs that changed an example, "warnings": set of Captum's warnings}``.
        """
        from ..interop import compare

        x, t = prepare(net, x, kwargs.get("target"), name="inputs")
        single = net.n_outputs(x.shape[1:]) == 1 and kwargs.get("target") is None
        baseline = kwargs.get("baseline", 0.0)
        xr = broadcast_baseline(0.0 if baseline is None else baseline, x)
        samples = kwargs.get("baseline_samples")
        rows: dict[str, list] = {q: [] for q in PEER_QUANTITIES}
        notes: dict[str, Any] = {"issues": Counter(), "warnings": set()}
        for n in range(x.shape[0]):
            one = slice(n, n + 1)
            bases = None if samples is None else (samples[n] if np.ndim(samples) == x.ndim + 1 else samples)
            peer = self._captum(x[one], xr[one], bases, None if single else t[one], notes["warnings"])
            entry = compare.MethodComparison(self.class_name, "captum", f"refattr {self.method}", "agree")
            ref = reference.values[one]
            if self.method == "integrated_gradients":
                m, steps = self.kwargs["method"], self.kwargs["n_steps"]
                from ..interop.captum_conventions import REFATTR_RULE

                same_rule = integrated_gradients(net, x[one], xr[one], target=t[one], rule=REFATTR_RULE[m],
                                                 n_steps=steps).values
                view = types.SimpleNamespace(values=ref, options=reference.options)
                reproduction, components = compare._captum_ig(net, x[one], xr[one], t[one], m, steps, same_rule, view,
                                                              self.rtol)
                what = "Captum's IG convention"
            elif self.method == "deeplift":
                reproduction, components, pure = compare._deeplift_chain(net, x[one], xr[one], t[one], bases,
                                                                         self.functions)
                d = compare.relative_difference(pure, ref)
                components.append(compare.Cause("rounding" if d <= self.rtol else "unexplained",
                                                "Rescale reproduced in the comparison layer vs refattr's deeplift", d))
                what = "Captum's DeepLift convention"
            elif self.class_name in ("GuidedBackprop", "Deconvolution"):
                reproduction, components = compare._modified_relu_chain(net, x[one], t[one], self.class_name, ref,
                                                                        self.rtol, self.functions)
                what = f"Captum's {self.class_name} hooks"
            else:
                reproduction, components, what = None, [], ""
            compare._classify(entry, peer, ref, reproduction, components, self.rtol, what)
            rows["peer_values"].append(peer)
            rows["peer_verdict"].append(float(compare.VERDICTS.index(entry.verdict)))
            for kind in ("convention", "approximation", "peer_bug"):
                sizes = [c.size for c in entry.causes if c.kind == kind]
                rows["peer_bug" if kind == "peer_bug" else f"peer_{kind}"].append(max(sizes, default=0.0))
            notes["issues"].update({c.issue for c in entry.causes
                                    if c.kind == "peer_bug" and c.issue and c.size > self.rtol})
        arrays = {q: np.concatenate(v) if q == "peer_values" else np.array(v, dtype=np.float64)
                  for q, v in rows.items()}
        return arrays, notes

    def _captum(self, x, xr, bases, target, caught: set) -> np.ndarray:
        """Captum's attribution of one example (float64), its warnings added to ``caught``."""
        import torch
        from captum import attr

        explainer = getattr(attr, self.class_name)(self.module)
        inputs = torch.from_numpy(np.array(x, dtype=np.float64)).requires_grad_()
        options: dict[str, Any] = {} if target is None else {"target": torch.from_numpy(np.asarray(target))}
        if self.class_name == "Saliency":
            options["abs"] = False
        if self.class_name in ("IntegratedGradients", "DeepLift"):
            options["baselines"] = torch.from_numpy(np.array(xr, dtype=np.float64))
        if self.class_name == "DeepLiftShap":
            options["baselines"] = torch.from_numpy(np.array(bases, dtype=np.float64))
        options.update(self.kwargs)
        with _one_torch_thread(torch), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                out = explainer.attribute(inputs, **options)
            except Exception as exc:  # Captum's own exception types
                raise ArgumentError(f"peer: Captum's {self.class_name} refused this model ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())[:300]}); compare_captum explains known refusals; "
                                    f"run without peer='captum'") from None
        caught.update(" ".join(str(w.message).split())[:160] for w in seen)
        return out.detach().cpu().numpy().astype(np.float64)


@contextlib.contextmanager
def _one_torch_thread(torch) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
