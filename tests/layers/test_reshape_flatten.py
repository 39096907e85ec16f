"""Reshape(shape) and Flatten(start_dim, end_dim): forward, VJP, DeepLIFT, serialisation, torch, errors.

Where every expected number comes from:

- Forward: ``numpy.reshape`` with the output shape written out in the test from PyTorch's definition
  of ``flatten(start_dim, end_dim)`` (axes counted with the batch axis as 0, negative from the end),
  or from the arithmetic in a comment; the values are a pure rearrangement, so equality is exact.
- VJP: the inverse reshape written in the test (exact), central differences
  (``refattr.testing.check_vjp``) and the adjoint identity <g, J d> = <J^T g, d> (the same products
  summed in the same row-major order: equal to rounding, 1e-14).
- DeepLIFT: a reshape is the identity on the elements, so a network with Reshape / Flatten(start,
  end) between its layers must give exactly the attributions of the same network without them
  (element-wise layers commute with a reshape; the input reshaped once up front); plus
  summation-to-delta at every layer (1e-12 relative) under Rescale and RevealCancel, and the 0.5
  rule at exact zero differences, written out by hand.
- Torch: PyTorch's own float64 forward of the module (EXACT_RTOL).
"""

import math
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refattr import Conv2D, Dense, Flatten, ReLU, Reshape, Sequential, Tanh, deeplift, deeplift_layers
from refattr.errors import ArgumentError, RefattrError, ShapeError, UnsupportedLayerError
from refattr.layers.base import DeltaPair
from refattr.layers.registry import from_config, info, to_config
from refattr.testing import check_vjp

ROUNDING = 1e-12


def torch_flatten_shape(shape, start_dim, end_dim):
    """The output shape of torch.flatten(x, start_dim, end_dim) for x of ``shape`` (batch included),
    from its documentation: negative dims count from the end; axes start..end become one."""
    rank = len(shape)
    s = start_dim % rank if start_dim < 0 else start_dim
    e = end_dim % rank if end_dim < 0 else end_dim
    return tuple(shape[:s]) + (math.prod(shape[s:e + 1]),) + tuple(shape[e + 1:])


# ------------------------------------------------------------------------------------------------
# forward
# ------------------------------------------------------------------------------------------------

def test_flatten_forward_by_hand():
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    # Flatten(2, 3): (1, 2, 3, 4) -> (1, 2, 12); channel c holds 12 c .. 12 c + 11 in order
    y = Flatten(2, 3).forward(x)[0]
    np.testing.assert_array_equal(y, [[np.arange(12.0), np.arange(12.0, 24.0)]])
    # Flatten(1, 2): (1, 2, 3, 4) -> (1, 6, 4); row r of the result is x[0, r // 3, r % 3]
    y = Flatten(1, 2).forward(x)[0]
    assert y.shape == (1, 6, 4)
    for r in range(6):
        np.testing.assert_array_equal(y[0, r], 4 * r + np.arange(4.0))
    # the default flattens each example, as before (and as Flatten(1, -1) and Flatten(-3, -1))
    for layer in (Flatten(), Flatten(1, -1), Flatten(-3, -1), Flatten(1, 3)):
        np.testing.assert_array_equal(layer.forward(x)[0], np.arange(24.0)[None])
    # start == end: the shape is unchanged (PyTorch's behaviour)
    np.testing.assert_array_equal(Flatten(2, 2).forward(x)[0], x)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_flatten_forward_matches_numpy_reshape_for_every_pair_of_axes(shape, data):
    rank = len(shape) + 1                    # with the batch axis
    s = data.draw(st.integers(1, rank - 1))
    e = data.draw(st.integers(s, rank - 1))
    start = data.draw(st.sampled_from([s, s - rank]))
    end = data.draw(st.sampled_from([e, e - rank]))
    batch = (2,) + tuple(shape)
    x = np.random.default_rng(s + 10 * e).normal(size=batch)
    expected_shape = torch_flatten_shape(batch, start, end)
    layer = Flatten(start, end)
    y = layer.forward(x)[0]
    np.testing.assert_array_equal(y, np.reshape(x, expected_shape))
    assert layer.output_shape(tuple(shape)) == expected_shape[1:]


