"""Training and evaluation: ``create_train_state``, ``train_step``, ``eval_step``, ``train_and_evaluate``.

``train(config, workdir=None) -> Run`` (exported as ``dae_jax.train``) is ``train_and_evaluate``.

The steps are written per device, with gradients and metrics averaged over the mesh axis
``data`` by ``lax.pmean``/``psum``; ``data_parallel`` runs them under ``jit(shard_map)`` on a
``Mesh``, and the same functions run unchanged under ``jax.pmap(..., axis_name="data")``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import platform
import subprocess
import tempfile
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
from dae_jax import (
    analysis,
    checkpoints,
    corruptions,
    device_loop,
    figures,
    input_pipeline,
    losses,
    metrics,
    models,
    optimizers,
    sharding,
)
from dae_jax.sharding import DATA_AXIS

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    batch_stats: Any = flax.struct.field(default_factory=dict)  # BatchNorm running statistics ({} without BN)

    def variables(self) -> dict:
        """What ``apply_fn`` takes: params and BatchNorm statistics."""
        return {"params": self.params, "batch_stats": self.batch_stats}


def to_float(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [0, 1]; float images are taken to be in [0, 1] already."""
    if images.dtype != jnp.uint8:
        return images.astype(jnp.float32)
    return images.astype(jnp.float32) / 255.0


def create_train_state(
    model: Any, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    """Initialises parameters for images of ``image_shape`` (H, W, C)."""
    variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx, batch_stats=variables.get("batch_stats", {})
    )


