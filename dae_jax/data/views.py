"""What a model sees of an image of any size: the dataset's preprocessing, then a training view.

Every function is pure: randomness comes from ``rng(seed, epoch, index)`` (a numpy Generator that is
a function of those three numbers), so a killed and resumed run draws the very same crops and
flips, whatever the number of processes, threads or batches. Images are uint8 [H, W, C].

- ``prepare(image, center_crop, shrink_to)``: every split, deterministic: the central square of
  ``center_crop`` pixels (faces: the face), then an antialiased resize to ``shrink_to`` pixels square.
- ``train_view(image, size, rng, mode, flip)``: training only: a random ``size`` crop ("crop"; an image
  smaller than the crop is resized up first), or the whole image resized to ``size`` ("resize"),
  then a random horizontal flip when ``flip``.
- ``eval_view(image, size, mode)``: the deterministic counterpart (a centre crop, or the resize),
  for models that take one size only; fully convolutional models are scored on whole images.
"""

from __future__ import annotations

import numpy as np

VIEWS = ("crop", "resize")


def rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """The random numbers of one example of one epoch (``stream`` separates their uses: view, corruption)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index, stream]))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased (Lanczos) resize of uint8 [H, W, C] to [height, width, C], as image libraries do it."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    squeezed = image[..., 0] if image.shape[-1] == 1 else image
    out = np.asarray(Image.fromarray(squeezed).resize((width, height), Image.Resampling.LANCZOS))
    return out[..., None] if out.ndim == 2 else out


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central ``height`` x ``width`` of an image at least that large (rounded towards the top left)."""
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def prepare(image: np.ndarray, center: int | None = None, shrink_to: int | None = None) -> np.ndarray:
    """The dataset's own preprocessing, the same for every split (see the module docstring)."""
    if center:
        side = min(center, *image.shape[:2])
        image = center_crop(image, side, side)
    if shrink_to:
        image = resize(image, shrink_to, shrink_to)
    return image


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image resized up (keeping its aspect) just enough to hold a ``height`` x ``width`` crop."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    if scale <= 1:
        return image
    return resize(image, max(height, int(np.ceil(h * scale))), max(width, int(np.ceil(w * scale))))


def train_view(
    image: np.ndarray, size: tuple[int, int], generator: np.random.Generator, mode: str = "crop", flip: bool = False
) -> np.ndarray:
    """One training view of ``image`` at ``size`` (height, width); see the module docstring."""
    height, width = size
    if mode == "resize":
        out = resize(image, height, width)
    else:
        image = _cover(image, height, width)
        top = int(generator.integers(0, image.shape[0] - height + 1))
        left = int(generator.integers(0, image.shape[1] - width + 1))
        out = image[top : top + height, left : left + width]
    if flip and generator.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def eval_view(image: np.ndarray, size: tuple[int, int], mode: str = "crop") -> np.ndarray:
    """The deterministic view of ``image`` at ``size``: its centre crop (covered first), or the resize."""
    if mode == "resize":
        return resize(image, *size)
    return np.ascontiguousarray(center_crop(_cover(image, *size), *size))
