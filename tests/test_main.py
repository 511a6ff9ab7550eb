"""The entry points, run as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "conv32_adadelta.py"


def _train(cmd, workdir, tfds_dir, *overrides):
    args = [
        *cmd,
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        "--config.data.source=embedded",
        f"--config.data.data_dir={tfds_dir}",
        "--config.max_eval_examples=200",
        *overrides,
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_entry_point_trains_evaluates_and_resumes(tmp_path, tfds_dir):
    workdir = tmp_path / "run"
    out = _train([sys.executable, "experiments/main.py"], workdir, tfds_dir, "--config.num_epochs=2")
    assert "data source: embedded MNIST sample" in out
    result = json.loads((workdir / "eval.json").read_text())
    assert result["num_test_images"] == 200
    assert result["psnr"] > result["noisy_psnr"] + 1.0
    assert (workdir / "denoising.png").stat().st_size > 10_000
    assert json.loads((workdir / "metadata.json").read_text())["data_source"].startswith("embedded")
    assert [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert list((workdir / "tensorboard").iterdir())

    # Same workdir, one more epoch, through the console script: resumes at the saved step.
    dae_jax = Path(sys.executable).parent / "dae-jax"
    out = _train([str(dae_jax), "train"], workdir, tfds_dir, "--config.num_epochs=3")
    assert "resumed from" in out and "at step 56" in out
    epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert json.loads((workdir / "eval.json").read_text())["step"] == 84