def make_train_step(
    corrupt: corruptions.Corruption, loss_name: str, micro_batch: int | None = None, compute_dtype: Any = None
) -> Callable:
    """``train_step(state, batch, key) -> (state, metrics)``, hyperparameters bound by closure.

    ``compute_dtype`` (e.g. ``jnp.bfloat16``): the model runs in it on copies of the float32
    parameters, whose gradients and updates stay float32; the loss is taken in float32.

    ``micro_batch`` (models without BatchNorm): this device's rows are processed in chunks of
    ``micro_batch`` by a ``lax.scan`` that sums their gradients. The update is the same (to float
    rounding); on CPU each chunk's activations stay in cache, which is faster (results/benchmarks).
    """
    loss_fn = losses.get(loss_name)

    def train_step(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
        clean = to_float(batch["image"])  # this device's rows: [n, H, W, C]
        n = clean.shape[0]
        # Fresh noise every step; example i of the global batch gets fold_in(step_key, i).
        step_key = jax.random.fold_in(key, state.step)
        index = lax.axis_index(DATA_AXIS) * n + jnp.arange(n)
        noisy = corruptions.per_example(corrupt, step_key, clean, index)

        def summed_loss(params, noisy, clean):
            if compute_dtype is not None:
                params, noisy = jax.tree.map(lambda x: x.astype(compute_dtype), (params, noisy))
            variables = {"params": params, "batch_stats": state.batch_stats}
            logits, updates = state.apply_fn(variables, noisy, train=True, mutable=["batch_stats"])
            return loss_fn(logits.astype(jnp.float32), clean).sum(), updates.get("batch_stats", {})

        grad_fn = jax.value_and_grad(summed_loss, has_aux=True)
        if micro_batch is None or micro_batch >= n:
            (total, batch_stats), grads = grad_fn(state.params, noisy, clean)
        else:
            if jax.tree.leaves(state.batch_stats):
                raise ValueError("micro-batching would change BatchNorm's batch statistics; use micro_batch=None.")

            def accumulate(sums, chunk):  # chunk: ([m, H, W, C] noisy, [m, H, W, C] clean)
                (value, _), grads = grad_fn(state.params, *chunk)
                return jax.tree.map(jnp.add, sums, (value, grads)), None

            chunks = [x.reshape(n // micro_batch, micro_batch, *x.shape[1:]) for x in (noisy, clean)]
            zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
            (total, grads), _ = lax.scan(accumulate, zeros, chunks)
            batch_stats = state.batch_stats
        # Equal shards: the mean over devices of this device's mean is the global mean.
        grads = lax.pmean(jax.tree.map(lambda g: g / n, grads), DATA_AXIS)
        # BatchNorm already normalises with global-batch statistics (axis "data"), so these agree
        # on every device; the pmean keeps the state replicated by construction.
        batch_stats = lax.pmean(batch_stats, DATA_AXIS)
        state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
        return state, {"loss": lax.pmean(total / n, DATA_AXIS)}

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


# On CPU a train step over 16 images at a time keeps activations in cache (results/benchmarks).
CPU_MICRO_BATCH = 16


# Largest training set the device-resident loop copies onto every device by default.
RESIDENT_MAX_BYTES = 1 << 30


def device_resident(requested: bool | None, train_images: np.ndarray, model) -> bool:
    """Whether to train with ``dae_jax.device_loop``: ``requested``, or by default when it can and is faster.

    Default: one process, a training set of at most ``RESIDENT_MAX_BYTES``, and on CPU a model whose
    layers stay fast inside ``lax.scan`` (``models.scan_friendly``; strided and transposed
    convolutions are 3x slower there, results/benchmarks/).
    """
    if requested is not None:
        return requested
    fits = jax.process_count() == 1 and train_images.nbytes <= RESIDENT_MAX_BYTES
    return fits and (jax.default_backend() != "cpu" or models.scan_friendly(model))


def micro_batch_size(
    requested: int | None, per_device: int, batch_stats: Any, scan_friendly: bool = True
) -> int | None:
    """The ``micro_batch`` for ``make_train_step``: ``requested`` (0: none), or by default
    ``CPU_MICRO_BATCH`` on CPU for models without BatchNorm whose layers stay fast inside a
    ``lax.scan`` (``models.scan_friendly``) when it divides the device batch."""
    if requested is None:
        auto = jax.default_backend() == "cpu" and scan_friendly and not jax.tree.leaves(batch_stats)
        return CPU_MICRO_BATCH if auto and per_device % CPU_MICRO_BATCH == 0 else None
    if requested == 0 or requested >= per_device:
        return None
    if jax.tree.leaves(batch_stats):
        raise ValueError("config.micro_batch_size would change BatchNorm's batch statistics; set it to 0 or None.")
    if per_device % requested:
        raise ValueError(
            f"config.micro_batch_size={requested} does not divide the {per_device} images per device; "
            "use a divisor of it, 0 (off) or None (auto)."
        )
    return requested


def data_parallel(step: Callable, mesh: jax.sharding.Mesh, donate_state: bool) -> Callable:
    """jit(shard_map(step)): state and key replicated, batch split over ``data``; jitted once.

    On a multi-device CPU mesh each call returns once it has run (``sharding.one_at_a_time``).
    """
    # check_vma=False gives pmap's semantics: the gradient of the replicated params is this
    # device's own, and train_step averages it with lax.pmean. With check_vma=True shard_map
    # would already psum it, and the pmean would then average an N-times-summed gradient.
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()), out_specs=P(), check_vma=False)
    return sharding.one_at_a_time(jax.jit(mapped, donate_argnums=(0,) if donate_state else ()), mesh)


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


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(init, train, eval) keys of a run. The eval key fixes the evaluation noise (example i of a split is
    corrupted with ``fold_in(eval_key, i)``): every model and every classical baseline (``dae_jax.classical``,
    ``dae_jax.evaluation``) is scored on the same noisy images."""
    rng = jax.random.key(seed)
    return tuple(jax.random.fold_in(rng, i) for i in range(3))


def run_metadata(config: ml_collections.ConfigDict, source: input_pipeline.Source, loop: str) -> dict:
    """What a result needs to be traced back: config, data source, training loop, versions, devices, git commit."""
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
        "training_loop": loop,
        "data": dataclasses.asdict(source),  # the resolved source, to read the run's data again
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


def strict_json(result: dict) -> dict:
    """``result`` with non-finite floats as None, for strict JSON (the PSNR of an uncorrupted input is inf)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def read_history(workdir: Path) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl``."""
    return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


class MetricWriter:
    """Appends one JSON line per record to ``metrics.jsonl`` and scalars to TensorBoard (process 0 only)."""

    def __init__(self, workdir: Path, resumed_step: int):
        from flax.metrics import tensorboard

        self.path = workdir / "metrics.jsonl"
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        if self.path.exists():  # drop records a killed run wrote after its last checkpoint, and a torn last line
            kept = [x for x in self.path.read_text().splitlines() if _record_step(x) <= resumed_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(f"{x}\n" for x in kept))
            os.replace(tmp, self.path)  # atomic: a kill now leaves the old or the new file, never a half
        self.tb = tensorboard.SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **record}) + "\n")
        for k, v in record.items():
            if isinstance(v, (int, float)):
                self.tb.scalar(k, v, step)
        self.tb.flush()


def _step_checkpoint_due(step: int, config: ml_collections.ConfigDict) -> bool:
    return bool(config.checkpoint_every_steps) and step % config.checkpoint_every_steps == 0


def _record_step(line: str) -> float:
    """The step of one metrics.jsonl line; infinity for a line a kill cut short."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError):
        return math.inf


def _take(arrays: dict[str, np.ndarray], n: int | None) -> dict[str, np.ndarray]:
    return arrays if n is None else {k: v[:n] for k, v in arrays.items()}


# Fields that fix the shapes and structure of the saved state: a checkpoint made with other
# values cannot be resumed.
STATE_FIELDS = ("image_shape", "model", "loss", "optimizer", "optimizer_kwargs", "lr_schedule", "lr_schedule_kwargs")
# What a checkpoint saved before a field existed was made with.
_FIELDS_ADDED = {"lr_schedule": "constant", "lr_schedule_kwargs": {}}


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
    if config.compute_dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(
            f"config.compute_dtype must be 'float32', 'bfloat16' or 'float16', got {config.compute_dtype!r}."
        )
    if config.micro_batch_size not in (None, 0):
        positive_int("micro_batch_size", config.micro_batch_size)
    models.from_config(config.model)  # unknown names and fields are refused here
    if config.loss not in losses.LOSSES:
        raise ValueError(f"Unknown loss {config.loss!r}; choose one of {sorted(losses.LOSSES)}.")
    optimizers.schedule(config.lr_schedule, 1.0, 100, **config.lr_schedule_kwargs)  # names and kwargs, now
    unknown = [name for name in config.analyses if name not in analysis.ANALYSES]
    if unknown:
        raise ValueError(f"Unknown analyses {unknown}; choose from {sorted(analysis.ANALYSES)}.")
    if config.data.dataset not in input_pipeline.DATASETS:
        raise ValueError(f"Unknown dataset {config.data.dataset!r}; choose one of {sorted(input_pipeline.DATASETS)}.")
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
    old = _flatten({k: saved.get(k, _FIELDS_ADDED.get(k)) for k in STATE_FIELDS})
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
        probe = workdir / f".write_test.{jax.process_index()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"workdir {str(workdir)!r} cannot be written ({e.strerror}); pass a writable --workdir."
        ) from None
    return workdir


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished training run."""

    state: TrainState  # the final state (params, optimizer state, BatchNorm statistics)
    history: list[dict]  # one record per epoch, as in metrics.jsonl
    metrics: dict[str, Any]  # the test evaluation, as in eval.json
    workdir: Path


def check_finite(losses: np.ndarray, first_step: int, config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Raises FloatingPointError naming the first step whose loss is NaN/inf (``losses[i]`` is step first_step+i+1).

    Called before any checkpoint of those steps is written, so the last checkpoint stays good.
    """
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise FloatingPointError(
            f"loss is {losses[bad[0]]} at step {first_step + bad[0] + 1}: training stopped. The last good checkpoint "
            f"is kept in {workdir / 'checkpoints'}. Likely cause: learning rate too high "
            f"(learning_rate={config.learning_rate}, optimizer={config.optimizer}); lower it with "
            "--config.learning_rate."
        )


