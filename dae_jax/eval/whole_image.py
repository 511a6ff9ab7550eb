"""Whole-image evaluation: a fully convolutional model scored on each test image at its own size.

Each image gets the fixed evaluation noise at its own size (``Setup.eval_noisy`` keyed by its row,
after the host corruptions the pipeline keyed by it), is edge-padded up to a multiple of
``BUCKET`` pixels (itself a multiple of the model's stride) so that images of nearby sizes share one
compiled program, goes through the model, and is cropped back; images over ``max_pixels`` are
processed in overlapping tiles (``tiling.tiled``). The metrics of each image (of the output and of
the noisy input) are averaged over images, as the array evaluation averages them. A model with
dense or reshape layers takes one size only: it is scored on the images' centre views instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import corruptions
from dae_jax.data import views
from dae_jax.eval import metrics, tiling
from dae_jax.nn import layers, models

BUCKET = 64  # padded sides are multiples of this (and of the model's stride)
MAX_PIXELS = 1024 * 1024  # larger images are tiled


def stride(model: models.Autoencoder) -> int | None:
    """The factor a fully convolutional model's sides must be multiples of; None when it is not fully
    convolutional (dense, flatten, reshape or resize layers fix its size)."""
    steps = layers.plan(model.encoder) + layers.plan(model.decoder)
    if any(s["op"] in ("dense", "flatten", "reshape") or s.get("resize_to") or s["op"] == "resize" for s in steps):
        return None
    downs = sum(1 for s in layers.plan(model.encoder) if s.get("strides", 1) == 2 or s["op"] == "pool" or "pool" in s)
    return 2**downs


def _padded(image: jax.Array, multiple: int) -> jax.Array:
    """[1, H, W, C] edge-padded at the bottom and right up to multiples of ``multiple``."""
    _, h, w, _ = image.shape
    return jnp.pad(image, ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="edge")


def whole_output(setup, variables: dict, noisy: np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The model's output for one noisy float image [H, W, C] of any size: [H, W, C]."""
    multiple = int(np.lcm(BUCKET, stride(setup.model) or 1))
    apply = _apply(setup)

    def run(batch: np.ndarray) -> np.ndarray:  # [n, h, w, C] -> [n, h, w, C], h and w any
        h, w = batch.shape[1:3]
        out = [np.asarray(apply(variables, _padded(jnp.asarray(x[None]), multiple)))[0, :h, :w] for x in batch]
        return np.stack(out)

    h, w, _ = noisy.shape
    if h * w <= max_pixels:
        return run(noisy[None])[0]
    side = int(np.sqrt(max_pixels)) // multiple * multiple
    return tiling.tiled(run, noisy, (min(side, h), min(side, w)), overlap=side // 8)


@functools.lru_cache(maxsize=8)
def _apply(setup):
    return jax.jit(setup.output)


def denoise_example(setup, variables: dict, example: dict, key: jax.Array) -> tuple[jax.Array, ...]:
    """(clean, noisy, output), float [1, H, W, C], of one example ``{"image", "row"[, "input"]}`` (uint8
    [H, W, C]) with the fixed evaluation noise; centre views for a model that takes one size."""
    clean_u8, given_u8 = example["image"], example.get("input", example["image"])
    if stride(setup.model) is None:
        clean_u8, given_u8 = (views.eval_view(x, setup.image_shape[:2]) for x in (clean_u8, given_u8))
    clean = corruptions.to_float(jnp.asarray(clean_u8))[None]
    noisy = setup.eval_noisy(corruptions.to_float(jnp.asarray(given_u8))[None], jnp.asarray([example["row"]]), key)
    return clean, noisy, jnp.asarray(whole_output(setup, variables, np.asarray(noisy[0]))[None])


def score_images(setup, variables: dict, examples: Iterable[dict], key: jax.Array) -> dict[str, float]:
    """Sums of the per-image metrics over ``examples`` and their ``count``; see the module docstring."""
    sums: dict[str, float] = {}
    for example in examples:
        clean, noisy, output = denoise_example(setup, variables, example, key)
        per_image = metrics.image_metrics(output, clean)
        per_image |= {f"noisy_{k}": v for k, v in metrics.image_metrics(noisy, clean).items()}
        for k, v in per_image.items():
            sums[k] = sums.get(k, 0.0) + float(v[0])
        sums["count"] = sums.get("count", 0.0) + 1.0
    return sums


def mean_over_processes(sums: dict[str, float]) -> dict[str, float]:
    """The means of per-image metric sums gathered from every process (each scored its share)."""
    keys = sorted(sums)
    values = np.asarray([sums[k] for k in keys], np.float64)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)
    total = dict(zip(keys, values, strict=True))
    count = total.pop("count", 0.0)
    if not count:
        raise ValueError("no images to score: the split is empty (or smaller than the number of processes).")
    return {k: float(v / count) for k, v in total.items()}
