"""Autoencoders as Flax Linen modules with ``encode(x) -> code`` and ``decode(code) -> logits``.

Images are NHWC float32 in [0, 1]. ``decode`` returns pre-activation outputs (logits for a
BCE loss); ``losses.OUTPUT_ACTIVATIONS`` turns them into images. Presets by name are in
``MODELS``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Keras ``UpSampling2D``: repeat each pixel ``factor`` times along H and W. [N,H,W,C] -> [N,fH,fW,C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, as a reshape + max. [N,H,W,C] -> [N,H/2,W/2,C] (H, W even).

    Same values as ``nn.max_pool(x, (2, 2), (2, 2))``; its gradient avoids XLA's
    select-and-scatter, which is about 4x slower on CPU (tests/test_models.py checks both).
    """
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvAutoencoder(nn.Module):
    """Conv(f, 3x3, same, relu) → MaxPool 2 per encoder stage; Conv → Upsample 2 per decoder stage;
    a final Conv(out_channels) gives the logits.

    For 28x28 inputs and two stages the code is 7x7x``encoder_features[-1]``.
    """

    encoder_features: Sequence[int] = (32, 32)
    decoder_features: Sequence[int] = (32, 32)
    out_channels: int = 1
    kernel_size: int = 3

    def setup(self):
        k = (self.kernel_size, self.kernel_size)
        self.encoder_convs = [nn.Conv(f, k, padding="SAME") for f in self.encoder_features]
        self.decoder_convs = [nn.Conv(f, k, padding="SAME") for f in self.decoder_features]
        self.output_conv = nn.Conv(self.out_channels, k, padding="SAME")

    def encode(self, x: jax.Array) -> jax.Array:
        for conv in self.encoder_convs:
            x = max_pool_2x2(nn.relu(conv(x)))
        return x

    def decode(self, code: jax.Array) -> jax.Array:
        x = code
        for conv in self.decoder_convs:
            x = upsample_nearest(nn.relu(conv(x)))
        return self.output_conv(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class DenseAutoencoder(nn.Module):
    """Flatten → Dense(h, relu) per hidden size (the last is the code) / Dense(H·W·C) → reshape.

    The plain fully connected autoencoder of the Keras blog; the code is a vector.
    """

    hidden: Sequence[int] = (64,)
    image_shape: Sequence[int] = (28, 28, 1)

    def setup(self):
        self.encoder_dense = [nn.Dense(h) for h in self.hidden]
        self.decoder_dense = [nn.Dense(h) for h in reversed(self.hidden[:-1])]
        self.output_dense = nn.Dense(int(np.prod(self.image_shape)))

    def encode(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)  # [N, H*W*C]
        for dense in self.encoder_dense:
            x = nn.relu(dense(x))
        return x

    def decode(self, code: jax.Array) -> jax.Array:
        x = code
        for dense in self.decoder_dense:
            x = nn.relu(dense(x))
        return self.output_dense(x).reshape(code.shape[0], *self.image_shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


MODELS: dict[str, Callable[..., nn.Module]] = {
    # Keras blog "Building Autoencoders in Keras", convolutional denoising autoencoder.
    "conv32": functools.partial(ConvAutoencoder, encoder_features=(32, 32), decoder_features=(32, 32)),
    # Conv(32)-Pool-Conv(16)-Pool / Conv(16)-Up-Conv(32)-Up-Conv(1): code 7x7x16.
    "conv32_16": functools.partial(ConvAutoencoder, encoder_features=(32, 16), decoder_features=(16, 32)),
    # 784 -> 64 (relu) -> 784 and 784 -> 32 (relu) -> 784.
    "dense64": functools.partial(DenseAutoencoder, hidden=(64,)),
    "dense32": functools.partial(DenseAutoencoder, hidden=(32,)),
}


def make(name: str, **overrides) -> nn.Module:
    """Builds a preset by name, with fields overridden (e.g. ``out_channels=3``)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    try:
        return MODELS[name](**overrides)
    except TypeError as e:
        raise ValueError(f"Model {name!r} does not accept {sorted(overrides)}: {e}") from None


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
