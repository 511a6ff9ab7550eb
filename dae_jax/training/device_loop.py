"""The accelerator fast path: the training set resident on the devices, shuffled there, and a
``lax.scan`` over many train steps per call.

The host loop (``dae_jax.data.pipeline.train_batches``) sends every batch from tf.data through
Python; here the uint8 training images are put on every device once, each epoch's order is a
seeded permutation computed on device, and one jitted call runs ``k`` steps: each device
gathers its rows of the global batch and runs the very same ``train_step``
(``dae_jax.training.steps.make_train_step``) inside the scan. Given the same batches, it computes the same
parameters as the host loop (tests/training/test_device_loop.py); the order differs from tf.data's shuffle,
so a run with ``config.device_resident`` sees its data in another (equally random) order.
Single-process only: each process would need the whole training set on its devices.

``make_fed_multi_step`` is the same scan over ``k`` batches the host stacked (image folders, host
corruptions, several processes): XLA:CPU then takes the step's temporaries once a call instead of once a
step (results/benchmarks/: a block over glibc's mmap threshold is mapped and faulted in afresh every call).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dae_jax import sharding
from dae_jax.nn import models
from dae_jax.sharding import DATA_AXIS

# Largest training set the device-resident loop copies onto every device by default.
RESIDENT_MAX_BYTES = 1 << 30


def wanted(requested: bool | None, train_images: np.ndarray, model: models.Autoencoder) -> bool:
    """Whether to train with this loop: ``requested``, or by default when it can and is faster.

    Default: one process, a training set of at most ``RESIDENT_MAX_BYTES``, and on CPU a model whose
    layers stay fast inside ``lax.scan`` (``models.scan_friendly``; XLA's own strided and transposed
    convolutions are 3x slower there, results/benchmarks/; the fast layers' stride-2 forms are not: the
    resident loop trained bn_dense576 at 5,600-6,000 images/s against 1,440-1,460 before them).
    """
    if requested is not None:
        return requested
    fits = jax.process_count() == 1 and train_images.nbytes <= RESIDENT_MAX_BYTES
    return fits and (jax.default_backend() != "cpu" or models.scan_friendly(model))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["words"], meta_fields=["row_shape", "dtype"])
@dataclasses.dataclass(frozen=True)
class ResidentImages:
    """The training images on the devices, each image's bytes held as 32-bit words (the last zero-padded).

    XLA:CPU gathers rows element by element, so an image of uint8 pixels gathered as words takes a quarter of
    the elements. Profiled in linear16's resident loop on one 2-core CPU device (Zen 5), 512 random rows of
    MNIST's 53,760 a step: the gather 130 -> 38 us, the step 625 -> 537 us; a batch of 128 rows (dense64)
    about the same either way.
    """

    words: jax.Array  # [N, ceil(image bytes / 4)] uint32
    row_shape: tuple[int, ...]  # one image's shape, e.g. (28, 28, 1)
    dtype: str  # its pixels' numpy dtype

    def rows(self, index: jax.Array) -> jax.Array:
        """The images at ``index`` [B]: [B, *row_shape] of ``dtype``, as they were put."""
        dtype = np.dtype(self.dtype)
        raw = lax.bitcast_convert_type(self.words[index], jnp.uint8).reshape(len(index), -1)
        raw = raw[:, : math.prod(self.row_shape) * dtype.itemsize]
        if dtype != np.uint8:  # [B, pixels, itemsize] bytes -> [B, pixels] (a one-byte dtype keeps a last axis of 1)
            raw = lax.bitcast_convert_type(raw.reshape(len(index), -1, dtype.itemsize), dtype)
        return raw.reshape(len(index), *self.row_shape)


def put_images(images: np.ndarray, mesh: Mesh) -> ResidentImages:
    """The training images [N, H, W, C], one full copy on every device of ``mesh``."""
    if jax.process_count() > 1:
        raise ValueError(
            "config.device_resident keeps the whole training set on every device and runs in one process only; "
            "set it to False for multi-process training."
        )
    if images.dtype.kind not in "uif":
        raise ValueError(f"the device-resident loop takes numeric images, not {images.dtype}; convert them to uint8.")
    raw = np.ascontiguousarray(images, images.dtype.newbyteorder("=")).reshape(len(images), -1).view(np.uint8)
    raw = np.pad(raw, ((0, 0), (0, -raw.shape[1] % 4))) if raw.shape[1] % 4 else raw
    words = jax.device_put(raw.view(np.uint32), sharding.replicated(mesh))
    return ResidentImages(words, tuple(images.shape[1:]), images.dtype.name)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def epoch_order(key: jax.Array, epoch: int, num_images: int, steps: int, batch_size: int) -> jax.Array:
    """Rows of the global batch of every step of ``epoch``: [steps, batch_size] int32, a seeded permutation.

    One program, on ``key``'s device."""
    order = jax.random.permutation(jax.random.fold_in(key, epoch), num_images)
    return order[: steps * batch_size].reshape(steps, batch_size).astype(jnp.int32)


