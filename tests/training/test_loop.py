"""The entry points, run as a user runs them."""

import json
import os
import sys
from pathlib import Path

import pytest

from dae_jax.training import timings


def _users_xla_flags() -> dict[str, str]:
    """The environment without conftest's ``--xla_backend_optimization_level=0`` (faster compiles): its rounding
    sent this 62-step adadelta run off course in epoch 2 on a Zen 4 CPU (test PSNR 9.58 dB, noisy input 9.38;
    12.57 dB with XLA's default optimization, as a user runs it)."""
    flags = os.environ.get("XLA_FLAGS", "").replace("--xla_backend_optimization_level=0", "")
    return {**os.environ, "XLA_FLAGS": flags}


@pytest.mark.slow
def test_entry_point_trains_evaluates_and_resumes(tmp_path, run_train):
    workdir = tmp_path / "run"
    out = run_train(workdir, "--config.num_epochs=2", "--config.max_eval_examples=200", env=_users_xla_flags()).stdout
    assert "data source: embedded MNIST sample" in out
    result = json.loads((workdir / "eval.json").read_text())
    assert result["num_test_images"] == 200
    assert result["psnr"] > result["noisy_psnr"] + 1.0
    assert (workdir / "denoising.png").stat().st_size > 10_000
    metadata = json.loads((workdir / "metadata.json").read_text())
    assert metadata["data_source"].startswith("embedded") and metadata["versions"]["jax"]
    assert metadata["config"]["optimizer"] == "adadelta" and len(metadata["devices"]) == 8
    assert [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert list((workdir / "tensorboard").iterdir())
    (seconds,) = json.loads((workdir / "timings.json").read_text())  # where the wall-clock went
    assert all(seconds[k] > 0 for k in ("prepare", "first_chunk", "train", "validation", "checkpoints", "test"))
    assert abs(sum(seconds[k] for k in (*timings.PHASES, "other")) - seconds["total"]) < 0.01
    assert 0 < seconds["compile"] < seconds["total"]
    assert seconds["launch"] + seconds["prepare"] < seconds["startup"] < seconds["launch"] + seconds["total"]
    assert "seconds: prepare" in out

    # Same workdir, one more epoch, through the console script: resumes at the saved step.
    dae_jax = str(Path(sys.executable).parent / "dae-jax")
    resume = ("--config.num_epochs=3", "--config.max_eval_examples=200")
    out = run_train(workdir, *resume, entry=(dae_jax, "train"), env=_users_xla_flags()).stdout
    saved = 2 * (4000 // 128)  # two epochs of the embedded sample's 4,000 training digits (the test set validates)
    assert "resumed from" in out and f"at step {saved}" in out
    epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert json.loads((workdir / "eval.json").read_text())["step"] == saved // 2 * 3
    records = json.loads((workdir / "timings.json").read_text())
    assert [r["from_step"] for r in records] == [0, saved] and records[1]["first_chunk"] > 0
