"""Crash safety, exact resume, NaN stops, config/checkpoint mismatch, and errors for bad input."""

import json
import random
import re
import time

import jax
import ml_collections
import numpy as np
import pytest

from dae_jax import configs
from dae_jax.training import checkpoints, loop
from dae_jax.training import workdir as workdir_lib
from dae_jax.training.state import create_train_state
from tests.conftest import setup_of
from tests.data.test_folders import draw

# A run of 3 epochs x 8 steps of 64 images, checkpointed every 2 steps.
SMALL = (
    "--config.batch_size=64",
    "--config.eval_batch_size=64",
    "--config.max_steps_per_epoch=8",
    "--config.max_eval_examples=64",
    "--config.num_epochs=3",
    "--config.checkpoint_every_steps=2",
    "--config.log_every_steps=1",
)


def _final_params(workdir, image_shape=(28, 28, 1)):
    template = create_train_state(setup_of("conv32", image_shape=image_shape), jax.random.key(9))
    state = checkpoints.Checkpoints(workdir / "checkpoints").restore(template).state
    return int(state.step), jax.tree.leaves((state.params, state.opt_state))


def _streamed_folder(directory) -> tuple[str, ...]:
    """Overrides that train on a generated folder of 64 RGB/gray pictures of 20-48 px, streamed as gray: random
    16x16 crops (16 per picture per epoch) with flips, JPEG-compressed on the host (quality drawn per example)."""
    rng = np.random.default_rng(3)
    for i in range(64):
        h, w = (int(v) for v in rng.integers(20, 48, 2))
        draw(directory / f"d{i % 4}" / f"{i}.png", h, w, i, gray=i % 3 == 0)
    return (
        "--config.data.dataset=image_folder",
        "--config.data.source=auto",
        f"--config.data.image_dir={directory}",
        "--config.image_shape=(16, 16, 1)",
        "--config.data.flip=True",
        "--config.data.views_per_image=16",
        "--config.corruption={'name': 'jpeg', 'quality': [10, 40]}",
    )


@pytest.mark.slow
@pytest.mark.parametrize("feed", ["device_loop", "tfdata_loop", "stream"])
def test_run_killed_at_random_moments_ends_bit_identical(tmp_path, run_train, feed):
    data = {
        "device_loop": ("--config.device_resident=True",),
        "tfdata_loop": ("--config.device_resident=False",),
        "stream": _streamed_folder(tmp_path / "pictures") if feed == "stream" else (),
    }[feed]
    small = (*SMALL, *data)
    run_train(tmp_path / "straight", *small)
    rng = random.Random()  # a different set of moments on every run of the suite
    killed = tmp_path / "killed"
    delays = [rng.uniform(5.0, 16.0) for _ in range(2)]
    for delay in delays:
        proc = run_train(killed, *small, popen=True)
        time.sleep(delay)
        proc.kill()  # SIGKILL: no cleanup, possibly mid-step or mid-checkpoint
        proc.wait()
    run_train(killed, *small)
    runs = (tmp_path / "straight", killed)
    shape = (16, 16, 1) if feed == "stream" else (28, 28, 1)
    step_a, leaves_a = _final_params(tmp_path / "straight", shape)
    step_b, leaves_b = _final_params(killed, shape)
    assert step_a == step_b == 24, delays
    for a, b in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"kill delays {delays}")
    eval_a = json.loads((tmp_path / "straight" / "eval.json").read_text())
    eval_b = json.loads((killed / "eval.json").read_text())
    assert eval_a["psnr"] == eval_b["psnr"]
    # The run's record is as exact as its parameters: every number of metrics.jsonl but the wall-clock rate.
    records = [[{k: v for k, v in r.items() if k != "images_per_s"} for r in workdir_lib.read_history(w)] for w in runs]
    assert [r["epoch"] for r in records[1]] == [1, 2, 3], delays  # no epoch logged twice
    assert records[0] == records[1], delays


