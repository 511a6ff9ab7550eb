"""The training loop: ``train_and_evaluate(config, workdir) -> Run`` (``dae_jax.train``).

Read top to bottom: ``train_and_evaluate`` checks the config, loads the data, builds the
``Setup``, resumes from the workdir's latest checkpoint, runs the epochs (``_Loop.epoch``: the
steps up to each event, then the epoch's validation record and checkpoint), then scores the
test split with the fixed evaluation noise and writes ``eval.json`` and the figures.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import ml_collections
import numpy as np

from dae_jax import configs, files, sharding
from dae_jax.data import pipeline
from dae_jax.eval import analysis, figures
from dae_jax.nn import models
from dae_jax.setup import Setup, training_mesh
from dae_jax.training import divergence, feeds, preemption, timings
from dae_jax.training import workdir as workdir_lib
from dae_jax.training.checkpoints import Checkpoints
from dae_jax.training.state import Run, TrainState, all_finite, create_train_state

log = logging.getLogger(__name__)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None) -> Run:
    """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates it on the test set.

    ``workdir`` None: a fresh temporary directory (``Run.workdir`` says which). Every check (config,
    data, model, the checkpoint to resume) comes before the first write: a refused start changes
    nothing in the workdir. SIGTERM or Ctrl-C save and raise ``preemption.Preempted``. Where the seconds
    went: ``timings.json`` (``dae_jax.training.timings``).
    """
    with timings.Timings() as timer:  # from here: what start-up and compilation cost
        return _train_and_evaluate(config, workdir, timer)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir, timer: timings.Timings) -> Run:
    config = configs.prepared(config)
    workdir = workdir_lib.check_writable(workdir if workdir is not None else tempfile.mkdtemp(prefix="dae_jax_"))
    mesh = training_mesh(config)
    sharding.check_batch_size(config.batch_size, mesh)
    sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
    analysis.check(config.analyses)
    splits = pipeline.prepare(config.data, channels=config.image_shape[2])
    if splits.streamed and config.analyses:
        raise ValueError("config.analyses need the training set as arrays; a streamed image folder has none.")
    steps_per_epoch = _steps_per_epoch(config, splits)
    setup = Setup.from_config(config, steps_per_epoch, mesh.devices.size)  # every name and parameter checked
    with workdir_lib.run_lock(workdir), Checkpoints(workdir / "checkpoints", config.keep_checkpoints) as ckpts:
        data = splits.builder.info.full_name if splits.streamed else None  # a folder's rows: its listing
        ckpts.resumable(config, steps_per_epoch, data)  # refused here: nothing written
        feed = feeds.feed(setup, splits, mesh, steps_per_epoch)  # the data read, the loop chosen and checked
        state = jax.device_put(create_train_state(setup), sharding.replicated(mesh))
        state, progress = ckpts.resume(state, config, steps_per_epoch, data, feed.order)  # first change to workdir
        log.info("training loop: %s; model %s: %s parameters", feed.description, config.model.name, _params(state))
        if jax.process_index() == 0:
            metadata = workdir_lib.run_metadata(config, splits.source, feed.description, list(mesh.devices.flat))
            workdir_lib.record_start(workdir, metadata)
        writer = workdir_lib.MetricWriter(workdir, resumed_step=int(state.step))
        with preemption.stop_requests() as stop_requested:
            loop = _Loop(setup, mesh, workdir, ckpts, steps_per_epoch, feed, stop_requested, timer, data)
            done = np.asarray(progress.get("epoch_losses", []), np.float32)  # the resumed epoch's losses so far
            timer.add("prepare", time.perf_counter() - timer.started)
            for epoch in range(int(state.step) // steps_per_epoch, config.num_epochs):
                state = loop.epoch(state, epoch, writer, done)
                done = np.zeros(0, np.float32)
            history = workdir_lib.read_history(workdir)
            result = _test(setup, state, feed, splits.source, history, workdir, timer)
    timer.finish(workdir, writer.resumed_step)
    return Run(state=state, history=history, metrics=result, workdir=workdir)


def _params(state: TrainState) -> str:
    return f"{models.param_count(state.params):,}"


def _steps_per_epoch(config: ml_collections.ConfigDict, splits: pipeline.Splits) -> int:
    """Full global batches in this process's share of the training split (capped by max_steps_per_epoch)."""
    if splits.image_shape is not None:  # None: an image folder, its sizes known once read (or any: streamed)
        pipeline.check_image_shape(splits.image_shape, config.image_shape)
    views = config.data.get("views_per_image", 1) if splits.streamed else 1
    steps = splits.sizes["train"] * views // (config.batch_size // jax.process_count())
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    if steps == 0:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {splits.sizes['train']} training images.")
    if steps * config.num_epochs > configs.MAX_INT:
        raise ValueError(f"config.num_epochs={config.num_epochs} x {steps} steps per epoch exceeds 2**31 - 1 steps.")
    return steps


