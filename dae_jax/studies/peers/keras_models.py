"""Keras 3 peer (TensorFlow backend): dae-jax's layer specs as Keras layers, with dae-jax's train step.

``Denoiser.train_step`` takes a clean uint8 batch [N, H, W, C], converts it to float in [0, 1],
draws its own Gaussian noise (clipped, ``keras.random`` with a seed generator, so it compiles
under XLA), and minimises the loss against the clean batch (BCE from logits or MSE) with the
Keras optimizer and dae-jax's hyperparameters. ``fit`` runs that step; the benchmark can also
call it from its own ``tf.function`` loop (variants ``step``/``step_xla``).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dae_jax.studies.peers.specs import Layer, Recipe, forward, noisy_batches  # noqa: E402

# Configurations the benchmark can time (--peers keras:<name>); DEFAULT_VARIANT is what
# `--peers keras` uses: the fastest on the 2-core CPU, where TensorFlow's oneDNN kernels beat
# its XLA CPU backend about 5x and fit costs about the same as an own loop
# (results/benchmarks/peer_variants.md). "step" times exactly the train step, as for dae-jax.
VARIANTS = {
    "fit": {"fit": True, "jit_compile": False},
    "fit_xla": {"fit": True, "jit_compile": True},  # Keras' default on TF ("auto" -> XLA)
    "step": {"fit": False, "jit_compile": False},  # Denoiser.train_step in our own tf.function loop
    "step_xla": {"fit": False, "jit_compile": True},
}
DEFAULT_VARIANT = "step"


def version() -> str:
    return f"keras {keras.__version__}, tensorflow {tf.__version__}"


def _layers(layer: Layer) -> list[keras.layers.Layer]:
    activation = "relu" if layer.relu else None
    padding = "same" if layer.same else "valid"
    conv = {"activation": activation, "kernel_initializer": "zeros" if layer.zero else "glorot_uniform"}
    if layer.op == "conv":
        return [keras.layers.Conv2D(layer.size, layer.kernel, layer.stride, padding, **conv)]
    if layer.op == "tconv":
        return [keras.layers.Conv2DTranspose(layer.size, layer.kernel, layer.stride, padding, **conv)]
    if layer.op == "dense":
        return [keras.layers.Dense(layer.size, activation=activation)]
    if layer.op == "bn":
        return [keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)]
    if layer.op == "pool":
        return [keras.layers.MaxPooling2D(2, padding=padding if layer.same else "valid")]
    if layer.op == "up":
        return [keras.layers.UpSampling2D(2)]
    if layer.op == "resize":
        return [keras.layers.Resizing(layer.size, layer.size, interpolation="nearest")]
    if layer.op == "flatten":
        return [keras.layers.Flatten()]
    if layer.op == "reshape":
        return [keras.layers.Reshape(layer.shape)]
    raise ValueError(f"keras peer: no translation for layer op {layer.op!r}.")


def build(recipe: Recipe) -> keras.Model:
    """The preset's autoencoder (logits out) as a built functional keras.Model.

    Functional, not Sequential: a "save" keeps a symbolic tensor that a later "add" sums with
    (``specs.forward`` walks the specs once, wiring the graph). Biases start at zero, as dae-jax's.
    """
    inputs = keras.Input(recipe.image_shape)

    def apply(i: int, x):
        return functools.reduce(lambda y, k: k(y), _layers(recipe.layers[i]), x)

    outputs = forward(recipe.layers, inputs, apply, lambda x, saved: keras.layers.Add()([x, saved]))
    return keras.Model(inputs, outputs, name=recipe.preset)


def param_count(model: keras.Model) -> int:
    """Trainable parameters (BatchNorm's moving statistics are state, as in dae-jax's batch_stats)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    h = recipe.hyperparameters
    if recipe.optimizer == "adadelta":
        return keras.optimizers.Adadelta(h["learning_rate"], rho=h["rho"], epsilon=h["eps"])
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(h["learning_rate"], beta_1=h["b1"], beta_2=h["b2"], epsilon=h["eps"])
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(h["learning_rate"], momentum=h["momentum"] or 0.0, nesterov=h["nesterov"])
    raise ValueError(f"keras peer: no translation for optimizer {recipe.optimizer!r}.")


