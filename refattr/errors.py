"""Errors (and the one warning) raised by refattr.

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
    "ArgumentError",
    "ResourceError",
    "UnsafeFileError",
    "ImportMismatchError",
    "RefattrWarning",
]


class RefattrError(ValueError):
    """Base class of every error refattr raises on bad input."""


class ShapeError(RefattrError):
    """An array has the wrong rank or shape, or two layers do not fit together."""


class NonFiniteError(RefattrError):
    """An input, baseline or weight holds NaN or Inf, or a finite input overflows inside the
    network (the message names the layer whose output stopped being finite)."""


class TargetError(RefattrError):
    """``target`` is not an integer, has the wrong shape, or is out of range."""


class RuleError(RefattrError):
    """An unknown rule, or a rule that does not apply to this network."""


class UnsupportedLayerError(RefattrError):
    """A layer that a method has no rule for, or an object that is not a refattr layer."""


class ArgumentError(RefattrError):
    """An argument of the wrong type, or a value outside its range, that no more specific class
    covers (e.g. ``rtol=nan``, ``count_include_pad='no'``, a path that is a directory)."""


class ResourceError(RefattrError):
    """A request that would need more memory or time than is reasonable to attempt (e.g.
    ``n_steps=10**9``); the message says how much it would take and how to ask for less."""


class UnsafeFileError(RefattrError):
    """A file that refattr refuses to load because loading it could run code or read files outside
    it (a pickle without ``trust_pickle=True``, ONNX external data outside a path-loaded model)."""


class ImportMismatchError(RefattrError):
    """An imported model computes a different function from its source (checked on a probe input),
    or the source holds something that would make the import compute something else (hooks, an
    overridden ``forward``)."""


class RefattrWarning(UserWarning):
    """A call that works but is not what the caller should want (e.g. ``rule="quad"`` where
    ``rule="exact"`` is exact and cheaper). Silence it with
    ``warnings.filterwarnings("ignore", category=RefattrWarning)`` where the choice is deliberate."""
