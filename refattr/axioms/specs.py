"""Attribution methods as the property checks see them: a name and one uniform callable.

Every check calls ``spec.attribute(net, x, baseline, target)`` and gets the attributions (x's
shape). Methods that take no baseline ignore it; the property then speaks of x' only as the
comparison point (Sundararajan, Taly & Yan 2017 state Sensitivity(a) that way for every method).

A spec's ``family`` names the mathematical object it computes, which decides which theorems apply;
a spec of an unknown family (such as one written in a notebook) is judged by search alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..layers.max_pool import is_max_pooling
from ..methods import deconvnet, gradient, guided_backprop, input_x_gradient

__all__ = ["MethodSpec", "SPECS", "DEFAULT_METHODS", "MethodUnavailableError", "get_spec"]


class MethodUnavailableError(ImportError):
    """The module that implements a method cannot be imported in this installation."""


@dataclass(frozen=True, eq=False)
class MethodSpec:
    """One attribution method, as the checks call it.

    Attributes
    ----------
    name : str
        Key (e.g. ``"ig_exact"``); a witness names its method by this key.
    label : str
        Column header in the audit table.
    attribute : callable ``(net, x, baseline, target) -> ndarray``
        ``x`` and ``baseline`` are float64 arrays of the same shape (N, *example_shape).
    reference_based : bool
        Whether the method is declared to take a baseline (the reference-based check tests the
        declaration against the behaviour).
    family : str
        ``"gradient"``, ``"input_x_gradient"``, ``"guided_backprop"``, ``"deconvnet"``,
        ``"ig_exact"``, ``"ig_quadrature"``, ``"deeplift_rescale"``, ``"deeplift_reveal_cancel"``, or
        anything else (then no theorem is assumed).
    tutorial_column : str or None
        The column of the tutorial's summary table (docs/axioms.md) this method is compared with.
    requires : str or None
        A module that must import for the method to run.
    options : dict
        The settings, for the record.
    """

    name: str
    label: str
    attribute: Callable
    reference_based: bool
    family: str = "custom"
    tutorial_column: str | None = None
    requires: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        if self.requires is None:
            return True
        try:
            importlib.import_module(self.requires)
        except ImportError:
            return False
        return True

    def ensure_available(self) -> None:
        if not self.available:
            raise MethodUnavailableError(
                f"method {self.name!r}: module {self.requires} is not importable in this installation")


def _gradient_family(fn):
    def attribute(net, x, baseline, target):
        return fn(net, x, target).values
    attribute.__name__ = f"{fn.__name__}_attribute"
    return attribute


def _integrated_gradients(rule: str, n_steps: int):
    def attribute(net, x, baseline, target):
        from ..methods.integrated_gradients import integrated_gradients
        return integrated_gradients(net, x, baseline=np.asarray(baseline, dtype=np.float64), target=target,
                                    rule=rule, n_steps=n_steps).values
    return attribute


def _deeplift(rule: str):
    def attribute(net, x, baseline, target):
        from ..methods.deeplift import deeplift
        # DeepLIFT defines no max-pooling rule (docs/conventions.md, section 'Max pooling'); the
        # completeness-preserving routing is used where a network has one.
        maxpool_rule = "delta_routing" if any(is_max_pooling(l) for l in net.layers) else None
        return deeplift(net, x, baseline=np.asarray(baseline, dtype=np.float64), target=target, rule=rule,
                        maxpool_rule=maxpool_rule).values
    return attribute


_IG = "refattr.methods.integrated_gradients"
_DL = "refattr.methods.deeplift"

#: The methods the audit covers, in the order of its columns.
SPECS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("gradient", "Gradient", _gradient_family(gradient), False, "gradient", "gradient"),
    MethodSpec("guided_backprop", "Guided backprop", _gradient_family(guided_backprop), False,
               "guided_backprop", "guided_backprop"),
    MethodSpec("deeplift_rescale", "DeepLIFT (Rescale)", _deeplift("rescale"), True, "deeplift_rescale",
               "deeplift", _DL, {"rule": "rescale"}),
    MethodSpec("deeplift_reveal_cancel", "DeepLIFT (RevealCancel)", _deeplift("reveal_cancel"), True,
               "deeplift_reveal_cancel", "deeplift", _DL, {"rule": "reveal_cancel"}),
    MethodSpec("ig_exact", "Integrated gradients (exact)", _integrated_gradients("exact", 50), True, "ig_exact",
               "integrated_gradients", _IG, {"rule": "exact"}),
    MethodSpec("ig_gauss_legendre_50", "IG (Gauss-Legendre, 50)", _integrated_gradients("gauss_legendre", 50), True,
               "ig_quadrature", "integrated_gradients", _IG, {"rule": "gauss_legendre", "n_steps": 50}),
    MethodSpec("ig_right_50", "IG (right Riemann, 50)", _integrated_gradients("right", 50), True, "ig_quadrature",
               "integrated_gradients", _IG, {"rule": "right", "n_steps": 50}),
    MethodSpec("deconvnet", "DeconvNet", _gradient_family(deconvnet), False, "deconvnet", None),
    MethodSpec("input_x_gradient", "Input x gradient", _gradient_family(input_x_gradient), False,
               "input_x_gradient", None),
)}

DEFAULT_METHODS = tuple(SPECS)


def get_spec(method: MethodSpec | str) -> MethodSpec:
    """A MethodSpec from a spec or a key of SPECS."""
    if isinstance(method, MethodSpec):
        return method
    try:
        return SPECS[method]
    except KeyError:
        raise KeyError(f"method: unknown method {method!r}; expected a MethodSpec or one of {sorted(SPECS)}") from None
