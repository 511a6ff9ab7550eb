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
  one matrix product of the pixels with every tap's kernel, the products shifted into place and summed, and
  autodiff differentiates it; 1.3-3x faster than XLA:CPU's narrow convolutions.
- ``upsample_conv2d`` replaces conv(upsample(x)) by four 2x2 convolutions of the small image, one per output
  phase: 16/36 of the multiply-adds, and the 4x larger upsampled tensor is never built.
- ``strided_conv2d`` computes a stride-2 convolution as one matrix product of the image's patches (im2col), on
  XLA's fast matmul path instead of its strided convolution.
- ``transposed_conv2d`` computes a stride-2 transposed convolution as one stride-1 convolution of the small image
  whose output channels are the four output phases (sub-pixel form): the zeros of the dilated input are never
  multiplied.

Images are NHWC, kernels HWIO.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
_DIMS = ("NHWC", "HWIO", "NHWC")


def same_padding(kernel_size: int) -> Padding:
    """Explicit 'SAME' padding of a stride-1 convolution with an odd square kernel."""
    p = kernel_size // 2
    return ((p, kernel_size - 1 - p), (p, kernel_size - 1 - p))


# On CPU a one-channel image's convolution with fewer output channels than this computes this many (zero
# kernels) and keeps its own: XLA:CPU sends a convolution with one input channel and up to 16 output channels to
# its generic path, slower than its library path for 32. Alone on one core (Zen 5), bn_dense576's first conv
# (3x3, 1 -> 16 channels, 28x28, relu after) took 0.21 / 0.42 / 1.57 ms at 8 / 16 / 64 rows, so 0.08 / 0.14 /
# 0.51 ms; wider inputs gained nothing that way (3 -> 16 channels 1.3x slower, 16 -> 16 and 16 -> 4 within 10%).
# (A conv with few tap products, below, takes ``_shifted_products`` first.)
ONE_CHANNEL_COUT = 32


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
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    (pt, pb), (pl, pr) = padding
    out_h, out_w = h + pt + pb - kh + 1, w + pl + pr - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{w} image padded by {padding}.")
    taps = kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    z = jnp.matmul(x, taps, preferred_element_type=jnp.float32).reshape(n, h, w, kh * kw, cout)  # f32 sums
    z = lax.pad(z, jnp.zeros((), z.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0), (0, 0, 0)))
    return sum(z[:, u : u + out_h, v : v + out_w, u * kw + v] for u in range(kh) for v in range(kw)).astype(x.dtype)


def _by_shifted_products(kernel: jax.Array) -> bool:
    kh, kw, _, cout = kernel.shape
    return jax.default_backend() == "cpu" and kh * kw * cout <= SHIFTED_PRODUCTS_MAX


