"""random_bits.unrolled: keys that draw exactly what JAX's threefry keys draw."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import corruptions, random_bits

SAMPLERS = {
    "bits32": lambda k, shape: jax.random.bits(k, shape),
    "bits8": lambda k, shape: jax.random.bits(k, shape, jnp.uint8),  # JAX's own path
    "normal": lambda k, shape: jax.random.normal(k, shape),
    "uniform": lambda k, shape: jax.random.uniform(k, shape),
    "bernoulli": lambda k, shape: jax.random.bernoulli(k, 0.3, shape),
}


@pytest.mark.parametrize("partitionable", [False, True])
@pytest.mark.parametrize("shape", [(784,), (7,), (1,), (3, 5), (28, 28, 1)])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_unrolled_keys_draw_what_jax_draws(partitionable, shape, sampler):
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(3), jnp.arange(4))
    draw = jax.vmap(functools.partial(SAMPLERS[sampler], shape=shape))
    with jax.threefry_partitionable(partitionable):
        expected = np.asarray(draw(keys))
        for got in (draw(random_bits.unrolled(keys)), jax.jit(draw)(random_bits.unrolled(keys))):
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(np.asarray(got), expected)


def test_the_two_layouts_differ_so_the_test_above_tells_them_apart():
    key = random_bits.unrolled(jax.random.key(0))
    with jax.threefry_partitionable(False):
        original = jax.random.bits(key, (16,))
    with jax.threefry_partitionable(True):
        partitionable = jax.random.bits(key, (16,))
    assert not np.array_equal(original, partitionable)


def test_split_and_fold_in_are_jax_s():
    key = jax.random.key(1)
    ours = random_bits.unrolled(key)
    np.testing.assert_array_equal(
        jax.random.key_data(jax.random.split(ours, 3)), jax.random.key_data(jax.random.split(key, 3))
    )
    np.testing.assert_array_equal(
        jax.random.key_data(jax.random.fold_in(ours, 7)), jax.random.key_data(jax.random.fold_in(key, 7))
    )


def test_the_hash_matches_the_threefry_paper_s_known_answer():
    """Random123's known-answer vectors for Threefry-2x32, 20 rounds (key, counter -> output)."""
    vectors = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, (c0, c1), expected in vectors:
        x0, x1 = random_bits.threefry2x32(
            jnp.array(key, jnp.uint32), jnp.array([c0], jnp.uint32), jnp.array([c1], jnp.uint32)
        )
        assert (int(x0[0]), int(x1[0])) == expected


def test_per_example_noise_is_unchanged():
    """The corruption each training step and evaluation draws: the same as with JAX's own keys."""
    images = jnp.full((5, 6, 6, 1), 0.5)
    rows = jnp.array([4, 0, 9, 2, 7])
    corrupt = corruptions.make("gaussian", sigma=0.5)
    for fast_bits in (False, True):
        got = corruptions.per_example(corrupt, jax.random.key(2), images, rows, fast_bits=fast_bits)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(2), rows)
        with jax.threefry_partitionable(not fast_bits):
            expected = jax.vmap(lambda k, x: corrupt(k, x[None])[0])(keys, images)
        np.testing.assert_array_equal(got, expected)


def test_keys_of_another_generator_pass_through():
    rbg = jax.random.key(0, impl="rbg")
    assert random_bits.unrolled(rbg) is rbg
    twice = random_bits.unrolled(random_bits.unrolled(jax.random.key(0)))
    np.testing.assert_array_equal(jax.random.key_data(twice), jax.random.key_data(jax.random.key(0)))


def test_draws_inside_a_jitted_scan_are_jax_s():
    """As the device-resident loop draws them: per example, under vmap, inside lax.scan."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(4), jnp.arange(6)).reshape(3, 2)

    def draws(keys):
        return jax.lax.scan(lambda c, k: (c, jax.vmap(lambda k: jax.random.normal(k, (5, 3)))(k)), 0, keys)[1]

    for partitionable in (False, True):
        with jax.threefry_partitionable(partitionable):
            np.testing.assert_array_equal(jax.jit(draws)(random_bits.unrolled(keys)), draws(keys))
