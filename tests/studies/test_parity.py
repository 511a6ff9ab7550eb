"""experiments/parity.py: its statistics, and the whole study end to end on a few steps (slow)."""

import json

import numpy as np
import pytest
from scipy import stats

from tests.conftest import experiment


def test_difference_interval_is_welchs():
    parity = experiment("parity")
    a, b = [19.52, 19.34, 19.29], [19.40, 19.61, 19.47, 19.55]
    d = parity.difference(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    np.testing.assert_allclose(d["ci95"], [welch.low, welch.high], rtol=1e-9)
    assert d["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert parity.difference([1.0], b)["ci95"] is None
    assert parity.summary([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2}


@pytest.mark.slow
def test_parity_study_end_to_end(tmp_path, tfds_dir):
    """Two seeds of conv32_16_adam in Keras and dae-jax (both variants), 2 steps an epoch, one scorer."""
    pytest.importorskip("keras")
    parity = experiment("parity")
    argv = ["--configs", "conv32_16_adam", "--seeds", "0", "1", "--max_steps_per_epoch", "2"]
    argv += ["--frameworks", "keras", "dae-jax", "dae-jax:ours"]  # Keras first: its record makes the runs' folder
    argv += ["--max_eval_examples", "64", "--source", "embedded", "--data_dir", tfds_dir]
    argv += ["--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    result = parity.main(argv)
    table = result["table"]["conv32_16_adam"]
    assert set(table["frameworks"]) == {"dae-jax", "dae-jax:ours", "keras"}
    assert all(s["psnr"]["n"] == 2 and np.isfinite(s["psnr"]["mean"]) for s in table["frameworks"].values())
    assert set(table["vs_keras"]) == {"dae-jax", "dae-jax:ours"}
    assert json.loads((tmp_path / "out" / "result.json").read_text())["table"] == json.loads(
        json.dumps(result["table"])
    )
    assert "dae-jax − keras" in (tmp_path / "out" / "README.md").read_text()
    kept = sorted(p.name for p in (tmp_path / "runs" / "conv32_16_adam").glob("*.json"))
    assert len(kept) == 6 and (tmp_path / "runs" / "conv32_16_adam" / "dae-jax_seed0" / "train.log").is_file()
    again = parity.main(argv[:-1] + [str(tmp_path / "out2")])  # every run kept: scored from --workdir at once
    assert again["runs"] == result["runs"]


@pytest.mark.parametrize("name", ["conv32_16_adam", "conv32_adadelta"])
def test_faithful_step_is_keras_train_on_batch(name, mnist_sample):
    """From the same weights, 5 steps of the faithful config's optimizer and loss give Keras's weights to 2e-5
    (2% of one Adam update: float rounding): the parity study compares training runs, not two update rules.
    With optax's Adam instead of ``keras_form`` the first step already differs by 7e-4, a whole update."""
    keras = pytest.importorskip("keras")
    import jax
    import jax.numpy as jnp
    import ml_collections

    from dae_jax import configs, sharding
    from dae_jax.nn import layers
    from dae_jax.setup import Setup
    from dae_jax.studies.peers import keras_models, specs
    from dae_jax.training import steps
    from dae_jax.training.state import create_train_state

    config = configs.load(name)
    config.corruption, config.micro_batch_size = ml_collections.ConfigDict({"name": "none"}), 0  # same inputs
    recipe = specs.recipe(config.model.name)
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras_models.build(recipe), keras.layers.Activation("sigmoid")])
    net.compile(optimizer=keras_models.make_optimizer(recipe), loss="binary_crossentropy", jit_compile=False)
    setup = Setup.from_config(config)
    model = setup.model
    convs = [f"{part}_layers_{i}_0" for part in ("encoder", "decoder") for i, s in
             enumerate(layers.plan(getattr(model, part))) if s["op"] == "conv"]  # fmt: skip
    weights = [w.numpy() for w in net.weights]
    params = {n: {"kernel": jnp.asarray(weights[2 * i]), "bias": jnp.asarray(weights[2 * i + 1])} for i, n in
              enumerate(convs)}  # fmt: skip
    state = create_train_state(setup, jax.random.key(0))
    state = state.replace(params=params, opt_state=setup.tx.init(params))
    mesh = sharding.make_mesh(jax.devices()[:1])
    step = sharding.data_parallel(steps.make_train_step(setup), mesh, False)
    for s in range(5):
        batch = mnist_sample["image"][s * 64 : (s + 1) * 64]
        state, _ = step(state, sharding.global_batch({"image": batch, "row": np.arange(64, dtype=np.int32)}, mesh),
                        jax.random.key(0))  # fmt: skip
        x = batch.astype(np.float32) / 255
        net.train_on_batch(x, x)
    weights = [w.numpy() for w in net.weights]
    for i, n in enumerate(convs):
        np.testing.assert_allclose(state.params[n]["kernel"], weights[2 * i], atol=2e-5, err_msg=n)
        np.testing.assert_allclose(state.params[n]["bias"], weights[2 * i + 1], atol=2e-5, err_msg=n)
