"""A run's workdir: its lock and the files it writes beside its checkpoints.

``Lock``: one run per workdir at a time (``dae_jax.lock``, with host and pid). ``metadata.json``
(``run_metadata``: config, data source, versions, devices, git commit), ``metrics.jsonl`` and
TensorBoard events (``MetricWriter``: one record per epoch, process 0 only), ``eval.json``
(``strict_json``); ``timings.json`` is ``dae_jax.training.timings``'. ``read_history`` reads the
records back. ``check_writable`` looks without creating anything: a refused start leaves no trace.
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
from dae_jax.training import event_file

log = logging.getLogger(__name__)


LOCK = "dae_jax.lock"


# What a dae-jax workdir holds: a folder with none of these and other files is someone else's.
MARKERS = ("checkpoints", "metadata.json", "metrics.jsonl", "eval.json", LOCK)


def check_writable(workdir: str | os.PathLike) -> Path:
    """``workdir`` as a Path; ValueError when it is a file, could not be created and written, or is a folder of
    other files (a user's folder, not a dae-jax workdir). Nothing is made."""
    workdir = Path(workdir)
    existing = next(p for p in (workdir, *workdir.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"workdir {str(workdir)!r} cannot be made: {existing} is a file; pass another --workdir.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"workdir {str(workdir)!r} cannot be written ({existing} is read-only); pass another one.")
    if existing == workdir and any(workdir.iterdir()) and not any((workdir / m).exists() for m in MARKERS):
        raise ValueError(
            f"workdir {str(workdir)!r} holds other files and is not a dae-jax workdir: nothing of it is replaced; "
            "pass a new or empty --workdir."
        )
    return workdir


class Lock:
    """``with Lock(workdir):`` the workdir belongs to this run; a second run is refused in one line.

    An exclusive ``flock`` on ``dae_jax.lock``, held open for the run: the kernel releases it when the
    process ends, however it ends, so a lock left by a dead run is taken over (saying so) and a live
    one never is. The file holds the host, pid and start time, for the message. Folders the lock made
    are removed again if the run leaves them empty: a refused start changes nothing. On a filesystem
    without ``flock`` across hosts (some NFS setups) it protects the processes of one host only.
    """

    def __init__(self, workdir: Path):
        self.workdir, self.path = Path(workdir), Path(workdir) / LOCK
        self.created: list[Path] = []
        self.fd: int | None = None

    def _holder(self) -> dict:
        try:
            return dict(json.loads(self.path.read_text() or "{}"))
        except (OSError, ValueError, TypeError):
            return {}  # damaged or vanished: nobody can be shown to hold it

    def _acquire(self) -> int | None:
        """An open fd holding the flock of the file at ``self.path``; None while another process holds it."""
        import fcntl

        while True:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            os.close(fd)  # its holder unlinked the file between our open and flock: lock the new one

    def __enter__(self) -> Lock:
        self.created = [p for p in (self.workdir, *self.workdir.parents) if not p.exists()]
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = self._acquire()
        if fd is None:
            holder = self._holder()
            self._remove_created()
            raise ValueError(
                f"workdir {self.workdir} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"since {holder.get('started', '?')}; wait for that run to end."
            ) from None
        self.fd, previous = fd, self._holder()
        if previous.get("pid"):
            log.warning(
                "taking over the lock of process %s on %s, which is no longer running",
                previous["pid"],
                previous.get("host"),
            )
        me = {"host": platform.node(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)  # releases the flock
            self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self.created:  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


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
        except Exception as e:  # any failure must reach the other processes, or they wait forever
            error = e
    if not multihost_utils.broadcast_one_to_all(np.int32(error is None)):
        raise error or ValueError(f"workdir {workdir} could not be locked (process 0 says why).")
    try:
        yield
    finally:
        if jax.process_index() == 0:
            lock.__exit__()


def record_start(workdir: Path, metadata: dict) -> None:
    """``metadata.json``: the first start's metadata, and one entry per resume under ``resumes``."""
    path = workdir / "metadata.json"
    first = files.read_own_json(path, dict)
    if first is None:
        files.write_json(path, metadata)
        return
    first.setdefault("resumes", []).append(metadata)
    files.write_json(path, first)


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def run_metadata(config: ml_collections.ConfigDict, source: Source, loop: str, devices: list) -> dict:
    """What a result needs to be traced back: config, data source, training loop, versions, the devices it
    trained on, git commit."""
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
        "devices": [str(d) for d in devices],
        "process_count": jax.process_count(),
        "git_commit": _git_commit(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def strict_json(result: dict) -> dict:
    """``result`` with non-finite floats as None, for strict JSON (the PSNR of an uncorrupted input is inf)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def read_history(workdir: str | os.PathLike) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl``; ValueError naming the file and line of a damaged one."""
    path = Path(workdir) / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [_record(path, i, line) for i, line in enumerate(lines, 1)]


def _record(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
        record["step"]  # noqa: B018 - every record has its step
        return record
    except (ValueError, TypeError, KeyError):
        raise ValueError(f"{path}, line {number}, is damaged; delete that line (or the file) and rerun.") from None


class MetricWriter:
    """Appends one JSON line per record to ``metrics.jsonl`` and scalars to TensorBoard (process 0 only)."""

    def __init__(self, workdir: Path, resumed_step: int):
        self.resumed_step = resumed_step  # the step this invocation began at
        self.path = workdir / "metrics.jsonl"
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        if self.path.exists():  # drop records a killed run wrote after its last checkpoint, and a torn last line
            lines = self.path.read_text().splitlines()
            if lines and not lines[-1].rstrip().endswith("}"):
                lines = lines[:-1]  # the one line a kill can cut short
            kept = [x for i, x in enumerate(lines, 1) if _record(self.path, i, x)["step"] <= resumed_step]
            files.write_text(self.path, "".join(f"{x}\n" for x in kept))  # a kill leaves the old or the new file
        self.tb = event_file.ScalarWriter(workdir / "tensorboard")

    def write(self, step: int, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        try:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **record}) + "\n")
        except OSError as e:
            raise OSError(e.errno, f"cannot append to {self.path}: {e.strerror}; rerun to resume") from None
        self.tb.write(step, {k: v for k, v in record.items() if isinstance(v, (int, float))})
