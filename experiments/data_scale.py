"""Data at scale: memory, speed and start-up of streamed image folders as the folder grows 10x.

For each N (default 2,000 and 20,000) it generates a folder of N JPEG pictures of 256-640 px with
real structure (gradients, drawn shapes, text; ``picture``), prepares it once (``dae-jax data
prepare``, timed: the one pass over the files), then runs ``dae-jax train`` on it, streamed: conv32 on
random 64x64 gray crops, ``--epochs`` epochs of ``--steps`` steps of batch 128 (the smallest
folder's training split holds 12 such batches: every N trains the same number of steps). The reference ("in memory"):
the same model and batch on a folder of 2,000 pictures of exactly 64x64, read whole into memory
(``data.stream=False``; device-resident where dae-jax picks it). Each train command runs in its own
process; reported per run: peak RSS (the OS's ``ru_maxrss`` of that process, ``os.wait4``), train
images/s of the last epoch (compilation excluded), and seconds from launch to the "training loop" log line
(every pass over the data done; the first step follows after compiling it). Each picture is centre-
cropped to 256x256 after decoding (``data.center_crop``): every picture is still decoded whole, and the
few evaluation images then share one size, so the runs spend their time training, not compiling.

  python experiments/data_scale.py [--sizes 2000 20000] [--steps 12] [--epochs 3] [--work /tmp/dae_jax_data_scale]

Writes results/data_scale/README.md (the table), data_scale.json (every number) and command.txt.
Generated data stays under --work.
Targets (dae-jax issue 14): RSS at 20,000 within 10% of 2,000; streamed >= 90% of in-memory images/s;
training starts within 30 s of launch for any N once prepared.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dae_jax.studies import files as study_files

ROOT = Path(__file__).resolve().parents[1]
DAE_JAX = str(Path(sys.executable).parent / "dae-jax")


def picture(path: Path, seed: int, size: tuple[int, int] | None = None) -> None:
    """A JPEG of 256-640 px (or ``size``): a colour gradient, a few discs and boxes, a line of text."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    h, w = size or tuple(int(v) for v in rng.integers(256, 641, 2))
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, int(rng.integers(256)))], -1).astype(np.uint8)
    image = Image.fromarray(base)
    pen = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, x0 + int(rng.integers(4, max(5, w // 3))), y0 + int(rng.integers(4, max(5, h // 3)))]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (pen.ellipse if rng.random() < 0.5 else pen.rectangle)(box, fill=colour)
    pen.text((int(rng.integers(0, max(1, w - 60))), int(rng.integers(0, max(1, h - 12)))), f"#{seed}", fill="white")
    image.save(path, quality=90)


def make_folder(directory: Path, count: int, size: tuple[int, int] | None = None) -> Path:
    """``count`` pictures in ``directory`` (kept when complete: a rerun reuses them), 1,000 per subfolder."""
    done = directory / ".complete"
    if not done.exists():
        paths = [directory / f"part{i // 1000:03d}" / f"{i:06d}.jpg" for i in range(count)]
        for folder in {p.parent for p in paths}:
            folder.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            list(pool.map(picture, paths, range(count), [size] * count, chunksize=64))
        done.touch()
    return directory


def timed_run(command: list[str]) -> dict:
    """Runs ``command``: its exit code, seconds to the "training loop" log line, peak RSS (MiB), its stderr tail."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, tail = None, []
    for line in proc.stdout:
        if ready is None and line.startswith("training loop:"):
            ready = time.perf_counter() - start
        tail = [*tail[-20:], line]
    _, status, usage = os.wait4(proc.pid, 0)
    return {"code": os.waitstatus_to_exitcode(status), "ready_s": ready, "rss_mib": usage.ru_maxrss / 1024,
            "tail": "".join(tail)}  # fmt: skip


def train(folder: Path, data_dir: Path, workdir: Path, steps: int, epochs: int, streamed: bool) -> dict:
    """``dae-jax train`` of conv32 on 64x64 gray views of ``folder``; its measurements (``timed_run``)."""
    command = [
        DAE_JAX, "train", "--config=experiments/configs/conv32_adadelta.py", f"--workdir={workdir}",
        "--config.data.dataset=image_folder", f"--config.data.image_dir={folder}", f"--config.data.data_dir={data_dir}",
        "--config.image_shape=(64, 64, 1)", f"--config.data.stream={streamed}", f"--config.num_epochs={epochs}",
        f"--config.max_steps_per_epoch={steps}", "--config.max_eval_examples=64", "--config.eval_batch_size=64",
        "--config.num_figure_images=2", "--config.data.center_crop=256",
    ]  # fmt: skip
    result = timed_run(command)
    if result["code"] != 0:
        raise SystemExit(f"dae-jax train on {folder} failed:\n{result['tail']}")
    history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return result | {"images_per_s": history[-1]["images_per_s"]}


def prepare(folder: Path, data_dir: Path) -> float:
    """Seconds of ``dae-jax data prepare --image-dir folder`` (the one pass over the files)."""
    start = time.perf_counter()
    command = [DAE_JAX, "data", "prepare", f"--image-dir={folder}", f"--data-dir={data_dir}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def decode_ms(folder: Path, count: int = 300) -> float:
    """Milliseconds of one core to decode one of the folder's pictures and cut its training view."""
    from dae_jax.data import image_files, views

    data = [p.read_bytes() for p in sorted(folder.rglob("*.jpg"))[:count]]
    start = time.perf_counter()
    for i, blob in enumerate(data):
        image = views.prepare(image_files.decode(blob, 1, name=str(i)), 256, None)
        views.train_view(image, (64, 64), np.random.default_rng(i))
    return (time.perf_counter() - start) / len(data) * 1e3


def bound(reference: dict, decode: float, cores: int) -> float:
    """Images/s that ``cores`` cores can give when each image costs the in-memory step's core time plus ``decode``
    ms: the most a streamed run can reach here with the pipeline and the step perfectly overlapped."""
    step_ms = cores * 1e3 / reference["images_per_s"]
    return cores * 1e3 / (step_ms + decode)


def table(rows: list[dict], reference: dict) -> str:
    lines = [
        "| data | images | prepare s | launch to training loop s | peak RSS MiB | train images/s | vs in memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in [*rows, reference]:
        ratio = r["images_per_s"] / reference["images_per_s"]
        lines.append(
            f"| {r['name']} | {r['count']:,} | {r['prepare_s']:.0f} | {r['ready_s']:.1f} | {r['rss_mib']:,.0f} "
            f"| {r['images_per_s']:,.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def page(rows: list[dict], decode: float, cores: int, most: float, steps: int, epochs: int) -> str:
    """results/data_scale/README.md: the table, the decode cost and the bound it sets on this machine."""
    rates = [r["images_per_s"] / most for r in rows[1:]]
    return (
        f"# Streamed image folders at scale\n\n{table(rows[1:], rows[0])}\n\n"
        f"Decoding a 256-640 px picture and cutting its view costs {decode:.2f} ms of one core (measured in this "
        f"run). With {cores} cores shared by the input threads and the step, the in-memory step's core time plus "
        f"that decode allow at most {most:,.0f} images/s, both overlapped perfectly; the streamed runs reach "
        f"{min(rates):.0%}-{max(rates):.0%} of that bound.\n\n"
        f"conv32 on 64x64 gray views, batch 128, {steps} steps an epoch, images/s of epoch {epochs} of {epochs}; "
        "peak RSS of the train process. From `experiments/data_scale.py` (its docstring says what each column "
        "measures).\n"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    p.add_argument("--steps", type=int, default=12, help="train steps of batch 128 per epoch")
    p.add_argument("--epochs", type=int, default=3, help="epochs; the last one's images/s is reported")
    p.add_argument("--work", type=Path, default=Path("/tmp/dae_jax_data_scale"), help="generated data, runs")
    study_files.add_output_args(p, ROOT / "results" / "data_scale")
    args = p.parse_args(argv)
    study_files.claim(args.out, ["README.md", "data_scale.json"], args.overwrite)
    stamp, data_dir, rows = time.strftime("%Y%m%d-%H%M%S"), args.work / "tfds", []
    for n in [None, *args.sizes]:  # None: the in-memory reference
        folder = args.work / ("fixed64" if n is None else f"n{n}")
        make_folder(folder, n or 2000, (64, 64) if n is None else None)
        row = {"name": "in memory, 64x64" if n is None else "streamed, 256-640 px", "count": n or 2000}
        row["prepare_s"] = prepare(folder, data_dir)
        workdir = args.work / "runs" / f"{folder.name}-{stamp}"
        row |= train(folder, data_dir, workdir, args.steps, args.epochs, streamed=n is not None)
        rows.append({k: v for k, v in row.items() if k != "tail"})
        print(json.dumps(rows[-1]), flush=True)
    cores, decode = len(os.sched_getaffinity(0)), decode_ms(args.work / f"n{args.sizes[0]}")
    most = bound(rows[0], decode, cores)
    text = page(rows, decode, cores, most, args.steps, args.epochs)
    summary = {"runs": rows, "decode_ms": decode, "cores": cores, "bound_images_per_s": most}
    pages = {"README.md": text, "data_scale.json": json.dumps(summary, indent=1) + "\n"}
    study_files.write(args.out, pages, study_files.command_line("data_scale.py", argv))


if __name__ == "__main__":
    main()
