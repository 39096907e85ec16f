"""Every registered kernel equals the NumPy definition it accelerates, to its declared tolerance;
and the switch runs the definitions in place of the kernels.

The pairs come from ``refattr.kernels.KERNELS`` (filled by ``@accelerates``), so a new kernel
without a case here fails ``test_every_kernel_has_a_case``. rtol == 0 means bit for bit (signed
zeros included); otherwise the difference must stay below rtol times the sum of the absolute
values of each output's terms (the definition applied to |arguments|), the scale of its rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from refattr import kernels
from refattr.methods import deeplift, gradient, integrated_gradients
from refattr.testing.networks import random_cnn, random_mlp

RNG = np.random.default_rng(5)
X = RNG.normal(size=(2, 3, 6, 5))
W = RNG.normal(size=(4, 3, 3, 2))
G_CONV = RNG.normal(size=(2, 4, 3, 5))   # OH = (6 + 2 - 3) // 2 + 1, OW = (5 + 1 - 2) + 1
G_POOL = RNG.normal(size=(2, 3, 5, 4))
A, H = RNG.normal(size=(4, 7)) * 5, RNG.normal(size=(4, 7))
G = RNG.normal(size=(4, 7))
CONV = ((2, 1), (1, 1, 0, 1), (1, 1), 1)          # stride, padding, dilation, groups
ARGMAX = kernels.pool.maxpool2d_forward_numpy(X, (2, 2), (1, 1), (0, 0, 0, 0))[1]

CASES = {
    "conv.conv2d_forward": (X, W) + CONV,
    "conv.conv2d_input_vjp": (G_CONV, W, (6, 5)) + CONV,
    "conv.conv2d_weight_vjp": (X, G_CONV, (3, 2)) + CONV,
    "pool.avgpool2d_forward": (X, (2, 2), (1, 1), (1, 0, 0, 1), False),
    "pool.avgpool2d_vjp": (RNG.normal(size=(2, 3, 6, 5)), (6, 5), (2, 2), (1, 1), (1, 0, 0, 1), False),
    "pool.maxpool2d_forward": (X, (2, 2), (1, 1), (0, 0, 0, 0)),
    "pool.maxpool2d_vjp": (G_POOL, ARGMAX, (6, 5)),
    "elementwise.tanh": (A,),
    "elementwise.tanh_derivative": (A, G),
    "elementwise.sigmoid": (A,),
    "elementwise.sigmoid_derivative": (A, G),
    "elementwise.swish": (A, 1.5),
    "elementwise.swish_derivative": (A, 1.5, G),
    "elementwise.tanh_secant": (A, H),
    "elementwise.sigmoid_secant": (A, H),
    "elementwise.swish_secant": (A, H, 0.75),
    "elementwise.relu_backward_signal": (G, A, "guided_backprop"),
    "walk.relu_forward_along": (A, H),
    "walk.relu_next_kink": (A, H),
    "walk.relu_snap_to_kink": (A.copy(), A > 1.0, np.array([True, False, True, True])),
    "walk.add_scaled_rows": (A, H[:, 0].copy(), G),
}


def _abs(v):
    return np.abs(v) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v


def _outputs(v):
    return v if isinstance(v, tuple) else (v,)


def test_every_kernel_has_a_case():
    assert set(kernels.KERNELS) == set(CASES)
    for entry in kernels.KERNELS.values():
        assert callable(entry.resolve()) and entry.resolve() is not entry.kernel
        assert entry.rtol == 0.0 or entry.reason != "same operations in the same order"


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_equals_its_definition(name):
    entry = kernels.KERNELS[name]
    args = CASES[name]
    copy = lambda: tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)   # noqa: E731
    got, want = _outputs(entry.kernel(*copy())), _outputs(entry.resolve()(*copy()))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype
        if entry.rtol == 0.0:
            np.testing.assert_array_equal(g, w)
            if w.dtype == np.float64:
                np.testing.assert_array_equal(np.signbit(g), np.signbit(w))
        else:
            bound = _outputs(entry.resolve()(*(_abs(a) for a in copy())))[i]
            assert np.all(np.abs(g - w) <= entry.rtol * (np.abs(w) + np.abs(bound))), entry.reason


def test_use_switches_and_restores():
    previous = kernels.use("numpy")
    try:
        assert kernels.current() == "numpy"
        entry = kernels.KERNELS["conv.conv2d_forward"]
        # the public name now runs the definition: its im2col result, bit for bit
        np.testing.assert_array_equal(kernels.conv2d_forward(*CASES[entry.name]), entry.resolve()(*CASES[entry.name]))
    finally:
        kernels.use(previous)
    assert kernels.current() == previous
    with pytest.raises(ValueError, match="numba"):
        kernels.use("cuda")


@pytest.mark.parametrize("method", ["gradient", "ig_exact", "ig_quad", "deeplift"])
def test_methods_agree_with_kernels_and_with_definitions(method):
    rng = np.random.default_rng(17)
    nets = [random_cnn(rng, input_shape=(2, 6, 6), pool="max"), random_mlp(rng, activation="tanh"),
            random_cnn(rng, input_shape=(1, 5, 5), activation="swish", pool="avg")]
    for net in nets:
        x = rng.normal(size=(2, *net.input_shape))
        run = {
            "gradient": lambda: gradient(net, x, target=0).values,
            "ig_exact": lambda: integrated_gradients(net, x, target=0, rule="exact").values
            if net.piecewise_linear else integrated_gradients(net, x, target=0, rule="gauss_legendre").values,
            "ig_quad": lambda: integrated_gradients(net, x, target=0, rule="gauss_legendre", n_steps=8).values,
            "deeplift": lambda: deeplift(net, x, target=0, maxpool_rule="delta_routing").values,
        }[method]
        with_kernels = run()
        previous = kernels.use("numpy")
        try:
            with_definitions = run()
        finally:
            kernels.use(previous)
        # the convolutions and pools sum in another order (rtol 1e-13 per kernel); through a few
        # layers that stays within 1e-11 of the largest attribution
        scale = np.abs(with_kernels).max()
        np.testing.assert_allclose(with_definitions, with_kernels, rtol=0, atol=1e-11 * scale)
