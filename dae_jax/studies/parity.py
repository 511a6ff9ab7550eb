"""The parity study's parts that run in their own process or are tested alone (experiments/parity.py runs it).

``train_keras`` is the write-up's Keras 3 code (``write_up``), run in a spawned process (TensorFlow's threads
must not share a process with JAX); ``summary`` and ``difference`` are the table's statistics. ``keras_fit`` is
the Keras side of the time-to-quality study: the write-up's ``fit`` for a faithful config, else a fresh-noise step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def load_config(name: str, args: argparse.Namespace):
    """The faithful config ``name`` reading its data from --source / --data_dir."""
    from dae_jax import configs

    config = configs.load(name)
    config.data.source, config.data.data_dir = args.source, args.data_dir
    return config


def write_up(recipe, train_images: np.ndarray, test_images: np.ndarray, seed: int, jit_compile: bool = False) -> tuple:
    """The write-up's Keras model and arrays: (the compiled model ending in a sigmoid, x_train_noisy, x_train,
    x_test_noisy, x_test), float32 in [0, 1], the noise drawn once with numpy's generator seeded ``seed``."""
    import keras

    from dae_jax.studies.peers import keras_models

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, x_test = (train_images / 255.0).astype(np.float32), (test_images / 255.0).astype(np.float32)

    def noisy(x):
        return np.clip(x + recipe.sigma * rng.normal(size=x.shape), 0.0, 1.0).astype(np.float32)

    x_train_noisy, x_test_noisy = noisy(x_train), noisy(x_test)
    model = keras.Sequential([keras_models.build(recipe), keras.layers.Activation("sigmoid")])
    model.compile(optimizer=keras_models.make_optimizer(recipe), loss="binary_crossentropy", jit_compile=jit_compile)
    return model, x_train_noisy, x_train, x_test_noisy, x_test


def keras_fit(config, recipe, data, jit_compile: bool) -> tuple:
    """(model, ``fit``'s data arguments, the activation that makes its outputs images) for ``config.train_noise``:
    "fixed" is the write-up's own code (parity.write_up: noise drawn once, ``shuffle=True``, the noisy test set as
    ``validation_data``, a sigmoid output); "fresh" is the Denoiser, whose train step corrupts each batch anew."""
    import keras
    import tensorflow as tf

    from dae_jax.data import pipeline
    from dae_jax.nn import losses
    from dae_jax.studies.peers import keras_models

    images = data.train["image"]
    steps = len(images) // config.batch_size
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    if config.train_noise == "fixed":
        used = images[: steps * config.batch_size]
        model, x_noisy, x, x_test_noisy, x_test = write_up(recipe, used, data.test["image"], config.seed, jit_compile)
        arguments = {"x": x_noisy, "y": x, "batch_size": config.batch_size, "shuffle": True}
        return model, arguments | {"validation_data": (x_test_noisy, x_test)}, np.asarray
    keras.utils.set_random_seed(config.seed)
    model = keras_models.compiled(recipe, jit_compile, seed=config.seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .shuffle(len(images), seed=pipeline.epoch_seed(config.seed, 0), reshuffle_each_iteration=True)
        .batch(config.batch_size, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )
    return model, {"x": dataset, "steps_per_epoch": steps}, losses.OUTPUT_ACTIVATIONS[config.loss]


def train_keras(
    name: str, seed: int, noisy_test: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, float, str]:
    """The write-up's Keras code (see the module docstring) in this process: (outputs on ``noisy_test``, fit's
    seconds, the Keras version). Run in a process of its own: TensorFlow's threads must not share it with JAX."""
    from dae_jax.data import pipeline
    from dae_jax.studies.peers import keras_models, specs

    config = load_config(name, args)
    data = pipeline.load(config.data)  # validation_fraction 0: all 60,000 training images
    n = len(data.train["image"]) if args.max_steps_per_epoch is None else args.max_steps_per_epoch * config.batch_size
    model, *arrays = write_up(specs.recipe(config.model.name), data.train["image"][:n], data.test["image"], seed)
    x_train_noisy, x_train, x_test_noisy, x_test = arrays
    start = time.perf_counter()
    model.fit(x_train_noisy, x_train, epochs=config.num_epochs, batch_size=config.batch_size, shuffle=True,
              validation_data=(x_test_noisy, x_test), verbose=0)  # fmt: skip
    seconds = time.perf_counter() - start
    return model.predict(noisy_test, batch_size=1000, verbose=0), seconds, keras_models.version()


def summary(values: list[float]) -> dict:
    mean = float(np.mean(values))
    return {"mean": mean, "std": float(np.std(values, ddof=1)) if len(values) > 1 else None, "n": len(values)}


def difference(a: list[float], b: list[float]) -> dict:
    """mean(a) - mean(b) with its 95% Welch t interval (None with fewer than 2 runs a side)."""
    from scipy import stats

    diff = float(np.mean(a) - np.mean(b))
    if min(len(a), len(b)) < 2:
        return {"diff": diff, "ci95": None}
    if np.var(a) + np.var(b) == 0:  # no spread: the t statistic is undefined, the interval is the point
        return {"diff": diff, "ci95": [diff, diff]}
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return {"diff": diff, "ci95": [float(ci.low), float(ci.high)]}
