"""Images of any size through a model of one fixed size: overlapping tiles, or a resize.

``apply(fn, image, size, fit)`` runs ``fn`` (float [N, h, w, C] -> [N, h, w, C'], h x w = ``size``)
over one float image [H, W, C] and returns [H, W, C']:

- ``fit="tile"``: a side shorter than the model's is padded with its edge pixels (centred) and
  cropped off again; a longer side is covered by model-size tiles overlapping by ``overlap``
  pixels, whose outputs are blended with triangular weights so no seams show. Every pixel is
  processed at its own scale, which is what a denoiser trained on pixel-level noise needs.
- ``fit="resize"``: the whole image is scaled to the model's size (antialiased bilinear), and the
  output back to the image's size: the model sees the whole content, at the model's scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import numpy as np

FITS = ("tile", "resize")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length >= tile`` pixels, spread evenly so
    that neighbours overlap by at least ``overlap`` pixels (up to rounding)."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(s) for s in np.linspace(0, length - tile, n)]


def _triangle(n: int) -> np.ndarray:
    """Blending weights [n], highest in the middle and > 0 at the edges."""
    i = np.arange(n)
    return np.minimum(i + 1, n - i).astype(np.float32)


def tiled(fn: Callable, image: np.ndarray, size: tuple[int, int], overlap: int) -> np.ndarray:
    """``fn`` over overlapping ``size`` tiles of ``image`` [H, W, C], blended: [H, W, C']."""
    (h, w, _), (th, tw) = image.shape, size
    pad_h, pad_w = max(th - h, 0), max(tw - w, 0)
    padded = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="edge")
    starts = [
        (y, x) for y in tile_starts(padded.shape[0], th, overlap) for x in tile_starts(padded.shape[1], tw, overlap)
    ]
    outputs = np.asarray(fn(np.stack([padded[y : y + th, x : x + tw] for y, x in starts])))  # [n, th, tw, C']
    weight = (_triangle(th)[:, None] * _triangle(tw)[None, :])[..., None]  # [th, tw, 1]
    total = np.zeros((*padded.shape[:2], outputs.shape[-1]), np.float32)
    norm = np.zeros((*padded.shape[:2], 1), np.float32)
    for (y, x), out in zip(starts, outputs, strict=True):
        total[y : y + th, x : x + tw] += weight * out
        norm[y : y + th, x : x + tw] += weight
    return (total / norm)[pad_h // 2 : pad_h // 2 + h, pad_w // 2 : pad_w // 2 + w]


def resized(fn: Callable, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``fn`` on ``image`` [H, W, C] scaled to ``size``; the output scaled back: [H, W, C']."""
    h, w, c = image.shape
    small = jax.image.resize(image, (*size, c), "linear", antialias=True)
    out = np.asarray(fn(np.asarray(small)[None]))[0]
    return np.asarray(jax.image.resize(out, (h, w, out.shape[-1]), "linear", antialias=True))


def checked_overlap(fit: str, overlap: int | None, size: tuple[int, int]) -> int:
    """The overlap of ``size`` tiles (default a quarter tile); ValueError for a bad ``fit``, or a bad ``overlap``
    when tiling."""
    if fit not in FITS:
        raise ValueError(f"Unknown fit {fit!r}; choose one of {list(FITS)}.")
    overlap = min(size) // 4 if overlap is None else overlap
    if fit == "tile" and not 0 <= overlap < min(size):
        raise ValueError(
            f"overlap must be in [0, {min(size) - 1}] pixels for {size[0]}x{size[1]} tiles, got {overlap}."
        )
    return overlap


def apply(
    fn: Callable, image: np.ndarray, size: tuple[int, int], fit: str = "tile", overlap: int | None = None
) -> np.ndarray:
    """``fn`` over ``image`` float [H, W, C] of any size, for a model of ``size`` (h, w); see the module docstring.

    ``overlap``: pixels shared by neighbouring tiles (default a quarter of the tile).
    """
    overlap = checked_overlap(fit, overlap, size)
    return resized(fn, image, size) if fit == "resize" else tiled(fn, image, size, overlap)
