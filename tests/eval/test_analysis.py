import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import corruptions, optimizers
from dae_jax.eval import analysis
from dae_jax.nn import losses, models
from dae_jax.training.state import TrainState, create_train_state
from tests.conftest import setup_of


def test_principal_angles_of_known_subspaces():
    e = np.eye(4)
    np.testing.assert_allclose(analysis.principal_angles(e[:, :2], e[:, [1, 0]] @ [[2, 1], [0, 3]]), [0, 0], atol=1e-6)
    np.testing.assert_allclose(analysis.principal_angles(e[:, :2], e[:, 2:]), [90, 90])
    tilted = np.cos(np.radians(30)) * e[:, 1] + np.sin(np.radians(30)) * e[:, 2]
    np.testing.assert_allclose(analysis.principal_angles(e[:, :2], np.stack([e[:, 0], tilted], 1)), [0, 30], atol=1e-6)


def test_pca_finds_the_directions_of_largest_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 5)) * [5, 0.1, 3, 0.1, 0.1] + 7
    mean, directions, eigenvalues = analysis.pca(x, 2)
    np.testing.assert_allclose(mean, 7, atol=0.2)
    np.testing.assert_allclose(eigenvalues[:2], [25, 9], rtol=0.1)
    assert analysis.principal_angles(directions, np.eye(5)[:, [0, 2]]).max() < 1


def _state(model, seed=0):
    return create_train_state(setup_of(model, optimizer="adam"), jax.random.key(seed))


def test_trained_linear_autoencoder_spans_the_principal_subspace(mnist_sample):
    """MSE training of linear4 on 4,000 real digits turns the decoder's column space to PCA's top 4."""
    steps = 5000  # batches of 50, in one jitted scan
    tx = optimizers.make("adam", learning_rate=1e-2, schedule_name="cosine", total_steps=steps)
    model = models.make("linear4")
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    untrained = analysis.pca_angles(state, mnist_sample, mnist_sample)
    x = corruptions.to_float(jnp.asarray(mnist_sample["image"]))

    @jax.jit
    def fit(state, rows):
        def step(state, r):
            loss = lambda p: losses.mse(state.apply_fn({"params": p}, x[r]), x[r]).mean()  # noqa: E731
            return state.apply_gradients(grads=jax.grad(loss)(state.params)), None

        return jax.lax.scan(step, state, rows)[0]

    state = fit(state, jax.random.randint(jax.random.key(1), (steps, 50), 0, len(x)))
    result = analysis.pca_angles(state, mnist_sample, mnist_sample)
    assert untrained["decoder_max_angle_deg"] > 60  # a random 4-d subspace of 784-d space
    assert result["decoder_max_angle_deg"] < 5, result["decoder_angles_deg"]
    np.testing.assert_allclose(result["encoder_decoder_singular_values"], 1, atol=0.05)  # encoder inverts decoder


def test_pca_angles_refuse_nonlinear_and_spatial_models(mnist_sample):
    with pytest.raises(ValueError, match="not affine"):
        analysis.pca_angles(_state("dense32"), mnist_sample, mnist_sample)
    with pytest.raises(ValueError, match=r"vector codes .* \(7, 7, 32\)"):
        analysis.pca_angles(_state("conv32"), mnist_sample, mnist_sample)


def test_run_writes_json_and_rejects_unknown_names(mnist_sample, tmp_path):
    small = {"image": mnist_sample["image"][:500]}
    result = analysis.run("pca_angles", _state("linear4"), small, small, tmp_path)
    assert (tmp_path / "pca_angles.json").is_file() and len(result["decoder_angles_deg"]) == 4
    with pytest.raises(ValueError, match="config.analyses: unknown \\['svd'\\]"):
        analysis.run("svd", _state("linear4"), small, small, tmp_path)
