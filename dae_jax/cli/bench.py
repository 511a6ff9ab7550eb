"""``dae-jax bench [ARGS]``: the benchmark suite, run as its own program (``python -m dae_jax.studies.benchmark``).

The CLI does not import the study: it replaces this process with the benchmark's, which parses
its own arguments (``dae-jax bench --help``).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "dae_jax.studies.benchmark", *argv])
