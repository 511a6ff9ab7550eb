"""dae-jax's side of the inference benchmark (``dae-jax bench --task infer``): ``JaxPredictor``.

It times what a user of the Python API runs: ``Denoiser.denoise`` on a batch of noisy float images
(numpy in, numpy out), or, as variant ``evaluate``, ``dae_jax.evaluate`` scoring clean uint8 images
under the model's fixed evaluation noise. The peers' sides are the ``Predictor`` classes of
dae_jax/studies/peers/*_models.py; the benchmark's loop, rounds and tables are ``benchmark.measure``'s.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from dae_jax.studies.bench_report import xla_flops
from dae_jax.studies.peers.specs import Recipe, noisy_batches


class JaxPredictor:
    """Times denoising ``steps`` batches of ``recipe``'s model (untrained weights: the arithmetic is the same)."""

    VARIANTS = (None, "evaluate")
    DEFAULT_VARIANT = None

    def __init__(self, recipe: Recipe, batch_size: int, images: np.ndarray, variant: str | None = None):
        from dae_jax import configs
        from dae_jax.eval.denoiser import Denoiser
        from dae_jax.nn import models
        from dae_jax.setup import Setup
        from dae_jax.training.state import create_train_state

        if variant not in self.VARIANTS:
            raise ValueError(f"dae-jax predict variant {variant!r}; choose one of {self.VARIANTS}.")
        config = configs.load(recipe.config) if recipe.config else configs.base()
        setup = Setup.from_config(config, training=False)
        self.denoiser = Denoiser(setup=setup, variables=create_train_state(setup).variables())
        self.params = models.param_count(self.denoiser.variables["params"])
        self.batches = noisy_batches(images, batch_size, recipe.sigma)
        n = len(self.batches) * batch_size
        self.clean = [images[i : i + batch_size] for i in range(0, n, batch_size)]
        self.variant, self.batch_size = variant, batch_size
        # Model FLOPs: XLA's cost analysis of the textbook forward pass (fast=False layers), per image.
        config.model.fast = False
        textbook = Setup.from_config(config, training=False)
        lowered = jax.jit(textbook.output).lower(self.denoiser.variables, self.batches[0])
        self.flops_per_image = xla_flops(lowered) / batch_size
        device = jax.local_devices()[0]
        count = jax.local_device_count()
        self.device = {"platform": device.platform, "device_kind": device.device_kind, "count": count}
        what = "dae_jax.evaluate (noise, model, metrics)" if variant else "Denoiser.denoise"
        split = count if variant else self.denoiser.device_count  # evaluate: every device; denoise: see Denoiser
        inline = "" if jax.config.values["jax_cpu_enable_async_dispatch"] else " (one-device calls inline)"
        self.description = f"dae-jax (jax {jax.__version__}), {what}, batches split over {split} {device.platform}"
        self.description += inline

    def run(self, steps: int) -> float:
        """Seconds to denoise ``steps`` batches into numpy arrays (to score them, as variant ``evaluate``)."""
        import dae_jax

        if self.variant == "evaluate":
            clean = np.concatenate([self.clean[i % len(self.clean)] for i in range(steps)])
            start = time.perf_counter()
            dae_jax.evaluate(self.denoiser, clean, batch_size=self.batch_size)
            return time.perf_counter() - start
        start = time.perf_counter()
        for i in range(steps):
            self.denoiser.denoise(self.batches[i % len(self.batches)])
        return time.perf_counter() - start
