"""``dae-jax encode --workdir=W --out=codes.npy``: the codes of clean images of a dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae_jax.cli import common
from dae_jax.cli.evaluate import dataset_options, workdir_option

DESCRIPTION = (
    "Writes the codes (encoder outputs) of clean images of a dataset split to a .npy file, [N, ...code shape], "
    "float32, in the split's order."
)
EXAMPLE = "dae-jax encode --workdir workdirs/conv32 --split test --out codes.npy --labels labels.npy"


def build() -> common.Parser:
    p = common.parser("encode", DESCRIPTION, EXAMPLE)
    workdir_option(p)
    dataset_options(p, "split: train, validation or test of the run's data (default test); any TFDS split of --dataset")
    p.add_argument("--out", required=True, help="the .npy file for the codes")
    p.add_argument("--labels", help="also write the images' labels to this .npy file")
    common.overwrite_option(p)
    return p


def _save(path: str, array) -> None:
    import numpy as np

    from dae_jax import files

    with files.atomic(path, "wb") as f:
        np.save(f, array)


def run(args: argparse.Namespace) -> None:
    from dae_jax import files
    from dae_jax.eval import denoiser, evaluation

    common.prepare_process(inline=True)
    if args.labels and Path(args.labels).resolve() == Path(args.out).resolve():
        raise common.UsageError("--labels and --out name the same file")
    for out in filter(None, (args.out, args.labels)):
        files.check_output(out, args.overwrite)
    model = denoiser.load(args.workdir)
    arrays, description = evaluation.load_dataset(model, args.dataset, args.split, args.max_examples)
    if args.labels and "label" not in arrays:
        raise ValueError(f"{description} has no labels to write to {args.labels}.")
    codes = model.encode(arrays["image"])
    _save(args.out, codes)
    print(f"{description}: {len(codes)} images -> codes {codes.shape[1:]} {codes.dtype} in {args.out}")
    if args.labels:
        _save(args.labels, arrays["label"])
        print(f"labels [{len(arrays['label'])}] in {args.labels}")
