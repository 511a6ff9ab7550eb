"""The train state (parameters, optimizer state, BatchNorm statistics, the parameters' moving average, step
counter) and ``Run``, what a run leaves."""

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
    ema_params: Any = None  # the parameters' exponential moving average (config.ema_decay), or None

    def variables(self) -> dict:
        """What ``apply_fn`` takes to evaluate: params (their moving average where kept) and BatchNorm statistics."""
        params = self.params if self.ema_params is None else self.ema_params
        return {"params": params, "batch_stats": self.batch_stats}

    def with_ema(self, decay: float | None) -> TrainState:
        """This state after a step: ``ema_params`` moved towards ``params`` (unchanged where ``decay`` is None).

        The decay is warmed up as min(decay, (1 + step) / (10 + step)), so the early average is not
        dominated by the initial parameters (TensorFlow's ExponentialMovingAverage with num_updates).
        """
        if decay is None:
            return self
        step = self.step.astype(jnp.float32)
        d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
        return self.replace(ema_params=jax.tree.map(lambda e, p: e + (1.0 - d) * (p - e), self.ema_params, self.params))


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
            ema_params=None if setup.ema_decay is None else variables["params"],
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
