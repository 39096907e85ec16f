"""PyTorch ``nn.Sequential`` <-> :class:`refattr.Sequential`.

torch is imported inside the functions. Weights are copied in PyTorch's own layouts (batch axis
first, ``Linear.weight`` (out, in), ``Conv2d.weight`` (C_out, C_in // groups, kH, kW)), converted
to float64 (exact from float32). Every import is checked: what would make the module compute
something other than its layers (hooks, an instance ``forward``) is refused, and the imported
network is run against the module on a probe input.
"""

from __future__ import annotations

import copy
import numbers
import warnings

from types import ModuleType
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._typing import TorchModule, TorchTensor
from ..errors import ArgumentError, ImportMismatchError, NonFiniteError, RefattrError, ShapeError, UnsupportedLayerError
from ..layers import Affine, AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, MaxPool1D, MaxPool2D
from ..layers import registry
from ..graph import Graph
from ..network import Network, Sequential
from . import _batchnorm as batchnorm
from . import _torch_affine

__all__ = ["from_torch", "to_torch", "torch_forward", "require_torch", "supported_torch"]

#: The torch modules with their own import code (weights, padding forms, pooling settings), with
#: what of them is supported. Every other module a registered layer names in ``torch_modules``
#: imports through its declarations (:mod:`refattr.layers.registry`).
SPECIAL_TORCH = {"Linear": "Linear", "Conv2d": "Conv2d (padding_mode='zeros')",
                 "Conv1d": "Conv1d (padding_mode='zeros')",
                 "MaxPool2d": "MaxPool2d (dilation 1, ceil_mode=False)",
                 "AvgPool2d": "AvgPool2d (ceil_mode=False, no divisor_override)"}
#: Torch modules that no refattr layer stands for: merged, folded or dropped on import.
MERGED_TORCH = ("ZeroPad2d before Conv2d or AvgPool2d", "ZeroPad1d before Conv1d",
                "BatchNorm1d/BatchNorm2d in eval mode with running statistics",
                "Dropout/Dropout1d/Dropout2d in eval mode", "Identity")


def supported_torch() -> str:
    """What :func:`from_torch` imports, read from the layer registry (for messages)."""
    names = []
    for entry in registry.registered():
        for name in entry.torch_modules:
            required = ", ".join(f"{a}={v!r}" for a, v in entry.torch_requires.items())
            names.append(SPECIAL_TORCH.get(name, f"{name}({required})" if required else name))
    return ", ".join(["Sequential (nested too)", *names, *MERGED_TORCH])


