"""The registry of layer classes: the one list every consumer reads.

A layer class declares what it is next to its code, as class attributes, and ``@register`` adds it
here; importers, serialisation, the random-network generator, Captum's conventions, error messages
and the contract tests read :func:`registered` instead of naming layers:

``piecewise_linear`` (required: True or False)
    Whether the layer is piecewise linear in its input. True promises the kink protocol that
    exact integrated gradients walks (``forward_along``, ``next_kink``, ``snap_to_kink``; linear
    layers have no kinks). Never defaulted: a wrong True would make ``rule="exact"`` silently
    wrong, so a class that does not declare it cannot be registered.
``torch_modules`` (tuple of str)
    Names of the ``torch.nn`` module classes the layer imports from.
``onnx_ops`` (tuple of str)
    ONNX op types (or pattern names) the layer imports from.
``captum`` (str)
    How Captum 0.9.0's DeepLift treats the corresponding module: ``"linear"`` (not hooked, the
    plain gradient, which equals the Linear rule's multipliers), ``"nonlinear"`` (hooked, the
    Rescale rule from forward differences), ``"maxpool"`` (hooked, its max-pool rule) or
    ``"gradient"`` (not in its list of non-linearities: the plain gradient).

The serialised form of a layer is its type name and its constructor's arguments, read back from the
attributes of the same names (``Conv2D(weight, bias, stride, ...)`` keeps ``self.stride`` ...):
:func:`to_config` / :func:`from_config`, used by the oracle export, the axioms' witnesses and the
bundled models.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedLayerError

__all__ = ["LayerInfo", "register", "registered", "info", "to_config", "from_config", "supported"]

_CAPTUM = ("linear", "nonlinear", "maxpool", "gradient")


@dataclass(frozen=True)
class LayerInfo:
    """What the registry knows about one layer class (see the module docstring)."""

    cls: type
    name: str
    piecewise_linear: bool
    torch_modules: tuple[str, ...]
    onnx_ops: tuple[str, ...]
    captum: str
    arguments: tuple[str, ...]      # constructor parameters, in order (the serialised form)


_REGISTRY: dict[str, LayerInfo] = {}


def register(cls: type) -> type:
    """Class decorator: add ``cls`` to the registry after checking its declarations."""
    name = cls.__name__
    declared = getattr(cls, "piecewise_linear", None)
    if not isinstance(declared, bool):
        raise TypeError(f"{name}: declare piecewise_linear = True or False (True promises the kink protocol "
                        f"of exact integrated gradients); got {declared!r}")
    captum = getattr(cls, "captum", None)
    if captum not in _CAPTUM:
        raise TypeError(f"{name}: declare captum as one of {_CAPTUM} (how Captum's DeepLift treats it); "
                        f"got {captum!r}")
    if name in _REGISTRY and _REGISTRY[name].cls is not cls:
        raise TypeError(f"{name}: a different layer class is already registered under this name")
    arguments = tuple(p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    _REGISTRY[name] = LayerInfo(cls, name, declared, tuple(getattr(cls, "torch_modules", ())),
                                tuple(getattr(cls, "onnx_ops", ())), captum, arguments)
    return cls


def registered() -> tuple[LayerInfo, ...]:
    """Every registered layer, in registration order."""
    return tuple(_REGISTRY.values())


def info(layer: Any) -> LayerInfo:
    """The registry entry of a layer (an instance or a class); UnsupportedLayerError if none."""
    cls = layer if isinstance(layer, type) else type(layer)
    entry = _REGISTRY.get(cls.__name__)
    if entry is None or entry.cls is not cls:
        raise UnsupportedLayerError(f"{cls.__module__}.{cls.__name__} is not a registered refattr layer; "
                                    f"registered: {supported()}")
    return entry


def supported() -> str:
    """The registered layer names, for error messages."""
    return ", ".join(_REGISTRY)


def to_config(layer: Any) -> dict[str, Any]:
    """``{"type": name, "params": {...}, "arrays": {...}}``: plain values (ints, floats, bools,
    lists) in ``params`` and float64 arrays (never None) in ``arrays``; an argument that is None
    is left out, so the constructor's default (None) applies."""
    entry = info(layer)
    params: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name in entry.arguments:
        value = getattr(layer, name)
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = np.array(value, dtype=np.float64)
        elif isinstance(value, (tuple, list)):
            params[name] = [v.item() if isinstance(v, np.generic) else v for v in value]
        else:
            params[name] = value.item() if isinstance(value, np.generic) else value
    return {"type": entry.name, "params": params, "arrays": arrays}


def from_config(config: dict[str, Any]) -> Any:
    """The layer :func:`to_config` describes (lists become tuples)."""
    name = config.get("type")
    if name not in _REGISTRY:
        raise UnsupportedLayerError(f"layer type {name!r} is not registered; registered: {supported()}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("params", {}).items()}
    return _REGISTRY[name].cls(**params, **dict(config.get("arrays", {})))
