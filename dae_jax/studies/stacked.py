"""Stacked denoising autoencoder (SDAE) classifier: greedy layer-wise denoising pretraining, then fine-tuning.

Vincent, Larochelle, Lajoie, Bengio, Manzagol, "Stacked Denoising Autoencoders: Learning Useful
Representations in a Deep Network with a Local Denoising Criterion", JMLR 11 (2010): SDAE-3 reaches
1.28% test error on MNIST (Table 3). What we take from the paper:
- each layer is a denoising autoencoder with sigmoid units and tied weights, h = s(W x~ + b),
  z = s(W^T h + b'), trained to reconstruct its clean input x from x~, with the cross-entropy
  summed over the components (inputs in [0, 1]: pixels, or the previous layer's activations);
- x~ is masking noise: each component set to 0 with probability nu (``corruptions.masking``);
  nu = 25%, the fraction Table 3 gives next to SDAE-3's MNIST result (as we recall it: the paper's
  text could not be consulted from this machine);
- layers are pretrained greedily, layer k on the clean codes of layers 1..k-1; then the encoders
  plus a softmax output layer are fine-tuned on the labels by stochastic gradient descent, keeping
  the epoch with the best validation error (early stopping); MNIST is split 50,000 train /
  10,000 validation / 10,000 test.
What the paper selected on the validation set and we fix ourselves: 1000 units per layer (the
paper's widths are selected among values of this order: 1000 is the cheapest), plain SGD on
minibatches of 32 (the paper updates per example), and the learning rates and epoch counts of
``experiments/stacked_dae.py`` (chosen by short pilots on validation error). Weights start uniform
in +-4 sqrt(6 / (fan_in + fan_out)) (Glorot's range scaled for sigmoid units, as in the Theano SdA
tutorial), biases and the softmax layer at 0.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dae_jax import corruptions


def sigmoid_uniform(key: jax.Array, shape: tuple[int, int], dtype=jnp.float32) -> jax.Array:
    """U(-r, r), r = 4 sqrt(6 / (fan_in + fan_out)): Glorot's uniform range scaled for sigmoid units."""
    r = 4.0 * np.sqrt(6.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, dtype, -r, r)


class DenoisingLayer(nn.Module):
    """A tied-weight autoencoder layer on vectors [N, inputs]: ``encode`` -> [N, features]; call -> logits."""

    inputs: int
    features: int

    def setup(self):
        # Named like nn.Dense's params, so the fine-tuned Classifier's layer_i takes them as they are.
        self.kernel = self.param("kernel", sigmoid_uniform, (self.inputs, self.features))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))
        self.bias_out = self.param("bias_out", nn.initializers.zeros, (self.inputs,))

    def encode(self, x: jax.Array) -> jax.Array:
        return nn.sigmoid(x @ self.kernel + self.bias[None, :])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Reconstruction logits (pre-sigmoid) [N, inputs]."""
        return self.encode(x) @ self.kernel.T + self.bias_out[None, :]


class Classifier(nn.Module):
    """Sigmoid MLP with a softmax output: the stack being fine-tuned. Images [N, ...] are flattened."""

    hidden: Sequence[int]
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for i, n in enumerate(self.hidden):
            x = nn.sigmoid(nn.Dense(n, kernel_init=sigmoid_uniform, name=f"layer_{i}")(x))
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="output")(x)


def masked(key: jax.Array, x: jax.Array, nu: float) -> jax.Array:
    """Masking noise on vectors [N, D]: each component zeroed with probability ``nu``."""
    return corruptions.masking(key, x[..., None], p=nu)[..., 0]


def reconstruction_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Cross-entropy summed over components, per example: [N, D] -> [N]."""
    return optax.sigmoid_binary_cross_entropy(logits, targets).sum(axis=-1)


def encode_stack(hidden: Sequence[int], params: Sequence[dict], x: jax.Array) -> jax.Array:
    """Clean codes after the layers ``params`` (of widths ``hidden``), in order: [N, D0] -> [N, D_k]."""
    for n, p in zip(hidden, params, strict=True):
        x = DenoisingLayer(x.shape[-1], n).apply({"params": p}, x, method=DenoisingLayer.encode)
    return x


def _layer_loss(width: int, params: dict, x: jax.Array, nu: float, key: jax.Array) -> jax.Array:
    """Pretraining loss of one layer: mean reconstruction cross-entropy of its clean input x [N, D] from x masked."""
    logits = DenoisingLayer(x.shape[-1], width).apply({"params": params}, masked(key, x, nu))
    return reconstruction_loss(logits, x).mean()


