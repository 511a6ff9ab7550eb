"""Folders of image files as a TFDS dataset: ``LocalImages`` (``dae-jax data prepare --image-dir``).

A folder holds one subfolder per split (train/, test/, ...), each holding PNG/JPEG files or one
subfolder per class. Features ``image`` (uint8 [H, W, C], all of one size) and ``label``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import tensorflow_datasets as tfds

from dae_jax.data import image_files
from dae_jax.data.image_files import find_images, is_image

UNLABELED = "unlabeled"  # the class of images that sit directly in their split folder


def scan_image_folder(directory: str | os.PathLike) -> dict[str, list[tuple[Path, str]]]:
    """{split: [(image path, class name)]} of a folder laid out as ``split/[class/]image.png``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {str(directory)!r} does not exist.")
    layout = "it needs one folder per split (train/, test/, ...), each holding images or one folder per class"
    loose = [p.name for p in directory.iterdir() if is_image(p)]
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
    splits = scan_image_folder(directory)
    first = next(iter(splits.values()))[0][0]
    classes = tuple(sorted({label for items in splits.values() for _, label in items}))
    return LocalImagesConfig(
        name=name,
        description=str(Path(directory).resolve()),
        shape=image_files.read_image(first, channels).shape,
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
        shape, channels = tuple(self.builder_config.shape), self.builder_config.shape[-1]
        for path, label in items:
            image = image_files.read_image(path, channels)
            if image.shape != shape:
                raise ValueError(
                    f"{path} is {image.shape[0]}x{image.shape[1]} but the folder's first image is "
                    f"{shape[0]}x{shape[1]}; all images of a dataset must have one size."
                )
            yield str(path), {"image": image, "label": label}
