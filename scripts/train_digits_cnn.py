#!/usr/bin/env python
"""Train the bundled digits CNN with refattr's own forward and backward passes.

Writes ``refattr/models/digits_cnn.npz`` (parameters, one held-out test image per digit, their
labels and logits) and ``refattr/models/digits_cnn.json`` (architecture, data split, optimiser,
seed, accuracy, versions, the command that produced it).

Data: scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``, 1797 images with
integer intensities 0..16, shipped inside scikit-learn, no download). Pixels are divided by 16, so
they lie in [0, 1] and are exact in float64. A permutation drawn from ``numpy.random.default_rng``
with the random seed splits the images: the first ``n_test`` are held out, the rest train the network.

Training: softmax cross-entropy averaged over a minibatch, written below; the gradient comes from
refattr itself, ``layer.param_vjp`` for weights and biases and ``layer.vjp`` to carry the signal
to the layer below; Adam (Kingma & Ba 2015, algorithm 1) in plain NumPy. Every random draw (the
initial weights, the split, the minibatch order) comes from one seeded generator, so a rerun on
the same platform reproduces the weights bit for bit (the json records their SHA-256).

Usage::

    python scripts/train_digits_cnn.py                 # writes refattr/models/digits_cnn.*
    python scripts/train_digits_cnn.py --out /tmp/m    # somewhere else

Only this script needs scikit-learn; ``refattr.models.load_digits_cnn`` reads the files alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

import refattr
from refattr.models import build_network, parameter_digest

INPUT_SHAPE = (1, 8, 8)
N_CLASSES = 10

#: The network: Conv2D(1 -> 8, 3x3, pad 1) -> ReLU -> AvgPool2D(2) -> Flatten -> Dense(128 -> 10).
#: ReLU and average pooling keep the network piecewise linear with a single layer of kinks
#: (exact integrated gradients applies; the straight path's breakpoints are the zero crossings of
#: the 8 * 8 * 8 = 512 convolution outputs) and keep DeepLIFT's rules to Linear + Rescale /
#: RevealCancel (no max-pooling rule has to be chosen).
ARCHITECTURE = [
    {"type": "Conv2D", "params": {"weight": "layers.0.weight", "bias": "layers.0.bias"},
     "config": {"stride": 1, "padding": 1}},
    {"type": "ReLU"},
    {"type": "AvgPool2D", "config": {"kernel": 2}},
    {"type": "Flatten"},
    {"type": "Dense", "params": {"weight": "layers.4.weight", "bias": "layers.4.bias"}},
]
CONV_CHANNELS = 8
DENSE_IN = CONV_CHANNELS * 4 * 4

DEFAULTS = {"seed": 20240611, "epochs": 80, "batch_size": 32, "learning_rate": 3e-3, "n_test": 360}
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


# parameters ------------------------------------------------------------------------------------
def init_parameters(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-normal weights (std sqrt(2 / fan_in)), zero biases."""
    return {
        "layers.0.weight": rng.normal(size=(CONV_CHANNELS, 1, 3, 3)) * np.sqrt(2.0 / 9.0),
        "layers.0.bias": np.zeros(CONV_CHANNELS),
        "layers.4.weight": rng.normal(size=(N_CLASSES, DENSE_IN)) * np.sqrt(2.0 / DENSE_IN),
        "layers.4.bias": np.zeros(N_CLASSES),
    }


def network(params: dict[str, np.ndarray]) -> refattr.Sequential:
    """The Sequential for the current parameters (layers hold parameters only; building is cheap)."""
    return build_network(ARCHITECTURE, params, INPUT_SHAPE)


# loss ------------------------------------------------------------------------------------------
def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of -log softmax(z)[label], and its gradient with respect to z.

    With z shifted by its row maximum (which changes neither the softmax nor the loss),
    log softmax(z)_k = z_k - log sum_j exp(z_j) and the gradient is (softmax(z) - onehot) / N.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_probs = shifted - np.log(total)
    loss = -float(np.mean(log_probs[np.arange(n), labels]))
    grad = exp / total
    grad[np.arange(n), labels] -= 1.0
    return loss, grad / n


def loss_and_gradients(params: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray):
    """The loss on a batch and its gradient with respect to every parameter.

    Forward with ``net.trace`` (activations and caches); backward layer by layer from the top:
    a layer with parameters gives their gradients through ``param_vjp(g, cache)``, and every layer
    but the first passes ``g`` down through ``vjp(g, cache)``.
    """
    net = network(params)
    trace = net.trace(x)
    loss, g = softmax_cross_entropy(trace.output, labels)
    grads: dict[str, np.ndarray] = {}
    for i in reversed(range(len(net.layers))):
        layer, cache, spec = net.layers[i], trace.caches[i], ARCHITECTURE[i]
        if "params" in spec:
            for argument, value in layer.param_vjp(g, cache).items():
                grads[spec["params"][argument]] = value
        if i > 0:
            g = layer.vjp(g, cache)
    return loss, grads


class Adam:
    """Adam (Kingma & Ba 2015, algorithm 1), bias-corrected, on a dict of arrays."""

    def __init__(self, params, learning_rate, beta1, beta2, eps):
        self.lr, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        out = {}
        for k, p in params.items():
            self.m[k] = self.beta1 * self.m[k] + (1.0 - self.beta1) * grads[k]
            self.v[k] = self.beta2 * self.v[k] + (1.0 - self.beta2) * grads[k] ** 2
            out[k] = p - self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
        return out


