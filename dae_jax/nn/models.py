"""Autoencoders as one Flax Linen module, ``Autoencoder``, built from layer specs; presets by name.

``encode(x, train) -> code`` and ``decode(code, train) -> logits``; ``__call__`` composes them.
Images are NHWC float32 in [0, 1]. ``decode`` returns pre-activation outputs (logits for a
BCE loss); the activation of ``dae_jax.nn.losses.from_config`` turns them into images. The layer specs
("conv 32 relu", "pool", "save skip1", ...) are documented in ``dae_jax.nn.layers``.

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

from dae_jax.nn.batch_norm import BatchNorm
from dae_jax.nn.layers import KERNEL_INITS, Skip, apply_skip, build, fast_in_scan, plan, skip_names


class Autoencoder(nn.Module):
    """Encoder and decoder, each a sequence of layer specs (see the module docstring)."""

    encoder: Sequence[str]
    decoder: Sequence[str]
    fast: bool = True  # False: the textbook formulation of every layer (the tests' reference)
    kernel_init: str = "lecun_normal"  # dae_jax.nn.layers.KERNEL_INITS: "glorot_uniform" is Keras's
    axis_name: str | None = None  # BatchNorm: the mesh axis sharing batch statistics (dae_jax.setup sets it)

    def setup(self):
        encoder_saved, encoder_needed = skip_names(self.encoder)
        if encoder_needed:
            raise ValueError(f"Encoder adds {encoder_needed} before any 'save' of that name; save it first.")
        unknown = [n for n in self.decoder_skip_names if n not in encoder_saved]
        if unknown:
            raise ValueError(f"Decoder adds {unknown}, which neither the encoder nor the decoder saves first.")
        if self.kernel_init not in KERNEL_INITS:
            raise ValueError(f"Unknown kernel_init {self.kernel_init!r}; choose one of {sorted(KERNEL_INITS)}.")
        self.encoder_layers = [build(s, self.fast, self.axis_name, self.kernel_init) for s in plan(self.encoder)]
        self.decoder_layers = [build(s, self.fast, self.axis_name, self.kernel_init) for s in plan(self.decoder)]

    @property
    def decoder_skip_names(self) -> list[str]:
        """Names of encoder activations the decoder adds: ``decode`` needs them as ``skips``."""
        return skip_names(self.decoder)[1]

    @staticmethod
    def _run(layers, x: jax.Array, train: bool, skips: dict[str, jax.Array]) -> jax.Array:
        for layer, activation in layers:
            if isinstance(layer, Skip):
                x = apply_skip(layer, x, skips)
                continue
            x = layer(x, train) if isinstance(layer, BatchNorm) else layer(x)
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


def scan_friendly(model: Autoencoder) -> bool:
    """Whether every layer's backward pass stays on XLA CPU's fast path inside a ``lax.scan``.

    True for fast models (``fast=True``) whose every layer does (``layers.fast_in_scan``: all but
    transposed convolutions other than 3x3 stride 2);
    where it is False, on CPU, the micro-batched step (``dae_jax.setup.micro_batch_size``) and the
    device-resident loop are not used by default.
    """
    return model.fast and all(map(fast_in_scan, plan(model.encoder) + plan(model.decoder)))


def is_convolutional(model: Autoencoder) -> bool:
    """Whether the model has convolutions (transposed ones included), not only dense layers."""
    return any(spec.split()[0] in ("conv", "tconv") for spec in (*model.encoder, *model.decoder))


def has_batch_norm(model: Autoencoder) -> bool:
    """Whether the model has BatchNorm layers (whose statistics a micro-batched step would change)."""
    return any(spec.split()[0] == "bn" for spec in (*model.encoder, *model.decoder))


_UNET32_ENCODER = ("conv 32 relu", "save full", "pool", "conv 64 relu", "save half", "pool", "conv 64 relu")
_UNET32_DECODER = (
    "conv 64 relu",
    "up",
    "conv 64 relu",
    "add half",
    "conv 32 relu",
    "up",
    "conv 32 relu",
    "add full",
    "conv 32 relu",
    "conv 1",
)


def _deep_unet(width: int) -> dict[str, tuple[str, ...]]:
    """The deeper U-Net's layers: two convs per level, width / 2 width / 4 width channels at 28 / 14 / 7
    pixels, additive skips at 28 and 14, a global residual."""
    a, b, c = (f"conv {n} relu" for n in (width, 2 * width, 4 * width))
    return {
        "encoder": ("save input", a, a, "save full", "pool", b, b, "save half", "pool", c, c),
        "decoder": (c, "up", b, "add half", b, "up", a, "add full", a, "conv 1 zero", "add input"),
    }


_DEEP = _deep_unet(32)

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
    # U-Net-style MNIST denoiser (the 'best in an hour' setup): 32 / 64 / 64 channels at 28 / 14 / 7 pixels,
    # additive skips from the encoder at 28 and 14 pixels; code 7x7x64.
    "unet32": functools.partial(Autoencoder, encoder=_UNET32_ENCODER, decoder=_UNET32_DECODER),
    # The same with a global residual: output = noisy input + a correction (the network predicts minus the
    # noise, as DnCNN does); the correction's last conv starts at zero, so the untrained model is the identity.
    # For an MSE loss (its outputs are the images themselves).
    "unet32_residual": functools.partial(
        Autoencoder,
        encoder=("save input", *_UNET32_ENCODER),
        decoder=(*_UNET32_DECODER[:-1], "conv 1 zero", "add input"),
    ),
    # Deeper and wider (the 'best in an hour' setup): two convs per level, 32 / 64 / 128 channels at 28 / 14 / 7
    # pixels, the same skips and global residual; 572,737 parameters, about 2.4x unet32's multiply-adds.
    "unet_deep_residual": functools.partial(Autoencoder, **_DEEP),
    # The same 1.5x wider (48 / 96 / 192 channels): 1,287,649 parameters, 2.2x unet_deep_residual's step time.
    "unet_wide_residual": functools.partial(Autoencoder, **_deep_unet(48)),
    # unet_deep_residual with global context at 7x7: a dense branch (6,272 -> 256 -> 6,272) added to the
    # bottom level's features, so every pixel sees the whole digit (3.2M more parameters, +4.5% FLOPs).
    "unet_deep_global": functools.partial(
        Autoencoder,
        encoder=(
            *_DEEP["encoder"],
            "save local",
            "flatten",
            "dense 256 relu",
            "dense 6272",
            "reshape 7x7x128",
            "add local",
        ),
        decoder=_DEEP["decoder"],
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
    fields = [f.name for f in dataclasses.fields(preset.func) if f.init and f.name not in ("parent", "name")]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"config.model: model {name!r} has no field {unknown[0]!r}; its fields are {fields}.")
    return preset(**overrides)


def from_config(model_config) -> nn.Module:
    """``make`` from a config's ``model`` field: ``{"name": preset, **overrides}``."""
    fields = dict(model_config)
    return make(fields.pop("name"), **fields)


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
