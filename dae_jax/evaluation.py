"""``evaluate(denoiser, dataset, corruption)``: a trained model's metrics on any images.

Scored exactly as training scores its test set: example i is corrupted with ``fold_in(key, i)``
where ``key`` is the run's evaluation key (``training.run_keys``), and ``training.make_eval_step``
computes the metrics of the output and of the noisy input. On the run's own test set (and the
same number of images) the numbers are those of its ``eval.json``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from dae_jax import corruptions, images, input_pipeline, sharding, training
from dae_jax.denoiser import Denoiser, load

RUN_SPLITS = ("train", "validation", "test")
# None (the run's own data), a TFDS name, an array of images, or a mapping with an "image" array.
Dataset = str | np.ndarray | jax.Array | Mapping[str, Any] | None
Corruption = str | Mapping[str, Any] | None  # None (the run's own), "name[:key=value,...]" or JSON, or a spec


def recorded_source(denoiser: Denoiser) -> input_pipeline.Source | None:
    """The data source the run's metadata.json recorded; None without one (its config then resolves it)."""
    metadata = denoiser.workdir / "metadata.json" if denoiser.workdir else None
    if metadata is not None and metadata.is_file():
        recorded = json.loads(metadata.read_text()).get("data")
        if recorded:
            return input_pipeline.Source(**recorded)
    return None


def load_dataset(
    denoiser: Denoiser, dataset: Dataset = None, split: str = "test", max_examples: int | None = None
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
        data = input_pipeline.load(denoiser.config.data, recorded_source(denoiser))
        arrays = getattr(data, split)
        description = f"{data.source.description}, {split} split"
    elif isinstance(dataset, str):
        b = input_pipeline.named_builder(dataset, denoiser.config.data.data_dir)
        if split.split("[")[0] not in b.info.splits:
            raise ValueError(f"TFDS dataset {dataset!r} has splits {sorted(b.info.splits)}, not {split!r}.")
        arrays = input_pipeline.load_split(b, split)
        description = f"TFDS {b.info.full_name}, {split} split"
    else:
        arrays = dict(dataset) if isinstance(dataset, Mapping) else {"image": dataset}
        if "image" not in arrays:
            raise ValueError(f"a mapping of arrays needs an 'image' entry, got keys {sorted(arrays)}.")
        description = "arrays"
    arrays = {k: v[:max_examples] for k, v in arrays.items() if k in ("image", "label")}
    x, layout = images.to_model_input(arrays["image"], denoiser.image_shape)  # checked: one clear error
    # uint8 stays uint8 (scored exactly as in training); float images are scored as given, in [0, 1].
    arrays["image"] = np.asarray(arrays["image"]).reshape(x.shape) if layout.uint8 else x
    return arrays, description


def corruption_spec(corruption: Corruption, denoiser: Denoiser) -> dict:
    """A corruption spec dict from None (the run's own), a name or ``"name:key=value,..."`` string, or a mapping."""
    if corruption is None:
        spec = denoiser.config.corruption.to_dict()
    elif isinstance(corruption, str):
        spec = corruptions.parse_spec(corruption)
    else:
        spec = dict(corruption)
    corruptions.from_spec(spec)  # a bad name or parameter is refused here, naming the valid ones
    return spec


@functools.lru_cache(maxsize=16)
def _eval_step(spec_json: str, loss: str) -> tuple[jax.sharding.Mesh, Callable]:
    """(mesh, jitted eval step) for a corruption spec and loss, kept so repeated calls do not recompile."""
    mesh = sharding.make_mesh()
    step = training.make_eval_step(corruptions.from_spec(json.loads(spec_json)), loss)
    return mesh, training.data_parallel(step, mesh, donate_state=False)


def evaluate(
    denoiser: Denoiser | str | os.PathLike,
    dataset: Dataset = None,
    corruption: Corruption = None,
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
    if not isinstance(denoiser, Denoiser):
        denoiser = load(denoiser)
    config = denoiser.config
    spec = corruption_spec(corruption, denoiser)
    arrays, description = load_dataset(denoiser, dataset, split, max_examples)
    mesh, eval_step = _eval_step(json.dumps(spec, sort_keys=True), config.loss)
    devices = mesh.devices.size
    batch_size = -(-(batch_size or config.eval_batch_size) // devices) * devices
    # eval_step reads only apply_fn and the variables; the optimizer is not needed.
    state = training.TrainState.create(
        apply_fn=denoiser.model.apply,
        params=denoiser.variables["params"],
        tx=optax.identity(),
        batch_stats=denoiser.variables["batch_stats"],
    )
    state = jax.device_put(state, sharding.replicated(mesh))
    _, _, eval_key = training.run_keys(config.seed if seed is None else seed)
    result = training.evaluate(eval_step, state, {"image": arrays["image"]}, eval_key, batch_size, mesh)
    return result | {"num_images": len(arrays["image"]), "dataset": description, "corruption": spec}
