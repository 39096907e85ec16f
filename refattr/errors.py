"""Errors raised by refattr.

Every error is a ``ValueError`` subclass whose message names the argument, the value or shape
that was seen, and what was expected, so that a caller can fix the call from the message alone.
Nothing is computed on bad input.
"""

from __future__ import annotations

__all__ = [
    "RefattrError",
    "ShapeError",
    "NonFiniteError",
    "TargetError",
    "RuleError",
    "UnsupportedLayerError",
]


class RefattrError(ValueError):
    """Base class of every error refattr raises on bad input."""


class ShapeError(RefattrError):
    """An array has the wrong rank or shape, or two layers do not fit together."""


class NonFiniteError(RefattrError):
    """An input, baseline or weight holds NaN or Inf."""


class TargetError(RefattrError):
    """``target`` is not an integer, has the wrong shape, or is out of range."""


class RuleError(RefattrError):
    """An unknown rule, or a rule that does not apply to this network."""


class UnsupportedLayerError(RefattrError):
    """A layer that a method has no rule for, or an object that is not a refattr layer."""
