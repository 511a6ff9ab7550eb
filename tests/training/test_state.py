import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.training.state import create_train_state
from tests.conftest import setup_of


@pytest.mark.parametrize(
    "model, fields",
    [
        ("conv32", {"optimizer": "adadelta"}),
        (  # a small model with bn_dense576's layer kinds: BatchNorm statistics, strided and transposed convs
            "conv32",
            {
                "optimizer": "sgd",
                "model.kernel_init": "glorot_uniform",
                "model.encoder": ("conv 8 relu", "bn", "conv 8 s2 relu", "bn", "flatten", "dense 16"),
                "model.decoder": ("dense 1568 relu", "reshape 14x14x8", "tconv 8 s2 relu", "conv 1"),
            },
        ),
    ],
)
def test_jitted_init_is_the_eager_init_bit_for_bit(model, fields):
    """create_train_state jits the init for speed; a run started before that change must start from the same bits."""
    setup = setup_of(model, **fields)
    key = jax.random.key(3)
    variables = setup.model.init(key, jnp.zeros((1, *setup.image_shape), jnp.float32))  # eagerly, op by op
    eager = (variables["params"], variables.get("batch_stats", {}), setup.tx.init(variables["params"]))
    state = create_train_state(setup, key)
    jitted = (state.params, state.batch_stats, state.opt_state)
    assert jax.tree.structure(jitted) == jax.tree.structure(eager)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(state.step) == 0
