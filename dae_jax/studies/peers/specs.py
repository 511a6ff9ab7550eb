"""What a peer must rebuild: dae-jax's layer specs, parsed, and the training recipe of a model preset.

The grammar is the one in the ``dae_jax.nn.layers`` docstring ("conv 32 s2 valid k5 relu",
"pool same", "reshape 3x3x64", "save skip1", ...). The peers build the textbook layer of each raw
spec where dae-jax's ``layers.plan`` merges some ("up" + "conv" into one conv step): the same math.
The recipe of a preset (optimizer and its hyperparameters, loss, corruption) is the one of the
reference config in experiments/configs that trains it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TypeVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class Layer:
    op: str  # conv | tconv | dense | bn | pool | up | resize | flatten | reshape | save | add
    size: int = 0  # features (conv, tconv), units (dense) or target side (resize)
    stride: int = 1
    kernel: int = 3
    same: bool = True  # 'same' padding (conv, tconv, pool); pool's default is 'valid'
    relu: bool = False
    shape: tuple[int, ...] = ()  # reshape target (H, W, C)
    zero: bool = False  # conv, tconv: kernel (and bias) start at 0, e.g. a residual branch that starts as a no-op
    name: str = ""  # save, add: the saved activation's name


def parse(spec: str) -> Layer:
    """One dae-jax layer spec -> Layer; ValueError naming an unknown one."""
    op, *words = spec.split()
    relu = "relu" in words
    options = [w for w in words if w != "relu"]
    if op in ("conv", "tconv"):
        kernel = int(next((w[1:] for w in options if w.startswith("k")), 3))
        stride = 2 if "s2" in options else 1
        return Layer(op, int(options[0]), stride, kernel, "valid" not in options, relu, zero="zero" in options)
    if op in ("dense", "resize"):
        return Layer(op, int(options[0]), relu=relu)
    if op == "pool":
        return Layer(op, same="same" in options)
    if op == "reshape":
        return Layer(op, shape=tuple(int(d) for d in options[0].split("x")))
    if op in ("save", "add"):
        return Layer(op, name=options[0])
    if op in ("bn", "up", "flatten"):
        return Layer(op)
    raise ValueError(f"Unknown layer spec {spec!r}; see the dae_jax.nn.layers docstring for the valid ones.")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A model preset with the training recipe of its reference config."""

    preset: str
    config: str | None  # experiments/configs/<config>.py (None when no config trains the preset: the base config)
    layers: tuple[Layer, ...]  # encoder then decoder
    image_shape: tuple[int, int, int]  # (H, W, C)
    loss: str  # "bce" (logits) or "mse"
    optimizer: str
    hyperparameters: dict  # every argument of dae_jax.optimizers.<optimizer>, defaults filled in
    sigma: float | None  # Gaussian noise std, clipped to [0, 1]; None: no corruption
    # The config's lr_schedule, for the record: the peers keep learning_rate constant. Timing steps, that is
    # one scalar per step; a study that trains a peer to a quality must check it is "constant".
    lr_schedule: str = "constant"


# The presets the peers rebuild: every MNIST preset. Not superres: its configs train on RGB photographs
# (48x48x3, 64x64x3) corrupted by JPEG ('jpeg', its first config by name: jpeg_artifacts), 'downscale' or
# 'low_resolution', which the peers' train steps do not implement and benchmark.load_images (MNIST) does not feed.
PRESETS = (
    "conv32",
    "conv32_16",
    "bn_dense576",
    "conv64",
    "dense64",
    "dense32",
    "linear16",
    "unet32",
    "unet32_residual",
)

T = TypeVar("T")


def forward(layers: tuple[Layer, ...], x: T, apply: Callable[[int, T], T], add: Callable[[T, T], T]) -> T:
    """x through ``layers``: ``apply(i, x)`` for ``layers[i]``, and a dict of saved activations for "save"/"add".

    The one walk both peers share: torch runs it in every forward pass, Keras once on symbolic tensors
    to wire its functional graph. An "add" needs exactly the saved shape, as in dae-jax: torch would
    otherwise broadcast, say, a saved 1-channel input over 32 channels without a word.
    """
    saved: dict[str, T] = {}
    for i, layer in enumerate(layers):
        if layer.op == "save":
            saved[layer.name] = x
        elif layer.op == "add":
            if layer.name not in saved or tuple(saved[layer.name].shape) != tuple(x.shape):
                found = tuple(saved[layer.name].shape) if layer.name in saved else "nothing"
                raise ValueError(f"'add {layer.name}' on a {tuple(x.shape)} activation; saved: {found}.")
            x = add(x, saved[layer.name])
        else:
            x = apply(i, x)
    return x