# data ------------------------------------------------------------------------------------------
def load_data():
    """scikit-learn's digits as (N, 1, 8, 8) float64 in [0, 1], labels, and the version used."""
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64)[:, None, :, :] / 16.0   # 0..16 -> [0, 1], exact
    return images, digits.target.astype(np.int64), sklearn.__version__


def accuracy(params, x, labels) -> float:
    return float(np.mean(np.argmax(network(params)(x), axis=1) == labels))


def train(images, labels, *, seed, epochs, batch_size, learning_rate, n_test, log=print):
    """Split, train, evaluate. Returns the parameters and a dict of everything worth recording."""
    rng = np.random.default_rng(seed)
    params = init_parameters(rng)
    order = rng.permutation(images.shape[0])
    test_idx, train_idx = order[:n_test], order[n_test:]
    x_train, y_train = images[train_idx], labels[train_idx]
    opt = Adam(params, learning_rate, **ADAM)
    for epoch in range(epochs):
        perm = rng.permutation(x_train.shape[0])
        losses = []
        for start in range(0, perm.size, batch_size):
            batch = perm[start:start + batch_size]
            loss, grads = loss_and_gradients(params, x_train[batch], y_train[batch])
            params = opt.step(params, grads)
            losses.append(loss)
        if log is not None and (epoch % 5 == 4 or epoch == epochs - 1):
            log(f"epoch {epoch + 1:3d}  mean loss {np.mean(losses):.4f}  "
                f"train acc {accuracy(params, x_train, y_train):.4f}")
    record = {
        "train_indices": train_idx, "test_indices": test_idx,
        "train_loss": float(loss_and_gradients(params, x_train, y_train)[0]),
        "train_accuracy": accuracy(params, x_train, y_train),
        "test_accuracy": accuracy(params, images[test_idx], labels[test_idx]),
    }
    return params, record


def shipped_examples(test_idx, labels):
    """Dataset indices of the first held-out image of each digit, in the split's order."""
    return np.array([test_idx[np.flatnonzero(labels[test_idx] == d)[0]] for d in range(N_CLASSES)])


# main ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "refattr" / "models",
                        help="directory for digits_cnn.npz and digits_cnn.json (default: refattr/models)")
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = {key: getattr(args, key) for key in DEFAULTS}

    images, labels, sklearn_version = load_data()
    params, record = train(images, labels, **settings)
    print(f"train accuracy {record['train_accuracy']:.4f} on {record['train_indices'].size} images, "
          f"test accuracy {record['test_accuracy']:.4f} on {record['test_indices'].size} held-out images")

    shipped = shipped_examples(record["test_indices"], labels)
    net = network(params)
    logits = net(images[shipped])
    predictions = np.argmax(logits, axis=1)

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "digits_cnn.npz", **params, images=images[shipped], labels=labels[shipped],
             logits=logits)
    info = {
        "name": "digits_cnn",
        "description": "CNN for scikit-learn's 8x8 handwritten digits, trained with refattr's own "
                       "forward and backward passes (scripts/train_digits_cnn.py)",
        "input_shape": list(INPUT_SHAPE),
        "input_range": [0.0, 1.0],
        "outputs": "10 logits, one per digit 0..9",
        "summary": "Conv2D(1->8, 3x3, padding 1) -> ReLU -> AvgPool2D(2) -> Flatten -> Dense(128->10)",
        "layers": ARCHITECTURE,
        "n_parameters": int(sum(v.size for v in params.values())),
        "parameter_sha256": parameter_digest(ARCHITECTURE, params),
        "data": {
            "source": "sklearn.datasets.load_digits (1797 images, 8x8, intensities 0..16)",
            "scaling": "pixel / 16",
            "split": "rng = numpy.random.default_rng(seed); init_parameters(rng); "
                     "order = rng.permutation(1797); test = order[:n_test], train = order[n_test:]",
            "n_train": int(record["train_indices"].size),
            "n_test": int(record["test_indices"].size),
        },
        "training": {
            **settings,
            "loss": "softmax cross-entropy, mean over the minibatch",
            "optimizer": {"name": "adam", **ADAM},
            "initialisation": "He-normal weights (std sqrt(2 / fan_in)), zero biases",
            "final_train_loss": record["train_loss"],
        },
        "accuracy": {"train": record["train_accuracy"], "test": record["test_accuracy"]},
        "shipped_images": {
            "what": "the first held-out test image of each digit, in split order",
            "dataset_indices": shipped.tolist(),
            "labels": labels[shipped].tolist(),
            "predictions": predictions.tolist(),
            "accuracy": float(np.mean(predictions == labels[shipped])),
        },
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "versions": {"scikit-learn": sklearn_version, "numpy": np.__version__, "refattr": refattr.__version__,
                     "python": platform.python_version()},
        "command": "python " + " ".join(shlex.quote(a) for a in [_display_path(sys.argv[0])] + sys.argv[1:]),
    }
    (args.out / "digits_cnn.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"shipped images: labels {labels[shipped].tolist()}, predictions {predictions.tolist()}")
    print(f"wrote {args.out / 'digits_cnn.npz'} and {args.out / 'digits_cnn.json'}")
    return 0


def _display_path(path: str) -> str:
    """The script's path relative to the repository root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
