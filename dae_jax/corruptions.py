"""Image corruptions: pure, key-first JAX functions ``corrupt(key, images) -> images``.

Images are float arrays in [0, 1] of any shape (usually NHWC). Hyperparameters are bound
with ``functools.partial`` (see ``make``) so a jitted step never traces them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

Corruption = Callable[[jax.Array, jax.Array], jax.Array]


def gaussian(key: jax.Array, images: jax.Array, *, sigma: float = 0.5, clip: bool = True) -> jax.Array:
    """Additive Gaussian noise: ``x + sigma * N(0, 1)``, clipped to [0, 1] when ``clip``.

    Clipping biases the noise (background pixels at 0 can only go up), as in the Keras
    references, which clip with ``np.clip(x_noisy, 0., 1.)``.
    """
    noisy = images + sigma * jax.random.normal(key, images.shape, images.dtype)
    return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


CORRUPTIONS: dict[str, Callable[..., jax.Array]] = {
    "gaussian": gaussian,
}

_NONNEGATIVE = ("sigma", "p", "factor")


def make(name: str, **kwargs) -> Corruption:
    """Returns ``corrupt(key, images)`` for a registered corruption with its parameters bound.

    Raises ValueError naming the valid choices for an unknown name or parameter and for a
    negative or non-numeric rate.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {name!r}; choose one of {sorted(CORRUPTIONS)}.")
    fn = CORRUPTIONS[name]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("key", "images")]
    for k, v in kwargs.items():
        if k not in accepted:
            raise ValueError(f"Corruption {name!r} has no parameter {k!r}; it accepts {accepted}.")
        if k in _NONNEGATIVE and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise ValueError(f"Corruption {name!r}: {k} must be a number >= 0, got {v!r}.")
    return functools.partial(fn, **kwargs)


def per_example(corrupt: Corruption, key: jax.Array, images: jax.Array, indices: jax.Array) -> jax.Array:
    """Corrupts image i with the key ``fold_in(key, indices[i])``.

    The noise of an example then depends only on (key, index): not on the batch size, the
    number of devices or how the batch is sharded. That is what makes the 8-device step equal
    the 1-device step, and the fixed test noise the same for every run.
    images: [N, ...]; indices: [N] int.
    """
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
    return jax.vmap(lambda k, x: corrupt(k, x[None])[0])(keys, images)
