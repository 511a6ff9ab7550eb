"""What a study script leaves in its results folder: its files and the command that made them."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from dae_jax import configs, files
from dae_jax.data import pipeline, sources


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """--source and --data_dir: where the MNIST data comes from (config.data.source, config.data.data_dir)."""
    parser.add_argument("--source", default="auto", choices=sources.SOURCES, help="config.data.source")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (config.data.data_dir)")


def load_data(args: argparse.Namespace) -> pipeline.Data:
    """The base config's MNIST splits from ``args.source`` / ``args.data_dir`` (``add_data_args``)."""
    data = configs.base().data
    data.source, data.data_dir = args.source, args.data_dir
    return pipeline.load(data)


def command_line(script: str, argv: list[str] | None = None) -> str:
    """How ``python experiments/<script>`` ran: the MNIST directory variable when set, then the arguments."""
    args = sys.argv[1:] if argv is None else argv
    env = os.environ.get(sources.IDX_DIR_ENV)
    prefix = f"{sources.IDX_DIR_ENV}={env} " if env else ""
    return prefix + shlex.join(["python", f"experiments/{script}", *args])


def add_output_args(parser: argparse.ArgumentParser, default: Path) -> None:
    """--out (the study's results folder) and --overwrite (replace the files a previous run left there)."""
    parser.add_argument("--out", type=Path, default=default, help=f"results folder (default: {default})")
    parser.add_argument("--overwrite", action="store_true", help="replace the files a previous run wrote there")


def claim(out: Path, names: list[str], overwrite: bool) -> None:
    """Before a study's work starts: refuses (ValueError listing them) outputs under ``out`` that exist, unless
    ``overwrite``; outputs that lead out of ``out`` through links always."""
    files.check_outputs([Path(out) / n for n in [*names, "command.txt"]], out, overwrite=overwrite)


def write(out: Path, pages: dict[str, str], command: str) -> None:
    """Writes each {name: text} under ``out`` and the command to ``out/command.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        files.write_text(out / name, text)
    files.write_text(out / "command.txt", command + "\n")
    print(f"wrote {out}", flush=True)