def test_reshape_forward_by_hand():
    x = np.arange(16.0).reshape(2, 8)
    y = Reshape((4, 2)).forward(x)[0]
    # example n, row r, column c is x[n, 2 r + c]
    assert y.shape == (2, 4, 2)
    for n in range(2):
        for r in range(4):
            np.testing.assert_array_equal(y[n, r], [x[n, 2 * r], x[n, 2 * r + 1]])
    # -1 is inferred: 8 elements / 2 = 4
    np.testing.assert_array_equal(Reshape((2, -1)).forward(x)[0], np.reshape(x, (2, 2, 4)))
    # images to other images, and back to vectors (Reshape((-1,)) is Flatten())
    img = np.arange(72.0).reshape(2, 2, 3, 6)
    np.testing.assert_array_equal(Reshape((3, 4, 3)).forward(img)[0], np.reshape(img, (2, 3, 4, 3)))
    np.testing.assert_array_equal(Reshape((-1,)).forward(img)[0], Flatten().forward(img)[0])
    assert Reshape(8).shape == (8,)          # an int is a shape of one axis, as numpy's reshape


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_reshape_forward_matches_numpy_and_random_keeps_the_elements(shape, seed):
    rng = np.random.default_rng(seed)
    layer = Reshape.random(rng, tuple(shape))
    x = rng.normal(size=(3,) + tuple(shape))
    out = layer.output_shape(tuple(shape))
    assert math.prod(out) == math.prod(shape) and -1 not in out
    np.testing.assert_array_equal(layer.forward(x)[0], np.reshape(x, (3,) + tuple(layer.shape)))


def test_output_shapes_with_unknown_sizes():
    assert Flatten(2, 3).output_shape((3, None, 5)) == (3, None)
    assert Flatten(2, 3).output_shape((None, 4, 5)) == (None, 20)
    assert Flatten().output_shape(None) == (None,)
    assert Flatten(2, 3).output_shape(None) is None      # the rank is unknown
    assert Reshape((2, -1)).output_shape((None, 4)) == (2, None)
    assert Reshape((2, 4)).output_shape(None) == (2, 4)


# ------------------------------------------------------------------------------------------------
# VJP and JVP
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, shape", [(Flatten(2, 3), (2, 3, 4)), (Flatten(-2, -1), (2, 3, 4)),
                                          (Flatten(1, 2), (2, 3, 4)), (Flatten(), (2, 3, 4)),
                                          (Reshape((4, 2)), (8,)), (Reshape((3, -1, 2)), (2, 3, 4))],
                         ids=repr)
def test_vjp_is_the_inverse_reshape_and_passes_the_gradient_check(layer, shape, rng):
    x = rng.normal(size=(3,) + shape)
    y, cache = layer.forward(x)
    g = rng.normal(size=y.shape)
    np.testing.assert_array_equal(layer.vjp(g, cache), g.reshape(x.shape))
    np.testing.assert_array_equal(layer.jvp(x, cache), y)          # a linear map: J x = y
    check_vjp(lambda v: layer.forward(v)[0], lambda h: layer.vjp(h, cache), x, rng)
    d = rng.normal(size=x.shape)
    lhs, rhs = np.sum(g * layer.jvp(d, cache)), np.sum(layer.vjp(g, cache) * d)
    assert abs(lhs - rhs) <= 1e-14 * np.sum(np.abs(g * layer.jvp(d, cache)))


