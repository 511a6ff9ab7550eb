"""One run's objects, built once from its config: ``Setup.from_config(config, steps_per_epoch)``.

The model, the optimizer (its schedule over the run's steps), the corruption, the loss, the
output activation, the compute dtype and the micro-batch size, and the run's keys. Training
(``dae_jax.train``), evaluation, ``Denoiser.load``, the benchmark and the studies take a Setup
instead of turning the config into objects themselves. It is the one home of two rules:

- ``output``: a model's images are its raw output through the loss's activation (sigmoid for
  BCE, identity for MSE and PSNR, a clip to [0, 1] with ``clip_output``: ``losses.from_config``);
- ``eval_noisy``: the fixed evaluation noise. Example ``i`` of a split is corrupted with
  ``fold_in(keys.eval, i)``, so every run of a seed and every model and baseline scored with
  that seed sees the very same noisy images. Host corruptions (JPEG, ...) are applied before it,
  in the input pipeline, keyed by (seed, ``stream.EVAL_EPOCH``, i).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dae_jax import corruptions, host_corruptions, optimizers, sharding
from dae_jax.data import stream
from dae_jax.nn import losses, models
from dae_jax.sharding import DATA_AXIS

# On CPU a train step runs each device's rows a few images at a time (``micro_batch_size``), so that their
# activations stay in cache: at most ``CPU_MICRO_BATCH``, halved while the images' layer outputs exceed
# ``MICRO_BATCH_BYTES``. Side by side on a 2-core Intel Xeon (Emerald Rapids; JaxRunner, batch 128, alternating
# fresh processes), images/s with 16 -> 8 -> 4 -> 2 images a micro-batch, layer outputs of 16 images in brackets:
# conv32 (1.1 MiB) 5,629-5,902 / 5,827-6,169 at 8; conv64 (5 MiB) 1,057-1,119 / 1,138-1,265; unet32 (7 MiB)
# 1,081-1,137 / 1,259-1,260 (at batch 32 and 512 too: 1.08-1.10x); unet_deep_residual (10.4 MiB) 507-512 /
# 521-553 / 525-536; superres_faces (64x64x3, 25.5 MiB) 185-186 / 211-219 / 233-235 / 230. Dense models are
# matrix products, faster whole: side by side in the device-resident loop at batch 128 on 2 cores, dense32 /
# dense64 / linear16 trained 1.30x / 1.46x / 1.33x faster without.
CPU_MICRO_BATCH = 16
MICRO_BATCH_BYTES = 4 * 2**20


class RunKeys(NamedTuple):
    """The PRNG keys of a run, each a pure function of its seed."""

    init: jax.Array  # parameters
    train: jax.Array  # the training noise: step s, example i -> fold_in(fold_in(train, s), i)
    eval: jax.Array  # the fixed evaluation noise: example i of a split -> fold_in(eval, i)
    shuffle: jax.Array  # the device-resident loop's epoch permutations


def run_keys(seed: int) -> RunKeys:
    rng = jax.random.key(seed)
    return RunKeys(*(jax.random.fold_in(rng, i) for i in range(4)))


def training_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    """The mesh ``config`` trains on: ``sharding.model_mesh`` of its model."""
    return sharding.model_mesh(models.is_convolutional(models.from_config(config.model)))


def _layer_outputs(model: models.Autoencoder, image_shape: tuple[int, int, int]) -> tuple[Any, Any]:
    """(output, intermediates) of ``model`` on one image of ``image_shape``, as shapes: traced once, nothing
    computed. The intermediates are each module's output (``capture_intermediates``)."""

    def outputs(x):
        out, variables = model.init_with_output(jax.random.key(0), x, capture_intermediates=True)
        return out, variables["intermediates"]

    return jax.eval_shape(outputs, jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))


def _bytes(intermediates: Any) -> int:
    return sum(4 * math.prod(leaf.shape) for leaf in jax.tree.leaves(intermediates))


def layer_output_bytes(model: models.Autoencoder, image_shape: tuple[int, int, int]) -> int:
    """Bytes of one image's float32 layer outputs in ``model`` (each module's output, the model's own
    included): a proxy for what a micro-batch keeps per image (a conv's output before its pooling, activations
    outside modules and skip sums are not counted; ``MICRO_BATCH_BYTES`` was set on this measure). Traced."""
    return _bytes(_layer_outputs(model, image_shape)[1])


def micro_batch_size(
    requested: int | None, per_device: int, model: models.Autoencoder, per_image_bytes: int
) -> int | None:
    """The micro-batch of the train step: ``requested`` (0: none), or by default on CPU, for convolutional
    models without BatchNorm whose layers stay fast inside a ``lax.scan`` (``models.scan_friendly``), the
    largest power of two up to ``CPU_MICRO_BATCH`` whose images' layer outputs (``per_image_bytes`` each:
    ``layer_output_bytes``) fit ``MICRO_BATCH_BYTES`` (at least 1), when it divides the device batch."""
    batch_norm = models.has_batch_norm(model)
    if requested is None:
        cpu = jax.default_backend() == "cpu"
        if not (cpu and models.is_convolutional(model) and models.scan_friendly(model) and not batch_norm):
            return None
        size = CPU_MICRO_BATCH
        while size > 1 and size * per_image_bytes > MICRO_BATCH_BYTES:
            size //= 2
        return size if per_device % size == 0 else None
    if requested == 0 or requested >= per_device:
        return None
    if batch_norm:
        raise ValueError("config.micro_batch_size would change BatchNorm's batch statistics; set it to 0 or None.")
    if per_device % requested:
        raise ValueError(
            f"config.micro_batch_size={requested} does not divide the {per_device} images per device; "
            "use a divisor of it, 0 (off) or None (auto)."
        )
    return requested


