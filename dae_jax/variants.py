"""The two variants of a reference config: "faithful" (its default) and "ours".

A reference config (experiments/configs) reproduces a Keras write-up. Its default, **faithful**
variant trains the way the write-up's own code does, which the config itself sets:

- Keras's layer initialisers: ``glorot_uniform`` kernels, zero biases (``model.kernel_init``);
  BatchNorm momentum 0.99 and epsilon 1e-3 (dae-jax's only BatchNorm);
- the write-up's data split: all 60,000 training images, with the test set as Keras's
  ``validation_data`` (``data.validation_fraction = 0``), or its own held-out split;
- its noise: drawn once per training image and reused every epoch (``train_noise = "fixed"``, the
  write-ups' precomputed ``x_train_noisy``), unless the write-up redraws it;
- its optimizer with Keras's defaults (``dae_jax.optimizers``), a constant learning rate, its batch size.

The **ours** variant (``configs.load("conv32_adadelta:ours")``; ``get_config("ours")``) trains
the same model with what dae-jax adds, one field each:

- fresh noise for every image at every step (``train_noise = "fresh"``): an endless training set;
- a validation split held out of the training images (the last 10%) instead of the test set;
- a linear warm-up over the first 5% of the steps, then cosine decay to zero, peaking at the
  learning rate the config gives for it;
- where the config says so, its own optimizer or a smaller batch (more updates per epoch).
"""

from __future__ import annotations

from ml_collections import ConfigDict

VARIANTS = ("faithful", "ours")


def keras_layers(config: ConfigDict) -> ConfigDict:
    """``config`` with Keras's layer initialisers (the faithful variant's model)."""
    config.model.kernel_init = "glorot_uniform"
    return config


def keras_optimizer(config: ConfigDict, name: str, learning_rate: float | None = None) -> ConfigDict:
    """``config`` trained by Keras's optimizer ``name`` (its defaults unless the write-up sets ``learning_rate``).

    Adam in Keras's form of the update (epsilon added before the bias correction: dae_jax.optimizers.adam).
    """
    config.optimizer, config.learning_rate = name, learning_rate
    if name == "adam":
        config.optimizer_kwargs.keras_form = True
    return config


def ours(
    config: ConfigDict, learning_rate: float, optimizer: str | None = None, batch_size: int | None = None
) -> ConfigDict:
    """The faithful ``config`` trained the dae-jax way (see the module docstring), peaking at ``learning_rate``,
    with ``optimizer`` (Keras's form, dae_jax.optimizers) and ``batch_size`` instead of the config's where given."""
    if batch_size is not None:
        config.batch_size = batch_size
    if optimizer is not None:
        config.optimizer_kwargs = ConfigDict()
        keras_optimizer(config, optimizer)
    config.train_noise = "fresh"
    if config.data.validation_fraction == 0:  # validated on the test set: hold out the last 10% instead
        config.data.validation_fraction = 0.1
    config.lr_schedule, config.learning_rate = "warmup_cosine", learning_rate
    config.lr_schedule_kwargs = ConfigDict({"warmup": 0.05})
    return config


def select(
    config: ConfigDict, variant: str, learning_rate: float, optimizer: str | None = None, batch_size: int | None = None
) -> ConfigDict:
    """The ``variant`` of a faithful reference ``config``; ``learning_rate`` (``optimizer``, ``batch_size``): the
    ours variant's."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)} (e.g. NAME:ours).")
    return config if variant == "faithful" else ours(config, learning_rate, optimizer, batch_size)
