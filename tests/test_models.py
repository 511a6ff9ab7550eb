import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import models, ops


def test_conv32_param_count_and_shapes():
    model = models.make("conv32")
    x = jnp.zeros((2, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    # Keras model.summary() of the reference: 320 + 9248 + 9248 + 9248 + 289.
    assert models.param_count(params) == 28_353
    code = model.apply({"params": params}, x, method=model.encode)
    assert code.shape == (2, 7, 7, 32)
    assert model.apply({"params": params}, code, method=model.decode).shape == (2, 28, 28, 1)
    assert model.apply({"params": params}, x).shape == (2, 28, 28, 1)


def test_unknown_layer_spec_is_named():
    model = models.Autoencoder(encoder=("conv 8 relu", "maxout"), decoder=("conv 1",))
    with pytest.raises(ValueError, match="Unknown layer spec 'maxout'"):
        model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_upsample_nearest_repeats_pixels():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    up = ops.upsample_nearest(x)
    assert up.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(up[0, :2, :2, 0], jnp.zeros((2, 2)))
    np.testing.assert_array_equal(up[0, 2:, 2:, 0], jnp.full((2, 2), 3.0))


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="conv32"):
        models.make("resnet9000")
