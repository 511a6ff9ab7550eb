"""Decoded splits kept on disk as arrays, so that a run's second start reads its data in milliseconds.

Reading MNIST's 70,000 images from TFDS takes seconds (TensorFlow's import alone, then one PNG decode per
image); the same arrays read back from one ``.npz`` file take tens of milliseconds and no TensorFlow.
Each entry is keyed by the prepared dataset (its name, directory and every data file's name, size and
modification time), the split, the channels asked for and the process's share, so a rebuilt dataset or
another split is a miss, never a stale hit. An entry that cannot be read is read again from TFDS and
replaced; one that cannot be written is only logged (the cache is an optimisation, never a reason to
fail a run).

Where: ``arrays/`` of dae-jax's cache folder (``dae_jax.cache``: ``DAE_JAX_CACHE_DIR``, ``off`` to turn
it off). Entries are never removed: delete the folder to reclaim space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from dae_jax import files
from dae_jax.cache import cache_dir

log = logging.getLogger(__name__)


def _key(builder, split: str, channels: int | None) -> str | None:
    """The entry's name for ``split`` of ``builder``; None where its data files are not a local folder."""
    data_dir = Path(str(builder.data_dir))
    if not data_dir.is_dir():  # a remote (gs://) dataset: nothing local to fingerprint
        return None
    data_files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(data_dir) if e.is_file())
    identity = {
        "dataset": builder.info.full_name,
        "data_dir": str(data_dir.resolve()),
        "files": data_files,
        "split": split,
        "channels": channels,
        "process": [jax.process_index(), jax.process_count()],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return f"{builder.info.full_name.replace('/', '_')}-{digest}.npz"


def _load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or None if there are none or they are not a split's arrays."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cached split %s is unreadable (%s); reading it again", path, e)
        return None
    image = arrays.get("image")
    split_like = image is not None and image.dtype == np.uint8 and image.ndim == 4
    if not split_like or any(len(v) != len(image) for v in arrays.values()):
        log.warning("cached split %s does not hold a split's images; reading it again", path)
        return None
    return arrays


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        log.warning("could not cache the decoded split (%s); it is read from TFDS again next time", e)


def cached(
    builder, split: str, channels: int | None, read: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``read()``'s arrays for ``split`` of ``builder``: from the cache when they are there, else read and kept."""
    root = cache_dir()
    name = _key(builder, split, channels) if root is not None else None
    if name is None:
        return read()
    path = root / "arrays" / name
    arrays = _load(path)
    if arrays is None:
        arrays = read()
        _store(path, arrays)
    return arrays
