"""dae-jax: denoising autoencoders in JAX/Flax.

The research API (README "Python API"):

- ``train(config, workdir=None) -> Run``: trains and evaluates a config (``Run``: final state,
  per-epoch history, test metrics, workdir);
- ``load(workdir_or_checkpoint) -> Denoiser``: ``denoise``, ``reconstruct``, ``encode``,
  ``decode``, ``denoise_any_size`` on user images;
- ``evaluate(denoiser, dataset=None, corruption=None) -> dict``: the run's metrics on any TFDS
  dataset or array of images;
- ``Setup.from_config(config)``: a config as objects (model, optimizer, corruption, loss);
- the modules ``configs``, ``corruptions``, ``nn`` (``models``, ``losses``, ``ops``, ``pooling``), ``metrics``,
  usable on their own; ``sharding`` and ``allocator`` set up a CPU process (README "Python API").

The packages are the architecture (docs/architecture.md): ``nn`` (layers, models, losses),
``data`` (sources, TFDS builders, batches), ``training`` (state and steps, the loop, checkpoints,
the workdir), ``eval`` (metrics, evaluation, the Denoiser, figures), ``cli`` (one file per
command) and ``studies`` (baselines, probes, benchmark: they import the library, never the reverse).
"""

from __future__ import annotations

__version__ = "0.1.0"

import time  # noqa: E402

# A command's launch starts here (dae_jax.training.timings): before the imports below.
_IMPORT_STARTED = time.perf_counter()

import os  # noqa: E402

from dae_jax import allocator, configs, corruptions, optimizers, sharding  # noqa: E402
from dae_jax.eval import metrics  # noqa: E402
from dae_jax.eval.denoiser import Denoiser, load  # noqa: E402
from dae_jax.eval.evaluation import evaluate  # noqa: E402
from dae_jax.nn import losses, models, ops, pooling  # noqa: E402
from dae_jax.setup import Setup  # noqa: E402
from dae_jax.training.state import Run  # noqa: E402


def train(config: configs.ConfigDict, workdir: str | os.PathLike | None = None) -> Run:
    """Trains and evaluates ``config`` in ``workdir`` (resuming from its latest checkpoint; None: a fresh
    temporary directory): ``dae_jax.training.loop.train_and_evaluate``, imported on first use so that
    ``import dae_jax`` loads neither the loop nor TensorFlow nor matplotlib."""
    from dae_jax.training.loop import train_and_evaluate

    return train_and_evaluate(config, workdir)


__all__ = [
    "Denoiser",
    "Run",
    "Setup",
    "allocator",
    "configs",
    "corruptions",
    "evaluate",
    "load",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "pooling",
    "sharding",
    "train",
]
