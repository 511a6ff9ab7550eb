"""Train-on-one, evaluate-on-every matrices: noise levels, corruption types and datasets.

  DAE_JAX_MNIST_DIR=../shared/data/mnist python experiments/cross_evaluation.py STUDY --workdir workdirs/cross

STUDY is one of ``STUDIES``. Each row of a study is a model trained with the study's config and
the row's overrides (``dae_jax.train``; an existing run in ``<workdir>/<study>/<row>`` is resumed
or reused); each column is a test condition (a corruption, a dataset), scored with
``dae_jax.evaluate`` on the full test split with the fixed evaluation noise, so every model sees
the very same noisy images in a column. Writes ``results/<study>/``: ``matrix.json`` (every
metric of every cell, the rows' configs), ``table.md`` (PSNR and SSIM, the noisy input's in the
header), ``psnr.png`` (heat map) and ``command.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from dae_jax import configs
from dae_jax.studies import files as study_files
from dae_jax.studies.matrix_table import table

RESULTS = Path(__file__).resolve().parents[1] / "results"


def gaussian(sigma: float) -> dict:
    return {"name": "gaussian", "sigma": sigma, "clip": True}


@dataclasses.dataclass(frozen=True)
class Study:
    """Rows: {name: config overrides (dotted paths)}; columns: {name: {"corruption": spec, "dataset": name}}.

    ``cumulative``: an ablation, each row the one above plus one change; the table then says what each bought.
    ``specialists``: another study whose committed rows (``results/<it>/matrix.json``, the same columns, so the
    very same noisy images) are the columns' specialists, when this study's rows are not.
    """

    config: str
    rows: dict[str, dict]
    columns: dict[str, dict]
    about: str
    cumulative: bool = False
    specialists: str | None = None


# The recipe every study row starts from: dae-jax's own (Flax's lecun_normal kernels, fresh noise every step,
# the last 10% of train held out), not a reference config's Keras-faithful default (dae_jax.variants); the
# committed studies were trained with it.
DAE_JAX_RECIPE = {"model.kernel_init": "lecun_normal", "train_noise": "fresh", "data.validation_fraction": 0.1}
SIGMAS = (0.1, 0.3, 0.5, 0.7)
# Gaussian noise at each sigma: the noise studies' columns, and their specialists' rows.
PER_SIGMA = {f"sigma {s}": {"corruption": gaussian(s)} for s in SIGMAS}
CORRUPTIONS = {
    "gaussian 0.5": gaussian(0.5),
    "masking 0.5": {"name": "masking", "p": 0.5},
    "salt & pepper 0.2": {"name": "salt_and_pepper", "p": 0.2},
    "blur 1.5": {"name": "gaussian_blur", "sigma": 1.5},
}
BLIND = {
    "blind [0, 0.7]": {"corruption": {"name": "blind_gaussian", "low": 0.0, "high": 0.7}},
    "blind + masking + s&p": {
        "corruption": {
            "name": "mixture",
            "choices": [
                {"name": "blind_gaussian", "low": 0.0, "high": 0.7},
                CORRUPTIONS["masking 0.5"],
                CORRUPTIONS["salt & pepper 0.2"],
            ],
        }
    },
}
# conv32_16 given each image's estimated noise std as a second input channel (dae_jax.nn.noise_level): still
# blind (nothing but the image goes in), but told how much to smooth, which its 3x3 convs cannot sum up.
NOISE_LEVEL_ENCODER = ("noise_level", "conv 32 relu", "pool", "conv 16 relu", "pool")
# The four specialists' total budget (4 x 10 epochs) spent on one model, and a specialist given it too.
BUDGET = {
    "blind + estimated sigma channel": BLIND["blind [0, 0.7]"] | {"model.encoder": NOISE_LEVEL_ENCODER},
    "blind [0, 0.7], 40 epochs": BLIND["blind [0, 0.7]"] | {"num_epochs": 40},
    "blind + estimated sigma channel, 40 epochs": BLIND["blind [0, 0.7]"]
    | {"model.encoder": NOISE_LEVEL_ENCODER, "num_epochs": 40},
    "sigma 0.1, 40 epochs": {"corruption": gaussian(0.1), "num_epochs": 40},
}
# noise_blind's four specialists and its blind model: the rows of the same study on another recipe.
NOISE_SWEEP_AND_BLIND = PER_SIGMA | {"blind [0, 0.7]": BLIND["blind [0, 0.7]"]}
# The same blind models and specialists trained on minus the PSNR (the metric, a mean of per-image dB): BCE
# weighs an image by its error, so a blind model's low-sigma images, whose errors are small, count for little.
PSNR_LOSS = {"loss": "psnr"}
NOISE_BLIND_PSNR = {name: row | PSNR_LOSS for name, row in NOISE_SWEEP_AND_BLIND.items()} | {
    "blind + estimated sigma channel": BUDGET["blind + estimated sigma channel"] | PSNR_LOSS
}


def ablation(config: str, changes: dict[str, dict], about: str) -> Study:
    """A cumulative study at Gaussian sigma 0.5, 10 epochs a row: row i applies the first i + 1 of ``changes``."""
    rows, overrides = {}, {"num_epochs": 10}
    for name, change in changes.items():
        overrides = overrides | change
        rows[name] = overrides
    return Study(config, rows, {"sigma 0.5": {"corruption": gaussian(0.5)}}, about, cumulative=True)


# The best-denoiser ablation at sigma 0.5: unet32_best's recipe at 10 epochs (every row the same budget), then
# one change at a time, each row keeping the ones above it.
ABLATION = {
    "unet32, BCE (unet32_best's recipe)": {},
    "+ MSE loss": {"loss": "mse"},
    "+ residual (predicts the noise)": {"model.name": "unet32_residual"},
    "+ warm-up, peak lr 3e-3": {
        "lr_schedule": "warmup_cosine",
        "lr_schedule_kwargs": {"warmup": 0.05},
        "learning_rate": 3e-3,
    },
}
# Its continuation past unet_deep_residual (PSNR loss, warm-up and cosine to 3e-3; 21.40 dB at 10 epochs, its
# config's docstring): global context, then the parameters' moving average, each row keeping the ones above.
DEEP_ABLATION = {
    "+ global context (unet_deep_global: a dense 256 branch at 7x7)": {"model.name": "unet_deep_global"},
    "+ moving average of the parameters (decay 0.999)": {"ema_decay": 0.999},
}
STUDIES = {
    "noise_sweep": Study(
        "conv32_16_adam",
        PER_SIGMA,
        PER_SIGMA,
        "conv32_16_adam trained at each Gaussian sigma (clipped), evaluated at every sigma.",
    ),
    "noise_sweep_unet32": Study(
        "unet32_best",
        {name: row | {"num_epochs": 10} for name, row in PER_SIGMA.items()},
        PER_SIGMA,
        "The best model's setup (unet32_best) at each sigma, 10 epochs each (not its full budget), every sigma.",
    ),
    "corruption_types": Study(
        "conv32_16_adam",
        {name: {"corruption": spec} for name, spec in CORRUPTIONS.items()},
        {name: {"corruption": spec} for name, spec in CORRUPTIONS.items()},
        "conv32_16_adam trained with each corruption, evaluated on each.",
    ),
    "noise_blind": Study(
        "conv32_16_adam",
        PER_SIGMA | BLIND | BUDGET,
        PER_SIGMA | {k: {"corruption": CORRUPTIONS[k]} for k in ("masking 0.5", "salt & pepper 0.2")},
        "One blind denoiser (sigma drawn per image from [0, 0.7]; and one that also sees masking and salt &"
        " pepper) against the per-sigma specialists, conv32_16_adam's dae-jax recipe, 10 epochs each unless the"
        " row says; then one given each image's estimated noise std as an input channel, and the four"
        " specialists' total budget (40 epochs) spent on one blind model (and on the sigma 0.1 specialist).",
    ),
    "noise_blind_unet32": Study(
        "unet32_best",
        {"blind [0, 0.7]": BLIND["blind [0, 0.7]"] | {"num_epochs": 10}},
        PER_SIGMA,
        "A blind U-Net (unet32_best's setup, sigma drawn per image from [0, 0.7], 10 epochs) against the U-Net"
        " specialists of noise_sweep_unet32 (the same setup at one sigma each, 10 epochs): do skip connections,"
        " which pass a lightly corrupted image's detail through, close conv32_16's gap at low sigma?",
        specialists="noise_sweep_unet32",
    ),
    "noise_blind_unet32_residual": Study(
        "unet32_residual",
        {name: row | PSNR_LOSS | {"num_epochs": 10} for name, row in NOISE_SWEEP_AND_BLIND.items()}
        | {"blind [0, 0.7], 40 epochs": BUDGET["blind [0, 0.7], 40 epochs"] | PSNR_LOSS},
        PER_SIGMA,
        "The blind U-Net and its specialists on the best denoiser's recipe (unet32_residual: a global residual, so"
        " the network predicts minus the noise, warm-up and cosine to lr 3e-3; and the PSNR loss), 10 epochs each:"
        " a residual makes the identity, all a lightly corrupted image needs, the easiest output, and the PSNR loss"
        " weighs every image the same in dB, where BCE and MSE let the low-sigma images' small errors count for"
        " little. Last, the four specialists' total budget (40 epochs) spent on the blind model.",
    ),
    "noise_blind_psnr": Study(
        "conv32_16_adam",
        NOISE_BLIND_PSNR,
        PER_SIGMA,
        "noise_blind's specialists and blind models (10 epochs each) trained on the PSNR loss (10 log10 of each"
        " image's MSE) instead of BCE: every image weighs the same in dB, whatever its noise level.",
    ),
    "ablation_unet32": ablation(
        "unet32_best",
        ABLATION,
        "What each change to the best denoiser buys at Gaussian sigma 0.5: 10 epochs per row, each row the one"
        " above plus one change.",
    ),
    "loss_unet32": ablation(
        "unet32_residual",
        {
            "MSE (the ablation's last row)": {},
            "+ PSNR loss (10 log10 of each image's MSE)": PSNR_LOSS,
            "+ outputs clipped to [0, 1], trained straight-through": {"clip_output": True},
        },
        "The PSNR loss against MSE for the best denoiser's setup (unet32_residual) at Gaussian sigma 0.5, 10 epochs"
        " each: the test PSNR is a mean of per-image PSNRs, and this loss is that mean; then the outputs clipped to"
        " the images' range [0, 1], trained through the clip with the identity's gradient (losses.clip_to_unit).",
    ),
    "ablation_deep": ablation(
        "unet_deep_residual",
        DEEP_ABLATION,
        "The ablation continued past unet_deep_residual's config (21.40 dB / 0.897 at 10 epochs, one earlier run)"
        " at Gaussian sigma 0.5: 10 epochs per row, each row the one above plus one change.",
    ),
    "cross_dataset": Study(
        "conv32_16_adam",
        {"MNIST": {"data.dataset": "mnist"}, "Fashion-MNIST": {"data.dataset": "fashion_mnist"}},
        {"MNIST": {"dataset": "mnist"}, "Fashion-MNIST": {"dataset": "fashion_mnist"}},
        "conv32_16_adam (Gaussian sigma 0.5) trained on one dataset, evaluated on the test split of each.",
    ),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c == "." else "_" for c in name.lower())


def row_config(study: Study, overrides: dict) -> configs.ConfigDict:
    config = configs.load(study.config)
    for field, value in (DAE_JAX_RECIPE | overrides).items():
        configs.set_field(config, field, value)
    return config


def test_images(dataset: str, data_dir: str | None) -> dict[str, np.ndarray]:
    """The test split of a dataset of the registry, from the source it resolves to here."""
    from dae_jax.data import pipeline

    config = configs.base().data
    config.dataset, config.data_dir = dataset, data_dir
    return pipeline.load(config).test


def run_study(name: str, workdir: Path, data_dir: str | None, smoke: bool = False) -> dict:
    """Trains (or reuses) every row's model and evaluates it on every column: the report of ``name``.

    ``smoke``: every row's config shrunk to seconds (``configs.smoke``) and its test splits to their first
    256 images; a check of the machinery, not a result.
    """
    import dae_jax

    study = STUDIES[name]
    datasets = {c["dataset"] for c in study.columns.values() if "dataset" in c}
    limit = 256 if smoke else None
    test_sets = {d: {k: v[:limit] for k, v in test_images(d, data_dir).items()} for d in sorted(datasets)}
    rows = []
    for row, overrides in study.rows.items():
        config = row_config(study, overrides)
        config.data.data_dir, config.smoke = data_dir, smoke
        run_dir = workdir / name / slug(row)
        if not (run_dir / "eval.json").is_file():
            dae_jax.train(config, run_dir)
        denoiser = dae_jax.load(run_dir)
        cells = {}
        for column, condition in study.columns.items():
            dataset = test_sets[condition["dataset"]] if "dataset" in condition else None
            result = dae_jax.evaluate(denoiser, dataset, condition.get("corruption"), max_examples=limit)
            cells[column] = {k: v for k, v in result.items() if k not in ("dataset", "corruption")}
            print(f"{name}: trained on {row}, evaluated on {column}: PSNR {result['psnr']:.2f} dB", flush=True)
        rows.append({"row": row, "run": str(run_dir), "config_overrides": overrides, "cells": cells})
    return {
        "study": name,
        "about": study.about,
        "config": study.config,
        "columns": study.columns,
        "rows": rows,
        "cumulative": study.cumulative,
        "specialists": _specialist_rows(study, rows),
    }


def _specialist_rows(study: Study, rows: list[dict]) -> dict | None:
    """{"study", "rows"}: the committed rows of ``study.specialists`` (None without one), checked to share this
    study's columns and, where as many images were scored, their noisy images (the noisy input's PSNR)."""
    if study.specialists is None:
        return None
    path = RESULTS / study.specialists / "matrix.json"
    committed = json.loads(path.read_text())
    if committed["columns"] != study.columns:
        raise ValueError(f"{path} has other columns than this study; its rows cannot be its specialists.")
    ours, theirs = rows[0]["cells"], committed["rows"][0]["cells"]
    for column in study.columns:
        same_size = ours[column]["num_images"] == theirs[column]["num_images"]
        if same_size and abs(ours[column]["noisy_psnr"] - theirs[column]["noisy_psnr"]) > 1e-6:
            raise ValueError(f"{path} scored other noisy images in column {column!r}; retrain its rows here.")
    return {"study": study.specialists, "rows": committed["rows"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--workdir", required=True, type=Path, help="where the rows' runs live (reused)")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR)")
    parser.add_argument("--out", default=None, type=Path, help="default: results/<study>")
    parser.add_argument("--overwrite", action="store_true", help="replace the files a previous run wrote there")
    parser.add_argument("--smoke", action="store_true", help="seconds-long rows and 256 test images: a check only")
    args = parser.parse_args(argv)
    from dae_jax import sharding
    from dae_jax.eval import figures

    sharding.use_cpu_cores(128, 1000)  # the configs' batch sizes, as dae-jax train runs them
    out = args.out or RESULTS / args.study
    study_files.claim(out, ["matrix.json", "table.md", "psnr.png"], args.overwrite)
    report = run_study(args.study, args.workdir, args.data_dir, args.smoke)
    report["command"] = study_files.command_line("cross_evaluation.py", argv)
    study_files.write(
        out, {"matrix.json": json.dumps(report, indent=2) + "\n", "table.md": table(report)}, report["command"]
    )
    psnr = [[row["cells"][c]["psnr"] for c in report["columns"]] for row in report["rows"]]
    figures.heatmap(
        psnr,
        [r["row"] for r in report["rows"]],
        list(report["columns"]),
        out / "psnr.png",
        f"{args.study}: test PSNR (dB)",
        "PSNR (dB)",
    )


if __name__ == "__main__":
    main()
