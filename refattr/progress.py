"""Progress of long computations on a terminal, the switch that silences it, and refattr's warnings.

Exact integrated gradients on a batch, the adaptive rules (``"quad"``, ``"piecewise"``) and the
axioms audit can run for minutes. While they do, one line on standard error shows what is done::

    integrated gradients (exact): 7/32 examples [0:12 < ETA 0:43] pieces=31,442

drawn by ``tqdm`` where it is installed (refattr does not depend on it), else by a small built-in
writer. Nothing is printed:

- for calls shorter than :data:`DELAY_S` (2 seconds): the line appears only once a call has run
  that long;
- when standard error is not a terminal (a pipe, a log file, a test runner), unless forced on;
- when switched off, by the first of these that says something: the ``progress=`` keyword of
  :func:`refattr.methods.integrated_gradients.integrated_gradients`, the innermost
  ``with refattr.progress.enabled(...)``, the environment variable ``REFATTR_PROGRESS`` (``0``: off,
  ``1``: on even when standard error is not a terminal, e.g. in a notebook).

Nothing is ever written to standard output. A computation inside another one that already shows a
line (the audit's integrals) stays silent.

Before numba compiles one of refattr's kernels for the first time on a machine (about 30 s in all,
then cached on disk), the same switch lets one line say so: the notice comes from numba's
``numba:compile`` event, which fires only on a cache miss.

>>> import refattr.progress
>>> with refattr.progress.enabled(False):
...     refattr.progress.is_enabled()
False
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

from .errors import RefattrWarning as RefattrWarning      # defined with the errors; re-exported here

__all__ = ["RefattrWarning", "DELAY_S", "enabled", "is_enabled", "task", "watch_compilation", "caller_stacklevel"]


#: Seconds a computation runs before its progress line first appears.
DELAY_S = 2.0

#: Seconds between two redraws of the line.
REFRESH_S = 0.25

_ENV = "REFATTR_PROGRESS"
_setting: contextvars.ContextVar[bool | None] = contextvars.ContextVar("refattr_progress", default=None)
_active: contextvars.ContextVar[Any] = contextvars.ContextVar("refattr_progress_active", default=None)
_clock = time.monotonic


@contextmanager
def enabled(on: bool | None = True) -> Iterator[None]:
    """Within the block, show progress (True, even when standard error is not a terminal), never
    show it (False), or decide as outside the block (None). Blocks nest; the innermost that says
    True or False wins."""
    if on is not None and not isinstance(on, bool):
        from .errors import ArgumentError
        raise ArgumentError(f"progress: expected True, False or None, got {on!r}")
    token = _setting.set(on if on is not None else _setting.get())
    try:
        yield
    finally:
        _setting.reset(token)


def is_enabled() -> bool:
    """Whether a progress line may be shown now (see the module docstring for the order of the switches)."""
    on = _setting.get()
    if on is not None:
        return on
    value = os.environ.get(_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1"
    stream = sys.stderr
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):      # no isatty, or a closed stream
        return False


@functools.lru_cache(maxsize=1)
def _load_tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _counts_text(counts: dict) -> str:
    return " ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in counts.items())


class _Silent:
    """The bar of a computation that shows nothing: every call does nothing."""

    def __bool__(self) -> bool:
        return False

    def add(self, done: int = 0, **counts: Any) -> None:
        pass

    def set(self, done: int | None = None, **counts: Any) -> None:
        pass


SILENT = _Silent()


class _Bar:
    """Counts of one computation, drawn once it has run :data:`DELAY_S` seconds."""

    def __init__(self, description: str, total: int, unit: str):
        self.description, self.total, self.unit = description, int(total), unit
        self.done = 0
        self.counts: dict[str, Any] = {}
        self.start = self.last = _clock()
        self.shown = False
        self._tqdm = None
        self._width = 0

    def __bool__(self) -> bool:
        return True

    def add(self, done: int = 0, **counts: Any) -> None:
        """Add ``done`` finished items and each count to its running total."""
        self.done += int(done)
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + int(v)
        self._maybe_draw()

    def set(self, done: int | None = None, **counts: Any) -> None:
        """Set the number of finished items and the counts (e.g. the check now running)."""
        if done is not None:
            self.done = int(done)
        self.counts.update(counts)
        self._maybe_draw()

    def _maybe_draw(self) -> None:
        now = _clock()
        if now - self.start < DELAY_S or (self.shown and now - self.last < REFRESH_S):
            return
        self.last = now
        self._draw(now)

    def line(self, now: float) -> str:
        """The built-in writer's line: done/total, elapsed, ETA (from the mean rate so far), counts."""
        elapsed = now - self.start
        eta = _clock_text(elapsed * (self.total - self.done) / self.done) if self.done else "?"
        text = (f"{self.description}: {self.done:,}/{self.total:,} {self.unit} "
                f"[{_clock_text(elapsed)} < ETA {eta}]")
        return text + (" " + _counts_text(self.counts) if self.counts else "")

    def _draw(self, now: float) -> None:
        stream = sys.stderr
        tqdm = _load_tqdm()
        if tqdm is not None:
            if self._tqdm is None:
                # the mean rate since the computation began, as the built-in line (smoothing=0)
                self._tqdm = tqdm(total=self.total, desc=self.description, unit=" " + self.unit, file=stream,
                                  mininterval=0, smoothing=0, leave=True, dynamic_ncols=True)
                self._tqdm.start_t -= now - self.start
            self._tqdm.update(self.done - self._tqdm.n)
            self._tqdm.set_postfix_str(_counts_text(self.counts), refresh=True)
        else:
            text = self.line(now)
            stream.write("\r" + text + " " * max(0, self._width - len(text)))
            stream.flush()
            self._width = len(text)
        self.shown = True

    def write(self, text: str) -> None:
        """A line of its own above the bar."""
        if self._tqdm is not None:
            self._tqdm.write(text, file=sys.stderr)
        elif self.shown:
            sys.stderr.write("\r" + text + " " * max(0, self._width - len(text)) + "\n")
            self._width = 0
            self._draw(_clock())
        else:
            sys.stderr.write(text + "\n")

    def close(self) -> None:
        if not self.shown:
            return
        self._draw(_clock())
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


