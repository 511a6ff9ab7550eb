"""A run's workdir and the files it writes beside its checkpoints.

``metadata.json`` (``run_metadata``: config, data source, versions, devices, git commit),
``metrics.jsonl`` and TensorBoard events (``MetricWriter``: one record per epoch, process 0
only), ``eval.json`` (``strict_json``). ``read_history`` reads the records back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import jax
import ml_collections

from dae_jax import files
from dae_jax.data.sources import Source


def writable(workdir: str | os.PathLike) -> Path:
    """``workdir``, created if needed; ValueError when it cannot be written."""
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write_test.{jax.process_index()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"workdir {str(workdir)!r} cannot be written ({e.strerror}); pass a writable --workdir."
        ) from None
    return workdir


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def run_metadata(config: ml_collections.ConfigDict, source: Source, loop: str) -> dict:
    """What a result needs to be traced back: config, data source, training loop, versions, devices, git commit."""
    import flax
    import optax

    from dae_jax import __version__

    return {
        "config": config.to_dict(),
        "data_source": source.description,
        "training_loop": loop,
        "data": dataclasses.asdict(source),  # the resolved source, to read the run's data again
        "versions": {
            "dae_jax": __version__,
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "python": platform.python_version(),
        },
        "devices": [str(d) for d in jax.devices()],
        "process_count": jax.process_count(),
        "git_commit": _git_commit(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def strict_json(result: dict) -> dict:
    """``result`` with non-finite floats as None, for strict JSON (the PSNR of an uncorrupted input is inf)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def read_history(workdir: str | os.PathLike) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl``."""
    return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def _record_step(line: str) -> float:
    """The step of one metrics.jsonl line; infinity for a line a kill cut short."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError):
        return math.inf


class MetricWriter:
    """Appends one JSON line per record to ``metrics.jsonl`` and scalars to TensorBoard (process 0 only)."""

    def __init__(self, workdir: Path, resumed_step: int):
        from flax.metrics import tensorboard

        self.path = workdir / "metrics.jsonl"
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        if self.path.exists():  # drop records a killed run wrote after its last checkpoint, and a torn last line
            kept = [x for x in self.path.read_text().splitlines() if _record_step(x) <= resumed_step]
            files.write_text(self.path, "".join(f"{x}\n" for x in kept))  # a kill leaves the old or the new file
        self.tb = tensorboard.SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **record}) + "\n")
        for k, v in record.items():
            if isinstance(v, (int, float)):
                self.tb.scalar(k, v, step)
        self.tb.flush()