class EpochOrders:
    """``orders(epoch)``: ``epoch_order`` of each epoch as a host array, the next epoch's computed ahead.

    The permutation sorts every training row: about 20 ms on CPU for MNIST, a quarter of a linear16
    epoch. Where training leaves a device of this process idle (a model on one of several CPU devices,
    ``sharding.model_mesh``), the next epoch's order is dispatched onto it while this epoch trains;
    otherwise each is computed when its epoch starts.
    """

    def __init__(self, key: jax.Array, num_images: int, steps: int, batch_size: int, mesh: Mesh, num_epochs: int):
        idle = [d for d in jax.local_devices() if d not in set(mesh.devices.flat)]
        self._key = jax.device_put(key, idle[-1]) if idle else key
        self._shape, self._num_epochs, self._ahead = (num_images, steps, batch_size), num_epochs, bool(idle)
        self._next: tuple[int, jax.Array] | None = None

    def __call__(self, epoch: int) -> np.ndarray:
        order = self._next[1] if self._next and self._next[0] == epoch else epoch_order(self._key, epoch, *self._shape)
        self._next = None
        if self._ahead and epoch + 1 < self._num_epochs:
            self._next = (epoch + 1, epoch_order(self._key, epoch + 1, *self._shape))  # runs while this epoch trains
        return np.asarray(order)


def make_multi_step(train_step: Callable, mesh: Mesh) -> Callable:
    """``multi_step(state, images, order, key) -> (state, losses [k])`` running ``k = len(order)`` train steps
    on ``images`` (``put_images``).

    ``order`` [k, B] holds the rows of each global batch; device d takes rows
    ``order[:, d*B/D : (d+1)*B/D]``, as the host loop's batch sharding does. Jitted once per
    ``k``, with the state donated.
    """

    devices = mesh.devices.size

    def per_device(state, images, order, key):
        b = order.shape[1] // devices

        def one_step(state, rows):  # rows: [B] global batch
            mine = lax.dynamic_slice_in_dim(rows, lax.axis_index(DATA_AXIS) * b, b)
            state, metrics = train_step(state, {"image": images.rows(mine), "row": mine}, key)
            return state, metrics["loss"]

        return lax.scan(one_step, state, order)

    return _scanning(per_device, mesh, (P(), P(), P(), P()))


def make_fed_multi_step(train_step: Callable, mesh: Mesh) -> Callable:
    """``multi_step(state, batches, key) -> (state, losses [k])``: ``train_step`` on each of ``k`` stacked batches.

    ``batches``: the host loop's batch dict with every array stacked to [k, B, ...], split over the devices
    along B (``sharding.global_batch(..., stacked=True)``). Jitted once per ``k``, with the state donated.
    """

    def per_device(state, batches, key):
        def one_step(state, batch):
            state, metrics = train_step(state, batch, key)
            return state, metrics["loss"]

        return lax.scan(one_step, state, batches)

    return _scanning(per_device, mesh, (P(), P(None, DATA_AXIS), P()))


def _scanning(per_device: Callable, mesh: Mesh, in_specs: tuple) -> Callable:
    """jit(shard_map(per_device)) returning replicated results, the state (first argument) donated."""
    mapped = jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)
    return sharding.one_at_a_time(jax.jit(mapped, donate_argnums=(0,)), mesh)
