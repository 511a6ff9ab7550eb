"""How a run is fed and scored: from arrays in memory (MNIST), or streamed from disk (image folders).

``feed(setup, splits, mesh, steps_per_epoch)`` picks one; the loop uses its three parts:

- ``runner(epoch, skip) -> advance`` with ``advance(state, k) -> (state, losses [k])``: the next k train
  steps of ``epoch``, the first ``skip`` of which were done already (a resumed run). The order is a pure
  function of (seed, epoch), so a resumed run continues exactly where the killed one stopped.
- ``score(split, variables) -> metrics``: a split with the fixed evaluation noise (array batches through
  the data-parallel eval step; or whole images, ``dae_jax.eval.whole_image``, for a stream).
- ``figure_examples(n)``: the first n test examples (uint8, whole) for the run's figures.

``ArrayFeed`` trains from tf.data batches, or with the training set resident on the devices and k steps
per call (``device_loop``). ``StreamFeed`` trains from
``dae_jax.data.stream``'s batches of views (random crops, flips, host corruptions) read on
background threads.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import sharding
from dae_jax.data import pipeline, stream
from dae_jax.eval import evaluation, whole_image
from dae_jax.nn import models
from dae_jax.setup import Setup
from dae_jax.training import device_loop, steps
from dae_jax.training.state import TrainState

Advance = Callable[[TrainState, int], tuple[TrainState, jax.Array]]
EpochRunner = Callable[[int, int], Advance]


# Bytes of host batches stacked into one call of the fed multi-step: the k batches sit in host and device
# memory at once, so batches of large images go fewer a call (a batch over this, one a call).
STACK_MAX_BYTES = 64 << 20


def _host_fed(setup: Setup, mesh) -> Callable[[Iterator[dict]], Advance]:
    """``advance`` over an iterator of this process's batches: where the model stays fast inside a ``lax.scan``
    (``models.scan_friendly``; any model off CPU), k batches stacked into one call of
    ``device_loop.make_fed_multi_step``, else one jitted step a batch."""
    train_step, key = steps.make_train_step(setup), setup.keys.train
    if _stacks(setup):
        multi_step = device_loop.make_fed_multi_step(train_step, mesh)
        return lambda batches: _stacking(multi_step, batches, mesh, key)
    step_fn = sharding.data_parallel(train_step, mesh, donate_state=True)
    return lambda batches: _stepping(step_fn, batches, mesh, key)


def _stacks(setup: Setup) -> bool:
    """Whether host batches go k a call: the model stays fast inside a ``lax.scan`` (always off CPU)."""
    return jax.default_backend() != "cpu" or models.scan_friendly(setup.model)


def _per_call(setup: Setup) -> str:
    """How ``_host_fed`` feeds the batches, for the run's log and metadata."""
    return "up to log_every_steps a call (lax.scan)" if _stacks(setup) else "one step a call"


def _stepping(step_fn, batches: Iterator[dict], mesh, key) -> Advance:
    """One jitted step a batch."""

    def advance(state: TrainState, k: int):
        losses = []
        for batch in itertools.islice(batches, k):
            state, m = step_fn(state, sharding.global_batch(batch, mesh), key)
            losses.append(m["loss"])
        return state, jnp.stack(losses)

    return advance


