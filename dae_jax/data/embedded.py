"""Real images that ship inside packages, and TFDS ``lfw``, as image-folder datasets (``folders.ImageFolder``).

- ``photos_config()``: every photograph in scikit-image's data folder (``PHOTOS``: 19 pictures of
  256-1024 px, grayscale or RGB), used whole. Left out: drawings and synthetic test patterns
  (``chessboard``, ``color``, ``logo``, ``phantom``, ``horse``, ...) and ``motorcycle_right.png``, the
  stereo twin of ``motorcycle_left.png``, which would show a test picture's content in training.
  A fixed split (``HELD_OUT``): 4 test and 2 validation photographs.
- ``LfwSubset``: the 100 real LFW faces of ``skimage.data.lfw_subset()`` (25x25 grayscale; its other
  100 images are the non-faces of a face-detection example and are left out): faces offline.
- ``LfwFaces``: TFDS ``lfw`` (13,233 faces of 250x250 RGB), downloaded when the network answers, each
  face stored as PNG bytes, split by the hash of its person and index.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data import folders

PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


def skimage_data_dir() -> Path:
    import skimage  # the pictures ship inside the package

    return Path(skimage.__file__).parent / "data"


# Held out of training: four test photographs of different kinds (a cat, objects, a rocket in the open air,
# grayscale text) and two for validation; the other 13 train.
HELD_OUT = (
    ("chelsea.png", "test"),
    ("coffee.png", "test"),
    ("rocket.jpg", "test"),
    ("text.png", "test"),
    ("astronaut.png", "validation"),
    ("moon.png", "validation"),
)


def photos_config() -> folders.FolderConfig:
    return folders.folder_config(skimage_data_dir(), PHOTOS, name="skimage_photos", held_out=HELD_OUT)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def _examples(named_images, split: str):
    """ImageFolder examples of ``split`` from (relative name, uint8 image) pairs, split by the hash of the name."""
    for name, image in named_images:
        if folders.split_of(name) == split:
            yield (
                name,
                {
                    "image_bytes": _png(image),
                    "path": name,
                    "height": image.shape[0],
                    "width": image.shape[1],
                    "label": folders.UNLABELED,
                },
            )


class LfwSubset(folders.ImageFolder):
    """scikit-image's 100 LFW faces (25x25 grayscale), as an image folder of PNGs."""

    BUILDER_CONFIGS = [folders.FolderConfig(name="lfw_subset", description="skimage.data.lfw_subset()")]

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in ("train", "validation", "test")}

    def _generate_examples(self, split):
        from skimage import data

        faces = np.round(data.lfw_subset()[:100] * 255).astype(np.uint8)  # the faces; [100:] are non-faces
        yield from _examples(((f"face_{i:03d}.png", face) for i, face in enumerate(faces)), split)


class LfwFaces(folders.ImageFolder):
    """TFDS ``lfw`` faces as an image folder of PNGs (downloaded on first use; memory stays flat)."""

    BUILDER_CONFIGS = [folders.FolderConfig(name="lfw", description="TFDS lfw, 250x250 RGB faces")]

    def _split_generators(self, dl_manager):
        tfds.builder("lfw", data_dir=self._data_dir_root).download_and_prepare()
        return {split: self._generate_examples(split) for split in ("train", "validation", "test")}

    def _generate_examples(self, split):
        lfw = tfds.builder("lfw", data_dir=self._data_dir_root)
        faces = tfds.as_numpy(lfw.as_dataset(split="train", shuffle_files=False))
        yield from _examples(((f"{e['label'].decode()}/{i:05d}.png", e["image"]) for i, e in enumerate(faces)), split)
