"""from_torch imports exactly what the module computes, or refuses (issue 13, finding 6 and the
torch part of finding 10).

Refusals: forward hooks and pre-hooks (per module and global), an instance ``forward``, the
old-style weight_norm / spectral_norm. The import check: the module and the imported network are
run on a probe batch, so a change no explicit refusal sees (a patched class ``forward``, a
Sequential subclass with its own ``__call__``) is refused too. Error messages name the torch
module. Expected values are closed forms written here or PyTorch's own float64 forward; EXACT_RTOL
is rounding (a few float64 operations per output).
"""

import warnings

import numpy as np
import pytest

from refattr import Dense, Sequential
from refattr.errors import ArgumentError, ImportMismatchError, NonFiniteError, ShapeError, UnsupportedLayerError
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from refattr.interop import from_torch, to_torch, torch_forward  # noqa: E402
from refattr.interop import torch_model  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402


def _mlp():
    """Linear -> ReLU -> (Linear -> Tanh) -> Linear, float64; paths '0', '1', '2', '2.0', '2.1', '3'."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 3), nn.Tanh()),
                         nn.Linear(3, 2)).double()


def _x(n=3, shape=(4,)):
    return np.random.default_rng(7).normal(size=(n,) + shape)


def _matches_torch(model, x):
    net = from_torch(model)
    assert relative_difference(net(x), torch_forward(model, x)) <= EXACT_RTOL
    return net


def scale_output(module, args, output):
    return 2 * output


def shift_input(module, args):
    return (args[0] + 1,)


def shift_input_kwargs(module, args, kwargs):
    return (args[0] + 1,), kwargs


def scale_output_kwargs(module, args, kwargs, output):
    return 2 * output


# (where, how to register, what the message says): each hook changes the output, so a silent import
# would be wrong (the test below checks that first).
HOOKS = {
    "forward_hook_on_leaf": ("2.0", lambda m: m.register_forward_hook(scale_output), "forward hook 'scale_output'"),
    "forward_hook_with_kwargs": ("3", lambda m: m.register_forward_hook(scale_output_kwargs, with_kwargs=True),
                                 "forward hook 'scale_output_kwargs'"),
    "forward_hook_always_call": ("0", lambda m: m.register_forward_hook(scale_output, always_call=True),
                                 "forward hook 'scale_output'"),
    "forward_pre_hook": ("1", lambda m: m.register_forward_pre_hook(shift_input), "forward pre-hook 'shift_input'"),
    "forward_pre_hook_with_kwargs": ("2.0", lambda m: m.register_forward_pre_hook(shift_input_kwargs,
                                                                                   with_kwargs=True),
                                     "forward pre-hook 'shift_input_kwargs'"),
    "forward_hook_on_nested_sequential": ("2", lambda m: m.register_forward_hook(scale_output),
                                          "forward hook 'scale_output'"),
    "forward_hook_on_root": ("", lambda m: m.register_forward_hook(scale_output), "forward hook 'scale_output'"),
    "lambda_pre_hook": ("3", lambda m: m.register_forward_pre_hook(lambda mod, args: (args[0] * 3,)),
                        "<lambda>'"),
}


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_forward_hooks_are_refused_naming_module_type_and_hook(name):
    path, register, says = HOOKS[name]
    model = _mlp()
    x = _x()
    before = torch_forward(model, x)
    register(model.get_submodule(path))
    assert np.max(np.abs(torch_forward(model, x) - before)) > 1e-3   # the hook changes what the module computes
    kind = type(model.get_submodule(path))
    where = f"module '{path}' " if path else "module "
    with pytest.raises(ImportMismatchError) as info:
        from_torch(model)
    message = str(info.value)
    assert message.startswith(f"{where}({kind.__module__}.{kind.__name__})"), message
    assert says in message and "remove()" in message


def test_hook_on_a_parametrization_module_is_refused():
    # a parametrization is itself a module, called whenever the weight is read
    model = _mlp()
    torch.nn.utils.parametrizations.weight_norm(model[0])
    model[0].parametrizations.weight[0].register_forward_hook(scale_output)
    with pytest.raises(ImportMismatchError, match=r"module '0\.parametrizations\.weight\.0' .*'scale_output'"):
        from_torch(model)


@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_global_hooks_are_refused(kind):
    registry = torch.nn.modules.module
    if kind == "forward":
        handle = registry.register_module_forward_hook(scale_output)
    else:
        handle = registry.register_module_forward_pre_hook(shift_input)
    try:
        with pytest.raises(ImportMismatchError) as info:
            from_torch(_mlp())
    finally:
        handle.remove()
    message = str(info.value)
    name = "scale_output" if kind == "forward" else "shift_input"
    assert f"global forward {'hook' if kind == 'forward' else 'pre-hook'} '{name}'" in message, message
    assert "register_module_forward" in message and "remove()" in message
    from_torch(_mlp())   # once removed, the same module imports


@pytest.mark.parametrize("path", ["1", "2.0", "2", ""])
def test_instance_forward_is_refused(path):
    model = _mlp()
    module = model.get_submodule(path)
    original = module.forward

    def doubled(*args):
        return 2 * original(*args)

    module.forward = doubled
    kind = type(module)
    with pytest.raises(ImportMismatchError) as info:
        from_torch(model)
    message = str(info.value)
    assert f"({kind.__module__}.{kind.__name__}): has forward set on the instance ('" in message, message
    assert "doubled" in message and "del module.forward" in message


def test_instance_call_impl_is_refused():
    model = _mlp()
    model[1]._call_impl = lambda x: x   # module(x) looks _call_impl up on the instance
    with pytest.raises(ImportMismatchError,
                       match=r"module '1' \(torch\.nn\.modules\.activation\.ReLU\): has _call_impl"):
        from_torch(model)


def _old_weight_norm(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch deprecates it in favour of parametrizations
        return torch.nn.utils.weight_norm(module)


def test_old_weight_norm_is_refused_and_imports_once_removed():
    model = _mlp()
    _old_weight_norm(model[0])
    with torch.no_grad():
        model[0].weight_g.mul_(3)   # the stored weight is now stale: the pre-hook recomputes it at the next call
    with pytest.raises(ImportMismatchError) as info:
        from_torch(model)
    message = str(info.value)
    assert message.startswith("module '0' (torch.nn.modules.linear.Linear): uses the old-style "
                              "torch.nn.utils.weight_norm"), message
    assert "torch.nn.utils.remove_weight_norm" in message and "parametrizations.weight_norm" in message
    torch.nn.utils.remove_weight_norm(model[0])   # writes weight = g v / |v| with the new g
    _matches_torch(model, _x())


def test_old_spectral_norm_is_refused():
    model = _mlp()
    torch.nn.utils.spectral_norm(model[3])
    with pytest.raises(ImportMismatchError, match=r"module '3' .*old-style torch\.nn\.utils\.spectral_norm.*"
                                                  r"remove_spectral_norm"):
        from_torch(model)


def test_parametrized_weight_norm_is_imported_with_its_current_weight():
    model = _mlp()
    torch.nn.utils.parametrizations.weight_norm(model[0])
    with torch.no_grad():
        model[0].parametrizations.weight.original0.mul_(3)   # g: the weight is computed from it on access
    net = _matches_torch(model, _x())
    g = model[0].parametrizations.weight.original0.detach().numpy()   # (5, 1)
    v = model[0].parametrizations.weight.original1.detach().numpy()   # (5, 4)
    # weight_norm with dim=0: w_i = g_i v_i / |v_i| for each output row i
    expected = g * v / np.sqrt(np.sum(v * v, axis=1, keepdims=True))
    np.testing.assert_allclose(net.layers[0].weight, expected, rtol=EXACT_RTOL, atol=0)


def test_parametrized_spectral_norm_in_eval_mode_is_imported():
    # in eval mode the weight is W / sigma with the stored power-iteration vectors, computed on access
    model = _mlp()
    torch.nn.utils.parametrizations.spectral_norm(model[3])
    model.eval()
    _matches_torch(model, _x())


@pytest.mark.parametrize("register", [
    lambda m: m.register_full_backward_hook(lambda module, grad_in, grad_out: tuple(2 * g for g in grad_in)),
    lambda m: m.register_full_backward_pre_hook(lambda module, grad_out: tuple(2 * g for g in grad_out)),
])
def test_backward_hooks_are_allowed(register):
    # They act on gradients in torch's autograd only; the forward function imported is the same.
    model = _mlp()
    register(model[2][0])
    _matches_torch(model, _x())


# mismatches that no explicit refusal sees: the import check catches them ---------------------------
def test_patched_layer_class_forward_is_caught_by_the_check(monkeypatch):
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, x: F.relu(x) + 1e-6)
    # 1e-6 on unit-sized outputs is three orders above the check's tolerance (1e-9 of the scale)
    with pytest.raises(ImportMismatchError, match="computes a different function.*rounding allows 1e-09"):
        from_torch(_mlp())


def test_sequential_subclass_with_its_own_call_is_caught_by_the_check():
    class Shifted(nn.Sequential):
        def __call__(self, x):
            return super().__call__(x) + 1

    model = _mlp()
    model = nn.Sequential(model[0], Shifted(model[1], model[2]), model[3])
    with pytest.raises(ImportMismatchError, match="computes a different function"):
        from_torch(model)


def test_check_runs_the_module_with_its_hooks(monkeypatch):
    # With the explicit refusal switched off, the check alone refuses a hooked module: the copy it
    # runs keeps the hooks (copy.deepcopy does), i.e. it runs the module as the user calls it.
    monkeypatch.setattr(torch_model, "_refuse_what_changes_the_call", lambda module: None)
    model = _mlp()
    model[3].register_forward_hook(scale_output)
    with pytest.raises(ImportMismatchError, match="computes a different function"):
        from_torch(model)


def test_module_that_fails_on_the_probe_is_refused(monkeypatch):
    def forward(self, x):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(nn.Tanh, "forward", forward)
    with pytest.raises(ImportMismatchError, match=r"module: running it on the import check's probe input .*shape "
                                                  r"\(4, 4\)\) raised RuntimeError: broken on purpose"):
        from_torch(_mlp())


def test_custom_relu_subclass_is_refused():
    class Leaky(nn.ReLU):
        def forward(self, x):
            return F.leaky_relu(x, 0.1)

    with pytest.raises(UnsupportedLayerError, match=r"module '1' \(.*Leaky\)"):
        from_torch(nn.Sequential(nn.Linear(2, 2), Leaky()))


def _corner_blind_conv(monkeypatch):
    """Patch Conv2d so that it ignores its kernel's corners: invisible on a 1x1 image with padding 1
    (only the centre tap meets a real pixel), visible on larger ones."""
    mask = torch.ones(3, 3, dtype=torch.float64)
    mask[0, 0] = mask[2, 2] = 0

    def forward(self, x):
        return F.conv2d(x, self.weight * mask, self.bias, self.stride, self.padding)

    monkeypatch.setattr(nn.Conv2d, "forward", forward)


def test_inferred_probe_image_is_large_enough_to_use_every_kernel_weight(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten()).double()
    net = from_torch(model)   # no input_shape: the network accepts any size from 1x1 on
    assert net.input_shape is None
    _corner_blind_conv(monkeypatch)
    with pytest.raises(ImportMismatchError, match=r"shape \(4, 2, 8, 8\)"):
        from_torch(model)


def test_inferred_probe_image_fits_a_linear_after_flatten(monkeypatch):
    torch.manual_seed(0)
    # 3 channels of 5x5 after a valid 3x3 convolution: only 7x7 inputs fit
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(75, 2)).double()
    _matches_torch(model, _x(shape=(2, 7, 7)))
    _corner_blind_conv(monkeypatch)
    with pytest.raises(ImportMismatchError, match=r"shape \(4, 2, 7, 7\)"):
        from_torch(model)


def test_inferred_probe_channels_when_pooling_comes_before_the_first_linear(monkeypatch):
    # 2 x (4/2) x (4/2) = 8 = in_features; the channel count is searched among the divisors of 8
    torch.manual_seed(0)
    model = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)).double()
    _matches_torch(model, _x(shape=(2, 4, 4)))
    monkeypatch.setattr(nn.AvgPool2d, "forward", lambda self, x: 2 * F.avg_pool2d(x, 2))
    with pytest.raises(ImportMismatchError, match="computes a different function"):
        from_torch(model)


def test_rectangular_only_network_needs_input_shape():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(6, 1)).double()  # 1 x 2 x 3 images only
    with pytest.raises(ShapeError, match=r"input_shape: needed to check the import.*input_shape=\(1, H, W\)"):
        from_torch(model)
    net = from_torch(model, input_shape=(1, 2, 3))
    assert net.input_shape == (1, 2, 3)


def test_all_zero_output_is_matched_exactly():
    model = nn.Sequential(nn.Linear(3, 2)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    net = from_torch(model)
    np.testing.assert_array_equal(net(_x(shape=(3,))), np.zeros((3, 2)))


def test_probe_that_overflows_in_the_module_is_a_non_finite_error():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)).double()
    with torch.no_grad():
        for layer in model:
            layer.weight.fill_(1e200)   # |x| ~ 1 -> 1e200 -> 3e400 = inf in the second layer
    with pytest.raises(NonFiniteError, match=r"its output on the import check's probe input .* is not finite"):
        from_torch(model)


# messages name the torch module --------------------------------------------------------------------
def _with(module, name, index, value):
    with torch.no_grad():
        getattr(module, name)[index] = value
    return module


def _bn1d(var):
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor(var))
    return bn


def _linear(n_in, n_out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # torch: "Initializing zero-element tensors is a no-op"
        return nn.Linear(n_in, n_out)


BAD_PARAMETERS = {
    "linear_nan_weight": (lambda: nn.Sequential(nn.ReLU(), _with(nn.Linear(2, 2), "weight", (0, 1), float("nan"))),
                          NonFiniteError, "module '1' (torch.nn.modules.linear.Linear) at position 1: "),
    "linear_no_inputs": (lambda: nn.Sequential(_linear(0, 3)), ShapeError,
                         "module '0' (torch.nn.modules.linear.Linear) at position 0: "),
    "linear_no_outputs": (lambda: nn.Sequential(nn.Linear(2, 2), nn.Sequential(_linear(2, 0))), ShapeError,
                          "module '1.0' (torch.nn.modules.linear.Linear) at position 1: "),
    "conv_inf_bias": (lambda: nn.Sequential(_with(nn.Conv2d(1, 2, 2), "bias", 1, float("inf")), nn.Flatten()),
                      NonFiniteError, "module '0' (torch.nn.modules.conv.Conv2d) at position 0: "),
    "batchnorm_negative_variance": (lambda: nn.Sequential(nn.Linear(2, 2), _bn1d([1.0, -3.0])), ArgumentError,
                                    "module '1' (torch.nn.modules.batchnorm.BatchNorm1d) at position 1: "),
    "batchnorm_nan_mean": (lambda: nn.Sequential(_with(nn.BatchNorm1d(2).eval(), "running_mean", 0, float("nan"))),
                           NonFiniteError, "module '0' (torch.nn.modules.batchnorm.BatchNorm1d) at position 0: "),
}


@pytest.mark.parametrize("name", sorted(BAD_PARAMETERS))
def test_bad_parameters_are_reported_against_the_torch_module(name):
    build, error, prefix = BAD_PARAMETERS[name]
    with pytest.raises(error) as info:
        from_torch(build())
    assert str(info.value).startswith(prefix), str(info.value)


def test_negative_variance_message_says_what_was_seen():
    with pytest.raises(ArgumentError, match=r"running_var \+ eps > 0 .* got -3\.0 \+ 1e-05 in channel 1"):
        from_torch(nn.Sequential(_bn1d([1.0, -3.0])))


def test_input_shape_that_does_not_fit_names_the_module():
    with pytest.raises(ShapeError, match=r"^module '0' \(torch\.nn\.modules\.linear\.Linear\) "
                                         r"\(with input_shape=\(5,\)\): .*expected 4 input features"):
        from_torch(_mlp(), input_shape=(5,))


@pytest.mark.parametrize("bad", [(4.7,), (0,), (True,), (-4,), "4", 4, ()])
def test_input_shape_must_be_positive_ints(bad):
    with pytest.raises(ArgumentError, match="input_shape: expected one example's shape as a tuple of positive ints"):
        from_torch(_mlp(), input_shape=bad)


def test_input_shape_as_torch_size():
    assert from_torch(_mlp(), input_shape=torch.Size([4])).input_shape == (4,)


# tensors that require grad ------------------------------------------------------------------------
def test_torch_forward_detaches_an_input_that_requires_grad():
    model = _mlp()
    x = _x()
    tx = torch.from_numpy(x.copy()).requires_grad_()
    np.testing.assert_array_equal(torch_forward(model, tx), torch_forward(model, x))
    assert tx.requires_grad and tx.grad is None


def test_from_torch_leaves_parameters_that_require_grad_alone():
    model = _mlp()
    assert all(p.requires_grad for p in model.parameters())
    _matches_torch(model, _x())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_to_torch_of_a_torch_module_says_to_use_from_torch():
    with pytest.raises(ArgumentError, match=r"net: expected a refattr\.Sequential or Graph, got torch\.nn\.modules\.container"
                                            r"\.Sequential \(to import a torch module, use from_torch\)"):
        to_torch(_mlp())


def test_to_torch_round_trip_keeps_weights_exactly():
    # float64 weights go into torch and come back bit for bit (the check passes: same arithmetic)
    w = np.random.default_rng(3).normal(size=(2, 3))
    again = from_torch(to_torch(Sequential([Dense(w)])))
    np.testing.assert_array_equal(again.layers[0].weight, w)
