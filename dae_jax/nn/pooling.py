"""2x2 max pooling with stride 2, exact and fast on XLA:CPU.

``max_pool_2x2`` computes ``flax.linen.max_pool`` and routes the gradient to the first maximum of each window
(as XLA's select-and-scatter and TensorFlow do) with elementwise selects, instead of autodiff's tie-counting rule
for ``max`` or XLA's slow select-and-scatter; without a gradient it takes the maximum of four strided views,
faster than XLA's reduction over the window in inference. ``tests/nn/test_ops.py`` checks values and gradients
against flax, ties included.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _pool_windows(x: jax.Array, padding: str) -> jax.Array:
    """[N, H, W, C] -> [N, H', 2, W', 2, C]: 'valid' drops an odd last row/column, 'same' pads it with -inf."""
    _, h, w, _ = x.shape
    if padding == "same":
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
    else:
        x = x[:, : h - h % 2, : w - w % 2]
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_2x2(x: jax.Array, padding: str = "valid") -> jax.Array:
    """2x2 max pooling, stride 2: ``flax.linen.max_pool(x, (2, 2), (2, 2), padding.upper())``.

    [N, H, W, C] -> [N, H/2, W/2, C] (floor for 'valid', ceil for 'same', as Keras pads).

    Computed as the maximum of each window's four pixels, four strided views of x, where a gradient is not
    taken (inference, validation); under differentiation ``_max_pool_fwd`` reduces over the window axes. The
    values are the same (a maximum is exact). Measured side by side on 2 cores (Zen 4), ``Denoiser.denoise``
    at batch 128: unet32 and unet32_residual 1.22-1.29x the images/s, bn_dense576 1.18-1.27x, conv32 and
    conv32_16 within noise; conv32's train step ran about 7% slower with the four maxima as its forward.
    """
    w = _pool_windows(x, padding)  # [N, H', 2, W', 2, C]
    return jnp.maximum(jnp.maximum(w[:, :, 0, :, 0], w[:, :, 0, :, 1]), jnp.maximum(w[:, :, 1, :, 0], w[:, :, 1, :, 1]))


def _max_pool_fwd(x, padding):
    pooled = _pool_windows(x, padding).max(axis=(2, 4))
    return pooled, (x, pooled)


def _max_pool_bwd(padding, residuals, g):
    return (first_max_gradient(*residuals, g, padding),)


def _first_by_masks(windows: jax.Array, pooled: jax.Array) -> jax.Array:
    """[N, H', 2, W', 2, C] bool: each window's first maximum, from each pixel's hit and those before it."""
    hit = windows == pooled[:, :, None, :, None, :]
    h00, h01 = hit[:, :, :1, :, :1], hit[:, :, :1, :, 1:]
    h10, h11 = hit[:, :, 1:, :, :1], hit[:, :, 1:, :, 1:]
    return jnp.concatenate(
        [
            jnp.concatenate([h00, h01 & ~h00], axis=4),
            jnp.concatenate([h10 & ~(h00 | h01), h11 & ~(h00 | h01 | h10)], axis=4),
        ],
        axis=2,
    )


def _first_by_place(windows: jax.Array, pooled: jax.Array) -> jax.Array:
    """``_first_by_masks``: the first maximum's place in its window (0-3) found on the pooled grid, then each
    pixel's own place compared with it."""
    views = [windows[:, :, a, :, b] for a in (0, 1) for b in (0, 1)]  # row-major window order
    place = jnp.where(views[0] == pooled, 0, jnp.where(views[1] == pooled, 1, jnp.where(views[2] == pooled, 2, 3)))
    return place[:, :, None, :, None, :] == jnp.arange(4).reshape(1, 1, 2, 1, 2, 1)


def first_max_gradient(
    x: jax.Array, pooled: jax.Array, g: jax.Array, padding: str, by_place: bool = False
) -> jax.Array:
    """The gradient of ``max_pool_2x2(x, padding)`` (= pooled) given the pooled gradient g [N, H', W', C]: g at
    the first maximum of each window in row-major order, zero elsewhere and in a dropped row/column -> x's shape.

    Two exact ways to find the first maximum, which XLA fuses differently into the pass that uses the gradient:
    masks (the default) in a conv's pooling, by place after a BatchNorm (``batch_norm.normalize_max_pool``). In a
    probe's resident step (2-core Zen 5, 2 rounds each) by place ran conv32_16 at 0.9x the images/s at batch 128
    and bn_dense576 at 1.14x / 1.07x at batch 128 / 512; the benchmark's own runner and ``dae-jax train`` showed
    bn_dense576 no faster or slower with the whole change (results/benchmarks/README.md).
    """
    windows = _pool_windows(x, padding)  # [N, H', 2, W', 2, C]
    first = (_first_by_place if by_place else _first_by_masks)(windows, pooled)
    grad = jnp.where(first, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
    n, hp, _, wp, _, c = grad.shape
    grad = grad.reshape(n, 2 * hp, 2 * wp, c)
    _, h, w, _ = x.shape
    if padding == "same":
        return grad[:, :h, :w]
    return jnp.pad(grad, ((0, 0), (0, h - 2 * hp), (0, w - 2 * wp), (0, 0)))


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)
