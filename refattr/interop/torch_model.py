"""PyTorch ``nn.Sequential`` <-> :class:`refattr.Sequential`.

torch is imported inside the functions. Weights are copied in PyTorch's own layouts (SPEC section
1), converted to float64 (exact from float32).
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import ShapeError, UnsupportedLayerError
from ..layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Swish, Tanh
from ..network import Sequential
from . import _batchnorm as batchnorm

__all__ = ["from_torch", "to_torch", "torch_forward", "require_torch"]

SUPPORTED_TORCH = ("Sequential (nested too), Linear, Conv2d (padding_mode='zeros'), ZeroPad2d before Conv2d or "
                   "AvgPool2d, ReLU, Tanh, Sigmoid, "
                   "SiLU, Flatten(start_dim=1, end_dim=-1), MaxPool2d (dilation 1, ceil_mode=False), "
                   "AvgPool2d (ceil_mode=False, no divisor_override), BatchNorm1d/BatchNorm2d in eval mode "
                   "with running statistics, Dropout/Dropout1d/Dropout2d in eval mode, Identity")


def require_torch():
    """Import torch or raise an ImportError that says what to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("refattr.interop needs PyTorch for this: pip install torch==2.13.0 "
                          "(and captum==0.9.0 for compare_captum)") from exc
    return torch


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy().copy()


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


def _refuse(path, position, module, reason):
    raise UnsupportedLayerError(
        f"module {path!r} ({type(module).__module__}.{type(module).__name__}) at position {position} of "
        f"the flattened Sequential: {reason}. Supported: {SUPPORTED_TORCH}"
    )


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
        return (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
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


def from_torch(module, input_shape=None) -> Sequential:
    """Convert a PyTorch ``nn.Sequential`` into a :class:`refattr.Sequential`.

    Parameters
    ----------
    module : torch.nn.Sequential
        Nested Sequentials are flattened. Every leaf must be one of: Linear, Conv2d, ReLU, Tanh,
        Sigmoid, SiLU, Flatten, MaxPool2d, AvgPool2d, BatchNorm1d/2d (eval mode), Dropout (eval
        mode, dropped), Identity (dropped), ZeroPad2d directly before a Conv2d or AvgPool2d (merged
        into its padding; this is what :func:`to_torch` writes for asymmetric padding).
    input_shape : tuple of int, optional
        One example's shape, passed to :class:`refattr.Sequential` so that shapes are checked now.

    Returns
    -------
    Sequential
        Computes the same function as ``module`` in float64: forward outputs agree with PyTorch's
        float64 forward to 1e-12 relative (tested for every supported layer).

    Raises
    ------
    UnsupportedLayerError
        For any other module, naming it, its position in the flattened sequence and what is
        supported; also for supported modules with settings refattr does not model:
        ``padding_mode`` other than 'zeros', ``ceil_mode=True``, max-pool dilation other than 1,
        ``divisor_override``, ``return_indices``, a Flatten other than (1, -1), BatchNorm or
        Dropout in training mode, BatchNorm without running statistics.

    Notes
    -----
    - **BatchNorm** in eval mode is the per-channel affine map scale * z + shift with
      scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale. It is folded
      into the preceding Linear or Conv2d when it directly follows one (Dropout and Identity in
      between are skipped): W' = scale * W, b' = scale * b + shift. Otherwise it becomes its own
      linear layer: a diagonal Dense (BatchNorm1d on (N, C)) or a depthwise 1x1 Conv2D
      (BatchNorm2d). Gradients, integrated gradients and DeepLIFT Rescale are the same either
      way (BatchNorm is linear); only DeepLIFT RevealCancel, whose positive/negative split happens
      per linear layer, can see the difference between folded and separate.
    - **SiLU** becomes ``Swish(beta=1)``.
    - Conv2d ``padding='same'`` becomes PyTorch's split of d (k - 1): the smaller half on top / left.
    """
    torch = require_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module) or type(module).forward is not nn.Sequential.forward:
        raise UnsupportedLayerError(
            f"module: expected a torch.nn.Sequential (whose forward runs its children in order), got "
            f"{type(module).__module__}.{type(module).__name__}; refattr can only import a sequence of layers"
        )
    layers: list = []
    foldable = False  # True while the last emitted layer is a Dense/Conv2D with nothing but identities after it
    pad = None  # (top, bottom, left, right) of a ZeroPad2d waiting for its Conv2d / AvgPool2d
    for position, (path, m) in enumerate(_walk(module)):
        kind = type(m)
        if pad is not None and kind not in (nn.Conv2d, nn.AvgPool2d, nn.Identity, nn.Dropout, nn.Dropout1d,
                                            nn.Dropout2d):
            _refuse(path, position, m, "a ZeroPad2d is supported only directly before a Conv2d or AvgPool2d, "
                                       "whose padding it becomes")
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
        elif kind is nn.AvgPool2d and pad is not None:
            own = _four(_pair(m.padding))
            if any(own) and not m.count_include_pad:
                _refuse(path, position, m, "count_include_pad=False after a ZeroPad2d (the padded zeros are real "
                                           "cells, the pool's own padding is not)")
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
                layers.append(batchnorm.as_layer(scale, shift, images=kind is nn.BatchNorm2d))
            # a second BatchNorm in a row folds into the result as well
            foldable = True
        elif kind in (nn.Dropout, nn.Dropout1d, nn.Dropout2d):
            if m.training:
                _refuse(path, position, m, "in training mode (random); call model.eval()")
        elif kind is nn.Identity:
            pass
        else:
            layers.append(_convert_parameter_free(path, position, m))
            foldable = False
    if pad is not None:
        raise UnsupportedLayerError("module: ends with a ZeroPad2d; it is supported only directly before a Conv2d "
                                    "or AvgPool2d")
    if not layers:
        raise UnsupportedLayerError("module: the Sequential has no layers that compute anything")
    return Sequential(layers, input_shape=input_shape)


