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

A stride-1 conv that follows "up"/"resize" or precedes "pool" becomes one ``Conv`` layer that
does all of it (same parameters, same values). With ``fast=True`` (the default) it computes
them with the exact fast formulations of ``dae_jax.ops``: an upsampling followed by a 3x3
conv is a conv on the small image; a conv followed by relu and max pooling pools first
(relu and an added bias commute with max). ``fast=False`` computes the textbook way and
is the reference the tests compare against.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
from jax import lax

from dae_jax import ops
from dae_jax.sharding import DATA_AXIS


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
    zero_init: bool = False  # kernel starts at 0 instead of lecun_normal
    fast: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        size = (2 * x.shape[1], 2 * x.shape[2]) if self.upsample else (self.resize_to,) * 2 if self.resize_to else None
        padding = ops.same_padding(k) if self.padding == "SAME" else ((0, 0), (0, 0))
        activation = nn.relu if self.relu else (lambda y: y)
        if not self.fast or self.strides != 1:
            if size is not None:
                x = _resize_nearest(x, size)
            y = lax.conv_general_dilated(
                x, kernel, (self.strides,) * 2, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            y = activation(y + bias[None, None, None, :])
            return y if self.pool is None else nn.max_pool(y, (2, 2), (2, 2), self.pool.upper())
        if size == (2 * x.shape[1], 2 * x.shape[2]) and k == 3 and self.padding == "SAME":
            y = ops.upsample_conv2d(x, kernel)
        else:
            y = ops.conv2d(x if size is None else _resize_nearest(x, size), kernel, padding)
        if self.pool is not None:  # max commutes with the bias and the relu: pool the 4x smaller tensor
            y = ops.max_pool_2x2(y, self.pool)
        return activation(y + bias[None, None, None, :])


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


def _parse(spec: str) -> dict:
    """One layer spec string -> {"op": ..., options}."""
    op, *words = spec.split()
    options = [w for w in words if w != "relu"]
    if op in ("conv", "tconv", "dense") and not (options and options[0].isdigit()):
        raise ValueError(f"Layer spec {spec!r} needs a size, e.g. '{op} 32'.")
    if op in ("conv", "tconv"):
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
        return {"op": op, "name": words[0]}  # _skip_names checked there is exactly one
    if op in ("bn", "up", "flatten"):
        return {"op": op}
    raise ValueError(f"Unknown layer spec {spec!r}; see the dae_jax.models docstring for the valid ones.")


def _plan(specs: Sequence[str]) -> list[dict]:
    """Parsed specs with "up"/"resize" + stride-1 conv and conv + "pool" merged into one conv step."""
    steps: list[dict] = []
    for step in map(_parse, specs):
        prev = steps[-1] if steps else None
        if step["op"] == "conv" and step["strides"] == 1 and prev and prev["op"] in ("up", "resize"):
            steps[-1] = {**step, "upsample": prev["op"] == "up", "resize_to": prev.get("size")}
        elif step["op"] == "pool" and prev and prev["op"] == "conv" and prev["strides"] == 1 and "pool" not in prev:
            prev["pool"] = step["padding"]
        else:
            steps.append(step)
    return steps


def _build(step: dict, fast: bool) -> tuple[Callable | nn.Module, Callable | None]:
    """(layer, activation) for one planned step; the layer is called as ``layer(x)`` (``layer(x, train)`` for BN)."""
    op = step["op"]
    relu = nn.relu if step.get("relu") else None
    if op == "conv":
        return Conv(**{k: v for k, v in step.items() if k != "op"}, fast=fast), None
    if op == "tconv":
        k, s = step["kernel_size"], step["strides"]
        init = {"kernel_init": nn.initializers.zeros} if step["zero_init"] else {}
        return nn.ConvTranspose(step["features"], (k, k), strides=(s, s), padding=step["padding"], **init), relu
    if op == "dense":
        return nn.Dense(step["features"]), relu
    if op == "bn":
        return _BatchNorm(), None
    if op == "pool":
        if fast:
            return functools.partial(ops.max_pool_2x2, padding=step["padding"]), None
        pool = functools.partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2), padding=step["padding"].upper())
        return pool, None
    if op == "up":
        return ops.upsample_nearest, None
    if op == "resize":
        return functools.partial(_resize_nearest, size=(step["size"],) * 2), None
    if op in ("save", "add"):
        return _Skip(op, step["name"]), None
    if op == "flatten":
        return (lambda x: x.reshape(x.shape[0], -1)), None
    return (lambda x: x.reshape(x.shape[0], *step["shape"])), None  # reshape


class Autoencoder(nn.Module):
    """Encoder and decoder, each a sequence of layer specs (see the module docstring)."""

    encoder: Sequence[str]
    decoder: Sequence[str]
    fast: bool = True  # False: the textbook formulation of every layer (the tests' reference)

    def setup(self):
        encoder_saved, encoder_needed = _skip_names(self.encoder)
        if encoder_needed:
            raise ValueError(f"Encoder adds {encoder_needed} before any 'save' of that name; save it first.")
        unknown = [n for n in self.decoder_skip_names if n not in encoder_saved]
        if unknown:
            raise ValueError(f"Decoder adds {unknown}, which neither the encoder nor the decoder saves first.")
        self.encoder_layers = [_build(s, self.fast) for s in _plan(self.encoder)]
        self.decoder_layers = [_build(s, self.fast) for s in _plan(self.decoder)]

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


def scan_friendly(model: Autoencoder) -> bool:
    """Whether every layer's backward pass stays on XLA CPU's fast path inside a ``lax.scan``.

    True for stride-1 convolutions (``ops.conv2d``), pooling, upsampling, dense layers and skips;
    autodiff's backward passes of strided and transposed convolutions fall to a slow generic loop
    there, so the micro-batched step (``training.micro_batch_size``) is not used for them by default.
    """
    steps = _plan(model.encoder) + _plan(model.decoder)
    return model.fast and all(s["op"] != "tconv" and s.get("strides", 1) == 1 for s in steps)


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
    "unet32": functools.partial(
        Autoencoder,
        encoder=("conv 32 relu", "save full", "pool", "conv 64 relu", "save half", "pool", "conv 64 relu"),
        decoder=(
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
        ),
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


def from_config(model_config) -> nn.Module:
    """``make`` from a config's ``model`` field: ``{"name": preset, **overrides}``."""
    fields = dict(model_config)
    return make(fields.pop("name"), **fields)


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