def _saved_steps(directory, steps):
    """Checkpoints of a fresh conv32 state under ``directory`` at each of ``steps``."""
    state = create_train_state(setup_of("conv32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(directory)
    for step in steps:
        ckpts.save(state.replace(step=step), configs.base())
    return ckpts, state


def test_damaged_checkpoint_is_refused_then_previous_step_resumes(tmp_path):
    ckpts, state = _saved_steps(tmp_path / "ckpt", [2, 4, 6])
    victim = max(
        (p for p in (tmp_path / "ckpt" / "6").rglob("*") if p.is_file() and p.name != checkpoints.MANIFEST),
        key=lambda p: p.stat().st_size,
    )
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated on disk
    config = configs.base()
    with pytest.raises(checkpoints.CheckpointError) as error:
        ckpts.resume(state, config, 1)[0]
    assert "step 6" in str(error.value) and victim.name in str(error.value)
    assert "--config.restore_step=4" in str(error.value)
    config.restore_step = 4
    assert int(ckpts.resume(state, config, 1)[0].step) == 4
    assert ckpts.all_steps() == [2, 4]  # the damaged later step is gone


def test_interrupted_checkpoint_write_is_discarded(tmp_path):
    ckpts, state = _saved_steps(tmp_path / "ckpt", [2, 4])
    (tmp_path / "ckpt" / "4" / checkpoints.MANIFEST).unlink()  # as if killed right after orbax's rename
    assert int(ckpts.resume(state, configs.base(), 1)[0].step) == 2
    assert ckpts.all_steps() == [2]


@pytest.mark.slow
def test_nan_loss_stops_at_once_and_keeps_last_good_checkpoint(tmp_path, run_train):
    workdir = tmp_path / "run"
    proc = run_train(
        workdir,
        *SMALL,
        "--config.optimizer=sgd",
        "--config.learning_rate=1e30",
        "--config.checkpoint_every_steps=1",
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert ("loss is nan" in error.lower() or "parameters are not finite" in error) and "learning rate" in error
    bad_step = int(re.search(r" at step (\d+)", error).group(1))
    ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
    assert ckpts.latest_step() == bad_step - 1
    template = create_train_state(setup_of("conv32", optimizer="sgd"), jax.random.key(0))
    state = ckpts.restore(template).state
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


def test_config_mismatch_is_refused_with_fields_listed(tmp_path):
    config = configs.base()
    state = create_train_state(setup_of("conv32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    ckpts.save(state, config)
    other = ml_collections.ConfigDict(config.to_dict())
    other.optimizer, other.loss, other.image_shape = "adam", "mse", (32, 32, 3)
    expected = r"image_shape: \[28, 28, 1\] -> \[32, 32, 3\]; loss: 'bce' -> 'mse'; optimizer: 'adadelta' -> 'adam'"
    with pytest.raises(checkpoints.CheckpointError, match=expected):
        ckpts.resume(state, other, 1)[0]
    assert int(ckpts.resume(state, config, 1)[0].step) == 0  # the same config resumes


def test_resuming_with_another_training_loop_is_refused(tmp_path):
    """The device-resident and the host loop order an epoch's images differently: resumed mid-epoch by the
    other one, a run would see some images twice and others never."""
    config = configs.base()
    state = create_train_state(setup_of("conv32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    ckpts.save(state, config, {"epoch_losses": [0.5], "steps_per_epoch": 4, "order": "device-resident"})
    expected = r"training loop: device-resident -> host \(its data order; resume with --config.device_resident=True\)"
    with pytest.raises(checkpoints.CheckpointError, match=expected):
        ckpts.resume(state, config, 4, order="host")
    assert ckpts.resume(state, config, 4, order="device-resident")[1]["order"] == "device-resident"


def _override(**fields):
    config = configs.base()
    for path, value in fields.items():
        configs.set_field(config, path.replace("__", "."), value)
    return config


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"batch_size": 12}, "does not split evenly over 8 devices"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"eval_batch_size": 100}, "eval_batch_size|batch_size=100 does not split"),
        ({"num_epochs": 0}, "num_epochs must be a positive integer"),
        ({"loss": "l1"}, r"config.loss: unknown loss 'l1'; choose one of \['bce', 'mse', 'psnr'\]"),
        ({"optimizer": "rmsprop"}, r"Unknown optimizer 'rmsprop'; choose one of \['adadelta', 'adam', 'sgd'\]"),
        ({"learning_rate": -1.0}, "learning_rate must be a number > 0"),
        ({"ema_decay": 1.0}, r"ema_decay must be None \(off\) or in \(0, 1\)"),
        ({"optimizer_kwargs": {"momentum": 0.9}}, "Optimizer 'adadelta' has no parameter 'momentum'"),
        ({"corruption__name": "speckle"}, "Unknown corruption 'speckle'"),
        ({"corruption__sigma": -0.5}, "sigma must be a finite number >= 0"),
        ({"model__name": "unet"}, "Unknown model 'unet'"),
        ({"data__source": "kaggle"}, "has no data source 'kaggle'"),
        ({"data__validation_fraction": 1.5}, r"validation_fraction must be 0 \(validate on test\) or in \[0.01"),
        ({"image_shape": (32, 32, 1)}, r"the data's images are \(28, 28, 1\) \(H, W, C\) but config.image_shape is"),
        ({"data__source": "idx"}, "needs a directory"),
        ({"data__source": "idx", "data__idx_dir": "/nonexistent/mnist"}, "does not exist"),
    ],
)
def test_bad_config_gets_one_clear_error(tmp_path, fields, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        loop.train_and_evaluate(_override(**fields), tmp_path / "w")


def test_empty_data_dir_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    config = _override(data__source="idx", data__idx_dir=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"has no train-images-idx3-ubyte.*found: \[\]"):
        loop.train_and_evaluate(config, tmp_path / "w")


def test_unwritable_workdir_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot be made: .*file is a file"):
        loop.train_and_evaluate(configs.base(), blocker / "run")


def test_missing_restore_step_is_named(tmp_path):
    state = create_train_state(setup_of("conv32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    ckpts.save(state, configs.base())
    config = configs.base()
    config.restore_step = 5
    with pytest.raises(checkpoints.CheckpointError, match=r"no checkpoint step 5 .* it has \[0\]"):
        ckpts.resume(state, config, 1)[0]


@pytest.mark.slow  # two runs on a streamed folder: 25 s on 2 cores
def test_resuming_on_a_changed_image_folder_is_refused(tmp_path):
    """A streamed folder's epoch order depends on its listing: a resume after files changed would not be exact."""
    for i in range(24):
        draw(tmp_path / "pictures" / f"{i}.png", 20 + i, 30, i)
    config = configs.base()
    config.data.dataset, config.data.image_dir = "image_folder", str(tmp_path / "pictures")
    config.data.data_dir, config.image_shape, config.smoke = str(tmp_path / "tfds"), (16, 16, 1), True
    config.batch_size, config.eval_batch_size = 8, 8
    loop.train_and_evaluate(config, tmp_path / "run")
    draw(tmp_path / "pictures" / "new.png", 40, 40, 99)
    with pytest.raises(checkpoints.CheckpointError, match=r"data: image_folder/d\w+/1.0.0 -> image_folder/d\w+/1.0.0"):
        loop.train_and_evaluate(config, tmp_path / "run")
