import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dae_jax import corruptions


def test_gaussian_unclipped_statistics():
    x = jnp.full((64, 28, 28, 1), 0.5)
    noisy = corruptions.gaussian(jax.random.key(0), x, sigma=0.3, clip=False)
    noise = np.asarray(noisy - x).ravel()  # 50,176 samples
    assert abs(noise.mean()) < 0.01
    assert abs(noise.std() - 0.3) < 0.005
    assert stats.kstest(noise / 0.3, "norm").pvalue > 1e-3


def test_gaussian_clipping_fraction_and_range():
    x = jnp.full((64, 28, 28, 1), 0.5)
    noisy = np.asarray(corruptions.gaussian(jax.random.key(1), x, sigma=0.5))
    assert noisy.min() == 0.0 and noisy.max() == 1.0
    # P(0.5 + 0.5 z > 1) = P(z > 1) = 0.1587 at each end.
    assert abs((noisy == 1.0).mean() - stats.norm.sf(1.0)) < 0.01
    assert abs((noisy == 0.0).mean() - stats.norm.sf(1.0)) < 0.01


def test_clipped_noise_is_biased_on_black_background():
    # Clipping raises a black background: E[clip(s z, 0, 1)] = s E[z+] - s E[(z - 1/s)+],
    # with E[(z - a)+] = pdf(a) - a sf(a); for s = 0.5 that is 0.1952, not 0.
    s, a = 0.5, 2.0
    expected = s * stats.norm.pdf(0) - s * (stats.norm.pdf(a) - a * stats.norm.sf(a))
    noisy = corruptions.gaussian(jax.random.key(2), jnp.zeros((64, 28, 28, 1)), sigma=s)
    assert abs(float(noisy.mean()) - expected) < 0.003


def test_per_example_noise_does_not_depend_on_batch():
    corrupt = corruptions.make("gaussian", sigma=0.5)
    x = jax.random.uniform(jax.random.key(3), (8, 28, 28, 1))
    key = jax.random.key(4)
    whole = corruptions.per_example(corrupt, key, x, jnp.arange(8))
    second_half = corruptions.per_example(corrupt, key, x[4:], jnp.arange(4, 8))
    np.testing.assert_array_equal(whole[4:], second_half)
    assert not np.array_equal(whole[0], whole[1])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("fast_bits", [False, True])
def test_fast_bits_draw_with_threefrys_original_layout(jit, fast_bits):
    key, images, rows = jax.random.key(3), jnp.full((4, 6, 6, 1), 0.5), jnp.arange(4)
    unclipped = lambda k, x: corruptions.gaussian(k, x, sigma=1.0, clip=False)  # noqa: E731
    draw = functools.partial(corruptions.per_example, unclipped, fast_bits=fast_bits)
    noisy = (jax.jit(draw) if jit else draw)(key, images, rows)

    def expected(partitionable):  # JAX's default layout is partitionable
        keys = [jax.random.fold_in(key, i) for i in range(4)]
        with jax.threefry_partitionable(partitionable):
            return jnp.stack([0.5 + jax.random.normal(k, (36,)).reshape(6, 6, 1) for k in keys])

    np.testing.assert_allclose(noisy, expected(not fast_bits), rtol=1e-6, atol=1e-6)
    assert not np.allclose(noisy, expected(fast_bits), atol=0.1)  # the other layout: other numbers