def require_torch() -> ModuleType:
    """Import torch or raise an ImportError that says what to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("refattr.interop needs PyTorch for this: pip install torch==2.13.0 "
                          "(and captum==0.9.0 for compare_captum)") from exc
    return torch


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy().copy()


#: The import check's tolerance: the imported network's output on the probe input may differ from
#: the module's own float64 output by at most this much, relative to the largest |output| over
#: the probe batch. Both sides evaluate the same float64 arithmetic in a different order (BLAS
#: blocking, convolution algorithms, BatchNorm folded into the layer before it), which costs a
#: few ulps per layer: about 1e-15 to 1e-13 relative on the networks in refattr's tests. Outputs
#: that cancel (a large sum of terms giving a small result) lose the same absolute accuracy
#: relative to a smaller scale, and 1e-9 leaves four orders of magnitude for that, while a hook or
#: a patched forward changes outputs by far more (0.3 to 7.5 relative in the cases that prompted
#: this check).
PROBE_RTOL = 1e-9

#: The probe batch: PROBE_EXAMPLES standard normal examples drawn with this seed (unit-sized inputs
#: cross ReLU kinks, reach both tails of tanh and sigmoid and exercise every weight), then one
#: all-zero example (the usual baseline).
PROBE_SEED = 0
PROBE_EXAMPLES = 3

#: Square image sizes searched for a convolutional network's probe when ``input_shape`` is not
#: given; the size chosen is the smallest that the network accepts from PROBE_MIN_SIDE on (so that
#: every kernel weight meets real, not padded, inputs), else the largest accepted below it.
PROBE_SIDES = range(1, 257)
PROBE_MIN_SIDE = 8


def _walk(module, prefix=""):
    """Yield (path, leaf module) in execution order, descending into nn.Sequential containers."""
    torch = require_torch()
    # _modules, not named_children(): the latter skips a module object's second appearance, and a
    # Sequential may reuse one module (e.g. one ReLU) in several places.
    for name, child in module._modules.items():
        if child is None:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if type(child).forward is torch.nn.Sequential.forward:
            yield from _walk(child, path)
        else:
            yield path, child


def _label(path, module) -> str:
    """How messages name a torch module: its path in the Sequential and its type."""
    kind = f"{type(module).__module__}.{type(module).__name__}"
    return f"module {path!r} ({kind})" if path else f"module ({kind})"


def _kind(module):
    """The class whose computation ``module`` runs.

    A module with ``torch.nn.utils.parametrize`` parametrizations (e.g.
    ``torch.nn.utils.parametrizations.weight_norm``) has a class made by torch, ``Parametrized<Base>``,
    which only turns the parametrized tensors into properties computed on access; it computes what
    ``Base`` computes with those tensors, so it is imported as ``Base``.
    """
    from torch.nn.utils import parametrize

    kind = type(module)
    if parametrize.is_parametrized(module) and len(kind.__bases__) == 1:
        base = kind.__bases__[0]
        own = set(vars(kind))
        if kind.__name__ == f"Parametrized{base.__name__}" and not own & {"forward", "__call__", "_call_impl"}:
            return base
    return kind


def _refuse(path, position, module, reason):
    raise UnsupportedLayerError(
        f"{_label(path, module)} at position {position} of the flattened Sequential: {reason}. "
        f"Supported: {supported_torch()}"
    )


def _hook_name(hook) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__qualname__


def _old_style_norms() -> tuple:
    """(WeightNorm, SpectralNorm): the pre-hook classes of the deprecated weight_norm / spectral_norm
    (a class torch no longer has is left out)."""
    import importlib

    found = []
    for module, name in (("torch.nn.utils.weight_norm", "WeightNorm"),
                         ("torch.nn.utils.spectral_norm", "SpectralNorm")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # pragma: no cover - depends on the torch version
            found.append(())
    return tuple(found)


def _hook_refusal(label, kind, hook, register) -> ImportMismatchError:
    WeightNorm, SpectralNorm = _old_style_norms()
    if isinstance(hook, WeightNorm):
        return ImportMismatchError(
            f"{label}: uses the old-style torch.nn.utils.weight_norm, whose forward pre-hook recomputes "
            f"{hook.name!r} from {hook.name}_g and {hook.name}_v at every call, so the stored {hook.name!r} "
            f"can be stale; call torch.nn.utils.remove_weight_norm(module) first, or use "
            f"torch.nn.utils.parametrizations.weight_norm, whose weight is computed on access"
        )
    if isinstance(hook, SpectralNorm):
        return ImportMismatchError(
            f"{label}: uses the old-style torch.nn.utils.spectral_norm, whose forward pre-hook recomputes "
            f"{hook.name!r} at every call (and updates its power iteration in training mode); call "
            f"torch.nn.utils.remove_spectral_norm(module) first, or use "
            f"torch.nn.utils.parametrizations.spectral_norm in eval mode"
        )
    return ImportMismatchError(
        f"{label}: has a {kind} {_hook_name(hook)!r} ({register}), which runs at every call and can change "
        f"what the module computes; refattr imports the layers alone. Remove it (handle.remove() on the "
        f"handle {register} returned) before importing, or build the module without it"
    )


def _refuse_what_changes_the_call(module):
    """Refuse hooks and instance attributes that make ``module(x)`` compute something other than its
    layers' own ``forward``.

    Refused: forward hooks and forward pre-hooks, on any module or registered globally
    (``torch.nn.modules.module.register_module_forward_hook`` / ``..._pre_hook``), since their
    return values replace a module's input or output; a ``forward`` or ``_call_impl`` set on an
    instance, which replaces the class's. Allowed: backward hooks and backward pre-hooks. They run
    in torch's autograd on gradients only (a full backward hook wraps the module's inputs and
    outputs in an identity autograd function), so the forward function that is imported is the
    same with or without them; refattr computes its gradients from the imported layers.
    """
    torch = require_torch()
    registry = torch.nn.modules.module
    for kind, hooks, register in (
            ("global forward pre-hook", registry._global_forward_pre_hooks,
             "torch.nn.modules.module.register_module_forward_pre_hook"),
            ("global forward hook", registry._global_forward_hooks,
             "torch.nn.modules.module.register_module_forward_hook")):
        for hook in hooks.values():
            raise ImportMismatchError(
                f"module: a {kind} {_hook_name(hook)!r} is registered ({register}); it runs at every module's call "
                f"and can change what the module computes, while refattr imports the layers alone. Remove it "
                f"(handle.remove() on the handle {register.rsplit('.', 1)[1]} returned) before importing"
            )
    for path, m in module.named_modules(remove_duplicate=False):
        label = _label(path, m)
        for name in ("forward", "_call_impl"):
            if name in vars(m):
                raise ImportMismatchError(
                    f"{label}: has {name} set on the instance ({_hook_name(vars(m)[name])!r}), so calling it "
                    f"does not run {type(m).__name__}.forward; refattr imports the layer's own computation. "
                    f"Delete the attribute (del module.{name}) or express the computation as layers"
                )
        for kind, hooks, register in (("forward pre-hook", m._forward_pre_hooks, "register_forward_pre_hook"),
                                      ("forward hook", m._forward_hooks, "register_forward_hook")):
            for hook in hooks.values():
                raise _hook_refusal(label, kind, hook, register)


def _conv_padding(path, position, m):
    if m.padding_mode != "zeros":
        _refuse(path, position, m, f"padding_mode={m.padding_mode!r}; refattr zero-pads only "
                                   f"(pad explicitly, or use padding_mode='zeros')")
    if m.padding == "valid":
        return 0
    if m.padding == "same":
        # PyTorch splits the total d (k - 1) with the smaller half first (top / left).
        pads = []
        for k, d in zip(m.kernel_size, m.dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(p for side in pads for p in side)   # (top, bottom, left, right), or (left, right) in 1-D
    return tuple(int(p) for p in m.padding)


def _batchnorm_affine(path, position, m):
    """(scale, shift) with BN(z) = scale * z + shift per channel, in float64."""
    if m.training:
        _refuse(path, position, m, "in training mode (it would use batch statistics); call model.eval()")
    if m.running_mean is None or m.running_var is None:
        _refuse(path, position, m, "track_running_stats=False (batch statistics even in eval mode)")
    mean, var = _numpy(m.running_mean), _numpy(m.running_var)
    gamma = _numpy(m.weight) if m.weight is not None else np.ones_like(mean)
    beta = _numpy(m.bias) if m.bias is not None else np.zeros_like(mean)
    return batchnorm.affine_of(gamma, beta, mean, var, m.eps)


def _example_shape(input_shape):
    """``input_shape`` as a tuple of positive ints, or None."""
    if input_shape is None:
        return None
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = None
    if dims is None or not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1
                                       for d in dims):
        raise ArgumentError(f"input_shape: expected one example's shape as a tuple of positive ints, without the "
                            f"batch axis (e.g. (4,) or (3, 32, 32)), got {input_shape!r}")
    return tuple(int(d) for d in dims)


def from_torch(module: TorchModule,
               input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None) -> Sequential | Graph:
    """Convert a PyTorch ``nn.Sequential`` into a :class:`refattr.Sequential`, or any other module
    that ``torch.fx`` can trace into a :class:`refattr.Graph`, and check it.

    A module that is not an ``nn.Sequential`` (residual blocks, branches joined by ``torch.cat``,
    functional calls such as ``F.relu``, several inputs ``forward(self, x1, x2)``) is traced with
    ``torch.fx.symbolic_trace`` and imported node by node, each module as below
    (:mod:`refattr.interop.torch_fx` lists the functions and tensor methods it maps); with
    several inputs ``input_shape`` is a list of example shapes, one per input.

    Parameters
    ----------
    module : torch.nn.Sequential
        Nested Sequentials are flattened. Every leaf must be one of: Linear, Conv2d, MaxPool2d,
        AvgPool2d, BatchNorm1d/2d (eval mode), Dropout (eval mode, dropped), Identity (dropped),
        ZeroPad2d directly before a Conv2d or AvgPool2d (merged into its padding; this is what
        :func:`to_torch` writes for asymmetric padding), or a module that a registered layer names
        in its ``torch_modules`` (ReLU, Tanh, Sigmoid, SiLU, Flatten, ...; :func:`supported_torch`
        lists them all), whose constructor arguments are read from the module's attributes of the
        same names (:mod:`refattr.layers.registry`). A leaf with
        ``torch.nn.utils.parametrize`` parametrizations (e.g.
        ``torch.nn.utils.parametrizations.weight_norm``) is imported with its parametrized
        tensors as computed now.
    input_shape : tuple of int, optional
        One example's shape, passed to :class:`refattr.Sequential` so that shapes are checked now,
        and the shape of the import check's probe. Without it the probe's shape is inferred: the
        first Linear's ``(in_features,)`` when the network starts with one, else
        ``(C, s, s)`` with C the first Conv2d's input channels (1 without a Conv2d) and s the
        smallest side in 8..256 that the network accepts (the largest in 1..7 if none). A
        network that accepts no such square (e.g. a Linear after Flatten that fits only
        rectangular images) needs ``input_shape``.

    Returns
    -------
    Sequential or Graph
        A Sequential for an ``nn.Sequential``, a Graph for any other module. Computes the same
        function as ``module`` in float64: forward outputs agree with PyTorch's
        float64 forward to 1e-12 relative (tested for every supported layer).

    Raises
    ------
    UnsupportedLayerError
        For any other module, naming it, its position in the flattened sequence and what is
        supported; also for supported modules with settings refattr does not model:
        ``padding_mode`` other than 'zeros', ``ceil_mode=True``, max-pool dilation other than 1,
        ``divisor_override``, ``return_indices``, a Flatten with start_dim or end_dim 0 (the batch axis), BatchNorm or
        Dropout in training mode, BatchNorm without running statistics.
    ImportMismatchError
        When something would make ``module(x)`` compute other than its layers: a forward hook or
        forward pre-hook on any module or registered globally, a ``forward`` (or ``_call_impl``)
        set on an instance, the old-style ``torch.nn.utils.weight_norm`` or ``spectral_norm``
        (whose pre-hooks recompute the weight at each call; the stored one may be stale). Backward
        hooks are allowed: they do not change the forward function. And when the import check
        fails (below).
    ShapeError, NonFiniteError, ArgumentError
        For parameters refattr's layers refuse (NaN weights, a Linear with no inputs, a BatchNorm
        whose running_var + eps is not positive) and for an ``input_shape`` the network does not
        accept; the message starts with the torch module's path and type.

    Notes
    -----
    - **The import check.** After conversion the module itself, as the user calls it (a float64
      copy on the CPU, as :func:`torch_forward` runs it), and the imported network are run on a
      probe batch: 3 standard normal examples (seed 0) and the zero input. If the largest
      difference exceeds 1e-9 times the largest |output| over the batch (``PROBE_RTOL``: float64
      rounding in a different order costs about 1e-15 to 1e-13; the margin is for outputs that
      cancel), the import is refused with ImportMismatchError. This catches what no explicit
      refusal does, e.g. a layer class whose ``forward`` was patched or a Sequential subclass
      with its own ``__call__``. An all-zero output must be matched exactly.
    - **BatchNorm** in eval mode is the per-channel affine map scale * z + shift with
      scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale. It is folded
      into the preceding Linear or Conv2d when it directly follows one (Dropout and Identity in
      between are skipped): W' = scale * W, b' = scale * b + shift. Otherwise it becomes its own
      linear layer, an :class:`~refattr.layers.Affine` with one scale and shift per channel (on
      features, sequences or images alike). Gradients, integrated gradients and DeepLIFT Rescale are the same either
      way (BatchNorm is linear); only DeepLIFT RevealCancel, whose positive/negative split happens
      per linear layer, can see the difference between folded and separate.
    - **SiLU** becomes ``Swish(beta=1)``.
    - Conv2d ``padding='same'`` becomes PyTorch's split of d (k - 1): the smaller half on top / left.
    """
    torch = require_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(
            f"module: expected a torch.nn.Module (an nn.Sequential, or a module torch.fx can trace), got "
            f"{type(module).__module__}.{type(module).__name__}"
        )
    if type(module).forward is not nn.Sequential.forward:
        from .torch_fx import from_traced

        return from_traced(module, input_shape)
    example_shape = _example_shape(input_shape)
    _refuse_what_changes_the_call(module)
    layers, labels = _convert(module)
    for shape in (None,) if example_shape is None else (None, example_shape):
        _check_shapes(layers, labels, shape)
    net = Sequential(layers, input_shape=example_shape)
    _check_import(module, net, example_shape)
    return net


def _convert(module):
    """(refattr layers, the label of the torch module each one comes from)."""
    torch = require_torch()
    nn = torch.nn
    layers: list = []
    labels: list = []
    foldable = False  # True while the last emitted layer is a Dense/Conv2D with nothing but identities after it
    pad = None  # (top, bottom, left, right) of a ZeroPad2d waiting for its Conv2d / AvgPool2d
    pad1d = None  # (left, right) of a ZeroPad1d waiting for its Conv1d
    for position, (path, m) in enumerate(_walk(module)):
        label = _label(path, m)
        n_before = len(layers)
        try:
            kind = _kind(m)
            if pad is not None and kind not in (nn.Conv2d, nn.AvgPool2d, nn.Identity, nn.Dropout, nn.Dropout1d,
                                                nn.Dropout2d):
                _refuse(path, position, m, "a ZeroPad2d is supported only directly before a Conv2d or AvgPool2d, "
                                           "whose padding it becomes")
            if pad1d is not None and kind not in (nn.Conv1d, nn.Identity, nn.Dropout, nn.Dropout1d):
                _refuse(path, position, m, "a ZeroPad1d is supported only directly before a Conv1d, whose padding "
                                           "it becomes")
            if kind is nn.ZeroPad1d:
                left, right = (int(p) for p in m.padding)
                if min(left, right) < 0 or pad1d is not None:
                    _refuse(path, position, m, "negative padding (cropping) or two ZeroPad1d in a row")
                pad1d = (left, right)
                foldable = False
                continue
            if kind is nn.ZeroPad2d:
                left, right, top, bottom = (int(p) for p in m.padding)
                if min(left, right, top, bottom) < 0 or pad is not None:
                    _refuse(path, position, m, "negative padding (cropping) or two ZeroPad2d in a row")
                pad = (top, bottom, left, right)
                foldable = False
                continue
            if kind is nn.Conv2d:
                padding = _conv_padding(path, position, m)
                if pad is not None:
                    padding = tuple(a + b for a, b in zip(pad, _four(padding)))
                    pad = None
                layers.append(Conv2D(_numpy(m.weight), None if m.bias is None else _numpy(m.bias),
                                     stride=tuple(m.stride), padding=padding,
                                     dilation=tuple(m.dilation), groups=int(m.groups)))
                foldable = True
            elif kind is nn.Conv1d:
                padding = _two(_conv_padding(path, position, m))
                if pad1d is not None:
                    padding, pad1d = tuple(a + b for a, b in zip(pad1d, padding)), None
                layers.append(Conv1D(_numpy(m.weight), None if m.bias is None else _numpy(m.bias),
                                     stride=tuple(m.stride), padding=padding,
                                     dilation=tuple(m.dilation), groups=int(m.groups)))
                foldable = True
            elif kind is nn.AvgPool2d and pad is not None:
                own = _four(_pair(m.padding))
                if any(own) and not m.count_include_pad:
                    _refuse(path, position, m, "count_include_pad=False after a ZeroPad2d (the padded zeros are "
                                               "real cells, the pool's own padding is not)")
                layer = _convert_parameter_free(path, position, m)
                try:
                    layers.append(AvgPool2D(layer.kernel, stride=layer.stride,
                                            padding=tuple(a + b for a, b in zip(pad, own)), count_include_pad=True))
                except ShapeError as exc:
                    _refuse(path, position, m, f"with the ZeroPad2d before it: {exc}")
                pad = None
                foldable = False
            elif kind is nn.Linear:
                layers.append(Dense(_numpy(m.weight), None if m.bias is None else _numpy(m.bias)))
                foldable = True
            elif kind in (nn.BatchNorm1d, nn.BatchNorm2d):
                scale, shift = _batchnorm_affine(path, position, m)
                if foldable:
                    layers[-1] = batchnorm.fold(layers[-1], scale, shift)
                else:
                    layers.append(batchnorm.as_layer(scale, shift))
                # a second BatchNorm in a row folds into the result as well
                foldable = True
            elif kind in (nn.Dropout, nn.Dropout1d, nn.Dropout2d):
                if m.training:
                    _refuse(path, position, m, "in training mode (random); call model.eval()")
            elif kind is nn.Identity:
                pass
            elif kind is _torch_affine.affine_module_class():      # what to_torch writes for an Affine
                layers.append(_torch_affine.from_module(m))
                foldable = False
            else:
                layers.append(_convert_parameter_free(path, position, m))
                foldable = False
        except RefattrError as exc:
            if str(exc).startswith(label):
                raise
            # a refattr layer's own message names its parameter ("Dense weight"); say which module
            raise type(exc)(f"{label} at position {position}: {exc}") from None
        labels.extend([label] * (len(layers) - n_before))
    if pad1d is not None:
        raise UnsupportedLayerError("module: ends with a ZeroPad1d; it is supported only directly before a Conv1d")
    if pad is not None:
        raise UnsupportedLayerError("module: ends with a ZeroPad2d; it is supported only directly before a Conv2d "
                                    "or AvgPool2d")
    if not layers:
        raise UnsupportedLayerError("module: the Sequential has no layers that compute anything")
    return layers, labels


def _check_shapes(layers, labels, example_shape):
    """Propagate ``example_shape`` (None: only what is known without it) through the layers, naming
    the torch module a ShapeError comes from."""
    shape = example_shape
    for layer, label in zip(layers, labels):
        try:
            shape = layer.output_shape(shape)
        except ShapeError as exc:
            given = "" if example_shape is None else f" (with input_shape={example_shape})"
            raise ShapeError(f"{label}{given}: {exc}") from None


def _fits(net, example_shape) -> bool:
    try:
        net.output_shape(example_shape)
    except ShapeError:
        return False
    return True


def _probe_shape(net) -> tuple:
    """One example's shape for the import check when ``input_shape`` was not given (see from_torch)."""
    first = next((layer for layer in net.layers if isinstance(layer, (Dense, Conv2D, Conv1D))), None)
    if isinstance(first, Conv1D):   # sequences (C, L): the smallest length from PROBE_MIN_SIDE on, else the largest
        fitting = [(first.in_channels, n) for n in PROBE_SIDES if _fits(net, (first.in_channels, n))]
        if fitting:
            return next((shape for shape in fitting if shape[1] >= PROBE_MIN_SIDE), fitting[-1])
    vector = (first.in_features,) if isinstance(first, Dense) else (PROBE_MIN_SIDE,)
    if not isinstance(first, Conv2D) and _fits(net, vector):
        return vector
    if isinstance(first, Conv2D):
        channels = [first.in_channels]
    elif isinstance(first, Dense):  # only pooling, element-wise layers and Flatten before it: C h w = in_features
        channels = [c for c in range(1, first.in_features + 1) if first.in_features % c == 0]
    else:
        channels = [1]
    below = None
    for side in PROBE_SIDES:
        fitting = next(((c, side, side) for c in channels if _fits(net, (c, side, side))), None)
        if fitting is not None:
            if side >= PROBE_MIN_SIDE:
                return fitting
            below = fitting
    if below is not None:
        return below
    c = channels[0] if len(channels) == 1 else "C"
    raise ShapeError(
        f"input_shape: needed to check the import; the network accepts no square image ({c}, s, s) with s in "
        f"{PROBE_SIDES.start}..{PROBE_SIDES.stop - 1}; pass one example's shape, "
        f"e.g. from_torch(module, input_shape=({c}, H, W))"
    )


