import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.nn import models, ops


def test_conv32_param_count_and_shapes():
    model = models.make("conv32")
    x = jnp.zeros((2, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    # Keras model.summary() of the reference: 320 + 9248 + 9248 + 9248 + 289.
    assert models.param_count(params) == 28_353
    code = model.apply({"params": params}, x, method=model.encode)
    assert code.shape == (2, 7, 7, 32)
    assert model.apply({"params": params}, code, method=model.decode).shape == (2, 28, 28, 1)
    assert model.apply({"params": params}, x).shape == (2, 28, 28, 1)


def test_unknown_layer_spec_is_named():
    model = models.Autoencoder(encoder=("conv 8 relu", "maxout"), decoder=("conv 1",))
    with pytest.raises(ValueError, match="Unknown layer spec 'maxout'"):
        model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_upsample_nearest_repeats_pixels():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    up = ops.upsample_nearest(x)
    assert up.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(up[0, :2, :2, 0], jnp.zeros((2, 2)))
    np.testing.assert_array_equal(up[0, 2:, 2:, 0], jnp.full((2, 2), 3.0))


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="conv32"):
        models.make("resnet9000")


def _init(model, shape):
    x = jax.random.uniform(jax.random.key(1), shape)
    return x, model.init(jax.random.key(0), x)


def test_skip_adds_the_saved_encoder_activation():
    model = models.Autoencoder(encoder=("save x", "conv 4 relu", "conv 1"), decoder=("add x",))
    x, variables = _init(model, (2, 8, 8, 1))
    code, skips = model.apply(variables, x, method=model.encode_with_skips)
    assert set(skips) == {"x"} and np.array_equal(skips["x"], x)
    np.testing.assert_array_equal(model.apply(variables, x), code + x)
    np.testing.assert_array_equal(model.apply(variables, code, skips=skips, method=model.decode), code + x)
    np.testing.assert_array_equal(model.apply(variables, x, method=model.encode), code)


def test_residual_block_inside_the_encoder_needs_no_skips_to_decode():
    model = models.Autoencoder(encoder=("conv 4", "save a", "conv 4 relu", "add a"), decoder=("conv 1",))
    x, variables = _init(model, (2, 8, 8, 1))
    assert model.decoder_skip_names == []
    code = model.apply(variables, x, method=model.encode)
    np.testing.assert_allclose(model.apply(variables, code, method=model.decode), model.apply(variables, x))


def test_untrained_superres_is_the_identity_plus_a_zero_correction():
    model = models.make("superres")
    x, variables = _init(model, (2, 48, 48, 3))
    np.testing.assert_array_equal(model.apply(variables, x), x)  # last conv starts at zero: output = input
    last = f"decoder_layers_{model.decoder.index('conv 3 zero')}_0"
    params = variables["params"]
    kernel = jnp.full_like(params[last]["kernel"], 0.01)
    moved = {"params": {**params, last: {**params[last], "kernel": kernel}}}
    assert not np.allclose(model.apply(moved, x), x)


def test_decode_without_skips_is_refused_with_the_names():
    model = models.make("superres")
    x, variables = _init(model, (1, 48, 48, 3))
    code = model.apply(variables, x, method=model.encode)
    with pytest.raises(ValueError, match=r"adds the encoder activations \['half', 'full', 'input'\]"):
        model.apply(variables, code, method=model.decode)


@pytest.mark.parametrize(
    "encoder,decoder,match",
    [
        (("conv 4",), ("add y",), r"Decoder adds \['y'\], which neither"),
        (("add y", "save y"), ("conv 1",), r"Encoder adds \['y'\] before any 'save'"),
        (("save a", "save a"), ("conv 1",), "'a' is saved twice"),
        (("save",), ("conv 1",), "needs exactly one name"),
        (("save x", "conv 4"), ("add x",), r"saved activation is \(8, 8, 1\) but here x is \(8, 8, 4\)"),
    ],
)
def test_bad_skip_specs_are_named(encoder, decoder, match):
    with pytest.raises(ValueError, match=match):
        models.Autoencoder(encoder=encoder, decoder=decoder).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_linear_family_is_affine_and_named_in_errors():
    model = models.make("linear8")
    x, variables = _init(model, (3, 28, 28, 1))
    zero = model.apply(variables, jnp.zeros((1, 28, 28, 1)))
    # affine: f(a) + f(b) - f(0) == f(a + b)
    np.testing.assert_allclose(
        model.apply(variables, x[:1]) + model.apply(variables, x[1:2]) - zero,
        model.apply(variables, x[:1] + x[1:2]),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match=r"linear\{k\}"):
        models.make("linear0")