def _reference_configs() -> dict[str, str]:
    """{model preset: config name} for every config in experiments/configs (the first by name wins) that
    the peers can train: one with clipped outputs (``clip_output``, which they do not implement) is skipped."""
    from dae_jax import configs

    found = {}
    for name in configs.names():
        config = configs.load(name)
        if not config.get("clip_output"):
            found.setdefault(config.model.name, name)
    return found


def recipe(preset: str) -> Recipe:
    """The Recipe of ``preset``; ValueError for an unknown preset or a corruption the peers do not implement."""
    # Imported here: a peer's worker process unpickles Recipes without loading JAX.
    from dae_jax import configs, optimizers
    from dae_jax.nn import models

    if preset not in PRESETS:
        raise ValueError(f"Unknown model preset {preset!r} for the peers; choose one of {list(PRESETS)}.")
    config_name = _reference_configs().get(preset)
    config = configs.load(config_name) if config_name else configs.base()
    corruption = config.corruption.to_dict()
    if corruption["name"] == "gaussian" and corruption.get("clip", True):
        sigma = float(corruption.get("sigma", 0.5))
    elif corruption["name"] == "none":
        sigma = None
    else:
        raise ValueError(
            f"Config {config_name!r} corrupts with {corruption}; the peers implement only clipped 'gaussian' "
            "and 'none'."
        )
    given = {"learning_rate": config.learning_rate, **config.optimizer_kwargs}
    signature = inspect.signature(optimizers.OPTIMIZERS[config.optimizer])
    defaults = {p.name: p.default for p in signature.parameters.values()}
    model = models.make(preset, **{k: v for k, v in config.model.items() if k != "name"})
    return Recipe(
        preset=preset,
        config=config_name,
        layers=tuple(parse(s) for s in (*model.encoder, *model.decoder)),
        image_shape=tuple(config.image_shape),
        loss=config.loss,
        optimizer=config.optimizer,
        hyperparameters=defaults | {k: v for k, v in given.items() if v is not None},
        sigma=sigma,
        lr_schedule=config.lr_schedule,
    )


def differences(config, recipe: Recipe) -> list[str]:
    """The fields in which ``config`` trains another recipe than ``recipe`` (the peers train the recipe)."""
    given = {"learning_rate": config.learning_rate, **config.optimizer_kwargs}
    sigma = None if config.corruption.name == "none" else config.corruption.get("sigma")
    checks = {
        "optimizer": config.optimizer == recipe.optimizer,
        "learning_rate/optimizer_kwargs": all(
            recipe.hyperparameters.get(k) == v for k, v in given.items() if v is not None
        ),
        "loss": config.loss == recipe.loss,
        "corruption.sigma": sigma == recipe.sigma,
        "lr_schedule (the peers' rate is constant)": config.lr_schedule == "constant",
        "clip_output (the peers do not clip)": not config.get("clip_output"),
    }
    return [name for name, same in checks.items() if not same]


def noisy_batches(images: np.ndarray, batch_size: int, sigma: float | None) -> list[np.ndarray]:
    """What every framework denoises when inference is timed: whole batches of ``images`` (uint8 [N, H, W, C])
    as float32 [batch_size, H, W, C] in [0, 1], with clipped Gaussian noise of ``sigma`` (seed 0: the same
    inputs in every worker process)."""
    n = len(images) // batch_size * batch_size
    clean = images[:n].astype(np.float32) / 255.0
    noise = np.random.default_rng(0).normal(size=clean.shape).astype(np.float32)
    noisy = clean if sigma is None else np.clip(clean + sigma * noise, 0.0, 1.0)
    return [np.ascontiguousarray(noisy[i : i + batch_size]) for i in range(0, n, batch_size)]
