"""Every config in experiments/configs builds and trains 2 steps in smoke mode."""

import json

import jax
import jax.numpy as jnp
import pytest

import dae_jax
from dae_jax import configs
from dae_jax.nn import models
from tests.test_variants import REFERENCE

# The reference setup (and its ours variant) runs in the default test set; every other config in the full one (slow),
# the other reference configs' ours variants too.
FAST = ("conv32_adadelta", "conv32_adadelta:ours")
NAMES = dict.fromkeys([*configs.names(), *(f"{n}:ours" for n in REFERENCE)])
CONFIGS = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_in_smoke_mode(name, tmp_path, tfds_dir):
    config = configs.load(name)
    config.smoke = True
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    run = dae_jax.train(config, tmp_path)
    tested = json.loads((tmp_path / "eval.json").read_text())["num_test_images"]  # smoke: at most 256
    assert run.metrics["step"] == 2 and (tested == 256 if config.data.dataset == "mnist" else 1 <= tested <= 256)
    assert (tmp_path / "denoising.png").is_file() and (tmp_path / "loss.png").is_file()
    (seconds,) = json.loads((tmp_path / "timings.json").read_text())
    assert seconds["from_step"] == 0 and seconds["first_chunk"] > 0 and seconds["test"] > 0 and seconds["other"] >= 0
    model = models.from_config(config.model)
    x = jax.ShapeDtypeStruct((1, *config.image_shape), jnp.float32)
    code = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, method=model.encode)[0], x)
    whole = config.data.dataset == "photos"  # test images of their own sizes: shown whole, without code maps
    assert (tmp_path / "codes.png").is_file() == (code.ndim == 4 and not whole)  # spatial codes only
    for analysis in config.analyses:
        assert json.loads((tmp_path / f"{analysis}.json").read_text())


@pytest.mark.parametrize(
    "name,params,code_shape,image_shape",
    [
        ("conv32", 28_353, (7, 7, 32), (28, 28, 1)),
        ("conv32_16", 12_193, (7, 7, 16), (28, 28, 1)),
        # conv 1-16, bn, conv 16-32 s2, bn, conv 32-64 s2 (2x2x64), bn, dense 256-576 / tconv 64-32, 32-16, 16-1
        ("bn_dense576", 194_785, (576,), (28, 28, 1)),
        # conv 1-64, 64-64, 64-32 / 32-32, 32-64, 64-64, 64-1 (3x3 kernels + biases)
        ("conv64", 121_281, (4, 4, 32), (28, 28, 1)),
        ("unet32", 166_849, (7, 7, 64), (28, 28, 1)),
        ("unet32_residual", 166_849, (7, 7, 64), (28, 28, 1)),  # unet32's layers, a global skip
        # convs 1-32, 32-32, 32-64, 64-64, 64-128, 128-128 / 128-128, 128-64, 64-64, 64-32, 32-32, 32-1
        ("unet_deep_residual", 572_737, (7, 7, 128), (28, 28, 1)),
        # 1.5x wider: convs 1-48, 48-48, 48-96, 96-96, 96-192, 192-192 / 192-192, 192-96, 96-96, 96-48, 48-48, 48-1
        ("unet_wide_residual", 1_287_649, (7, 7, 192), (28, 28, 1)),
        ("dense64", 101_200, (64,), (28, 28, 1)),
        ("dense32", 50_992, (32,), (28, 28, 1)),
        # 784*16 + 16 + 16*784 + 784
        ("linear16", 25_888, (16,), (28, 28, 1)),
        # convs 3-32, 32-64, 64-64 / 64-64, 64-32, 32-32, 32-3 (3x3 kernels + biases)
        ("superres", 121_827, (12, 12, 64), (48, 48, 3)),
    ],
)
def test_preset_param_count_and_shapes(name, params, code_shape, image_shape):
    model = models.make(name)
    x = jnp.zeros((2, *image_shape))
    variables = model.init(jax.random.key(0), x)
    assert models.param_count(variables["params"]) == params
    assert model.apply(variables, x, method=model.encode).shape == (2, *code_shape)
    assert model.apply(variables, x).shape == (2, *image_shape)
