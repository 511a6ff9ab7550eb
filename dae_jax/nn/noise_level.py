"""A blind estimate of an image's Gaussian noise level, given to a model as one more input channel.

Immerkaer's estimator (J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996): the
3x3 mask ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` (the difference of two Laplacians) cancels
locally smooth image content, so the mean absolute response over the image, times
``sqrt(pi / 2) / 6``, is the std of additive Gaussian noise. On clipped noise over MNIST's black
background it reads low and it counts digit edges as noise, but it grows with sigma, which is all
a model that takes it as an input channel ("noise_level" in ``dae_jax.nn.layers``) needs: a
global summary of the input that 3x3 convolutions over a small code cannot compute, so one blind
model can smooth as much as each input needs without being told sigma.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def estimate(x: jax.Array) -> jax.Array:
    """The noise std of each image, [N], from x [N, H, W, C] (H, W >= 3), pooled over its channels."""
    channels = x.shape[-1]
    kernel = jnp.broadcast_to(jnp.asarray(_MASK, x.dtype)[:, :, None, None], (3, 3, 1, channels))  # HWIO
    response = lax.conv_general_dilated(
        x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels
    )
    return jnp.sqrt(jnp.pi / 2) / 6 * jnp.mean(jnp.abs(response), axis=(1, 2, 3))


def with_channel(x: jax.Array) -> jax.Array:
    """x [N, H, W, C] -> [N, H, W, C + 1]: the images and, as the last channel, each one's ``estimate``."""
    level = jnp.broadcast_to(estimate(x)[:, None, None, None], (*x.shape[:-1], 1))
    return jnp.concatenate([x, level], axis=-1)
