"""Corruptions that exist only as host image operations, run in the input pipeline beside the on-device ones.

Each ``corrupt(generator, image, **params) -> image`` maps uint8 [H, W, C] to uint8 [H, W, C] with
a numpy Generator that the pipeline derives from (seed, epoch, row) (``dae_jax.data.views.rng``):
the same for every run of a seed, a resumed one included, and for the fixed evaluation images.

- ``jpeg``: JPEG compression at quality ``quality`` (an int, or ``[low, high]`` drawn per example),
  the commonest real degradation of photographs (Pillow's libjpeg, 4:2:0 chroma subsampling).
- ``downscale``: antialiased downscaling by ``factor`` (Lanczos, as image libraries shrink) and
  bicubic upscaling back: the input of super-resolution as photo software makes it.

A config's corruption names them like the on-device ones (``HOST_CORRUPTIONS`` beside
``dae_jax.corruptions.CORRUPTIONS``); in a ``compose`` they come first (``split``): the host steps
make the batch's ``input``, the device steps then corrupt it further inside the jitted step.
"""

from __future__ import annotations

import functools
import inspect
import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

HostCorruption = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _array(im) -> np.ndarray:
    out = np.asarray(im)
    return out[..., None] if out.ndim == 2 else out


def jpeg(generator: np.random.Generator, image: np.ndarray, *, quality: int | Sequence[int] = 20) -> np.ndarray:
    """The image after JPEG encoding at ``quality`` (1-95) and decoding."""
    q = int(generator.integers(quality[0], quality[1] + 1)) if isinstance(quality, (list, tuple)) else int(quality)
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=q)
    from PIL import Image

    with Image.open(buffer) as im:
        return _array(im.convert("L" if image.shape[-1] == 1 else "RGB"))


def downscale(generator: np.random.Generator, image: np.ndarray, *, factor: int = 2) -> np.ndarray:
    """Lanczos downscaling by ``factor`` (sides rounded up), then bicubic upscaling back to the image's size."""
    from PIL import Image

    del generator  # deterministic
    h, w = image.shape[:2]
    small = _pil(image).resize((max(1, -(-w // factor)), max(1, -(-h // factor))), Image.Resampling.LANCZOS)
    return _array(small.resize((w, h), Image.Resampling.BICUBIC))


HOST_CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {"jpeg": jpeg, "downscale": downscale}


def _check(name: str, kwargs: dict) -> None:
    accepted = [p for p in inspect.signature(HOST_CORRUPTIONS[name]).parameters if p not in ("generator", "image")]
    for k in kwargs:
        if k not in accepted:
            raise ValueError(f"Corruption {name!r} has no parameter {k!r}; it accepts {accepted}.")
    quality = kwargs.get("quality", 20)
    bounds = list(quality) if isinstance(quality, (list, tuple)) else [quality, quality]
    in_range = len(bounds) == 2 and all(isinstance(q, int) and 1 <= q <= 95 for q in bounds)
    if name == "jpeg" and not (in_range and bounds[0] <= bounds[1]):
        raise ValueError(
            f"Corruption 'jpeg': quality must be an int in [1, 95] or [low, high] with low <= high, got {quality!r}."
        )
    factor = kwargs.get("factor", 2)
    if name == "downscale" and not (isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1):
        raise ValueError(f"Corruption 'downscale': factor must be an integer >= 1, got {factor!r}.")


def split(spec: Mapping) -> tuple[list[dict], dict]:
    """(host steps, device spec) of a corruption spec: a host corruption alone, or a ``compose`` whose
    leading steps are host ones. ValueError for a host step after a device one."""
    spec = dict(spec)
    steps = [dict(s) for s in spec.get("steps", ())] if spec.get("name") == "compose" else [spec]
    host = []
    while steps and steps[0].get("name") in HOST_CORRUPTIONS:
        host.append(steps.pop(0))
    late = [s["name"] for s in steps if s.get("name") in HOST_CORRUPTIONS]
    if late:
        raise ValueError(f"corruption {late[0]!r} runs on the host: put it before the on-device steps of 'compose'.")
    for step in host:
        _check(step["name"], {k: v for k, v in step.items() if k != "name"})
    device = {"name": "compose", "steps": steps} if len(steps) > 1 else steps[0] if steps else {"name": "none"}
    return host, device


def make(steps: Sequence[Mapping]) -> HostCorruption | None:
    """``corrupt(generator, image)`` applying the host ``steps`` in order (None when there are none)."""
    if not steps:
        return None
    fns = [functools.partial(HOST_CORRUPTIONS[s["name"]], **{k: v for k, v in s.items() if k != "name"}) for s in steps]

    def corrupt(generator: np.random.Generator, image: np.ndarray) -> np.ndarray:
        for fn in fns:
            image = fn(generator, image)
        return image

    return corrupt
