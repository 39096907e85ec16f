"""The ``refattr`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main"]


def _cmd_info(args) -> int:
    from .layers import LAYERS
    from .methods import METHODS

    print(f"refattr {__version__}: float64 reference attributions")
    print("layers:  " + ", ".join(cls.__name__ for cls in LAYERS))
    print("methods: " + ", ".join(sorted(METHODS)))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

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
    from .interop.cli import add_compare_commands

    add_audit_command(sub)
    add_compare_commands(sub)
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
