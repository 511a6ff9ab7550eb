"""JAX's threefry random numbers with the hash written out round by round: ``unrolled(keys)``.

Bit for bit what ``jax.random`` draws from the same keys, in either of JAX's bit layouts
(``jax.threefry_partitionable``), but faster on a CPU device with several cores. On CPU, JAX lowers
threefry's 20 rounds as a loop of 5 steps; XLA runs each step's pieces one after another on one thread,
writing and reading the counters in memory between them. Written out, the 20 rounds are one elementwise
program that XLA splits over the device's threads: 512 x 784 words took 344 against 729 us on one
2-core CPU device (Zen 5). On one core the two take the same time (522 and 523 us), so a model split over
one device per core (``sharding.model_mesh``) draws as fast as before.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import random as jax_random

# Threefry-2x32's rotations (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"), alternating
# every 4 rounds, and its key-schedule parity constant.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry2x32(key: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of counter pairs (x0, x1) under ``key`` (uint32 [2]): JAX's
    ``threefry2x32_p``, unrolled. x0, x1: uint32, same shape."""
    ks = (key[0], key[1], key[0] ^ key[1] ^ np.uint32(_PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):  # 5 x 4 rounds, the key injected after each 4
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, r) ^ x0
        x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _bits32(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 ``shape`` as JAX's threefry makes them from ``key`` (uint32 [2]) in the current layout,
    for fewer than 2**32 - 1 words (from there JAX's original layout hashes in blocks)."""
    n = math.prod(shape)
    count = lax.iota(np.uint32, n)
    if jax.config.jax_threefry_partitionable:  # each word a hash of its flat index (high word 0), folded
        a, b = threefry2x32(key, jnp.zeros_like(count), count)
        return (a ^ b).reshape(shape)
    # The original layout: counters 0..n-1 (a 0 appended to an odd count), first half against second.
    if n % 2:
        count = jnp.concatenate([count, jnp.zeros(1, np.uint32)])
    a, b = threefry2x32(key, count[: len(count) // 2], count[len(count) // 2 :])
    return jnp.concatenate([a, b])[:n].reshape(shape)


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    if bit_width != 32 or math.prod(shape) >= 2**32 - 1:  # JAX's own (rare here)
        return jax.random.bits(_wrap(key), shape, np.dtype(f"uint{bit_width}"))
    return _bits32(key, tuple(shape))


def _wrap(key_data: jax.Array) -> jax.Array:
    return jax.random.wrap_key_data(key_data, impl="threefry2x32")


UNROLLED_THREEFRY = jax_random.define_prng_impl(
    key_shape=(2,),
    seed=lambda seed: jax.random.key_data(jax.random.key(seed, impl="threefry2x32")),
    split=lambda key, shape: jax.random.key_data(jax.random.split(_wrap(key), shape)),
    random_bits=_random_bits,
    fold_in=lambda key, data: jax.random.key_data(jax.random.fold_in(_wrap(key), data)),
    name="threefry2x32_unrolled",
    tag="fru",
)


def unrolled(keys: jax.Array) -> jax.Array:
    """Typed threefry ``keys`` (any shape) as keys of ``UNROLLED_THREEFRY`` on CPU: the same draws, the hash
    unrolled. Keys of another generator (``JAX_DEFAULT_PRNG_IMPL=rbg``), and any keys on GPU and TPU, where
    JAX's own lowering is not a loop, are returned as they are."""
    if jax.random.key_impl(keys) != "threefry2x32" or jax.default_backend() != "cpu":
        return keys
    return jax.random.wrap_key_data(jax.random.key_data(keys), impl=UNROLLED_THREEFRY)
