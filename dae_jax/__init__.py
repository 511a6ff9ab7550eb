"""dae-jax: denoising autoencoders in JAX/Flax.

``dae_jax.load(workdir)`` gives a trained model as a ``Denoiser`` (``denoise``, ``encode``,
``decode``); ``dae_jax.train.train_and_evaluate(config, workdir)`` trains one.
"""

__version__ = "0.1.0"

from dae_jax.denoiser import Denoiser, load  # noqa: E402

__all__ = ["Denoiser", "load"]
