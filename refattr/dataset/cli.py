"""``refattr dataset run``: attributions for every example of a file, into a resumable store.

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
    try:
        model = _model(args.model, args.trust_pickle, args.architecture)
        inputs = input_file(args.inputs, "INPUTS")
        store = attribute_dataset(
            model, inputs, args.out, method=args.method, target=_target(args.target),
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
          f"refattr.dataset.open_store({args.out!r})")
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
    run.add_argument("inputs", metavar="INPUTS", help="a .npy (N, *example_shape) or .npz file")
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
    run.add_argument("--key", help="the array's name in an .npz INPUTS")
    run.add_argument("--max-chunks", type=int, help="compute at most this many chunks now (rerun to continue)")
    run.add_argument("--architecture", metavar="MODULE:CALLABLE", help="for a state-dict MODEL (as refattr compare)")
    run.add_argument("--trust-pickle", action="store_true", help="DANGER: unpickle MODEL in full, which EXECUTES "
                                                                 "code stored in the file")
    run.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    run.set_defaults(func=_cmd_run)

    def no_action(args) -> int:
        dataset.print_usage(sys.stderr)
        print("refattr dataset: error: choose an action: run MODEL INPUTS --out STORE --method M", file=sys.stderr)
        return 2

    dataset.set_defaults(func=no_action)
