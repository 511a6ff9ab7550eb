"""Figures: a run's denoising grid, loss curves and code maps; the studies' bars and heat maps.

Drawn with matplotlib's object API on the Agg canvas (``matplotlib.figure.Figure``), never through
pyplot: importing dae-jax does not switch a notebook's backend. Each figure is written to a
temporary name and renamed (``dae_jax.files``).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

from dae_jax import corruptions, files
from dae_jax.nn import losses


def _subplots(rows: int, columns: int, figsize, **kwargs) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, columns, squeeze=False, **kwargs)


def _save(fig: Figure, path: str | Path) -> None:
    with files.atomic(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def _mosaic(images, columns: int, height: int) -> np.ndarray:
    """Images [h, w, C] in [0, 1] side by side in ``columns`` slots (missing ones blank), white between and below:
    [height, ..., C]. A smaller image is enlarged by a whole factor (pixels repeated), so a 7x7 code map is as
    large as the 28x28 digit under it; an empty row is blank."""
    tiles = []
    for im in (np.clip(np.asarray(im, np.float32), 0, 1) for im in images):
        k = max(1, height // im.shape[0])
        tiles.append(im.repeat(k, axis=0).repeat(k, axis=1))
    c, width = max((t.shape[-1] for t in tiles), default=1), max((t.shape[1] for t in tiles), default=height)
    slots = [np.ones((height, width, c), np.float32) for _ in range(columns)]
    for slot, tile in zip(slots, tiles, strict=False):
        slot[: tile.shape[0], : tile.shape[1]] = tile  # a gray image broadcasts over RGB
    gap = np.ones((height, max(1, height // 14), c), np.float32)
    return np.concatenate([x for slot in slots for x in (slot, gap)][:-1], axis=1)


def image_rows(rows: dict[str, np.ndarray], path: str | Path, title: str | None = None) -> None:
    """One row per entry (label -> images [N, H, W, C] in [0, 1]), N images per row, saved as PNG.

    Each row is one picture of its images side by side: one matplotlib axes per row, not per image,
    which made this figure take about a second to draw.
    """
    n = max(len(v) for v in rows.values())
    height = max(np.shape(im)[0] for images in rows.values() for im in images)
    fig, axes = _subplots(len(rows), 1, (1.2 * n, 1.3 * len(rows)))
    for ax, (label, images) in zip(axes[:, 0], rows.items(), strict=True):
        ax.axis("off")
        mosaic = _mosaic(images, n, height)
        ax.imshow(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, loc="left", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def loss_curves(records: list[dict], loss: str, path: str | Path, title: str | None = None) -> None:
    """Train and validation ``loss`` ("bce", "mse" or "psnr") per epoch, from the records of ``metrics.jsonl``.

    The train loss is drawn as the validation score it is a multiple of (``losses.SCORE_SIGNS``): the "psnr"
    loss, minus the PSNR, as the PSNR.
    """
    epochs = [r["epoch"] for r in records]
    sign = losses.SCORE_SIGNS[loss]
    fig, axes = _subplots(1, 1, (5, 3.2))
    ax = axes[0, 0]
    ax.plot(epochs, [sign * r["train_loss"] for r in records], "o-", label=f"train {loss}")
    if all(f"val_{loss}" in r for r in records):  # a folder too small for a validation split has none
        ax.plot(epochs, [r[f"val_{loss}"] for r in records], "s-", label=f"validation {loss}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss)
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def code_maps(codes: np.ndarray, noisy: np.ndarray, clean: np.ndarray, path: str | Path, channels=None) -> None:
    """Per digit (columns): two code channels as images, then the noisy and the clean digit.

    codes: [N, h, w, c] spatial codes; each channel is scaled to its own range for display.
    channels: default the two that vary most over these digits (a relu channel may be dead).
    """
    if channels is None:
        channels = sorted(np.argsort(codes.reshape(-1, codes.shape[-1]).std(axis=0))[-2:])
    rows = {}
    for ch in channels:
        maps = codes[..., ch]
        span = np.ptp(maps) or 1.0
        rows[f"code channel {ch}"] = ((maps - maps.min()) / span)[..., None]
    rows |= {"noisy": noisy, "clean": clean}
    image_rows(rows, path)


def metric_bars(labels: list[str], panels: dict[str, dict[str, list[float]]], path: str | Path) -> None:
    """One panel per metric (title -> {series: one value per label}): horizontal bars grouped by label.

    NaN values (a failed run) leave their bar out.
    """
    fig, axes = _subplots(1, len(panels), (4.5 * len(panels), 1.2 + 0.45 * len(labels) * 2), sharey=True)
    y = np.arange(len(labels))
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        height = 0.8 / len(series)
        for i, (name, values) in enumerate(series.items()):
            ax.barh(y + (i - (len(series) - 1) / 2) * height, values, height, label=name)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, labels, fontsize=8)
    axes[0, 0].invert_yaxis()  # first point on top, as in the table
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def heatmap(values: np.ndarray, rows: list[str], columns: list[str], path: str | Path, title: str, label: str) -> None:
    """A matrix [len(rows), len(columns)] as coloured cells with their values written in (NaN: blank)."""
    values = np.asarray(values, np.float64)
    fig, axes = _subplots(1, 1, (1.5 + 1.3 * len(columns), 1.2 + 0.6 * len(rows)))
    ax = axes[0, 0]
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=8, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained on")
    middle = np.nanmean(values)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < middle else "black")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def write_run_figures(setup, variables: dict, examples: list[dict], history: list[dict], workdir: Path) -> None:
    """denoising.png (noisy / denoised / clean), loss.png, and codes.png when the code is spatial.

    ``examples``: the first test examples (``{"image", "row"[, "input"]}``, uint8) with the fixed test
    noise; whole images of any size are shown whole (and get no codes.png). ``setup``: the run's
    ``dae_jax.setup.Setup``; ``variables``: its trained params and statistics; ``history``: its
    per-epoch records (metrics.jsonl).
    """
    from dae_jax.eval import whole_image

    config, model = setup.config, setup.model
    title = f"{config.model.name}, {config.corruption.name} {config.corruption.get('sigma', '')}"
    loss_curves(history, config.loss, workdir / "loss.png", title=title)
    if any(e["image"].shape != setup.image_shape for e in examples):  # whole images of their own sizes
        triples = [whole_image.denoise_example(setup, variables, e, setup.keys.eval) for e in examples]
        rows = {name: [np.asarray(t[i][0]) for t in triples] for i, name in enumerate(("clean", "noisy", "denoised"))}
        image_rows({k: rows[k] for k in ("noisy", "denoised", "clean")}, workdir / "denoising.png", title=title)
        return

    @jax.jit  # one compiled program: run op by op, the noise and the model took about 2 s to dispatch
    def forward(variables, images, given, rows):
        noisy = setup.eval_noisy(corruptions.to_float(given), rows)
        codes, skips = model.apply(variables, noisy, method=model.encode_with_skips)
        denoised = setup.output(variables, codes, skips=skips, method=model.decode)
        return corruptions.to_float(images), noisy, codes, denoised

    images = np.stack([e["image"] for e in examples])
    given = np.stack([e.get("input", e["image"]) for e in examples])
    clean, noisy, codes, denoised = forward(variables, images, given, np.asarray([e["row"] for e in examples]))
    rows = {"noisy": np.asarray(noisy), "denoised": np.asarray(denoised), "clean": np.asarray(clean)}
    image_rows(rows, workdir / "denoising.png", title=title)
    if codes.ndim == 4:
        code_maps(np.asarray(codes), rows["noisy"], rows["clean"], workdir / "codes.png")
