"""A trained model, loaded from a workdir, applied to user images: ``load(workdir).denoise(images)``."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dae_jax import checkpoints, images, losses, models, optimizers, tiling, training

# Batches are padded up to one of these sizes so a call of any size reuses a compiled function.
BUCKETS = (1, 8, 64, 256)


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """A trained autoencoder applied to images; see ``load``.

    Images: numpy or jax arrays, uint8 in [0, 255] or float in [0, 1], one image (HW or HWC) or
    a batch (NHWC) of the model's size; results come back in the same layout and dtype family.
    """

    model: models.Autoencoder
    variables: Any  # {"params": ..., "batch_stats": ...}
    config: ml_collections.ConfigDict
    image_shape: tuple[int, int, int]  # (H, W, C) the model takes
    workdir: Path | None = None  # the run's workdir (its metadata.json names the data source)

    @functools.cached_property
    def _apply(self):
        activation = losses.OUTPUT_ACTIVATIONS[self.config.loss]
        return {
            "denoise": jax.jit(lambda v, x: activation(self.model.apply(v, x))),
            "encode": jax.jit(lambda v, x: self.model.apply(v, x, method=self.model.encode)),
            "decode": jax.jit(lambda v, z: activation(self.model.apply(v, z, method=self.model.decode))),
        }

    def _batched(self, name: str, x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), BUCKETS[-1]):
            chunk = x[start : start + BUCKETS[-1]]
            size = next(b for b in BUCKETS if b >= len(chunk))
            padded = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            out.append(np.asarray(self._apply[name](self.variables, padded))[: len(chunk)])
        return np.concatenate(out)

    def denoise(self, noisy):
        """Clean images from noisy ones, in the layout and dtype family they were given."""
        x, layout = images.to_model_input(noisy, self.image_shape)
        return images.from_model_output(self._batched("denoise", x), layout)

    def reconstruct(self, imgs):
        """``decode(encode(images))``: an autoencoder's reconstruction, the same computation as ``denoise``.

        For clean inputs, ``reconstruct(x) - x`` shows what the model cannot represent.
        """
        return self.denoise(imgs)

    def denoise_any_size(self, image, fit: str = "tile", overlap: int | None = None):
        """One image (HW or HWC) of any height and width, denoised at its own size (``dae_jax.tiling``).

        fit "tile": sides shorter than the model's are edge-padded; longer ones are covered by
        model-size tiles overlapping by ``overlap`` pixels (default a quarter tile), blended.
        fit "resize": the image is scaled to the model's size, and the result back.
        """
        shape = np.shape(image)
        if len(shape) not in (2, 3):
            raise ValueError(
                f"denoise_any_size takes one image (HW or HWC), got shape {shape}; use denoise for batches."
            )
        x, layout = images.to_model_input(image, (shape[0], shape[1], self.image_shape[2]))
        out = tiling.apply(lambda tiles: self._batched("denoise", tiles), x[0], self.image_shape[:2], fit, overlap)
        return images.from_model_output(out[None], layout)

    def encode(self, imgs) -> np.ndarray:
        """Codes [N, ...] (no batch dimension for a single image)."""
        x, layout = images.to_model_input(imgs, self.image_shape)
        codes = self._batched("encode", x)
        return codes if layout.ndim == 4 else codes[0]

    def decode(self, codes) -> np.ndarray:
        """float images [N, H, W, C] in [0, 1] from codes [N, ...] (models without encoder-decoder skips)."""
        skips = self.model.decoder_skip_names
        if skips:
            raise ValueError(
                f"model {self.config.model.name!r} has skip connections: its decoder adds the encoder activations "
                f"{skips}, so codes alone cannot be decoded; use denoise(images)."
            )
        codes = np.asarray(codes, np.float32)
        code_shape = jax.eval_shape(self._apply["encode"], self.variables, jnp.zeros((1, *self.image_shape))).shape[1:]
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
    if not ckpt_dir.is_dir():
        raise ValueError(f"{str(path)!r} does not exist; give a workdir that `dae-jax train` wrote.")
    ckpts = checkpoints.Checkpoints(ckpt_dir)
    step = ckpts.latest_step() if step is None else step
    if step is None:
        raise ValueError(f"no checkpoint in {str(path)!r}; give a workdir that `dae-jax train` wrote.")
    config = ml_collections.ConfigDict(ckpts.saved_config(step))
    model = models.from_config(config.model)
    tx = optimizers.from_config(config, total_steps=max(step, 1))  # the horizon does not change the state's shape
    image_shape = tuple(config.image_shape)
    template = training.create_train_state(model, tx, jax.random.key(0), image_shape)
    state, _, _ = ckpts.restore(template, step)
    return Denoiser(
        model=model, variables=state.variables(), config=config, image_shape=image_shape, workdir=ckpt_dir.parent
    )
