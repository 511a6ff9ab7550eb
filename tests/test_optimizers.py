import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dae_jax import configs, optimizers
from dae_jax.training import compatibility

LR, STEPS = 0.1, 100


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("cosine", {}, {0: LR, 50: LR / 2, 100: 0.0}),
        ("cosine", {"alpha": 0.1}, {0: LR, 50: LR * 0.55, 100: LR * 0.1}),
        # warm-up over the first 10 steps from 0, then cosine over the remaining 90 to 0
        ("warmup_cosine", {"warmup": 0.1}, {0: 0.0, 5: LR / 2, 10: LR, 55: LR / 2, 100: 0.0}),
        ("exponential", {"decay_rate": 0.01}, {0: LR, 50: LR * 0.1, 100: LR * 0.01}),
        ("piecewise", {"boundaries": (0.5, 0.8), "scales": (0.1, 0.5)}, {0: LR, 49: LR, 50: LR * 0.1, 80: LR * 0.05}),
    ],
)
def test_schedule_values(name, kwargs, expected):
    schedule = optimizers.schedule(name, LR, STEPS, **kwargs)
    for step, value in expected.items():
        np.testing.assert_allclose(schedule(step), value, rtol=1e-5, atol=1e-8, err_msg=f"step {step}")


def test_constant_is_the_plain_number():
    assert optimizers.schedule("constant", LR, STEPS) == LR


def _updates(tx, grads, n):
    params = jnp.zeros(3)
    state = tx.init(params)
    out = []
    for _ in range(n):
        u, state = tx.update(grads, state, params)
        out.append(np.asarray(u))
    return out


def test_sgd_momentum_accumulates_a_velocity():
    g = jnp.array([1.0, -2.0, 0.5])
    u = _updates(optimizers.make("sgd", learning_rate=0.1, momentum=0.9), g, 3)
    # heavy ball: v_t = 0.9 v_{t-1} + g, update = -lr v_t
    for got, velocity in zip(u, (1.0, 1.9, 2.71), strict=True):
        np.testing.assert_allclose(got, -0.1 * velocity * g, rtol=1e-6)
    np.testing.assert_allclose(_updates(optimizers.make("sgd", learning_rate=0.1), g, 2)[1], -0.1 * g)


def test_optimizer_follows_its_schedule_from_config():
    config = configs.base()
    config.optimizer, config.learning_rate = "sgd", LR
    config.lr_schedule, config.lr_schedule_kwargs = "cosine", ml_collections.ConfigDict({"alpha": 0.0})
    g = jnp.ones(3)
    u = _updates(optimizers.from_config(config, total_steps=4), g, 4)
    for step, got in enumerate(u):
        np.testing.assert_allclose(got, -optax.cosine_decay_schedule(LR, 4)(step) * g, rtol=1e-6)


def test_schedule_default_peak_is_the_optimizer_default():
    u = _updates(optimizers.make("adadelta", schedule_name="cosine", total_steps=10), jnp.ones(3), 1)
    # adadelta's first update at Keras' default lr 1.0: -sqrt(eps) / sqrt(0.05 + eps) per unit gradient
    np.testing.assert_allclose(u[0], -np.sqrt(1e-7 / (0.05 + 1e-7)), rtol=1e-3)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: optimizers.schedule("linear", LR, STEPS), "Unknown learning-rate schedule 'linear'"),
        (lambda: optimizers.schedule("cosine", LR, STEPS, warmup=0.1), "has no parameter 'warmup'"),
        (lambda: optimizers.schedule("warmup_cosine", LR, STEPS, warmup=1.5), r"warmup is a fraction"),
        (lambda: optimizers.schedule("piecewise", LR, STEPS, boundaries=(50,), scales=(0.1,)), "fractions in"),
        (lambda: optimizers.schedule("cosine", LR, 0), "total_steps must be a positive integer"),
    ],
)
def test_bad_schedules_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_setup_names_a_bad_schedule():
    from dae_jax.setup import Setup

    config = configs.base()
    config.lr_schedule = "cosin"
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'cosin'"):
        Setup.from_config(config)


def test_checkpoints_saved_before_schedules_and_clipping_count_as_constant_and_unclipped():
    import json

    config = configs.base()
    saved = json.loads(json.dumps(config.to_dict()))
    del saved["lr_schedule"], saved["lr_schedule_kwargs"], saved["clip_output"]  # saved before the fields existed
    assert compatibility.config_differences(saved, config) == []
    config.lr_schedule = "cosine"  # changes the optimizer state's structure: refused
    config.clip_output = True  # changes the objective the state was trained on: refused
    assert compatibility.config_differences(saved, config) == [
        "clip_output: False -> True",
        "lr_schedule: 'constant' -> 'cosine'",
    ]


def test_keras_form_adam_adds_epsilon_before_the_bias_correction():
    """Step 1: Keras moves by lr * g / (|g| + eps / sqrt(1 - b2)), optax by lr * g / (|g| + eps)."""
    g = jnp.array([1e-9, 1e-7, 1e-5, 1e-3])
    for keras_form, eps_hat in ((True, 1e-7 / np.sqrt(1 - 0.999)), (False, 1e-7)):
        tx = optimizers.adam(keras_form=keras_form)
        updates, _ = tx.update(g, tx.init(g))
        np.testing.assert_allclose(updates, -1e-3 * g / (jnp.abs(g) + eps_hat), rtol=1e-4)
    keras, plain = optimizers.adam(keras_form=True), optimizers.adam()
    assert jax.tree.structure(keras.init(g)) == jax.tree.structure(plain.init(g))  # checkpoints alike
    leaves = jax.tree.leaves(keras.init({"w": g, "b": g[:2]}))
    assert len({id(x) for x in leaves}) == len(leaves)  # a donated step must not get one buffer twice
