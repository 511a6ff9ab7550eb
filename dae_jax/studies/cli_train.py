"""dae-jax's training timed through the command users run: the benchmark's ``dae-jax:cli`` variant.

``CliRunner.run(steps)`` runs ``dae-jax train`` on the preset's reference config in a fresh process,
two epochs of ``steps`` steps, and returns the seconds of the second epoch as the command records
them (metrics.jsonl's images/s: its input pipeline included, compilation excluded). Timed in the
same alternating rounds as the isolated step (``train_step.JaxRunner``), the two give issue 15's
"the CLI equals the step" as a ratio. ``startup_s`` is the latest run's launch-to-first-step seconds
(timings.json: imports, data, model, the first step's compilation), the data prepared by the
warm-up run before it.

``whole_command`` times one whole ``dae-jax train`` run from launch to exit (start-up, data,
training, validation, test evaluation, figures) and reads its test scores: issue 15's time to quality
through the command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
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
        self.description = _description("")

    def run(self, steps: int) -> float:
        """Seconds of the second epoch of a ``dae-jax train`` run of 2 epochs x ``steps`` steps."""
        workdir = Path(tempfile.mkdtemp(prefix="dae_jax_cli_bench_")) / "run"
        overrides = {
            "batch_size": self.batch_size,
            "num_epochs": 2,
            "max_steps_per_epoch": max(steps, 1),
            "max_eval_examples": self.batch_size,  # validation and test are not what is timed
        }
        try:
            train(self.config_path, workdir, overrides)
            epochs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
            first, second = (next(r for r in epochs if r.get("epoch") == e and "images_per_s" in r) for e in (1, 2))
            self.startup_s = json.loads((workdir / "timings.json").read_text())[-1]["startup"]
            source = json.loads((workdir / "metadata.json").read_text())["data_source"]
            # A small dataset's epoch is shorter than ``steps``: its fixed costs then weigh more, so say so.
            self.description = _description(f" ({second['step'] - first['step']} steps of {source})")
        finally:
            shutil.rmtree(workdir.parent, ignore_errors=True)
        return steps * self.batch_size / second["images_per_s"]


def _description(epoch: str) -> str:
    return (
        f"dae-jax train, the command in a fresh process per repeat: its second epoch of 2{epoch}, images/s as "
        "metrics.jsonl records it (input pipeline included, compilation excluded)"
    )


def train(config: str, workdir: Path, overrides: dict) -> None:
    """``dae-jax train --config=CONFIG --workdir=WORKDIR --config.KEY=VALUE...`` in a fresh process (this Python
    running the CLI's ``main``: what the console script runs, and no installed script needed); one line naming
    the failure if it exits non-zero."""
    command = [sys.executable, "-c", "from dae_jax.cli import main; main()", "train"]
    command += [f"--config={config}", f"--workdir={workdir}"]
    command += [f"--config.{k}={v}" for k, v in overrides.items()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)  # killed if it hangs
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"dae-jax train failed (exit {done.returncode}): {last}")


def epoch_seconds(records: list[dict], batch_size: int) -> list[float]:
    """Each epoch's training seconds from metrics.jsonl's records (or a Run's history): its steps' images over
    the images/s the loop measured (validation excluded); records without images/s are not epochs."""
    seconds, previous = [], 0
    for r in (r for r in records if "images_per_s" in r):
        seconds.append((r["step"] - previous) * batch_size / r["images_per_s"])
        previous = r["step"]
    return seconds


def whole_command(config: str, workdir: Path, overrides: dict) -> dict:
    """One ``dae-jax train`` run timed from launch to exit, with its test scores (eval.json) and where its
    seconds went (its timings.json record: start-up, data, training, validation, test, figures)."""
    start = time.perf_counter()
    train(config, workdir, overrides)
    seconds = time.perf_counter() - start
    scores = json.loads((workdir / "eval.json").read_text())
    timings = json.loads((workdir / "timings.json").read_text())[-1]
    return {
        "wall_seconds": seconds,
        "test_psnr": scores["psnr"],
        "test_ssim": scores["ssim"],
        "data_source": scores["data_source"],
        "timings": timings,
    }


def label(config: str) -> str:
    """The folder name of a ``--command`` CONFIG's runs (``LABEL_N``): the file's stem, then the variant."""
    name, _, variant = config.partition(":")
    return "_".join([Path(name).stem, *([variant] if variant else [])])


def fewest_epochs(config: str, epochs: list[int], target: float, workdir: Path, overrides: dict) -> dict:
    """Whole ``dae-jax train`` runs of ``config`` (``--command CONFIG=N1,N2,...``) for each of ``epochs``, ascending,
    stopping at the first whose test PSNR reaches ``target``; ``at_target`` is that run (None if none did)."""
    from dae_jax import configs

    name, _, variant = config.partition(":")
    path = f"{configs.find(name)}:{variant}" if variant else str(configs.find(name))
    runs = []
    for n in epochs:
        run = {"epochs": n, **whole_command(path, workdir / f"{label(config)}_{n}", {"num_epochs": n, **overrides})}
        runs.append(run)
        print(
            f"dae-jax train {config} x {n} epochs: {run['wall_seconds']:.1f} s, test psnr {run['test_psnr']:.2f} dB",
            flush=True,
        )
        if run["test_psnr"] >= target:
            return {"config": config, "runs": runs, "at_target": run}
    return {"config": config, "runs": runs, "at_target": None}
