"""The fast formulations of dae_jax.nn.ops, strided and pooling against the textbook JAX/Flax versions,
values and gradients."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dae_jax.nn import models, ops, pooling, strided

TOL = 1e-5


def _reference_conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _assert_same_function(fast, reference, *args):
    """Same values and same gradients (of a random projection of the output) w.r.t. every argument."""
    out = jax.jit(reference)(*args)
    np.testing.assert_allclose(jax.jit(fast)(*args), out, atol=TOL, rtol=TOL)
    weights = jax.random.normal(jax.random.key(99), out.shape)
    argnums = tuple(range(len(args)))
    g_fast = jax.jit(jax.grad(lambda *a: jnp.sum(fast(*a) * weights), argnums))(*args)
    g_ref = jax.jit(jax.grad(lambda *a: jnp.sum(reference(*a) * weights), argnums))(*args)
    for a, b in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(a, b, atol=TOL * max(1.0, float(jnp.abs(b).max())), rtol=TOL)


@pytest.mark.parametrize(
    "shape,kernel,padding,cout",
    [
        ((3, 14, 14, 8), 3, ops.same_padding(3), 6),
        ((2, 9, 7, 4), 2, ((0, 0), (0, 0)), 6),
        ((2, 12, 12, 3), 5, ops.same_padding(5), 6),
        # One input channel, few taps: the shifted image's products, in two pieces, one (odd rows) or pieces of
        # KERNEL_GRAD_ROWS rows; more taps: a convolution.
        ((2, 8, 8, 1), 3, ((1, 1), (1, 1)), 6),
        ((3, 9, 7, 1), 3, ((0, 2), (1, 0)), 16),
        ((2 * ops.KERNEL_GRAD_ROWS, 6, 5, 1), 3, ops.same_padding(3), 16),
        ((2, 8, 8, 1), 5, ops.same_padding(5), 8),
        ((2 * ops.KERNEL_GRAD_ROWS, 6, 5, 3), 3, ops.same_padding(3), 6),  # the kernel gradient in two pieces
        # Few tap products per pixel: shifted products, with any padding (upsample_conv2d's phases' is uneven;
        # the input gradient's, kh - 1 - pt, negative where pt > kh - 1).
        ((3, 10, 9, 16), 3, ops.same_padding(3), 1),
        ((2, 7, 8, 5), 2, ((1, 0), (0, 1)), 2),
        ((2, 9, 9, 4), 3, ((0, 2), (1, 0)), 1),
        ((2, 9, 9, 2), 3, ((3, 0), (-1, 2)), 6),  # dx: 3x3 x 2 products (Cin 2)
    ],
)
def test_conv2d_matches_lax_conv(shape, kernel, padding, cout):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, shape[-1], cout)) * 0.2
    _assert_same_function(lambda x, w: ops.conv2d(x, w, padding), lambda x, w: _reference_conv(x, w, padding), x, w)


@pytest.mark.parametrize("rows,pieces", [(ops.KERNEL_GRAD_ROWS, 0), (3 * ops.KERNEL_GRAD_ROWS, 1)])
def test_kernel_gradient_of_a_large_batch_is_summed_in_pieces(rows, pieces):
    x = jnp.ones((rows, 4, 4, 2))
    jaxpr = jax.make_jaxpr(jax.grad(lambda w: ops.conv2d(x, w, ops.same_padding(3)).sum()))(jnp.ones((3, 3, 2, 4)))
    assert str(jaxpr).count("scan[") == pieces


@pytest.mark.parametrize("kernel_size,cout,convolution", [(3, 2, False), (3, 3, True), (2, 4, False), (5, 1, True)])
def test_few_tap_products_take_no_convolution_forward_or_backward(kernel_size, cout, convolution):
    x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((kernel_size, kernel_size, 16, cout))
    assert (kernel_size**2 * cout > ops.SHIFTED_PRODUCTS_MAX) == convolution
    jaxpr = jax.make_jaxpr(jax.grad(lambda x, w: ops.conv2d(x, w, ops.same_padding(kernel_size)).sum(), (0, 1)))
    assert ("conv_general_dilated" in str(jaxpr(x, w))) == convolution


@pytest.mark.parametrize(
    "rows,cout,maps", [(4, 16, 1), (3 * ops.KERNEL_GRAD_ROWS, 16, 1), (3, 16, 0), (0, 16, 0), (4, 17, 0)]
)
def test_a_one_channel_conv_with_few_taps_is_computed_in_pieces_without_a_convolution(rows, cout, maps):
    x, w = jnp.ones((rows, 6, 6, 1)), jnp.ones((3, 3, 1, cout))
    jaxpr = str(jax.make_jaxpr(lambda x, w: ops.conv2d(x, w, ops.same_padding(3)))(x, w))
    assert ("conv_general_dilated" in jaxpr) == (9 * cout > ops.ONE_CHANNEL_PRODUCTS_MAX)
    assert jaxpr.count("scan[") == maps


@pytest.mark.parametrize("shape", [(2, 7, 7, 8), (3, 14, 10, 4)])
@pytest.mark.parametrize("cout", [5, 4, 1])  # 4 and 1: the four phases as one matrix product
def test_upsample_conv2d_matches_conv_of_upsampled(shape, cout):
    x = jax.random.normal(jax.random.key(2), shape)
    w = jax.random.normal(jax.random.key(3), (3, 3, shape[-1], cout)) * 0.2

    def reference(x, w):
        return _reference_conv(jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2), w, "SAME")

    _assert_same_function(ops.upsample_conv2d, reference, x, w)


@pytest.mark.parametrize("cout,products", [(1, 1), (4, 1), (5, 0)])
def test_an_upsample_conv_to_few_channels_is_one_matrix_product_forward_and_back(cout, products):
    x, w = jnp.ones((2, 7, 7, 8)), jnp.ones((3, 3, 8, cout))
    forward = str(jax.make_jaxpr(ops.upsample_conv2d)(x, w))
    assert forward.count("dot_general[") == products
    assert ("_pixel_products" in forward) == bool(products)  # the product with its own VJP
    grads = jax.make_jaxpr(jax.grad(lambda x, w: ops.upsample_conv2d(x, w).sum(), (0, 1)))(x, w)
    assert str(grads).count("dot_general[") == 3 * products  # the product, then dx and the taps' gradient


def test_pixel_products_keep_bfloat16_arguments_and_sum_in_float32():
    x, w = jnp.ones((2, 7, 7, 8), jnp.bfloat16), jnp.ones((3, 3, 8, 1), jnp.bfloat16)
    assert ops.upsample_conv2d(x, w).dtype == jnp.bfloat16
    dx, dw = jax.grad(lambda x, w: ops.upsample_conv2d(x, w).astype(jnp.float32).sum(), (0, 1))(x, w)
    assert (dx.dtype, dw.dtype) == (jnp.bfloat16, jnp.bfloat16)
    third = jnp.bfloat16(1 / 3)
    z = ops._pixel_products(jnp.full((1, 1, 1, 300), third, jnp.bfloat16), jnp.ones((300, 1), jnp.bfloat16))
    assert z.dtype == jnp.float32  # a bfloat16 sum of 300 thirds would be off by more than 0.1 (spacing 0.5 at 100)
    np.testing.assert_allclose(float(z[0, 0, 0, 0]), 300 * float(third), rtol=1e-5)
    x32, w32 = jax.random.uniform(jax.random.key(0), (2, 7, 7, 8)), jax.random.normal(jax.random.key(1), (3, 3, 8, 1))
    low = ops.upsample_conv2d(x32.astype(jnp.bfloat16), w32.astype(jnp.bfloat16)).astype(jnp.float32)
    np.testing.assert_allclose(low, ops.upsample_conv2d(x32, w32), atol=0.05)


@pytest.mark.parametrize("padding,shape", [("valid", (2, 8, 8, 3)), ("valid", (2, 7, 9, 3)), ("same", (2, 7, 7, 3))])
def test_max_pool_matches_flax_including_ties(padding, shape):
    # Integers in {0, 1, 2}: most windows hold tied maxima, where the gradient must go to the
    # first maximum in the window, as flax's select-and-scatter gradient does.
    x = jax.random.randint(jax.random.key(4), shape, 0, 3).astype(jnp.float32)

    def reference(x):
        return nn.max_pool(x, (2, 2), (2, 2), padding.upper())

    _assert_same_function(lambda x: pooling.max_pool_2x2(x, padding), reference, x)
    # The plain call (four maxima) and the differentiated one (a reduction) give flax's values exactly.
    x = jax.random.normal(jax.random.key(5), shape)
    expected = jax.jit(reference)(x)
    pool = functools.partial(pooling.max_pool_2x2, padding=padding)
    np.testing.assert_array_equal(jax.jit(pool)(x), expected)
    np.testing.assert_array_equal(jax.jit(lambda x: jax.vjp(pool, x)[0])(x), expected)


def test_conv2d_gradient_inside_scan_is_unchanged():
    # The reason for conv2d's VJP is speed inside lax.scan; the values must not change there.
    x = jax.random.normal(jax.random.key(5), (4, 2, 10, 10, 3))
    w = jax.random.normal(jax.random.key(6), (3, 3, 3, 4))

    def summed(conv, w):
        return lax.scan(lambda acc, xb: (acc + jnp.sum(jnp.tanh(conv(xb, w, ops.same_padding(3)))), None), 0.0, x)[0]

    grad = jax.jit(jax.grad(summed, 1), static_argnums=0)
    np.testing.assert_allclose(grad(ops.conv2d, w), grad(_reference_conv, w), rtol=TOL, atol=TOL)


# Each fast layer path (upsample-conv, pool-first, strided and transposed convs, BN, skips) in the default
# run; the remaining presets, made of the same layers, in the full one.
FAST_IN_DEFAULT = ("conv32", "bn_dense576", "superres", "dense32")


@pytest.mark.parametrize(
    "name", [n if n in FAST_IN_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in sorted(models.MODELS)]
)
def test_fast_model_matches_textbook_model(name):
    """Every preset: the fast formulation (default) against fast=False, outputs and parameter gradients."""
    x = jax.random.uniform(jax.random.key(7), (4, 48, 48, 3) if name == "superres" else (4, 28, 28, 1))
    fast, reference = models.make(name), models.make(name, fast=False)
    variables = fast.init(jax.random.key(8), x)
    assert jax.tree.structure(variables) == jax.tree.structure(reference.init(jax.random.key(8), x))
    np.testing.assert_allclose(jax.jit(fast.apply)(variables, x), jax.jit(reference.apply)(variables, x), atol=TOL)

    def loss(model, params):
        return jnp.mean(jnp.square(jax.nn.sigmoid(model.apply({**variables, "params": params}, x)) - x))

    g_fast = jax.jit(jax.grad(lambda p: loss(fast, p)))(variables["params"])
    g_ref = jax.jit(jax.grad(lambda p: loss(reference, p)))(variables["params"])
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, atol=TOL)


@pytest.mark.parametrize(
    "shape,pads",
    [
        ((2, 14, 14, 4), "SAME"),
        ((2, 3, 3, 4), "SAME"),
        ((2, 7, 9, 2), "SAME"),
        ((1, 28, 28, 1), "SAME"),
        ((2, 9, 8, 3), "VALID"),
    ],
)
def test_strided_conv2d_matches_lax_strided_conv(shape, pads):
    x = jax.random.normal(jax.random.key(4), shape)
    w = jax.random.normal(jax.random.key(5), (3, 3, shape[-1], 6)) * 0.2
    padding = tuple(map(tuple, lax.padtype_to_pads(shape[1:3], (3, 3), (2, 2), pads)))

    def reference(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    _assert_same_function(lambda x, w: strided.strided_conv2d(x, w, padding), reference, x, w)


@pytest.mark.parametrize(
    "padding,shape", [("VALID", (2, 3, 3, 8)), ("VALID", (2, 4, 6, 3)), ("SAME", (2, 7, 7, 4)), ("SAME", (2, 5, 8, 3))]
)
def test_transposed_conv2d_matches_flax_conv_transpose(padding, shape):
    x = jax.random.normal(jax.random.key(6), shape)
    layer = nn.ConvTranspose(5, (3, 3), strides=(2, 2), padding=padding, use_bias=False)
    w = layer.init(jax.random.key(7), x)["params"]["kernel"]

    def reference(x, w):
        return layer.apply({"params": {"kernel": w}}, x)

    _assert_same_function(lambda x, w: strided.transposed_conv2d(x, w, padding), reference, x, w)


def test_strided_and_transposed_layers_compute_keras_layers():
    """Conv stride 2 'same' pads as Keras (the odd pixel at the end); the transposed conv is Keras's
    Conv2DTranspose with the kernel flipped in space (kernel layout [k, k, Cout, Cin] there)."""
    keras = pytest.importorskip("keras")
    from dae_jax.nn import layers

    x = jax.random.normal(jax.random.key(8), (2, 14, 14, 3))
    for module, reference, to_keras in [
        (layers.Conv(4, strides=2), keras.layers.Conv2D(4, 3, strides=2, padding="same"), lambda w: w),
        (
            layers.ConvTranspose(4, strides=2),
            keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
            lambda w: np.flip(w, (0, 1)).swapaxes(2, 3),
        ),
    ]:
        params = module.init(jax.random.key(9), x)["params"]
        bias = jax.random.normal(jax.random.key(10), params["bias"].shape)
        reference.build(x.shape)
        reference.set_weights([to_keras(np.asarray(params["kernel"])), np.asarray(bias)])
        ours = module.apply({"params": {**params, "bias": bias}}, x)
        np.testing.assert_allclose(ours, np.asarray(reference(np.asarray(x))), atol=TOL)


@pytest.mark.parametrize("products", [ops._shifted_products, ops._one_channel_products])
def test_a_kernel_larger_than_the_padded_image_is_refused_with_the_sizes(products):
    with pytest.raises(ValueError, match="a 5x5 kernel does not fit a 2x2 image"):
        products(jnp.ones((2, 2, 2, 1)), jnp.ones((5, 5, 1, 2)), ((0, 0), (0, 0)))
