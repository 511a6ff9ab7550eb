"""The reference configs' variants: faithful (the write-ups' recipe) by default, ours by name."""

import pytest

from dae_jax import configs
from dae_jax.data import pipeline

# Each reference config's faithful noise (fixed: the write-up's x_train_noisy; fresh: it redraws, or has none),
# held-out validation fraction (0: the test set validates) and learning rate (None: Keras's default).
REFERENCE = {
    "conv32_adadelta": ("fixed", 0, None),
    "conv32_16_adam": ("fixed", 0, None),
    "bn_dense576_sgd": ("fixed", 0.2, 0.5),
    "conv64_dae": ("fresh", 0, None),
    "dense32_dae": ("fixed", 0, None),
    "dense64_ae": ("fresh", 0, 0.01),
}


@pytest.mark.parametrize("name", REFERENCE)
def test_faithful_is_the_default_and_ours_changes_only_its_own_fields(name):
    faithful, ours = configs.load(name), configs.load(f"{name}:ours")
    noise, held_out, learning_rate = REFERENCE[name]
    assert faithful.model.kernel_init == "glorot_uniform" and faithful.train_noise == noise
    assert faithful.data.validation_fraction == held_out and faithful.lr_schedule == "constant"
    assert faithful.learning_rate == learning_rate
    assert faithful.optimizer_kwargs.get("keras_form", False) == (faithful.optimizer == "adam")  # Keras's Adam
    changed = {k for k in configs.base().to_dict() if faithful.to_dict()[k] != ours.to_dict()[k]}
    own = {"train_noise", "data", "lr_schedule", "learning_rate", "lr_schedule_kwargs", "optimizer", "optimizer_kwargs"}
    own.add("batch_size")  # a config's ours recipe may take a smaller batch (conv32_16_adam)
    assert {"lr_schedule", "lr_schedule_kwargs"} <= changed <= own
    assert ours.train_noise == "fresh" and ours.data.validation_fraction == (held_out or 0.1)
    configs.check(faithful), configs.check(ours)


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match=r"unknown variant 'keras'.*faithful.*ours"):
        configs.load("conv32_adadelta:keras")


@pytest.mark.parametrize(
    ("name", "held_out"), [("conv32_adadelta", None), ("conv32_adadelta:ours", 0.1), ("bn_dense576_sgd", 0.2)]
)
def test_split_sizes(name, held_out, tfds_dir):
    """Faithful: every training image trains and the test set validates; else the held-out fraction."""
    config = configs.load(name)
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    sizes = pipeline.prepare(config.data).sizes
    train_images, test_images = 4000, 1000  # the embedded sample: 5,000 real MNIST digits
    if held_out is None:
        assert sizes == {"train": train_images, "validation": test_images, "test": test_images}
    else:
        validation = round(held_out * train_images)
        assert sizes == {"train": train_images - validation, "validation": validation, "test": test_images}
    data = pipeline.read(pipeline.prepare(config.data))
    assert {k: len(v["image"]) for k, v in vars(data).items() if k != "source"} == sizes


def test_validation_fraction_zero_is_allowed_and_negative_named():
    config = configs.base()
    config.data.validation_fraction = 0.0
    configs.check(config)
    config.data.validation_fraction = -0.1
    with pytest.raises(ValueError, match="validation_fraction must be 0"):
        configs.check(config)


def test_unknown_train_noise_is_named():
    config = configs.base()
    config.train_noise = "once"
    with pytest.raises(ValueError, match="train_noise must be 'fresh' or 'fixed'"):
        configs.check(config)
