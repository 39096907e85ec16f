"""Docstring examples of refattr.interop (tests/test_docstrings.py skips the package, whose other
modules need torch or onnx to import their examples' subjects)."""

import doctest

import refattr.interop.captum_conventions as captum_conventions


def test_captum_conventions_examples():
    result = doctest.testmod(captum_conventions, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 3
