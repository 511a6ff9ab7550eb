import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.nn import layers, models, ops


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


def test_a_conv_option_given_twice_is_refused():
    model = models.Autoencoder(encoder=("conv 8 k3 k5",), decoder=("conv 1",))
    with pytest.raises(ValueError, match="Layer spec 'conv 8 k3 k5': an option given twice"):
        model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


@pytest.mark.parametrize("spec", ["conv 8 relu s3", "tconv 8 k5 same", "conv 8 k0"])
def test_unknown_conv_options_are_named_not_ignored(spec):
    """A stride or padding the specs do not know is refused, not trained as stride 1 or 'same'."""
    model = models.Autoencoder(encoder=(spec,), decoder=("conv 1",))
    with pytest.raises(ValueError, match=f"Layer spec '{spec}': unknown option '{spec.split()[-1]}'"):
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


@pytest.mark.parametrize(
    "name,shape",
    [("superres", (2, 48, 48, 3)), ("unet32_residual", (2, 28, 28, 1)), ("unet_deep_residual", (2, 28, 28, 1))],
)
def test_untrained_residual_presets_are_the_identity_plus_a_zero_correction(name, shape):
    model = models.make(name)
    x, variables = _init(model, shape)
    np.testing.assert_array_equal(model.apply(variables, x), x)  # last conv starts at zero: output = input
    params = variables["params"]
    (last,) = [key for key, layer in params.items() if "kernel" in layer and not layer["kernel"].any()]
    assert last == f"decoder_layers_{len(layers.plan(model.decoder)) - 2}_0"  # the conv before "add input"
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


@pytest.mark.parametrize("preset", ["conv32", "bn_dense576", "dense32"])
def test_glorot_kernels_have_keras_moments(preset):
    """kernel_init "glorot_uniform": every kernel uniform in +-sqrt(6 / (fan_in + fan_out)) with variance
    2 / (fan_in + fan_out), fan = receptive field x channels (Keras's); biases zero. lecun_normal: 1 / fan_in."""
    for init, variance in (("glorot_uniform", lambda fi, fo: 2 / (fi + fo)), ("lecun_normal", lambda fi, fo: 1 / fi)):
        params = _init(models.make(preset, kernel_init=init), (1, 28, 28, 1))[1]
        layers = jax.tree_util.tree_flatten_with_path(params)[0]
        kernels = [np.asarray(v) for path, v in layers if "kernel" in jax.tree_util.keystr(path)]
        biases = [np.asarray(v) for path, v in layers if "bias" in jax.tree_util.keystr(path)]
        assert kernels and all(not b.any() for b in biases)
        for w in kernels:
            receptive = int(np.prod(w.shape[:-2]))
            fan_in, fan_out = receptive * w.shape[-2], receptive * w.shape[-1]
            expected = variance(fan_in, fan_out)
            assert abs(w.var() / expected - 1) < 0.1 + 3 / np.sqrt(w.size), (init, w.shape)
            if init == "glorot_uniform":
                assert np.abs(w).max() <= np.sqrt(3 * expected)
                assert np.abs(w).max() > 0.95 * np.sqrt(3 * expected)  # uniform: it reaches the bound


def test_glorot_kernels_match_the_keras_layers_moments():
    """The same preset built by Keras 3 (its default initialisers): per-layer kernel std within sampling error."""
    keras_models = pytest.importorskip("dae_jax.studies.peers.keras_models")
    from dae_jax.studies.peers import specs

    recipe = specs.recipe("conv32")
    keras_stds = [float(np.std(w)) for w in keras_models.build(recipe).weights if "kernel" in w.path]
    params = _init(models.make("conv32", kernel_init="glorot_uniform"), (1, 28, 28, 1))[1]
    ours = [float(np.std(v)) for p, v in jax.tree_util.tree_flatten_with_path(params)[0] if "kernel" in str(p)]
    assert len(ours) == len(keras_stds) == 5  # Flax orders its layers by name: compare the sorted stds
    np.testing.assert_allclose(sorted(ours), sorted(keras_stds), rtol=0.12)


def test_unknown_kernel_init_lists_choices():
    with pytest.raises(ValueError, match="kernel_init 'he'.*glorot_uniform"):
        _init(models.make("conv32", kernel_init="he"), (1, 28, 28, 1))


def test_bn_then_pool_is_one_step_that_keeps_the_later_layers_names():
    """A "bn" + "pool" pair is one BatchNorm step and a "pooled" placeholder: the layers after it keep the
    indices, so the parameter names, they had before the two were fused (checkpoints stay loadable)."""
    steps = layers.plan(("bn", "pool", "pool", "bn", "pool same", "conv 4"))
    assert [s["op"] for s in steps] == ["bn", "pooled", "pool", "bn", "pooled", "conv"]
    assert [s.get("pool") for s in steps if s["op"] == "bn"] == ["valid", "same"]
    model = models.make("bn_dense576")
    variables = model.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
    assert sorted(variables["params"]) == [
        *(f"decoder_layers_{i}_0" for i in (1, 2, 3)),
        *(f"encoder_layers_{i}_0" for i in (0, 1, 3, 4, 6, 7, 9)),
    ]
    assert sorted(variables["batch_stats"]) == [f"encoder_layers_{i}_0" for i in (1, 4, 7)]
