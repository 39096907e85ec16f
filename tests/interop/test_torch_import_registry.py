"""A layer registered from outside the package imports from PyTorch and ONNX, exports to PyTorch and
is compared with Captum, through its declarations alone.

The layers here are defined and registered by the tests (and unregistered after each test), for
torch modules refattr has no layer for: nothing in refattr.interop names them, so these tests pass
only if from_torch, to_torch, from_onnx and the Captum conventions read the registry.

Expected values: the module's own float64 forward in PyTorch (EXACT_RTOL: the same float64
arithmetic in another order), Captum itself (1e-10: Captum divides forward differences, as the
reproduction does, and sums in another order), and the declared arguments written in each test.
"""

import warnings

import numpy as np
import pytest

from refattr import ELU, Dense, ReLU, Sequential
from refattr.errors import UnsupportedLayerError
from refattr.layers import registry
from refattr.layers.base import ElementwiseLayer
from refattr.testing import EXACT_RTOL

torch = pytest.importorskip("torch")
nn = torch.nn

from refattr.interop import from_torch, to_torch, torch_forward  # noqa: E402
from refattr.interop.compare import relative_difference  # noqa: E402


class _Elementwise(ElementwiseLayer):
    """f and f' in the subclass; the divided difference from them (forward differences are
    accurate enough for these tests: they compare with Captum, which divides forward differences
    too)."""

    piecewise_linear = False

    def secant(self, a, h):
        safe = np.where(h == 0, 1.0, h)
        return np.where(h == 0, self.derivative(a), (self.function(a + h) - self.function(a)) / safe)


