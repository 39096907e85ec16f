"""Every kernel registered against the NumPy definition it accelerates, and the switch between them.

A kernel is declared with :func:`accelerates` next to its definition::

    @accelerates(conv2d_forward_numpy, rtol=1e-13, reason="im2col sums the taps in another order")
    @jit_parallel
    def conv2d_forward(x, weight, stride, padding, dilation, groups, bias=None): ...

The decorator records a :class:`Kernel` in :data:`KERNELS` and returns a function of the same
name that runs the compiled kernel, or the definition when the switch says ``"numpy"``. The
definition is a callable, or ``"module:name"`` where importing it here would be circular (the
activations' definitions live in :mod:`refattr.layers.activations`, which imports the kernels).

The switch
    ``REFATTR_KERNELS=numpy`` in the environment when :mod:`refattr` is imported makes every
    kernel call run its NumPy definition instead (``numba``, the default, runs the kernels);
    :func:`use` changes it at run time. The definitions are the reference; the kernels only make
    them fast, and ``tests/kernels/test_registry.py`` holds every pair to the tolerance declared
    here. (``NUMBA_DISABLE_JIT=1`` is another thing: it runs the kernels' own loop bodies as
    plain Python, slowly, for coverage; it does not run the definitions.)
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..errors import ArgumentError

__all__ = ["Kernel", "KERNELS", "accelerates", "use", "current", "MODES"]

Mode = Literal["numba", "numpy"]

#: The values of ``REFATTR_KERNELS`` and of :func:`use`'s argument.
MODES: tuple[str, ...] = ("numba", "numpy")


@dataclass(frozen=True)
class Kernel:
    """One kernel and the definition it accelerates.

    Attributes
    ----------
    name : str
        The public name (``module.function`` relative to :mod:`refattr.kernels`, e.g.
        ``"conv.conv2d_forward"``).
    kernel : callable
        The accelerated implementation (a numba dispatcher, or a Python driver around compiled
        loops).
    definition : callable or str
        The NumPy definition, or ``"module:name"`` of it; :meth:`resolve` returns the callable.
    rtol : float
        0.0: kernel and definition agree bit for bit (same operations, same order). Otherwise the
        largest difference allowed, relative to the sum of the absolute values of the terms of
        each output, with ``reason`` saying why the arithmetic differs.
    reason : str
    """

    name: str
    kernel: Callable[..., Any]
    definition: Callable[..., Any] | str
    rtol: float
    reason: str

    def resolve(self) -> Callable[..., Any]:
        """The definition as a callable (imported on first use when given by name)."""
        if callable(self.definition):
            return self.definition
        module, _, attribute = self.definition.partition(":")
        return getattr(importlib.import_module(module), attribute)


#: Every registered kernel, by name, in registration order.
KERNELS: dict[str, Kernel] = {}


def _mode_from_environment() -> str:
    value = os.environ.get("REFATTR_KERNELS", "numba").strip().lower() or "numba"
    if value not in MODES:
        raise ArgumentError(f"REFATTR_KERNELS: got {value!r}; expected one of {MODES} "
                            "(unset it to run the compiled kernels)")
    return value


_state = {"mode": _mode_from_environment()}


def use(mode: Mode) -> str:
    """Run the compiled kernels (``"numba"``) or their NumPy definitions (``"numpy"``) from now on.

    Parameters
    ----------
    mode : {"numba", "numpy"}

    Returns
    -------
    str
        The previous mode, so that a caller can restore it.

    Examples
    --------
    >>> from refattr import kernels
    >>> previous = kernels.use("numpy")
    >>> kernels.current()
    'numpy'
    >>> _ = kernels.use(previous)
    """
    if mode not in MODES:
        raise ArgumentError(f"mode: got {mode!r}; expected one of {MODES}")
    previous = _state["mode"]
    _state["mode"] = mode
    return previous


def current() -> str:
    """The mode in force: ``"numba"`` (kernels) or ``"numpy"`` (definitions)."""
    return _state["mode"]


def accelerates(definition: Callable[..., Any] | str, *, rtol: float = 0.0,
                reason: str = "same operations in the same order") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated kernel as an accelerated ``definition`` (see the module docstring).

    The returned function has the kernel's name and docstring, and attributes ``kernel`` (the
    compiled implementation) and ``definition`` (as given). ``rtol`` > 0 needs a ``reason``.
    """
    if rtol and reason == "same operations in the same order":
        raise ArgumentError("accelerates: rtol > 0 needs the reason the arithmetic differs")

    def register(kernel: Callable[..., Any]) -> Callable[..., Any]:
        py = getattr(kernel, "py_func", kernel)
        name = py.__module__.rpartition(".")[2] + "." + py.__name__
        if name in KERNELS:
            raise ArgumentError(f"accelerates: kernel {name!r} is registered twice")
        entry = Kernel(name, kernel, definition, float(rtol), reason)
        KERNELS[name] = entry

        @functools.wraps(py)
        def run(*args: Any, **kwargs: Any) -> Any:
            if _state["mode"] == "numpy":
                return entry.resolve()(*args, **kwargs)
            return kernel(*args, **kwargs)

        run.kernel = kernel            # type: ignore[attr-defined]
        run.definition = definition    # type: ignore[attr-defined]
        return run

    return register
