import dataclasses
import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from dae_jax.data import builders, idx, pipeline, sources
from tests.data.conftest import write_idx


def test_offline_resolution_is_fast_and_falls_back_to_embedded(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.IDX_DIR_ENV, raising=False)
    start = time.perf_counter()
    src = sources.resolve_source("auto", None, str(tmp_path))
    assert time.perf_counter() - start < 10
    # This machine has no route to TFDS' servers; on one that has, "tfds" is the right answer.
    assert src.kind == ("tfds" if sources.is_online() else "embedded")


def test_idx_dir_from_environment_wins(tmp_path, monkeypatch, idx_dir):
    monkeypatch.setenv(sources.IDX_DIR_ENV, str(idx_dir[0]))
    src = sources.resolve_source("auto", None, str(tmp_path))
    assert src.kind == "idx" and src.idx_dir == str(idx_dir[0].resolve())


def test_idx_dir_builds_into_tfds_and_round_trips_pixels(tmp_path, idx_dir):
    directory, arrays = idx_dir
    src = sources.resolve_source("idx", str(directory), str(tmp_path / "tfds"))
    b = builders.builder(src, str(tmp_path / "tfds"))
    assert b.info.splits["train"].num_examples == 40 and b.info.splits["test"].num_examples == 20
    test = pipeline.load_split(b, "test")
    # TFDS stores examples in its own order; compare as sets of (label, pixels).
    got = sorted((int(lab), img.tobytes()) for img, lab in zip(test["image"][..., 0], test["label"], strict=True))
    want = sorted((int(lab), img.tobytes()) for img, lab in zip(*arrays["t10k"], strict=True))
    assert got == want


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(bad)
    write_idx(bad, np.zeros((10, 28, 28), np.uint8), compress=False)
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        idx.read_idx(bad)


def test_missing_idx_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        idx.find_idx_files(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        idx.find_idx_files(tmp_path)


def test_train_order_is_a_pure_function_of_seed_and_epoch():
    arrays = {"image": np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1), "label": np.arange(64)}

    def order(seed, epoch, skip=0):
        return np.concatenate([b["label"] for b in pipeline.train_batches(arrays, 8, seed, epoch, skip)])

    assert np.array_equal(order(0, 3), order(0, 3))
    assert not np.array_equal(order(0, 3), order(0, 4))
    assert not np.array_equal(order(0, 3), order(1, 3))
    assert np.array_equal(order(0, 3, skip=5), order(0, 3)[40:])
    assert sorted(order(0, 3)) == list(range(64))


def test_eval_batches_pad_and_mask():
    arrays = {"image": np.ones((10, 28, 28, 1), np.uint8), "label": np.arange(10)}
    batches = list(pipeline.eval_batches(arrays, 4))
    assert [b["mask"].sum() for b in batches] == [4, 4, 2]
    assert batches[-1]["index"].tolist() == [8, 9, 10, 11]
    assert batches[-1]["image"][2:].sum() == 0


def test_embedded_sample_is_real_mnist(mnist_sample):
    images, labels = mnist_sample["image"], mnist_sample["label"]
    assert images.shape == (4000, 28, 28, 1) and images.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert 0.10 < (images > 128).mean() < 0.20  # MNIST ink coverage is ~13%


def test_corrupt_gzip_wrong_size_and_count_mismatch_are_named(tmp_path):
    gz = tmp_path / "a.gz"
    gz.write_bytes(gzip.compress(np.random.default_rng(0).bytes(1000))[:500])
    with pytest.raises(ValueError, match="gzip data is corrupt or truncated"):
        idx.read_idx(gz)
    images, labels = tmp_path / "i", tmp_path / "l"
    write_idx(images, np.zeros((5, 32, 32), np.uint8), compress=False)
    write_idx(labels, np.zeros((5,), np.uint8), compress=False)
    with pytest.raises(ValueError, match=r"expected \[N, 28, 28\] images, got shape \(5, 32, 32\)"):
        idx.load_idx_pair(images, labels)
    write_idx(images, np.zeros((5, 28, 28), np.uint8), compress=False)
    write_idx(labels, np.zeros((4,), np.uint8), compress=False)
    with pytest.raises(ValueError, match="expected 5 labels"):
        idx.load_idx_pair(images, labels)


def test_unknown_dataset_and_sources_a_dataset_lacks_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar'; choose one of \['faces', 'fashion_mnist', 'image_"):
        sources.resolve_source("auto", dataset="cifar")
    with pytest.raises(ValueError, match=r"'fashion_mnist' has no data source 'embedded'"):
        sources.resolve_source("embedded", dataset="fashion_mnist")
    with pytest.raises(ValueError, match=r"'mnist' has no data source 'folder'"):
        sources.resolve_source("folder", dataset="mnist")
    with pytest.raises(ValueError, match="has no PNG/JPEG files"):
        sources.resolve_source("folder", dataset="image_folder", image_dir=str(tmp_path))
    with pytest.raises(ValueError, match="needs a directory"):
        sources.resolve_source("auto", dataset="image_folder")


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path, monkeypatch):
    if sources.is_online():
        pytest.skip("online, TFDS fashion_mnist would be downloaded instead")
    monkeypatch.delenv("DAE_JAX_FASHION_MNIST_DIR", raising=False)
    spec = sources.DATASETS["fashion_mnist"]
    monkeypatch.setitem(
        sources.DATASETS, "fashion_mnist", dataclasses.replace(spec, default_dir=str(tmp_path / "none"))
    )
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        sources.resolve_source("auto", None, str(tmp_path), "fashion_mnist")
    with pytest.raises(ValueError, match="needs a directory.*apt-get install dataset-fashion-mnist"):
        sources.resolve_source("idx", None, str(tmp_path), "fashion_mnist")


FASHION_DIR = sources.DATASETS["fashion_mnist"].default_dir


@pytest.mark.slow  # builds all 70,000 images into TFDS: 35 s on 2 cores
@pytest.mark.skipif(
    not Path(FASHION_DIR).is_dir(),
    reason=f"{FASHION_DIR} is absent: install it with `apt-get install dataset-fashion-mnist` (.ci/run does)",
)
def test_fashion_mnist_builds_from_the_debian_files(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.IDX_DIR_ENV, "/nonexistent")  # MNIST's variable must not leak in
    monkeypatch.delenv("DAE_JAX_FASHION_MNIST_DIR", raising=False)
    src = sources.resolve_source("auto", None, str(tmp_path), "fashion_mnist")
    assert src.kind == "idx" and src.idx_dir == FASHION_DIR and "Fashion-MNIST" in src.description
    b = builders.builder(src, str(tmp_path))
    assert b.info.splits["train"].num_examples == 60_000 and b.info.splits["test"].num_examples == 10_000
    test = pipeline.load_split(b, "test")
    assert test["image"].shape == (10_000, 28, 28, 1) and test["image"].dtype == np.uint8
    assert np.bincount(test["label"]).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced
    assert b.builder_config.name == idx.idx_config_name(FASHION_DIR)  # its own TFDS config, not MNIST's
