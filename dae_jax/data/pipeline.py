"""Input pipeline: a run's train/validation/test splits as arrays, and the batches that feed the steps.

Every batch is ``{"image": uint8 [B, H, W, C], "label": int [B]}``; corruption and the
conversion to float happen on device inside the jitted step.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from dae_jax.data import array_cache, builders, stream
from dae_jax.data.sources import Source, resolve_source

log = logging.getLogger(__name__)


def load_split(b, split: str, channels: int | None = None) -> dict[str, np.ndarray]:
    """This process's share of a split, whole, as numpy (MNIST fits in memory many times over).

    An image folder's files are decoded (``channels``: 1 or 3, None as stored); they must be of one size.
    Decoded once: later reads come from ``dae_jax.data.array_cache``.
    """
    return array_cache.cached(b, split, channels, lambda: _read_split(b, split, channels))


def _read_split(b, split: str, channels: int | None) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds

    if "image_bytes" in b.info.features:  # ArrayRecord files: random access, this process's rows
        source = b.as_data_source(split=split)
        rows = stream.process_rows(len(source))
        return _decoded((source[int(r)] for r in rows), channels, f"{b.info.full_name} {split}")
    ds = b.as_dataset(split=tfds.split_for_jax_process(split, drop_remainder=True), shuffle_files=False)
    keys = [k for k in ("image", "label") if k in b.info.features]  # datasets without labels have only images
    ds = ds.map(lambda e: {k: e[k] for k in keys}).batch(16384)
    chunks = list(tfds.as_numpy(ds))
    return {k: np.concatenate([c[k] for c in chunks]) for k in keys}


def _decoded(examples, channels: int | None, what: str) -> dict[str, np.ndarray]:
    images, labels = [], []
    for e in examples:
        images.append(stream.stored_image(e, channels))
        labels.append(e["label"])
    shapes = sorted({x.shape for x in images})
    if len(shapes) > 1:
        raise ValueError(
            f"{what}: images of {len(shapes)} sizes ({shapes[0]} ... {shapes[-1]}) do not stack into arrays; "
            "train on it as dataset image_folder (streamed, cropped to config.image_shape)."
        )
    return {"image": np.stack(images), "label": np.asarray(labels, np.int64)}


def check_image_shape(found: tuple[int, ...], image_shape) -> None:
    """ValueError unless the data's (H, W, C) ``found`` is the config's ``image_shape``."""
    if tuple(found) != tuple(image_shape):
        raise ValueError(
            f"the data's images are {tuple(found)} (H, W, C) but config.image_shape is {tuple(image_shape)}; "
            "set --config.image_shape to match the data."
        )


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of an epoch: a pure function of (seed, epoch), so a resumed run sees the same order."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _with_host_input(batch: dict, rows: np.ndarray, host, seed: int, epoch: int) -> dict:
    """``batch`` with ``input``: its images after the host corruptions of (seed, epoch, row)."""
    if host is not None:
        batch["input"] = np.stack(
            [stream.host_input(host, seed, epoch, r, x) for r, x in zip(rows, batch["image"], strict=True)]
        )
    return batch


def train_batches(
    arrays: dict[str, np.ndarray], batch_size: int, seed: int, epoch: int, skip: int = 0, host=None
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of shuffled, full batches (tf.data shuffle → batch → prefetch → numpy).

    ``batch_size`` is this process's share of the global batch; ``skip`` drops the first
    batches (a run resumed mid-epoch); ``host``: host corruptions, keyed by (seed, epoch, row).
    ``row`` (int32 [B]) is each example's row in the whole split (it keys fixed training noise).
    """
    import tensorflow as tf

    n = len(arrays["image"])
    offset = jax.process_index() * n  # rows of the whole split: every process draws its own corruptions
    arrays = arrays | {"row": np.arange(offset, offset + n, dtype=np.int32)}
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.shuffle(n, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)
    ds = ds.batch(batch_size, drop_remainder=True).skip(skip).prefetch(2)
    for batch in ds.as_numpy_iterator():
        yield _with_host_input(batch, batch["row"], host, seed, epoch)


