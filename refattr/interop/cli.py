"""``refattr compare`` and ``refattr oracle``: the command-line side of refattr.interop.

``add_compare_commands(subparsers)`` adds both commands to the ``refattr`` parser (refattr/cli.py),
whose ``main`` runs them (``refattr compare ...``, ``python -m refattr.cli compare ...``).

Exit codes of ``refattr compare``: 0 when every difference is explained, 1 when something is
unexplained, 2 on bad input (a message on stderr).
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["add_compare_commands", "load_model"]


def load_model(path):
    """A model file -> what compare_captum / compare_attributions accept.

    ``.onnx``: the ONNX file (read by :func:`refattr.interop.from_onnx`); ``.pt`` / ``.pth``: a
    full pickled ``torch.nn.Module`` (``torch.load(weights_only=False)``, which runs the pickle:
    load only files you trust).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"MODEL: no such file {path!r}")
    if path.endswith(".onnx"):
        from .onnx_model import _load

        return _load(path)
    if path.endswith((".pt", ".pth")):
        from .torch_model import require_torch

        torch = require_torch()
        model = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"MODEL: {path!r} holds a {type(model).__name__}, not a full torch.nn.Module "
                             f"(save with torch.save(model), not model.state_dict())")
        return model.eval()
    raise ValueError(f"MODEL: expected a .onnx file or a .pt/.pth full PyTorch module, got {path!r}")


def _array(path, name):
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file {path!r}") from None


def _targets(value):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return _array(value, "--targets")


def _cmd_compare(args) -> int:
    from ..errors import RefattrError
    from .compare import compare_attributions, compare_captum

    try:
        model = load_model(args.model)
        inputs = _array(args.inputs, "--inputs")
        baselines = _array(args.baselines, "--baselines")
        baselines = 0.0 if baselines is None else baselines
        targets = _targets(args.targets)
        if args.attributions is not None:
            if args.method is None:
                raise ValueError("--method: required with --attributions (e.g. --method integrated_gradients)")
            report = compare_attributions(model, inputs, _array(args.attributions, "--attributions"), args.method,
                                          baselines, targets, rule=args.rule, n_steps=args.n_steps,
                                          maxpool_rule=args.maxpool_rule, rtol=args.rtol)
        else:
            methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
            report = compare_captum(model, inputs, baselines, targets, methods, n_steps=args.n_steps,
                                    shap_baselines=_array(args.shap_baselines, "--shap-baselines"),
                                    **({} if args.rtol is None else {"rtol": args.rtol}))
    except (RefattrError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"refattr compare: error: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.table())
    return 0 if report.ok else 1


def _cmd_oracle_export(args) -> int:
    from ..testing.oracle import export_oracle

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
        "compare", help="diff Captum (or your own attributions) against refattr's reference",
        description="Run Captum's methods on MODEL and classify every difference from refattr's reference as "
                    "rounding, a documented convention, the peer's approximation error, or unexplained (exit 1). "
                    "With --attributions, diff your own attributions instead.")
    compare.add_argument("model", metavar="MODEL", help="a .onnx file, or a .pt/.pth full PyTorch module (torch.save(model))")
    compare.add_argument("--inputs", required=True, metavar="X.npy", help="inputs, batch axis first")
    compare.add_argument("--baselines", metavar="B.npy", help="baseline: one example's shape or the inputs' shape "
                                                              "(default 0)")
    compare.add_argument("--targets", metavar="T.npy|INT", help="target output index per example (.npy of ints) or "
                                                                "one int for all")
    compare.add_argument("--json", action="store_true", help="print the report as JSON")
    compare.add_argument("--methods", metavar="M1,M2", help="Captum methods to compare (default: all of Saliency, "
                                                           "InputXGradient, GuidedBackprop, Deconvolution, "
                                                           "IntegratedGradients, DeepLift, DeepLiftShap)")
    compare.add_argument("--n-steps", type=int, default=50, help="integrated-gradients steps (default 50)")
    compare.add_argument("--shap-baselines", metavar="S.npy", help="DeepLiftShap baselines (K, *example_shape)")
    compare.add_argument("--attributions", metavar="A.npy", help="your own attributions to diff against the reference")
    compare.add_argument("--method", help="with --attributions: gradient, input_x_gradient, guided_backprop, "
                                          "deconvnet, integrated_gradients or deeplift")
    compare.add_argument("--rule", help="with --attributions: the integrated-gradients rule (left, right, midpoint, "
                                        "trapezoid, gauss_legendre, or Captum's riemann_* / gausslegendre) or the "
                                        "DeepLIFT rule (rescale, reveal_cancel)")
    compare.add_argument("--maxpool-rule", help="with --attributions and deeplift: delta_routing or gradient")
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
    oracle.set_defaults(func=lambda args: (oracle.print_help(), 2)[1])

