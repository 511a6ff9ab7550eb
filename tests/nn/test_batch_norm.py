"""The fused BatchNorm (dae_jax.nn.batch_norm) against flax.linen.BatchNorm: values, gradients, statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from dae_jax import sharding
from dae_jax.nn import batch_norm
from tests.training.test_steps import _batches, _run

TOL = 1e-5


def _inputs(shape, dtype=jnp.float32):
    """Off-centre inputs (mean 3, std 2): E[x²] − E[x]² loses digits here if done carelessly."""
    return (3.0 + 2.0 * jax.random.normal(jax.random.key(1), shape)).astype(dtype)


def _train_apply(fast, axis_name=None, pool=None):
    """(variables, x) -> (y, new batch_stats) of a BatchNorm layer [and max pooling] in training mode."""
    layer = batch_norm.BatchNorm(axis_name, fast=fast, pool=pool)

    def apply(variables, x):
        y, updates = layer.apply(variables, x, True, mutable=["batch_stats"])
        return y, updates["batch_stats"]

    return layer, apply


def _trained_variables(layer, x):
    """Initial variables with scale and bias moved off 1 and 0, so their gradients' paths are exercised; every
    other channel's scale negative (a pooling after it then takes each window's minimum)."""
    variables = layer.init(jax.random.key(0), x, False)
    params = jax.tree.map(lambda p: p + jax.random.uniform(jax.random.key(2), p.shape), variables["params"])
    bn = params["BatchNorm_0"]
    signs = jnp.where(jnp.arange(bn["scale"].size) % 2 == 1, -1.0, 1.0)
    return {**variables, "params": {"BatchNorm_0": {**bn, "scale": bn["scale"] * signs}}}


def _grads(apply, variables, x, weights):
    """Gradients w.r.t. x and the params of a random projection of the output."""

    def loss(params, x):
        y, _ = apply({**variables, "params": params}, x)
        return jnp.sum(y * weights)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], x)


def _assert_close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, atol=TOL * max(1.0, float(jnp.abs(v).max())), rtol=TOL)


@pytest.mark.parametrize(
    "shape,pool",
    [
        ((8, 28, 28, 16), None),
        ((16, 576), None),
        ((5, 3, 3, 2), None),
        ((8, 28, 28, 16), "valid"),
        ((5, 7, 7, 6), "valid"),  # an odd side: the last row and column are dropped, but counted in the statistics
        ((3, 7, 6, 6), "same"),
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_fused_batch_norm_matches_flax(shape, pool, relu):
    """With relu'd inputs, half are 0: most pooling windows hold tied extremes, in both directions."""
    x = _inputs(shape)
    x = jnp.maximum(x - 3.0, 0.0) if relu else x
    layer, fast = _train_apply(True, pool=pool)
    _, textbook = _train_apply(False, pool=pool)
    variables = _trained_variables(layer, x)
    assert jax.tree.structure(variables) == jax.tree.structure(
        batch_norm.BatchNorm(fast=False).init(jax.random.key(0), x, False)
    )
    out = jax.jit(fast)(variables, x)  # y and the running statistics
    _assert_close(out, jax.jit(textbook)(variables, x))
    weights = jax.random.normal(jax.random.key(99), out[0].shape)
    _assert_close(_grads(fast, variables, x, weights), _grads(textbook, variables, x, weights))
    inference = layer.apply(variables, x, False)
    _assert_close(inference, batch_norm.BatchNorm(fast=False, pool=pool).apply(variables, x, False))


