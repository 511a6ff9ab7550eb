"""Time to quality: training wall-clock for dae-jax and for the Keras peer to reach the same test PSNR.

  DAE_JAX_MNIST_DIR=../shared/data/mnist python -m dae_jax.studies.time_to_quality --epochs 10 \\
      --workdir workdirs/ttq --out results/benchmarks/time_to_quality.json

Both train the reference config (default conv32_16_adam: same model, noise, loss, optimizer,
batch, training split) and are scored after every epoch on dae-jax's fixed noisy test set: the
noisy images are made once with dae-jax's evaluation corruption and key, and Keras is given the
arrays. Keras runs first, ``model.fit`` for ``--epochs`` epochs (jit_compile from
``--keras-variant``): the write-up's code for a faithful config (noise drawn once, the test set
as validation_data), else a train step that draws fresh noise (``parity.keras_fit``). The target is the
test PSNR Keras reaches after ``--target-epochs``
(default: all) unless ``--target-psnr`` is given. dae-jax then trains ``--max-epochs`` with its
normal loop (``dae_jax.train``, its default loop unless ``--loop``), keeping every
epoch's checkpoint, and each is scored on the test set afterwards. Times are training time only
(no evaluation), summed per epoch, the first epoch's compilation included for both; dae-jax's
come from its own metrics.jsonl. Quality is checked once per epoch, so a time to target is an
upper bound for both.

Whole command (issue 15, target 6): each ``--command CONFIG=EPOCHS,...`` (e.g.
``conv32_16_adam:ours=4,5,6``) runs ``dae-jax train --config=CONFIG --config.num_epochs=N`` as a user
does, N ascending, until a run's test PSNR reaches the target; its launch-to-exit wall-clock (start-up,
data, training, validation, test, figures: the record's ``timings``) over Keras' training seconds to
the target (Keras' start-up, data and scoring not counted) is the ratio reported. They run right after
Keras, before this process starts a JAX backend (on a GPU it would hold their memory).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from dae_jax import files


def load_config(args: argparse.Namespace):
    """The reference config with this run's limits; ValueError if the Keras peer would train another recipe."""
    from dae_jax import configs
    from dae_jax.studies.peers import specs

    config = configs.load(args.config)
    config.max_steps_per_epoch, config.max_eval_examples = args.max_steps_per_epoch, args.max_eval_examples
    config.data.source = args.data_source
    config.data.data_dir = args.data_dir
    config.seed = config.seed if args.seed is None else args.seed
    configs.check(config)
    differ = specs.differences(config, specs.recipe(config.model.name))  # Keras trains the model's reference recipe
    if differ:
        raise ValueError(
            f"--config {args.config} differs from {config.model.name}'s reference recipe, which Keras trains, in "
            f"{', '.join(differ)}; time to quality races one recipe: use the model's reference config."
        )
    return config


def fixed_test_set(config) -> tuple:
    """(data, noisy, clean): the loaded data and dae-jax's fixed noisy test images (first max_eval_examples)."""
    from dae_jax import corruptions
    from dae_jax.data import pipeline
    from dae_jax.studies import classical

    data = pipeline.load(config.data)
    images = data.test["image"][: config.max_eval_examples]
    noisy = classical.fixed_noisy(images, config.corruption.to_dict(), config.seed)  # as dae-jax scores them
    return data, noisy, np.asarray(corruptions.to_float(images))


def train_keras(args: argparse.Namespace) -> tuple[list[dict], str, float]:
    """Keras ``fit`` of the config's recipe (``parity.keras_fit``): (per epoch training seconds and test PSNR, the Keras
    version, the noisy inputs' PSNR: equal to dae-jax's when both score the same noisy images).

    Runs in its own process (see main): TensorFlow's thread pools must not share the CPU with a
    dae-jax that is idle in the same process, or the other way round.
    """
    import keras

    from dae_jax.studies import classical, parity
    from dae_jax.studies.peers import keras_models, specs

    config = load_config(args)
    data, noisy, clean = fixed_test_set(config)
    recipe = specs.recipe(config.model.name)
    jit_compile = keras_models.VARIANTS[args.keras_variant]["jit_compile"]
    model, arguments, to_images = parity.keras_fit(config, recipe, data, jit_compile)
    records = []

    class Scorer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.validation = time.perf_counter(), 0.0

        def on_test_begin(self, logs=None):  # fit's validation_data pass (the write-up's): not training time
            self.test_start = time.perf_counter()

        def on_test_end(self, logs=None):
            self.validation += time.perf_counter() - self.test_start

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start - self.validation  # taken before the scoring below
            outputs = self.model.predict(noisy, batch_size=config.eval_batch_size, verbose=0)
            psnr = classical.mean_psnr(np.asarray(to_images(outputs)), clean)
            records.append({"epoch": epoch + 1, "train_seconds": seconds, "test_psnr": psnr, "loss": logs["loss"]})
            print(f"keras epoch {epoch + 1}: {seconds:.1f} s, loss {logs['loss']:.4f}, test psnr {psnr:.2f} dB")

    model.fit(**arguments, epochs=args.epochs, callbacks=[Scorer()], verbose=0)
    return records, keras_models.version(), classical.mean_psnr(noisy, clean)


