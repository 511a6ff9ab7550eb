"""The train state (parameters, optimizer state, BatchNorm statistics, step counter) and ``Run``, what a run leaves."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from flax.training import train_state

from dae_jax.setup import Setup


class TrainState(train_state.TrainState):
    batch_stats: Any = flax.struct.field(default_factory=dict)  # BatchNorm running statistics ({} without BN)

    def variables(self) -> dict:
        """What ``apply_fn`` takes: params and BatchNorm statistics."""
        return {"params": self.params, "batch_stats": self.batch_stats}


def create_train_state(setup: Setup, rng: jax.Array | None = None) -> TrainState:
    """The initial state of ``setup``'s run: parameters initialised with ``rng`` (default the run's init key)
    for images of ``setup.image_shape``.

    Jitted as one program: run eagerly, the init dispatches every initialiser's ops one by one, 2-3x the
    time (8 s for unet32_residual on a 2-core CPU, 3 s jitted); the values are the same bits either way.
    """

    def init(key: jax.Array) -> TrainState:
        variables = setup.model.init(key, jnp.zeros((1, *setup.image_shape), jnp.float32))
        return TrainState.create(
            apply_fn=setup.model.apply,
            params=variables["params"],
            tx=setup.tx,
            batch_stats=variables.get("batch_stats", {}),
        )

    return jax.jit(init)(setup.keys.init if rng is None else rng)


def all_finite(tree) -> jax.Array:
    """True when every float leaf of ``tree`` is finite (params, optimizer state): one jitted reduction."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves])) if leaves else jnp.bool_(True)


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished training run."""

    state: TrainState  # the final state (params, optimizer state, BatchNorm statistics)
    history: list[dict]  # one record per epoch, as in metrics.jsonl
    metrics: dict[str, Any]  # the test evaluation, as in eval.json
    workdir: Path
