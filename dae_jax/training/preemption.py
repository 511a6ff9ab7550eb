"""Stopping a run cleanly: SIGTERM (a preemption) or Ctrl-C ask the loop to save and stop at the next step boundary.

``stop_requests()`` installs the handlers for the training loop and yields ``requested() -> bool``.
The loop checks it after every chunk of steps; when set, it saves a checkpoint (with the epoch's
losses so far) and raises ``Preempted``, which ``dae-jax train`` reports as "preempted at step N,
rerun to resume" with exit code 0. A second Ctrl-C stops at once (``KeyboardInterrupt``). In a
multi-process run a request on any process stops them all at the same step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import jax
import numpy as np

log = logging.getLogger(__name__)


class Preempted(Exception):
    """The run stopped on request after saving step ``step``; rerunning the same command resumes it."""

    def __init__(self, step: int):
        super().__init__(f"preempted at step {step}, rerun to resume")
        self.step = step


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """Within the block, SIGTERM and a first SIGINT set a request that ``requested()`` reports."""
    received: list[int] = []

    def on_signal(signum, frame):
        if signum == signal.SIGINT and signal.SIGINT in received:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        received.append(signum)
        log.warning(
            "%s: saving a checkpoint at the next step boundary, then stopping%s",
            signal.Signals(signum).name,
            " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else "",
        )

    def requested() -> bool:
        if jax.process_count() == 1:
            return bool(received)
        from jax.experimental import multihost_utils

        return bool(multihost_utils.process_allgather(np.int32(bool(received))).max())

    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield requested
        return
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
