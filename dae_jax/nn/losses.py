"""Reconstruction losses, each ``loss(logits, targets) -> [N]`` per-image means."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def per_image_mean(x: jax.Array) -> jax.Array:
    """[N, ...] -> [N] means, as a dot with 1/P weights.

    On XLA CPU a reduction fuses the elementwise ops that feed it and then runs them slowly
    (5x slower for the BCE below, measured); a dot leaves them to a vectorized loop.
    """
    x = x.reshape(x.shape[0], -1)
    return x @ jnp.full((x.shape[1],), 1.0 / x.shape[1], x.dtype)


@jax.custom_vjp
def _bce_pixels(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise BCE of sigmoid(logits) against targets: max(x, 0) - x t + log(1 + exp(-|x|))."""
    return jnp.maximum(logits, 0.0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def _bce_pixels_fwd(logits, targets):
    return _bce_pixels(logits, targets), (logits, targets)


def _bce_pixels_bwd(residuals, g):
    logits, targets = residuals
    # d/dx = sigmoid(x) - t and d/dt = -x: the textbook gradients, instead of autodiff through max/abs/log1p/exp.
    return g * (jax.nn.sigmoid(logits) - targets), -g * logits


_bce_pixels.defvjp(_bce_pixels_fwd, _bce_pixels_bwd)


def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], per image.

    Same quantity as Keras ``binary_crossentropy`` on a sigmoid output (and as
    ``optax.sigmoid_binary_cross_entropy``), computed stably from the logits instead of
    clipping the probabilities.
    """
    return per_image_mean(_bce_pixels(logits, targets))


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error per image (``outputs`` are the model's outputs, not logits)."""
    return per_image_mean(jnp.square(outputs - targets))


# Keeps log(MSE) finite for an exact reconstruction (PSNR 100 dB at most).
_MSE_FLOOR = 1e-10


def negative_psnr(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Minus the PSNR (dB, data range 1) per image: 10 log10(MSE), for linear outputs.

    The reported test PSNR is the mean of per-image PSNRs, so this loss is that metric itself:
    its gradient is MSE's divided by each image's own MSE, so an image already restored well
    (a clean '1') weighs as much, in dB, as a hard one, where MSE lets the hard ones dominate.
    """
    return (10.0 / jnp.log(10.0)) * jnp.log(mse(outputs, targets) + _MSE_FLOOR)


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "bce": bce_with_logits,
    "mse": mse,
    "psnr": negative_psnr,
}

# What turns a model's raw output into an image, for each loss.
OUTPUT_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "bce": jax.nn.sigmoid,
    "mse": lambda x: x,
    "psnr": lambda x: x,
}

# Each loss's value as a multiple of the validation score of its name (val_bce, val_mse, val_psnr):
# the "psnr" loss is minus the PSNR, so a loss curve drawn beside the validation score is flipped.
SCORE_SIGNS: dict[str, float] = {"bce": 1.0, "mse": 1.0, "psnr": -1.0}


@jax.custom_jvp
def clip_to_unit(outputs: jax.Array) -> jax.Array:
    """Linear outputs clipped to the images' range [0, 1], with the identity's gradient (straight-through).

    Every target pixel lies in [0, 1], so clipping never moves an output away from its target. Trained
    through it, a pixel already past its target's bound (a background pixel below 0) costs nothing and
    pulls nothing, where the plain loss spends capacity pulling it back to exactly 0; a pixel on the wrong
    side of the range (below 0 with target 0.3) still gets the gradient of its clipped error.
    """
    return jnp.clip(outputs, 0.0, 1.0)


# The identity's tangent: the clipped error's gradient reaches every pixel (clip's own would be 0 outside).
clip_to_unit.defjvp(lambda primals, tangents: (clip_to_unit(*primals), *tangents))


def from_config(name: str, clip_output: bool = False) -> tuple[Callable, Callable]:
    """``(loss, activation)`` of a config's ``loss`` and ``clip_output`` (linear losses only: "mse", "psnr").

    ValueError naming the field for an unknown loss or for clip_output with the sigmoid's "bce"."""
    if name not in LOSSES:
        raise ValueError(f"config.loss: unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
    loss, activation = LOSSES[name], OUTPUT_ACTIVATIONS[name]
    if not clip_output:
        return loss, activation
    if name == "bce":
        raise ValueError("config.clip_output: the 'bce' loss's sigmoid is already in [0, 1]; set it False.")
    return (lambda outputs, targets: loss(clip_to_unit(outputs), targets)), clip_to_unit
