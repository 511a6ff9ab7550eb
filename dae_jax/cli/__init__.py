"""The ``dae-jax`` console script: ``dae-jax COMMAND ...``; ``dae-jax COMMAND --help`` says how.

One module per command (``COMMANDS``); each has ``build() -> parser`` (or ``parse(argv)``, for the
commands with config overrides) and ``run(args)``, and only the command given is imported.
``bench`` runs the benchmark program (``python -m dae_jax.studies.benchmark``, its ``main``); no
command imports a study module.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
# TensorFlow only reads and shuffles data here (no float math), so its oneDNN kernels change no
# result; turned off, their start-up notice no longer sits above every error line.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# command -> (its module under dae_jax.cli, one line of what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a config in a workdir (resumes), evaluate it, write figures"),
    "evaluate": ("evaluate", "a run's metrics on its own or any TFDS dataset, with any corruption"),
    "denoise": ("denoise", "denoise PNG/JPEG files or folders of any size into PNGs"),
    "encode": ("encode", "write the codes of a dataset split to a .npy file"),
    "data": ("data", "data sources: `data info`, `data prepare` (IDX files or an image folder)"),
    "sweep": ("sweep", "train a grid of config values, then one summary table and figure"),
    "bench": ("bench", "the benchmark suite: dae-jax against PyTorch and Keras peers"),
}
HELP_ARGS = {"-h", "--help"}


def _usage() -> str:
    lines = ["usage: dae-jax COMMAND [options]   (dae-jax COMMAND --help)", "", "commands:"]
    lines += [f"  {name:9} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "exit codes: 0 done, 1 failure, 2 usage error; --debug shows the traceback of an error"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else (None, [])
    if command in HELP_ARGS:
        print(_usage())
        sys.exit(0)
    if command not in COMMANDS:
        problem = "no command given" if command is None else f"unknown command {command!r}"
        print(f"dae-jax: error: {problem}; choose one of {', '.join(COMMANDS)} (dae-jax --help)", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"dae_jax.cli.{COMMANDS[command][0]}")
    if hasattr(module, "main"):  # bench: another program's command line
        module.main(args)
        return
    from dae_jax import cache
    from dae_jax.cli import common

    namespace = module.parse(args) if hasattr(module, "parse") else module.build().parse_args(args)
    common.quiet_logs(namespace.verbose)
    name = getattr(namespace, "command", command)
    cache.use_for_compilation()  # a second run's start skips most compilation (dae_jax.cache)
    common.guarded(name, namespace.debug, lambda: module.run(namespace))
