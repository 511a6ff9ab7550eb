"""Epoch runners: how the loop runs the next k train steps of an epoch, from tf.data or from device memory.

``runner(epoch, skip) -> advance`` and ``advance(state, k) -> (state, losses [k])`` runs the next
k steps of ``epoch``, the first ``skip`` steps of which were already done (a resumed run).
Both take the same batches in the same order on every run of a seed: the order is a pure
function of (seed, epoch), so a resumed run continues exactly where the killed one stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import sharding
from dae_jax.data import pipeline
from dae_jax.setup import Setup
from dae_jax.train import device_loop, steps
from dae_jax.train.state import TrainState

Advance = Callable[[TrainState, int], tuple[TrainState, jax.Array]]
EpochRunner = Callable[[int, int], Advance]


def host_runner(setup: Setup, train: dict[str, np.ndarray], mesh: jax.sharding.Mesh, steps_per_epoch: int):
    """Batches from tf.data (``pipeline.train_batches``), one jitted data-parallel step at a time."""
    del steps_per_epoch  # tf.data's epoch ends by itself
    step_fn = sharding.data_parallel(steps.make_train_step(setup), mesh, donate_state=True)
    local_batch = setup.config.batch_size // jax.process_count()

    def runner(epoch: int, skip: int) -> Advance:
        batches = pipeline.train_batches(train, local_batch, setup.config.seed, epoch, skip)

        def advance(state: TrainState, k: int):
            losses = []
            for batch in itertools.islice(batches, k):
                state, m = step_fn(state, sharding.global_batch(batch, mesh), setup.keys.train)
                losses.append(m["loss"])
            return state, jnp.stack(losses)

        return advance

    return runner


def device_runner(setup: Setup, train: dict[str, np.ndarray], mesh: jax.sharding.Mesh, steps_per_epoch: int):
    """The training set resident on the devices, shuffled there, k steps per call (``device_loop``)."""
    images = device_loop.put_images(train["image"], mesh)
    multi_step = device_loop.make_multi_step(steps.make_train_step(setup), mesh)

    def runner(epoch: int, skip: int) -> Advance:
        order = device_loop.epoch_order(
            setup.keys.shuffle, epoch, len(train["image"]), steps_per_epoch, setup.config.batch_size
        )
        position = skip

        def advance(state: TrainState, k: int):
            nonlocal position
            state, losses = multi_step(state, images, order[position : position + k], setup.keys.train)
            position += k
            return state, losses

        return advance

    return runner
