"""Parity study: a reference config's faithful dae-jax run against the write-up's own Keras 3 code, over seeds.

For each config and seed, three runs train the same model for the same epochs on all 60,000 MNIST
training images:
- ``dae-jax``: ``dae-jax train --config=experiments/configs/NAME.py --config.seed=S`` (the faithful
  variant, dae_jax.variants);
- ``dae-jax:ours``: the same with ``NAME.py:ours`` (fresh noise, held-out validation, warm-up + cosine);
- ``keras``: the write-up's code in Keras 3 (TensorFlow backend, in its own process): the same layers
  (dae_jax.studies.peers.keras_models) ending in a sigmoid, ``x_train_noisy`` drawn once with numpy's
  seeded generator, ``compile(optimizer, "binary_crossentropy")`` with the config's optimizer and
  Keras-default hyperparameters, ``fit(x_train_noisy, x_train, epochs, batch_size, shuffle=True,
  validation_data=(x_test_noisy, x_test))``. ``jit_compile=False``: XLA on TensorFlow's CPU backend is
  about 5x slower here (results/benchmarks/peer_variants.md) and computes the same step.
Every model is scored by one scorer (dae_jax.studies.classical.score) on one fixed noisy test set: the
10,000 test images with the evaluation noise of seed 0. The table gives mean ± std (n-1) per framework
and the difference from Keras with its 95% Welch t interval.

Each run's score is kept in --workdir (``NAME/FRAMEWORK_seedS.json``; the dae-jax runs' workdirs beside
it), so a stopped study continues where it stopped. Writes --out: result.json, README.md, command.txt.

  DAE_JAX_MNIST_DIR=../shared/data/mnist python experiments/parity.py
Cost here (2-core CPU): about 45 minutes for both configs, 3 seeds, 10 epochs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dae_jax import files
from dae_jax.studies import files as study_files
from dae_jax.studies.parity import difference, load_config, summary, train_keras

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("dae-jax", "dae-jax:ours", "keras")
METRICS = ("psnr", "ssim", "bce")
SCORING_SEED = 0  # the evaluation noise every model is scored on


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["conv32_adadelta", "conv32_16_adam"], help="reference configs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    p.add_argument("--max_steps_per_epoch", type=int, default=None, help="shorter epochs (a quick check)")
    p.add_argument("--max_eval_examples", type=int, default=None, help="score fewer test images (a quick check)")
    study_files.add_data_args(p)
    p.add_argument("--workdir", type=Path, default=ROOT / "workdirs" / "parity", help="runs and their scores")
    study_files.add_output_args(p, ROOT / "results" / "parity")
    return p.parse_args(argv)


def fixed_test_set(name: str, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) float32 [N, 28, 28, 1]: the config's test images with seed 0's evaluation noise."""
    from dae_jax import corruptions
    from dae_jax.data import pipeline
    from dae_jax.studies import classical

    config = load_config(name, args)
    images = pipeline.load(config.data).test["image"][: args.max_eval_examples]
    noisy = classical.fixed_noisy(images, config.corruption.to_dict(), SCORING_SEED)
    return noisy, np.asarray(corruptions.to_float(images))


def train_dae_jax(name: str, variant: str, seed: int, workdir: Path, args: argparse.Namespace) -> float:
    """``dae-jax train`` of the config's ``variant`` in a subprocess (its output to workdir/train.log); seconds."""
    config = f"--config=experiments/configs/{name}.py" + (":ours" if variant == "ours" else "")
    command = ["dae-jax", "train", config, f"--workdir={workdir}", f"--config.seed={seed}"]
    command += [f"--config.data.source={args.source}"] + (
        [f"--config.data.data_dir={args.data_dir}"] if args.data_dir else []
    )
    for field in ("max_steps_per_epoch", "max_eval_examples"):
        if getattr(args, field):
            command.append(f"--config.{field}={getattr(args, field)}")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"parity: {' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    files.write_text(workdir / "train.log", done.stdout + done.stderr)
    return seconds


