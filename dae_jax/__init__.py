"""dae-jax: denoising autoencoders in JAX/Flax.

The research API (README "Python API"):

- ``dae_jax.train(config, workdir=None) -> Run``: trains and evaluates a config (``Run``: final
  state, per-epoch history, test metrics, workdir);
- ``dae_jax.load(workdir_or_checkpoint) -> Denoiser``: ``denoise``, ``reconstruct``, ``encode``,
  ``decode``, ``denoise_any_size`` on user images;
- ``dae_jax.evaluate(denoiser, dataset=None, corruption=None) -> dict``: the run's metrics on any
  TFDS dataset or array of images;
- ``dae_jax.corruptions``, ``dae_jax.models``, ``dae_jax.metrics``: usable on their own.

Attributes are imported on first use, so ``dae-jax --help`` does not wait for JAX and TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it.
_EXPORTS = {
    "train": "dae_jax.training",
    "Run": "dae_jax.training",
    "Denoiser": "dae_jax.denoiser",
    "load": "dae_jax.denoiser",
    "evaluate": "dae_jax.evaluation",
}
_SUBMODULES = ("training", "corruptions", "models", "metrics", "losses", "ops", "images", "tiling", "evaluation")

__all__ = [*_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"dae_jax.{name}")
    raise AttributeError(f"module 'dae_jax' has no attribute {name!r}")
