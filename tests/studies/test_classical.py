import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

pytest.importorskip("bm3d", reason="the classical baselines need the eval extra: pip install -e '.[eval]'")
pytest.importorskip("skimage", reason="the classical baselines need the eval extra: pip install -e '.[eval]'")

from dae_jax import corruptions, sharding  # noqa: E402
from dae_jax.data import sources  # noqa: E402
from dae_jax.eval import evaluation  # noqa: E402
from dae_jax.studies import classical  # noqa: E402
from dae_jax.training import steps  # noqa: E402
from dae_jax.training.state import create_train_state  # noqa: E402
from tests.conftest import setup_of  # noqa: E402

SPEC = {"name": "gaussian", "sigma": 0.5, "clip": True}


@pytest.fixture(scope="module")
def digits(mnist_sample):
    """(clean, noisy): 8 real digits (one per class 0-7) with the fixed evaluation noise of seed 0."""
    rows = [int(np.argmax(mnist_sample["label"] == d)) for d in range(8)]
    images = mnist_sample["image"][rows]
    return np.asarray(corruptions.to_float(images)), classical.fixed_noisy(images, SPEC, seed=0)


# A grid point of each method near its tuned value at sigma 0.5 (results/classical_baselines/).
@pytest.mark.parametrize("name,param", [("median", 3), ("gaussian", 1.0), ("nl_means", 0.2), ("bm3d", 0.3)])
def test_each_method_improves_psnr_over_the_noisy_input(digits, name, param):
    clean, noisy = digits
    method = classical.METHODS[name]
    assert param in method.grid and set(classical.METHODS) == {"median", "gaussian", "nl_means", "bm3d"}
    denoised = method.denoise(noisy, param)
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert denoised.min() >= 0.0 and denoised.max() <= 1.0
    noisy_psnr = classical.mean_psnr(noisy, clean)  # about 9.4 dB
    assert classical.mean_psnr(denoised, clean) > noisy_psnr + 2.0
    debiased = classical.corrections(0.5)["inverse_mean"](denoised)
    assert classical.mean_psnr(debiased, clean) > noisy_psnr + 4.0


def test_tuner_picks_the_grid_point_with_the_best_validation_psnr(digits):
    clean, noisy = digits
    method = classical.METHODS["gaussian"]
    tunings = classical.tune(method, noisy, clean, classical.corrections(0.5))
    for name, correct in classical.corrections(0.5).items():
        psnr = {p: classical.mean_psnr(correct(method.denoise(noisy, p)), clean) for p in method.grid}
        assert tunings[name].param == max(psnr, key=psnr.get)
        np.testing.assert_allclose([tunings[name].psnr[p] for p in method.grid], list(psnr.values()), rtol=1e-6)
    # The clipping bias dominates the uncorrected Gaussian filter: its correction wins.
    assert max(tunings["inverse_mean"].psnr.values()) > max(tunings["none"].psnr.values()) + 1.0
    with pytest.raises(ValueError, match="as many clean as noisy"):
        classical.tune(method, noisy, clean[:3], classical.corrections(0.5))


def test_clipped_mean_matches_sampling_and_its_inverse_undoes_it():
    x = np.linspace(0.0, 1.0, 11)
    samples = corruptions.gaussian(jax.random.key(0), jnp.broadcast_to(jnp.asarray(x, jnp.float32), (20000, 11)))
    np.testing.assert_allclose(classical.clipped_mean(x, 0.5), np.asarray(samples).mean(axis=0), atol=0.005)
    # At x = 0 the formula of tests/test_corruptions.py: 0.1952 at sigma 0.5.
    expected = 0.5 * stats.norm.pdf(0) - 0.5 * (stats.norm.pdf(2.0) - 2.0 * stats.norm.sf(2.0))
    np.testing.assert_allclose(classical.clipped_mean(0.0, 0.5), expected, rtol=1e-9)
    np.testing.assert_allclose(classical.inverse_clipped_mean(classical.clipped_mean(x, 0.3), 0.3), x, atol=1e-3)
    assert classical.inverse_clipped_mean(np.array([0.0, 1.0]), 0.5).tolist() == [0.0, 1.0]  # out of range: clamped


def test_fixed_noisy_is_the_noise_models_are_scored_on(mnist_sample):
    images = mnist_sample["image"][:64]
    noisy = classical.fixed_noisy(images, SPEC, seed=3, batch_size=24)  # batches of 24, 24, 16
    scored = classical.score(noisy, np.asarray(corruptions.to_float(images)))
    mesh = sharding.make_mesh()
    setup = setup_of("dense32", seed=3)
    variables = jax.device_put(create_train_state(setup).variables(), sharding.replicated(mesh))
    eval_step = sharding.data_parallel(steps.make_eval_step(setup), mesh, False)
    arrays = {"image": images, "label": mnist_sample["label"][:64]}
    result = evaluation.evaluate_arrays(eval_step, variables, arrays, setup.keys.eval, 32, mesh)
    for k in ("psnr", "ssim", "mse"):
        np.testing.assert_allclose(scored[k], result[f"noisy_{k}"], rtol=1e-5)
    assert sources.IDX_DIR_ENV  # the script reads full MNIST from there


def test_bad_images_get_one_clear_error():
    with pytest.raises(ValueError, match=r"float \[N, H, W, C\]"):
        classical.gaussian(np.zeros((28, 28), np.float32), 1.0)
    with pytest.raises(ValueError, match="must lie in"):
        classical.median(np.full((1, 28, 28, 1), 2.0, np.float32), 3)


def test_classical_baselines_script_writes_tables_json_and_figure(tmp_path, tfds_dir):
    import json

    from experiments import classical_baselines

    out = tmp_path / "classical"
    argv = ["--source=embedded", f"--data_dir={tfds_dir}", "--sigmas", "0.5", "--methods", "median", "gaussian"]
    argv += ["--num_tune=16", "--max_test_images=24", "--bm3d_test_images=8", "--num_figure_images=4", f"--out={out}"]
    classical_baselines.main(argv)
    record = json.loads((out / "sigma_0.5.json").read_text())
    assert list(record["methods"]) == ["median", "median+inverse_mean", "gaussian", "gaussian+inverse_mean"]
    for row in record["methods"].values():
        assert row["num_test_images"] == 24 and row["num_tune_images"] == 16
        assert row["validation_psnr"][str(row["value"])] == max(row["validation_psnr"].values())
        assert row["test"]["psnr"] > record["noisy"]["test"]["psnr"] + 2.0
    assert record["num_subset_images"] == 8
    assert "| gaussian | inverse of E[clip(x + n)] |" in (out / "README.md").read_text()
    assert (out / "denoising_sigma_0.5.png").stat().st_size > 0
    assert "python experiments/classical_baselines.py --source=embedded" in (out / "command.txt").read_text()
