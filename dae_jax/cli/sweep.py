"""``dae-jax sweep --config=FILE --workdir=DIR --grid FIELD=V1,V2,...``: a grid of runs, one summary."""

from __future__ import annotations

import shlex
from pathlib import Path

from dae_jax.cli import common

DESCRIPTION = (
    "Trains every combination of the grid values, each in DIR/<point>/ (a rerun resumes them), then writes "
    "DIR/summary.md (one row per point: test PSNR, SSIM, BCE, MSE, minutes) and DIR/summary.png. Values are "
    "Python literals (numbers, True) or plain strings. A failed point is listed with its error; the others run."
)
EXAMPLE = (
    "dae-jax sweep --config=experiments/configs/conv32_adadelta.py --workdir=workdirs/sweep "
    "--grid corruption.sigma=0.1,0.3,0.5 --grid optimizer=adam,adadelta --config.num_epochs=2"
)


def build() -> common.Parser:
    p = common.parser("sweep", DESCRIPTION, EXAMPLE)
    common.config_options(p)
    p.add_argument("--grid", action="append", default=[], help="FIELD=V1,V2,...: values of one field; repeatable")
    return p


def parse(argv: list[str]):
    p = build()
    args, args.config = common.parse_with_config(p, argv)
    if not args.grid:
        p.error("give at least one --grid FIELD=V1,V2,...")
    from dae_jax.training import sweep

    try:
        args.grid = sweep.parse_grid(args.grid, args.config)
    except ValueError as e:
        p.error(str(e).rstrip("."))
    args.command_line = shlex.join(["dae-jax", "sweep", *argv])
    return args


def run(args) -> None:
    from dae_jax.training import sweep

    common.prepare_process(args.config.batch_size, args.config.eval_batch_size)
    rows = sweep.run(args.config, args.workdir, args.grid, command=args.command_line, stop_on_error=args.debug)
    print(f"wrote {Path(args.workdir) / 'summary.md'} and {Path(args.workdir) / 'summary.png'}")
    failed = [row["name"] for row in rows if "error" in row]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} grid points failed ({', '.join(failed)}); see summary.md")
