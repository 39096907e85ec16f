"""The bundled digits CNN: it loads, reproduces what the training script recorded, and the
training script's own gradient is right."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from refattr import AvgPool2D, MaxPool2D, ReLU, Sequential
from refattr.models import build_network, digits_cnn_info, load_digits_cnn, parameter_digest
from refattr.testing import FD_RTOL, central_difference

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_digits_cnn.py"


@pytest.fixture(scope="module")
def model():
    return load_digits_cnn(return_logits=True)


@pytest.fixture(scope="module")
def info():
    return digits_cnn_info()


def test_loads_ten_digits(model):
    net, images, labels, logits = model
    assert isinstance(net, Sequential)
    assert images.dtype == np.float64 and images.shape == (10, 1, 8, 8)
    assert labels.dtype == np.int64 and labels.tolist() == list(range(10))
    assert logits.shape == (10, 10)
    # scikit-learn's intensities are integers 0..16, divided by 16: exact multiples of 1/16 in [0, 1]
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images * 16.0, np.round(images * 16.0))


def test_forward_pass_reproduces_the_recorded_logits(model):
    net, images, _, logits = model
    # Same float64 operations as at training time; only a different BLAS summation order could
    # change the last bits, far below 1e-12 relative to logits of size ~10.
    np.testing.assert_allclose(net(images), logits, rtol=1e-12, atol=1e-12 * np.max(np.abs(logits)))


def test_predictions_and_accuracy_match_the_json(model, info):
    net, images, labels, _ = model
    predictions = np.argmax(net(images), axis=1)
    shipped = info["shipped_images"]
    assert predictions.tolist() == shipped["predictions"]
    assert labels.tolist() == shipped["labels"]
    assert float(np.mean(predictions == labels)) == shipped["accuracy"]


def test_json_records_provenance_and_accuracy(info):
    assert info["accuracy"]["test"] >= 0.90
    assert info["data"]["n_test"] == 360 and info["data"]["n_train"] == 1797 - 360
    assert isinstance(info["training"]["seed"], int)
    assert info["versions"]["scikit-learn"]
    assert info["command"].startswith("python scripts/train_digits_cnn.py")
    assert len(info["created"]) == 10    # YYYY-MM-DD


def test_parameters_match_the_recorded_digest(info):
    from refattr.models import _read_npz

    arrays = _read_npz("digits_cnn")
    assert parameter_digest(info["layers"], arrays) == info["parameter_sha256"]
    n_params = sum(arrays[key].size for spec in info["layers"] for key in spec.get("params", {}).values())
    assert n_params == info["n_parameters"]


def test_architecture_is_piecewise_linear_with_average_pooling(model):
    net = model[0]
    assert net.piecewise_linear
    assert any(isinstance(layer, ReLU) for layer in net.layers)
    assert any(isinstance(layer, AvgPool2D) for layer in net.layers)
    assert not any(isinstance(layer, MaxPool2D) for layer in net.layers)


def test_build_network_rejects_unknown_layers_and_missing_arrays():
    from refattr.errors import ShapeError, UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match="Softmin"):
        build_network([{"type": "Softmin"}], {})
    with pytest.raises(ShapeError, match="'w'"):
        build_network([{"type": "Dense", "params": {"weight": "w"}}], {})


def test_shipped_images_are_the_recorded_scikit_learn_images(model, info):
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    _, images, labels, _ = model
    idx = info["shipped_images"]["dataset_indices"]
    np.testing.assert_array_equal(images[:, 0], digits.images[idx] / 16.0)
    np.testing.assert_array_equal(labels, digits.target[idx])


# the training script ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_digits_cnn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_architecture_is_the_shipped_one(script, info):
    assert json.loads(json.dumps(script.ARCHITECTURE)) == info["layers"]


def test_softmax_cross_entropy_by_hand(script):
    # logits (0, 0): softmax (1/2, 1/2), loss -log(1/2) = log 2; gradient softmax - onehot = (-1/2, 1/2)
    # logits (log 3, 0), label 1: softmax (3/4, 1/4), loss log 4; gradient (3/4, -3/4); mean over 2
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    loss, grad = script.softmax_cross_entropy(logits, np.array([0, 1]))
    np.testing.assert_allclose(loss, (np.log(2.0) + np.log(4.0)) / 2, rtol=1e-15)
    np.testing.assert_allclose(grad, np.array([[-0.5, 0.5], [0.75, -0.75]]) / 2, rtol=1e-15)


def test_training_gradient_matches_central_differences(script, rng):
    # The script's gradient (refattr's param_vjp and vjp) against the loss's directional derivative.
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in script.init_parameters(rng).items()}
    x = rng.uniform(size=(6, 1, 8, 8))
    labels = rng.integers(0, 10, size=6)
    _, grads = script.loss_and_gradients(params, x, labels)
    for key, value in params.items():
        direction = rng.normal(size=value.shape)

        def loss_along(p, key=key):
            return np.array([script.loss_and_gradients({**params, key: p}, x, labels)[0]])

        fd = central_difference(loss_along, value, direction)[0]
        analytic = float(np.sum(grads[key] * direction))
        assert abs(fd - analytic) <= FD_RTOL * max(abs(fd), abs(analytic)), key


def test_adam_first_step_moves_each_parameter_by_the_learning_rate(script):
    # Bias-corrected, m_hat = g and v_hat = g^2 after one step, so the step is lr * g / (|g| + eps).
    opt = script.Adam({"p": np.zeros(3)}, 0.1, 0.9, 0.999, 1e-8)
    new = opt.step({"p": np.zeros(3)}, {"p": np.array([2.0, -0.5, 0.0])})
    np.testing.assert_allclose(new["p"], [-0.1 * 2 / (2 + 1e-8), 0.1 * 0.5 / (0.5 + 1e-8), 0.0], rtol=1e-15)
