"""Losses: values and gradients of the fast formulations against optax's, and the PSNR loss against the metric."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dae_jax.nn import losses


def test_bce_matches_optax_values_and_gradients():
    logits = 6.0 * jax.random.normal(jax.random.key(0), (4, 28, 28, 1))  # large |x| too: the stable branch
    targets = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))

    def reference(x, t):
        return optax.sigmoid_binary_cross_entropy(x, t).reshape(4, -1).mean(axis=1)

    np.testing.assert_allclose(losses.bce_with_logits(logits, targets), reference(logits, targets), rtol=1e-6)
    weights = jnp.arange(1.0, 5.0)
    grads = jax.grad(lambda x, t: losses.bce_with_logits(x, t) @ weights, (0, 1))(logits, targets)
    expected = jax.grad(lambda x, t: reference(x, t) @ weights, (0, 1))(logits, targets)
    for a, b in zip(grads, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7, rtol=1e-5)


def test_mse_per_image():
    a, b = jnp.zeros((2, 3, 3, 1)), jnp.ones((2, 3, 3, 1)).at[1].set(2.0)
    np.testing.assert_allclose(losses.mse(a, b), [1.0, 4.0])


def test_psnr_loss_is_minus_the_scored_psnr_and_weighs_images_by_their_own_error():
    from dae_jax.eval import metrics

    targets = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
    # Three images restored to three error levels: about 10, 20 and 40 dB.
    outputs = targets + jnp.array([0.3, 0.1, 0.01])[:, None, None, None] * jax.random.normal(
        jax.random.key(1), targets.shape
    )
    np.testing.assert_allclose(losses.negative_psnr(outputs, targets), -metrics.psnr(outputs, targets), rtol=1e-5)
    # d(10 log10 MSE_i)/d outputs = 10 / ln 10 * dMSE_i / MSE_i: an image's gradient scales as 1 / its MSE.
    grads = jax.grad(lambda o: losses.negative_psnr(o, targets).sum())(outputs)
    mse_grads = jax.grad(lambda o: losses.mse(o, targets).sum())(outputs)
    scale = 10.0 / np.log(10.0) / losses.mse(outputs, targets)
    np.testing.assert_allclose(grads, mse_grads * scale[:, None, None, None], rtol=1e-4, atol=1e-6)
    assert np.isfinite(losses.negative_psnr(targets, targets)).all()  # an exact reconstruction: 100 dB, not inf


def test_every_loss_has_an_output_activation_and_a_score_sign():
    assert set(losses.OUTPUT_ACTIVATIONS) == set(losses.LOSSES) == set(losses.SCORE_SIGNS)


def test_clipped_output_is_in_range_and_passes_the_clipped_errors_gradient():
    outputs = jnp.array([-0.4, -0.1, 0.2, 0.9, 1.3, 1.3]).reshape(1, 6, 1, 1)
    targets = jnp.array([0.0, 0.3, 0.25, 1.0, 1.0, 0.6]).reshape(1, 6, 1, 1)
    loss, activation = losses.from_config("mse", clip_output=True)
    np.testing.assert_array_equal(activation(outputs).ravel(), np.float32([0.0, 0.0, 0.2, 0.9, 1.0, 1.0]))
    # Straight-through: d/d outputs = 2 (clip(outputs) - targets) / P. Past its target's bound (the first and
    # fifth pixels) a pixel gets no gradient; on the wrong side (the second, the sixth) its clipped error's.
    grad = jax.grad(lambda o: loss(o, targets).sum())(outputs).ravel()
    np.testing.assert_allclose(grad, 2 * np.array([0.0, -0.3, -0.05, -0.1, 0.0, 0.4]) / 6, atol=1e-7)
    # Clipping never moves an output away from its target: the clipped loss is at most the plain one.
    assert loss(outputs, targets) < losses.mse(outputs, targets)


def test_clip_output_is_refused_for_the_sigmoid_loss_and_off_by_default():
    with pytest.raises(ValueError, match=r"config.clip_output: the 'bce' loss's sigmoid"):
        losses.from_config("bce", clip_output=True)
    assert losses.from_config("psnr") == (losses.LOSSES["psnr"], losses.OUTPUT_ACTIVATIONS["psnr"])


def test_a_clipped_setup_outputs_images_trains_through_the_clip_and_names_the_field_for_bce():
    from dae_jax.training.state import create_train_state
    from tests.conftest import setup_of

    setup = setup_of("unet32_residual", loss="psnr", clip_output=True)
    variables = create_train_state(setup, jax.random.key(0)).variables()
    # The untrained residual model is the identity (its last conv starts at 0): out-of-range inputs come back clipped.
    x = jnp.linspace(-0.5, 1.5, 4 * 28 * 28).reshape(4, 28, 28, 1)
    np.testing.assert_array_equal(setup.output(variables, x), jnp.clip(x, 0.0, 1.0))
    # ... and its training loss is taken on the clipped output, straight-through: no gradient for a pixel below
    # 0 whose target is 0, the clipped error's for one whose target is 0.3 (the plain MSE's would differ in both).
    outputs, targets = jnp.full((1, 2, 1, 1), -0.2), jnp.array([0.0, 0.3]).reshape(1, 2, 1, 1)
    grad = jax.grad(lambda o: setup.loss(o, targets).sum())(outputs).ravel()
    expected = jax.grad(lambda o: losses.negative_psnr(o, targets).sum())(jnp.zeros_like(outputs)).ravel()
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    assert grad[0] == 0.0 and grad[1] < 0.0
    with pytest.raises(ValueError, match=r"^config.clip_output: "):
        setup_of("conv32", loss="bce", clip_output=True)
