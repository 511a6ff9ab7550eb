"""Where a run's wall-clock goes: seconds per phase, appended to ``timings.json`` and logged at the end.

Phases (``PHASES``): ``prepare`` (config and data checks, the data read, the model built, the state
created or restored: everything before the first step), ``first_chunk`` (the first jitted call of
steps: its compilation, and the steps up to the first loss check or checkpoint), ``train`` (every
later call of steps; a scan of another length compiles there), ``validation`` and ``test`` (the
evaluation step's compilation included), ``checkpoints`` and ``figures`` (with the analyses).
``total`` is the whole ``train_and_evaluate`` call; what is left of it (loss and finiteness checks,
logging, metric writes) is ``other``.

Start-up, apart from the phases: ``launch`` (``dae_jax``'s import to ``train_and_evaluate``'s start: the
imports and the CLI; for the Python API, whatever the caller did in between), ``compile`` (seconds JAX spent tracing,
lowering and compiling, in whichever phase, overlaps counted once) and ``startup`` (launch to the first
step: ``launch`` + ``prepare`` + the first chunk's compilation).

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
import jax.monitoring

from dae_jax import files

log = logging.getLogger(__name__)
PHASES = ("prepare", "first_chunk", "train", "validation", "checkpoints", "test", "figures")
COMPILE_EVENTS = frozenset(
    f"/jax/core/compile/{name}_duration" for name in ("jaxpr_trace", "jaxpr_to_mlir_module", "backend_compile")
)


def since_import() -> float:
    """Seconds since ``dae_jax`` began importing: for a command, its launch but the interpreter's own start
    (tens of ms).

    Not the process's start (Linux's /proc): a shell that ends by exec-ing the command keeps its process, so
    ``bash -c 'python3 -m venv .venv && ... pip install -e . && dae-jax train ...'`` counted the venv and the
    install as launch (64 s of the README's first command, measured).
    """
    import dae_jax

    return time.perf_counter() - dae_jax._IMPORT_STARTED


def covered(spans: list[tuple[float, float]], start: float = float("-inf"), end: float = float("inf")) -> float:
    """Seconds of [start, end] that the union of ``spans`` covers (nested compilations counted once)."""
    total, reach = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            total, reach = total + b - a, b
    return total


@dataclasses.dataclass
class Timings:
    """Seconds per phase, summed over every time the phase ran; started when made. Used as a context
    manager, it also records JAX's compilations (``compile``, ``startup``) until the block ends."""

    seconds: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    started: float = dataclasses.field(default_factory=time.perf_counter)
    age: float = dataclasses.field(default_factory=since_import)  # since dae_jax's import, when made
    chunks: int = 0  # calls of steps so far
    compiles: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # time.time() spans
    first_chunk_span: tuple[float, float] | None = None  # time.time()

    def __enter__(self) -> Timings:
        jax.monitoring.register_event_time_span_listener(self._compiled)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._compiled)

    def _compiled(self, event: str, start_time: float, end_time: float, **_) -> None:
        if event in COMPILE_EVENTS:
            self.compiles.append((start_time, end_time))

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
        if not self.chunks:
            now = time.time()
            self.first_chunk_span = (now - seconds, now)
        self.chunks += 1

    def record(self) -> dict[str, float]:
        """Every phase's seconds, ``other`` and ``total`` (now minus the start), then the start-up's, rounded to ms."""
        total = time.perf_counter() - self.started
        out = dict(self.seconds) | {"other": total - sum(self.seconds.values()), "total": total}
        now = time.time()
        out["compile"] = covered(self.compiles, now - total, now)
        out["launch"] = self.age
        if self.first_chunk_span is not None:
            out["startup"] = self.age + self.seconds["prepare"] + covered(self.compiles, *self.first_chunk_span)
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
    line = f"seconds: {parts}; total {record['total']:.1f}; compiling {record['compile']:.1f} of it"
    if "startup" in record:
        line += f"; start-up {record['startup']:.1f} (launch to first step; {record['launch']:.1f} before the run)"
    return line
