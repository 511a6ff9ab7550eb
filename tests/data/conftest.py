"""Fixtures of the data tests: tiny MNIST-format folders."""

import gzip

import numpy as np
import pytest


def write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def idx_dir(tmp_path):
    """A tiny MNIST-format directory: 40 train and 20 test images, gz and raw files mixed."""
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n, compress in (("train", 40, True), ("t10k", 20, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (n,), dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        arrays[prefix] = (images, labels)
    return tmp_path, arrays