# An epoch runner: ``runner(epoch, skip) -> advance`` where ``advance(state, k) -> (state, losses [k])``
# runs the next k train steps of the epoch, the first ``skip`` steps of which were already done.
EpochRunner = Callable[[int, int], Callable[[TrainState, int], tuple[TrainState, jax.Array]]]


def host_runner(
    train_step: Callable, train: dict, config: ml_collections.ConfigDict, mesh, key: jax.Array, steps_per_epoch: int
) -> EpochRunner:
    """Batches from tf.data (``input_pipeline.train_batches``), one jitted data-parallel step at a time."""
    step_fn = data_parallel(train_step, mesh, donate_state=True)
    local_batch = config.batch_size // jax.process_count()

    def runner(epoch: int, skip: int):
        batches = input_pipeline.train_batches(train, local_batch, config.seed, epoch, skip)

        def advance(state: TrainState, k: int):
            losses = []
            for batch in itertools.islice(batches, k):
                state, m = step_fn(state, sharding.global_batch(batch, mesh), key)
                losses.append(m["loss"])
            return state, jnp.stack(losses)

        return advance

    return runner


def device_runner(
    train_step: Callable, train: dict, config: ml_collections.ConfigDict, mesh, key: jax.Array, steps_per_epoch: int
) -> EpochRunner:
    """The training set resident on the devices, shuffled there, k steps per call (``dae_jax.device_loop``)."""
    images = device_loop.put_images(train["image"], mesh)
    multi_step = device_loop.make_multi_step(train_step, mesh)
    shuffle_key = jax.random.fold_in(jax.random.key(config.seed), 3)  # 0-2 are run_keys

    def runner(epoch: int, skip: int):
        order = device_loop.epoch_order(shuffle_key, epoch, len(train["image"]), steps_per_epoch, config.batch_size)
        position = skip

        def advance(state: TrainState, k: int):
            nonlocal position
            state, losses = multi_step(state, images, order[position : position + k], key)
            position += k
            return state, losses

        return advance

    return runner


