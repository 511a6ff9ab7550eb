"""Image metrics: the fast SSIM window against dm_pix's own filtering, BCE against a float64 reference."""

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.eval import metrics


@pytest.mark.parametrize("shape", [(5, 28, 28, 1), (3, 25, 40, 3), (2, 11, 11, 1)])
def test_ssim_matches_dm_pix_per_image(shape):
    """The banded-matrix window gives dm_pix's SSIM (its per-row 1-D convolutions) for square, oblong, RGB and
    window-sized images; identical images score 1 and a worse restoration scores lower."""
    clean = jax.random.uniform(jax.random.key(0), shape)
    noise = jax.random.normal(jax.random.key(1), shape)
    restored = [jnp.clip(clean + s * noise, 0.0, 1.0) for s in (0.05, 0.3)]
    for r in restored:
        expected = dm_pix.ssim(clean, r, max_val=1.0, filter_size=11, filter_sigma=1.5)
        np.testing.assert_allclose(metrics.ssim(r, clean), expected, atol=1e-6)
    assert (metrics.ssim(restored[1], clean) < metrics.ssim(restored[0], clean)).all()
    np.testing.assert_allclose(metrics.ssim(clean, clean), 1.0, atol=1e-6)


def test_ssim_band_filters_each_axis_with_the_normalised_window():
    band = np.asarray(metrics._band(28))
    assert band.shape == (18, 28)
    np.testing.assert_allclose(band.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(np.count_nonzero(band, axis=1), 11)
    np.testing.assert_array_equal(band[3, 3:14], band[0, :11])  # the same window, shifted one column a row


def test_bce_is_the_mean_binary_cross_entropy_of_each_image():
    targets = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
    predictions = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1)).at[0, 0, 0, 0].set(0.0)  # a clipped 0
    p = np.clip(np.asarray(predictions, np.float64), 1e-7, 1 - 1e-7)
    t = np.asarray(targets, np.float64)
    expected = -(t * np.log(p) + (1 - t) * np.log1p(-p)).reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(metrics.bce(predictions, targets), expected, rtol=1e-5)
