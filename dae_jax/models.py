"""Autoencoders as one Flax Linen module, ``Autoencoder``, built from layer specs; presets by name.

``encode(x, train) -> code`` and ``decode(code, train) -> logits``; ``__call__`` composes them.
Images are NHWC float32 in [0, 1]. ``decode`` returns pre-activation outputs (logits for a
BCE loss); ``losses.OUTPUT_ACTIVATIONS`` turns them into images.

A layer spec is a short string; a word after the layer's own options sets the activation:

  "conv F [s2] [valid] [k5] [relu]"   Conv(F, 3x3, stride 1, 'same'); options change stride/padding/kernel
  "tconv F [s2] [valid] [relu]"       ConvTranspose, same options
  "dense N [relu]"                    Dense(N) on the last axis
  "bn"                                BatchNorm (Keras defaults); while training its statistics are
                                      taken over the global batch (axis "data"), so the result does
                                      not depend on the number of devices
  "pool" | "pool same"                2x2 max pooling, stride 2; 'valid' drops an odd last row/column,
                                      'same' pads it (Keras padding="same")
  "up"                                nearest-neighbour upsampling x2 (Keras UpSampling2D)
  "resize S"                          nearest-neighbour resize to S x S
  "flatten" | "reshape HxWxC"
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dae_jax.sharding import DATA_AXIS


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Keras ``UpSampling2D``: repeat each pixel ``factor`` times along H and W. [N,H,W,C] -> [N,fH,fW,C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def max_pool_2x2(x: jax.Array, padding: str = "valid") -> jax.Array:
    """2x2 max pooling, stride 2, as a reshape + max. [N,H,W,C] -> [N,H/2,W/2,C] (floor or ceil by padding).

    Same values as ``nn.max_pool(x, (2, 2), (2, 2), padding)``; its gradient avoids XLA's
    select-and-scatter, which is about 4x slower on CPU (tests/test_models.py checks both).
    """
    n, h, w, c = x.shape
    if padding == "same":
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
    else:
        x = x[:, : h - h % 2, : w - w % 2]
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _resize_nearest(x: jax.Array, size: int) -> jax.Array:
    return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "nearest")


class _BatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        # Keras defaults: momentum 0.99, epsilon 1e-3.
        return nn.BatchNorm(momentum=0.99, epsilon=1e-3, axis_name=DATA_AXIS if train else None)(
            x, use_running_average=not train
        )


def _layer(spec: str) -> tuple[Callable | nn.Module, Callable | None]:
    """(layer, activation) for one spec string; layer is called as ``layer(x)`` or ``layer(x, train)``."""
    op, *words = spec.split()
    activation = nn.relu if "relu" in words else None
    options = [w for w in words if w != "relu"]
    if op in ("conv", "tconv"):
        features = int(options[0])
        strides = 2 if "s2" in options else 1
        k = int(next((w[1:] for w in options if w.startswith("k")), 3))
        padding = "VALID" if "valid" in options else "SAME"
        cls = nn.Conv if op == "conv" else nn.ConvTranspose
        return cls(features, (k, k), strides=(strides, strides), padding=padding), activation
    if op == "dense":
        return nn.Dense(int(options[0])), activation
    if op == "bn":
        return _BatchNorm(), None
    if op == "pool":
        return functools.partial(max_pool_2x2, padding="same" if "same" in options else "valid"), None
    if op == "up":
        return upsample_nearest, None
    if op == "resize":
        return functools.partial(_resize_nearest, size=int(options[0])), None
    if op == "flatten":
        return lambda x: x.reshape(x.shape[0], -1), None
    if op == "reshape":
        shape = tuple(int(d) for d in options[0].split("x"))
        return lambda x: x.reshape(x.shape[0], *shape), None
    raise ValueError(f"Unknown layer spec {spec!r}; see the dae_jax.models docstring for the valid ones.")


class Autoencoder(nn.Module):
    """Encoder and decoder, each a sequence of layer specs (see the module docstring)."""

    encoder: Sequence[str]
    decoder: Sequence[str]

    def setup(self):
        self.encoder_layers = [_layer(s) for s in self.encoder]
        self.decoder_layers = [_layer(s) for s in self.decoder]

    @staticmethod
    def _run(layers, x: jax.Array, train: bool) -> jax.Array:
        for layer, activation in layers:
            x = layer(x, train) if isinstance(layer, _BatchNorm) else layer(x)
            if activation is not None:
                x = activation(x)
        return x

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self._run(self.encoder_layers, x, train)

    def decode(self, code: jax.Array, train: bool = False) -> jax.Array:
        return self._run(self.decoder_layers, code, train)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.decode(self.encode(x, train), train)


MODELS: dict[str, Callable[..., nn.Module]] = {
    # Keras blog "Building Autoencoders in Keras", convolutional denoising autoencoder: code 7x7x32.
    "conv32": functools.partial(
        Autoencoder,
        encoder=("conv 32 relu", "pool", "conv 32 relu", "pool"),
        decoder=("conv 32 relu", "up", "conv 32 relu", "up", "conv 1"),
    ),
    # Conv(32)-Pool-Conv(16)-Pool / Conv(16)-Up-Conv(32)-Up-Conv(1): code 7x7x16.
    "conv32_16": functools.partial(
        Autoencoder,
        encoder=("conv 32 relu", "pool", "conv 16 relu", "pool"),
        decoder=("conv 16 relu", "up", "conv 32 relu", "up", "conv 1"),
    ),
    # Strided convs with BatchNorm and a dense 576 bottleneck; transposed-conv decoder: 28 -> 576 -> 28.
    "bn_dense576": functools.partial(
        Autoencoder,
        encoder=(
            "conv 16 relu",
            "bn",
            "pool",
            "conv 32 s2 relu",
            "bn",
            "pool",
            "conv 64 s2 relu",
            "bn",
            "flatten",
            "dense 576",
        ),
        decoder=("reshape 3x3x64", "tconv 32 s2 valid relu", "tconv 16 s2 relu", "tconv 1 s2"),
    ),
    # Conv(64)-Pool-Conv(64)-Pool-Conv(32)-Pool('same'): code 4x4x32; nearest resize to 7, 14, 28.
    "conv64": functools.partial(
        Autoencoder,
        encoder=("conv 64 relu", "pool", "conv 64 relu", "pool", "conv 32 relu", "pool same"),
        decoder=("resize 7", "conv 32 relu", "resize 14", "conv 64 relu", "resize 28", "conv 64 relu", "conv 1"),
    ),
    # 784 -> 64 (relu) -> 784 and 784 -> 32 (relu) -> 784.
    "dense64": functools.partial(
        Autoencoder, encoder=("flatten", "dense 64 relu"), decoder=("dense 784", "reshape 28x28x1")
    ),
    "dense32": functools.partial(
        Autoencoder, encoder=("flatten", "dense 32 relu"), decoder=("dense 784", "reshape 28x28x1")
    ),
}


def make(name: str, **overrides) -> nn.Module:
    """Builds a preset by name, with fields overridden (e.g. ``decoder=(..., "conv 3")``)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    try:
        return MODELS[name](**overrides)
    except TypeError as e:
        raise ValueError(f"Model {name!r} does not accept {sorted(overrides)}: {e}") from None


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