def _check_import(module, net, input_shape):
    """Run the module and the imported network on the probe batch; refuse a difference beyond rounding.

    With several inputs ``input_shape`` holds one example shape per input (required); the probes
    are drawn in input order from the one generator, and the module is called as ``module(*probes)``.
    """
    several = net.n_inputs > 1
    if several:
        shapes = [tuple(s) for s in input_shape]
    else:
        shapes = [_probe_shape(net) if input_shape is None else tuple(input_shape)]
    rng = np.random.default_rng(PROBE_SEED)
    xs = [np.concatenate([rng.standard_normal((PROBE_EXAMPLES,) + s), np.zeros((1,) + s)]) for s in shapes]
    x = tuple(xs) if several else xs[0]
    probe = (f"the import check's probe input{'s' if several else ''} ({PROBE_EXAMPLES} standard normal examples"
             f"{' each' if several else ''}, seed {PROBE_SEED}, and the zero input, "
             f"shape{'s' if several else ''} {[a.shape for a in xs] if several else xs[0].shape})")
    try:
        with warnings.catch_warnings():
            # the module's own warnings (e.g. Conv2d padding='same' with an even kernel) are about
            # running it, which the user does anyway, not about the import
            warnings.simplefilter("ignore")
            expected = torch_forward(module, x)
    except Exception as exc:  # the user's module may raise anything; say where it came from
        hint = ("the shape was inferred from the imported network; pass input_shape= with the shape the module "
                "expects" if input_shape is None else "check input_shape")
        raise ImportMismatchError(f"module: running it on {probe} raised {type(exc).__name__}: {exc}; {hint}") from exc
    n = xs[0].shape[0]
    out_shape = (n,) + net.output_shape(tuple(shapes) if several else shapes[0])
    if expected.shape != out_shape:
        raise ImportMismatchError(f"module: on {probe} it returns shape {expected.shape}, the imported network "
                                  f"{out_shape}")
    if not np.all(np.isfinite(expected)):
        raise NonFiniteError(f"module: its output on {probe} is not finite; with weights this large neither it nor "
                             f"the imported network can be evaluated on inputs of size 1")
    try:
        actual = net(x)
    except NonFiniteError as exc:
        raise NonFiniteError(f"module: the imported network overflows on {probe} (the module's output is finite): "
                             f"{exc}") from None
    difference = np.abs(actual - expected)
    scale = max(float(np.max(np.abs(expected))), float(np.max(np.abs(actual))))
    worst = np.unravel_index(int(np.argmax(difference)), difference.shape)
    if not difference[worst] <= PROBE_RTOL * scale:
        raise ImportMismatchError(
            f"module: the imported network computes a different function: on {probe}, output {worst[1]} of "
            f"example {worst[0]} is {float(actual[worst])!r} imported and {float(expected[worst])!r} from the "
            f"module (difference "
            f"{difference[worst]:.3g}, {difference[worst] / scale:.3g} of the largest |output| {scale:.3g}; "
            f"rounding allows {PROBE_RTOL:g}). Something changes what the module computes beyond its layers' "
            f"parameters (a patched forward or __call__, a custom module class); run the module's layers unmodified"
        )


