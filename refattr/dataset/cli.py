"""``refattr dataset run`` (attributions for every example of a file, into a resumable store) and
``refattr dataset report`` (a Markdown page and PNG figures of a store).

``add_dataset_commands(subparsers)`` adds the ``dataset`` command group to the ``refattr`` parser.
Exit codes: 0 when the store is complete (or ``--max-chunks`` stopped it as asked), 2 on bad input
(one line on stderr).
"""

from __future__ import annotations

import sys

from ..cli import fail, input_file
from ..errors import RefattrError

__all__ = ["add_dataset_commands"]

#: Models shipped with refattr that MODEL may name instead of a file.
BUNDLED = ("digits_cnn",)
#: Inputs shipped with refattr that INPUTS may name instead of a file: the bundled digits model's
#: ten held-out test digits, explained for their true class unless --target is given.
BUNDLED_INPUTS = ("digits_test",)


def _inputs(text: str):
    """(inputs, default target) of INPUTS: a bundled set by name, or a file."""
    if text in BUNDLED_INPUTS:
        from ..models import load_digits_cnn

        _, images, labels = load_digits_cnn()
        return images, labels
    return input_file(text, "INPUTS"), None


def _model(text: str, trust_pickle: bool, architecture: str | None):
    if text in BUNDLED:
        from ..models import load_digits_cnn

        return load_digits_cnn()[0]
    from ..interop.cli import load_model

    input_file(text, "MODEL")
    return load_model(text, trust_pickle=trust_pickle, architecture=architecture)


def _target(text: str | None):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    return input_file(text, "--target")


def _cmd_run(args) -> int:
    from .run import attribute_dataset

    options = {key: value for key, value in (("rule", args.rule), ("n_steps", args.n_steps),
                                             ("maxpool_rule", args.maxpool_rule)) if value is not None}
    peer_options = {key: value for key, value in (("method", args.peer_method), ("n_steps", args.peer_steps),
                                                  ("rtol", args.peer_rtol)) if value is not None}
    try:
        model = _model(args.model, args.trust_pickle, args.architecture)
        inputs, labels = _inputs(args.inputs)
        target = labels if args.target is None else _target(args.target)
        store = attribute_dataset(
            model, inputs, args.out, method=args.method, target=target, peer=args.peer,
            peer_options=peer_options or None,
            **({} if args.baseline is None else {"baseline": input_file(args.baseline, "--baseline")}),
            chunk_size=args.chunk_size, block=args.block, scheduler=args.scheduler, n_workers=args.workers,
            threads=args.threads, input_key=args.key, max_chunks=args.max_chunks, progress=not args.quiet,
            peer_attributions=None if args.peer_attributions is None else input_file(args.peer_attributions,
                                                                                    "--peer-attributions"),
            **options)
    except (RefattrError, ImportError) as exc:  # bad input, or torch / onnx / dask not installed
        return fail("dataset run", exc)
    done = sum(entry["status"] == "done" for entry in store.manifest["chunks"])
    print(f"{args.out}: {done}/{store.n_chunks} chunks done ({', '.join(store.quantities)}); read it with "
          f"refattr.dataset.open_store({args.out!r}), or refattr dataset report {args.out} --out DIR")
    return 0


def _cmd_report(args) -> int:
    from .report import write_report

    try:
        inputs = None if args.inputs is None else _inputs(args.inputs)[0]
        path = write_report(args.store, args.out, inputs=inputs, worst=args.worst)
    except RefattrError as exc:
        return fail("dataset report", exc)
    print(f"{path}: the report of {args.store}")
    return 0


