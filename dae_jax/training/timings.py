"""Where a run's wall-clock goes: seconds per phase, written to ``timings.json`` and logged at the end.

Phases (``PHASES``): ``prepare`` (config and data checks, the data read, the model built, the state
created or restored: everything before the first step), ``first_chunk`` (the first jitted call of
steps: compilation plus ``log_every_steps`` steps), ``train`` (the other steps), ``validation``,
``checkpoints``, ``test`` and ``figures`` (with the analyses). ``total`` is the whole
``train_and_evaluate`` call; what is left of it (logging, metric writes) is ``other``. A resumed
run records its own process's seconds only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

PHASES = ("prepare", "first_chunk", "train", "validation", "checkpoints", "test", "figures")


@dataclasses.dataclass
class Timings:
    """Seconds per phase, summed over every time the phase ran; started when made."""

    seconds: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        """``seconds`` spent in ``name`` measured elsewhere (the step loop times its own chunks)."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; one of {list(PHASES)}.")
        self.seconds[name] += seconds

    def record(self) -> dict[str, float]:
        """Every phase's seconds, ``other`` and ``total`` (now minus the start), rounded to ms."""
        total = time.perf_counter() - self.started
        out = dict(self.seconds) | {"other": total - sum(self.seconds.values()), "total": total}
        return {k: round(v, 3) for k, v in out.items()}


def summary(record: dict[str, float]) -> str:
    """One log line from a ``Timings.record()``: ``seconds: prepare 4.1, first_chunk 2.0, ...; total 61.2``."""
    parts = ", ".join(f"{k} {record[k]:.1f}" for k in (*PHASES, "other"))
    return f"seconds: {parts}; total {record['total']:.1f}"