def _two(padding):
    """An int, (p,) or (left, right) -> (left, right)."""
    if isinstance(padding, int):
        return (padding, padding)
    padding = tuple(int(p) for p in padding)
    return padding if len(padding) == 2 else padding * 2


def _four(padding):
    """An int, (height, width) or (top, bottom, left, right) -> (top, bottom, left, right)."""
    if isinstance(padding, int):
        return (padding,) * 4
    padding = tuple(int(p) for p in padding)
    return padding if len(padding) == 4 else (padding[0], padding[0], padding[1], padding[1])


def _convert_parameter_free(path, position, m):
    torch = require_torch()
    nn = torch.nn
    kind = _kind(m)
    if kind is nn.MaxPool2d:
        if m.ceil_mode:
            _refuse(path, position, m, "ceil_mode=True; refattr pools in floor mode only")
        if m.return_indices:
            _refuse(path, position, m, "return_indices=True (the module returns a tuple)")
        if _pair(m.dilation) != (1, 1):
            _refuse(path, position, m, f"dilation={m.dilation}; only dilation 1 is supported for max pooling")
        return MaxPool2D(_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding))
    if kind is nn.AvgPool2d:
        if m.ceil_mode:
            _refuse(path, position, m, "ceil_mode=True; refattr pools in floor mode only")
        if m.divisor_override is not None:
            _refuse(path, position, m, f"divisor_override={m.divisor_override}; refattr divides by the window "
                                       f"size (count_include_pad) or the number of real cells")
        return AvgPool2D(_pair(m.kernel_size), stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding),
                         count_include_pad=bool(m.count_include_pad))
    if kind is nn.Hardswish:
        _refuse(path, position, m, "Hardswish is x * relu6(x + 3) / 6, a piecewise function, not swish")
    entry = registry.by_torch_module(kind)
    if entry is None:
        _refuse(path, position, m, "no refattr layer computes it")
    return _from_declared(path, position, m, entry)