def add_dataset_commands(subparsers) -> None:
    """Add ``dataset`` (with its action ``run``) to the ``refattr`` command's subparsers."""
    dataset = subparsers.add_parser("dataset", help="attributions for a whole dataset, resumable, in-process or on "
                                                    "Dask")
    actions = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")
    run = actions.add_parser(
        "run", help="attribute every example of INPUTS into the store folder --out",
        description="Attribute every example of INPUTS (.npy, memory-mapped, or .npz with --key) with one method and "
                    "write the results, chunk by chunk, to the folder --out (.npy chunks and manifest.json). Rerunning "
                    "the same command skips the chunks already done. --scheduler local runs on a Dask LocalCluster "
                    "(127.0.0.1 only) sized to the machine; tcp://HOST:PORT uses a running scheduler (pip install "
                    "'refattr[dask]'). Exit 0: done; 2: bad input.")
    run.add_argument("model", metavar="MODEL", help="digits_cnn (the bundled model), a .onnx file, or a .pt/.pth state "
                                                    "dict with --architecture (as refattr compare)")
    run.add_argument("inputs", metavar="INPUTS", help="a .npy (N, *example_shape) or .npz file, or digits_test (the "
                                                      "bundled model's 10 held-out digits, target: their labels)")
    run.add_argument("--out", required=True, metavar="STORE", help="the store folder (created, or resumed)")
    run.add_argument("--method", required=True, help="gradient, input_x_gradient, guided_backprop, deconvnet, "
                                                     "integrated_gradients (ig) or deeplift")
    run.add_argument("--target", metavar="INT|T.npy", help="output index for every example, or a .npy of one per "
                                                           "example")
    run.add_argument("--baseline", metavar="B.npy", help="the baseline: one example's shape or the inputs' shape "
                                                         "(default 0)")
    run.add_argument("--rule", help="integrated gradients: exact, gauss_legendre, ...; deeplift: rescale, "
                                    "reveal_cancel")
    run.add_argument("--n-steps", type=int, help="integrated gradients' steps for the fixed rules")
    run.add_argument("--maxpool-rule", help="deeplift on networks with max pooling: delta_routing or gradient")
    run.add_argument("--chunk-size", type=int, default=256, help="examples per chunk (default 256)")
    run.add_argument("--block", type=int, default=16, help="examples per call of the method (default 16; the "
                                                           "chunk size must be a multiple)")
    run.add_argument("--scheduler", help="local, or a Dask scheduler address tcp://HOST:PORT (default: this process)")
    run.add_argument("--workers", type=int, help="with --scheduler local: worker processes (default: cores / "
                                                 "threads)")
    run.add_argument("--threads", type=int, help="numba and BLAS threads per task (default: all cores in-process, "
                                                 "1 per local worker)")
    run.add_argument("--peer-attributions", metavar="A.npy", help="your attributions of the same inputs: per-example "
                                                                  "differences are stored with the reference")
    run.add_argument("--peer", choices=("captum",), help="also run Captum's attribution of the same method on every "
                                                         "example and grade it (verdict per example)")
    run.add_argument("--peer-method", help="with --peer captum and ig: Captum's IG method (default gausslegendre)")
    run.add_argument("--peer-steps", type=int, help="with --peer captum and ig: Captum's n_steps (default 50)")
    run.add_argument("--peer-rtol", type=float, help="with --peer: rounding tolerance of the verdicts (default 1e-12)")
    run.add_argument("--key", help="the array's name in an .npz INPUTS")
    run.add_argument("--max-chunks", type=int, help="compute at most this many chunks now (rerun to continue)")
    run.add_argument("--architecture", metavar="MODULE:CALLABLE", help="for a state-dict MODEL (as refattr compare)")
    run.add_argument("--trust-pickle", action="store_true", help="DANGER: unpickle MODEL in full, which EXECUTES "
                                                                 "code stored in the file")
    run.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    run.set_defaults(func=_cmd_run)

    report = actions.add_parser(
        "report", help="a Markdown report with PNG figures of the store STORE, into --out",
        description="Write DIR/report.md and PNG figures for a store of refattr dataset run: provenance (model hash, "
                    "version, options, chunks per worker, timing), completeness gaps and, where a peer was graded, its "
                    "error per example (histogram), the examples per verdict and the worst examples next to the "
                    "reference. Exit 0: written; 2: not a store, or a damaged one.")
    report.add_argument("store", metavar="STORE", help="the store folder")
    report.add_argument("--out", required=True, metavar="DIR", help="the report folder (created)")
    report.add_argument("--inputs", metavar="INPUTS", help="the run's inputs (.npy / .npz, or digits_test), for an "
                                                          "input panel next to each worst example")
    report.add_argument("--worst", type=int, default=5, help="how many worst examples to draw (default 5)")
    report.set_defaults(func=_cmd_report)

    def no_action(args) -> int:
        dataset.print_usage(sys.stderr)
        print("refattr dataset: error: choose an action: run MODEL INPUTS --out STORE --method M, or report STORE "
              "--out DIR", file=sys.stderr)
        return 2

    dataset.set_defaults(func=no_action)
