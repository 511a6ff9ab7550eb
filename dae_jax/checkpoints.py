"""Orbax checkpoints of a run: train state, PRNG key and config, one per saved step.

Crash safety: orbax writes each step into a temporary directory and renames it when done,
so an interrupted write never becomes the latest step. After that rename we add a manifest
of SHA-256 sums of every file (written atomically). A step without a manifest was cut off
between the two and is discarded on resume; a step whose files no longer match its
manifest is damaged and refused, with the step and the file named.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import flax.serialization
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

MANIFEST = "dae_jax_sha256.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, incomplete, or made by a different config."""


def _file_sums(step_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(step_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


class Checkpoints:
    """A ``CheckpointManager`` over ``directory`` keeping the last ``max_to_keep`` steps.

    Saving is synchronous: the states are small and a finished ``save`` is then on disk.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state, rng: jax.Array, config: ml_collections.ConfigDict) -> None:
        step = int(state.step)
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(
                    {
                        "train_state": flax.serialization.to_state_dict(state),
                        # As host numpy: a single-device array cannot be saved by a multi-process run.
                        "rng": np.asarray(jax.random.key_data(rng)),
                    }
                ),
                config=ocp.args.JsonSave(config.to_dict()),
            ),
        )
        if jax.process_index() == 0:
            step_dir = self.directory / str(step)
            tmp = step_dir / (MANIFEST + ".tmp")
            tmp.write_text(json.dumps(_file_sums(step_dir)))
            os.replace(tmp, step_dir / MANIFEST)

    def is_complete(self, step: int) -> bool:
        """False for a step whose write was cut off before its manifest was written."""
        return (self.directory / str(step) / MANIFEST).is_file()

    def verify(self, step: int) -> None:
        """Raises CheckpointError naming the step and the file when ``step`` is incomplete or corrupt."""
        step_dir = self.directory / str(step)
        manifest = step_dir / MANIFEST
        if not manifest.is_file():
            raise CheckpointError(f"checkpoint step {step} in {step_dir} is incomplete: {MANIFEST} is missing.")
        want, have = json.loads(manifest.read_text()), _file_sums(step_dir)
        for name in sorted(set(want) | set(have)):
            if want.get(name) != have.get(name):
                problem = "is missing" if name not in have else "was added" if name not in want else "is corrupt"
                raise CheckpointError(f"checkpoint step {step} is damaged: file {step_dir / name} {problem}.")

    def restore(self, state_template, step: int | None = None):
        """(state, rng, config dict) at ``step`` (default latest), laid out like ``state_template``."""
        step = self.latest_step() if step is None else step
        if step not in self.all_steps():
            raise CheckpointError(f"no checkpoint step {step} in {self.directory}; it has {self.all_steps()}.")
        self.verify(step)
        template = {
            "train_state": flax.serialization.to_state_dict(state_template),
            "rng": np.asarray(jax.random.key_data(jax.random.key(0))),
        }
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), config=ocp.args.JsonRestore()),
        )
        state = flax.serialization.from_state_dict(state_template, restored["state"]["train_state"])
        return state, jax.random.wrap_key_data(restored["state"]["rng"]), restored["config"]

    def saved_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def delete_after(self, step: int) -> list[int]:
        """Deletes the steps after ``step`` (a run resumed from an earlier good step); returns them."""
        later = [s for s in self.all_steps() if s > step]
        for s in later:
            self.manager.delete(s)
        return later

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
