"""Autoencoders as one Flax Linen module, ``Autoencoder``, built from layer specs; presets by name.

``encode(x, train) -> code`` and ``decode(code, train) -> logits``; ``__call__`` composes them.
Images are NHWC float32 in [0, 1]. ``decode`` returns pre-activation outputs (logits for a
BCE loss); ``losses.OUTPUT_ACTIVATIONS`` turns them into images.

A layer spec is a short string; a word after the layer's own options sets the activation:

  "conv F [s2] [valid] [k5] [zero] [relu]"
                                      Conv(F, 3x3, stride 1, 'same'); options change stride/padding/kernel;
                                      "zero" starts its kernel at 0 (a residual branch that starts as a no-op)
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
  "save NAME"                         keep the current activation under NAME (no change to x)
  "add NAME"                          x + the activation saved as NAME (additive skip connection;
                                      shapes must match exactly)

Skip connections. "save"/"add" work anywhere: inside the encoder or decoder they make
residual blocks ("save a", "conv 32 relu", "conv 32", "add a"); a "save" in the encoder with
its "add" in the decoder is a U-Net-style additive skip, and "save" as the first encoder layer
with "add" as the last decoder layer makes the model learn a residual ``output = input + f(input)``.
A decoder that adds encoder activations cannot run from the code alone: ``encode_with_skips(x)``
returns ``(code, skips)`` and ``decode(code, train, skips)`` needs those skips; ``decode``
without them raises a ValueError naming the missing ones (``decoder_skip_names`` lists them).
``encode`` still returns the code only, and ``__call__`` passes the skips itself.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class _Skip:
    """A "save NAME" or "add NAME" layer: it reads or writes the dict of saved activations."""

    op: str  # "save" | "add"
    name: str


def _skip_names(specs: Sequence[str]) -> tuple[list[str], list[str]]:
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
        init = {"kernel_init": nn.initializers.zeros} if "zero" in options else {}
        return cls(features, (k, k), strides=(strides, strides), padding=padding, **init), activation
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
    if op in ("save", "add"):
        return _Skip(op, words[0]), None
    if op == "reshape":
        shape = tuple(int(d) for d in options[0].split("x"))
        return lambda x: x.reshape(x.shape[0], *shape), None
    raise ValueError(f"Unknown layer spec {spec!r}; see the dae_jax.models docstring for the valid ones.")


class Autoencoder(nn.Module):
    """Encoder and decoder, each a sequence of layer specs (see the module docstring)."""

    encoder: Sequence[str]
    decoder: Sequence[str]

    def setup(self):
        encoder_saved, encoder_needed = _skip_names(self.encoder)
        if encoder_needed:
            raise ValueError(f"Encoder adds {encoder_needed} before any 'save' of that name; save it first.")
        unknown = [n for n in self.decoder_skip_names if n not in encoder_saved]
        if unknown:
            raise ValueError(f"Decoder adds {unknown}, which neither the encoder nor the decoder saves first.")
        self.encoder_layers = [_layer(s) for s in self.encoder]
        self.decoder_layers = [_layer(s) for s in self.decoder]

    @property
    def decoder_skip_names(self) -> list[str]:
        """Names of encoder activations the decoder adds: ``decode`` needs them as ``skips``."""
        return _skip_names(self.decoder)[1]

    @staticmethod
    def _run(layers, x: jax.Array, train: bool, skips: dict[str, jax.Array]) -> jax.Array:
        for layer, activation in layers:
            if isinstance(layer, _Skip):
                x = _apply_skip(layer, x, skips)
                continue
            x = layer(x, train) if isinstance(layer, _BatchNorm) else layer(x)
            if activation is not None:
                x = activation(x)
        return x

    def encode_with_skips(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(code, {name: activation}) for every "save NAME" of the encoder."""
        skips = {}
        code = self._run(self.encoder_layers, x, train, skips)
        return code, skips

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.encode_with_skips(x, train)[0]

    def decode(self, code: jax.Array, train: bool = False, skips: dict[str, jax.Array] | None = None) -> jax.Array:
        """Logits from a code; a decoder with skip connections also needs the encoder's ``skips``."""
        missing = [n for n in self.decoder_skip_names if n not in (skips or {})]
        if missing:
            raise ValueError(
                f"This decoder adds the encoder activations {missing} (skip connections), so it cannot decode "
                "a code alone: pass skips from encode_with_skips(x), or call the model on the images."
            )
        return self._run(self.decoder_layers, code, train, dict(skips or {}))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        code, skips = self.encode_with_skips(x, train)
        return self.decode(code, train, skips)


def _apply_skip(layer: _Skip, x: jax.Array, skips: dict[str, jax.Array]) -> jax.Array:
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
    # RGB super-resolution (any H, W divisible by 4): strided-conv encoder to H/4 x W/4 x 64, nearest-upsampling
    # decoder with additive skips from the encoder at full and half resolution, and a global residual:
    # the output is the input plus a learned correction. The correction's last conv starts at zero, so the
    # untrained model is exactly the identity (the bicubic baseline); with a random start it had to unlearn
    # its noise on smooth pictures first (validation PSNR gain after 6 epochs: +0.13 dB random, +0.83 dB zero).
    "superres": functools.partial(
        Autoencoder,
        encoder=("save input", "conv 32 relu", "save full", "conv 64 s2 relu", "save half", "conv 64 s2 relu"),
        decoder=(
            "conv 64 relu",
            "up",
            "add half",
            "conv 32 relu",
            "up",
            "add full",
            "conv 32 relu",
            "conv 3 zero",
            "add input",
        ),
    ),
}


def linear(k: int) -> Callable[..., nn.Module]:
    """A linear autoencoder 784 -> k -> 784 (dense layers with biases, no nonlinearity): PCA's subspace at best."""
    return functools.partial(Autoencoder, encoder=("flatten", f"dense {k}"), decoder=("dense 784", "reshape 28x28x1"))


# Presets with a size in their name: "linear16" is FAMILIES["linear"](16).
FAMILIES: dict[str, Callable[[int], Callable[..., nn.Module]]] = {"linear": linear}


def _preset(name: str) -> Callable[..., nn.Module]:
    if name in MODELS:
        return MODELS[name]
    family = name.rstrip("0123456789")
    size = name[len(family) :]
    if family in FAMILIES and size and int(size) > 0:
        return FAMILIES[family](int(size))
    choices = sorted(MODELS) + [f"{f}{{k}}" for f in FAMILIES]
    raise ValueError(f"Unknown model {name!r}; choose one of {choices}.")


def make(name: str, **overrides) -> nn.Module:
    """Builds a preset by name (``MODELS``, or a family's like "linear16"), with fields overridden.

    e.g. ``make("conv32", decoder=(..., "conv 3"))``.
    """
    preset = _preset(name)
    try:
        return preset(**overrides)
    except TypeError as e:
        raise ValueError(f"Model {name!r} does not accept {sorted(overrides)}: {e}") from None


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
