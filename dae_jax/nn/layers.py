"""Layers of an autoencoder, built from short spec strings.

A layer spec is a short string; a word after the layer's own options sets the activation:

  "conv F [s2] [valid] [k5] [zero] [relu]"
                                      Conv(F, 3x3, stride 1, 'same'); options change stride/padding/kernel;
                                      "zero" starts its kernel at 0 (a residual branch that starts as a no-op)
  "tconv F [s2] [valid] [relu]"       ConvTranspose, same options
  "dense N [relu]"                    Dense(N) on the last axis
  "bn"                                BatchNorm (Keras defaults; dae_jax.nn.batch_norm, fused unless
                                      ``fast=False``); while training, with an ``axis_name``, its
                                      statistics are taken over the global batch, so the result does not
                                      depend on the number of devices
  "pool" | "pool same"                2x2 max pooling, stride 2; 'valid' drops an odd last row/column,
                                      'same' pads it (Keras padding="same")
  "up"                                nearest-neighbour upsampling x2 (Keras UpSampling2D)
  "resize S"                          nearest-neighbour resize to S x S
  "flatten" | "reshape HxWxC"
  "noise_level"                       appends a channel: each image's estimated noise std
                                      (``dae_jax.nn.noise_level``), for a blind model conditioned on it
  "save NAME"                         keep the current activation under NAME (no change to x)
  "add NAME"                          x + the activation saved as NAME (additive skip connection;
                                      shapes must match exactly)

``plan`` parses a sequence of specs and merges a stride-1 conv that follows "up"/"resize" or
precedes "pool" into one ``Conv`` layer that does all of it (same parameters, same values). With
``fast=True`` (the default) it computes them with the exact fast formulations of
``dae_jax.nn.ops`` and ``dae_jax.nn.strided``: an upsampling followed by a 3x3 conv is a conv on the small
image; a conv followed by relu and max pooling pools first (relu and an added bias commute with max); a
BatchNorm followed by max pooling normalizes the pooled tensor (``batch_norm.normalize_max_pool``).
``fast=False`` computes the textbook way and is the reference the tests compare against.
``build`` turns one planned step into a callable layer, its kernels started by one of ``KERNEL_INITS``
(biases start at zero).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
from jax import lax

from dae_jax.nn import noise_level, ops, pooling, strided
from dae_jax.nn.batch_norm import BatchNorm

# How a layer's kernel starts: Flax's default, or Keras's (the reference write-ups' layers).
KERNEL_INITS: dict[str, Callable] = {
    "lecun_normal": nn.initializers.lecun_normal(),  # truncated normal, variance 1 / fan_in
    "glorot_uniform": nn.initializers.glorot_uniform(),  # uniform, variance 2 / (fan_in + fan_out)
}


def _resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Nearest-neighbour resize of [N, H, W, C] to [N, *size, C] (half-pixel centres, as tf.image.resize)."""
    if size == (2 * x.shape[1], 2 * x.shape[2]):
        return ops.upsample_nearest(x)  # the same pixels, without a gather
    return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), "nearest")


