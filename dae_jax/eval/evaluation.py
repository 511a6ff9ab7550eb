"""Scoring a model: ``evaluate_arrays`` (the loop over a split that training runs every epoch) and
``evaluate(denoiser, dataset, corruption)``, a trained model's metrics on any images.

Scored exactly as training scores its test set: example i gets the fixed evaluation noise
(``Setup.eval_noisy``: ``fold_in(key, i)`` with the run's evaluation key) and
``dae_jax.training.steps.make_eval_step`` computes the metrics of the output and of the noisy
input. On the run's own test set (and the same number of images) the numbers are those of its
``eval.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import configs, corruptions, host_corruptions, sharding
from dae_jax.data import builders, pipeline, sources
from dae_jax.eval import layout
from dae_jax.eval.denoiser import Denoiser, load
from dae_jax.setup import run_keys
from dae_jax.training import steps

RUN_SPLITS = ("train", "validation", "test")
# None (the run's own data), a TFDS name, an array of images, or a mapping with an "image" array.
DatasetArg = str | np.ndarray | jax.Array | Mapping[str, Any] | None
CorruptionArg = str | Mapping[str, Any] | None  # None (the run's own), "name[:key=value,...]" or JSON, or a spec


def evaluate_arrays(
    eval_step: Callable,
    variables: dict,
    arrays: dict[str, np.ndarray],
    key: jax.Array,
    batch_size: int,
    mesh: jax.sharding.Mesh,
    host=None,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of every per-image metric over all of ``arrays`` (this process's share in multi-host).

    ``eval_step``: ``sharding.data_parallel(steps.make_eval_step(setup), mesh, donate_state=False)``;
    ``host``, ``seed``: the run's host corruptions (``Setup.host_corrupt``), keyed by (seed, row).
    """
    local = batch_size // jax.process_count()
    totals = None
    for batch in pipeline.eval_batches(arrays, local, host, seed):
        sums = eval_step(variables, sharding.global_batch(batch, mesh), key)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = totals.pop("count")
    return {k: float(v / count) for k, v in totals.items()}


def recorded_source(denoiser: Denoiser) -> sources.Source | None:
    """The data source the run's metadata.json recorded; None without one (its config then resolves it)."""
    metadata = denoiser.workdir / "metadata.json" if denoiser.workdir else None
    if metadata is None or not metadata.is_file():
        return None
    try:
        recorded = json.loads(metadata.read_text())
        latest = (recorded.get("resumes") or [recorded])[-1].get("data")  # the source of the last (re)start
        return sources.Source(**latest) if latest else None
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{metadata} is damaged ({' '.join(str(e).split())[:120]}); delete it (the run's config then names "
            "its data) or rerun the training command to rewrite it."
        ) from None


