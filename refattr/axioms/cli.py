"""The ``refattr audit`` subcommand (registered by :func:`add_audit_command`)."""

from __future__ import annotations

import argparse

__all__ = ["add_audit_command"]


def _random_seed(text: str) -> int:
    """--seed: an integer >= 0 (NumPy's generators refuse negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _cmd_audit(args) -> int:
    from .audit import audit

    report = audit(seed=args.seed)
    print(report.to_json() if args.json else report.to_markdown(), end="" if not args.json else "\n")
    return 0


def add_audit_command(subparsers) -> None:
    """Register ``audit [--json] [--seed N]`` on an ``argparse`` subparsers object.

    ``refattr audit`` prints the tutorial's summary table regenerated from the property checks
    (markdown); ``--json`` prints every result with its witness, deterministically.
    """
    parser = subparsers.add_parser(
        "audit", help="check every attribution property for every method and print the evidence table",
        description="Regenerate, from executable checks, the summary table of attribution properties in the "
                    "tutorial \"Feature Attribution in Deep Neural Networks\" (docs/axioms.md): "
                    "each cell is a verdict with a witness (a counterexample that can be recomputed) or a theorem "
                    "or search that backs it.")
    parser.add_argument("--json", action="store_true", help="print the full report as deterministic JSON")
    parser.add_argument("--seed", type=_random_seed, default=0, help="random seed of the searches (default 0)")
    parser.set_defaults(func=_cmd_audit)
