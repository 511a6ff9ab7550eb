"""``dae-jax train --config=FILE --workdir=DIR [--config.FIELD=VALUE ...]``: train, evaluate, write figures."""

from __future__ import annotations

import argparse

from dae_jax.cli import common

DESCRIPTION = (
    "Trains the config in DIR and evaluates it on the test set with fixed noise; rerunning resumes from the "
    "latest checkpoint. DIR gets eval.json, metrics.jsonl, figures, metadata.json and checkpoints. A "
    "multi-process run starts this command once per process with --coordinator_address, --num_processes and "
    "--process_id (README, Multi-host)."
)
EXAMPLE = (
    "dae-jax train --config=experiments/configs/conv32_adadelta.py --workdir=workdirs/conv32 --config.num_epochs=3"
)


def multi_process_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--coordinator_address",
        "--coordinator-address",
        help="host:port of process 0 of a multi-process run ($DAE_JAX_COORDINATOR_ADDRESS)",
    )
    p.add_argument("--num_processes", "--num-processes", type=int, help="processes of the run ($DAE_JAX_NUM_PROCESSES)")
    p.add_argument("--process_id", "--process-id", type=int, help="this process's id in [0, num_processes)")


def build() -> common.Parser:
    p = common.parser("train", DESCRIPTION, EXAMPLE)
    common.config_options(p)
    multi_process_options(p)
    return p


def parse(argv: list[str]):
    args, args.config = common.parse_with_config(build(), argv)
    return args


def run(args) -> None:
    from dae_jax import sharding
    from dae_jax.training import loop

    common.prepare_process(args.config.batch_size, args.config.eval_batch_size)
    sharding.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    loop.train_and_evaluate(args.config, args.workdir)
