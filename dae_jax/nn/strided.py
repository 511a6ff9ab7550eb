"""Stride-2 convolutions and 3x3 stride-2 transposed convolutions, exact and fast on XLA:CPU.

Each computes the same values (to float rounding, ~1e-6) and the same gradients as the JAX/Flax layer named in its
docstring; ``tests/nn/test_ops.py`` checks both to 1e-5.

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

from dae_jax.nn.ops import Padding, conv2d


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