@pytest.mark.parametrize("pool", [None, "valid"])
def test_statistics_are_differentiable_like_their_formulas(pool):
    """The (mean, var) outputs' own gradients: those of jnp.mean and the biased jnp.var (of all of x)."""
    x, a, b = _inputs((6, 5, 5, 3)), jnp.arange(3.0), jnp.array([0.5, -1.0, 2.0])
    scale, bias = jnp.ones(3), jnp.zeros(3)

    def fused(x):
        if pool is None:
            _, mean, var = batch_norm.normalize(x, scale, bias, batch_norm.EPSILON, None)
        else:
            _, mean, var = batch_norm.normalize_max_pool(x, scale, bias, batch_norm.EPSILON, None, pool)
        return jnp.sum(mean * a + var * b)

    def formulas(x):
        return jnp.sum(jnp.mean(x, (0, 1, 2)) * a + jnp.var(x, (0, 1, 2)) * b)

    _assert_close(jax.grad(fused)(x), jax.grad(formulas)(x))


@pytest.mark.parametrize("pool", [None, "valid"])
def test_global_batch_statistics_over_eight_devices_match_flax(pool):
    """Under shard_map (pmap's semantics, as the train step runs), each device normalizes with the global
    batch's statistics; the input gradients include every device's loss, as flax's do."""
    assert jax.device_count() == 8
    mesh = sharding.make_mesh()
    x = _inputs((32, 7, 7, 4))
    weights = jax.random.normal(jax.random.key(5), (32, 7, 7, 4) if pool is None else (32, 3, 3, 4))
    layer, _ = _train_apply(True, "data", pool)
    variables = _trained_variables(layer, x)

    def run(fast):
        _, apply = _train_apply(fast, "data", pool)

        def per_device(variables, x, weights):
            (dparams, dx), (y, stats) = _grads(apply, variables, x, weights), apply(variables, x)
            return y, stats, jax.lax.pmean(dparams, "data"), dx

        spec = (P(), P("data"), P("data"))
        out_specs = (P("data"), P(), P(), P("data"))
        mapped = jax.shard_map(per_device, mesh=mesh, in_specs=spec, out_specs=out_specs, check_vma=False)
        return jax.jit(mapped)(variables, x, weights)

    _assert_close(run(True), run(False))
    _, whole = _train_apply(True, pool=pool)
    _assert_close(run(True)[:2], jax.jit(whole)(variables, x))  # the global batch's statistics, as on one device


@pytest.mark.parametrize("pool", [None, "valid"])
def test_bfloat16_inputs_keep_float32_statistics(pool):
    x = _inputs((8, 5, 5, 3), jnp.bfloat16)
    layer, fast = _train_apply(True, pool=pool)
    _, textbook = _train_apply(False, pool=pool)
    variables = _trained_variables(layer, x)
    (y, stats), (y_ref, stats_ref) = fast(variables, x), textbook(variables, x)
    assert y.dtype == y_ref.dtype and {s.dtype for s in jax.tree.leaves(stats)} == {jnp.dtype(jnp.float32)}
    _assert_close(stats, stats_ref)
    dx = _grads(fast, variables, x, jnp.ones(y.shape))[1]
    assert dx.dtype == jnp.bfloat16
    half = jax.tree.map(lambda p: p.astype(jnp.bfloat16), variables)
    assert layer.apply(half, x, False).dtype == batch_norm.BatchNorm(fast=False, pool=pool).apply(half, x, False).dtype


def test_bn_dense576_trains_the_same_fused_or_textbook(mnist_sample):
    """Three steps of the BatchNorm preset on eight devices: the same losses, params and statistics."""
    batches = _batches(mnist_sample, 3, 32)
    fused, losses = _run(sharding.make_mesh(), batches, "bn_dense576")
    textbook, reference = _run(sharding.make_mesh(), batches, "bn_dense576", **{"model.fast": False})
    np.testing.assert_allclose(losses, reference, rtol=TOL)
    _assert_close(fused.variables(), textbook.variables())


def test_init_in_training_mode_needs_no_mesh():
    """Initialising with train=True outside shard_map uses this batch's statistics, as flax's layer does."""
    x = _inputs((4, 5, 5, 3))
    fused = batch_norm.BatchNorm("data").init_with_output(jax.random.key(0), x, True)
    textbook = batch_norm.BatchNorm("data", fast=False).init_with_output(jax.random.key(0), x, True)
    _assert_close(fused, textbook)
