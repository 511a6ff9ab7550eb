"""Losses: values and gradients of the fast formulations against optax's."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