# ------------------------------------------------------------------------------------------------
# DeepLIFT
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [Flatten(2, 3), Reshape((2, 6))], ids=repr)
def test_deeplift_passes_parts_and_multipliers_through_by_hand(layer):
    # Δx = [1, -2, 0, 3, 0, -1, 2, 0, -3, 4, 0, 1] on one example of shape (1, 3, 4) (Flatten) or
    # (12,) (Reshape), split by an earlier layer with some cancellation inside: Δ+ = max(Δ, 0) + s,
    # Δ- = min(Δ, 0) - s with s = 0.5 on elements 1, 2 and 3. Both outputs hold the same 12 numbers in
    # the same order, so every expected array is the input's, read in the output's shape.
    shape = (1, 3, 4) if isinstance(layer, Flatten) else (12,)
    delta = np.array([1.0, -2.0, 0.0, 3.0, 0.0, -1.0, 2.0, 0.0, -3.0, 4.0, 0.0, 1.0])
    spread = np.array([0.0, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0])
    x_ref = np.linspace(-1.0, 1.0, 12).reshape((1,) + shape)
    x = x_ref + delta.reshape(x_ref.shape)
    inp = DeltaPair(x, x_ref, (np.maximum(delta, 0.0) + spread).reshape(x.shape),
                    (np.minimum(delta, 0.0) - spread).reshape(x.shape))
    y, cache = layer.forward(x)
    y_ref, cache_ref = layer.forward(x_ref)
    assert layer.deeplift_reads_parts("reveal_cancel") and not layer.deeplift_reads_parts("rescale")
    for rule in ("rescale", "reveal_cancel"):
        pos, neg, dl_cache = layer.deeplift_forward(inp, y, y_ref, cache, cache_ref, rule=rule, maxpool_rule=None)
        # the input's own split, not max(Δ, 0) / min(Δ, 0) (the Linear rule would give Δy+ = 0 at
        # element 2, where Δ = 0, instead of 0.5)
        assert pos.shape == neg.shape == y.shape
        np.testing.assert_array_equal(pos.ravel(), [1.0, 0.5, 0.5, 3.5, 0, 0, 2, 0, 0, 4, 0, 1])
        np.testing.assert_array_equal(neg.ravel(), [0.0, -2.5, -0.5, -0.5, 0, -1, 0, 0, -3, 0, 0, 0])
        m_pos_out = np.arange(1.0, 13.0).reshape(y.shape)          # M+ = 1 .. 12
        m_neg_out = -np.arange(1.0, 13.0).reshape(y.shape)         # M- = -1 .. -12
        m_pos, m_neg = layer.deeplift_backward(m_pos_out, m_neg_out, dl_cache)
        # each part keeps its own multiplier (the Linear rule would give both parts M+ where Δ > 0,
        # M- where Δ < 0 and 0 where Δ == 0)
        np.testing.assert_array_equal(m_pos.ravel(), np.arange(1.0, 13.0))
        np.testing.assert_array_equal(m_neg.ravel(), -np.arange(1.0, 13.0))
        assert m_pos.shape == x.shape
        # equal multipliers stay one array (the network's cue that no sign bookkeeping is needed)
        m_a, m_b = layer.deeplift_backward(m_pos_out, m_pos_out, dl_cache)
        assert m_a is m_b


def test_deeplift_without_the_inputs_parts_splits_by_the_sign_of_delta():
    # Under Rescale the network computes no parts; a reader that still asks for the reshape's parts
    # gets the Linear rule's split (weights +1): max(Δ, 0) and min(Δ, 0), Δ = [2, -1, 0, 3]
    layer = Reshape((2, 2))
    x_ref = np.array([[1.0, 1.0, 1.0, 1.0]])
    x = x_ref + np.array([[2.0, -1.0, 0.0, 3.0]])
    y, cache = layer.forward(x)
    y_ref, cache_ref = layer.forward(x_ref)
    pos, neg, _ = layer.deeplift_forward(DeltaPair(x, x_ref, None, None), y, y_ref, cache, cache_ref,
                                         rule="rescale", maxpool_rule=None)
    np.testing.assert_array_equal(pos, [[[2.0, 0.0], [0.0, 3.0]]])
    np.testing.assert_array_equal(neg, [[[0.0, -1.0], [0.0, 0.0]]])


def _conv_net(rng, with_reshapes):
    """Input (N, 18); Reshape to (2, 3, 3) images, Conv2D, ReLU, Flatten(2, 3), Tanh, Flatten(),
    Dense(5), ReLU, Reshape((5, 1)), Flatten(), Dense(2); without the reshapes, the same layers on
    the input reshaped once to (N, 2, 3, 3) up front."""
    conv = Conv2D(rng.normal(size=(3, 2, 2, 2)), rng.normal(size=3) * 0.3, padding=1)   # (3, 4, 4)
    dense1 = Dense(rng.normal(size=(5, 48)) / 7.0, rng.normal(size=5) * 0.3)
    dense2 = Dense(rng.normal(size=(2, 5)), rng.normal(size=2) * 0.3)
    if with_reshapes:
        return Sequential([Reshape((2, 3, 3)), conv, ReLU(), Flatten(2, 3), Tanh(), Flatten(), dense1, ReLU(),
                           Reshape((5, 1)), Flatten(), dense2], input_shape=(18,))
    return Sequential([conv, ReLU(), Tanh(), Flatten(), dense1, ReLU(), dense2], input_shape=(2, 3, 3))


