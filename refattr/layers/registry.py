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
``torch_arguments`` (dict, default empty)
    How the constructor's arguments read from the torch module, where the names differ: argument
    -> the module's attribute of another name, or None where the module has no such argument
    (``Swish``: ``{"beta": None}``, ``nn.SiLU`` is beta = 1): the import then uses the
    constructor's default and the export refuses any other value. Every argument not named here is
    the module's attribute of the same name (``LeakyReLU(negative_slope)``); the export calls
    ``torch.nn.<torch_modules[0]>(**those)``.
``torch_requires`` (dict, default empty)
    Settings of the torch module the layer models, attribute -> value: the import refuses a module
    with another value, the export passes them to the module's constructor (no registered layer
    needs one today).
``onnx_attributes`` (dict, default empty)
    For an element-wise op: ONNX attribute -> constructor argument (``Swish``: ``{"alpha":
    "beta"}``). The importer reads these attributes (an absent one takes the operator's default
    from its ONNX schema) and refuses any other attribute on the node.
``onnx_arguments`` (dict, default empty)
    Constructor arguments every ONNX import sets, where the ONNX op computes the layer with a
    setting other than the constructor's default and has no attribute for it (``Softplus``:
    ``{"threshold": math.inf}``, ONNX's Softplus never switches to x).
``onnx_runtime_rtol`` (float, default None)
    How precisely the ONNX runtimes evaluate the layer's op, relative to its largest output, where
    they are less precise than float64 rounding: :func:`~refattr.interop.from_onnx` checks an import
    on a probe batch at the largest such tolerance of the layers it imported instead of 1e-12
    (``GELU``: onnxruntime and ``onnx.reference`` expand ``Gelu`` with float32 pieces). None: the
    runtimes evaluate the op in float64, and the check keeps its ordinary tolerance.
``mp_function`` (element-wise layers: a method)
    The layer's f evaluated in mpmath, next to ``function``: the high-precision reference the
    contract tests hold the divided difference ``secant`` to.
``joins`` (bool, default False)
    True for a layer of several inputs (:class:`~refattr.layers._join.JoinLayer`: ``Add``,
    ``Concat``, ``Mul``), which only a :class:`~refattr.graph.Graph` can hold; consumers that draw or
    test one-input layers skip them.
``captum`` (str)
    How Captum 0.9.0's DeepLift treats the corresponding module: ``"linear"`` (not hooked, the
    plain gradient, which equals the Linear rule's multipliers), ``"nonlinear"`` (hooked, the
    Rescale rule from forward differences), ``"maxpool"`` (hooked, its max-pool rule),
    ``"softmax"`` (hooked, its softmax rule: element-wise forward differences minus their mean
    over the whole doubled batch, ``refattr.interop._captum_softmax``) or ``"gradient"`` (not in
    its list of non-linearities: the plain gradient).

Layers whose import or export is more than that (Linear / Conv2d weights and padding forms, pooling
settings, patterns such as x * Sigmoid(x) or Gemm + Add) keep their own code in the importers;
every other declared torch module or ONNX op imports and exports through the declarations alone.

The serialised form of a layer is its type name and its constructor's arguments, read back from the
attributes of the same names (``Conv2D(weight, bias, stride, ...)`` keeps ``self.stride`` ...):
:func:`to_config` / :func:`from_config`, used by the oracle export, the axioms' witnesses and the
bundled models.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedLayerError

__all__ = ["LayerInfo", "register", "unregister", "registered", "info", "is_registered", "to_config", "from_config",
           "supported",
           "by_torch_module", "by_onnx_op"]

_CAPTUM = ("linear", "nonlinear", "maxpool", "softmax", "gradient")


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
    torch_arguments: dict[str, str | None] = field(default_factory=dict)
    torch_requires: dict[str, Any] = field(default_factory=dict)
    onnx_attributes: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # the constructor's defaults, by argument
    onnx_runtime_rtol: float | None = None  # the ONNX runtimes' precision for the op, where below float64's
    joins: bool = False    # takes a tuple of inputs (Add, Concat, Mul: graph joins)
    onnx_arguments: dict[str, Any] = field(default_factory=dict)  # arguments every ONNX import sets


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
    parameters = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    arguments = tuple(p.name for p in parameters)
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
    torch_modules = tuple(getattr(cls, "torch_modules", ()))
    onnx_ops = tuple(getattr(cls, "onnx_ops", ()))
    torch_arguments = dict(getattr(cls, "torch_arguments", {}))
    onnx_attributes = dict(getattr(cls, "onnx_attributes", {}))
    onnx_arguments = dict(getattr(cls, "onnx_arguments", {}))
    unknown = (sorted(set(torch_arguments) - set(arguments)) + sorted(set(onnx_attributes.values()) - set(arguments))
               + sorted(set(onnx_arguments) - set(arguments)))
    if unknown:
        raise TypeError(f"{name}: torch_arguments / onnx_attributes / onnx_arguments name {unknown}, which are not arguments of "
                        f"its constructor {arguments}")
    absent = [a for a, attribute in torch_arguments.items() if attribute is None and a not in defaults]
    if absent:
        raise TypeError(f"{name}: torch_arguments maps {absent} to None (the torch module has no such argument), "
                        f"so the constructor needs a default for them")
    runtime_rtol = getattr(cls, "onnx_runtime_rtol", None)
    if runtime_rtol is not None and not (isinstance(runtime_rtol, float) and 0.0 < runtime_rtol < 1.0):
        raise TypeError(f"{name}: onnx_runtime_rtol must be None or a float in (0, 1) (the relative precision of "
                        f"the ONNX runtimes for its op); got {runtime_rtol!r}")
    for other in _REGISTRY.values():
        if other.name == name:
            continue
        shared = sorted(set(torch_modules) & set(other.torch_modules)) + sorted(set(onnx_ops) & set(other.onnx_ops))
        if shared:
            raise TypeError(f"{name}: {shared} already import as {other.name}; a torch module or ONNX op "
                            f"imports as one layer class")
    _REGISTRY[name] = LayerInfo(cls, name, declared, torch_modules, onnx_ops, captum, arguments, torch_arguments,
                                dict(getattr(cls, "torch_requires", {})), onnx_attributes, defaults, runtime_rtol,
                                bool(getattr(cls, "joins", False)), onnx_arguments)
    return cls


def unregister(name: str) -> None:
    """Remove a layer class from the registry (for tests that register a class of their own)."""
    if name not in _REGISTRY:
        raise KeyError(f"{name!r} is not registered; registered: {supported()}")
    del _REGISTRY[name]


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


def is_registered(layer: Any) -> bool:
    """Whether ``layer`` (an instance or a class) is a registered layer class."""
    cls = layer if isinstance(layer, type) else type(layer)
    entry = _REGISTRY.get(cls.__name__)
    return entry is not None and entry.cls is cls


def by_torch_module(kind: type) -> LayerInfo | None:
    """The entry whose ``torch_modules`` names ``kind`` (a ``torch.nn`` class, compared by identity
    with ``torch.nn.<name>``, so a user's class of the same name is not taken for it), or None."""
    import torch.nn

    return next((entry for entry in _REGISTRY.values()
                 if any(getattr(torch.nn, m, None) is kind for m in entry.torch_modules)), None)


def by_onnx_op(op_type: str) -> LayerInfo | None:
    """The entry whose ``onnx_ops`` names ``op_type``, or None."""
    return next((entry for entry in _REGISTRY.values() if op_type in entry.onnx_ops), None)


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
