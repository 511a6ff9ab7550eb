"""Orbax checkpoints of a run (train state, config and progress, one per saved step) and resuming from them.

Crash safety: orbax writes each step into a temporary directory and renames it when done,
so an interrupted write never becomes the latest step. After that rename we add a manifest
of SHA-256 sums of every file (written atomically). A step without a manifest was cut off
between the two and is discarded on resume; a step whose files no longer match its
manifest is damaged and refused, with the step and the file named.

``Checkpoints.resume(state, config)`` is the whole resume rule: discard interrupted writes,
verify the step, refuse a checkpoint made by a config whose model, loss or optimizer differ
(``compatibility.config_differences``), restore, and delete later steps when an earlier one was asked for.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

from dae_jax import files
from dae_jax.training.compatibility import config_differences

MANIFEST = "dae_jax_sha256.json"
log = logging.getLogger(__name__)


class Restored(NamedTuple):
    state: Any
    config: dict  # the config the checkpoint was made with
    progress: dict  # what Checkpoints.save was given as progress ({} when nothing)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, incomplete, or made by a different config."""


def _file_sums(step_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(step_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


class Checkpoints:
    """A ``CheckpointManager`` over ``directory`` keeping the last ``max_to_keep`` steps; a context manager
    (``close`` on exit).

    Opening one changes nothing on disk: the directory is made by the first ``save``, and the leftovers
    of interrupted writes are deleted only once a resume has passed its checks (``resume``). Saving is
    synchronous: the states are small and a finished ``save`` is then on disk.
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"{self.directory} is a file, not a checkpoint directory.")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=False, enable_async_checkpointing=False, cleanup_tmp_directories=False
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._verified: set[int] = set()  # steps whose checksums matched (verified once per process)

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state, config: ml_collections.ConfigDict, progress: dict | None = None) -> None:
        """Saves ``state`` at its step with the run's config and ``progress`` (JSON: what the loop needs to
        continue exactly, e.g. the losses of the epoch so far)."""
        step = int(state.step)
        self._verified.discard(step)
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave({"train_state": _saved_fields(state)}),
                    config=ocp.args.JsonSave(config.to_dict()),
                    progress=ocp.args.JsonSave(progress or {}),
                ),
            )
            if jax.process_index() == 0:
                step_dir = self.directory / str(step)
                files.write_json(step_dir / MANIFEST, _file_sums(step_dir))
        except Exception as e:  # orbax/tensorstore wrap the OS error (a full disk, say) in their own types
            kept = [s for s in self.all_steps() if s != step and self.is_complete(s)]
            previous = f"step {kept[-1]} is kept" if kept else "no earlier checkpoint exists"
            reason, full = _reason(e)
            hint = " Free disk space and rerun the same command to resume." if full else ""
            raise CheckpointError(
                f"writing checkpoint step {step} to {self.directory} failed ({reason}); {previous}.{hint}"
            ) from None

    def is_complete(self, step: int) -> bool:
        """False for a step whose write was cut off before its manifest was written."""
        return (self.directory / str(step) / MANIFEST).is_file()

    def verify(self, step: int) -> None:
        """Raises CheckpointError naming the step and the file when ``step`` is incomplete or corrupt."""
        if step in self._verified:
            return
        step_dir = self.directory / str(step)
        manifest = step_dir / MANIFEST
        if not manifest.is_file():
            raise CheckpointError(f"checkpoint step {step} in {step_dir} is incomplete: {MANIFEST} is missing.")
        try:
            want = dict(json.loads(manifest.read_text()))
        except (ValueError, TypeError, UnicodeDecodeError):
            raise CheckpointError(f"checkpoint step {step} is damaged: file {manifest} is not valid JSON.") from None
        have = _file_sums(step_dir)
        for name in sorted(set(want) | set(have)):
            if want.get(name) != have.get(name):
                problem = "is missing" if name not in have else "was added" if name not in want else "is corrupt"
                raise CheckpointError(f"checkpoint step {step} is damaged: file {step_dir / name} {problem}.")
        self._verified.add(step)

    def _checked_step(self, step: int | None) -> int:
        """``step`` (default the latest), verified; CheckpointError naming what is wrong."""
        step = self.latest_step() if step is None else step
        if step not in self.all_steps():
            raise CheckpointError(f"no checkpoint step {step} in {self.directory}; it has {self.all_steps()}.")
        self.verify(step)
        return step

    def restore(self, state_template, step: int | None = None) -> Restored:
        """(state, config dict, progress dict) at ``step`` (default latest), laid out like ``state_template``;
        the step's checksums are verified before anything of it is read."""
        step = self._checked_step(step)
        template = {"train_state": _saved_fields(state_template)}
        try:
            restored = self._restore_state(step, template)
        except ValueError as e:  # a checkpoint of dae-jax 0.1 also holds the run's PRNG key
            if "rng" not in str(e):
                raise
            restored = self._restore_state(step, template | {"rng": np.zeros((2,), np.uint32)})
        fields = flax.serialization.to_state_dict(state_template) | restored["state"]["train_state"]
        state = flax.serialization.from_state_dict(state_template, fields)
        return Restored(state, self._read(step, "config"), self._read(step, "progress"))

    def _restore_state(self, step: int, template: dict) -> dict:
        abstract = jax.tree.map(_abstract, template)
        return self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))

    def saved_config(self, step: int | None = None) -> dict:
        """The config dict saved with ``step`` (default latest), read after its checksums are verified."""
        return self._read(self._checked_step(step), "config")

    def _read(self, step: int, item: str) -> dict:
        """A JSON item of a verified step ({} when the step has none: saved before it existed)."""
        if not (self.directory / str(step) / item).is_dir():
            return {}
        return self.manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))[item]

    def delete_after(self, step: int) -> list[int]:
        """Deletes the steps after ``step`` (a run resumed from an earlier good step); returns them."""
        later = [s for s in self.all_steps() if s > step]
        for s in later:
            self.manager.delete(s)
            self._verified.discard(s)
        return later

    def discard_interrupted(self) -> None:
        """Deletes what interrupted writes left: orbax's temporary step dirs, and steps without a manifest
        (cut off between orbax's rename and the manifest) after the last complete one."""
        for leftover in self.directory.glob("*.orbax-checkpoint-tmp*") if self.directory.is_dir() else ():
            log.info("discarding %s: an interrupted checkpoint write", leftover.name)
            shutil.rmtree(leftover, ignore_errors=True)
        steps = self.all_steps()
        while steps and not self.is_complete(steps[-1]):
            log.info("discarding checkpoint step %d: its write was interrupted", steps[-1])
            self.manager.delete(steps.pop())

    def resumable(
        self, config: ml_collections.ConfigDict, steps_per_epoch: int, data: str | None = None, order: str | None = None
    ) -> int | None:
        """The step a run of ``config`` resumes from (``config.restore_step``, default the latest complete one),
        None for a fresh start; every check of ``resume``, and nothing written.

        CheckpointError, with the way out, for a missing or damaged step, one made by a config whose
        model, loss or optimizer differ, or one of another epoch length (batch size or data changed) or,
        for an image folder (``data``: its prepared TFDS name), of another listing of the folder, or (``order``:
        the training loop's data order, ``feeds``' ``order``) made by another loop, whose epochs visit the
        images in another order: resumed mid-epoch it would see some twice and others never.
        """
        steps = self.all_steps()
        complete = [s for s in steps if self.is_complete(s)]
        if config.restore_step is None and not complete:
            return None
        step = complete[-1] if config.restore_step is None else config.restore_step
        earlier = [s for s in complete if s < step]
        try:
            if step not in steps:
                raise CheckpointError(f"no checkpoint step {step} in {self.directory}; it has {steps}.")
            self.verify(step)
        except CheckpointError as e:
            way_out = (
                f"resume from the previous good step with --config.restore_step={earlier[-1]}"
                if earlier
                else (f"delete {self.directory} to start over")
            )
            raise CheckpointError(f"{e} Training will not start from it: {way_out}.") from None
        differences = config_differences(self.saved_config(step), config)
        progress = self._read(step, "progress")
        if (saved := progress.get("steps_per_epoch", steps_per_epoch)) != steps_per_epoch:
            differences.append(f"steps per epoch: {saved} -> {steps_per_epoch} (batch size or data)")
        if data and (saved := progress.get("data", data)) != data:
            differences.append(f"data: {saved} -> {data} (files of the image folder added, removed or changed)")
        if order and (saved := progress.get("order", order)) != order:
            flag = f"--config.device_resident={saved == 'device-resident'}"
            differences.append(f"training loop: {saved} -> {order} (its data order; resume with {flag})")
        if differences:
            raise CheckpointError(
                f"the checkpoint at step {step} in {self.directory} was made with a different config "
                f"({'; '.join(differences)}). Use a new --workdir, or the config it was made with."
            )
        if [s for s in complete if s > step]:
            log.warning(
                "config.restore_step=%d: later steps %s will be deleted (drop the flag to keep them)",
                step,
                [s for s in complete if s > step],
            )
        return step

    def resume(
        self,
        state,
        config: ml_collections.ConfigDict,
        steps_per_epoch: int,
        data: str | None = None,
        order: str | None = None,
    ) -> tuple[Any, dict]:
        """(state, progress) at ``resumable``'s step, ``(state, {})`` for a fresh start. Only once its checks
        pass are interrupted writes discarded and, for an earlier step, the later ones deleted."""
        step = self.resumable(config, steps_per_epoch, data, order)
        restored = self.restore(state, step) if step is not None else None
        self.discard_interrupted()
        if step is None:
            return state, {}
        dropped = self.delete_after(step)
        log.info(
            "resumed from %s at step %d%s", self.directory, step, f" (deleted later steps {dropped})" * bool(dropped)
        )
        return restored.state, restored.progress

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _reason(e: BaseException) -> tuple[str, bool]:
    """(the root cause of a write error in one short line, whether it is a full disk or a size limit);
    tensorstore (under orbax) reports the OS error inside its message: ``[os_error_code='28']``."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
    code = e.errno if isinstance(e, OSError) else None
    found = re.search(r"os_error_code='?(\d+)", str(e))
    code = int(found.group(1)) if found else code
    if code in _FULL:
        return f"{os.strerror(code)}: the disk is full or a file size limit was reached", True
    return " ".join(str(e).split())[:200] or type(e).__name__, False


def _saved_fields(state) -> dict:
    """The state's fields as a dict, without those that are None: a field added to the state later (like
    ``ema_params``, None unless config.ema_decay is set) then leaves older checkpoints restorable."""
    return {k: v for k, v in flax.serialization.to_state_dict(state).items() if v is not None}


def _abstract(leaf) -> jax.ShapeDtypeStruct:
    """A template leaf as orbax restores into it: its own sharding, or for a shape-only leaf (``jax.eval_shape``)
    this process's first device, whatever devices the run that saved it had (trained on 2, loaded on 1)."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    if isinstance(struct, jax.ShapeDtypeStruct) and struct.sharding is None:  # (python scalars stay as they are)
        struct = jax.ShapeDtypeStruct(struct.shape, struct.dtype, sharding=SingleDeviceSharding(jax.local_devices()[0]))
    return struct
