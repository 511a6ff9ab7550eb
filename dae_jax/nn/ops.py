"""Fast, exact formulations of the layers' convolutions and nearest upsampling (max pooling: ``pooling``).

Each function computes the same values (to float rounding, ~1e-6) and the same gradients as the straightforward
JAX/Flax version named in its docstring; ``tests/nn/test_ops.py`` checks both to 1e-5. They exist because,
measured on XLA CPU (results/benchmarks/):

- ``conv2d`` writes its backward passes as *forward* convolutions. XLA CPU sends forward convolutions to its fast
  library path everywhere, but leaves autodiff's backward convolutions on a slow generic loop inside ``lax.scan``
  bodies; with this VJP the micro-batched train step (``dae_jax.training.steps.make_train_step``) runs at full
  speed. On CPU its kernel gradient, which contracts over the batch and runs slower per row as the batch grows, is
  summed over pieces of ``KERNEL_GRAD_ROWS`` rows (a step without micro-batches: BatchNorm). A conv with few
  tap products per pixel (kh * kw * Cout <= ``SHIFTED_PRODUCTS_MAX``: a decoder's last) skips this VJP: it is
  one matrix product of the pixels with every tap's kernel (``_pixel_products``, with its own VJP), the
  products shifted into place and summed (differentiated by autodiff); 1.3-3x faster than XLA:CPU's narrow
  convolutions. A one-channel image's conv with few taps (kh * kw * Cout <= ``ONE_CHANNEL_PRODUCTS_MAX``:
  bn_dense576's first) is a sum of shifted products.
- ``upsample_conv2d`` replaces conv(upsample(x)) by four 2x2 convolutions of the small image, one per output
  phase: 16/36 of the multiply-adds, and the 4x larger upsampled tensor is never built. Where the phases have
  few tap products (a decoder's last layer, to an image), all four are one matrix product.
- The shifted products' matrix product has its own VJP, which contracts the pixels without first copying the
  output's gradient transposed: conv32's and conv32_16's train steps 1.09-1.30x as fast, unet32's and
  bn_dense576's 1.12-1.25x (2-core Intel Xeon; results/benchmarks/README.md).

Stride-2 convolutions and transposed convolutions: ``dae_jax.nn.strided``.

Images are NHWC, kernels HWIO.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
_DIMS = ("NHWC", "HWIO", "NHWC")


def same_padding(kernel_size: int) -> Padding:
    """Explicit 'SAME' padding of a stride-1 convolution with an odd square kernel."""
    p = kernel_size // 2
    return ((p, kernel_size - 1 - p), (p, kernel_size - 1 - p))


def _output_size(x: jax.Array, kernel: jax.Array, padding: Padding) -> tuple[int, int]:
    """(H', W') of a stride-1 convolution of x [N, H, W, Cin] with kernel [kh, kw, ...] and padding; a
    ValueError where the kernel does not fit the padded image."""
    (kh, kw), (h, w), ((pt, pb), (pl, pr)) = kernel.shape[:2], x.shape[1:3], padding
    out_h, out_w = h + pt + pb - kh + 1, w + pl + pr - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{w} image padded by {padding}.")
    return out_h, out_w


# On CPU a one-channel image's convolution with at most this many tap products per output pixel (kh * kw * Cout:
# bn_dense576's first layer, 3x3 1 -> 16) is a sum of the shifted image's products with each tap's kernel row,
# elementwise (``_one_channel_products``). Alone on one core (Zen 5), 3x3 1 -> 16 with bias and relu at 16 / 64 /
# 256 rows took 0.04 / 0.14 / 0.55 ms against the convolution's 0.12 / 0.45 / 4.7-18.7 ms; 3x3 1 -> 32 ran
# 2.1-2.7x as fast alone but no faster in conv32's and conv32_16's train steps, and 3x3 1 -> 64 0.9-1.05x. A
# wider one-channel conv is XLA's convolution, on its generic path below 32 output channels (2.8-3x slower alone
# than 32; no preset has one).
ONE_CHANNEL_PRODUCTS_MAX = 144


def _one_channel_products(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, (1, 1), padding)`` for x [N, H, W, 1]: the sum over taps (u, v) of
    xpad[:, u : u + H', v : v + W'] (one channel, broadcast) times kernel[u, v] (a row of Cout).

    Computed in pieces of rows under ``lax.map`` (two pieces, or pieces of ``KERNEL_GRAD_ROWS`` rows when N is a
    larger multiple of it): as one elementwise expression XLA fused the sum, and the noise drawn before it, into
    each of its consumers in a train step (BatchNorm's statistics, the pooling, the backward pass), computing
    it three times; a loop's output is written once. An odd or empty N is one piece. Sums in float32 at least.
    """
    kh, kw, _, _ = kernel.shape
    (pt, pb), (pl, pr) = padding
    out_h, out_w = _output_size(x, kernel, padding)
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
    wide = kernel.astype(jnp.promote_types(kernel.dtype, jnp.float32))

    def piece(x):
        taps = [(u, v) for u in range(kh) for v in range(kw)]
        return sum(x[:, u : u + out_h, v : v + out_w] * wide[u : u + 1, v : v + 1] for u, v in taps).astype(x.dtype)

    n = x.shape[0]
    if n % 2 or n == 0:
        return piece(x)
    rows = KERNEL_GRAD_ROWS if n > KERNEL_GRAD_ROWS and n % KERNEL_GRAD_ROWS == 0 else n // 2
    return lax.map(piece, x.reshape(n // rows, rows, *x.shape[1:])).reshape(n, out_h, out_w, kernel.shape[-1])


# On CPU a convolution with at most this many tap products per output pixel (kh * kw * Cout: a decoder's last
# conv, which makes the image, and bn_dense576's last transposed conv in sub-pixel form) is one matrix product of
# the pixels with every tap's kernel and a sum of the tap products shifted into place (``_shifted_products``).
# XLA:CPU runs such narrow convolutions far below its rate. Alone on one core (Zen 5), 64 rows, forward /
# forward and backward, ms, as a convolution (this module's VJP) against as shifted products: 3x3 32 -> 1 at
# 28x28 1.01 / 4.45 against 0.46 / 2.01; 2x2 16 -> 4 at 15x15 0.39 / 0.50 against 0.12 / 0.25; 3x3 32 -> 2
# forward 0.98 against 0.73; but 3x3 32 -> 3 (27 products) forward 1.0 against 2.5 (inference slower).
SHIFTED_PRODUCTS_MAX = 18


def _shifted_products(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, (1, 1), padding)`` as z = x @ kernel (each pixel's product with all
    kh * kw taps' kernels: [N, H, W, kh * kw, Cout]), padded, and out[i, j] = sum over taps (u, v) of
    zpad[i + u, j + v, tap (u, v)]."""
    kh, kw, _, cout = kernel.shape
    out_hw = _output_size(x, kernel, padding)
    z = _pixel_products(x, _tap_matrix(kernel)).reshape(*x.shape[:3], kh * kw, cout)
    return _shifted_sum(z, (kh, kw), padding, out_hw).astype(x.dtype)


def _tap_matrix(kernel: jax.Array) -> jax.Array:
    """[kh, kw, Cin, Cout] -> [Cin, kh * kw * Cout]: every tap's kernel side by side, tap (u, v) at u * kw + v."""
    kh, kw, cin, cout = kernel.shape
    return kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)


def _shifted_sum(z: jax.Array, taps: tuple[int, int], padding: Padding, out_hw: tuple[int, int]) -> jax.Array:
    """out[n, i, j] = sum over taps (u, v) of zpad[n, i + u, j + v, u * kw + v] for z [N, H, W, kh * kw, Cout]."""
    (kh, kw), (out_h, out_w), ((pt, pb), (pl, pr)) = taps, out_hw, padding
    z = lax.pad(z, jnp.zeros((), z.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0), (0, 0, 0)))
    return sum(z[:, u : u + out_h, v : v + out_w, u * kw + v] for u in range(kh) for v in range(kw))


@jax.custom_vjp
def _pixel_products(x: jax.Array, taps: jax.Array) -> jax.Array:
    """x [N, H, W, Cin] @ taps [Cin, K], summed in float32 at least.

    Its VJP contracts the pixels of x and dz as they lie, both [pixels, channels]. Autodiff's own VJP copies dz
    transposed to [K, pixels] first: conv32's last layer (four phases, 16 rows of 14x14x32) took 950 us forward
    and backward that way against 380 us (one core, Intel Xeon).
    """
    return jnp.matmul(x, taps, preferred_element_type=jnp.promote_types(jnp.result_type(x, taps), jnp.float32))


def _pixel_products_fwd(x, taps):
    return _pixel_products(x, taps), (x, taps)


def _pixel_products_bwd(residuals, dz):
    x, taps = residuals
    dx = jnp.matmul(dz, taps.T.astype(dz.dtype)).astype(x.dtype)
    dtaps = x.reshape(-1, x.shape[-1]).T.astype(dz.dtype) @ dz.reshape(-1, dz.shape[-1])  # [Cin, K]
    return dx, dtaps.astype(taps.dtype)


_pixel_products.defvjp(_pixel_products_fwd, _pixel_products_bwd)


def _by_shifted_products(kernel: jax.Array) -> bool:
    kh, kw, _, cout = kernel.shape
    return jax.default_backend() == "cpu" and kh * kw * cout <= SHIFTED_PRODUCTS_MAX


def _forward_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    if _by_shifted_products(kernel):
        return _shifted_products(x, kernel, padding)
    if x.shape[-1] == 1 and kernel.size <= ONE_CHANNEL_PRODUCTS_MAX and jax.default_backend() == "cpu":
        return _one_channel_products(x, kernel, padding)
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMS)


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 convolution, ``lax.conv_general_dilated(x, kernel, (1, 1), padding)`` (no bias).

    x: [N, H, W, Cin]; kernel: [kh, kw, Cin, Cout] -> [N, H + pt + pb - kh + 1, W + ..., Cout].
    """
    if _by_shifted_products(kernel):  # a product with its own VJP, then slices and sums: no convolution VJP needed
        return _shifted_products(x, kernel, padding)
    return _conv2d(x, kernel, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    return _forward_conv(x, kernel, padding)


def _conv2d_fwd(x, kernel, padding):
    return _forward_conv(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, residuals, dy):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    (pt, pb), (pl, pr) = padding
    # dx: correlate dy with the spatially flipped kernel, input/output channels swapped.
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    dx = _forward_conv(dy, flipped, ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)))
    return dx, _kernel_gradient(x, dy, padding)


# On CPU the kernel gradient of a batch of more rows than this is summed over pieces of this many rows. Its
# convolution contracts over the batch (below), and XLA:CPU runs it slower per row as the batch grows: alone
# on one core (Zen 5), 256 rows of bn_dense576's transposed convs and first conv took 1.2-1.8x as long in one
# piece as in pieces of 16-64 rows under lax.scan, 64 rows in one piece as fast as in pieces.
KERNEL_GRAD_ROWS = 64


def _kernel_gradient(x: jax.Array, dy: jax.Array, padding: Padding) -> jax.Array:
    """The kernel's gradient [kh, kw, Cin, Cout] of ``conv2d(x, kernel, padding)`` given dy [N, H', W', Cout].

    dkernel[u, v, c, d] = sum_{n,i,j} xpad[n, i+u, j+v, c] dy[n, i, j, d]: a forward convolution of x seen as
    [Cin (batch), H, W, N (features)] with dy seen as a [H', W', N, Cout] kernel; on CPU summed over pieces of
    ``KERNEL_GRAD_ROWS`` rows where N is a larger multiple of it.
    """

    def piece(x, dy):
        return _forward_conv(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), padding).transpose(1, 2, 0, 3)

    n, rows = x.shape[0], KERNEL_GRAD_ROWS
    if jax.default_backend() != "cpu" or n <= rows or n % rows:
        return piece(x, dy)
    pieces = [a.reshape(n // rows, rows, *a.shape[1:]) for a in (x, dy)]
    total = jnp.zeros(jax.eval_shape(piece, pieces[0][0], pieces[1][0]).shape, x.dtype)
    return lax.scan(lambda acc, xy: (acc + piece(*xy), None), total, pieces)[0]


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Keras ``UpSampling2D``: repeat each pixel ``factor`` times along H and W. [N,H,W,C] -> [N,fH,fW,C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _phase_taps(kernel: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """The 2-tap kernels along ``axis`` that each output phase of a 2x nearest upsampling sees.

    With taps (w0, w1, w2) at offsets (-1, 0, +1) on the upsampled image, output pixel 2i reads
    upsampled pixels 2i-1, 2i, 2i+1 = input pixels i-1, i, i: taps (w0, w1 + w2) at input offsets
    (-1, 0). Output pixel 2i+1 reads i, i, i+1: taps (w0 + w1, w2) at offsets (0, +1).
    """
    w0, w1, w2 = (lax.index_in_dim(kernel, i, axis) for i in range(3))
    return jnp.concatenate([w0, w1 + w2], axis), jnp.concatenate([w0 + w1, w2], axis)


def upsample_conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``conv2d(upsample_nearest(x, 2), kernel, same_padding(3))`` without building the upsampled image.

    x: [N, H, W, Cin]; kernel: [3, 3, Cin, Cout] -> [N, 2H, 2W, Cout]. Each of the four output
    phases (row parity a, column parity b) is a 2x2 convolution of x, padded on the side its
    taps reach: 16 multiply-adds per input pixel and channel pair instead of 36.
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"upsample_conv2d takes a 3x3 kernel, got {kernel.shape[:2]}.")
    n, h, w, _ = x.shape
    cout = kernel.shape[-1]
    kernels = [taps for rows in _phase_taps(kernel, 0) for taps in _phase_taps(rows, 1)]  # each [2, 2, Cin, Cout]
    paddings = [((1 - a, a), (1 - b, b)) for a in range(2) for b in range(2)]  # phase (a, b): its taps' reach
    if _by_shifted_products(kernels[0]):  # few outputs (an image): the four phases' taps in one matrix product
        z = _pixel_products(x, jnp.concatenate([_tap_matrix(k) for k in kernels], 1)).reshape(n, h, w, 4, 4, cout)
        phases = [_shifted_sum(z[:, :, :, i], (2, 2), pad, (h, w)).astype(x.dtype) for i, pad in enumerate(paddings)]
    else:
        phases = [conv2d(x, taps, pad) for taps, pad in zip(kernels, paddings, strict=True)]  # [N, H, W, Cout]
    y = jnp.stack(phases, axis=3).reshape(n, h, w, 2, 2, cout)  # [N, H, W, a, b, Cout]
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, cout)
