"""Image-quality metrics per image (data range 1): BCE, MSE, PSNR, SSIM.

Every function maps ``(predictions, targets)`` with images [N, H, W, C] in [0, 1] to [N].
The dataset-level number is the mean of the per-image values.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

# Keras clips probabilities to [eps, 1 - eps] before taking logs; we do the same when
# scoring images (e.g. the noisy input, which holds exact 0s and 1s) as BCE predictions.
_EPS = 1e-7


def bce(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    p = jnp.clip(predictions, _EPS, 1.0 - _EPS)
    per_pixel = -(targets * jnp.log(p) + (1.0 - targets) * jnp.log1p(-p))
    return per_pixel.reshape(p.shape[0], -1).mean(axis=1)


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.square(predictions - targets).reshape(predictions.shape[0], -1).mean(axis=1)


def psnr(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """10·log10(1 / MSE) per image."""
    return 10.0 * jnp.log10(1.0 / mse(predictions, targets))


def ssim(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """SSIM with an 11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03 ('valid' filtering)."""
    return dm_pix.ssim(targets, predictions, max_val=1.0, filter_size=11, filter_sigma=1.5)


METRICS = {"bce": bce, "mse": mse, "psnr": psnr, "ssim": ssim}


def image_metrics(predictions: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """All metrics, each [N]."""
    return {name: fn(predictions, targets) for name, fn in METRICS.items()}
