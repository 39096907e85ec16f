"""``refattr compare`` and ``refattr oracle``: the command-line side of refattr.interop.

``refattr compare --peer shap MODEL --inputs X.npy --baseline-samples BACKGROUND.npy`` grades SHAP's
DeepExplainer and GradientExplainer (:func:`refattr.interop.compare_shap.compare_shap`).

``add_compare_commands(subparsers)`` adds both commands to the ``refattr`` parser (refattr/cli.py),
whose ``main`` runs them (``refattr compare ...``, ``python -m refattr.cli compare ...``).

Exit codes of ``refattr compare``: 0 when every difference is explained and the peer's results are
correct, 1 when something is unexplained, 2 on bad input (a message on stderr), 3 when every
difference is explained but a known peer bug makes a result wrong (the report's last line, and
``"summary"`` and ``"peer_correct"`` in the JSON, name it and its size).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import sys
import warnings
from collections.abc import Mapping

import numpy as np

from ..cli import fail, input_file, output_directory
from ..errors import ArgumentError, RefattrError, UnsafeFileError
from ..validation import baselines_refused

__all__ = ["add_compare_commands", "load_model"]

#: What to do with a file whose loading would execute code (repeated in the ``--help`` text).
WAYS_OUT = ("save a state dict (torch.save(model.state_dict(), path)) and name the architecture with "
            "--architecture MODULE:CALLABLE (Python: architecture='module:callable'); or export the model to ONNX "
            "(torch.onnx.export) and pass the .onnx file; or, only for a file you trust, pass --trust-pickle "
            "(Python: trust_pickle=True), which EXECUTES the code stored in the file")


def load_model(path, *, trust_pickle: bool = False, architecture: str | None = None):
    """A model file -> what compare_captum / compare_attributions accept. Never runs code from the file by default.

    Parameters
    ----------
    path : str or path
        ``.onnx``: an ONNX model (read by :func:`refattr.interop.from_onnx`; ONNX holds no code).
        ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``, torch's restricted
        unpickler (tensors and plain containers, no code). A state dict needs ``architecture``;
        a full pickled module is refused unless ``trust_pickle``.
        ``.pt2`` (``torch.export.save``): refused unless ``trust_pickle``, because
        ``torch.export.load`` unpickles parts of the archive (its sample inputs and any pickled
        weights or constants) with ``weights_only=False``; with ``trust_pickle`` the program's
        ``ExportedProgram.module()`` is returned.
    trust_pickle : bool
        Load pickles in full (``torch.load(weights_only=False)``, ``torch.export.load``), which
        executes whatever code the file holds. Only for files you trust.
    architecture : str, optional
        ``"package.module:callable"``: an importable function or class that, called with no
        arguments, returns the ``torch.nn.Module`` a state dict belongs to; the weights are loaded
        with ``load_state_dict(strict=True)``.

    Raises
    ------
    UnsafeFileError
        The file holds a pickled object whose loading would run code, and ``trust_pickle`` is False.
    ArgumentError
        A missing path, a directory, an unknown suffix, an unreadable file, a state dict without
        (or not fitting) ``architecture``.
    """
    path = input_file(path, "MODEL")
    if architecture is not None and not path.endswith((".pt", ".pth")):
        raise ArgumentError(f"--architecture: only for a .pt/.pth file holding a state dict, but MODEL is {path!r}; "
                            f"drop --architecture")
    if path.endswith(".onnx"):
        from ._onnx_file import _load

        return _load(path)
    if path.endswith((".pt", ".pth")):
        return _load_torch_file(path, trust_pickle, architecture)
    if path.endswith(".pt2"):
        if not trust_pickle:
            raise UnsafeFileError(f"MODEL: {path!r} is a torch.export archive, and torch.export.load unpickles parts "
                                  f"of it (sample inputs, pickled weights and constants) with weights_only=False, "
                                  f"which runs any code stored there; refattr does not load it by default. Instead: "
                                  f"{WAYS_OUT}")
        from .torch_model import require_torch

        torch = require_torch()
        try:
            program = torch.export.load(path)
        except Exception as exc:  # torch's readers raise many types on a damaged archive
            raise ArgumentError(f"MODEL: torch.export.load cannot read {path!r} ({_first_line(exc)}); expected a file "
                                f"written by torch.export.save") from None
        return program.module()
    raise ArgumentError(f"MODEL: expected a .onnx file, a .pt/.pth PyTorch file or a .pt2 torch.export archive, "
                        f"got {path!r}")


def _load_torch_file(path, trust_pickle, architecture):
    from .torch_model import require_torch

    torch = require_torch()
    try:
        content = _torch_load(torch, path, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            reason = str(exc).partition("WeightsUnpickler error:")[2].strip().split("\n")[0]
            raise UnsafeFileError(f"MODEL: {path!r} holds a pickled object that torch's weights-only loader refuses"
                                  + (f" ({reason})" if reason else "") + "; loading it in full runs code stored in "
                                  f"the file, which refattr does not do by default. Instead: {WAYS_OUT}") from None
        content = _torch_load(torch, path, weights_only=False)
    if isinstance(content, torch.nn.Module):
        if architecture is not None:
            raise ArgumentError(f"--architecture: MODEL {path!r} holds a full module, not a state dict; drop "
                                f"--architecture")
        return content.eval()
    if not isinstance(content, Mapping):
        raise ArgumentError(f"MODEL: {path!r} holds a {type(content).__name__}; expected a state dict "
                            f"(torch.save(model.state_dict(), path)) or, with --trust-pickle, a full torch.nn.Module")
    for key, value in content.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ArgumentError(f"MODEL: {path!r} holds a dict whose entry {key!r} is a {type(value).__name__}, not a "
                                f"tensor; expected a state dict (torch.save(model.state_dict(), path)); for a "
                                f"training checkpoint, save its model's state dict alone")
    if architecture is None:
        raise ArgumentError(f"MODEL: {path!r} holds a state dict ({len(content)} tensors: weights without the "
                            f"architecture); name the architecture with --architecture MODULE:CALLABLE (Python: "
                            f"architecture='package.module:callable'), an importable function or class that returns "
                            f"the torch.nn.Module these weights belong to")
    model = _architecture(torch, architecture)
    try:
        model.load_state_dict(content, strict=True)
    except RuntimeError as exc:  # torch reports missing, unexpected and mis-shaped keys this way
        raise ArgumentError(f"MODEL: the state dict in {path!r} does not fit --architecture {architecture!r}: "
                            f"{' '.join(str(exc).split())}") from None
    return model.eval()


def _torch_load(torch, path, *, weights_only):
    """torch.load on the CPU; an UnpicklingError of the weights-only loader propagates, any other failure
    to read the file becomes an ArgumentError."""
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols other than its default one; a valid file either way
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch's readers raise many types on a damaged file (KeyError, EOFError, ...)
        if weights_only and isinstance(exc, pickle.UnpicklingError):
            raise
        raise ArgumentError(f"MODEL: torch.load cannot read {path!r} ({_first_line(exc)}); expected a file written "
                            f"by torch.save") from None


def _architecture(torch, spec):
    """``"package.module:callable"`` -> the torch.nn.Module that calling it with no arguments returns."""
    module_name, colon, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not (module_name and colon and name) or ":" in name:
        raise ArgumentError(f"--architecture: expected MODULE:CALLABLE (e.g. 'mypackage.models:make_net'), got "
                            f"{spec!r}")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArgumentError(f"--architecture: cannot import {module_name!r} ({exc}); the module must be importable "
                            f"(installed, or its folder on PYTHONPATH)") from None
    for part in name.split("."):
        if not hasattr(target, part):
            raise ArgumentError(f"--architecture: {module_name!r} has no attribute {name!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ArgumentError(f"--architecture: {spec!r} is a {type(target).__name__}, not callable; expected a function "
                            f"or class that returns a torch.nn.Module")
    model = target()
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"--architecture: {spec}() returned a {type(model).__name__}; expected a torch.nn.Module")
    return model


def _first_line(exc) -> str:
    text = str(exc).strip().split("\n")[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _array(path, name):
    """A .npy file -> a real numeric array, read without unpickling."""
    if path is None:
        return None
    path = input_file(path, name)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise ArgumentError(f"{name}: {path!r} is not a .npy file (no NumPy header); save the array with "
                            f"numpy.save(path, array)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:  # object arrays (need pickle), damaged headers, truncated data
        raise ArgumentError(f"{name}: cannot read {path!r} without unpickling ({_first_line(exc)}); refattr reads "
                            f".npy files with allow_pickle=False: save a numeric array, e.g. "
                            f"numpy.save(path, numpy.asarray(a, dtype=numpy.float64))") from None
    if array.dtype.kind not in "biuf":
        raise ArgumentError(f"{name}: {path!r} holds an array of dtype {array.dtype}; expected real numbers")
    return array


def _targets(value):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    if not os.path.exists(value):
        raise ArgumentError(f"--targets: expected an integer or a .npy file of integers, got {value!r}, which is "
                            f"neither an integer nor an existing file")
    return _array(value, "--targets")


def _cmd_compare(args) -> int:
    from .compare import compare_attributions, compare_captum

    try:
        if args.baselines is not None:
            raise baselines_refused("refattr compare", repr(args.baselines), "--baseline B.npy",
                                    "--baseline-samples S.npy", name="--baselines")
        model = load_model(args.model, trust_pickle=args.trust_pickle, architecture=args.architecture)
        inputs = _array(args.inputs, "--inputs")
        baseline = _array(args.baseline, "--baseline")
        baseline = 0.0 if baseline is None else baseline
        targets = _targets(args.targets)
        if args.attributions is not None:
            if args.method is None:
                raise ArgumentError("--method: required with --attributions (e.g. --method integrated_gradients)")
            report = compare_attributions(model, inputs, _array(args.attributions, "--attributions"), args.method,
                                          baseline, targets, rule=args.rule, n_steps=args.n_steps,
                                          maxpool_rule=args.maxpool_rule, rtol=args.rtol)
        elif args.peer == "shap":
            from .compare_shap import SHAP_METHODS, compare_shap

            background = _array(args.baseline_samples, "--baseline-samples")
            if background is None:
                raise ArgumentError("--baseline-samples: required with --peer shap (SHAP's background data, "
                                    "(K, *example_shape))")
            methods = SHAP_METHODS if args.methods is None else [m.strip() for m in args.methods.split(",")
                                                                 if m.strip()]
            report = compare_shap(model, inputs, background, targets, methods, nsamples=args.nsamples,
                                  seed=args.seed, **({} if args.rtol is None else {"rtol": args.rtol}))
        elif args.peer == "tangermeme":
            from .compare_tangermeme import compare_tangermeme

            target = 0 if targets is None else np.ravel(targets)
            if np.size(target) > 1 and np.any(target != target[0]):
                raise ArgumentError("--targets: tangermeme's deep_lift_shap explains one output for the whole batch; "
                                    "pass one int")
            report = compare_tangermeme(model, inputs, references=_array(args.baseline_samples, "--baseline-samples"),
                                        n_shuffles=args.n_shuffles, target=int(np.ravel(target)[0]),
                                        dtype=args.dtype, random_state=args.seed,
                                        rtol=args.rtol)
        else:
            methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
            report = compare_captum(model, inputs, baseline, targets, methods, n_steps=args.n_steps,
                                    baseline_samples=_array(args.baseline_samples, "--baseline-samples"),
                                    hypothetical=args.hypothetical, multiply_by_inputs=not args.multipliers,
                                    **({} if args.rtol is None else {"rtol": args.rtol}))
        trace = None
        if args.trace_delta:
            if args.peer == "shap" or args.attributions is not None:
                raise ArgumentError("--trace-delta: traces Captum's DeepLift / DeepLiftShap or tangermeme's "
                                    "deep_lift_shap; drop --peer shap / --attributions")
            from .delta_trace import trace_delta

            samples = _array(args.baseline_samples, "--baseline-samples")
            trace = trace_delta(model, inputs, baseline, targets if args.peer == "captum" else
                                (0 if targets is None else int(np.ravel(targets)[0])),
                                baseline_samples=samples, peer=args.peer)
    except (RefattrError, ImportError) as exc:  # bad input, or torch / captum / onnx not installed
        return fail("compare", exc)
    print(report.to_json() if args.json else report.table())
    if trace is not None and not args.json:
        print()
        print(trace.table())
    if not report.ok:
        return 1
    return 3 if report.peer_correct is False else 0


def _cmd_oracle_export(args) -> int:
    from ..testing.oracle import export_oracle

    try:
        output_directory(args.directory, "DIRECTORY")
    except RefattrError as exc:
        return fail("oracle export", exc)
    manifest = export_oracle(args.directory)
    n = sum(len(c["attributions"]) for c in manifest["cases"])
    print(f"wrote {len(manifest['cases'])} cases ({n} reference attributions) to {args.directory} "
          f"(manifest.json, format version {manifest['format_version']}, refattr {manifest['refattr_version']})")
    return 0


def add_compare_commands(subparsers) -> None:
    """Add ``compare`` and ``oracle`` to the ``refattr`` command's subparsers.

    Each subcommand sets ``func``, called with the parsed namespace and returning the exit code.
    """
    compare = subparsers.add_parser(
        "compare", help="grade a peer (Captum, SHAP, tangermeme) or your own attributions against refattr's "
                        "reference",
        description="Run the peer's methods on MODEL (Captum by default; --peer shap or tangermeme) and classify "
                    "every difference from refattr's reference as "
                    "rounding, a documented convention, the peer's approximation error, a known peer bug (named "
                    "with its issue and sized), or unexplained (exit 1). The last line says whether the peer's "
                    "results are correct and, if not, which method is off by how much. With --attributions, diff "
                    "your own attributions instead: they are compared with every computation of --method that "
                    "refattr knows (each quadrature rule, each Captum IntegratedGradients method at --n-steps, "
                    "each DeepLIFT and max-pool rule, Captum's DeepLift, Saliency's abs) and the one they equal "
                    "is named. Exit 0: every difference explained and the peer's results correct; 1: something "
                    "unexplained; 2: bad input; 3: every difference explained, but a known peer bug makes a result "
                    "wrong (the last line names it and its size). "
                    "MODEL files are never unpickled by default, because unpickling runs code stored in the file: "
                    "a .pt/.pth file is read with torch's weights-only loader, so give a state dict "
                    "(torch.save(model.state_dict(), path)) together with --architecture MODULE:CALLABLE, or export "
                    "the model to ONNX. A full pickled module (torch.save(model)) or a .pt2 torch.export archive "
                    "loads only with --trust-pickle, which EXECUTES the file: use it only for files you trust.")
    compare.add_argument("model", metavar="MODEL",
                         help="a .onnx file; or a .pt/.pth state dict with --architecture; a full pickled module "
                              "(.pt/.pth) or a .pt2 archive only with --trust-pickle (EXECUTES code in the file)")
    compare.add_argument("--architecture", metavar="MODULE:CALLABLE",
                         help="for a state-dict MODEL: an importable function or class (e.g. "
                              "mypackage.models:make_net) that, called with no arguments, returns the torch.nn.Module the weights belong to "
                              "(loaded with load_state_dict(strict=True)); the module must be on PYTHONPATH")
    compare.add_argument("--trust-pickle", action="store_true",
                         help="DANGER: unpickle MODEL in full (torch.load(weights_only=False), torch.export.load), "
                              "which EXECUTES any code stored in the file; only for files you trust. Safer: a state "
                              "dict with --architecture, or an ONNX export")
    compare.add_argument("--inputs", required=True, metavar="X.npy", help="inputs, batch axis first")
    compare.add_argument("--baseline", metavar="B.npy", help="the baseline (Captum's baselines= of IntegratedGradients "
                                                             "and DeepLift): one example's shape, (1, *example_shape) "
                                                             "or the inputs' shape (default 0)")
    # refused with a message naming both meanings of the name (Captum's per-example baselines, a distribution)
    compare.add_argument("--baselines", help=argparse.SUPPRESS)
    compare.add_argument("--targets", metavar="T.npy|INT", help="target output index per example (.npy of ints) or "
                                                                "one int for all")
    compare.add_argument("--json", action="store_true", help="print the report as JSON")
    compare.add_argument("--peer", choices=("captum", "shap", "tangermeme"), default="captum",
                         help="the library to grade (default captum); shap: DeepExplainer and GradientExplainer "
                              "with --baseline-samples as the background (needs pip install shap==0.51.0); "
                              "tangermeme: deep_lift_shap on one-hot sequences (N, 4, L), with --baseline-samples "
                              "(N, K, 4, L) as the references or else its own dinucleotide shuffles")
    compare.add_argument("--n-shuffles", type=int, default=20,
                         help="with --peer tangermeme: shuffled references per sequence when --baseline-samples is "
                              "not given (default 20)")
    compare.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                         help="with --peer tangermeme: the dtype of its run (default float64)")
    compare.add_argument("--nsamples", type=int, default=200,
                         help="with --peer shap: GradientExplainer's nsamples (default 200)")
    compare.add_argument("--seed", type=int, default=0,
                         help="with --peer shap: GradientExplainer's rseed; with --peer tangermeme: its random_state "
                              "for the shuffles (default 0)")
    compare.add_argument("--methods", metavar="M1,M2", help="Captum methods to compare (default: all of Saliency, "
                                                           "InputXGradient, GuidedBackprop, Deconvolution, "
                                                           "IntegratedGradients, DeepLift, DeepLiftShap)")
    compare.add_argument("--n-steps", type=int, default=50, help="integrated-gradients steps (default 50, Captum's "
                                                                 "default)")
    compare.add_argument("--baseline-samples", metavar="S.npy",
                         help="DeepLiftShap's distribution of references (K, *example_shape), K >= 2 (Captum's "
                              "baselines= of DeepLiftShap; default: --baseline per example), or one set per example "
                              "(N, K, *example_shape): Captum is then called once per example")
    compare.add_argument("--multipliers", action="store_true",
                         help="Captum's DeepLift and DeepLiftShap with multiply_by_inputs=False: compare the "
                              "multipliers instead of the contributions")
    compare.add_argument("--trace-delta", action="store_true",
                         help="also trace the peer's DeepLIFT convergence delta layer by layer (Captum's DeepLift, or "
                              "DeepLiftShap with --baseline-samples; tangermeme's deep_lift_shap): the first layer "
                              "that breaks summation-to-delta, the rule and the cells responsible, what float32 adds")
    compare.add_argument("--hypothetical", action="store_true",
                         help="with DeepLiftShap on one-hot inputs (axis 1): also compare hypothetical contributions "
                              "(Captum with the custom_attribution_func m - sum_c x'[c] m[c])")
    compare.add_argument("--attributions", metavar="A.npy", help="your own attributions to diff against the reference")
    compare.add_argument("--method", help="with --attributions: gradient, input_x_gradient, guided_backprop, "
                                          "deconvnet, integrated_gradients or deeplift")
    compare.add_argument("--rule", help="with --attributions, optional: narrows the search to one integrated-gradients "
                                        "rule (left, right, midpoint, trapezoid, gauss_legendre, exact, quad, or "
                                        "Captum's riemann_* / gausslegendre; a rule and its Captum counterpart are "
                                        "searched together) or DeepLIFT rule (rescale, reveal_cancel; the reference's "
                                        "rule). Default: every known rule")
    compare.add_argument("--maxpool-rule", help="with --attributions and deeplift: delta_routing or gradient (the "
                                                "reference's max-pool rule; narrows the search)")
    compare.add_argument("--rtol", type=float, help="rounding tolerance of the verdicts (default 1e-12; 1e-5 for "
                                                    "float32 attributions)")
    compare.set_defaults(func=_cmd_compare)

    oracle = subparsers.add_parser("oracle", help="export the reference test cases for other libraries' test suites")
    oracle_sub = oracle.add_subparsers(dest="oracle_command", metavar="ACTION")
    export = oracle_sub.add_parser("export", help="write the canonical cases (.npz + manifest.json) to DIRECTORY",
                                   description="Write the versioned oracle set: weights, inputs, baselines, targets "
                                               "and reference attributions for every method and rule, as .npz files "
                                               "with a JSON manifest, loadable with NumPy alone. Deterministic.")
    export.add_argument("directory", metavar="DIRECTORY")
    export.set_defaults(func=_cmd_oracle_export)
    def no_action(args) -> int:
        oracle.print_usage(sys.stderr)
        print("refattr oracle: error: choose an action: export DIRECTORY", file=sys.stderr)
        return 2

    oracle.set_defaults(func=no_action)

