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


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("speckle", {}, "gaussian"),
        ("gaussian", {"sigma": -0.1}, "sigma must be a number >= 0"),
        ("gaussian", {"sigma": "big"}, "sigma must be a number >= 0"),
        ("gaussian", {"p": 0.1}, "accepts"),
    ],
)
def test_make_rejects_bad_input(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corruptions.make(name, **kwargs)