@dataclasses.dataclass
class _Loop:
    """What every epoch of a run uses; ``epoch`` runs one."""

    setup: Setup
    mesh: jax.sharding.Mesh
    workdir: Path
    ckpts: Checkpoints
    steps_per_epoch: int
    feed: feeds.ArrayFeed | feeds.StreamFeed
    stop_requested: Callable[[], bool]  # preemption.stop_requests(): save and stop at the next step boundary
    timer: timings.Timings
    data: str | None = None  # a streamed folder's prepared TFDS name, saved to refuse resuming on a changed one

    def __post_init__(self):
        self.finite = jax.jit(all_finite)

    def _check_parameters(self, state: TrainState) -> None:
        """The parameters after the last update, all finite, or FloatingPointError.

        Checked before every save and at each epoch's end, not after every chunk: a chunk's non-finite
        update shows in the next chunk's losses anyway (each loss is taken before its step's update), and
        the extra program and host sync per chunk cost the smallest models 5% of their steps' time.
        """
        if not bool(self.finite((state.params, state.opt_state, state.batch_stats))):
            raise FloatingPointError(
                f"the parameters are not finite at step {int(state.step)} (after its update): training stopped. "
                + divergence.hint(self.setup.config, self.workdir)
            )

    def _save(self, state: TrainState, epoch_losses: list[np.ndarray]) -> None:
        """A checkpoint of ``state`` with the losses of its epoch so far (none at an epoch's end)."""
        self._check_parameters(state)
        if int(state.step) not in self.ckpts.all_steps():
            losses = np.concatenate(epoch_losses).tolist() if epoch_losses else []
            progress = {"epoch_losses": losses, "steps_per_epoch": self.steps_per_epoch, "order": self.feed.order}
            progress |= {"data": self.data} if self.data else {}
            with self.timer.phase("checkpoints"):
                self.ckpts.save(state, self.setup.config, progress)

    def _step_checkpoint_due(self, step: int) -> bool:
        every = self.setup.config.checkpoint_every_steps
        return bool(every) and step % every == 0

    def _next_event(self, step: int, epoch_start: int) -> int:
        """The step of the next loss check (every log_every_steps of the epoch), checkpoint, or the epoch's end.

        Counting from the epoch's start keeps the chunk lengths (the device loop compiles one scan per
        length) to a few.
        """
        config = self.setup.config
        events = [epoch_start + self.steps_per_epoch]
        events.append(epoch_start + ((step - epoch_start) // config.log_every_steps + 1) * config.log_every_steps)
        if config.checkpoint_every_steps:
            events.append((step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps)
        return min(events)

    def _steps(self, state: TrainState, epoch: int, done: np.ndarray) -> tuple[TrainState, np.ndarray, float]:
        """The epoch's remaining train steps: (state, the epoch's losses, seconds of the steps run here).

        ``done``: the losses of the steps of this epoch a resumed run did before (saved in its checkpoint),
        so the epoch's record is the same as an uninterrupted run's.
        """
        from tqdm import tqdm

        config = self.setup.config
        epoch_start, epoch_end = epoch * self.steps_per_epoch, (epoch + 1) * self.steps_per_epoch
        step = int(state.step)
        skip = step - epoch_start
        advance = self.feed.runner(epoch, skip)
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{config.num_epochs}",
            unit="step",
            disable=None,
        )
        losses, start = [done], time.perf_counter()
        while step < epoch_end:
            k = self._next_event(step, epoch_start) - step
            chunk_start = time.perf_counter()
            state, chunk = advance(state, k)
            chunk = np.asarray(chunk)  # [k]: the one host sync per interval
            self.timer.chunk(time.perf_counter() - chunk_start)
            losses.append(chunk)
            divergence.check_losses(chunk, step, config, self.workdir)
            step += k
            bar.update(k)
            rate = (step - epoch_start - skip) * config.batch_size / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{chunk[-1]:.4f}", img_s=f"{rate:,.0f}")
            if step < epoch_end and self._step_checkpoint_due(step):  # at the epoch's end: after its record
                self._save(state, losses)
            if step < epoch_end and self.stop_requested():
                self._save(state, losses)
                bar.close()
                raise preemption.Preempted(step)
        bar.close()
        self._check_parameters(state)
        return state, np.concatenate(losses), time.perf_counter() - start

    def epoch(self, state: TrainState, epoch: int, writer: workdir_lib.MetricWriter, done: np.ndarray) -> TrainState:
        """Runs what is left of ``epoch`` (``done``: its losses so far), writes its record (train loss,
        validation metrics), checkpoints."""
        config = self.setup.config
        state, losses, elapsed = self._steps(state, epoch, done)
        step = int(state.step)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(losses.mean()),
            "images_per_s": (len(losses) - len(done)) * config.batch_size / elapsed,  # of the steps run here
        }
        with self.timer.phase("validation"):
            scores = self.feed.score("validation", state.variables()) if self.feed.count("validation") else {}
        record |= {f"val_{k}": v for k, v in scores.items()}
        divergence.check_scores(scores, f"validation after step {step}", config, self.workdir)
        writer.write(step, record)
        shown = f"{_loss_shown(config, scores, 'val ')}, val psnr {scores['psnr']:.2f} dB" if scores else ""
        log.info(
            "epoch %d: train loss %.4f%s, %s img/s",
            epoch + 1,
            record["train_loss"],
            shown,
            f"{record['images_per_s']:,.0f}",
        )
        # Saved after the epoch's record is written: a run killed in between redoes the epoch and its
        # record, rather than resuming past an epoch that metrics.jsonl never got.
        due = (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs
        if due or self._step_checkpoint_due(step):
            self._save(state, [])
        if self.stop_requested():
            self._save(state, [])
            raise preemption.Preempted(step)
        return state


def _figures_and_analyses(setup: Setup, state: TrainState, feed, history: list[dict], workdir: Path) -> None:
    config = setup.config
    examples = feed.figure_examples(config.num_figure_images)
    figures.write_run_figures(setup, jax.device_get(state.variables()), examples, history, workdir)
    for name in config.analyses:  # e.g. pca_angles.json (on this process's share of the data)
        test = (
            feed.data.test
            if config.max_eval_examples is None
            else {k: v[: config.max_eval_examples] for k, v in feed.data.test.items()}
        )
        analysis.run(name, state, feed.data.train, test, workdir)


def _test(
    setup: Setup, state: TrainState, feed, source, history: list[dict], workdir: Path, timer: timings.Timings
) -> dict:
    """The test split scored with the fixed evaluation noise; eval.json, figures and analyses (process 0)."""
    config = setup.config
    with timer.phase("test"):
        result = feed.score("test", state.variables())
    divergence.check_scores(result, f"test at step {int(state.step)}", config, workdir)
    result |= {"num_test_images": feed.count("test"), "step": int(state.step), "data_source": source.description}
    if jax.process_index() == 0:
        files.write_json(workdir / "eval.json", workdir_lib.strict_json(result))
        with timer.phase("figures"):
            _figures_and_analyses(setup, state, feed, history, workdir)
    log.info(
        "test (%d images): PSNR %.2f dB (noisy input %.2f), SSIM %.4f (noisy input %.4f)%s",
        result["num_test_images"],
        result["psnr"],
        result["noisy_psnr"],
        result["ssim"],
        result["noisy_ssim"],
        _loss_shown(config, result),
    )
    return result


def _loss_shown(config: ml_collections.ConfigDict, scores: dict, prefix: str = "") -> str:
    """The loss's own score for a log line (", val bce 0.1000"); none for "psnr", which the line gives in dB."""
    return "" if config.loss == "psnr" else f", {prefix}{config.loss} {scores[config.loss]:.4f}"
