"""The ``refattr`` command line."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import ArgumentError, RefattrError

__all__ = ["main", "input_file", "output_directory", "fail"]


def input_file(path, name: str) -> str:
    """``path`` as a str, checked to name an existing regular file (``name`` is the argument, e.g. "--inputs").

    A directory, a missing path, or a device, pipe or socket raises
    :class:`~refattr.errors.ArgumentError`: reading a pipe could block for ever, and a directory
    gives a raw ``IsADirectoryError`` deep inside the loaders.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ArgumentError(f"{name}: no such file {path!r}; expected the path of an existing file")
    if os.path.isdir(path):
        raise ArgumentError(f"{name}: {path!r} is a directory; expected the path of a file")
    if not os.path.isfile(path):
        raise ArgumentError(f"{name}: {path!r} is not a regular file (a device, pipe or socket); expected the path "
                            f"of a file")
    return path


def output_directory(path, name: str) -> str:
    """Create the directory ``path`` (and its parents) if needed and return it as a str.

    A path that exists and is not a directory, or one that cannot be created (a parent is a file,
    no permission), raises :class:`~refattr.errors.ArgumentError` naming ``name``.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ArgumentError(f"{name}: {path!r} exists and is not a directory; name a new or an existing directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ArgumentError(f"{name}: cannot create the directory {path!r} ({exc.strerror or exc}); name a directory "
                            f"that can be created") from None
    return path


def fail(command: str, exc: RefattrError) -> int:
    """Print ``refattr COMMAND: error: MESSAGE`` on one line on stderr and return 2, the bad-input exit code."""
    print(f"refattr {command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


def _cmd_info(args) -> int:
    from .layers import LAYERS
    from .methods import METHODS

    print(f"refattr {__version__}: float64 reference attributions")
    print("layers:  " + ", ".join(cls.__name__ for cls in LAYERS))
    print("methods: " + ", ".join(sorted(METHODS)))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    try:
        output_directory(args.out, "--out")
    except RefattrError as exc:
        return fail("demo", exc)
    run_demo(args.out, progress=not args.quiet)
    print(f"figures and tables written to {args.out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refattr", description="float64 reference feature attributions")
    parser.add_argument("--version", action="version", version=f"refattr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="list the layers and attribution methods this version provides")
    info.set_defaults(func=_cmd_info)
    demo = sub.add_parser("demo", help="every method on the bundled digits CNN: table, audit and figures")
    demo.add_argument("--out", default="refattr-demo", help="output folder (default: ./refattr-demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    demo.set_defaults(func=_cmd_demo)
    from .axioms.cli import add_audit_command
    from .dataset.cli import add_dataset_commands
    from .interop.cli import add_compare_commands

    add_audit_command(sub)
    add_compare_commands(sub)
    add_dataset_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
