import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import configs
from dae_jax.nn import models, noise_level
from dae_jax.setup import Setup


def _smooth_image(channels: int) -> np.ndarray:
    y, x = np.mgrid[0:28, 0:28] / 28.0
    base = 0.5 + 0.3 * np.sin(3 * x) * np.cos(2 * y)
    return np.repeat(base[None, :, :, None], channels, axis=-1).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.3])
def test_estimate_reads_the_std_of_gaussian_noise_on_a_smooth_image(sigma, channels):
    noise = np.random.default_rng(0).standard_normal((16, 28, 28, channels)).astype(np.float32)
    estimates = noise_level.estimate(jnp.asarray(_smooth_image(channels) + sigma * noise))
    assert estimates.shape == (16,)
    np.testing.assert_allclose(estimates, sigma, rtol=0.08)  # 676 pixels per image: a few % of sampling error
    # a noise-free smooth image reads (almost) zero: the mask cancels locally quadratic content
    assert float(noise_level.estimate(jnp.asarray(_smooth_image(channels)))[0]) < 0.1 * 0.02


def test_with_channel_appends_each_images_estimate_as_a_constant_channel():
    x = jnp.asarray(_smooth_image(1) + 0.1 * np.random.default_rng(1).standard_normal((2, 28, 28, 1)), jnp.float32)
    out = noise_level.with_channel(x)
    assert out.shape == (2, 28, 28, 2)
    np.testing.assert_array_equal(out[..., :1], x)
    np.testing.assert_allclose(out[..., 1], noise_level.estimate(x)[:, None, None] * jnp.ones((2, 28, 28)))


def test_noise_level_layer_conditions_a_model_through_a_config_override():
    config = configs.load("conv32_16_adam")
    encoder = ("noise_level", "conv 32 relu", "pool", "conv 16 relu", "pool")
    configs.override(config, "model.encoder", repr(encoder))
    setup = Setup.from_config(config)
    assert setup.model.encoder == encoder
    x = jnp.full((2, 28, 28, 1), 0.5)
    params = setup.model.init(jax.random.key(0), x)["params"]
    assert params["encoder_layers_1_0"]["kernel"].shape == (3, 3, 2, 32)  # the image and its noise level
    assert setup.output({"params": params}, x).shape == (2, 28, 28, 1)


def test_a_model_field_no_preset_has_is_named():
    config = configs.load("conv32_16_adam")
    configs.override(config, "model.encodr", "('conv 8',)")  # accepted into config.model, refused when built
    with pytest.raises(ValueError, match=r"config.model: model 'conv32_16' has no field 'encodr'; its fields are"):
        Setup.from_config(config)
    with pytest.raises(ValueError, match=r"model 'linear16' has no field 'kernl_init'"):
        models.from_config({"name": "linear16", "kernl_init": "glorot_uniform"})
    with pytest.raises(ValueError, match=r"config has no field 'modl'; did you mean 'model'"):
        configs.override(config, "modl.encoder", "()")  # only config.model takes new keys
