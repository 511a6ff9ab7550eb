"""Image files on disk: finding, reading (as uint8 [H, W, C]) and writing PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dae_jax import files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def find_images(directory: str | os.PathLike) -> list[Path]:
    """Every PNG/JPEG file under ``directory`` (any depth), sorted."""
    return sorted(p for p in Path(directory).rglob("*") if is_image(p))


# Pillow modes of 16-bit grayscale files (PNG, TIFF); "I" is also how older Pillows open them.
_GRAY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WITH_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")


def _refuse(name: str, why: str) -> ValueError:
    return ValueError(f"image {name}: {why}; convert it to 8-bit grayscale or RGB PNG/JPEG first.")


def _eight_bit(im, name: str):
    """``im`` as an 8-bit "L" or "RGB" image, exactly, or ValueError naming ``name`` and why not.

    16-bit grayscale is scaled (v / 257, rounded), never clipped; palette images are expanded; an
    alpha channel is dropped only when every pixel is opaque; CMYK and float images are refused.
    """
    from PIL import Image

    if im.mode in _GRAY_16:
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise _refuse(name, f"{im.mode} pixel values span [{values.min()}, {values.max()}], not 16-bit")
        return Image.fromarray(np.round(values.astype(np.float64) / 257.0).astype(np.uint8), "L")
    if im.mode in ("CMYK", "F") or im.mode.startswith("I;"):
        raise _refuse(name, f"mode {im.mode} ({'CMYK colour' if im.mode == 'CMYK' else 'not 8-bit'}) is not read")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in _WITH_ALPHA:
        alpha = np.asarray(im.getchannel("A"))
        if (alpha < 255).any():
            raise _refuse(name, f"{np.mean(alpha < 255):.0%} of its pixels are transparent (alpha channel)")
        im = im.convert("L" if im.mode.startswith("L") else "RGB")
    if im.mode == "1":
        im = im.convert("L")
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # YCbCr, LAB, HSV: colour spaces Pillow converts exactly enough
    return im


def decode(source, channels: int | None = None, name: str | None = None) -> np.ndarray:
    """uint8 [H, W, C] from an image file's path or bytes, read exactly or refused (``_eight_bit``).

    EXIF orientation is applied. ``channels`` 1 or 3 converts to grayscale (ITU-R 601 luma) or RGB
    (gray repeated); None keeps grayscale files grayscale and makes the others RGB. ``name``: how
    an error names the image (default: the path).
    """
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    name = name or repr(str(source))
    try:
        with Image.open(source if isinstance(source, (str, Path)) else io.BytesIO(source)) as im:
            im = _eight_bit(ImageOps.exif_transpose(im), name)
    except FileNotFoundError:
        raise ValueError(f"image file {name} does not exist.") from None
    except Image.DecompressionBombError:
        raise ValueError(
            f"image file {name} has over {2 * Image.MAX_IMAGE_PIXELS:,} pixels (Pillow refuses it as a possible "
            "decompression bomb); shrink it first."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image file {name}: {e}. Give a PNG or JPEG file.") from None
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    gray = im.mode == "L" if channels is None else channels == 1
    arr = np.asarray(im.convert("L" if gray else "RGB"))
    if arr.size == 0:
        raise ValueError(f"image {name} has no pixels ({arr.shape[1]}x{arr.shape[0]}).")
    return arr[..., None] if arr.ndim == 2 else arr


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """uint8 [H, W, C] from a PNG/JPEG/... file (``decode``); ValueError naming the file when it cannot be read."""
    return decode(Path(path), channels)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Saves uint8 [H, W, 1] (grayscale) or [H, W, 3] (RGB) as a PNG: to a temporary name, then renamed."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with files.atomic(path, "wb") as f:
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format="PNG")
