"""What a study script leaves in its results folder: its files and the command that made them."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from dae_jax import input_pipeline


def command_line(script: str, argv: list[str] | None = None) -> str:
    """How ``python experiments/<script>`` ran: the MNIST directory variable when set, then the arguments."""
    args = sys.argv[1:] if argv is None else argv
    env = os.environ.get(input_pipeline.IDX_DIR_ENV)
    prefix = f"{input_pipeline.IDX_DIR_ENV}={env} " if env else ""
    return prefix + shlex.join(["python", f"experiments/{script}", *args])


def write(out: Path, files: dict[str, str], command: str) -> None:
    """Writes each {name: text} under ``out`` and the command to ``out/command.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    (out / "command.txt").write_text(command + "\n")
    print(f"wrote {out}", flush=True)
