"""``dae-jax evaluate --workdir=W``: a run's metrics on its own test set, any TFDS dataset, any corruption."""

from __future__ import annotations

import argparse

from dae_jax.cli import common

DESCRIPTION = (
    "Scores a trained model as training scores its test set (BCE, MSE, PSNR, SSIM of the output and of the noisy "
    "input, fixed noise): on the run's own test set it reproduces eval.json; --dataset and --corruption score it "
    "on other data or noise."
)
EXAMPLE = "dae-jax evaluate --workdir workdirs/conv32 --dataset fashion_mnist --corruption masking:p=0.5"


def workdir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir", required=True, help="a run's workdir (or its checkpoints dir, or one step's dir W/checkpoints/N)"
    )


def dataset_options(p: argparse.ArgumentParser, split_help: str) -> None:
    p.add_argument(
        "--dataset",
        help="a TFDS dataset name (fashion_mnist, local_images/NAME, ...; see dae-jax data info); "
        "default: the run's own data source",
    )
    p.add_argument("--split", default="test", help=split_help)
    p.add_argument("--max-examples", type=common.count, help="use the first N images (default: all)")


def build() -> common.Parser:
    p = common.parser("evaluate", DESCRIPTION, EXAMPLE)
    workdir_option(p)
    dataset_options(p, "split: train, validation or test of the run's data; any TFDS split of --dataset")
    p.add_argument(
        "--corruption",
        help="NAME, NAME:key=value,... or a JSON spec, e.g. gaussian:sigma=0.3 (default: the run's own); "
        "names: none, gaussian, masking, salt_and_pepper, gaussian_blur, low_resolution, compose, blind_gaussian, "
        "mixture",
    )
    p.add_argument("--seed", type=int, help="seed of the evaluation noise (default: the run's, as in eval.json)")
    p.add_argument("--out", help="also write the metrics to this JSON file")
    common.overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> None:
    from dae_jax import files
    from dae_jax.eval import evaluation
    from dae_jax.training import workdir

    common.prepare_process()  # one XLA:CPU device per core, freed memory kept for reuse
    if args.out:
        files.check_output(args.out, args.overwrite)
    result = evaluation.evaluate(
        args.workdir, args.dataset, args.corruption, split=args.split, max_examples=args.max_examples, seed=args.seed
    )
    spec = ",".join(f"{k}={v}" for k, v in result["corruption"].items() if k != "name")
    print(f"{result['dataset']}: {result['num_images']} images, corruption {result['corruption']['name']} {spec}")
    print(f"{'metric':8} {'output':>10} {'noisy input':>12}")
    for name in ("bce", "mse", "psnr", "ssim"):
        print(f"{name:8} {result[name]:10.4f} {result['noisy_' + name]:12.4f}")
    if args.out:
        files.write_json(args.out, workdir.strict_json(result))
        print(f"wrote {args.out}")
