"""The ``dae-jax`` console script: ``dae-jax train --config=... --workdir=...``."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, eval.json and figures.")
flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")
config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. experiments/configs/conv32_adadelta.py.", lock_config=True
)


def train_main(argv: list[str]) -> None:
    """absl main: trains FLAGS.config in FLAGS.workdir."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # orbax/TFDS INFO logs; --verbosity=0 brings them back
    if FLAGS.config is None or FLAGS.workdir is None:
        raise app.UsageError("--config and --workdir are required.")
    from dae_jax import checkpoints, train

    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (ValueError, OSError, FloatingPointError, checkpoints.CheckpointError) as e:
        if FLAGS.debug:
            raise
        print(f"dae-jax: error: {e}", file=sys.stderr)
        sys.exit(1)


COMMANDS = {"train": train_main}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(f"usage: dae-jax {{{','.join(COMMANDS)}}} [flags]   (dae-jax train --help)", file=sys.stderr)
        sys.exit(2)
    command = argv[1]
    app.run(COMMANDS[command], argv=[f"dae-jax {command}", *argv[2:]])