def train_dae_jax(config, workdir: Path, max_epochs: int) -> tuple[list[dict], dict]:
    """dae-jax's train loop for ``max_epochs`` in one run, then each epoch's checkpoint scored on the test set.

    Returns (records as train_keras', the final test result). An epoch's seconds are its training
    time as the loop measured it (metrics.jsonl: images over training seconds, validation excluded);
    the first includes compiling the step, as Keras' first epoch includes tracing its function.
    """
    import dae_jax
    from dae_jax.eval import evaluation
    from dae_jax.studies import cli_train

    config.num_epochs, config.keep_checkpoints = max_epochs, max_epochs  # every epoch's state is kept
    run = dae_jax.train(config, workdir)
    test_images, _ = evaluation.load_dataset(dae_jax.load(workdir), max_examples=config.max_eval_examples)  # once
    epochs = [r for r in run.history if "images_per_s" in r]
    records = []
    for record, seconds in zip(epochs, cli_train.epoch_seconds(epochs, config.batch_size), strict=True):
        test = dae_jax.evaluate(dae_jax.load(workdir, step=record["step"]), test_images)
        records.append(
            {
                "epoch": record["epoch"],
                "train_seconds": seconds,
                "test_psnr": test["psnr"],
                "loss": record["train_loss"],
            }
        )
        print(f"dae-jax epoch {record['epoch']}: {seconds:.1f} s, test psnr {test['psnr']:.2f} dB", flush=True)
    return records, run.metrics


def time_to(records: list[dict], target: float) -> dict:
    """Cumulative training seconds at the first epoch whose test PSNR >= target (None if never)."""
    total = 0.0
    for r in records:
        total += r["train_seconds"]
        if r["test_psnr"] >= target:
            return {"epoch": r["epoch"], "seconds": total, "test_psnr": r["test_psnr"]}
    return {"epoch": None, "seconds": None, "test_psnr": records[-1]["test_psnr"] if records else None}