def _checked_layer_bytes(model: models.Autoencoder, image_shape: tuple[int, int, int], name: str) -> int:
    """``layer_output_bytes``, from the same trace that checks the model's output is an image of
    ``image_shape`` (ValueError naming the field when it is not)."""
    try:
        out, intermediates = _layer_outputs(model, image_shape)
    except (ValueError, TypeError) as e:
        raise ValueError(f"config.model {name!r} cannot take images of config.image_shape {image_shape}: {e}") from None
    if out.shape[1:] != image_shape:
        fix = (
            f"use a model whose decoder ends in {image_shape[2]} channel(s) (e.g. --config.model.decoder=...)"
            if out.shape[-1] != image_shape[2]
            else "use an image_shape it returns unchanged: one its pooling and strides divide, or a dense decoder's own"
        )
        raise ValueError(f"config.model {name!r} turns images of {image_shape} into {out.shape[1:]}; {fix}.")
    return _bytes(intermediates)


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (compiled functions are cached)
class Setup:
    """What a config means, as objects (see the module docstring). Build it with ``from_config``."""

    config: ml_collections.ConfigDict
    model: models.Autoencoder
    tx: optax.GradientTransformation
    corrupt: corruptions.Corruption  # on device, inside the jitted steps
    host_corrupt: host_corruptions.HostCorruption | None  # in the input pipeline, before ``corrupt`` (JPEG, ...)
    loss: Callable[[jax.Array, jax.Array], jax.Array]  # (outputs/logits, targets) -> [N]
    activation: Callable[[jax.Array], jax.Array]  # raw model output -> images
    compute_dtype: Any  # None: float32; else the dtype the model computes in on float32 parameters
    micro_batch: int | None  # see micro_batch_size
    keys: RunKeys
    ema_decay: float | None = None  # the parameters' moving average that is evaluated (None: off)

    @classmethod
    def from_config(
        cls,
        config: ml_collections.ConfigDict,
        steps_per_epoch: int = 1,
        num_devices: int | None = None,
        training: bool = True,
    ) -> Setup:
        """The Setup of ``config``; ``steps_per_epoch`` sets the schedule's horizon, ``num_devices`` (default
        all) the per-device batch; ``training=False`` (a trained model applied) leaves micro-batching off.
        ValueError naming the field for an unknown name or a bad parameter."""
        model = models.from_config(config.model).clone(axis_name=DATA_AXIS)
        loss, activation = losses.from_config(config.loss, bool(config.get("clip_output")))
        tx = optimizers.from_config(config, total_steps=max(1, steps_per_epoch * config.num_epochs))
        per_image_bytes = _checked_layer_bytes(model, tuple(config.image_shape), config.model.name)
        per_device = config.batch_size // (num_devices or jax.device_count())
        host, device = host_corruptions.split(config.corruption.to_dict())
        return cls(
            config=config,
            model=model,
            tx=tx,
            corrupt=corruptions.from_spec(device),
            host_corrupt=host_corruptions.make(host),
            loss=loss,
            activation=activation,
            compute_dtype=None if config.compute_dtype == "float32" else jnp.dtype(config.compute_dtype),
            micro_batch=(
                micro_batch_size(config.micro_batch_size, per_device, model, per_image_bytes) if training else None
            ),
            keys=run_keys(config.seed),
            ema_decay=config.get("ema_decay"),
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.image_shape)

    @property
    def image_spec(self) -> stream.ImageSpec:
        """How an image folder's images become what the model sees (the config's ``data`` fields)."""
        data = self.config.data
        return stream.ImageSpec(
            seed=self.config.seed,
            size=self.image_shape[:2],
            channels=self.image_shape[2],
            view=data.get("view", "crop"),
            flip=data.get("flip", False),
            center_crop=data.get("center_crop"),
            shrink_to=data.get("shrink_to"),
            views_per_image=data.get("views_per_image", 1),
            host=self.host_corrupt,
        )

    def with_corruption(self, spec: dict) -> Setup:
        """This Setup scoring and training with another corruption (``{"name": ..., **params}``)."""
        host, device = host_corruptions.split(spec)
        return dataclasses.replace(
            self, corrupt=corruptions.from_spec(device), host_corrupt=host_corruptions.make(host)
        )

    def with_seed(self, seed: int) -> Setup:
        """This Setup with the keys of another seed (another fixed evaluation noise)."""
        return dataclasses.replace(self, keys=run_keys(seed))

    def output(self, variables: dict, x: jax.Array, **kwargs) -> jax.Array:
        """Images from inputs x [N, H, W, C] (or from codes with ``method="decode"``): output plus activation."""
        return self.activation(self.model.apply(variables, x, **kwargs))

    def eval_noisy(self, clean: jax.Array, index: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """The fixed evaluation noise: image ``i`` (float [N, H, W, C] in [0, 1]) of a split, at ``index[i]``,
        corrupted with ``fold_in(key, index[i])``; ``key`` defaults to the run's evaluation key."""
        return corruptions.per_example(self.corrupt, self.keys.eval if key is None else key, clean, index)