@contextmanager
def task(description: str, total: int, unit: str = "examples") -> Iterator[_Bar | _Silent]:
    """A progress line for one computation of ``total`` items.

    Yields a bar with ``add(done=0, **counts)`` (increments) and ``set(done=None, **counts)``
    (values); it is falsy, and does nothing, where progress is off or another computation
    around this one already shows a line. The line is drawn at most every :data:`REFRESH_S`
    seconds, from :data:`DELAY_S` seconds on, and finished with a newline on exit.
    """
    if not is_enabled() or _active.get() is not None:
        yield SILENT
        return
    bar = _Bar(description, total, unit)
    token = _active.set(bar)
    try:
        yield bar
    finally:
        _active.reset(token)
        bar.close()


def caller_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn` that names the first frame outside refattr
    (called from inside refattr, however deep)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


# --------------------------------------------------------------------------------------------
# the first compilation of the kernels
# --------------------------------------------------------------------------------------------
_COMPILE_NOTICE = ("refattr: numba is compiling refattr's kernels for their first use on this machine "
                   "(up to about 30 s once; cached on disk for later runs)")
_compile_state = {"watching": False, "noticed": False}


def _on_compile_start(dispatcher: Any) -> None:
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
    if _compile_state["noticed"] or not module.startswith("refattr.") or not is_enabled():
        return
    _compile_state["noticed"] = True
    bar = _active.get()
    if bar is not None:
        bar.write(_COMPILE_NOTICE)
    else:
        sys.stderr.write(_COMPILE_NOTICE + "\n")
        sys.stderr.flush()


def watch_compilation() -> None:
    """Listen to numba's ``numba:compile`` event (a cache miss, before compiling) so that the first
    compilation of one of refattr's kernels prints one notice where progress is on. Idempotent."""
    if _compile_state["watching"]:
        return
    try:
        from numba.core import event
    except ImportError:         # pragma: no cover - numba is a dependency
        return

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            _on_compile_start((ev.data or {}).get("dispatcher"))

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", _Listener())
    _compile_state["watching"] = True
