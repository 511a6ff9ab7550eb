"""Data-parallel layout: one mesh axis ``data`` over every device of every process."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


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
