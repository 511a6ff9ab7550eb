"""Training and evaluation: ``create_train_state``, ``train_step``, ``eval_step``, ``train_and_evaluate``.

The steps are written per device, with gradients and metrics averaged over the mesh axis
``data`` by ``lax.pmean``/``psum``; ``data_parallel`` runs them under ``jit(shard_map)`` on a
``Mesh``, and the same functions run unchanged under ``jax.pmap(..., axis_name="data")``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax import lax
from jax.sharding import PartitionSpec as P

import dae_jax
from dae_jax import checkpoints, corruptions, figures, input_pipeline, losses, metrics, models, optimizers, sharding
from dae_jax.sharding import DATA_AXIS

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    batch_stats: Any = flax.struct.field(default_factory=dict)  # BatchNorm running statistics ({} without BN)

    def variables(self) -> dict:
        """What ``apply_fn`` takes: params and BatchNorm statistics."""
        return {"params": self.params, "batch_stats": self.batch_stats}


def to_float(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def fixed_noise_key(seed: int) -> jax.Array:
    """The key of a run's fixed evaluation noise: example i of a split is corrupted with ``fold_in(key, i)``.

    Every model and every classical baseline (``dae_jax.classical``) is scored on these noisy images.
    """
    return jax.random.fold_in(jax.random.key(seed), 2)


def create_train_state(
    model: Any, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    """Initialises parameters for images of ``image_shape`` (H, W, C)."""
    variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx, batch_stats=variables.get("batch_stats", {})
    )


def make_train_step(corrupt: corruptions.Corruption, loss_name: str) -> Callable:
    """``train_step(state, batch, key) -> (state, metrics)``, hyperparameters bound by closure."""
    loss_fn = losses.get(loss_name)

    def train_step(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
        clean = to_float(batch["image"])  # this device's rows: [n, H, W, C]
        n = clean.shape[0]
        # Fresh noise every step; example i of the global batch gets fold_in(step_key, i).
        step_key = jax.random.fold_in(key, state.step)
        index = lax.axis_index(DATA_AXIS) * n + jnp.arange(n)
        noisy = corruptions.per_example(corrupt, step_key, clean, index)

        def loss(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            logits, updates = state.apply_fn(variables, noisy, train=True, mutable=["batch_stats"])
            return loss_fn(logits, clean).mean(), updates.get("batch_stats", {})

        (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
        grads = lax.pmean(grads, DATA_AXIS)  # equal shards: mean of means = global mean
        # BatchNorm already normalises with global-batch statistics (axis "data"), so these agree
        # on every device; the pmean keeps the state replicated by construction.
        batch_stats = lax.pmean(batch_stats, DATA_AXIS)
        state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
        return state, {"loss": lax.pmean(value, DATA_AXIS)}

    return train_step


def make_eval_step(corrupt: corruptions.Corruption, loss_name: str) -> Callable:
    """``eval_step(state, batch, key) -> sums`` of per-image metrics of the output and of the noisy input.

    The noise of example ``batch["index"][i]`` is ``fold_in(key, index)``: with a fixed key
    every run and every model is scored on the same noisy images.
    """
    activation = losses.OUTPUT_ACTIVATIONS[loss_name]

    def eval_step(state: TrainState, batch: Batch, key: jax.Array) -> Metrics:
        clean = to_float(batch["image"])
        noisy = corruptions.per_example(corrupt, key, clean, batch["index"])
        output = activation(state.apply_fn(state.variables(), noisy))
        per_image = metrics.image_metrics(output, clean)
        per_image |= {f"noisy_{k}": v for k, v in metrics.image_metrics(noisy, clean).items()}
        mask = batch["mask"]
        sums = {k: lax.psum(jnp.sum(jnp.where(mask, v, 0.0)), DATA_AXIS) for k, v in per_image.items()}
        sums["count"] = lax.psum(jnp.sum(mask.astype(jnp.float32)), DATA_AXIS)
        return sums

    return eval_step


def data_parallel(step: Callable, mesh: jax.sharding.Mesh, donate_state: bool) -> Callable:
    """jit(shard_map(step)): state and key replicated, batch split over ``data``; jitted once."""
    # check_vma=False gives pmap's semantics: the gradient of the replicated params is this
    # device's own, and train_step averages it with lax.pmean. With check_vma=True shard_map
    # would already psum it, and the pmean would then average an N-times-summed gradient.
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()), out_specs=P(), check_vma=False)
    return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())


def evaluate(
    eval_step: Callable,
    state: TrainState,
    arrays: dict[str, np.ndarray],
    key: jax.Array,
    batch_size: int,
    mesh: jax.sharding.Mesh,
) -> dict[str, float]:
    """Mean of every per-image metric over all of ``arrays`` (this process's share in multi-host)."""
    local = batch_size // jax.process_count()
    totals = None
    for batch in input_pipeline.eval_batches(arrays, local):
        sums = eval_step(state, sharding.global_batch(batch, mesh), key)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = totals.pop("count")
    return {k: float(v / count) for k, v in totals.items()}


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` shrunk to run in seconds: one epoch of 2 steps, small evaluation."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.num_epochs, config.max_steps_per_epoch, config.max_eval_examples = 1, 2, 256
    config.eval_batch_size = 256  # no padding 256 images up to a full-size evaluation batch
    return config


def run_metadata(config: ml_collections.ConfigDict, source: input_pipeline.Source) -> dict:
    """What a result needs to be traced back: config, data source, versions, devices, git commit."""
    import flax
    import optax as _optax

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "config": config.to_dict(),
        "data_source": source.description,
        "versions": {
            "dae_jax": dae_jax.__version__,
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": _optax.__version__,
            "python": platform.python_version(),
        },
        "devices": [str(d) for d in jax.devices()],
        "process_count": jax.process_count(),
        "git_commit": commit,
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class MetricWriter:
    """Appends one JSON line per record to ``metrics.jsonl`` and scalars to TensorBoard."""

    def __init__(self, workdir: Path, resumed_step: int):
        from flax.metrics import tensorboard

        self.path = workdir / "metrics.jsonl"
        if self.path.exists():  # drop records a killed run wrote after its last checkpoint
            lines = self.path.read_text().splitlines()
            self.path.write_text("".join(f"{x}\n" for x in lines if json.loads(x)["step"] <= resumed_step))
        self.tb = tensorboard.SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, record: dict[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **record}) + "\n")
        for k, v in record.items():
            if isinstance(v, (int, float)):
                self.tb.scalar(k, v, step)
        self.tb.flush()


def _take(arrays: dict[str, np.ndarray], n: int | None) -> dict[str, np.ndarray]:
    return arrays if n is None else {k: v[:n] for k, v in arrays.items()}


# Fields that fix the shapes and structure of the saved state: a checkpoint made with other
# values cannot be resumed.
STATE_FIELDS = ("image_shape", "model", "loss", "optimizer", "optimizer_kwargs")


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the field and a valid value for a config that cannot run."""

    def positive_int(name: str, value) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config.{name} must be a positive integer, got {value!r}.")

    for name in (
        "batch_size",
        "eval_batch_size",
        "num_epochs",
        "log_every_steps",
        "checkpoint_every_epochs",
        "keep_checkpoints",
        "num_figure_images",
    ):
        positive_int(name, config[name])
    for name in ("max_steps_per_epoch", "max_eval_examples", "checkpoint_every_steps"):
        if config[name] is not None:
            positive_int(name, config[name])
    if config.loss not in losses.LOSSES:
        raise ValueError(f"Unknown loss {config.loss!r}; choose one of {sorted(losses.LOSSES)}.")
    if config.data.source not in input_pipeline.SOURCES:
        raise ValueError(f"Unknown data source {config.data.source!r}; choose one of {list(input_pipeline.SOURCES)}.")
    if not 0 < round(100 * config.data.validation_fraction) < 100:
        raise ValueError(f"data.validation_fraction must be in [0.01, 0.99], got {config.data.validation_fraction}.")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
    """``field: checkpoint value -> config value`` for every STATE_FIELDS entry that differs."""
    current = json.loads(json.dumps(config.to_dict()))  # as saved: tuples become lists
    old = _flatten({k: saved.get(k) for k in STATE_FIELDS})
    new = _flatten({k: current.get(k) for k in STATE_FIELDS})
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def resume(ckpts: checkpoints.Checkpoints, state: TrainState, config: ml_collections.ConfigDict) -> TrainState:
    """The state at ``config.restore_step`` (default: the latest step), or ``state`` when there is none.

    Refuses, with the reason and the way out, a damaged checkpoint or one made by a config
    whose model, loss or optimizer differ. Resuming an earlier step deletes the later ones.
    """
    steps = ckpts.all_steps()
    while config.restore_step is None and steps and not ckpts.is_complete(steps[-1]):
        print(f"discarding checkpoint step {steps[-1]}: its write was interrupted", flush=True)
        ckpts.manager.delete(steps.pop())
    if not steps:
        return state
    step = steps[-1] if config.restore_step is None else config.restore_step
    earlier = [s for s in steps if s < step]
    try:
        if step not in steps:
            raise checkpoints.CheckpointError(f"no checkpoint step {step} in {ckpts.directory}; it has {steps}.")
        ckpts.verify(step)
    except checkpoints.CheckpointError as e:
        way_out = (
            f"resume from the previous good step with --config.restore_step={earlier[-1]}"
            if earlier
            else f"delete {ckpts.directory} to start over"
        )
        raise checkpoints.CheckpointError(f"{e} Training will not start from it: {way_out}.") from None
    differences = config_differences(ckpts.saved_config(step), config)
    if differences:
        raise checkpoints.CheckpointError(
            f"the checkpoint at step {step} in {ckpts.directory} was made with a different config "
            f"({'; '.join(differences)}). Use a new --workdir, or the config it was made with."
        )
    state, _, _ = ckpts.restore(state, step)
    dropped = ckpts.delete_after(step)
    print(
        f"resumed from {ckpts.directory} at step {step}" + (f" (deleted later steps {dropped})" if dropped else ""),
        flush=True,
    )
    return state


def _writable_workdir(workdir: str | os.PathLike) -> Path:
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"workdir {str(workdir)!r} cannot be written ({e.strerror}); pass a writable --workdir."
        ) from None
    return workdir


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, float]:
    """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and returns test metrics."""
    from tqdm import tqdm

    if config.get("smoke"):
        config = smoke(config)
    check_config(config)
    workdir = _writable_workdir(workdir)

    mesh = sharding.make_mesh()
    sharding.check_batch_size(config.batch_size, mesh)
    sharding.check_batch_size(config.eval_batch_size, mesh)
    model = models.make(config.model.name, **{k: v for k, v in config.model.items() if k != "name"})
    corrupt = corruptions.from_spec(config.corruption.to_dict())
    tx = optimizers.make(config.optimizer, learning_rate=config.learning_rate, **config.optimizer_kwargs)

    data = input_pipeline.load(config.data)
    (workdir / "metadata.json").write_text(json.dumps(run_metadata(config, data.source), indent=2))

    rng = jax.random.key(config.seed)
    init_key, train_key = (jax.random.fold_in(rng, i) for i in range(2))
    eval_key = fixed_noise_key(config.seed)
    if data.train["image"].shape[1:] != tuple(config.image_shape):
        raise ValueError(
            f"the data's images are {data.train['image'].shape[1:]} (H, W, C) but config.image_shape is "
            f"{tuple(config.image_shape)}; set --config.image_shape to match the data."
        )
    state = create_train_state(model, tx, init_key, tuple(config.image_shape))
    print(f"model {config.model.name}: {models.param_count(state.params):,} parameters", flush=True)
    state = jax.device_put(state, sharding.replicated(mesh))

    ckpts = checkpoints.Checkpoints(workdir / "checkpoints", config.keep_checkpoints)
    state = resume(ckpts, state, config)

    train_step = data_parallel(make_train_step(corrupt, config.loss), mesh, donate_state=True)
    eval_step = data_parallel(make_eval_step(corrupt, config.loss), mesh, donate_state=False)
    local_batch = config.batch_size // jax.process_count()
    steps_per_epoch = len(data.train["image"]) // local_batch
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {len(data.train['image'])} training images.")
    validation = _take(data.validation, config.max_eval_examples)
    step = int(state.step)
    writer = MetricWriter(workdir, resumed_step=step)
    for epoch in range(step // steps_per_epoch, config.num_epochs):
        skip = step - epoch * steps_per_epoch
        batches = input_pipeline.train_batches(data.train, local_batch, config.seed, epoch, skip)
        losses_ = []
        start = time.perf_counter()
        bar = tqdm(
            total=steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{config.num_epochs}",
            unit="step",
            disable=None,
        )
        for _, batch in zip(range(steps_per_epoch - skip), batches, strict=False):
            state, m = train_step(state, sharding.global_batch(batch, mesh), train_key)
            step += 1
            losses_.append(m["loss"])
            save_now = bool(config.checkpoint_every_steps) and step % config.checkpoint_every_steps == 0
            if save_now or step % config.log_every_steps == 0 or step % steps_per_epoch == 0:
                loss = float(m["loss"])  # the one host sync per logging interval
                if not math.isfinite(loss):  # checked before any save, so the last checkpoint stays good
                    raise FloatingPointError(
                        f"loss is {loss} at step {step}: training stopped. The last good checkpoint is kept in "
                        f"{workdir / 'checkpoints'}. Likely cause: learning rate too high "
                        f"(learning_rate={config.learning_rate}, optimizer={config.optimizer}); lower it with "
                        "--config.learning_rate."
                    )
                rate = len(losses_) * config.batch_size / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:,.0f}")
            bar.update(1)
            if save_now:
                ckpts.save(state, rng, config)
        bar.close()
        elapsed = time.perf_counter() - start
        record = {
            "epoch": epoch + 1,
            "train_loss": float(jnp.mean(jnp.stack(losses_))),
            "images_per_s": len(losses_) * config.batch_size / elapsed,
        }
        record |= {
            f"val_{k}": v
            for k, v in evaluate(eval_step, state, validation, eval_key, config.eval_batch_size, mesh).items()
        }
        writer.write(step, record)
        print(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val bce {record['val_bce']:.4f}, "
            f"val psnr {record['val_psnr']:.2f} dB, {record['images_per_s']:,.0f} img/s",
            flush=True,
        )
        if ((epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs) and (
            step not in ckpts.all_steps()
        ):
            ckpts.save(state, rng, config)
    ckpts.close()

    test = _take(data.test, config.max_eval_examples)
    result = evaluate(eval_step, state, test, eval_key, config.eval_batch_size, mesh)
    result |= {
        "num_test_images": len(test["image"]) * jax.process_count(),
        "step": step,
        "data_source": data.source.description,
    }
    if jax.process_index() == 0:
        # Strict JSON: a non-finite value (PSNR of an uncorrupted input) is written as null.
        finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}
        (workdir / "eval.json").write_text(json.dumps(finite, indent=2, allow_nan=False))
        write_figures(state, test, eval_key, corrupt, config, workdir)
    print(
        f"test ({result['num_test_images']} images): PSNR {result['psnr']:.2f} dB (noisy input "
        f"{result['noisy_psnr']:.2f}), SSIM {result['ssim']:.4f} (noisy input {result['noisy_ssim']:.4f}), "
        f"BCE {result['bce']:.4f}",
        flush=True,
    )
    return result


def write_figures(
    state: TrainState,
    test: dict[str, np.ndarray],
    key: jax.Array,
    corrupt: corruptions.Corruption,
    config: ml_collections.ConfigDict,
    workdir: Path,
) -> None:
    """denoising.png (noisy / denoised / clean), loss.png, and codes.png when the code is spatial.

    The figure digits are the first ``num_figure_images`` test images with the fixed test noise.
    """
    n = config.num_figure_images
    clean = to_float(jnp.asarray(test["image"][:n]))
    noisy = corruptions.per_example(corrupt, key, clean, jnp.arange(n))
    variables = jax.device_get(state.variables())
    codes = state.apply_fn(variables, noisy, method="encode")
    denoised = losses.OUTPUT_ACTIVATIONS[config.loss](state.apply_fn(variables, codes, method="decode"))
    title = f"{config.model.name}, {config.corruption.name} {config.corruption.get('sigma', '')}"
    rows = {"noisy": np.asarray(noisy), "denoised": np.asarray(denoised), "clean": np.asarray(clean)}
    figures.image_rows(rows, workdir / "denoising.png", title=title)
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    figures.loss_curves(records, config.loss, workdir / "loss.png", title=title)
    if codes.ndim == 4:
        figures.code_maps(np.asarray(codes), rows["noisy"], rows["clean"], workdir / "codes.png")
