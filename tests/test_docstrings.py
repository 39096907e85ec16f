"""Docstring examples print what they claim (the numbers a reader can check by hand)."""

import doctest
import importlib
import pkgutil

import pytest

import refattr

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(refattr.__path__, "refattr.")
                 if not name.startswith("refattr.interop") and name != "refattr.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
