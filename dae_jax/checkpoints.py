"""Orbax checkpoints of a run: train state, PRNG key and config, one per saved step."""

from __future__ import annotations

from pathlib import Path

import flax.serialization
import jax
import ml_collections
import orbax.checkpoint as ocp


class Checkpoints:
    """A ``CheckpointManager`` over ``directory`` keeping the last ``max_to_keep`` steps.

    Saving is synchronous: the states are small and a finished ``save`` is then on disk.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state, rng: jax.Array, config: ml_collections.ConfigDict) -> None:
        self.manager.save(
            int(state.step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(
                    {"train_state": flax.serialization.to_state_dict(state), "rng": jax.random.key_data(rng)}
                ),
                config=ocp.args.JsonSave(config.to_dict()),
            ),
        )

    def restore(self, state_template, step: int | None = None):
        """(state, rng, config dict) at ``step`` (default latest), laid out like ``state_template``."""
        step = self.latest_step() if step is None else step
        template = {
            "train_state": flax.serialization.to_state_dict(state_template),
            "rng": jax.random.key_data(jax.random.key(0)),
        }
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract),
                config=ocp.args.JsonRestore(),
            ),
        )
        state = flax.serialization.from_state_dict(state_template, restored["state"]["train_state"])
        return state, jax.random.wrap_key_data(restored["state"]["rng"]), restored["config"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
