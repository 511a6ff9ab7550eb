"""Images coming from users: checked, converted to the model's float NHWC, and converted back.

Accepted: numpy or jax arrays, uint8 in [0, 255] or float in [0, 1], one image (HW or HWC) or a
batch (NHWC). Anything else gets one ValueError saying what was expected.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the caller's images were laid out, to give results back the same way."""

    ndim: int  # 2 (HW), 3 (HWC) or 4 (NHWC)
    uint8: bool
    jax_array: bool


def to_uint8(x):
    """float [0, 1] -> uint8, rounded half to even: numpy on the host, jax.numpy inside a program."""
    xp = np if isinstance(x, np.ndarray) else jax.numpy
    return xp.round(xp.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_model_input(images, image_shape: tuple[int, int, int], keep_uint8: bool = False) -> tuple[np.ndarray, Layout]:
    """(float32 [N, H, W, C] in [0, 1], layout) for images meant for a model of ``image_shape`` (H, W, C).

    keep_uint8: uint8 images come back as uint8 [N, H, W, C], for a program that converts them itself
    as training does (``corruptions.to_float``): a quarter of the bytes to move, and no float copy here."""
    if not isinstance(images, (np.ndarray, jax.Array)):
        raise ValueError(f"expected a numpy or jax array of images, got {type(images).__name__}.")
    layout = Layout(images.ndim, images.dtype == np.uint8, isinstance(images, jax.Array))
    x = np.asarray(images)
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images have dtype {x.dtype}; give uint8 in [0, 255] or float in [0, 1].")
    h, w, c = image_shape
    if x.ndim == 2 and c == 1:
        x = x[None, :, :, None]
    elif x.ndim == 3:
        x = x[None]
    elif x.ndim != 4:
        raise ValueError(
            f"images have {x.ndim} dimensions {x.shape}; give HW{'' if c == 1 else 'C'}, HWC or NHWC "
            f"with H, W, C = {h}, {w}, {c}."
        )
    if x.shape[0] == 0:
        raise ValueError("got an empty batch of images.")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"images have no pixels: shape {tuple(images.shape)}.")
    if x.shape[1:3] != (h, w):
        raise ValueError(f"images are {x.shape[1]}x{x.shape[2]} but the model takes {h}x{w}; resize them first.")
    if x.shape[3] != c:
        raise ValueError(f"images have {x.shape[3]} channels but the model takes {c}; shape {images.shape}.")
    if layout.uint8:
        return (x if keep_uint8 else x.astype(np.float32) / 255.0), layout
    x = np.asarray(x, np.float32)  # no copy of float32 images
    lo, hi = float(x.min()), float(x.max())  # NaN if any is NaN, +-inf if any is infinite: one pass each
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("images contain NaN or inf values.")
    if lo < 0.0 or hi > 1.0:
        hint = " (they look like 0-255 values: divide by 255 or pass uint8)" if hi <= 255.0 and lo >= 0.0 else ""
        raise ValueError(f"float images must lie in [0, 1], these span [{lo:g}, {hi:g}]{hint}.")
    return x, layout


def from_model_output(x: np.ndarray, layout: Layout):
    """float [N, H, W, C] in [0, 1] (or uint8 already, from a program that converted it) -> the caller's
    layout, dtype family and array type."""
    x = np.asarray(x)
    if layout.ndim == 2:
        x = x[0, :, :, 0]
    elif layout.ndim == 3:
        x = x[0]
    if layout.uint8 and x.dtype != np.uint8:
        x = to_uint8(x)
    return jax.numpy.asarray(x) if layout.jax_array else x