def _from_declared(path, position, m, entry):
    """The layer ``entry`` declares for module ``m``: its constructor's arguments are the module's
    attributes of the same names (or as ``torch_arguments`` renames them), after the settings in
    ``torch_requires`` are checked."""
    for attribute, value in entry.torch_requires.items():
        seen = getattr(m, attribute, None)
        if seen != value:
            wanted = ", ".join(f"{a}={v!r}" for a, v in entry.torch_requires.items())
            _refuse(path, position, m, f"{attribute}={seen!r}; refattr's {entry.name} models only {wanted}")
    arguments = {}
    for name in entry.arguments:
        attribute = entry.torch_arguments.get(name, name)
        if attribute is None:  # the module has no such argument: the constructor's default is what it computes
            continue
        if not hasattr(m, attribute):
            _refuse(path, position, m, f"it has no attribute {attribute!r}, which refattr's {entry.name} reads as its "
                                       f"argument {name!r} (declare the torch name in {entry.name}.torch_arguments)")
        arguments[name] = getattr(m, attribute)
    try:
        return entry.cls(**arguments)
    except ArgumentError as exc:
        _refuse(path, position, m, str(exc))


def _pair(value):
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[1]))
    return (int(value), int(value))


def to_torch(net: Network) -> TorchModule:
    """A float64 ``torch.nn.Sequential`` computing the same function as ``net`` (for a
    :class:`~refattr.Graph`, a module whose ``forward(*inputs)`` runs the nodes in order, the joins
    as tensor operations: :func:`refattr.interop.torch_graph.graph_to_torch`).

    Used to run a peer library (Captum) on a model that was loaded from ONNX or built in refattr.
    Asymmetric convolution padding becomes ``nn.ZeroPad2d`` followed by an unpadded ``nn.Conv2d``
    (likewise average pooling with ``count_include_pad=True``). Any other registered layer becomes
    ``torch.nn.<its first torch_modules name>`` built from its constructor's arguments
    (:mod:`refattr.layers.registry`). Refused with UnsupportedLayerError: a layer without a torch
    module, Swish with beta != 1 (``nn.SiLU`` is beta = 1), asymmetric max-pool padding, and
    asymmetric average-pool padding with ``count_include_pad=False``.
    """
    torch = require_torch()
    nn = torch.nn
    if isinstance(net, Graph):
        from .torch_graph import graph_to_torch

        return graph_to_torch(net)
    if not isinstance(net, Sequential):
        hint = " (to import a torch module, use from_torch)" if isinstance(net, nn.Module) else ""
        raise ArgumentError(f"net: expected a refattr.Sequential or Graph, got {type(net).__module__}.{type(net).__name__}"
                            f"{hint}")
    modules = []

    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float64))

    for i, layer in enumerate(net.layers):
        if isinstance(layer, Affine):
            modules.append(_torch_affine.to_module(layer))
        elif isinstance(layer, Dense):
            lin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None).double()
            with torch.no_grad():
                lin.weight.copy_(tensor(layer.weight))
                if layer.bias is not None:
                    lin.bias.copy_(tensor(layer.bias))
            modules.append(lin)
        elif isinstance(layer, Conv2D):
            top, bottom, left, right = layer.padding
            symmetric = top == bottom and left == right
            if not symmetric:
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, tuple(layer.weight.shape[2:]),
                             stride=layer.stride, padding=(top, left) if symmetric else 0,
                             dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None).double()
            with torch.no_grad():
                conv.weight.copy_(tensor(layer.weight))
                if layer.bias is not None:
                    conv.bias.copy_(tensor(layer.bias))
            modules.append(conv)
        elif isinstance(layer, (Conv1D, MaxPool1D, AvgPool1D)):
            modules.extend(_oned_to_torch(i, layer, nn, tensor))
        elif isinstance(layer, (AvgPool2D, MaxPool2D)):
            top, bottom, left, right = layer.padding
            symmetric = top == bottom and left == right
            if isinstance(layer, MaxPool2D):
                if not symmetric:
                    raise UnsupportedLayerError(f"net.layers[{i}]: MaxPool2D with asymmetric padding "
                                                f"{layer.padding} has no nn.MaxPool2d equivalent")
                modules.append(nn.MaxPool2d(layer.kernel, stride=layer.stride, padding=(top, left)))
            elif symmetric:
                modules.append(nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=(top, left),
                                            count_include_pad=layer.count_include_pad))
            elif layer.count_include_pad:
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
                modules.append(nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=0))
            else:
                raise UnsupportedLayerError(f"net.layers[{i}]: AvgPool2D with asymmetric padding {layer.padding} "
                                            f"and count_include_pad=False has no nn.AvgPool2d equivalent")
        else:
            modules.append(_to_declared(i, layer, nn))
    return nn.Sequential(*modules).double().eval()


