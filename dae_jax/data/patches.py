"""RGB pictures for super-resolution as TFDS builders of fixed-size patches.

Features ``image`` (uint8 [P, P, 3], P = ``PATCH_SIZE``) and ``label`` (the index of the picture
a patch was cut from):
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
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data import image_files
from dae_jax.data.image_files import IMAGE_SUFFIXES, is_image

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
    files = tuple(sorted(p for p in directory.iterdir() if is_image(p)))
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
        pictures = [
            image_files.read_image(f, channels=3) for f in c.files
        ]  # every file read and checked before TFDS writes anything
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
