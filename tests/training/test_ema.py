"""The parameters' exponential moving average (config.ema_decay): its update, what is evaluated, its resume."""

import json
from typing import Any

import flax.struct
import jax
import numpy as np
import pytest
from flax.training import train_state

from dae_jax import sharding
from dae_jax.training import checkpoints, steps
from dae_jax.training.state import create_train_state
from tests.conftest import setup_of


def test_moving_average_follows_the_warmed_up_decay_over_eight_devices(mnist_sample):
    """After step s the average is e + (1 - d)(p - e) with d = min(decay, (1 + s) / (10 + s)), from the
    initial parameters; the evaluated variables are the average, the trained parameters are not."""
    decay = 0.6
    setup = setup_of("conv32", optimizer="adam", ema_decay=decay)
    mesh = sharding.make_mesh()
    step = sharding.data_parallel(steps.make_train_step(setup), mesh, False)
    state = jax.device_put(create_train_state(setup, jax.random.key(0)), sharding.replicated(mesh))
    want = jax.tree.map(np.asarray, state.params)
    for s in range(1, 5):
        batch = {"image": mnist_sample["image"][32 * s : 32 * (s + 1)]}
        state, _ = step(state, sharding.global_batch(batch, mesh), jax.random.key(7))
        d = min(decay, (1 + s) / (10 + s))  # 2/11, 3/12, 4/13, then the decay itself
        want = jax.tree.map(lambda e, p, d=d: e + (1 - d) * (np.asarray(p) - e), want, state.params)
    for got, expected, params in zip(*map(jax.tree.leaves, (state.ema_params, want, state.params)), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        assert not np.allclose(got, params, atol=1e-4)  # it lags the parameters
    assert state.variables()["params"] is state.ema_params
    assert create_train_state(setup_of("conv32"), jax.random.key(0)).ema_params is None  # off by default


def test_moving_average_round_trips_through_a_checkpoint(tmp_path):
    setup = setup_of("conv32", ema_decay=0.99)
    state = create_train_state(setup, jax.random.key(0))
    state = state.replace(step=3, ema_params=jax.tree.map(lambda p: p + 0.25, state.params))
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    ckpts.save(state, setup.config)
    ckpts.close()
    restored = checkpoints.Checkpoints(tmp_path / "ckpt").restore(create_train_state(setup, jax.random.key(1))).state
    for a, b in zip(*map(jax.tree.leaves, (state.ema_params, restored.ema_params)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_resumed_run_evaluates_the_same_moving_average(tmp_path, run_train):
    """Two epochs straight and one epoch then a resume to two give the same average, bit for bit: the
    same test metrics."""
    small = ("--config.ema_decay=0.95", "--config.max_steps_per_epoch=6", "--config.max_eval_examples=64")
    run_train(tmp_path / "straight", *small, "--config.num_epochs=2")
    run_train(tmp_path / "resumed", *small, "--config.num_epochs=1")
    run_train(tmp_path / "resumed", *small, "--config.num_epochs=2")
    results = [json.loads((tmp_path / w / "eval.json").read_text()) for w in ("straight", "resumed")]
    assert results[0] == results[1] and results[0]["step"] == 12


class _StateBeforeEma(train_state.TrainState):
    """The train state as dae-jax saved it before the moving average existed."""

    batch_stats: Any = flax.struct.field(default_factory=dict)


def test_checkpoint_saved_before_the_moving_average_existed_still_loads(tmp_path):
    setup = setup_of("conv32")
    state = create_train_state(setup, jax.random.key(0))
    old = _StateBeforeEma.create(apply_fn=state.apply_fn, params=state.params, tx=setup.tx, batch_stats={})
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    ckpts.save(old.replace(step=5), setup.config)
    ckpts.close()
    restored = checkpoints.Checkpoints(tmp_path / "ckpt").restore(create_train_state(setup, jax.random.key(1))).state
    assert int(restored.step) == 5 and restored.ema_params is None
    for a, b in zip(*map(jax.tree.leaves, (state.params, restored.params)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