def eval_batches(
    arrays: dict[str, np.ndarray], batch_size: int, host=None, seed: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order; the last batch is zero-padded and ``mask`` marks real rows.

    ``index`` is the example's position in the split (it keys the fixed evaluation noise, and the host
    corruptions with ``seed``).
    """
    n = len(arrays["image"])
    offset = jax.process_index() * n  # this process's rows follow the other processes' rows
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        pad = batch_size - (rows.stop - rows.start)
        batch = {k: np.concatenate([v[rows], np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in arrays.items()}
        batch["mask"] = np.arange(batch_size) < batch_size - pad
        batch["index"] = (offset + start + np.arange(batch_size)).astype(np.int32)
        yield _with_host_input(batch, batch["index"], host, seed, stream.EVAL_EPOCH)


@dataclasses.dataclass(frozen=True)
class Splits:
    """A run's data before it is read: its source, its prepared TFDS builder, and how many examples this
    process reads of each split (``prepare``). ``read`` loads them."""

    source: Source
    builder: Any  # the prepared tfds.core.DatasetBuilder
    tfds_splits: dict[str, str]  # "train" / "validation" / "test" -> the TFDS split expression read for it
    sizes: dict[str, int]  # examples of this process's share of each split
    image_shape: tuple[int, ...] | None  # (H, W, C) of the dataset's images; None: an image folder, any size
    validation_split_seed: int | None = None  # a seeded random validation split of "train" (sizes say how many)
    streamed: bool = False  # read from disk as the steps need it (dae_jax.data.stream), never whole
    channels: int | None = None  # what an image folder's files are decoded to

    def source_of(self, split: str):
        """The random-access data source of a streamed split (``builder.as_data_source``)."""
        return self.builder.as_data_source(split=self.tfds_splits[split])


def prepare(data_config, src: Source | None = None, channels: int | None = None) -> Splits:
    """The ``Splits`` of ``data_config`` (default source: the one it resolves to): prepares the TFDS builder
    (a first build of IDX files, say), reads no examples. ``channels``: an image folder's decoded channels."""
    import tensorflow_datasets as tfds

    src = src or resolve_source(
        data_config.source, data_config.idx_dir, data_config.data_dir, data_config.dataset, data_config.image_dir
    )
    log.info("data source: %s", src.description)
    b = builders.builder(src, data_config.data_dir)
    if "image_bytes" in b.info.features:  # an image folder: its own train/validation/test, by folder or hash
        streamed = data_config.get("stream") is not False
        names = [s for s in ("train", "validation", "test") if s in b.info.splits]
        sizes = {s: b.info.splits[s].num_examples // jax.process_count() for s in names}
        return Splits(src, b, {s: s for s in names}, sizes, None, None, streamed, channels)
    if data_config.get("stream"):
        raise ValueError(f"data.stream=True streams image folders; {src.description} is read into memory.")

    def size(split: str) -> int:
        return b.info.splits[tfds.split_for_jax_process(split, drop_remainder=True)].num_examples

    seed = data_config.validation_split_seed
    if data_config.validation_fraction == 0:  # all of "train" trains; "test" validates (the Keras write-ups)
        seed, tfds_splits = None, {"train": "train", "validation": "test", "test": "test"}
        sizes = {name: size(split) for name, split in tfds_splits.items()}
    elif seed is None:  # the last fraction of TFDS "train"
        val_pct = int(round(100 * data_config.validation_fraction))  # checked by configs.check
        tfds_splits = {"train": f"train[:{100 - val_pct}%]", "validation": f"train[{100 - val_pct}%:]", "test": "test"}
        sizes = {name: size(split) for name, split in tfds_splits.items()}
    else:  # a random fraction of "train", chosen by the seed
        tfds_splits = {"train": "train", "validation": "train", "test": "test"}
        n = size("train")
        n_val = int(round(n * data_config.validation_fraction))
        sizes = {"train": n - n_val, "validation": n_val, "test": size("test")}
    image_shape = tuple(b.info.features["image"].shape)
    return Splits(src, b, tfds_splits, sizes, image_shape, seed)


@dataclasses.dataclass
class Data:
    source: Source
    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


def read(splits: Splits) -> Data:
    """This process's share of the train/validation/test splits, as arrays."""
    if splits.streamed:
        raise ValueError(f"{splits.source.description} is streamed: read it with dae_jax.data.stream, not whole.")
    test = load_split(splits.builder, splits.tfds_splits["test"], splits.channels)
    if splits.validation_split_seed is None:
        train = load_split(splits.builder, splits.tfds_splits["train"], splits.channels)
        validation = (  # an image folder without validation images has no such split
            load_split(splits.builder, splits.tfds_splits["validation"], splits.channels)
            if "validation" in splits.tfds_splits
            else {k: v[:0] for k, v in test.items()}
        )
    else:
        full = load_split(splits.builder, "train")
        order = np.random.default_rng(splits.validation_split_seed).permutation(len(full["image"]))
        n_val = splits.sizes["validation"]
        validation = {k: v[order[:n_val]] for k, v in full.items()}
        train = {k: v[order[n_val:]] for k, v in full.items()}
    return Data(source=splits.source, train=train, validation=validation, test=test)


def load(data_config, src: Source | None = None) -> Data:
    """``read(prepare(data_config, src))``: the run's splits of ``data_config``, as arrays."""
    return read(prepare(data_config, src))
