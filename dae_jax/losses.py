"""Reconstruction losses, each ``loss(logits, targets) -> [N]`` per-image means."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def _per_image_mean(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1).mean(axis=1)


def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], per image.

    Same quantity as Keras ``binary_crossentropy`` on a sigmoid output, computed stably
    from the logits instead of clipping the probabilities.
    """
    return _per_image_mean(optax.sigmoid_binary_cross_entropy(logits, targets))


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error per image (``outputs`` are the model's outputs, not logits)."""
    return _per_image_mean(jnp.square(outputs - targets))


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "bce": bce_with_logits,
    "mse": mse,
}

# What turns a model's raw output into an image, for each loss.
OUTPUT_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "bce": jax.nn.sigmoid,
    "mse": lambda x: x,
}


def get(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[name]
