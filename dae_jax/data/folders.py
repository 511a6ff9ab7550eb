"""Folders of image files as a TFDS dataset of their bytes: ``ImageFolder`` (``dae-jax data prepare --image-dir``).

Any folder of PNG/JPEG files, searched recursively, of any sizes, grayscale or RGB. Splits:

- ``train/``, ``test/`` (and optionally ``validation/`` or ``val/``) subfolders, when the folder has them;
  a train folder without a validation one gives ``VALIDATION_BAND`` of its files to validation;
- otherwise a split by a stable hash of each file's path relative to the folder (``split_of``):
  the first ``TEST_BAND`` of the hash range is test, the next ``VALIDATION_BAND`` validation, the
  rest train. The hash depends on the path alone, so adding files never moves old ones across splits.

A first-level subfolder inside a split (or inside the folder, without split folders) names a
class; images directly in it are ``unlabeled``. Each example stores the file's bytes unchanged
(``image_bytes``), its path, size and class; decoding (``image_files.decode``) happens when it is
read, so 16-bit, EXIF-rotated and other files get the same rules everywhere. Prepared in the
ArrayRecord format: random access, which the streamed input pipeline (``dae_jax.data.stream``) needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from dae_jax.data import image_files

UNLABELED = "unlabeled"  # the class of images that sit directly in their split folder
TEST_BAND, VALIDATION_BAND = 0.1, 0.1
SPLIT_FOLDERS = {"train": "train", "test": "test", "validation": "validation", "val": "validation"}


def split_of(relative_path: str) -> str:
    """The split of a file by the hash of its relative path: a pure function of the path alone."""
    position = int(hashlib.sha256(relative_path.encode()).hexdigest()[:12], 16) / 16**12
    return "test" if position < TEST_BAND else "validation" if position < TEST_BAND + VALIDATION_BAND else "train"


def _class(parts: tuple[str, ...]) -> str:
    """The class of a file from its path parts below its split's folder: a subfolder's name, or unlabeled."""
    return parts[0] if len(parts) > 1 else UNLABELED


def scan(
    directory: str | os.PathLike, files: tuple[str, ...] = (), held_out: tuple[tuple[str, str], ...] = ()
) -> dict[str, list[tuple[str, str]]]:
    """{split: [(path relative to ``directory``, class)]} of an image folder (see the module docstring).

    ``files``: only these relative paths (a fixed set, as the embedded photographs), else every image;
    ``held_out``: (file, split) pairs for a fixed set instead of the hash split (its other files train).
    """
    fixed = dict(held_out)
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {str(directory)!r} does not exist; give a folder of PNG/JPEG files.")
    found = [directory / f for f in files] if files else image_files.find_images(directory)
    if not found:
        raise ValueError(f"image folder {str(directory)!r} has no PNG/JPEG files.")
    tops = {p.name for p in directory.iterdir() if p.is_dir()}
    by_folder = {"train", "test"} <= {SPLIT_FOLDERS.get(t) for t in tops}
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
    for path in found:
        parts = path.relative_to(directory).parts
        relative = "/".join(parts)
        if not by_folder:
            split = fixed.get(relative, "train") if fixed else split_of(relative)
            splits[split].append((relative, _class(parts)))
        elif parts[0] in SPLIT_FOLDERS and len(parts) > 1:  # files beside the split folders belong to none
            split = SPLIT_FOLDERS[parts[0]]
            if split == "train" and not tops & {"validation", "val"} and split_of(relative) == "validation":
                split = "validation"  # without a validation folder, the hash picks the train files that validate
            splits[split].append((relative, _class(parts[1:])))
    empty = [name for name in ("train", "test") if not splits[name]]
    if empty:
        raise ValueError(
            f"image folder {str(directory)!r}: its {' and '.join(empty)} split would be empty; add images."
        )
    return splits


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
    """One image folder (its path in ``description``), its file list when fixed, and its class names."""

    directory: str = ""
    files: tuple[str, ...] = ()
    classes: tuple[str, ...] = (UNLABELED,)
    held_out: tuple[tuple[str, str], ...] = ()  # (file, "test" | "validation"): a fixed split of a fixed set


def folder_config(
    directory: str | os.PathLike,
    files: tuple[str, ...] = (),
    name: str | None = None,
    held_out: tuple[tuple[str, str], ...] = (),
) -> FolderConfig:
    """The config of a folder; its name changes when any file is added, removed, renamed or rewritten
    (paths, sizes and modification times: a listing, no file is read)."""
    directory = Path(directory).resolve()
    splits = scan(directory, files, held_out)
    entries = sorted(relative for items in splits.values() for relative, _ in items)
    signature = [str(directory), repr(held_out)] + [
        f"{r}:{(s := (directory / r).stat()).st_size}:{s.st_mtime_ns}" for r in entries
    ]
    digest = hashlib.sha1("|".join(signature).encode()).hexdigest()[:12]
    classes = tuple(sorted({label for items in splits.values() for _, label in items}))
    return FolderConfig(
        name=f"{name}_{digest}" if name else f"d{digest}",  # a changed folder is prepared again, never mixed
        version=tfds.core.Version("1.0.0"),
        description=f"{directory} ({digest})",
        directory=str(directory),
        files=tuple(files),
        classes=classes,
        held_out=tuple(held_out),
    )


class ImageFolder(tfds.core.GeneratorBasedBuilder):
    """The image files of a folder, bytes unchanged, with path, size and class (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict(
            {
                "image_bytes": tfds.features.Tensor(shape=(), dtype=np.object_),
                "path": tfds.features.Text(),
                "height": np.int32,
                "width": np.int32,
                "label": tfds.features.ClassLabel(names=self.builder_config.classes),
            }
        )
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        c = self.builder_config
        splits = scan(c.directory, c.files, c.held_out)
        return {split: self._generate_examples(items) for split, items in splits.items() if items}

    def _generate_examples(self, items):
        root = Path(self.builder_config.directory)
        for relative, label in items:
            data = (root / relative).read_bytes()
            height, width, _ = image_files.decode(data, name=repr(str(root / relative))).shape  # unreadable: named now
            yield relative, {"image_bytes": data, "path": relative, "height": height, "width": width, "label": label}
