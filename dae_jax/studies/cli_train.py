"""dae-jax's training timed through the command users run: the benchmark's ``dae-jax:cli`` variant.

``CliRunner.run(steps)`` runs ``dae-jax train`` on the preset's reference config in a fresh process,
two epochs of ``steps`` steps, and returns the seconds of the second epoch as the command records
them (metrics.jsonl's images/s: its input pipeline included, compilation excluded). Timed in the
same alternating rounds as the isolated step (``train_step.JaxRunner``), the two give issue 15's
"the CLI equals the step" as a ratio. ``startup_s`` is the latest run's launch-to-first-step seconds
(timings.json: imports, data, model, the first step's compilation), the data prepared by the
warm-up run before it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TIMEOUT_S = 1800  # a run of two short epochs that takes longer has hung


class CliRunner:
    """``dae-jax train`` of ``recipe``'s config at ``batch_size``; the benchmark's images are not used (the command
    reads its own data, as a user's run does: the MNIST IDX files of DAE_JAX_MNIST_DIR, else the embedded digits)."""

    VARIANTS = ("cli",)
    DEFAULT_VARIANT = "cli"

    def __init__(self, recipe, batch_size: int, images: np.ndarray, variant: str | None = "cli"):
        import jax

        from dae_jax import configs
        from dae_jax.nn import models
        from dae_jax.setup import Setup
        from dae_jax.training.state import create_train_state

        if variant not in self.VARIANTS:
            raise ValueError(f"dae-jax CLI variant {variant!r}; choose one of {self.VARIANTS}.")
        if not recipe.config:
            raise ValueError(f"preset {recipe.preset!r} has no config file for dae-jax train to run.")
        self.config_path = str(configs.find(recipe.config))
        setup = Setup.from_config(configs.load(recipe.config), training=False)
        self.params = models.param_count(jax.eval_shape(lambda: create_train_state(setup).params))
        self.batch_size = batch_size
        self.startup_s = None
        self.description = (
            "dae-jax train, the command in a fresh process per repeat: its second epoch of 2, images/s as "
            "metrics.jsonl records it (input pipeline included, compilation excluded)"
        )

    def run(self, steps: int) -> float:
        """Seconds of the second epoch of a ``dae-jax train`` run of 2 epochs x ``steps`` steps."""
        workdir = Path(tempfile.mkdtemp(prefix="dae_jax_cli_bench_")) / "run"
        overrides = {
            "batch_size": self.batch_size,
            "num_epochs": 2,
            "max_steps_per_epoch": max(steps, 1),
            "max_eval_examples": self.batch_size,  # validation and test are not what is timed
        }
        command = [sys.executable, "-c", "from dae_jax.cli import main; main()", "train"]
        command += [f"--config={self.config_path}", f"--workdir={workdir}"]
        command += [f"--config.{k}={v}" for k, v in overrides.items()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)  # killed if it hangs
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise RuntimeError(f"dae-jax train failed (exit {done.returncode}): {last}")
            epochs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
            second = next(r for r in epochs if r.get("epoch") == 2 and "images_per_s" in r)
            self.startup_s = json.loads((workdir / "timings.json").read_text())[-1]["startup"]
        finally:
            shutil.rmtree(workdir.parent, ignore_errors=True)
        return steps * self.batch_size / second["images_per_s"]