@pytest.mark.parametrize("shape", [(3, 28, 28, 1), (2, 9, 7, 3), (5, 6)])
def test_noise_drawn_flat_equals_the_shaped_draw(shape):
    """The corruptions draw their randomness as one flat vector (faster on XLA:CPU); the values must be the
    shaped draw's, bit for bit, so a run's noise does not depend on how it is drawn."""
    key = jax.random.key(7)
    images = jax.random.uniform(jax.random.key(1), shape)
    pixels = (*shape[:-1], 1)
    expected = {
        "gaussian": jnp.clip(images + 0.5 * jax.random.normal(key, shape), 0.0, 1.0),
        "masking": jnp.where(jax.random.bernoulli(key, 0.75, pixels), images, 0.0),
    }
    hit_key, value_key = jax.random.split(key)
    value = jax.random.bernoulli(value_key, 0.5, pixels).astype(images.dtype)
    expected["salt_and_pepper"] = jnp.where(jax.random.bernoulli(hit_key, 0.1, pixels), value, images)
    for name, want in expected.items():
        got = jax.jit(corruptions.make(name))(key, images)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("speckle", {}, "gaussian"),
        ("gaussian", {"sigma": -0.1}, "sigma must be a finite number >= 0"),
        ("gaussian", {"sigma": "big"}, "sigma must be a finite number >= 0"),
        ("gaussian", {"p": 0.1}, "accepts"),
    ],
)
def test_make_rejects_bad_input(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corruptions.make(name, **kwargs)


def test_masking_zeroes_fraction_p_shared_by_channels():
    x = jnp.ones((64, 28, 28, 3))
    noisy = np.asarray(corruptions.masking(jax.random.key(5), x, p=0.3))
    assert abs((noisy == 0).mean() - 0.3) < 0.01
    assert (noisy.min(axis=-1) == noisy.max(axis=-1)).all()  # one draw per pixel
    assert set(np.unique(noisy)) == {0.0, 1.0}


def test_salt_and_pepper_hits_fraction_p_half_salt_half_pepper():
    x = jnp.full((64, 28, 28, 1), 0.5)
    noisy = np.asarray(corruptions.salt_and_pepper(jax.random.key(6), x, p=0.2))
    assert abs((noisy != 0.5).mean() - 0.2) < 0.01
    assert abs((noisy == 1.0).mean() - 0.1) < 0.005 and abs((noisy == 0.0).mean() - 0.1) < 0.005


def test_gaussian_blur_spreads_a_point_with_variance_sigma_squared():
    x = jnp.zeros((1, 29, 29, 1)).at[0, 14, 14, 0].set(1.0)
    out = np.asarray(corruptions.gaussian_blur(jax.random.key(0), x, sigma=1.5))[0, :, :, 0]
    assert abs(out.sum() - 1.0) < 1e-5
    rows = np.arange(29) - 14
    assert abs((out.sum(axis=1) * rows**2).sum() - 1.5**2) < 0.05  # truncation at 3 sigma
    np.testing.assert_allclose(out, out.T, atol=1e-7)
    same = corruptions.gaussian_blur(jax.random.key(0), x, sigma=0.0)
    np.testing.assert_array_equal(same, x)


def test_low_resolution_removes_finest_detail_and_keeps_flat_images():
    checker = (np.indices((28, 28)).sum(axis=0) % 2).astype(np.float32)[None, :, :, None]
    out = np.asarray(corruptions.low_resolution(jax.random.key(0), jnp.asarray(checker), factor=2))
    np.testing.assert_allclose(out, 0.5, atol=1e-5)  # period-2 pattern averages out entirely
    flat = jnp.full((2, 28, 28, 1), 0.7)
    np.testing.assert_allclose(corruptions.low_resolution(jax.random.key(0), flat, factor=4), flat, atol=1e-6)


def test_compose_applies_steps_in_order_with_folded_keys():
    x = jax.random.uniform(jax.random.key(7), (4, 28, 28, 1))
    steps = [{"name": "gaussian_blur", "sigma": 1.0}, {"name": "masking", "p": 0.5}]
    got = corruptions.make("compose", steps=steps)(jax.random.key(8), x)
    blurred = corruptions.gaussian_blur(jax.random.fold_in(jax.random.key(8), 0), x, sigma=1.0)
    want = corruptions.masking(jax.random.fold_in(jax.random.key(8), 1), blurred, p=0.5)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="p is a probability"):
        corruptions.make("compose", steps=[{"name": "masking", "p": 2.0}])


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("masking", {"p": 1.5}, "p is a probability"),
        ("salt_and_pepper", {"p": -0.1}, "p must be a finite number >= 0"),
        ("low_resolution", {"factor": 1.5}, "factor must be an integer >= 1"),
        ("compose", {"steps": [{"sigma": 1.0}]}, "has no 'name'"),
    ],
)
def test_make_rejects_bad_rates(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corruptions.make(name, **kwargs)


def test_blind_gaussian_draws_one_uniform_sigma_per_image():
    """The std of each image's noise (unclipped, 4,096 pixels: ~1% error) is uniform on [low, high]."""
    corrupt = corruptions.make("blind_gaussian", low=0.0, high=0.7, clip=False)
    images = jnp.full((2000, 64, 64, 1), 0.5)
    noisy = jax.jit(lambda x: corruptions.per_example(corrupt, jax.random.key(3), x, jnp.arange(len(x))))(images)
    sigmas = np.asarray(jnp.std(noisy - images, axis=(1, 2, 3)))
    assert sigmas.min() >= 0 and sigmas.max() <= 0.7 * 1.05
    assert stats.kstest(sigmas, stats.uniform(0.0, 0.7).cdf).pvalue > 0.01
    assert abs(sigmas.mean() - 0.35) < 0.02
    again = corruptions.per_example(corrupt, jax.random.key(3), images[:8], jnp.arange(8))
    np.testing.assert_allclose(again, noisy[:8], atol=1e-6)  # a function of (key, index) only (jit: fma rounding)


def test_mixture_picks_one_choice_per_image_uniformly():
    corrupt = corruptions.make("mixture", choices=[{"name": "none"}, {"name": "masking", "p": 1.0}])
    images = jnp.full((1000, 4, 4, 1), 0.5)
    out = np.asarray(corruptions.per_example(corrupt, jax.random.key(0), images, jnp.arange(1000)))
    zeroed = (out == 0).all(axis=(1, 2, 3))
    assert ((out == 0.5).all(axis=(1, 2, 3)) | zeroed).all()  # each image is exactly one choice's output
    assert 0.45 < zeroed.mean() < 0.55


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("blind_gaussian", {"low": 0.5, "high": 0.1}, "low must be <= high"),
        ("blind_gaussian", {"high": -1.0}, "high must be a finite number >= 0"),
        ("mixture", {}, "needs choices"),
        ("mixture", {"choices": [{"name": "speckle"}]}, "Unknown corruption 'speckle'"),
    ],
)
def test_blind_and_mixture_parameters_are_checked(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corruptions.make(name, **kwargs)