class Conv(nn.Module):
    """[resize/upsample ->] Conv(features, k x k) + bias [-> relu] [-> 2x2 max pool].

    Parameters ``kernel`` [k, k, Cin, F] and ``bias`` [F], initialised like ``nn.Conv``.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str = "SAME"
    relu: bool = False
    upsample: bool = False  # nearest x2 upsampling of the input first
    resize_to: int | None = None  # nearest resize of the input to resize_to x resize_to first
    pool: str | None = None  # "valid" | "same": 2x2 max pooling of the output
    zero_init: bool = False  # kernel starts at 0 instead of from kernel_init
    kernel_init: str = "lecun_normal"  # a KERNEL_INITS name
    fast: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        init = nn.initializers.zeros if self.zero_init else KERNEL_INITS[self.kernel_init]
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        size = (2 * x.shape[1], 2 * x.shape[2]) if self.upsample else (self.resize_to,) * 2 if self.resize_to else None
        padding = ops.same_padding(k) if self.padding == "SAME" else ((0, 0), (0, 0))
        if self.strides != 1 and self.padding == "SAME":  # Keras's 'same': an odd extra pixel goes at the end
            in_size = size or x.shape[1:3]
            padding = tuple(map(tuple, lax.padtype_to_pads(in_size, (k, k), (self.strides,) * 2, "SAME")))
        activation = nn.relu if self.relu else (lambda y: y)
        if not self.fast or self.strides not in (1, 2) or (self.strides == 2 and size is not None):
            if size is not None:
                x = _resize_nearest(x, size)
            y = lax.conv_general_dilated(
                x, kernel, (self.strides,) * 2, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            y = activation(y + bias[None, None, None, :])
            return y if self.pool is None else nn.max_pool(y, (2, 2), (2, 2), self.pool.upper())
        if self.strides == 2:
            y = strided.strided_conv2d(x, kernel, padding)
        elif size == (2 * x.shape[1], 2 * x.shape[2]) and k == 3 and self.padding == "SAME":
            y = ops.upsample_conv2d(x, kernel)
        else:
            y = ops.conv2d(x if size is None else _resize_nearest(x, size), kernel, padding)
        if self.pool is not None:  # max commutes with the bias and the relu: pool the 4x smaller tensor
            y = pooling.max_pool_2x2(y, self.pool)
        return activation(y + bias[None, None, None, :])


# (kernel size, stride) of the transposed convs computed in sub-pixel form (strided.transposed_conv2d).
SUBPIXEL_TCONV = (3, 2)


class ConvTranspose(nn.Module):
    """``nn.ConvTranspose(features, (k, k), strides, padding)`` + bias, the same parameters (``kernel`` [k, k, Cin,
    F], ``bias`` [F]); stride 2 with a 3x3 kernel in sub-pixel form (``strided.transposed_conv2d``) unless
    ``fast=False``."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str = "SAME"
    zero_init: bool = False
    kernel_init: str = "lecun_normal"
    fast: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.strides
        init = nn.initializers.zeros if self.zero_init else KERNEL_INITS[self.kernel_init]
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.fast and (k, s) == SUBPIXEL_TCONV:
            y = strided.transposed_conv2d(x, kernel, self.padding)
        else:
            y = lax.conv_transpose(x, kernel, (s, s), self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias[None, None, None, :]


@dataclasses.dataclass(frozen=True)
class Skip:
    """A "save NAME" or "add NAME" layer: it reads or writes the dict of saved activations."""

    op: str  # "save" | "add"
    name: str


def skip_names(specs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(names saved, names added before being saved) in one sequence of layer specs, in order."""
    saved, needed = [], []
    for spec in specs:
        op, *words = spec.split()
        if op in ("save", "add") and len(words) != 1:
            raise ValueError(f"Layer spec {spec!r} needs exactly one name, e.g. '{op} skip1'.")
        if op == "save":
            if words[0] in saved:
                raise ValueError(f"Layer spec {spec!r}: {words[0]!r} is saved twice; give each 'save' its own name.")
            saved.append(words[0])
        elif op == "add" and words[0] not in saved:
            needed.append(words[0])
    return saved, needed


def parse(spec: str) -> dict:
    """One layer spec string -> {"op": ..., options}."""
    op, *words = spec.split()
    options = [w for w in words if w != "relu"]
    if op in ("conv", "tconv", "dense") and not (options and options[0].isdigit()):
        raise ValueError(f"Layer spec {spec!r} needs a size, e.g. '{op} 32'.")
    if op in ("conv", "tconv"):
        unknown = [w for w in options[1:] if w not in ("s2", "valid", "zero") and not re.fullmatch(r"k[1-9]\d*", w)]
        if unknown:
            raise ValueError(
                f"Layer spec {spec!r}: unknown option {unknown[0]!r}; {op} takes s2, valid, kN, zero, relu."
            )
        if len({w[0] if w[0] == "k" else w for w in options[1:]}) < len(options) - 1:
            raise ValueError(f"Layer spec {spec!r}: an option given twice; give each of s2, valid, kN, zero once.")
        return {
            "op": op,
            "features": int(options[0]),
            "strides": 2 if "s2" in options else 1,
            "kernel_size": int(next((w[1:] for w in options if w.startswith("k")), 3)),
            "padding": "VALID" if "valid" in options else "SAME",
            "relu": "relu" in words,
            "zero_init": "zero" in options,  # kernel starts at 0 (e.g. a residual branch that starts as identity)
        }
    if op == "dense":
        return {"op": op, "features": int(options[0]), "relu": "relu" in words}
    if op == "pool":
        return {"op": op, "padding": "same" if "same" in options else "valid"}
    if op == "resize":
        return {"op": op, "size": int(options[0])}
    if op == "reshape":
        return {"op": op, "shape": tuple(int(d) for d in options[0].split("x"))}
    if op in ("save", "add"):
        return {"op": op, "name": words[0]}  # skip_names checked there is exactly one
    if op in ("bn", "up", "flatten", "noise_level"):
        return {"op": op}
    raise ValueError(f"Unknown layer spec {spec!r}; see the dae_jax.nn.layers docstring for the valid ones.")


def plan(specs: Sequence[str]) -> list[dict]:
    """Parsed specs with "up"/"resize" + stride-1 conv and conv + "pool" merged into one conv step, and
    "bn" + "pool" into one BatchNorm step (the pool's place kept by a "pooled" step that does nothing)."""
    steps: list[dict] = []
    for step in map(parse, specs):
        prev = steps[-1] if steps else None
        if step["op"] == "conv" and step["strides"] == 1 and prev and prev["op"] in ("up", "resize"):
            steps[-1] = {**step, "upsample": prev["op"] == "up", "resize_to": prev.get("size")}
        elif step["op"] == "pool" and prev and prev["op"] == "conv" and prev["strides"] == 1 and "pool" not in prev:
            prev["pool"] = step["padding"]
        elif step["op"] == "pool" and prev and prev["op"] == "bn" and "pool" not in prev:
            prev["pool"] = step["padding"]
            steps.append({"op": "pooled"})  # keeps the later layers' indices, so their parameters' names
        else:
            steps.append(step)
    return steps


def fast_in_scan(step: dict) -> bool:
    """Whether a planned step's backward pass stays on XLA CPU's fast path inside a ``lax.scan`` (fast layers).

    Autodiff's backward passes of XLA's strided and transposed convolutions fall to a slow generic loop
    there; the fast layers avoid them for stride-2 convs (one matrix product of the image's patches) and
    3x3 stride-2 transposed convs (sub-pixel form), not for transposed convs of other kernels or strides.
    """
    if step["op"] == "tconv":
        return (step["kernel_size"], step["strides"]) == SUBPIXEL_TCONV
    return True


def build(
    step: dict, fast: bool, axis_name: str | None = None, kernel_init: str = "lecun_normal"
) -> tuple[Callable | nn.Module, Callable | None]:
    """(layer, activation) for one planned step; the layer is called as ``layer(x)`` (``layer(x, train)`` for BN).

    ``kernel_init``: a ``KERNEL_INITS`` name for the kernels of conv, tconv and dense layers."""
    op = step["op"]
    relu = nn.relu if step.get("relu") else None
    if op == "conv":
        return Conv(**{k: v for k, v in step.items() if k != "op"}, kernel_init=kernel_init, fast=fast), None
    if op == "tconv":
        keys = ("features", "kernel_size", "strides", "padding", "zero_init")
        return ConvTranspose(**{k: step[k] for k in keys}, kernel_init=kernel_init, fast=fast), relu
    if op == "dense":
        return nn.Dense(step["features"], kernel_init=KERNEL_INITS[kernel_init]), relu
    if op == "bn":
        return BatchNorm(axis_name, fast, step.get("pool")), None
    if op == "pooled":  # done by the BatchNorm before it
        return (lambda x: x), None
    if op == "pool":
        if fast:
            return functools.partial(pooling.max_pool_2x2, padding=step["padding"]), None
        pool = functools.partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2), padding=step["padding"].upper())
        return pool, None
    if op == "up":
        return ops.upsample_nearest, None
    if op == "resize":
        return functools.partial(_resize_nearest, size=(step["size"],) * 2), None
    if op in ("save", "add"):
        return Skip(op, step["name"]), None
    if op == "flatten":
        return (lambda x: x.reshape(x.shape[0], -1)), None
    if op == "noise_level":
        return noise_level.with_channel, None
    return (lambda x: x.reshape(x.shape[0], *step["shape"])), None  # reshape


def apply_skip(layer: Skip, x: jax.Array, skips: dict[str, jax.Array]) -> jax.Array:
    """Saves x under layer.name, or adds the saved activation to x (same shape required)."""
    if layer.op == "save":
        skips[layer.name] = x
        return x
    saved = skips[layer.name]
    if saved.shape != x.shape:
        raise ValueError(
            f"'add {layer.name}': the saved activation is {saved.shape[1:]} but here x is {x.shape[1:]} (H, W, C); "
            "change the layers between 'save' and 'add' so the shapes match."
        )
    return x + saved
