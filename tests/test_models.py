import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import models


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


def test_max_pool_matches_flax_reference_values_and_gradients():
    x = jax.random.normal(jax.random.key(1), (4, 14, 14, 8))
    ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    np.testing.assert_allclose(models.max_pool_2x2(x), ref(x), atol=1e-6)
    w = jax.random.normal(jax.random.key(2), (4, 7, 7, 8))
    g_fast = jax.grad(lambda x: jnp.sum(models.max_pool_2x2(x) * w))(x)
    g_ref = jax.grad(lambda x: jnp.sum(ref(x) * w))(x)
    np.testing.assert_allclose(g_fast, g_ref, atol=1e-5)


def test_same_padded_pool_matches_flax_on_odd_sizes():
    x = jax.random.normal(jax.random.key(3), (2, 7, 7, 4))
    np.testing.assert_allclose(models.max_pool_2x2(x, "same"), nn.max_pool(x, (2, 2), (2, 2), padding="SAME"))
    np.testing.assert_allclose(models.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))  # 'valid': 3x3


def test_unknown_layer_spec_is_named():
    model = models.Autoencoder(encoder=("conv 8 relu", "maxout"), decoder=("conv 1",))
    with pytest.raises(ValueError, match="Unknown layer spec 'maxout'"):
        model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_upsample_nearest_repeats_pixels():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    up = models.upsample_nearest(x)
    assert up.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(up[0, :2, :2, 0], jnp.zeros((2, 2)))
    np.testing.assert_array_equal(up[0, 2:, 2:, 0], jnp.full((2, 2), 3.0))


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="conv32"):
        models.make("resnet9000")