def _four(padding):
    """An int, (height, width) or (top, bottom, left, right) -> (top, bottom, left, right)."""
    if isinstance(padding, int):
        return (padding,) * 4
    padding = tuple(int(p) for p in padding)
    return padding if len(padding) == 4 else (padding[0], padding[0], padding[1], padding[1])


def _convert_parameter_free(path, position, m):
    torch = require_torch()
    nn = torch.nn
    kind = type(m)
    if kind is nn.ReLU:
        return ReLU()
    if kind is nn.Tanh:
        return Tanh()
    if kind is nn.Sigmoid:
        return Sigmoid()
    if kind is nn.SiLU:
        return Swish(1.0)
    if kind is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            _refuse(path, position, m, f"start_dim={m.start_dim}, end_dim={m.end_dim}; only Flatten(1, -1) "
                                       f"(flatten each example) is supported")
        return Flatten()
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
    _refuse(path, position, m, "no refattr layer computes it")


def _pair(value):
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[1]))
    return (int(value), int(value))


def to_torch(net: Sequential):
    """A float64 ``torch.nn.Sequential`` computing the same function as ``net``.

    Used to run a peer library (Captum) on a model that was loaded from ONNX or built in refattr.
    Asymmetric convolution padding becomes ``nn.ZeroPad2d`` followed by an unpadded ``nn.Conv2d``
    (likewise average pooling with ``count_include_pad=True``). Refused with
    UnsupportedLayerError: Swish with beta != 1 (PyTorch has no module for it), asymmetric
    max-pool padding, and asymmetric average-pool padding with ``count_include_pad=False``.
    """
    torch = require_torch()
    nn = torch.nn
    modules = []

    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float64))

    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
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
        elif isinstance(layer, ReLU):
            modules.append(nn.ReLU())
        elif isinstance(layer, Tanh):
            modules.append(nn.Tanh())
        elif isinstance(layer, Sigmoid):
            modules.append(nn.Sigmoid())
        elif isinstance(layer, Swish):
            if layer.beta != 1.0:
                raise UnsupportedLayerError(f"net.layers[{i}]: Swish(beta={layer.beta}) has no PyTorch module "
                                            f"(nn.SiLU is beta = 1)")
            modules.append(nn.SiLU())
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
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
            raise UnsupportedLayerError(f"net.layers[{i}]: {type(layer).__name__} has no PyTorch equivalent here")
    return nn.Sequential(*modules).double().eval()


def torch_forward(module, x) -> np.ndarray:
    """``module(x)`` in float64 on a copy of the module (the caller's module is not changed)."""
    torch = require_torch()
    model = copy.deepcopy(module).double()
    with torch.no_grad():
        return _numpy(model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))))