def prepare(config: ml_collections.ConfigDict, mesh, total_steps: int) -> tuple[TrainState, Callable]:
    """The initial state of ``config``'s run, replicated over ``mesh``, and its per-device ``train_step``.

    What ``train_and_evaluate`` trains, and what the benchmark (experiments/benchmark.py) times.
    ``total_steps`` sets the length of a learning-rate schedule.
    """
    model = models.from_config(config.model)
    tx = optimizers.from_config(config, total_steps=total_steps)
    state = create_train_state(model, tx, run_keys(config.seed)[0], tuple(config.image_shape))
    state = jax.device_put(state, sharding.replicated(mesh))
    per_device = config.batch_size // mesh.devices.size
    micro = micro_batch_size(config.micro_batch_size, per_device, state.batch_stats, models.scan_friendly(model))
    corrupt = corruptions.from_spec(config.corruption.to_dict())
    compute_dtype = None if config.compute_dtype == "float32" else jnp.dtype(config.compute_dtype)
    return state, make_train_step(corrupt, config.loss, micro, compute_dtype)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None) -> Run:
    """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates it on the test set.

    ``workdir`` None: a fresh temporary directory (``Run.workdir`` says which).
    """
    from tqdm import tqdm

    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="dae_jax_")
    if config.get("smoke"):
        config = smoke(config)
    check_config(config)
    workdir = _writable_workdir(workdir)

    mesh = sharding.make_mesh()
    sharding.check_batch_size(config.batch_size, mesh)
    sharding.check_batch_size(config.eval_batch_size, mesh)
    corrupt = corruptions.from_spec(config.corruption.to_dict())

    data = input_pipeline.load(config.data)
    resident = device_resident(config.device_resident, data.train["image"], models.from_config(config.model))
    loop = "device-resident lax.scan (dae_jax.device_loop)" if resident else "tf.data, one jitted step per batch"
    print(f"training loop: {loop}", flush=True)
    if jax.process_index() == 0:
        (workdir / "metadata.json").write_text(json.dumps(run_metadata(config, data.source, loop), indent=2))
    local_batch = config.batch_size // jax.process_count()
    steps_per_epoch = len(data.train["image"]) // local_batch
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {len(data.train['image'])} training images.")
    if data.train["image"].shape[1:] != tuple(config.image_shape):
        raise ValueError(
            f"the data's images are {data.train['image'].shape[1:]} (H, W, C) but config.image_shape is "
            f"{tuple(config.image_shape)}; set --config.image_shape to match the data."
        )
    rng = jax.random.key(config.seed)
    _, train_key, eval_key = run_keys(config.seed)
    state, train_step = prepare(config, mesh, total_steps=steps_per_epoch * config.num_epochs)
    print(f"model {config.model.name}: {models.param_count(state.params):,} parameters", flush=True)

    ckpts = checkpoints.Checkpoints(workdir / "checkpoints", config.keep_checkpoints)
    state = resume(ckpts, state, config)

    eval_step = data_parallel(make_eval_step(corrupt, config.loss), mesh, donate_state=False)
    epoch_runner = (device_runner if resident else host_runner)(
        train_step, data.train, config, mesh, train_key, steps_per_epoch
    )
    validation = _take(data.validation, config.max_eval_examples)
    step = int(state.step)
    writer = MetricWriter(workdir, resumed_step=step)
    for epoch in range(step // steps_per_epoch, config.num_epochs):
        skip = step - epoch * steps_per_epoch
        advance = epoch_runner(epoch, skip)
        losses_ = []
        start = time.perf_counter()
        bar = tqdm(
            total=steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{config.num_epochs}",
            unit="step",
            disable=None,
        )
        epoch_start, epoch_end = epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch
        while step < epoch_end:
            # Run up to the next event: a loss check (every log_every_steps of the epoch), a checkpoint,
            # the epoch's end. Counting from the epoch's start keeps the chunk lengths (the device loop
            # compiles one scan per length) to a few.
            next_log = epoch_start + ((step - epoch_start) // config.log_every_steps + 1) * config.log_every_steps
            events = [epoch_end, next_log]
            if config.checkpoint_every_steps:
                events.append((step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps)
            k = min(events) - step
            state, chunk_losses = advance(state, k)
            chunk_losses = np.asarray(chunk_losses)  # [k]: the one host sync per interval
            losses_.append(chunk_losses)
            check_finite(chunk_losses, step, config, workdir)
            step += k
            bar.update(k)
            rate = (step - epoch_start - skip) * config.batch_size / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{chunk_losses[-1]:.4f}", img_s=f"{rate:,.0f}")
            if step < epoch_end and _step_checkpoint_due(step, config):  # at the epoch's end: after its record
                ckpts.save(state, rng, config)
        bar.close()
        elapsed = time.perf_counter() - start
        epoch_losses = np.concatenate(losses_)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(epoch_losses.mean()),
            "images_per_s": len(epoch_losses) * config.batch_size / elapsed,
        }
        record |= {
            f"val_{k}": v
            for k, v in evaluate(eval_step, state, validation, eval_key, config.eval_batch_size, mesh).items()
        }
        writer.write(step, record)
        print(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, "
            f"val {config.loss} {record[f'val_{config.loss}']:.4f}, "
            f"val psnr {record['val_psnr']:.2f} dB, {record['images_per_s']:,.0f} img/s",
            flush=True,
        )
        # Saved after the epoch's record is written: a run killed in between redoes the epoch and its
        # record, rather than resuming past an epoch that metrics.jsonl never got.
        due = (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs
        if (due or _step_checkpoint_due(step, config)) and step not in ckpts.all_steps():
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
        (workdir / "eval.json").write_text(json.dumps(strict_json(result), indent=2, allow_nan=False))
        write_figures(state, test, eval_key, corrupt, config, workdir)
        for name in config.analyses:  # e.g. pca_angles.json (on this process's share of the data)
            analysis.run(name, state, data.train, test, workdir)
    print(
        f"test ({result['num_test_images']} images): PSNR {result['psnr']:.2f} dB (noisy input "
        f"{result['noisy_psnr']:.2f}), SSIM {result['ssim']:.4f} (noisy input {result['noisy_ssim']:.4f}), "
        f"{config.loss.upper()} {result[config.loss]:.4f}",
        flush=True,
    )
    return Run(state=state, history=read_history(workdir), metrics=result, workdir=workdir)


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
    codes, skips = state.apply_fn(variables, noisy, method="encode_with_skips")
    denoised = losses.OUTPUT_ACTIVATIONS[config.loss](state.apply_fn(variables, codes, skips=skips, method="decode"))
    title = f"{config.model.name}, {config.corruption.name} {config.corruption.get('sigma', '')}"
    rows = {"noisy": np.asarray(noisy), "denoised": np.asarray(denoised), "clean": np.asarray(clean)}
    figures.image_rows(rows, workdir / "denoising.png", title=title)
    figures.loss_curves(read_history(workdir), config.loss, workdir / "loss.png", title=title)
    if codes.ndim == 4:
        figures.code_maps(np.asarray(codes), rows["noisy"], rows["clean"], workdir / "codes.png")


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None) -> Run:
    """``dae_jax.train``: trains and evaluates ``config`` in ``workdir`` (a temporary directory when None)."""
    return train_and_evaluate(config, workdir)