def _oned_to_torch(i, layer, nn, tensor):
    """Conv1d (after a ZeroPad1d where the padding is asymmetric), MaxPool1d or AvgPool1d."""
    left, right = layer.padding
    if isinstance(layer, Conv1D):
        conv = nn.Conv1d(layer.in_channels, layer.out_channels, layer.weight.shape[2], stride=layer.stride,
                         padding=left if left == right else 0, dilation=layer.dilation, groups=layer.groups,
                         bias=layer.bias is not None).double()
        with require_torch().no_grad():
            conv.weight.copy_(tensor(layer.weight))
            if layer.bias is not None:
                conv.bias.copy_(tensor(layer.bias))
        return [conv] if left == right else [nn.ZeroPad1d((left, right)), conv]
    if left != right:
        raise UnsupportedLayerError(f"net.layers[{i}]: {layer!r} with asymmetric padding {layer.padding} has no "
                                    f"nn.{type(layer).__name__[:-2]}1d equivalent; use equal padding on both sides")
    if isinstance(layer, MaxPool1D):
        return [nn.MaxPool1d(layer.kernel, stride=layer.stride, padding=left)]
    return [nn.AvgPool1d(layer.kernel, stride=layer.stride, padding=left, count_include_pad=layer.count_include_pad)]


def _to_declared(i, layer, nn):
    """``torch.nn.<torch_modules[0]>(**arguments)`` from the layer's registry entry (see
    :mod:`refattr.layers.registry`: ``torch_arguments``, ``torch_requires``)."""
    entry = next((e for e in registry.registered() if type(layer) is e.cls), None)
    if entry is None or not entry.torch_modules:
        exported = ", ".join(e.name for e in registry.registered() if e.torch_modules)
        raise UnsupportedLayerError(f"net.layers[{i}]: {type(layer).__name__} has no PyTorch equivalent here; "
                                    f"to_torch exports {exported}")
    name = entry.torch_modules[0]
    arguments = dict(entry.torch_requires)
    for argument in entry.arguments:
        attribute = entry.torch_arguments.get(argument, argument)
        value = getattr(layer, argument)
        if attribute is None:
            if value != entry.defaults[argument]:
                raise UnsupportedLayerError(
                    f"net.layers[{i}]: {entry.name}({argument}={value!r}) has no PyTorch module (nn.{name} is "
                    f"{argument} = {entry.defaults[argument]!r}); only {argument}={entry.defaults[argument]!r} exports")
            continue
        arguments[attribute] = value.item() if isinstance(value, np.generic) else value
    return getattr(nn, name)(**arguments)


def torch_forward(module: TorchModule, x: ArrayLike | TorchTensor | tuple) -> np.ndarray:
    """``module(x)`` in float64 on the CPU, run on a copy of the module (the caller's module is not changed).

    ``x`` is an array or a tensor, or a tuple of them for a module of several inputs
    (``module(*x)``); a tensor that requires grad is detached (the forward values are the same).
    The copy keeps the module's hooks, so this is the module as the caller runs it.
    """
    torch = require_torch()

    def tensor(a):
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().double().numpy()
        # a copy: a module that works in place on its input must not overwrite the caller's array
        return torch.from_numpy(np.array(a, dtype=np.float64, order="C"))

    model = copy.deepcopy(module).to(device="cpu", dtype=torch.float64)
    with torch.no_grad():
        return _numpy(model(*(tensor(a) for a in x)) if isinstance(x, tuple) else model(tensor(x)))