def _stacking(multi_step, batches: Iterator[dict], mesh, key) -> Advance:
    """k batches a call, at most ``STACK_MAX_BYTES`` of them; the next group is read while the last one runs."""

    def advance(state: TrainState, k: int):
        losses = []
        while k > 0:
            first = next(batches)
            per_call = max(1, STACK_MAX_BYTES // sum(v.nbytes for v in first.values()))
            group = [first, *itertools.islice(batches, min(k, per_call) - 1)]
            stacked = {name: np.stack([batch[name] for batch in group]) for name in first}
            state, chunk = multi_step(state, sharding.global_batch(stacked, mesh, stacked=True), key)
            losses.append(chunk)
            k -= len(group)
        return state, jnp.concatenate(losses)

    return advance


class ArrayFeed:
    """A run's splits as arrays in memory (``pipeline.read``)."""

    def __init__(self, setup: Setup, splits: pipeline.Splits, mesh, steps_per_epoch: int):
        self.setup, self.mesh, self.steps_per_epoch = setup, mesh, steps_per_epoch
        self.data = pipeline.read(splits)
        config = setup.config
        pipeline.check_image_shape(self.data.train["image"].shape[1:], config.image_shape)  # a folder read whole
        requested = config.device_resident
        if requested and setup.host_corrupt is not None:
            raise ValueError("config.device_resident cannot run host corruptions (jpeg, downscale); set it to False.")
        self.resident = setup.host_corrupt is None and device_loop.wanted(
            requested, self.data.train["image"], setup.model
        )
        self.order = "device-resident" if self.resident else "host"  # whose permutation orders the epochs
        self.description = (
            "device-resident lax.scan (dae_jax.training.device_loop)"
            if self.resident
            else f"tf.data batches, {_per_call(setup)}"
        )
        self.eval_step = sharding.data_parallel(steps.make_eval_step(setup), mesh, donate_state=False)
        self.runner = self._device_runner() if self.resident else self._host_runner()

    def _host_runner(self) -> EpochRunner:
        setup, train = self.setup, self.data.train
        fed = _host_fed(setup, self.mesh)
        local_batch = setup.config.batch_size // jax.process_count()

        def runner(epoch: int, skip: int) -> Advance:
            return fed(pipeline.train_batches(train, local_batch, setup.config.seed, epoch, skip, setup.host_corrupt))

        return runner

    def _device_runner(self) -> EpochRunner:
        setup, train = self.setup, self.data.train
        images = device_loop.put_images(train["image"], self.mesh)
        multi_step = device_loop.make_multi_step(steps.make_train_step(setup), self.mesh)
        config = setup.config
        rows = len(train["image"])
        orders = device_loop.EpochOrders(
            setup.keys.shuffle, rows, self.steps_per_epoch, config.batch_size, self.mesh, config.num_epochs
        )

        def runner(epoch: int, skip: int) -> Advance:
            order, position = orders(epoch), skip  # order: host int32 [steps, batch]

            def advance(state: TrainState, k: int):
                nonlocal position
                state, losses = multi_step(state, images, order[position : position + k], setup.keys.train)
                position += k
                return state, losses

            return advance

        return runner

    def _arrays(self, split: str) -> dict[str, np.ndarray]:
        arrays, n = getattr(self.data, split), self.setup.config.max_eval_examples
        return arrays if n is None else {k: v[:n] for k, v in arrays.items()}

    def score(self, split: str, variables: dict) -> dict[str, float]:
        config, arrays = self.setup.config, self._arrays(split)
        host = (self.setup.host_corrupt, config.seed)
        return evaluation.evaluate_arrays(
            self.eval_step, variables, arrays, self.setup.keys.eval, config.eval_batch_size, self.mesh, *host
        )

    def count(self, split: str) -> int:
        return len(self._arrays(split)["image"]) * jax.process_count()

    def figure_examples(self, n: int) -> list[dict]:
        test, host, seed = self.data.test, self.setup.host_corrupt, self.setup.config.seed
        examples = [{"image": test["image"][i], "row": i} for i in range(min(n, len(test["image"])))]
        if host is not None:
            for e in examples:
                e["input"] = stream.host_input(host, seed, stream.EVAL_EPOCH, e["row"], e["image"])
        return examples


class StreamFeed:
    """A run's image folder streamed from disk (``dae_jax.data.stream``): views to train, whole images to score."""

    def __init__(self, setup: Setup, splits: pipeline.Splits, mesh, steps_per_epoch: int):
        self.setup, self.mesh, self.splits = setup, mesh, splits
        self.sources = {split: splits.source_of(split) for split in splits.tfds_splits}
        self.order = "streamed"
        self.description = f"streamed from disk (dae_jax.data.stream: grain over ArrayRecord), {_per_call(setup)}"
        fed = _host_fed(setup, mesh)
        local_batch = setup.config.batch_size // jax.process_count()

        def runner(epoch: int, skip: int) -> Advance:
            batches = stream.train_batches(self.sources["train"], setup.image_spec, local_batch, epoch, skip)
            return fed({"image": b["image"], "row": b["row"], **_input(b)} for b in batches)

        self.runner = runner

    def _examples(self, split: str):
        if split not in self.sources:
            return iter(())
        return stream.eval_images(self.sources[split], self.setup.image_spec, self.setup.config.max_eval_examples)

    def score(self, split: str, variables: dict) -> dict[str, float]:
        variables = jax.device_get(variables)  # one image at a time, at its own size: on one device, not the mesh
        sums = whole_image.score_images(self.setup, variables, self._examples(split), self.setup.keys.eval)
        return whole_image.mean_over_processes(sums)

    def count(self, split: str) -> int:
        size = self.splits.sizes.get(split, 0) * jax.process_count()
        limit = self.setup.config.max_eval_examples
        return size if limit is None else min(size, limit // jax.process_count() * jax.process_count())

    def figure_examples(self, n: int) -> list[dict]:
        return list(itertools.islice(self._examples("test"), n))


def _input(batch: dict) -> dict:
    return {"input": batch["input"]} if "input" in batch else {}


def feed(setup: Setup, splits: pipeline.Splits, mesh, steps_per_epoch: int) -> ArrayFeed | StreamFeed:
    """The feed of a run: streamed for image folders (unless data.stream is False), else arrays in memory."""
    return (StreamFeed if splits.streamed else ArrayFeed)(setup, splits, mesh, steps_per_epoch)
