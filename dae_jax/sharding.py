"""Data-parallel layout: one mesh axis ``data`` over every device of every process."""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def use_cpu_cores(*batch_sizes: int) -> int:
    """Makes XLA:CPU show one device per core available to this process (fewer if needed to divide
    every batch size evenly), and returns that number.

    XLA runs one device's convolutions on one thread, so a single CPU device leaves the other
    cores idle; the data-parallel step over one device per core uses them all
    (results/benchmarks). Call it before JAX runs anything; it does nothing when XLA_FLAGS
    already sets ``--xla_force_host_platform_device_count`` (the tests' 8 devices).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return jax.device_count("cpu")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    divisor = math.gcd(*batch_sizes) if batch_sizes else math.factorial(cores)  # no batch size: every count
    n = max(d for d in range(1, cores + 1) if divisor % d == 0)
    jax.config.update("jax_num_cpu_devices", n)
    return n


def make_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``data``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if global_batch <= 0 or global_batch % n or global_batch % jax.process_count():
        raise ValueError(
            f"batch_size={global_batch} does not split evenly over {n} devices "
            f"({jax.process_count()} processes); use a positive multiple of {n}, "
            f"e.g. --config.batch_size={max(n, (global_batch // n) * n or n)}."
        )


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of a batch -> one global array sharded over ``data``."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
