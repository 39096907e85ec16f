"""Every public parameter and return value carries a type hint that resolves.

The package ships ``py.typed``, so a type checker and ``help()`` read these hints. The walk below
covers every name in ``__all__`` of the public modules: each function, and each class's public
methods, properties and constructor. ``typing.get_type_hints`` evaluates every hint, so a hint
naming something the module never imports fails here, not in a user's type checker.
"""

import importlib
import inspect
import typing

import pytest

MODULES = ("refattr", "refattr.interop", "refattr.testing", "refattr.axioms", "refattr.axioms.audit",
           "refattr.plotting", "refattr.quadrature", "refattr.errors", "refattr.validation", "refattr.methods",
           "refattr.layers", "refattr.layers.activations", "refattr.network")

# (qualified name, reason). Nothing here is exempt today; an entry needs a reason a reader accepts.
EXEMPT: dict[str, str] = {}


def _own_members(cls):
    """Public callables a class defines or inherits from a refattr class, named where defined."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("refattr"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(member, property):
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", member.fget
            elif isinstance(member, (staticmethod, classmethod)):
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", member.__func__
            elif inspect.isfunction(member):
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", member


def _public_callables():
    seen = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                if obj.__module__.startswith("refattr"):
                    for qualname, function in _own_members(obj):
                        seen.setdefault(qualname, function)
            elif inspect.isfunction(obj):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return seen


CALLABLES = _public_callables()


def test_the_walk_finds_the_api():
    # Guards the walk itself: a walk that found nothing would pass every check below.
    names = set(CALLABLES)
    for expected in ("refattr.methods.integrated_gradients.integrated_gradients",
                     "refattr.network.Sequential.__init__", "refattr.network.Network.forward",
                     "refattr.layers.dense.Dense.__init__", "refattr.plotting.heatmap",
                     "refattr.interop.torch_model.from_torch", "refattr.quadrature.gauss_legendre"):
        assert expected in names, expected
    assert len(names) > 100


@pytest.mark.parametrize("qualname", sorted(CALLABLES))
def test_every_parameter_and_return_is_annotated(qualname):
    if qualname in EXEMPT:
        pytest.skip(EXEMPT[qualname])
    function = CALLABLES[qualname]
    hints = typing.get_type_hints(function)     # raises NameError on a hint that does not resolve
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    missing = [p.name for p in parameters if p.name not in hints]
    assert not missing, f"{qualname}: parameters without a type hint: {missing}"
    assert "return" in hints, f"{qualname}: no return type hint"


def test_rule_literals_list_exactly_the_names_the_code_accepts():
    # A Literal that drifted from the tuple the code validates against would tell a type checker
    # to refuse a valid rule, or to accept one the code refuses.
    from refattr import _typing, plotting, quadrature
    from refattr.interop.compare import ATTRIBUTION_METHODS
    from refattr.layers.base import DEEPLIFT_RULES, GRADIENT_RULES
    from refattr.layers.pooling import MAXPOOL_RULES
    from refattr.methods.integrated_gradients import IG_RULES

    assert typing.get_args(_typing.GradientRule) == GRADIENT_RULES
    assert typing.get_args(_typing.DeepLiftRule) == DEEPLIFT_RULES
    assert typing.get_args(_typing.MaxPoolRule) == MAXPOOL_RULES
    assert typing.get_args(_typing.QuadratureRule) == tuple(quadrature.RULES)
    assert typing.get_args(_typing.IGRule) == IG_RULES
    assert typing.get_args(_typing.Aggregation) == plotting.AGGREGATIONS
    assert typing.get_args(_typing.AttributionMethod) == ATTRIBUTION_METHODS


def test_hints_name_the_rule_sets_not_bare_str():
    # The public methods' rule arguments carry the Literal, so help() and a type checker show
    # the accepted names (a regression to `rule: str` would pass the annotation walk above).
    from refattr import _typing, deeplift, integrated_gradients

    assert typing.get_type_hints(integrated_gradients)["rule"] == _typing.IGRule
    assert typing.get_type_hints(deeplift)["rule"] == _typing.DeepLiftRule
    assert typing.get_type_hints(deeplift)["maxpool_rule"] == typing.Optional[_typing.MaxPoolRule]
