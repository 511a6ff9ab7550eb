"""Every config in experiments/configs builds and trains 2 steps in smoke mode."""

import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from dae_jax import models, training

CONFIGS = sorted(
    p.stem
    for p in (Path(__file__).parents[1] / "experiments" / "configs").glob("*.py")
    if p.stem not in ("__init__", "base")
)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_in_smoke_mode(name, tmp_path, tfds_dir):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    config.smoke = True
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    run = training.train_and_evaluate(config, tmp_path)
    assert run.metrics["step"] == 2 and json.loads((tmp_path / "eval.json").read_text())["num_test_images"] == 256
    assert (tmp_path / "denoising.png").is_file() and (tmp_path / "loss.png").is_file()
    spatial = name.startswith("conv")  # the dense and bn_dense576 codes are vectors
    assert (tmp_path / "codes.png").is_file() == spatial


@pytest.mark.parametrize(
    "name,params,code_shape",
    [
        ("conv32", 28_353, (7, 7, 32)),
        ("conv32_16", 12_193, (7, 7, 16)),
        ("dense64", 101_200, (64,)),
        ("dense32", 50_992, (32,)),
    ],
)
def test_preset_param_count_and_shapes(name, params, code_shape):
    model = models.make(name)
    x = jnp.zeros((2, 28, 28, 1))
    variables = model.init(jax.random.key(0), x)
    assert models.param_count(variables["params"]) == params
    assert model.apply(variables, x, method=model.encode).shape == (2, *code_shape)
    assert model.apply(variables, x).shape == (2, 28, 28, 1)