class Denoiser(keras.Model):
    """The autoencoder plus a train step that corrupts the clean batch it is given (see the module docstring)."""

    def __init__(self, recipe: Recipe, seed: int = 0):
        super().__init__(name=f"{recipe.preset}_denoiser")
        self.net = build(recipe)
        self.sigma = recipe.sigma
        self.noise_seed = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        return self.net(x, training=training)

    def train_step(self, images):
        clean = keras.ops.cast(images, "float32") / 255.0
        noisy = clean
        if self.sigma is not None:
            noise = keras.random.normal(keras.ops.shape(clean), seed=self.noise_seed)
            noisy = keras.ops.clip(clean + self.sigma * noise, 0.0, 1.0)
        with tf.GradientTape() as tape:
            logits = self(noisy, training=True)
            loss = self.compute_loss(x=noisy, y=clean, y_pred=logits, training=True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        for metric in self.metrics:  # the running mean of the loss, as Keras' own train_step keeps it
            if metric.name == "loss":
                metric.update_state(loss)
        return {m.name: m.result() for m in self.metrics}


def compiled(recipe: Recipe, jit_compile: bool, seed: int = 0) -> Denoiser:
    """A Denoiser compiled with the recipe's optimizer and loss, its variables built."""
    model = Denoiser(recipe, seed)
    loss = (
        keras.losses.BinaryCrossentropy(from_logits=True) if recipe.loss == "bce" else keras.losses.MeanSquaredError()
    )
    model.compile(optimizer=make_optimizer(recipe), loss=loss, jit_compile=jit_compile)
    model(np.zeros((1, *recipe.image_shape), np.float32))
    model.optimizer.build(model.trainable_weights)
    return model


class Runner:
    """Times ``steps`` train steps of ``recipe`` on batches of ``images`` (uint8 [N, H, W, C], N >= batch_size)."""

    DEFAULT_VARIANT = DEFAULT_VARIANT

    def __init__(self, recipe: Recipe, batch_size: int, images: np.ndarray, variant: str = DEFAULT_VARIANT):
        if variant not in VARIANTS:
            raise ValueError(f"Unknown keras variant {variant!r}; choose one of {sorted(VARIANTS)}.")
        options = VARIANTS[variant]
        keras.utils.set_random_seed(0)
        self.model = compiled(recipe, options["jit_compile"])
        self.params = param_count(self.model)
        n = len(images) // batch_size * batch_size
        self.fit = options["fit"]
        if self.fit:
            self.dataset = tf.data.Dataset.from_tensor_slices(images[:n]).batch(batch_size).cache().repeat()
        else:
            self.batches = [tf.constant(images[i : i + batch_size]) for i in range(0, n, batch_size)]
            self.step = tf.function(self.model.train_step, jit_compile=options["jit_compile"])
        how = "model.fit" if self.fit else "own tf.function loop over Denoiser.train_step"
        self.description = f"{version()}, {how}, jit_compile={options['jit_compile']}"

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps, the last one finished (its loss fetched)."""
        start = time.perf_counter()
        if self.fit:
            self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        else:
            for i in range(steps):
                logs = self.step(self.batches[i % len(self.batches)])
            tf.nest.map_structure(lambda t: t.numpy(), logs)  # waits for the last step
        return time.perf_counter() - start


# How the inference benchmark calls Keras (--task infer --peers keras:<name>). "predict": one
# model.predict over every batch of a repeat at batch_size, as a Keras user denoises many images;
# "predict_on_batch": one call per batch, as dae-jax's and torch's are timed. jit_compile off: on the
# 2-core CPU TensorFlow's oneDNN kernels beat its XLA backend (see VARIANTS); "_xla" turns it on.
PREDICT_VARIANTS = {
    "predict": {"on_batch": False, "jit_compile": False},
    "predict_xla": {"on_batch": False, "jit_compile": True},
    "predict_on_batch": {"on_batch": True, "jit_compile": False},
}


class Predictor:
    """Times denoising ``steps`` batches (``specs.noisy_batches`` of ``images``) with Keras' predict: numpy
    float32 NHWC in [0, 1] in, numpy in [0, 1] out (a BCE model's sigmoid is part of the model)."""

    DEFAULT_VARIANT = "predict"

    def __init__(self, recipe: Recipe, batch_size: int, images: np.ndarray, variant: str = DEFAULT_VARIANT):
        if variant not in PREDICT_VARIANTS:
            raise ValueError(f"Unknown keras predict variant {variant!r}; choose one of {sorted(PREDICT_VARIANTS)}.")
        options = PREDICT_VARIANTS[variant]
        keras.utils.set_random_seed(0)
        net = build(recipe)
        self.params = param_count(net)
        outputs = keras.layers.Activation("sigmoid")(net.output) if recipe.loss == "bce" else net.output
        self.model = keras.Model(net.input, outputs)
        self.model.compile(jit_compile=options["jit_compile"])
        self.batches = noisy_batches(images, batch_size, recipe.sigma)
        self.batch_size, self.on_batch = batch_size, options["on_batch"]
        predict = f"predict(batch_size={batch_size}) over a repeat's batches"
        how = "predict_on_batch per batch" if self.on_batch else predict
        self.description = f"{version()}, {how}, jit_compile={options['jit_compile']}"

    def run(self, steps: int) -> float:
        """Seconds to denoise ``steps`` batches into numpy arrays."""
        batches = [self.batches[i % len(self.batches)] for i in range(steps)]
        joined = None if self.on_batch else np.concatenate(batches)  # made before the clock starts
        start = time.perf_counter()
        if self.on_batch:
            for batch in batches:
                self.model.predict_on_batch(batch)
        else:
            self.model.predict(joined, batch_size=self.batch_size, verbose=0)
        return time.perf_counter() - start
