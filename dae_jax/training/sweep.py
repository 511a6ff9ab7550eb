"""Grid sweeps: every combination of config field values trained in its own workdir, then one table and figure.

``dae-jax sweep --config=C --workdir=W --grid corruption.sigma=0.1,0.3 --grid optimizer=adam,adadelta``
trains the 4 points into ``W/<point>/`` (``W/corruption.sigma=0.1,optimizer=adam/`` ...) with
``dae_jax.training.loop.train_and_evaluate``, so a rerun resumes every point where it stopped, then writes
``W/summary.md`` (one row per point) and ``W/summary.png`` (test PSNR and SSIM per point).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from dae_jax import configs, files
from dae_jax.eval import figures
from dae_jax.training import preemption
from dae_jax.training.loop import train_and_evaluate

log = logging.getLogger(__name__)

Grid = list[tuple[str, list]]  # (dotted config field, values)
COLUMNS = ("psnr", "noisy_psnr", "ssim", "noisy_ssim", "bce", "mse")


def parse_grid(texts: Sequence[str], config: ml_collections.ConfigDict) -> Grid:
    """[("corruption.sigma", [0.1, 0.3]), ...] from ``FIELD=V1,V2,...`` texts, each value checked on ``config``."""
    grid = []
    for text in texts:
        field, sep, values = text.partition("=")
        try:
            values = [configs.parse_value(config, field.strip(), v.strip()) for v in values.split(",") if v.strip()]
        except ValueError as e:
            raise ValueError(f"--grid {text!r}: {e}") from None
        if not sep or not field or not values:
            raise ValueError(f"--grid {text!r}: write FIELD=V1,V2,... e.g. --grid corruption.sigma=0.1,0.3.")
        for value in values:
            configs.set_field(copy.deepcopy(config), field.strip(), value)
        grid.append((field.strip(), values))
    return grid


def points(config: ml_collections.ConfigDict, grid: Grid) -> list[tuple[str, dict, ml_collections.ConfigDict]]:
    """(name, {field: value}, config) for every combination; the name is the point's workdir."""
    out = []
    for combo in itertools.product(*(values for _, values in grid)):
        fields = {field: value for (field, _), value in zip(grid, combo, strict=True)}
        point = copy.deepcopy(config)
        for field, value in fields.items():
            configs.set_field(point, field, value)
        name = ",".join(f"{field}={value}" for field, value in fields.items()).replace("/", "_")
        out.append((name, fields, point))
    return out


def run(
    config: ml_collections.ConfigDict, workdir: str | Path, grid: Grid, command: str = "", stop_on_error: bool = False
) -> list[dict]:
    """Trains every point of ``grid`` into ``workdir/<point>/``, then writes summary.md and summary.png.

    A point that fails is recorded with its error and the sweep goes on (``stop_on_error``: raise).
    Returns one row per point: name, fields, metrics (or error), minutes.
    """
    workdir = Path(workdir)
    rows = []
    for i, (name, fields, point) in enumerate(points(config, grid)):
        log.info("sweep point %d: %s", i + 1, name)
        start = time.perf_counter()
        row = {"name": name, "fields": fields}
        try:
            row["metrics"] = train_and_evaluate(point, workdir / name).metrics
        except preemption.Preempted:
            raise  # a stop asked for (SIGTERM, Ctrl-C) stops the sweep; a rerun resumes its points
        except Exception as e:  # one failing point (NaN loss, bad value) must not lose the others
            if stop_on_error:
                raise
            row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"
            log.error("sweep point %s failed: %s", name, row["error"])
        row["minutes"] = (time.perf_counter() - start) / 60
        rows.append(row)
    write_summary(rows, workdir, command)
    return rows


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary_table(rows: list[dict]) -> str:
    """Markdown: one row per point, its field values, test metrics (or error) and time."""
    fields = list(rows[0]["fields"])
    lines = [
        "| " + " | ".join([*fields, *COLUMNS, "minutes", "run"]) + " |",
        "|" + "---|" * (len(fields) + len(COLUMNS) + 2),
    ]
    for row in rows:
        cells = [str(row["fields"][f]) for f in fields]  # as given on the command line
        if "metrics" in row:
            cells += [_cell(row["metrics"].get(c)) for c in COLUMNS]
        else:
            cells += [f"failed: {row['error']}"] + [""] * (len(COLUMNS) - 1)
        cells += [f"{row['minutes']:.1f}", f"[{row['name']}]({row['name']}/)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_summary(rows: list[dict], workdir: Path, command: str = "") -> None:
    """workdir/summary.md (table, command) and workdir/summary.png (PSNR and SSIM bars per point)."""
    workdir.mkdir(parents=True, exist_ok=True)  # every point may have failed before making its own folder
    header = ["# Sweep", "", *([f"Command: `{command}`", ""] if command else [])]
    files.write_text(workdir / "summary.md", "\n".join([*header, summary_table(rows), ""]))

    def series(key: str) -> list[float]:
        values = [row.get("metrics", {}).get(key) for row in rows]
        return [math.nan if v is None else v for v in values]

    figures.metric_bars(
        [row["name"] for row in rows],
        {
            "test PSNR (dB)": {"output": series("psnr"), "noisy input": series("noisy_psnr")},
            "test SSIM": {"output": series("ssim"), "noisy input": series("noisy_ssim")},
        },
        workdir / "summary.png",
    )