def whole_commands(args: argparse.Namespace, target: float, keras_seconds: float | None, workdir: Path) -> list:
    """Each ``--command``'s fewest-epochs run at ``target``, with its wall-clock over Keras' seconds to target."""
    from dae_jax.studies import cli_train

    given = {
        "data.source": args.data_source,
        "data.data_dir": args.data_dir,
        "seed": args.seed,
        "max_steps_per_epoch": args.max_steps_per_epoch,
        "max_eval_examples": args.max_eval_examples,
    }
    overrides = {key: value for key, value in given.items() if value is not None}  # the rest: the config's
    results = []
    for config, epochs in args.command:
        result = cli_train.fewest_epochs(config, epochs, target, workdir, overrides)
        reached = result["at_target"]
        result["over_keras"] = reached["wall_seconds"] / keras_seconds if reached and keras_seconds else None
        print(f"whole command {result['config']}: {result['over_keras']} of Keras' time to target", flush=True)
        results.append(result)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="time_to_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="conv32_16_adam", help="a config in experiments/configs")
    parser.add_argument("--workdir", required=True, help="a new folder for dae-jax's runs (train/, commands/)")
    parser.add_argument("--seed", type=int, default=None, help="both sides' seed (default: the config's)")
    parser.add_argument("--epochs", type=int, default=10, help="Keras epochs")
    parser.add_argument("--target-epochs", type=int, default=None, help="target: Keras' PSNR after this epoch")
    parser.add_argument("--target-psnr", type=float, default=None, help="target PSNR in dB (instead of Keras')")
    parser.add_argument("--max-epochs", type=int, default=None, help="dae-jax's epoch limit (default --epochs)")
    parser.add_argument("--keras-variant", default="fit", choices=["fit", "fit_xla"], help="fit without/with XLA")
    parser.add_argument("--max-steps-per-epoch", type=int, default=None, help="shorter epochs (for a quick check)")
    parser.add_argument("--max-eval-examples", type=int, default=None, help="fewer test images (quick check)")
    parser.add_argument("--data-source", default="auto", help="auto | idx | tfds | embedded (see README, Data)")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR)")
    parser.add_argument(
        "--loop",
        choices=("auto", "host", "resident"),
        default="auto",
        help="dae-jax's training loop: its default, the tf.data host loop, or the device-resident fast path",
    )
    parser.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="CONFIG=N,...",
        help="also time whole dae-jax train runs of CONFIG (a name or path, :variant allowed) for N epochs, "
        "each with the config's own loop (--loop is for the in-process run)",
    )
    parser.add_argument("--out", default=None, help="write the report here (.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out report")
    args = parser.parse_args(argv)
    if args.out:
        try:
            files.check_output(args.out, args.overwrite)
        except ValueError as e:
            parser.error(str(e))
    args.target_epochs = args.target_epochs or args.epochs
    args.max_epochs = args.max_epochs or args.epochs
    commands = []  # (CONFIG, its epochs ascending) of each --command CONFIG=N[,N...]
    for spec in args.command:
        config, _, epochs = spec.rpartition("=")
        if not config or not all(e.strip().isdigit() and int(e) > 0 for e in epochs.split(",")):
            parser.error(f"--command {spec!r}: write CONFIG=N[,N...] with N positive epochs, e.g. conv32_16_adam=10.")
        commands.append((config, sorted({int(e) for e in epochs.split(",")})))
    args.command = commands
    from dae_jax import configs
    from dae_jax.studies import cli_train

    try:  # every config is read before any training: a bad one fails now, not after Keras' minutes
        load_config(args)
        for config, _ in args.command:
            configs.load(config)
    except ValueError as e:
        parser.error(str(e))
    labels = [cli_train.label(config) for config, _ in args.command]
    if len(set(labels)) < len(labels):
        parser.error(f"--command: two configs share a run folder name ({labels}); give each once.")
    if not 1 <= args.target_epochs <= args.epochs:
        parser.error(f"--target-epochs must be in [1, --epochs={args.epochs}], got {args.target_epochs}.")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import jax

    from dae_jax import sharding
    from dae_jax.studies.bench_report import machine

    config = load_config(args)
    config.device_resident = {"auto": None, "host": False, "resident": True}[args.loop]
    sharding.use_cpu_cores(config.batch_size, config.eval_batch_size)  # as dae-jax train runs
    workdir = Path(args.workdir)
    if workdir.exists() and any(workdir.iterdir()):  # a run left there would resume, and its times be wrong
        raise SystemExit(f"time_to_quality: {workdir} already holds runs; pass a new --workdir.")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        keras_records, keras_version, keras_noisy_psnr = pool.submit(train_keras, args).result()
    target = args.target_psnr or keras_records[args.target_epochs - 1]["test_psnr"]
    print(f"target test PSNR: {target:.2f} dB", flush=True)
    keras_time = time_to(keras_records, target)
    # Before this process starts a JAX backend: on a GPU it would hold the memory the commands' processes need.
    commands = whole_commands(args, target, keras_time["seconds"], workdir / "commands")
    jax_records, result = train_dae_jax(config, workdir / "train", args.max_epochs)
    jax_time = time_to(jax_records, target)
    ratio = jax_time["seconds"] / keras_time["seconds"] if jax_time["seconds"] and keras_time["seconds"] else None
    report = {
        "command": " ".join(["python -m dae_jax.studies.time_to_quality", *(sys.argv[1:] if argv is None else argv)]),
        "config": args.config,
        "seed": config.seed,
        "data_source": result["data_source"],
        "num_test_images": result["num_test_images"],
        # Same noisy test images on both sides: the PSNR of the noisy inputs must agree.
        "noisy_input_psnr": {"dae-jax": result["noisy_psnr"], "keras": keras_noisy_psnr},
        "machine": machine(),
        "versions": {"keras": keras_version, "jax": jax.__version__},
        "keras_variant": args.keras_variant,
        "dae_jax_loop": args.loop,
        "target_psnr": target,
        "time_to_target": {"dae-jax": jax_time, "keras": keras_time, "dae_jax_over_keras": ratio},
        "epochs": {"dae-jax": jax_records, "keras": keras_records},
        "whole_command": commands,
    }
    print(
        f"time to {target:.2f} dB: dae-jax {jax_time['seconds']} s (epoch {jax_time['epoch']}), keras "
        f"{keras_time['seconds']} s (epoch {keras_time['epoch']}); dae-jax / keras = {ratio}",
        flush=True,
    )
    if args.out:
        files.write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