def load_dataset(
    denoiser: Denoiser, dataset: DatasetArg = None, split: str = "test", max_examples: int | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """({"image": [N, H, W, C], "label": [N] when known}, description) of images checked against the model.

    dataset: None for the run's own data source (``split`` one of train, validation, test, as
    training splits it); a TFDS name (``fashion_mnist``, ``local_images/digits``; ``split`` any TFDS
    split such as ``test[:500]``); or an array of images / a mapping with an ``"image"`` array.
    max_examples: keep the first N images (None: all).
    """
    if dataset is None:
        if split not in RUN_SPLITS:
            raise ValueError(f"the run's data has splits {list(RUN_SPLITS)}, not {split!r}.")
        data = pipeline.load(denoiser.config.data, recorded_source(denoiser))
        arrays = getattr(data, split)
        description = f"{data.source.description}, {split} split"
    elif isinstance(dataset, str):
        b = builders.named_builder(dataset, denoiser.config.data.data_dir)
        if split.split("[")[0] not in b.info.splits:
            raise ValueError(f"TFDS dataset {dataset!r} has splits {sorted(b.info.splits)}, not {split!r}.")
        arrays = pipeline.load_split(b, split, denoiser.image_shape[2])
        description = f"TFDS {b.info.full_name}, {split} split"
    else:
        arrays = dict(dataset) if isinstance(dataset, Mapping) else {"image": dataset}
        if "image" not in arrays:
            raise ValueError(f"a mapping of arrays needs an 'image' entry, got keys {sorted(arrays)}.")
        description = "arrays"
    arrays = {k: v[:max_examples] for k, v in arrays.items() if k in ("image", "label")}
    # Checked (one clear error) and made NHWC; uint8 stays uint8 (scored exactly as in training), float images
    # are scored as given, in [0, 1].
    arrays["image"] = layout.to_model_input(arrays["image"], denoiser.image_shape, keep_uint8=True)[0]
    return arrays, description


def corruption_spec(corruption: CorruptionArg, denoiser: Denoiser) -> dict:
    """A corruption spec dict from None (the run's own), a name or ``"name:key=value,..."`` string, or a mapping."""
    if corruption is None:
        spec = denoiser.config.corruption.to_dict()
    elif isinstance(corruption, str):
        spec = corruptions.parse_spec(corruption)
    else:
        spec = dict(corruption)
    corruptions.from_spec(host_corruptions.split(spec)[1])  # a bad name or parameter is refused, naming valid ones
    return spec


@functools.lru_cache(maxsize=16)
def _eval_step(denoiser: Denoiser, spec_json: str) -> tuple[jax.sharding.Mesh, Callable]:
    """(mesh, jitted eval step) of a model with a corruption, kept so repeated calls do not recompile."""
    mesh = sharding.make_mesh()
    setup = denoiser.setup.with_corruption(json.loads(spec_json))
    return mesh, sharding.data_parallel(steps.make_eval_step(setup), mesh, donate_state=False)


def evaluate(
    denoiser: Denoiser | str | os.PathLike,
    dataset: DatasetArg = None,
    corruption: CorruptionArg = None,
    *,
    split: str = "test",
    max_examples: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Mean metrics (bce, mse, psnr, ssim of the output; ``noisy_*`` of the noisy input) over a dataset.

    denoiser: a ``Denoiser`` or a run's workdir. dataset, split, max_examples: see ``load_dataset``
    (default: the run's own test split). corruption: None (the run's own), a name such as
    ``"masking"``, ``"gaussian:sigma=0.3"``, or a spec mapping. seed: of the evaluation noise
    (default the run's, which reproduces eval.json). batch_size: default the run's
    ``eval_batch_size``, rounded up to a multiple of the device count (padding is masked out).
    Also returns ``num_images``, ``dataset`` (a description) and ``corruption`` (the spec used).
    """
    if seed is not None and not (isinstance(seed, int) and 0 <= seed <= configs.MAX_SEED):
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}.")
    if not isinstance(denoiser, Denoiser):
        denoiser = load(denoiser)
    spec = corruption_spec(corruption, denoiser)
    setup = denoiser.setup.with_corruption(spec)
    seed = denoiser.config.seed if seed is None else seed
    if dataset is None and (splits := _streamed_splits(denoiser)) is not None:
        return _evaluate_stream(denoiser, setup, splits, split, max_examples, seed) | {"corruption": spec}
    arrays, description = load_dataset(denoiser, dataset, split, max_examples)
    mesh, eval_step = _eval_step(denoiser, json.dumps(spec, sort_keys=True))
    devices = mesh.devices.size
    batch_size = -(-(batch_size or denoiser.config.eval_batch_size) // devices) * devices
    variables = jax.device_put(denoiser.variables, sharding.replicated(mesh))
    key = run_keys(seed).eval
    result = evaluate_arrays(
        eval_step, variables, {"image": arrays["image"]}, key, batch_size, mesh, setup.host_corrupt, seed
    )
    return result | {"num_images": len(arrays["image"]), "dataset": description, "corruption": spec}


def _streamed_splits(denoiser: Denoiser) -> pipeline.Splits | None:
    """The run's own splits when they are a streamed image folder (scored whole, image by image), else None."""
    if not sources.DATASETS.get(denoiser.config.data.dataset, sources.DATASETS["mnist"]).images_of_any_size:
        return None
    splits = pipeline.prepare(denoiser.config.data, recorded_source(denoiser), denoiser.image_shape[2])
    return splits if splits.streamed else None


def _evaluate_stream(denoiser: Denoiser, setup, splits: pipeline.Splits, split: str, limit, seed: int) -> dict:
    """``evaluate`` of a streamed run's own split: each image whole, as training scores it (eval.json)."""
    from dae_jax.data import stream
    from dae_jax.eval import whole_image

    if split not in splits.tfds_splits:
        raise ValueError(f"the run's data has splits {sorted(splits.tfds_splits)}, not {split!r}.")
    spec = dataclasses.replace(setup.image_spec, seed=seed)
    examples = stream.eval_images(splits.source_of(split), spec, limit)
    sums = whole_image.score_images(setup, denoiser.variables, examples, run_keys(seed).eval)
    count = int(sums.get("count", 0)) * jax.process_count()  # every process scores an equal share
    described = f"{splits.source.description}, {split} split (whole images)"
    return whole_image.mean_over_processes(sums) | {"num_images": count, "dataset": described}
