"""A trained model, loaded from a workdir, applied to user images: ``load(workdir).denoise(images)``."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from dae_jax import corruptions, sharding
from dae_jax.eval import layout, tiling
from dae_jax.nn import models
from dae_jax.setup import Setup
from dae_jax.training import checkpoints
from dae_jax.training.state import create_train_state

# Batches are padded up to one of these sizes (then to a multiple of the device count) so a call of any size
# reuses one of a few compiled functions; powers of two, so padding is less than half of any call and the
# usual batch sizes (32, 128, 512) are not padded at all.
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Rows per call of a convolutional model: a larger batch is split, so its activations (rows x pixels x
# channels) stay bounded. A model without convolutions (the dense presets) takes up to BUCKETS[-1]: its
# activations are a few hundred numbers a row, and on CPU each call costs ~0.1 ms of dispatch, as much as
# ~100 of its rows. Measured side by side on 2 cores (Zen 4), dense32 / dense64 / linear16: 1.15-1.24x the
# images/s of 256-row calls on 512 images, 1.20-1.46x on 2,048; 4,096-row calls gained nothing more (0.98-1.05x).
CONV_MAX_ROWS = 256
# On CPU a convolutional model takes a device's rows this many at a time under ``lax.map``, their
# activations staying in cache. Measured at batch 128 on 2 cores, images/s against one piece: conv32_16
# 1.5-1.7x, conv32 1.4x, conv64 1.2x, bn_dense576 1.1x, unet32_residual about 1x; the dense presets (matrix
# products, 0.6x) run in one piece.
CHUNK = 8


# XLA:CPU takes a numpy array as it is only at this alignment in bytes; it copies any other, on its transfer
# path, which on 2 cores (Zen 5) cost more than a copy here: dense32's call on 16-byte-aligned images took
# 1.1-1.2x (batch 128) and 1.3-1.4x (batch 512) as long as on 64-byte-aligned ones; numpy copies them in 8-9
# and 47-61 us. (numpy's own large arrays are 16-byte aligned.)
ALIGNMENT = 64


def _aligned_batch(chunk: np.ndarray, size: int) -> np.ndarray:
    """``chunk`` [n, ...] in a new array [size >= n, ...] that starts at an ``ALIGNMENT``-byte boundary, its
    rows past n zero (padding)."""
    shape = (size, *chunk.shape[1:])
    raw = np.empty(math.prod(shape) * chunk.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    batch = raw[start : start + raw.size - ALIGNMENT].view(chunk.dtype).reshape(shape)
    batch[: len(chunk)] = chunk
    batch[len(chunk) :] = 0
    return batch


def _rows(images: jax.Array) -> jax.Array:
    """Images [N, H, W, C] as rows [N, H * W * C], reshaped back on the host (free there).

    XLA:CPU vectorizes an elementwise loop along its output's last axis, here an image's 1 or 3 channels. On
    2 cores (Zen 4), dense32's forward pass and sigmoid at 128 rows took 1.3x as long with the images' shape
    as its output as with rows, and ``denoise`` 1.07x (264 against 246 us a call, 3 rounds)."""
    return images.reshape(images.shape[0], -1)


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (evaluation caches its steps)
class Denoiser:
    """A trained autoencoder applied to images; see ``load``.

    Images: numpy or jax arrays, uint8 in [0, 255] or float in [0, 1], one image (HW or HWC) or
    a batch (NHWC) of the model's size; results come back in the same layout and dtype family.
    """

    setup: Setup  # the run's config as objects (model, corruption, loss, keys)
    variables: Any  # {"params": ..., "batch_stats": ...}
    workdir: Path | None = None  # the run's workdir (its metadata.json names the data source)

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.setup.config

    @property
    def model(self) -> models.Autoencoder:
        return self.setup.model

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.setup.image_shape

    @functools.cached_property
    def _mesh(self) -> jax.sharding.Mesh:
        """This process's devices: a batch is split over them (one XLA:CPU device per core after
        ``sharding.use_cpu_cores``; on one device a CPU would denoise on one core), or on CPU only the first
        for a model without convolutions (``sharding.model_mesh``)."""
        return sharding.model_mesh(models.is_convolutional(self.model), jax.local_devices())

    @property
    def device_count(self) -> int:
        """How many devices a batch is split over (see ``_mesh``)."""
        return self._mesh.devices.size

    @functools.cached_property
    def max_rows(self) -> int:
        """Rows per call of the model (see ``CONV_MAX_ROWS``): larger batches are split."""
        return CONV_MAX_ROWS if models.is_convolutional(self.model) else BUCKETS[-1]

    @functools.cached_property
    def _replicated_variables(self):
        return jax.device_put(self.variables, sharding.replicated(self._mesh))  # once, not every call

    @functools.cached_property
    def _apply(self):
        setup = self.setup

        def denoise(variables, x):
            """float [0, 1] in and out, or uint8 in and out: converted in the same program as the model."""
            y = _rows(setup.output(variables, corruptions.to_float(x)))
            return layout.to_uint8(y) if x.dtype == jnp.uint8 else y

        return {
            "denoise": self._split(denoise),
            "encode": self._split(lambda v, x: setup.model.apply(v, x, method=setup.model.encode)),
            "decode": self._split(lambda v, z: _rows(setup.output(v, z, method=setup.model.decode))),
        }

    def _split(self, fn):
        """``fn(variables, x [n, ...]) -> [n, ...]`` as jit(shard_map): variables replicated, rows split over the
        devices, and on CPU a convolutional model's rows ``CHUNK`` at a time."""
        chunked = jax.default_backend() == "cpu" and models.is_convolutional(self.model)

        def per_device(variables, x):
            n = x.shape[0]
            if not chunked or n % CHUNK or n == CHUNK:
                return fn(variables, x)
            out = lax.map(lambda rows: fn(variables, rows), x.reshape(n // CHUNK, CHUNK, *x.shape[1:]))
            return out.reshape(n, *out.shape[2:])

        axis = sharding.DATA_AXIS
        mapped = jax.shard_map(per_device, mesh=self._mesh, in_specs=(P(), P(axis)), out_specs=P(axis))
        return jax.jit(mapped)

    def _batched(self, name: str, x: np.ndarray) -> np.ndarray:
        devices = self._mesh.devices.size
        out = []
        for start in range(0, len(x), self.max_rows):
            chunk = x[start : start + self.max_rows]
            size = -(-next(b for b in BUCKETS if b >= len(chunk)) // devices) * devices
            if size > len(chunk) or chunk.ctypes.data % ALIGNMENT or not chunk.flags.c_contiguous:  # else no copy
                chunk = _aligned_batch(chunk, size)
            out.append(np.asarray(self._apply[name](self._replicated_variables, chunk))[: len(x) - start])
        out = np.concatenate(out)  # a writable array of its own, also for one chunk
        return out if name == "encode" else out.reshape(len(x), *self.image_shape)  # images came as _rows

    def denoise(self, noisy):
        """Clean images from noisy ones, in the layout and dtype family they were given."""
        x, given = layout.to_model_input(noisy, self.image_shape, keep_uint8=True)
        return layout.from_model_output(self._batched("denoise", x), given)

    def reconstruct(self, imgs):
        """``decode(encode(images))``: an autoencoder's reconstruction, the same computation as ``denoise``.

        For clean inputs, ``reconstruct(x) - x`` shows what the model cannot represent.
        """
        return self.denoise(imgs)

    def denoise_any_size(self, image, fit: str = "tile", overlap: int | None = None):
        """One image (HW or HWC) of any height and width, denoised at its own size (``dae_jax.eval.tiling``).

        fit "tile": sides shorter than the model's are edge-padded; longer ones are covered by
        model-size tiles overlapping by ``overlap`` pixels (default a quarter tile), blended.
        fit "resize": the image is scaled to the model's size, and the result back.
        """
        shape = np.shape(image)
        if len(shape) not in (2, 3):
            raise ValueError(
                f"denoise_any_size takes one image (HW or HWC), got shape {shape}; use denoise for batches."
            )
        x, given = layout.to_model_input(image, (shape[0], shape[1], self.image_shape[2]))
        out = tiling.apply(lambda tiles: self._batched("denoise", tiles), x[0], self.image_shape[:2], fit, overlap)
        return layout.from_model_output(out[None], given)

    def denoise_each(self, images: Iterable, fit: str = "tile", overlap: int | None = None) -> Iterator:
        """``denoise_any_size`` of each image (HW or HWC) in turn, lazily, in order.

        Consecutive images of the model's size go through the model together, up to ``max_rows``
        a call: a folder of small images costs one call per 256 (conv models) rather than one per image (a call of
        one image is ~1 ms, the model's share of it ~0.1 ms for conv32 on 2 cores). Their results are
        ``denoise_any_size``'s (at the model's size a tile or a resize is the image itself) up to float
        rounding: uint8 ones may differ by one level in rare pixels, converted in the model's program here.
        A bad ``fit`` or ``overlap`` is refused now, a bad image when its turn comes.
        """
        tiling.checked_overlap(fit, overlap, self.image_shape[:2])  # model-size images never reach tiling.apply
        return self._denoised(images, fit, overlap)

    def _denoised(self, images: Iterable, fit: str, overlap: int | None) -> Iterator:
        h, w, c = self.image_shape
        waiting = []  # model-size images not yet denoised, all of one kind (array type, dtype, ndim)

        def flush() -> list:
            batch = np.stack([np.asarray(i) for i in waiting]).reshape(-1, h, w, c)  # HW images get their channel
            x, given = layout.to_model_input(batch, (h, w, c), keep_uint8=True)  # checked once for the whole run
            given = dataclasses.replace(given, ndim=4, jax_array=isinstance(waiting[0], jax.Array))  # as they came
            out = layout.from_model_output(self._batched("denoise", x), given)
            kept = waiting[0].ndim
            waiting.clear()
            return [o if kept == 3 else o[..., 0] for o in out]

        model_size = {(h, w, c), (h, w)} if c == 1 else {(h, w, c)}  # HW is grayscale

        def kind(image) -> tuple:
            return type(image), image.dtype, image.ndim

        for image in images:
            if isinstance(image, (np.ndarray, jax.Array)) and image.shape in model_size:
                if image.dtype != np.uint8:  # checked for NaN and range at its turn, not when its batch is full
                    layout.to_model_input(image, (h, w, c))
                if waiting and kind(image) != kind(waiting[0]):
                    yield from flush()
                waiting.append(image)
                if len(waiting) == self.max_rows:
                    yield from flush()
                continue
            if waiting:  # an image of another size: the ones before it first, to keep the order
                yield from flush()
            yield self.denoise_any_size(image, fit, overlap)
        if waiting:
            yield from flush()

    def encode(self, imgs) -> np.ndarray:
        """Codes [N, ...] (no batch dimension for a single image)."""
        x, given = layout.to_model_input(imgs, self.image_shape)
        codes = self._batched("encode", x)
        return codes if given.ndim == 4 else codes[0]

    def decode(self, codes) -> np.ndarray:
        """float images [N, H, W, C] in [0, 1] from codes [N, ...] (models without encoder-decoder skips)."""
        skips = self.model.decoder_skip_names
        if skips:
            raise ValueError(
                f"model {self.config.model.name!r} has skip connections: its decoder adds the encoder activations "
                f"{skips}, so codes alone cannot be decoded; use denoise(images)."
            )
        codes = np.asarray(codes, np.float32)
        probe = jnp.zeros((self._mesh.devices.size, *self.image_shape))  # rows split evenly over the devices
        code_shape = jax.eval_shape(self._apply["encode"], self.variables, probe).shape[1:]
        if codes.shape[1:] != code_shape:
            raise ValueError(
                f"codes have shape {codes.shape}; the model's codes are [N, {', '.join(map(str, code_shape))}]."
            )
        return self._batched("decode", codes)


def load(workdir_or_checkpoint: str | Path, step: int | None = None) -> Denoiser:
    """The model of a run: its workdir, its ``checkpoints`` dir, or one step's dir (``W/checkpoints/840``).

    ``step``: the checkpoint step (default: the one named by the path, else the latest).
    """
    path = Path(workdir_or_checkpoint)
    if path.name.isdigit() and (path / checkpoints.MANIFEST).is_file():  # one step's directory
        path, step = path.parent, int(path.name) if step is None else step
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if path.is_file():
        raise ValueError(f"{str(path)!r} is a file; give a workdir that `dae-jax train` wrote.")
    if not ckpt_dir.is_dir():
        raise ValueError(f"{str(path)!r} does not exist; give a workdir that `dae-jax train` wrote.")
    with checkpoints.Checkpoints(ckpt_dir) as ckpts:
        complete = [s for s in ckpts.all_steps() if ckpts.is_complete(s)]
        step = (complete[-1] if complete else None) if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {str(path)!r}; give a workdir that `dae-jax train` wrote.")
        try:
            setup = Setup.from_config(ml_collections.ConfigDict(ckpts.saved_config(step)), training=False)
        except checkpoints.CheckpointError as e:
            earlier = [s for s in complete if s < step]
            if not earlier:
                raise
            m = earlier[-1]
            raise checkpoints.CheckpointError(
                f"{e} An earlier step may load: dae_jax.load({str(path)!r}, step={m}), "
                f"or --workdir {ckpt_dir / str(m)}."
            ) from None
        template = jax.eval_shape(lambda: create_train_state(setup, jax.random.key(0)))
        state = ckpts.restore(template, step).state
    return Denoiser(setup=setup, variables=state.variables(), workdir=ckpt_dir.parent)
