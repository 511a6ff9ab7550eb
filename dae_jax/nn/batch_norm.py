"""BatchNorm with Keras' defaults, and its training-mode maths in one fused pass each way.

``BatchNorm`` is the layer of the "bn" spec. Its variables are those of ``flax.linen.BatchNorm``
(params ``scale``, ``bias``; batch_stats ``mean``, ``var``; in a child named ``BatchNorm_0``), so the
fast and textbook models have the same trees. With ``fast=False`` it *is* ``flax.linen.BatchNorm``,
the reference ``tests/nn/test_batch_norm.py`` compares against (values and gradients to 1e-5).

``normalize`` is the fast training-mode form. Flax already takes the mean and the mean of squares in
one pass; what it leaves to autodiff is the backward pass, which XLA computes as separate
reductions through the mean and the variance. ``normalize``'s VJP is the closed form
(N the global batch, x̂ the normalized input, g the output's cotangent):

    dbias = Σ g,  dscale = Σ g·x̂,  dx = scale / (N σ) · (N g − Σ g − x̂ Σ g·x̂)

Both sums come from one pass over g and x (Σ g·x̂ = (Σ g·x − mean Σ g) / σ, the same cancellation as
flax's E[x²] − E[x]²), all of them cross the devices in one collective, and dx is one multiply-add
chain per element, g k + x a + b with k, a, b per channel.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dae_jax.nn import pooling

MOMENTUM, EPSILON = 0.99, 1e-3  # Keras' BatchNormalization defaults


def _sums(a: jax.Array, b: jax.Array) -> jax.Array:
    """[2, C]: the sums of a and b over every axis but the last (channels). Two sibling reductions of the
    same shape, which XLA fuses into one pass (stacking a and b first would write a copy of both)."""
    axes = tuple(range(a.ndim - 1))
    return jnp.stack([a.sum(axes), b.sum(axes)])


def _global(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else lax.psum(x, axis_name)


def _per_channel(v: jax.Array, ndim: int) -> jax.Array:
    """[C] -> [1, ..., 1, C], broadcastable against an ndim-axis activation (explicitly: rank promotion is strict)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _count(x: jax.Array, axis_name: str | None) -> int | jax.Array:
    n = x.size // x.shape[-1]
    return n if axis_name is None else lax.psum(n, axis_name)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def normalize(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float, axis_name: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode BatchNorm of x [..., C] with this batch's statistics -> (y, mean [C], var [C]).

    The statistics are over every axis but the last, and over ``axis_name``'s devices too when given (the
    global batch); var is the biased variance, E[x²] − E[x]², as flax's. They are computed in float32.
    """
    return _forward(x, scale, bias, epsilon, axis_name)[0]


def _statistics(x32, scale, bias, epsilon, axis_name):
    """(mean, var, inv, k, shift) [C] each, of this batch: y = x k + shift with k = scale / σ, inv = 1 / σ."""
    mean, mean_sq = _global(_sums(x32, jnp.square(x32)), axis_name) / _count(x32, axis_name)
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
    inv = lax.rsqrt(var + epsilon)
    k = inv * scale  # y = (x - mean) k + bias = x k + (bias - mean k): one multiply-add per element
    return mean, var, inv, k, bias - mean * k


def _forward(x, scale, bias, epsilon, axis_name):
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean, var, inv, k, shift = _statistics(x32, scale, bias, epsilon, axis_name)
    y = x32 * _per_channel(k, x.ndim) + _per_channel(shift, x.ndim)
    return (y.astype(jnp.result_type(x, scale)), mean, var), (x, scale, mean, inv)


def _coefficients(local, g_stats, scale, mean, inv, n, axis_name):
    """The backward pass's per-channel numbers from this device's [Σ g, Σ g·x] (local, [2, C]) and the statistics'
    cotangents (g_stats: [g_mean, g_var]) -> (k, a, b, dscale, dbias): dx = g k + x a + b."""
    local_g, local_gx = local
    local = jnp.stack([local_g, inv * (local_gx - mean * local_g)])  # [Σ g, Σ g·x̂]: bias' and scale's gradients
    # One collective: the sums over the global batch, and the statistics' cotangents from every device.
    sum_g, sum_gx, sum_g_mean, sum_g_var = _global(jnp.concatenate([local, g_stats]), axis_name)
    # dx = k (g − Σg/n − x̂ Σg·x̂/n) + (Σ g_mean + 2 Σ g_var (x − mean)) / n with k = scale / σ, x̂ = (x − mean) / σ:
    # per element, g k + x a + b with a, b per channel.
    k = scale * inv
    a = (2.0 * sum_g_var - k * inv * sum_gx) / n
    b = (sum_g_mean - k * sum_g) / n - a * mean
    return k, a, b, local[1].astype(scale.dtype), local[0].astype(scale.dtype)


def _backward(epsilon, axis_name, residuals, cotangents):
    x, scale, mean, inv = residuals
    g, g_mean, g_var = (c.astype(jnp.float32) for c in cotangents)  # g_mean, g_var: zero where unused
    x32 = x.astype(jnp.float32)
    n = _count(x, axis_name)
    k, a, b, dscale, dbias = _coefficients(
        _sums(g, g * x32), jnp.stack([g_mean, g_var]), scale, mean, inv, n, axis_name
    )
    c = functools.partial(_per_channel, ndim=x.ndim)
    dx = g * c(k) + x32 * c(a) + c(b)
    return dx.astype(x.dtype), dscale, dbias


normalize.defvjp(_forward, _backward)


def _signs(k: jax.Array) -> jax.Array:
    """+1 where a channel's normalization keeps the order of its values (k >= 0), -1 where it reverses it."""
    return jnp.where(k >= 0, 1.0, -1.0).astype(k.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def normalize_max_pool(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float, axis_name: str | None, padding: str
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``normalize`` then ``pooling.max_pool_2x2(·, padding)`` -> (y [N, H', W', C], mean [C], var [C]), with
    the statistics of all of x [N, H, W, C] and the normalization done on the 4x smaller pooled tensor.

    Per channel, BatchNorm is y = x k + shift, monotone in x: increasing where k >= 0, decreasing where k < 0.
    So the maximum of a window's normalized values is the normalized maximum of x k's sign times x, and its
    gradient goes to that pixel (the first in the window where several are equal, as the pooling's). The
    values are the same, bit for bit: x k = (±x) |k| exactly, and rounding keeps the order. One difference:
    where the normalization itself makes distinct values equal (k = 0, or rounding), the gradient goes to the
    largest ±x, not to the first of the equal outputs as the unfused layers' does; both are gradients of the
    same function there.
    """
    return _pooled_forward(x, scale, bias, epsilon, axis_name, padding)[0]


def _pooled_forward(x, scale, bias, epsilon, axis_name, padding):
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean, var, inv, k, shift = _statistics(x32, scale, bias, epsilon, axis_name)
    c = functools.partial(_per_channel, ndim=x.ndim)
    top = pooling.max_pool_2x2(x32 * c(_signs(k)), padding)  # [N, H', W', C]: the largest of ±x per window
    y = top * c(jnp.abs(k)) + c(shift)
    return (y.astype(jnp.result_type(x, scale)), mean, var), (x, scale, mean, inv, top)


def _pooled_backward(epsilon, axis_name, padding, residuals, cotangents):
    x, scale, mean, inv, top = residuals
    g, g_mean, g_var = (c.astype(jnp.float32) for c in cotangents)
    c = functools.partial(_per_channel, ndim=x.ndim)
    sign, x32 = c(_signs(scale * inv)), x.astype(top.dtype)  # as the forward pass pooled it
    # Σ over x's pixels of the unpooled gradient and of it times x: only the pooled pixels (x = ±top) count.
    local = _sums(g, g * top * sign)
    k, a, b, dscale, dbias = _coefficients(
        local, jnp.stack([g_mean, g_var]), scale, mean, inv, _count(x, axis_name), axis_name
    )
    g_full = pooling.first_max_gradient(x32 * sign, top, g, padding, by_place=True)  # [N, H, W, C]
    dx = g_full * c(k) + x32 * c(a) + c(b)
    return dx.astype(x.dtype), dscale, dbias


normalize_max_pool.defvjp(_pooled_forward, _pooled_backward)


class _FusedBatchNorm(nn.Module):
    """``flax.linen.BatchNorm``'s variables and maths (biased batch variance, running averages with
    ``momentum``), training through ``normalize`` (``normalize_max_pool`` with ``pool``)."""

    axis_name: str | None = None
    pool: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = (x.shape[-1],)
        scale = self.param("scale", nn.initializers.ones, channels)
        bias = self.param("bias", nn.initializers.zeros, channels)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, channels, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, channels, jnp.float32)
        if not train:
            return self._infer(x, scale, bias, ra_mean.value, ra_var.value)
        axis_name = None if self.is_initializing() else self.axis_name  # init may run outside the mesh
        if self.pool is None:
            y, mean, var = normalize(x, scale, bias, EPSILON, axis_name)
        else:
            y, mean, var = normalize_max_pool(x, scale, bias, EPSILON, axis_name, self.pool)
        if not self.is_initializing():  # init takes this batch's statistics, as flax's, and keeps the defaults
            ra_mean.value = MOMENTUM * ra_mean.value + (1 - MOMENTUM) * mean
            ra_var.value = MOMENTUM * ra_var.value + (1 - MOMENTUM) * var
        return y

    def _infer(self, x, scale, bias, mean, var):
        """(x - mean) k + bias with the running statistics [-> pooled: the same of the window's largest ±x]."""
        c = functools.partial(_per_channel, ndim=x.ndim)
        k, dtype = lax.rsqrt(var + EPSILON) * scale, jnp.result_type(x, scale)
        if self.pool is not None:
            sign = c(_signs(k)).astype(x.dtype)
            x = sign * pooling.max_pool_2x2(x * sign, self.pool)
        return ((x - c(mean)) * c(k) + c(bias)).astype(dtype)


class BatchNorm(nn.Module):
    """BatchNorm with Keras' defaults (momentum 0.99, epsilon 1e-3); ``axis_name``: the mesh axis whose
    devices share the batch statistics while training (None: this device's rows only); ``pool``: a 2x2 max
    pooling after it, "valid" or "same" (``pooling.max_pool_2x2``), fused with it. ``fast=False``:
    ``flax.linen.BatchNorm`` itself [then ``flax.linen.max_pool``]."""

    axis_name: str | None = None
    fast: bool = True
    pool: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.fast:
            return _FusedBatchNorm(self.axis_name, self.pool, name="BatchNorm_0")(x, train)
        y = nn.BatchNorm(
            momentum=MOMENTUM, epsilon=EPSILON, axis_name=self.axis_name if train else None, name="BatchNorm_0"
        )(x, use_running_average=not train)
        return y if self.pool is None else nn.max_pool(y, (2, 2), (2, 2), self.pool.upper())