@pytest.mark.parametrize("rule", ["rescale", "reveal_cancel"])
def test_deeplift_through_reshapes_equals_the_network_without_them(rule):
    with_reshapes = _conv_net(np.random.default_rng(1), True)
    without = _conv_net(np.random.default_rng(1), False)
    rng = np.random.default_rng(2)
    x, baseline = rng.normal(size=(4, 18)) * 2, rng.normal(size=18) * 0.5
    target = np.array([0, 1, 1, 0])
    got = deeplift(with_reshapes, x, baseline, target=target, rule=rule)
    expected = deeplift(without, x.reshape(4, 2, 3, 3), baseline.reshape(2, 3, 3), target=target, rule=rule)
    # the same arithmetic on the same numbers in the same order: equal to the bit
    np.testing.assert_array_equal(got.values, expected.values.reshape(4, 18))
    np.testing.assert_array_equal(got.multipliers, expected.multipliers.reshape(4, 18))
    # summation-to-delta at every layer, the reshapes included
    t, t_ref = with_reshapes(x)[np.arange(4), target], with_reshapes(baseline[None])[0, target]
    for layer in deeplift_layers(with_reshapes, x, baseline, target=target, rule=rule):
        scale = np.abs(layer.contributions).reshape(4, -1).sum(axis=1) + np.abs(t) + np.abs(t_ref)
        assert np.all(np.abs(layer.completeness_gap) <= ROUNDING * scale), layer.name


# ------------------------------------------------------------------------------------------------
# declarations, repr, serialisation
# ------------------------------------------------------------------------------------------------

def test_declarations():
    flatten, reshape = info(Flatten), info(Reshape)
    assert flatten.arguments == ("start_dim", "end_dim") and flatten.defaults == {"start_dim": 1, "end_dim": -1}
    assert flatten.torch_modules == ("Flatten",) and flatten.torch_requires == {}
    assert reshape.arguments == ("shape",) and reshape.torch_modules == () and reshape.onnx_ops == ()
    for entry in (flatten, reshape):
        assert entry.piecewise_linear is True and entry.captum == "linear"
    assert Sequential([Reshape((2, 2)), Flatten(), Dense(np.ones((1, 4)))]).piecewise_linear


def test_repr_and_config_round_trip():
    assert repr(Flatten()) == repr(Flatten(1, -1)) == "Flatten()"
    assert repr(Flatten(2, 3)) == "Flatten(start_dim=2, end_dim=3)"
    assert repr(Flatten(end_dim=-2)) == "Flatten(start_dim=1, end_dim=-2)"
    assert repr(Reshape((4, 2))) == "Reshape((4, 2))" and repr(Reshape([8])) == "Reshape((8,))"
    assert to_config(Flatten(2, 3)) == {"type": "Flatten", "params": {"start_dim": 2, "end_dim": 3}, "arrays": {}}
    assert to_config(Reshape((3, -1))) == {"type": "Reshape", "params": {"shape": [3, -1]}, "arrays": {}}
    for layer in (Flatten(2, 3), Flatten(-3, -2), Reshape((3, -1)), Reshape((2, 2, 2))):
        again = from_config(to_config(layer))
        assert type(again) is type(layer) and repr(again) == repr(layer)
    # a Flatten serialised before it took arguments ({"params": {}}) loads as Flatten()
    assert repr(from_config({"type": "Flatten", "params": {}, "arrays": {}})) == "Flatten()"
    assert isinstance(Reshape(np.array([2, 4])).shape[0], int)     # plain ints: JSON-serialisable


def test_layers_are_frozen():
    with pytest.raises(AttributeError, match="immutable"):
        Flatten(2, 3).start_dim = 1
    with pytest.raises(AttributeError, match="immutable"):
        Reshape((4, 2)).shape = (8,)


# ------------------------------------------------------------------------------------------------
# argument and shape errors
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, pattern", [
    ((0,), r"Flatten start_dim: 0 is the batch axis"),
    ((0, 2), r"Flatten start_dim: 0 is the batch axis"),
    ((1, 0), r"Flatten end_dim: 0 is the batch axis"),
    ((3, 2), r"start_dim=3 comes after end_dim=2"),
    ((-1, -2), r"start_dim=-1 comes after end_dim=-2"),
    ((1.0,), r"Flatten start_dim: expected an int .*got 1.0"),
    ((True,), r"Flatten start_dim: expected an int .*got True"),
    ((1, "2"), r"Flatten end_dim: expected an int .*got '2'"),
])
def test_flatten_argument_errors(args, pattern):
    with pytest.raises(ArgumentError, match=pattern):
        Flatten(*args)


