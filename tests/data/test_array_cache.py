"""The decoded-split cache: the same arrays as TFDS, read without TensorFlow, never stale, never a failure."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from dae_jax.data import array_cache, builders, pipeline, sources

SECOND_START = """
import hashlib, sys
from dae_jax.data import builders, pipeline, sources
b = builders.builder(sources.resolve_source("idx", sys.argv[1], sys.argv[2]), sys.argv[2])
test = pipeline.load_split(b, "test")
print(hashlib.sha256(test["image"].tobytes() + test["label"].tobytes()).hexdigest(), "tensorflow" in sys.modules)
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache folder of this test's own: its entries are the files under it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DAE_JAX_CACHE_DIR", str(folder))
    return folder


def built(idx_dir, tmp_path):
    return builders.builder(
        sources.resolve_source("idx", str(idx_dir[0]), str(tmp_path / "tfds")), str(tmp_path / "tfds")
    )


def entries(folder):
    return sorted(p.name for p in (folder / "arrays").glob("*.npz")) if (folder / "arrays").is_dir() else []


def test_a_second_start_reads_the_same_arrays_without_tensorflow(idx_dir, tmp_path, cache_dir):
    b = built(idx_dir, tmp_path)
    first = pipeline.load_split(b, "test")
    assert len(entries(cache_dir)) == 1
    uncached = pipeline._read_split(b, "test", None)
    assert first.keys() == uncached.keys()
    for k in first:
        np.testing.assert_array_equal(first[k], uncached[k])
    env = {**os.environ, "DAE_JAX_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", SECOND_START, str(idx_dir[0]), str(tmp_path / "tfds")],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    import hashlib

    digest = hashlib.sha256(uncached["image"].tobytes() + uncached["label"].tobytes()).hexdigest()
    assert proc.stdout.split() == [digest, "False"], proc.stdout + proc.stderr[-2000:]


def test_a_changed_data_file_or_another_split_is_a_miss(idx_dir, tmp_path, cache_dir):
    b = built(idx_dir, tmp_path)
    pipeline.load_split(b, "test")
    pipeline.load_split(b, "test", channels=1)  # another request: another entry
    pipeline.load_split(b, "train[:50%]")
    assert len(entries(cache_dir)) == 3
    data_file = next(p for p in os.scandir(b.data_dir) if p.is_file())
    os.utime(data_file.path, ns=(data_file.stat().st_atime_ns, data_file.stat().st_mtime_ns + 1))
    again = pipeline.load_split(b, "test")
    assert len(entries(cache_dir)) == 4 and len(again["image"]) == 20


def test_an_unreadable_entry_is_read_again_and_replaced(idx_dir, tmp_path, cache_dir, caplog):
    b = built(idx_dir, tmp_path)
    want = pipeline.load_split(b, "test")
    (entry,) = (cache_dir / "arrays").glob("*.npz")
    for damage in (b"not a zip file", None):
        if damage is None:  # a valid .npz, but not a split's images
            np.savez(entry, image=np.zeros((3, 2), np.float32))
        else:
            entry.write_bytes(damage)
        with caplog.at_level(logging.WARNING, "dae_jax.data.array_cache"):
            got = pipeline.load_split(b, "test")
        assert "reading it again" in caplog.text
        caplog.clear()
        np.testing.assert_array_equal(got["image"], want["image"])
        assert array_cache._load(entry) is not None  # replaced with the real arrays


def test_off_writes_nothing_and_an_unwritable_cache_only_warns(idx_dir, tmp_path, monkeypatch, caplog):
    b = built(idx_dir, tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAE_JAX_CACHE_DIR", "off")
    assert len(pipeline.load_split(b, "test")["image"]) == 20
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("the user's")
    monkeypatch.setenv("DAE_JAX_CACHE_DIR", str(blocker))
    with caplog.at_level(logging.WARNING, "dae_jax.data.array_cache"):
        assert len(pipeline.load_split(b, "test")["image"]) == 20
    assert "could not cache the decoded split" in caplog.text
    assert blocker.read_text() == "the user's"
