"""Data-parallel layout: one mesh axis ``data`` over every device of every process, and the steps run on it.

``data_parallel(step, mesh)`` runs a per-device step (``dae_jax.training.steps``) as
``jit(shard_map(step))``: state and key replicated, the batch split over ``data``.
``use_cpu_cores`` and ``initialize_distributed`` set up the devices before JAX runs anything.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def use_cpu_cores(*batch_sizes: int, inline: bool = False) -> int:
    """Makes XLA:CPU show one device per core available to this process (fewer if needed to divide
    every batch size evenly), and returns that number.

    XLA runs one device's convolutions on one thread, so a single CPU device leaves the other
    cores idle; the data-parallel step over one device per core uses them all
    (results/benchmarks). Call it before JAX runs anything; it does nothing when XLA_FLAGS
    already sets ``--xla_force_host_platform_device_count`` (the tests' 8 devices).

    inline: for inference, where each call's result is awaited at once, a program on one CPU device
    runs on the calling thread (``jax_cpu_enable_async_dispatch`` off) instead of being handed to a
    worker thread. Waking that thread cost 40-50 us a call on 2 cores (Zen 5): ``Denoiser.denoise``
    of dense32 at batch 32 took half the time inline. Training keeps async dispatch, which queues the
    next step while one runs; programs over several devices are dispatched as before either way.
    """
    if inline:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return jax.device_count("cpu")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = max(d for d in range(1, cores + 1) if math.gcd(*batch_sizes) % d == 0) if batch_sizes else cores
    jax.config.update("jax_num_cpu_devices", n)
    return n


COORDINATOR_ENV = ("DAE_JAX_COORDINATOR_ADDRESS", "DAE_JAX_NUM_PROCESSES", "DAE_JAX_PROCESS_ID")


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Joins a multi-process run with ``jax.distributed.initialize`` when a coordinator address is given.

    Each argument falls back to its environment variable (``COORDINATOR_ENV``). Returns whether
    it joined one. CPU processes exchange gradients with gloo. Call it before JAX runs anything.
    """
    given = (coordinator_address, num_processes, process_id)
    coordinator_address, num_processes, process_id = (
        value if value is not None else os.environ.get(name) for value, name in zip(given, COORDINATOR_ENV, strict=True)
    )
    if not coordinator_address:
        return False
    try:
        num_processes, process_id = int(num_processes), int(process_id)
    except (TypeError, ValueError):
        raise ValueError(
            f"a multi-process run at {coordinator_address} needs the number of processes and this process's id: "
            f"--num_processes and --process_id (or ${COORDINATOR_ENV[1]} and ${COORDINATOR_ENV[2]}), "
            f"got {num_processes!r} and {process_id!r}."
        ) from None
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def make_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def model_mesh(convolutional: bool, devices=None) -> Mesh:
    """The mesh a model's batches are split over: ``devices`` (default every device of every process), but
    only the first for a model without convolutions (``models.is_convolutional``) on the CPU devices of one
    process.

    Such a model (the dense presets) is a few matrix products, which XLA:CPU runs on every core of one
    device; splitting a batch over devices only adds a collective a step (the gradients' all-reduce, the
    outputs' gather). Side by side on 2 cores, dense32 / dense64 / linear16, one device over two: training's
    step 1.4-3.4x the images/s at batch 32 and 128 (Zen 4); at batch 512, the device-resident loop
    0.98-1.09x / 1.20-1.23x / 1.24-1.34x and the step 1.14-1.25x / 1.06-1.16x / 1.48-2.3x (Zen 5; on Zen 4
    0.80-1.13x, results/benchmarks/README.md); denoising 1.3-2.1x at batch 32 to 512. Convolutional models
    keep every device: XLA runs one device's convolutions on one core (bn_dense576 0.6-0.7x on one).
    """
    devices = jax.devices() if devices is None else devices
    one_process = len({d.process_index for d in devices}) == 1
    if not convolutional and one_process and devices[0].platform == "cpu":
        devices = devices[:1]
    return make_mesh(devices)


def one_at_a_time(fn: Callable, mesh: Mesh) -> Callable:
    """``fn`` (a jitted program over ``mesh``) dispatched only once the previous such program has run,
    on a multi-device CPU mesh.

    XLA:CPU runs every device's part of a program on one shared pool of about a thread per core.
    With several multi-device programs in flight, parts blocked in a collective can hold every
    thread while the parts they wait for cannot start: a deadlock, which XLA aborts after 40 s
    (seen here with 2 devices on 2 cores). One program in flight avoids it, and the host still
    prepares the next batch while the last program runs. On GPU/TPU and on a single device ``fn``
    is returned unchanged.
    """
    if mesh.devices.size == 1 or mesh.devices.flat[0].platform != "cpu":
        return fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        jax.block_until_ready(_in_flight)  # the last program of any wrapped function
        _in_flight[:] = jax.tree.leaves(out := fn(*args, **kwargs))
        return out

    call.lower = fn.lower  # cost analysis, as on the jitted function
    return call


_in_flight: list = []  # the outputs of the last program dispatched through one_at_a_time


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``data``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh, field: str = "batch_size") -> None:
    """ValueError naming ``config.<field>`` when it does not split evenly over the devices and processes."""
    n = mesh.devices.size
    if global_batch <= 0 or global_batch % n or global_batch % jax.process_count():
        raise ValueError(
            f"{field}={global_batch} does not split evenly over {n} devices "
            f"({jax.process_count()} processes); use a positive multiple of {n}, "
            f"e.g. --config.{field}={max(n, (global_batch // n) * n or n)}."
        )


def global_batch(local: dict[str, np.ndarray], mesh: Mesh, stacked: bool = False) -> dict[str, jax.Array]:
    """This process's rows of a batch [b, ...] -> one global array [B, ...] sharded over ``data``; with
    ``stacked``, of k batches [k, b, ...] -> [k, B, ...] sharded on B (``device_loop.make_fed_multi_step``)."""
    sharding = NamedSharding(mesh, P(None, DATA_AXIS)) if stacked else batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def data_parallel(step: Callable, mesh: Mesh, donate_state: bool) -> Callable:
    """jit(shard_map(step)): state (or variables) and key replicated, batch split over ``data``; jitted once.

    On a multi-device CPU mesh each call returns once it has run (``one_at_a_time``).
    """
    # check_vma=False gives pmap's semantics: the gradient of the replicated params is this
    # device's own, and train_step averages it with lax.pmean. With check_vma=True shard_map
    # would already psum it, and the pmean would then average an N-times-summed gradient.
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()), out_specs=P(), check_vma=False)
    return one_at_a_time(jax.jit(mapped, donate_argnums=(0,) if donate_state else ()), mesh)
