"""What every ``dae-jax`` command shares: its parser, its one-line errors and exit codes, its logging.

One flag system, argparse, for every command (``COMMAND --help`` is argparse's own). ``train``
and ``sweep`` also take ml_collections config overrides, ``--config.FIELD=VALUE``, read as the
type of the field they set (``dae_jax.configs.override``). Exit codes: 0 done, 2 usage error,
1 failure; an error is one line, ``dae-jax COMMAND: error: ...`` (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable
from typing import NoReturn

EXIT_FAILURE, EXIT_USAGE = 1, 2
# What a failure of the work itself raises (bad input, missing files, NaN loss, damaged checkpoint):
# one line, no traceback. Anything else is a bug and says so.
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, RuntimeError)
_OVERRIDE = re.compile(r"--config\.([A-Za-z_][\w.]*)=(.*)", re.S)


class UsageError(Exception):
    """A command line that cannot run: exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit code 2, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} ({self.prog} --help)\n")


def parser(command: str, description: str, example: str | None = None) -> Parser:
    """A command's parser with the options every command has (--debug, --verbose)."""
    p = Parser(
        prog=f"dae-jax {command}",
        description=description,
        epilog=f"example: {example}" if example else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    common_options(p)
    return p


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("--verbose", action="store_true", help="also show the INFO logs of orbax, TFDS and TensorFlow")


def overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist (refused otherwise)")


def count(text: str) -> int:
    """argparse type: an integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def config_options(p: argparse.ArgumentParser) -> None:
    """--config FILE[:ARG] (a path or a name in experiments/configs) and --workdir DIR."""
    p.add_argument("--config", help="config file or name, e.g. experiments/configs/conv32_adadelta.py")
    p.add_argument("--workdir", help="directory for checkpoints, metrics, eval.json and figures")
    p.epilog = (
        "  --config.FIELD=VALUE  override any config field (dae_jax.configs.base documents them), e.g.\n"
        "      --config.num_epochs=3 --config.corruption.sigma=0.3; --config.smoke=True shrinks any config to seconds\n"
        + (p.epilog or "")
    )


def parse_with_config(p: Parser, args: list[str]):
    """(namespace, config): the command line with its --config file loaded and its overrides applied."""
    from dae_jax import configs

    namespace, extras = p.parse_known_args(args)
    overrides, unknown = [], []
    for arg in extras:
        match = _OVERRIDE.fullmatch(arg)
        (overrides if match else unknown).append(match.groups() if match else arg)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if namespace.config is None or namespace.workdir is None:
        p.error("--config and --workdir are required")
    try:
        config = configs.load(namespace.config)
    except ValueError as e:
        p.error(str(e).rstrip("."))
    for field, text in overrides:
        try:
            configs.override(config, field, text)
        except ValueError as e:
            p.error(f"--config.{field}: {str(e).rstrip('.')}")
    return namespace, config


def prepare_process(*batch_sizes: int, inline: bool = False) -> None:
    """Sets up this process before JAX starts: one XLA:CPU device per core (``sharding.use_cpu_cores``;
    ``inline`` runs one-device calls on the calling thread, for calls whose results are awaited one by one,
    as ``dae-jax denoise`` and ``encode`` make), and freed blocks kept for reuse rather than mapped and
    faulted in again by every step or call (``allocator.keep_freed_memory``: linear16's ``dae-jax train``
    epoch at batch 512 713-809k -> 815-852k images/s, 3 alternating runs on Zen 5)."""
    from dae_jax import allocator, sharding

    sharding.use_cpu_cores(*batch_sizes, inline=inline)
    allocator.keep_freed_memory()


def quiet_logs(verbose: bool) -> None:
    """dae-jax's progress (logger ``dae_jax``) on stdout as plain lines; other libraries' logs off."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    library = logging.getLogger("dae_jax")
    library.handlers[:] = [handler]
    library.setLevel(logging.INFO)
    library.propagate = False
    for name in ("absl", "tensorflow", "jax", "orbax", "asyncio"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:
        warnings.filterwarnings("ignore")
        # orbax's writer threads, cut off by a failed write (a full disk), leave futures whose errors the
        # garbage collector would print after the error line: that error is already reported, once.
        sys.unraisablehook = lambda unraisable: None
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.FATAL)


def fail(command: str, message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    print(f"dae-jax {command}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


MAX_LINE = 600  # characters of an error line: a library's message (XLA's, say) can run to thousands


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = text if len(text) <= MAX_LINE else text[: MAX_LINE - 25] + " ... (--debug shows it all)"
    return text if isinstance(e, EXPECTED_ERRORS) else f"{type(e).__name__}: {text} (a bug? --debug shows where)"


def guarded(command: str, debug: bool, fn: Callable[[], None]) -> None:
    """Runs ``fn()`` and turns an error into one line and the exit code; a run stopped on request
    (``Preempted``: SIGTERM, Ctrl-C) exits 0 saying how to resume, a second Ctrl-C 130."""
    from dae_jax.training.preemption import Preempted

    try:
        fn()
    except Preempted as e:
        print(f"dae-jax {command}: {e}", flush=True)
        sys.exit(0)
    except KeyboardInterrupt:
        fail(command, "interrupted", 130)
    except UsageError as e:
        if debug:
            raise
        fail(command, f"{e} (dae-jax {command} --help)", EXIT_USAGE)
    except Exception as e:
        if debug:
            raise
        fail(command, one_line(e), EXIT_FAILURE)
