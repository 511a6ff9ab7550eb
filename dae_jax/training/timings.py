"""Where a run's wall-clock goes: seconds per phase, appended to ``timings.json`` and logged at the end.

Phases (``PHASES``): ``prepare`` (config and data checks, the data read, the model built, the state
created or restored: everything before the first step), ``first_chunk`` (the first jitted call of
steps: its compilation, and the steps up to the first loss check or checkpoint), ``train`` (every
later call of steps; a scan of another length compiles there), ``validation`` and ``test`` (the
evaluation step's compilation included), ``checkpoints`` and ``figures`` (with the analyses).
``total`` is the whole ``train_and_evaluate`` call; what is left of it (loss and finiteness checks,
logging, metric writes) is ``other``.

``timings.json`` is a list with one record per invocation that finished (a resumed run adds its own,
``from_step`` saying where it began; a preempted or failed invocation writes none), as measured on
process 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import jax

from dae_jax import files

log = logging.getLogger(__name__)
PHASES = ("prepare", "first_chunk", "train", "validation", "checkpoints", "test", "figures")


@dataclasses.dataclass
class Timings:
    """Seconds per phase, summed over every time the phase ran; started when made."""

    seconds: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    started: float = dataclasses.field(default_factory=time.perf_counter)
    chunks: int = 0  # calls of steps so far

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        """``seconds`` spent in ``name`` measured elsewhere."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; one of {list(PHASES)}.")
        self.seconds[name] += seconds

    def chunk(self, seconds: float) -> None:
        """One jitted call of steps took ``seconds``: the first is ``first_chunk``, the others ``train``."""
        self.add("train" if self.chunks else "first_chunk", seconds)
        self.chunks += 1

    def record(self) -> dict[str, float]:
        """Every phase's seconds, ``other`` and ``total`` (now minus the start), rounded to ms."""
        total = time.perf_counter() - self.started
        out = dict(self.seconds) | {"other": total - sum(self.seconds.values()), "total": total}
        return {k: round(v, 3) for k, v in out.items()}

    def finish(self, workdir: Path, from_step: int) -> dict[str, float]:
        """The record, appended to ``workdir/timings.json`` (process 0) and logged as one line."""
        record = self.record()
        if jax.process_index() == 0:
            path = workdir / "timings.json"
            earlier = files.read_own_json(path, list) or []
            files.write_json(path, [*earlier, {"from_step": from_step, **record}])
        log.info(summary(record))
        return record


def summary(record: dict[str, float]) -> str:
    """One log line from a ``Timings.record()``: ``seconds: prepare 4.1, first_chunk 2.0, ...; total 61.2``."""
    parts = ", ".join(f"{k} {record[k]:.1f}" for k in (*PHASES, "other"))
    return f"seconds: {parts}; total {record['total']:.1f}"