class HypotheticalCELU(_Elementwise):
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)), as torch.nn.CELU (Barron 2017)."""

    torch_modules = ("CELU",)
    onnx_ops = ("Celu",)
    onnx_attributes = {"alpha": "alpha"}
    captum = "gradient"   # not in Captum's list of non-linearities

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def function(self, x):
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0) / self.alpha))

    def derivative(self, x, g=None):
        d = np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0) / self.alpha))
        return d if g is None else g * d


class HypotheticalSoftshrink(_Elementwise):
    """x - t for x > t, x + t for x < -t, else 0: torch.nn.Softshrink, whose t is called ``lambd``."""

    torch_modules = ("Softshrink",)
    torch_arguments = {"threshold": "lambd"}
    captum = "gradient"

    def __init__(self, threshold=0.5):
        self.threshold = float(threshold)

    def function(self, x):
        t = self.threshold
        return np.where(x > t, x - t, np.where(x < -t, x + t, 0.0))

    def derivative(self, x, g=None):
        d = np.where(np.abs(x) > self.threshold, 1.0, 0.0)
        return d if g is None else g * d


HYPOTHETICAL = (HypotheticalCELU, HypotheticalSoftshrink)


@pytest.fixture
def hypothetical():
    """Register the hypothetical layers for one test (skipped where refattr has grown its own)."""
    for cls in HYPOTHETICAL:
        for name in cls.torch_modules:
            entry = registry.by_torch_module(getattr(nn, name))
            if entry is not None:
                pytest.skip(f"refattr now imports nn.{name} as {entry.name}; the contract suite covers it")
    for cls in HYPOTHETICAL:
        registry.register(cls)
    yield
    for cls in HYPOTHETICAL:
        registry.unregister(cls.__name__)


def _module(rng, activation):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), activation, nn.Linear(5, 2)).double().eval()


def test_from_torch_reads_the_arguments_the_layer_declares(hypothetical, rng):
    for activation, kind, argument, value in ((nn.CELU(alpha=0.7), HypotheticalCELU, "alpha", 0.7),
                                              (nn.ELU(alpha=1.5), ELU, "alpha", 1.5),
                                              (nn.Softshrink(lambd=0.3), HypotheticalSoftshrink, "threshold", 0.3)):
        module = _module(rng, activation)
        net = from_torch(module)
        layer = net.layers[1]
        # an importer that ignored the module's settings would give the constructor's default
        assert type(layer) is kind and getattr(layer, argument) == value
        x = 2.0 * rng.normal(size=(6, 3))
        assert relative_difference(net(x), torch_forward(module, x)) <= EXACT_RTOL


def test_to_torch_builds_the_declared_module_and_round_trips(hypothetical, rng):
    net = Sequential([Dense(rng.normal(size=(5, 3))), HypotheticalCELU(0.7), Dense(rng.normal(size=(4, 5))),
                      HypotheticalSoftshrink(0.3), Dense(rng.normal(size=(2, 4)))])
    model = to_torch(net)
    celu, shrink = model[1], model[3]
    assert type(celu) is nn.CELU and celu.alpha == 0.7
    assert type(shrink) is nn.Softshrink and shrink.lambd == 0.3   # the renamed argument
    x = 2.0 * rng.normal(size=(6, 3))
    assert relative_difference(torch_forward(model, x), net(x)) <= EXACT_RTOL
    again = from_torch(model)
    assert [type(la) for la in again.layers] == [type(la) for la in net.layers]
    assert again.layers[1].alpha == 0.7 and again.layers[3].threshold == 0.3
    assert relative_difference(again(x), net(x)) <= EXACT_RTOL


def test_what_is_supported_is_read_from_the_registry_at_each_call(rng):
    module = _module(rng, nn.CELU(alpha=0.7))
    with pytest.raises(UnsupportedLayerError, match="no refattr layer computes it") as before:
        from_torch(module)
    assert "CELU" not in str(before.value).split("Supported:")[1]
    registry.register(HypotheticalCELU)
    try:
        with pytest.raises(UnsupportedLayerError, match="Supported: .*CELU") as listed:
            from_torch(nn.Sequential(nn.Hardtanh()))
        assert "Hardtanh" in str(listed.value).split("Supported:")[0]
        assert type(from_torch(module).layers[1]) is HypotheticalCELU
    finally:
        registry.unregister("HypotheticalCELU")
    with pytest.raises(UnsupportedLayerError, match="HypotheticalCELU is not a registered"):
        registry.info(HypotheticalCELU)


def test_the_registry_refuses_a_second_claim_on_a_torch_module_and_bad_declarations():
    class SecondReLU(HypotheticalCELU):
        torch_modules = ("ReLU",)
        onnx_ops = ()

    with pytest.raises(TypeError, match=r"\['ReLU'\] already import as ReLU"):
        registry.register(SecondReLU)

    class Misnamed(HypotheticalCELU):
        torch_modules = ("GELU",)
        onnx_ops = ()
        torch_arguments = {"approximate": "approximate"}

    with pytest.raises(TypeError, match="approximate"):
        registry.register(Misnamed)
    assert "SecondReLU" not in registry.supported() and "Misnamed" not in registry.supported()


def test_an_argument_the_torch_module_lacks_exports_only_at_its_default(rng):
    class Scaled(_Elementwise):
        """alpha x; nn.Hardtanh(-1e300, 1e300) is alpha = 1 (a declared argument the module lacks)."""
        torch_modules = ("Hardtanh",)
        torch_arguments = {"alpha": None}
        torch_requires = {"min_val": -1e300, "max_val": 1e300}
        captum = "linear"

        def __init__(self, alpha=1.0):
            self.alpha = float(alpha)

        def function(self, x):
            return self.alpha * x

        def derivative(self, x, g=None):
            d = np.full_like(x, self.alpha)
            return d if g is None else g * d

    registry.register(Scaled)
    try:
        model = to_torch(Sequential([Dense(rng.normal(size=(2, 3))), Scaled()]))
        assert type(model[1]) is nn.Hardtanh and (model[1].min_val, model[1].max_val) == (-1e300, 1e300)
        assert type(from_torch(model).layers[1]) is Scaled
        with pytest.raises(UnsupportedLayerError, match=r"Scaled\(alpha=2.0\) has no PyTorch module"):
            to_torch(Sequential([Dense(rng.normal(size=(2, 3))), Scaled(2.0)]))
        with pytest.raises(UnsupportedLayerError, match="min_val=-1.0; refattr's Scaled models only"):
            from_torch(nn.Sequential(nn.Linear(2, 2), nn.Hardtanh()))
    finally:
        registry.unregister("Scaled")


# ONNX ----------------------------------------------------------------------------------------
def _celu_model(rng, **attributes):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    # float32: onnxruntime implements Celu for float only (the import check then allows 1e-5)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Celu", ["h"], ["y"], **attributes)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_from_onnx_reads_the_declared_attributes_and_the_schema_default(hypothetical, rng):
    from refattr.interop import from_onnx

    net = from_onnx(_celu_model(rng, alpha=0.7))     # checked against the ONNX runtime on a probe batch
    # ONNX stores FLOAT attributes in float32
    assert type(net.layers[1]) is HypotheticalCELU and net.layers[1].alpha == float(np.float32(0.7))
    # without the attribute, the operator's default (ONNX Celu: alpha = 1.0)
    assert from_onnx(_celu_model(rng)).layers[1].alpha == 1.0


def test_from_onnx_refuses_an_attribute_the_layer_does_not_read(rng):
    class CeluNoAlpha(HypotheticalCELU):
        onnx_attributes = {}

    from refattr.interop import from_onnx

    registry.register(CeluNoAlpha)
    try:
        assert from_onnx(_celu_model(rng)).layers[1].alpha == 1.0
        with pytest.raises(UnsupportedLayerError, match=r"\(Celu\): attribute\(s\) \['alpha'\]: refattr's "
                                                        r"CeluNoAlpha reads no attributes"):
            from_onnx(_celu_model(rng, alpha=0.7))
    finally:
        registry.unregister("CeluNoAlpha")


# Captum --------------------------------------------------------------------------------------
def _captum_deeplift(model, x, baseline, target):
    pytest.importorskip("captum")
    from captum.attr import DeepLift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's UserWarnings about hooks and requires_grad
        return DeepLift(model).attribute(torch.from_numpy(x).requires_grad_(), torch.from_numpy(baseline),
                                         target=torch.from_numpy(target)).detach().numpy()


def test_captum_conventions_follow_the_declared_treatment(hypothetical, rng):
    from refattr.interop import captum_conventions as cc
    from refattr.interop.compare import _adjacent_hooked

    assert cc.captum_treatment(ELU()) == "nonlinear"
    assert cc.captum_treatment(HypotheticalCELU()) == "gradient"
    assert cc.captum_treatment(HypotheticalCELU(), swish_as_gradient=False) == "nonlinear"
    dense = Dense(rng.normal(size=(3, 3)))
    assert _adjacent_hooked(Sequential([dense, ELU(), ReLU(), dense])) == [
        "ELU -> ReLU (layers 1, 2)"]
    assert _adjacent_hooked(Sequential([dense, HypotheticalCELU(), ReLU(), dense])) == []
    assert _adjacent_hooked(Sequential([dense, HypotheticalCELU(), ReLU(), dense]), swish_hooked=True) == [
        "HypotheticalCELU -> ReLU (layers 1, 2)"]
    # The reproduction equals Captum itself: Rescale on the hooked ELU, the plain gradient on
    # Softshrink. (Not CELU here: torch's float64 CELU gradient is off by about 1e-8 relative,
    # measured against exp(x / alpha), which would hide the comparison below that.)
    net = Sequential([Dense(rng.normal(size=(5, 3)), rng.normal(size=5)), ELU(1.5),
                      Dense(rng.normal(size=(5, 5))), HypotheticalSoftshrink(0.3), Dense(rng.normal(size=(2, 5)))])
    x, baseline, target = 2.0 * rng.normal(size=(4, 3)), 0.3 * rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    ours = cc.captum_deeplift(net, x, baseline, target)
    theirs = _captum_deeplift(to_torch(net), x, baseline, target)
    assert relative_difference(ours, theirs) <= 1e-10
    # a plausible bug, Softshrink hooked like ELU, moves the result far beyond rounding
    assert relative_difference(cc.captum_deeplift(net, x, baseline, target, swish_as_gradient=False), theirs) > 1e-3


def test_compare_captum_names_the_unhooked_module_from_the_registry(hypothetical, rng):
    pytest.importorskip("captum")
    from refattr.interop import compare_captum

    module = _module(rng, nn.Softshrink(lambd=0.3))
    x, baseline = 2.0 * rng.normal(size=(3, 3)), 0.3 * rng.normal(size=(3, 3))
    report = compare_captum(module, x, baseline, np.array([0, 1, 1]), methods=["DeepLift"])
    entry = report["DeepLift"]
    assert entry.verdict == "convention", report.table()
    top = max(entry.causes, key=lambda c: c.size)
    assert "Captum has no DeepLift rule for nn.Softshrink" in top.description and top.size > 1e-3


@pytest.mark.parametrize("entry", registry.registered(), ids=lambda e: e.name)
def test_every_registered_layer_round_trips_through_torch(entry):
    # For every registered layer (no per-layer code): a random instance, followed by Flatten and a
    # Dense head, exports to torch (to_torch) and imports back (from_torch) computing the same
    # function; torch's own float64 forward of the exported module agrees to rounding.
    from refattr import Flatten
    rng = np.random.default_rng(7)
    if entry.joins:
        return      # joins are torch functions, exported with the graph they sit in
    if not entry.torch_modules and entry.name != "Affine":     # Affine exports as refattr's own module
        layer = entry.cls.random(rng, (2, 6, 6))
        with pytest.raises(UnsupportedLayerError, match="has no PyTorch equivalent"):
            to_torch(Sequential([layer, Flatten(), Dense(np.ones((1, int(np.prod(layer.output_shape((2, 6, 6)))))))]))
        return
    for shape in ((2, 6, 6), (2, 7), (5,)):
        try:
            layer = entry.cls.random(rng, shape)
            out = layer.output_shape(shape)
        except ValueError:
            continue
        body = [layer] + ([Flatten()] if len(out) > 1 else [])
        width = int(np.prod(out))
        net = Sequential(body + [Dense(rng.normal(size=(2, width)), rng.normal(size=2))], input_shape=shape)
        break
    else:
        pytest.fail(f"{entry.name}.random accepts none of the shapes tried")
    x = rng.normal(size=(3,) + shape)
    module = to_torch(net)
    again = from_torch(module, input_shape=shape)
    np.testing.assert_array_equal(again(x), net(x))
    assert relative_difference(torch_forward(module, x), net(x)) <= 1e-13
