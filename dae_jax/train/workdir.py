"""A run's workdir: its lock and the files it writes beside its checkpoints.

``Lock``: one run per workdir at a time (``dae_jax.lock``, with host and pid). ``metadata.json``
(``run_metadata``: config, data source, versions, devices, git commit), ``metrics.jsonl`` and
TensorBoard events (``MetricWriter``: one record per epoch, process 0 only), ``eval.json``
(``strict_json``). ``read_history`` reads the records back. ``check_writable`` looks without
creating anything: a refused start leaves no trace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
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

log = logging.getLogger(__name__)


LOCK = "dae_jax.lock"


def check_writable(workdir: str | os.PathLike) -> Path:
    """``workdir`` as a Path; ValueError when it is a file or could not be created and written (nothing made)."""
    workdir = Path(workdir)
    existing = next(p for p in (workdir, *workdir.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"workdir {str(workdir)!r} cannot be made: {existing} is a file; pass another --workdir.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"workdir {str(workdir)!r} cannot be written ({existing} is read-only); pass another one.")
    return workdir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Lock:
    """``with Lock(workdir):`` the workdir belongs to this run; a second run is refused in one line.

    The lock file holds the host, pid and start time. A lock whose process is gone (same host, pid not
    running) is taken over, saying so; one of another host is never guessed at. Released on exit; a
    workdir this lock created and left empty is removed again, so a refused start changes nothing.
    """

    def __init__(self, workdir: Path):
        self.workdir, self.path = Path(workdir), Path(workdir) / LOCK
        self.created = False

    def _holder(self) -> dict:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            return {}  # damaged or vanished: nobody can be shown to hold it

    def __enter__(self) -> Lock:
        self.created = not self.workdir.exists()
        self.workdir.mkdir(parents=True, exist_ok=True)
        me = {"host": platform.node(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            with os.fdopen(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as f:
                f.write(json.dumps(me))
            return self
        except FileExistsError:
            holder = self._holder()
        if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
            log.warning("taking over the lock of process %d, which is no longer running", holder["pid"])
            files.write_text(self.path, json.dumps(me))
            return self
        self._remove_created()
        raise ValueError(
            f"workdir {self.workdir} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"since {holder.get('started', '?')}; wait for that run to end (or delete {self.path} if it is gone)."
        )

    def __exit__(self, *exc) -> None:
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self._remove_created()

    def _remove_created(self) -> None:
        if self.created and self.workdir.is_dir() and not any(self.workdir.iterdir()):
            self.workdir.rmdir()


@contextlib.contextmanager
def run_lock(workdir: Path):
    """``Lock(workdir)`` for a run of any number of processes: process 0 holds it for all of them."""
    if jax.process_count() == 1:
        with Lock(workdir):
            yield
        return
    import numpy as np
    from jax.experimental import multihost_utils

    lock, error = Lock(workdir), None
    if jax.process_index() == 0:
        try:
            lock.__enter__()
        except ValueError as e:
            error = e
    if not multihost_utils.broadcast_one_to_all(np.int32(error is None)):
        raise error or ValueError(f"workdir {workdir} is in use by another run (process 0 says why).")
    try:
        yield
    finally:
        if jax.process_index() == 0:
            lock.__exit__()


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
