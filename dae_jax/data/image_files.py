"""Image files on disk: finding, reading (as uint8 [H, W, C]) and writing PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def find_images(directory: str | os.PathLike) -> list[Path]:
    """Every PNG/JPEG file under ``directory`` (any depth), sorted."""
    return sorted(p for p in Path(directory).rglob("*") if is_image(p))


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """uint8 [H, W, C] from a PNG/JPEG/... file; ValueError naming the file when it cannot be read.

    ``channels`` 1 or 3 converts to grayscale or RGB (a model's channel count); None keeps
    grayscale files grayscale and makes everything else RGB (alpha is dropped).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            gray = im.mode in ("1", "L", "I;16", "I", "F") if channels is None else channels == 1
            arr = np.asarray(im.convert("L" if gray else "RGB"))
    except FileNotFoundError:
        raise ValueError(f"image file {str(path)!r} does not exist.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image file {str(path)!r}: {e}. Give a PNG or JPEG file.") from None
    return arr[..., None] if arr.ndim == 2 else arr


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Saves uint8 [H, W, 1] (grayscale) or [H, W, 3] (RGB) as a PNG, creating its directory."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, format="PNG")