@pytest.mark.parametrize("layer, shape", [
    (Flatten(4), (3, 4, 5)),          # axes 1 .. 3 exist
    (Flatten(-4), (3, 4, 5)),         # -4 + 4 = 0: the batch axis
    (Flatten(-1, 1), (3, 4, 5)),      # start 3 > end 1 once normalised
    (Flatten(1, 4), (3, 4, 5)),
    (Flatten(), ()),                  # a scalar per example has no axis to flatten
])
def test_flatten_shape_errors_name_the_axes(layer, shape):
    with pytest.raises(ShapeError, match=rf"{re.escape(repr(layer))}: .*shape {re.escape(str(shape))}.*expected "
                                         r"1 <= start <= end"):
        layer.output_shape(shape)
    with pytest.raises(ShapeError):
        layer.forward(np.zeros((1,) + shape))


@pytest.mark.parametrize("shape, pattern", [
    ((), r"no sizes"), ((0, 2), r"sizes \[0\]"), ((-1, -1), r"more than one -1"), ((-2, 4), r"sizes \[-2\]"),
    ((2.0,), r"sizes \[2.0\]"), ((True, 2), r"sizes \[True\]"), ("ab", r"expected a tuple of ints"),
    (None, r"expected a tuple of ints"), (2.5, r"expected a tuple of ints"),
])
def test_reshape_argument_errors(shape, pattern):
    with pytest.raises(ArgumentError, match=rf"Reshape shape: .*{pattern}"):
        Reshape(shape)


def test_reshape_size_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"Reshape\(\(3, 3\)\): an example of shape \(8,\) has 8 elements, and "
                                         r"shape \(3, 3\) holds 9"):
        Reshape((3, 3)).output_shape((8,))
    with pytest.raises(ShapeError, match=r"shape \(2, 2\) has 4 elements, and shape \(3, -1\) holds a multiple of 3"):
        Reshape((3, -1)).output_shape((2, 2))
    with pytest.raises(ShapeError, match=r"layers\[0\] Reshape\(\(3, 3\)\)"):
        Sequential([Reshape((3, 3)), Flatten(), Dense(np.ones((1, 9)))], input_shape=(8,))
    with pytest.raises(ShapeError, match=r"Reshape\(\(3, 3\)\)"):
        Reshape((3, 3)).forward(np.zeros((2, 8)))


# ------------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------------

def test_flatten_start_end_round_trips_through_torch(rng):
    torch = pytest.importorskip("torch")
    from refattr.interop import from_torch, to_torch, torch_forward
    from refattr.testing import EXACT_RTOL

    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(2, 3), nn.Tanh(),
                           nn.Flatten(-2, -1), nn.Linear(3 * 16, 2)).double().eval()
    net = from_torch(module, input_shape=(2, 4, 4))
    assert [repr(layer) for layer in net.layers[2:5]] == ["Flatten(start_dim=2, end_dim=3)", "Tanh()",
                                                          "Flatten(start_dim=-2, end_dim=-1)"]
    x = rng.normal(size=(3, 2, 4, 4))
    expected = torch_forward(module, x)
    assert np.abs(net(x) - expected).max() <= EXACT_RTOL * np.abs(expected).max()
    again = to_torch(net)
    assert (again[2].start_dim, again[2].end_dim) == (2, 3) and (again[4].start_dim, again[4].end_dim) == (-2, -1)
    # the exported module is the original one, layer for layer: PyTorch computes the same bits, and
    # importing it again gives the same refattr network
    np.testing.assert_array_equal(torch_forward(again, x), expected)
    np.testing.assert_array_equal(from_torch(again, input_shape=(2, 4, 4))(x), net(x))
    # flattening the batch axis is refused, naming the module and the argument
    with pytest.raises(RefattrError, match=r"Flatten.* at position 0.*start_dim: 0 is the batch axis"):
        from_torch(nn.Sequential(nn.Flatten(0), nn.Linear(8, 2)))


def test_reshape_has_no_torch_module_and_to_torch_says_so():
    pytest.importorskip("torch")
    from refattr.interop import to_torch

    net = Sequential([Dense(np.ones((8, 4))), Reshape((2, 4)), Flatten(), Dense(np.ones((1, 8)))])
    with pytest.raises(UnsupportedLayerError, match=r"net.layers\[1\]: Reshape has no PyTorch equivalent"):
        to_torch(net)
