"""The streamed input pipeline: image folders of any size and any amount, read from disk as the steps need them.

Why grain over TFDS ArrayRecord (``builder.as_data_source``), not tf.data: a data source is random
access, so an epoch's order is a permutation that is a pure function of (seed, epoch), each
example's view and host corruption are functions of (seed, epoch, row), and a run resumed at step s
starts reading at position s x batch: no skipping through records, no iterator state to save, and
the resumed run is bit-identical to an uninterrupted one. Each process reads only its rows (a
contiguous share of the split, ``process_rows``). Decoding, views and host corruptions run on
``threads`` background threads (Pillow releases the GIL), ``prefetch`` batches ahead; memory holds
those batches (and, where each image gives several views an epoch, up to ``CACHE_BYTES`` of decoded
images: ``Prepared``), not the dataset.

Batches: ``{"image": uint8 [B, h, w, C]}`` (the clean view), plus ``"input"`` (the view after the host
corruptions, e.g. JPEG) when the run has any, plus ``"row"`` (int32 [B]).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

import jax
import numpy as np

from dae_jax.data import image_files, views

CACHE_BYTES = 512 * 2**20  # decoded images kept per epoch when each image gives several views
EVAL_EPOCH = 2**31  # the "epoch" that keys the fixed evaluation views and host corruptions
_VIEW, _HOST = 0, 1  # random streams of one example


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """How a run turns a stored image into what its model sees (from the config's ``data`` fields)."""

    seed: int
    size: tuple[int, int]  # (h, w) of training views: config.image_shape[:2]
    channels: int
    view: str = "crop"  # views.VIEWS
    flip: bool = False
    center_crop: int | None = None
    shrink_to: int | None = None
    views_per_image: int = 1  # training views of each image per epoch (a few large photos: many crops each)
    host: Callable[[np.random.Generator, np.ndarray], np.ndarray] | None = None  # host corruptions, or None


def stored_image(example: dict, channels: int | None) -> np.ndarray:
    """The uint8 [H, W, C] image of an ImageFolder example (its file's bytes), named by its path if it fails."""
    path = example.get("path", b"image")
    name = repr(path.decode() if isinstance(path, bytes) else str(path))
    return image_files.decode(example["image_bytes"], channels, name=name)


def decode(example: dict, spec: ImageSpec) -> np.ndarray:
    """The prepared uint8 [H, W, C] image of one stored example (an ImageFolder's bytes, or a decoded array)."""
    if "image_bytes" in example:
        image = stored_image(example, spec.channels)
    else:
        image = np.asarray(example["image"])
        if image.shape[-1] != spec.channels:
            image = (
                image.mean(axis=-1, keepdims=True).round().astype(np.uint8)
                if spec.channels == 1
                else np.repeat(image, 3, -1)
            )
    return views.prepare(image, spec.center_crop, spec.shrink_to)


def process_rows(num_examples: int) -> np.ndarray:
    """This process's rows of a split: a contiguous, equal share (the remainder is left out)."""
    share = num_examples // jax.process_count()
    return np.arange(jax.process_index() * share, (jax.process_index() + 1) * share)


def epoch_order(rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """``rows`` in the order of ``epoch``: a permutation that is a pure function of (seed, epoch)."""
    return rows[np.random.default_rng(np.random.SeedSequence([seed, epoch, 2**20])).permutation(len(rows))]


def host_input(host, seed: int, epoch: int, row: int, image: np.ndarray) -> np.ndarray:
    """The host corruptions of one example: a pure function of (seed, epoch, row) and the image."""
    return host(views.rng(seed, epoch, int(row), _HOST), image)


class Prepared:
    """``prepared[row]``: the prepared image of a source's row, each decoded once while the decoded ones fit in
    ``max_bytes`` (a few large photographs viewed many times an epoch are decoded once, not once a view),
    decoded again on every use beyond it: memory stays bounded, whatever the dataset's size."""

    def __init__(self, source, spec: ImageSpec, max_bytes: int = 0):
        self.source, self.spec, self.room = source, spec, max_bytes
        self.cache: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def __getitem__(self, row: int) -> np.ndarray:
        image = self.cache.get(row)
        if image is None:
            image = decode(self.source[row], self.spec)
            with self.lock:
                if image.nbytes <= self.room and row not in self.cache:
                    image = image.copy() if image.base is not None else image  # a crop: not its whole decode
                    image.setflags(write=False)  # shared by the views of every thread: never changed in place
                    self.cache[row], self.room = image, self.room - image.nbytes
        return image


def _example(images: Prepared, row: int, spec: ImageSpec, epoch: int, train: bool) -> dict:
    """One example; in training ``row`` is a view's id (image ``row // views_per_image``)."""
    image = images[int(row) // (spec.views_per_image if train else 1)]
    if train:
        image = views.train_view(image, spec.size, views.rng(spec.seed, epoch, int(row), _VIEW), spec.view, spec.flip)
    out = {"image": image, "row": np.int32(row)}
    if spec.host is not None:
        out["input"] = host_input(spec.host, spec.seed, epoch, row, image)
    return out


def train_batches(
    source, spec: ImageSpec, batch_size: int, epoch: int, skip: int = 0, threads: int = 2, prefetch: int = 4
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of this process's batches of training views, from batch ``skip`` on (a resumed run)."""
    import grain

    k = spec.views_per_image
    order = epoch_order((process_rows(len(source))[:, None] * k + np.arange(k)).ravel(), spec.seed, epoch)
    usable = len(order) // batch_size * batch_size
    images = Prepared(source, spec, CACHE_BYTES if k > 1 else 0)  # one image, k views: decoded once
    ds = grain.MapDataset.range(skip * batch_size, usable).map(lambda i: _example(images, order[i], spec, epoch, True))
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch * batch_size)
    return iter(ds.batch(batch_size, drop_remainder=True).to_iter_dataset(options))


def eval_images(source, spec: ImageSpec, limit: int | None = None, threads: int = 2) -> Iterator[dict]:
    """This process's share of a split, in row order, one whole prepared image at a time (``{"image", "row"}``,
    ``"input"`` with host corruptions keyed by the row): the fixed evaluation images."""
    import grain

    rows = process_rows(len(source) if limit is None else min(limit, len(source)))
    images = Prepared(source, spec)
    ds = grain.MapDataset.range(len(rows)).map(lambda i: _example(images, rows[i], spec, EVAL_EPOCH, False))
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)))