def _forward_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    cout = kernel.shape[-1]
    if _by_shifted_products(kernel):
        return _shifted_products(x, kernel, padding)
    if x.shape[-1] == 1 and cout < ONE_CHANNEL_COUT and jax.default_backend() == "cpu":
        wide = jnp.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, ONE_CHANNEL_COUT - cout)))
        return _forward_conv(x, wide, padding)[..., :cout]
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMS)


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 convolution, ``lax.conv_general_dilated(x, kernel, (1, 1), padding)`` (no bias).

    x: [N, H, W, Cin]; kernel: [kh, kw, Cin, Cout] -> [N, H + pt + pb - kh + 1, W + ..., Cout].
    """
    if _by_shifted_products(kernel):  # matrix products, slices and sums: autodiff's backward is fast already
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
    phases = []
    for a, rows in enumerate(_phase_taps(kernel, 0)):  # rows: [2, 3, Cin, Cout]
        for b, taps in enumerate(_phase_taps(rows, 1)):  # taps: [2, 2, Cin, Cout]
            phases.append(conv2d(x, taps, ((1 - a, a), (1 - b, b))))  # [N, H, W, Cout]
    y = jnp.stack(phases, axis=3).reshape(n, h, w, 2, 2, cout)  # [N, H, W, a, b, Cout]
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, cout)


def _strided_patches(x: jax.Array, k: int, padding: Padding) -> jax.Array:
    """The k x k pixels each output of a stride-2 convolution reads, stacked as channels (im2col):
    [N, H, W, Cin] -> [N, rows, cols, (u, v, Cin)], k^2 strided slices of the padded image."""
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = padding
    rows, cols = (h + pt + pb - k) // 2 + 1, (w + pl + pr - k) // 2 + 1
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
    taps = [  # tap (u, v) of every output: pixels u, u + 2, ..., u + 2 (rows - 1) (and v, ... along W)
        lax.slice(x, (0, u, v, 0), (n, u + 2 * rows - 1, v + 2 * cols - 1, c), (1, 2, 2, 1))
        for u in range(k)
        for v in range(k)
    ]
    return jnp.concatenate(taps, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def strided_conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """Stride-2 convolution, ``lax.conv_general_dilated(x, kernel, (2, 2), padding)`` (no bias).

    x: [N, H, W, Cin]; kernel: [k, k, Cin, Cout] -> [N, (H + pt + pb - k) // 2 + 1, ..., Cout]. One matrix
    product of the image's patches (``_strided_patches``) with the kernel as a [k^2 Cin, Cout] matrix. Measured
    in bn_dense576's device-resident train step (2-core Zen 4, fresh processes alternating, 2-3 rounds) against
    the earlier stride-1 convolution of the space-to-depth image: 1.08x at batch 128, 1.1x at 512, 1.1-1.3x at 32.
    The input's gradient is written phase by phase (``_strided_conv2d_bwd``).
    """
    k, cout = kernel.shape[0], kernel.shape[-1]
    return jnp.einsum("nhwc,cd->nhwd", _strided_patches(x, k, padding), kernel.reshape(-1, cout))


def _strided_conv2d_fwd(x, kernel, padding):
    return strided_conv2d(x, kernel, padding), (x, kernel)


def _strided_conv2d_bwd(padding, residuals, dy):
    """The gradients of ``strided_conv2d``. Autodiff's transpose of the k^2 strided slices pads each tap's
    gradient to the whole image and sums them, and XLA recomputed that sum in each of its consumers' fusions
    (bn_dense576). Here each of the padded image's four phases (row parity a, column parity b) sums the few
    taps that land on it, contiguous shifts of the small image, and the phases are interleaved once. Both
    gradients of bn_dense576's two strided convs, alone on one core (Zen 5, medians of 3 rounds): 1.0x
    autodiff's time at 16 rows, 1.0-1.45x at 64, 1.1-1.4x at 256."""
    x, kernel = residuals
    (n, h, w, c), (k, cout) = x.shape, (kernel.shape[0], kernel.shape[-1])
    (pt, pb), (pl, pr) = padding
    patches = _strided_patches(x, k, padding)  # rebuilt, not kept from the forward pass: k^2 / 4 times x's size
    dkernel = jnp.einsum("nhwk,nhwd->kd", patches, dy).reshape(kernel.shape)
    rows, cols = dy.shape[1:3]
    dtaps = jnp.einsum("nhwd,kd->nhwk", dy, kernel.reshape(-1, cout)).reshape(n, rows, cols, k, k, c)
    half_h, half_w = -(-(h + pt + pb) // 2), -(-(w + pl + pr) // 2)  # each phase's rows and columns
    phases = []
    for a in (0, 1):
        for b in (0, 1):
            phase = jnp.zeros((n, half_h, half_w, c), dy.dtype)
            for u in range(a, k, 2):  # tap u of output i reads padded row 2i + u: phase a's row i + u // 2
                for v in range(b, k, 2):
                    i, j = u // 2, v // 2
                    pads = ((0, 0), (i, half_h - i - rows), (j, half_w - j - cols), (0, 0))
                    phase = phase + jnp.pad(dtaps[:, :, :, u, v], pads)
            phases.append(phase)
    dx = jnp.stack(phases, axis=3).reshape(n, half_h, half_w, 2, 2, c)
    dx = dx.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * half_h, 2 * half_w, c)
    return dx[:, pt : pt + h, pl : pl + w], dkernel


strided_conv2d.defvjp(_strided_conv2d_fwd, _strided_conv2d_bwd)


def _transpose_taps(size: int, padding: str) -> tuple[int, int, np.ndarray]:
    """Along one axis of a 3x3 stride-2 transposed conv: (output size, input pixels padded after, taps).

    ``flax.linen.ConvTranspose`` (stride 2) correlates the kernel with the input dilated by 2 and padded
    by (lo, hi) as ``lax.conv_transpose`` pads. Output 2i + a then reads taps t = t0, t0 + 2, ... (those
    landing on input pixels, t0 = (lo - a) % 2) at input pixels i + d, i + d + 1, ..., d = (a + t0 - lo) / 2;
    for both phases and paddings those pixels lie in the window (i - 1, i). taps [2 (window pixel), 2 (phase
    a)] holds the kernel tap phase a applies to that pixel, or 3 (a zero tap) where it applies none. Each
    phase gives ceil(out / 2) outputs, so the input is padded by one pixel before (the first window's i - 1)
    and ``after`` after.
    """
    lo, hi = (2, 1) if padding == "SAME" else (2, 2)  # lax.conv_transpose's pads for a 3x3 kernel
    out = 2 * (size - 1) + 1 + lo + hi - 3 + 1
    taps = np.full((2, 2), 3)
    for a in (0, 1):
        t0 = (lo - a) % 2
        d = (a + t0 - lo) // 2
        for j, t in enumerate(range(t0, 3, 2)):
            taps[d + j + 1, a] = t
    return out, -(-out // 2) - size, taps  # the last output's window ends at input pixel ceil(out / 2) - 1


def transposed_conv2d(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    """``flax.linen.ConvTranspose(Cout, (3, 3), strides=(2, 2), padding=padding)`` (no bias) in sub-pixel form.

    x: [N, H, W, Cin]; kernel: [3, 3, Cin, Cout] -> [N, 2H, 2W, Cout] ('SAME') or [N, 2H + 1, 2W + 1, Cout]
    ('VALID'). One stride-1 convolution of x with a 2x2 window computes the four output phases (a, b) as
    4 x Cout channels, each phase's taps placed where its window pixels are (``_transpose_taps``), zero
    elsewhere; the phases are then interleaved into the large image. 16 multiply-adds per input pixel and
    channel pair where the phases alone need 9 (and the dilated form 36), but one convolution where four
    (one per phase) took 1.12x as long in bn_dense576's train step at batch 128 (2-core Zen 4, 3 rounds).
    """
    if kernel.shape[:2] != (3, 3) or padding not in ("SAME", "VALID"):
        raise ValueError(f"transposed_conv2d takes a 3x3 kernel and SAME or VALID, got {kernel.shape[:2]}, {padding}.")
    (n, h, w, cin), cout = x.shape, kernel.shape[-1]
    (out_h, after_h, rows), (out_w, after_w, cols) = _transpose_taps(h, padding), _transpose_taps(w, padding)
    taps = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # [4, 4, Cin, Cout]: tap 3 is zero
    window = taps[rows[:, None, :, None], cols[None, :, None, :]]  # [2 (u), 2 (v), 2 (a), 2 (b), Cin, Cout]
    window = window.transpose(0, 1, 4, 2, 3, 5).reshape(2, 2, cin, 4 * cout)
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (1, after_h, 0), (1, after_w, 0), (0, 0, 0)))
    y = conv2d(x, window, ((0, 0), (0, 0)))  # [N, P, Q, (a, b, Cout)]
    p, q = y.shape[1:3]
    y = y.reshape(n, p, q, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * p, 2 * q, cout)
    return y[:, :out_h, :out_w]
