"""Stopping at once on divergence: a non-finite loss, parameter or score ends the run with a message that
says which step, that the last good checkpoint is kept, and what to change."""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np

from dae_jax.training.checkpoints import MANIFEST


def check_losses(losses: np.ndarray, first_step: int, config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Raises FloatingPointError naming the first step whose loss is NaN/inf (``losses[i]`` is step first_step+i+1).

    Called before any checkpoint of those steps is written, so the last checkpoint stays good.
    """
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise FloatingPointError(
            f"loss is {losses[bad[0]]} at step {first_step + bad[0] + 1}: training stopped. " + hint(config, workdir)
        )


def check_scores(scores: dict[str, float], what: str, config: ml_collections.ConfigDict, workdir: Path) -> None:
    """FloatingPointError when a metric of the model's output is NaN or inf (the PSNR of an exact output aside)."""
    broken = [k for k, v in scores.items() if not k.startswith("noisy_") and k != "psnr" and not np.isfinite(v)]
    if broken or np.isnan(scores.get("psnr", 0.0)):
        raise FloatingPointError(
            f"{what}: {', '.join(broken or ['psnr'])} not finite: training stopped. " + hint(config, workdir)
        )


def hint(config: ml_collections.ConfigDict, workdir: Path) -> str:
    """What a divergence message ends with: whether a good checkpoint is kept, and the likely fix."""
    saved = any((workdir / "checkpoints").glob(f"*/{MANIFEST}"))
    kept = f"The last good checkpoint is kept in {workdir / 'checkpoints'}" if saved else "No checkpoint was saved"
    return (
        f"{kept}; no eval.json is written. Likely cause: "
        f"learning rate too high (learning_rate={config.learning_rate}, optimizer={config.optimizer}); lower it "
        "with --config.learning_rate."
    )