def make_pretrain_step(hidden: Sequence[int], nu: float, tx: optax.GradientTransformation) -> Callable:
    """``step(params, below, opt_state, images, key) -> (params, opt_state, loss)`` for the last layer of ``hidden``.

    images: float [N, D0] in [0, 1]; ``below`` are the frozen params of the layers under it.
    """
    below_hidden, width = tuple(hidden[:-1]), hidden[-1]

    @jax.jit
    def step(params, below, opt_state, images, key):
        x = encode_stack(below_hidden, below, images)
        loss, grads = jax.value_and_grad(_layer_loss, argnums=1)(width, params, x, nu, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def make_finetune_step(classifier: Classifier, tx: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, images, labels) -> (params, opt_state, loss)``: mean softmax cross-entropy."""

    def loss_fn(params, images, labels):
        logits = classifier.apply({"params": params}, images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(params, opt_state, images, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, images, labels)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _batches(n: int, batch_size: int, seed: Sequence[int]) -> list[np.ndarray]:
    """Shuffled full batches of row indices; the order is a function of ``seed`` (e.g. (seed, layer, epoch))."""
    order = np.random.default_rng(list(seed)).permutation(n)
    return [order[s : s + batch_size] for s in range(0, n - batch_size + 1, batch_size)]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _reconstruction_error(hidden: tuple[int, ...], params: list[dict], images: jax.Array, nu: float, key: jax.Array):
    return _layer_loss(hidden[-1], params[-1], encode_stack(hidden[:-1], params[:-1], images), nu, key)


def reconstruction_error(
    hidden: Sequence[int], params: Sequence[dict], images: np.ndarray, nu: float, key: jax.Array
) -> float:
    """Mean summed cross-entropy of the top layer's reconstruction of its masked clean input."""
    return float(_reconstruction_error(tuple(hidden), list(params), jnp.asarray(images), nu, key))


def pretrain(
    images: np.ndarray,
    hidden: Sequence[int],
    nu: float,
    learning_rate: float,
    epochs: int,
    batch_size: int,
    seed: int,
    log: Callable[[dict], None] = print,
) -> list[dict]:
    """Greedy layer-wise denoising pretraining; returns each layer's params. images: float [N, D0] in [0, 1].

    ``log`` gets one record per layer and epoch: layer, epoch, mean training loss, seconds.
    """
    if len(images) < batch_size:
        raise ValueError(f"pretraining needs at least batch_size={batch_size} images, got {len(images)}.")
    key = jax.random.key(seed)
    tx = optax.sgd(learning_rate)
    params: list[dict] = []
    for k, width in enumerate(hidden):
        inputs = images.shape[1] if k == 0 else hidden[k - 1]
        init = jax.jit(DenoisingLayer(inputs, width).init)  # one compile instead of one per eager op
        layer_params = init(jax.random.fold_in(key, k), jnp.zeros((1, inputs)))["params"]
        opt_state = tx.init(layer_params)
        step = make_pretrain_step(hidden[: k + 1], nu, tx)
        noise_key = jax.random.fold_in(jax.random.fold_in(key, 1000), k)
        for epoch in range(epochs):
            start, losses = time.perf_counter(), []
            for i, rows in enumerate(_batches(len(images), batch_size, (seed, k, epoch))):
                step_key = jax.random.fold_in(noise_key, epoch * len(images) + i)
                layer_params, opt_state, loss = step(layer_params, params, opt_state, images[rows], step_key)
                losses.append(loss)
            log(
                {
                    "layer": k + 1,
                    "epoch": epoch + 1,
                    "loss": float(jnp.mean(jnp.stack(losses))),
                    "seconds": time.perf_counter() - start,
                }
            )
        params.append(layer_params)
    return params


class Finetuned(NamedTuple):
    params: dict  # the classifier's params at the best validation epoch
    best_epoch: int
    validation_error: float  # at best_epoch
    test_error: float  # at best_epoch
    history: list[dict]


@functools.cache
def _predictor(hidden: tuple[int, ...], num_classes: int) -> Callable:
    classifier = Classifier(hidden, num_classes)
    return jax.jit(lambda params, x: jnp.argmax(classifier.apply({"params": params}, x), axis=-1))


def error_rate(
    classifier: Classifier, params: dict, images: np.ndarray, labels: np.ndarray, batch_size: int = 2000
) -> float:
    """Fraction of misclassified images."""
    predict = _predictor(tuple(classifier.hidden), classifier.num_classes)
    wrong = sum(
        int(np.sum(np.asarray(predict(params, images[s : s + batch_size])) != labels[s : s + batch_size]))
        for s in range(0, len(images), batch_size)
    )
    return wrong / len(images)


def finetune(
    hidden: Sequence[int],
    pretrained: Sequence[dict] | None,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    learning_rate: float,
    epochs: int,
    batch_size: int,
    seed: int,
    log: Callable[[dict], None] = print,
) -> Finetuned:
    """Supervised fine-tuning of the stack plus a softmax layer with SGD; early stopping on validation error.

    splits: {"train", "validation", "test"} -> (images float [N, D0], labels [N]). ``pretrained``
    None trains the same network from its random initialization (the no-pretraining baseline).
    """
    classifier = Classifier(tuple(hidden))
    train_x, train_y = splits["train"]
    params = dict(classifier.init(jax.random.key(seed), jnp.zeros((1, train_x.shape[1])))["params"])
    for i, p in enumerate(pretrained or ()):
        params[f"layer_{i}"] = {"kernel": p["kernel"], "bias": p["bias"]}
    tx = optax.sgd(learning_rate)
    opt_state = tx.init(params)
    step = make_finetune_step(classifier, tx)
    best, history = None, []
    for epoch in range(epochs):
        start, losses = time.perf_counter(), []
        for rows in _batches(len(train_x), batch_size, (seed, len(hidden), epoch)):
            params, opt_state, loss = step(params, opt_state, train_x[rows], train_y[rows])
            losses.append(loss)
        record = {
            "epoch": epoch + 1,
            "loss": float(jnp.mean(jnp.stack(losses))),
            "validation_error": error_rate(classifier, params, *splits["validation"]),
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        log(record)
        if best is None or record["validation_error"] < best[1]:
            best = (epoch + 1, record["validation_error"], params)
    epoch, val_error, params = best
    return Finetuned(params, epoch, val_error, error_rate(classifier, params, *splits["test"]), history)