def run(name: str, framework: str, seed: int, test: tuple[np.ndarray, np.ndarray], args) -> dict:
    """One run's scores on the fixed test set (kept in --workdir: a finished run is not trained again)."""
    import dae_jax
    from dae_jax.studies import classical

    kept = args.workdir / name / f"{framework.replace(':', '_')}_seed{seed}.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    noisy, clean = test
    if framework == "keras":
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            outputs, seconds, version = pool.submit(train_keras, name, seed, noisy, args).result()
    else:
        workdir = kept.with_suffix("")
        seconds = train_dae_jax(name, framework.partition(":")[2] or "faithful", seed, workdir, args)
        outputs, version = dae_jax.load(workdir).denoise(noisy), f"dae-jax {dae_jax.__version__}"
    record = {"config": name, "framework": framework, "seed": seed, "seconds": seconds, "version": version}
    record |= classical.score(np.asarray(outputs, np.float32), clean)
    kept.parent.mkdir(parents=True, exist_ok=True)  # a Keras run first (--frameworks keras) finds none
    files.write_text(kept, json.dumps(record, indent=2) + "\n")
    print(f"{name} {framework} seed {seed}: {record['psnr']:.3f} dB, {seconds:.0f} s", flush=True)
    return record


def tabulate(records: list[dict]) -> dict:
    """{config: {"frameworks": {framework: {metric: summary}}, "vs_keras": {framework: {metric: difference}}}}."""
    table = {}
    for name in dict.fromkeys(r["config"] for r in records):
        runs = {f: [r for r in records if r["config"] == name and r["framework"] == f] for f in FRAMEWORKS}
        runs = {f: rs for f, rs in runs.items() if rs}
        entry = {"frameworks": {f: {m: summary([r[m] for r in rs]) for m in METRICS} for f, rs in runs.items()}}
        if "keras" in runs:
            keras = runs["keras"]
            entry["vs_keras"] = {
                f: {m: difference([r[m] for r in rs], [r[m] for r in keras]) for m in METRICS}
                for f, rs in runs.items()
                if f != "keras"
            }
        table[name] = entry
    return table


def _cell(s: dict, digits: int) -> str:
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["std"] is not None else "") + f" (n={s['n']})"


def markdown(table: dict, command: str, versions: dict) -> str:
    lines = ["# Parity: faithful dae-jax vs the write-ups' Keras 3 code", "", __doc__.split("\n\n")[1], ""]
    lines += [f"Command: `{command}`", "", f"Versions: {', '.join(sorted(set(versions.values())))}", ""]
    for name, entry in table.items():
        lines += [f"## {name}", "", "| framework | test PSNR (dB) | SSIM | BCE |", "|---|---|---|---|"]
        for f, s in entry["frameworks"].items():
            lines.append(f"| {f} | {_cell(s['psnr'], 3)} | {_cell(s['ssim'], 4)} | {_cell(s['bce'], 4)} |")
        for f, d in entry.get("vs_keras", {}).items():
            ci = d["psnr"]["ci95"]
            interval = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "n/a"
            lines.append(f"\n{f} − keras: PSNR {d['psnr']['diff']:+.3f} dB, 95% interval {interval}.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    study_files.claim(args.out, ["result.json", "README.md"], args.overwrite)
    records = []
    for name in args.configs:
        test = fixed_test_set(name, args)
        records += [run(name, f, seed, test, args) for seed in args.seeds for f in args.frameworks]
    table = tabulate(records)
    command = study_files.command_line("parity.py", argv)
    versions = {r["framework"]: r["version"] for r in records}
    result = {"command": command, "scoring_seed": SCORING_SEED, "table": table, "runs": records}
    pages = {"result.json": json.dumps(result, indent=2) + "\n", "README.md": markdown(table, command, versions)}
    study_files.write(args.out, pages, command)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
