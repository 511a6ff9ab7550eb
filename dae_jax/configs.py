"""Configs: the base config (every field dae-jax reads), config files by name or path, overrides, checks.

A setup's config file (``experiments/configs/<name>.py``) defines ``get_config()``, which starts
from ``base()`` and overrides what its setup changes (Flax examples' layout). ``load`` reads one,
``override`` applies a ``--config.FIELD=VALUE`` text typed by the field it sets, ``check`` refuses a
config that cannot run (one line naming the field and a valid value), and ``smoke`` shrinks any
config to seconds. Nothing here imports JAX.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import math
import os
from pathlib import Path

import ml_collections
from ml_collections.config_dict import placeholder

ConfigDict = ml_collections.ConfigDict
CONFIGS_DIR_ENV = "DAE_JAX_CONFIGS"  # a directory of config files, searched first by name
MAX_SEED = 2**32 - 1  # jax.random.key and numpy's SeedSequence both take seeds up to here
MAX_INT = 2**31 - 1  # counts (epochs, batch sizes, steps) become int32 inside the steps and schedules


def base() -> ConfigDict:
    """Every field dae-jax reads, with its default."""
    c = ConfigDict()
    c.seed = 0
    c.image_shape = (28, 28, 1)  # (H, W, C) of the dataset's images; the model is built for it
    # Model preset from dae_jax.nn.models.MODELS; other keys override the preset's fields, e.g. kernel_init:
    # "lecun_normal" (Flax's default) or "glorot_uniform" (Keras's: the reference write-ups' layers).
    c.model = ConfigDict({"name": "conv32", "kernel_init": "lecun_normal"})
    # Corruption from dae_jax.corruptions.CORRUPTIONS; other keys are its parameters.
    c.corruption = ConfigDict({"name": "gaussian", "sigma": 0.5, "clip": True})
    # "fresh": new noise for every image at every step (dae-jax's default); "fixed": each training image's
    # noise drawn once and reused every epoch, as the Keras write-ups' precomputed x_train_noisy.
    c.train_noise = "fresh"
    c.loss = "bce"  # dae_jax.nn.losses.LOSSES: "bce" (sigmoid output), "mse" or "psnr" (linear)
    c.clip_output = False  # True: linear outputs clipped to [0, 1], trained straight-through (losses.clip_to_unit)
    c.optimizer = "adadelta"  # dae_jax.optimizers.OPTIMIZERS
    c.learning_rate = placeholder(float)  # None: the optimizer's Keras default
    c.optimizer_kwargs = ConfigDict()  # e.g. {"rho": 0.95}
    # dae_jax.optimizers.SCHEDULES: constant | cosine | warmup_cosine | exponential | piecewise; the
    # learning rate above is its peak, the run's steps its horizon; kwargs e.g. {"warmup": 0.05} (fractions).
    c.lr_schedule = "constant"
    c.lr_schedule_kwargs = ConfigDict()
    # e.g. 0.999: validation, test, figures and the loaded model use the parameters' moving average with
    c.ema_decay = placeholder(float)  # this decay (TrainState.with_ema); None: the parameters themselves
    c.batch_size = 128  # global, split evenly over all devices
    # Each device's rows in chunks of this many (gradients summed; same update). None: on CPU up to 16, by the
    # layers' outputs, for conv models without BatchNorm fast in scans; 0: none (dae_jax.setup.micro_batch_size).
    c.micro_batch_size = placeholder(int)
    c.compute_dtype = "float32"  # "bfloat16": compute in bf16 on float32 parameters (GPU/TPU; slow on CPU)
    c.eval_batch_size = 1000
    c.num_epochs = 10
    c.max_steps_per_epoch = placeholder(int)  # None: the whole training split
    c.max_eval_examples = placeholder(int)  # None: the whole validation/test split
    c.log_every_steps = 50  # also how often the loss is checked for NaN/inf
    # True: the training images on the devices, log_every_steps steps per jitted call (training.device_loop,
    # one process); False: tf.data batches, up to log_every_steps a call where the model is scan-friendly
    # (training.feeds); None: True where it can be and is faster (device_loop.wanted).
    c.device_resident = placeholder(bool)
    c.checkpoint_every_epochs = 1
    c.checkpoint_every_steps = placeholder(int)  # also save every N steps (None: only per epoch)
    c.restore_step = placeholder(int)  # resume from this step instead of the latest (later ones are deleted)
    c.keep_checkpoints = 3
    c.num_figure_images = 10
    c.analyses = ()  # dae_jax.eval.analysis.ANALYSES run after training, e.g. ("pca_angles",): <workdir>/<name>.json
    c.smoke = False  # True: shrink to 1 epoch of 2 steps and 256 eval images (configs.smoke)
    c.data = _data()
    return c


def _data() -> ConfigDict:
    """The ``data`` fields of ``base()``: where the images come from and how they are split and viewed."""
    return ConfigDict(
        {
            # mnist | fashion_mnist | image_folder | photos | faces (dae_jax.data.sources.DATASETS)
            "dataset": "mnist",
            "source": "auto",  # auto | idx | folder | tfds | embedded; which ones a dataset has: its docstring
            "idx_dir": placeholder(str),  # IDX dir; default $DAE_JAX_MNIST_DIR / $DAE_JAX_FASHION_MNIST_DIR
            "image_dir": placeholder(str),  # image_folder, photos, faces: a folder of image files (any depth)
            # Image folders (any sizes) are streamed from disk (stream None; False: read whole, one size), each image
            # prepared (centre crop, then shrink: faces) and viewed for training at image_shape ("crop": random crop;
            # "resize"), flipped when flip; drawn from (seed, epoch, image): dae_jax.data.views. Tests: whole images.
            "stream": placeholder(bool),
            "center_crop": placeholder(int),
            "shrink_to": placeholder(int),
            "view": "crop",
            "flip": False,
            "views_per_image": 1,  # training views of each image per epoch (a few large photos: many crops each)
            "data_dir": placeholder(str),  # TFDS data dir; default $TFDS_DATA_DIR or ~/tensorflow_datasets
            # Held out of TFDS "train": the last 10%, or a random 10% with the seed below; 0: train on all of
            # "train" and validate on "test" (the Keras write-ups' validation_data).
            "validation_fraction": 0.1,
            "validation_split_seed": placeholder(int),  # None: the last fraction; int: a seeded random one
        }
    )


# ---- config files --------------------------------------------------------------------------------


def search_dirs() -> list[Path]:
    """Where ``load`` looks for a config given by name: $DAE_JAX_CONFIGS, ./experiments/configs, the checkout's."""
    dirs = [Path(os.environ[CONFIGS_DIR_ENV])] if os.environ.get(CONFIGS_DIR_ENV) else []
    dirs += [Path.cwd() / "experiments" / "configs", Path(__file__).resolve().parents[1] / "experiments" / "configs"]
    return list(dict.fromkeys(dirs))


def find(name_or_path: str) -> Path:
    """The file of a config: a path to a ``.py`` file, or a name looked up in ``search_dirs()``."""
    path = Path(name_or_path)
    if path.suffix == ".py" or os.sep in name_or_path:
        if not path.is_file():
            raise ValueError(f"config file {name_or_path!r} does not exist.")
        return path
    for directory in search_dirs():
        if (directory / f"{name_or_path}.py").is_file():
            return directory / f"{name_or_path}.py"
    raise ValueError(f"no config named {name_or_path!r}; choose one of {names()} or give a path to a .py file.")


def names() -> list[str]:
    """The config names ``load`` finds in ``search_dirs()``, sorted."""
    return sorted({p.stem for d in search_dirs() if d.is_dir() for p in d.glob("*.py") if p.stem != "__init__"})


def load(name_or_path: str) -> ConfigDict:
    """``get_config()`` of a config file given by name ("conv32_adadelta") or path; "FILE:ARG" calls get_config(ARG)."""
    name, _, argument = name_or_path.partition(":")
    path = find(name)
    spec = importlib.util.spec_from_file_location(f"dae_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    _run(path, "loading it", spec.loader.exec_module, module)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"config file {str(path)!r} defines no get_config(); add one returning a ConfigDict.")
    call = f"get_config({argument!r})" if argument else "get_config()"
    config = _run(path, call, get_config, *([argument] if argument else []))
    if not isinstance(config, ConfigDict):
        raise ValueError(
            f"config file {str(path)!r}: get_config() returned a {type(config).__name__}; return an "
            "ml_collections.ConfigDict (start from dae_jax.configs.base())."
        )
    return config


def _run(path: Path, what: str, function, *args):
    """``function(*args)``; the config file's own error named in one line, with the file."""
    try:
        return function(*args)
    except Exception as e:
        text = " ".join(str(e).split())[:300]
        raise ValueError(f"config file {str(path)!r}: {what} raised {type(e).__name__}: {text}.") from None


# ---- overrides -----------------------------------------------------------------------------------


def _node(config: ConfigDict, field: str) -> tuple[ConfigDict, str]:
    """(the ConfigDict holding ``field``, its last name); ValueError naming an unknown field. ``config.model``
    also takes keys ``base`` lacks (a preset's encoder, decoder, ...): ``models.make`` names one it does not."""
    *parents, leaf = field.split(".")
    node, path = config, "config"
    for name in [*parents, leaf]:
        new_key = name == leaf and path == "config.model" and isinstance(node, ConfigDict)
        if not new_key and (not isinstance(node, ConfigDict) or name not in node):
            close = difflib.get_close_matches(name, list(node.keys()) if isinstance(node, ConfigDict) else [], 1)
            hint = f"; did you mean {close[0]!r}?" if close else " (dae_jax.configs.base documents them)"
            raise ValueError(f"{path} has no field {name!r}{hint}")
        if name != leaf:
            node, path = node[name], f"{path}.{name}"
    return node, leaf


def set_field(config: ConfigDict, field: str, value) -> None:
    """``config.<field> = value`` for a dotted ``field``; ValueError for an unknown field or a wrong type."""
    node, leaf = _node(config, field)
    try:
        node[leaf] = ConfigDict(value) if isinstance(value, dict) else value
    except TypeError:
        kind = node.get_type(leaf).__name__
        raise ValueError(f"config.{field} takes a {kind}, not {value!r}.") from None


def parse_value(config: ConfigDict, field: str, text: str):
    """The value ``text`` means for ``field``, read as the field's type (a Python literal where it has none)."""
    node, leaf = _node(config, field)
    kind = node.get_type(leaf) if leaf in node else None
    if kind is str:
        return text
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"config.{field} takes True or False, not {text!r}.")
        return text.lower() in ("true", "1")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if kind in (int, float, tuple, ConfigDict):
            raise ValueError(f"config.{field} takes a {kind.__name__}, not {text!r}.") from None
        return text  # a field without a type (None): plain text
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    return value


def override(config: ConfigDict, field: str, text: str) -> None:
    """Applies ``--config.<field>=<text>``: the text read as the field's type."""
    set_field(config, field, parse_value(config, field, text))


# ---- checks --------------------------------------------------------------------------------------

_POSITIVE = ("batch_size", "eval_batch_size", "num_epochs", "log_every_steps", "checkpoint_every_epochs")
_POSITIVE += ("keep_checkpoints", "num_figure_images")
_POSITIVE_OR_NONE = ("max_steps_per_epoch", "max_eval_examples", "checkpoint_every_steps")


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_numbers(tree, prefix: str) -> None:
    """ValueError naming the first NaN/inf float anywhere in a (nested) config value."""
    items = tree.items() if isinstance(tree, (dict, ConfigDict)) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}.{key}" if isinstance(key, str) else f"{prefix}[{key}]"
        if isinstance(value, (dict, ConfigDict, list, tuple)):
            _finite_numbers(value, name)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}.")


def check(config: ConfigDict) -> None:
    """Raises ValueError naming the field and a valid value for a config that cannot run: the fields' own
    values only (registry names are checked where they are built: Setup.from_config, sources.resolve_source)."""
    _finite_numbers(config.to_dict(), "config")
    for name in _POSITIVE + _POSITIVE_OR_NONE:
        value = config[name]
        if (value is not None or name in _POSITIVE) and not (_integer(value) and 1 <= value <= MAX_INT):
            raise ValueError(f"config.{name} must be a positive integer (at most 2**31 - 1), got {value!r}.")
    if not (_integer(config.seed) and 0 <= config.seed <= MAX_SEED):
        raise ValueError(f"config.seed must be an integer in [0, 2**32 - 1], got {config.seed!r}.")
    if config.train_noise not in ("fresh", "fixed"):
        raise ValueError(f"config.train_noise must be 'fresh' or 'fixed', got {config.train_noise!r}.")
    if (dtype := config.compute_dtype) not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"config.compute_dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}.")
    if config.micro_batch_size is not None and not (_integer(config.micro_batch_size) and config.micro_batch_size >= 0):
        raise ValueError(
            f"config.micro_batch_size must be 0 (off), a positive integer or None, got {config.micro_batch_size!r}."
        )
    shape = tuple(config.image_shape)
    if len(shape) != 3 or not all(_integer(d) and d >= 1 for d in shape) or shape[2] not in (1, 3):
        raise ValueError(f"config.image_shape must be (H, W, C) with C 1 or 3, got {shape}.")
    if config.learning_rate is not None and not config.learning_rate > 0:
        raise ValueError(
            f"config.learning_rate must be a number > 0 (None: the optimizer's default), got {config.learning_rate}."
        )
    if config.ema_decay is not None and not 0 < config.ema_decay < 1:
        raise ValueError(f"config.ema_decay must be None (off) or in (0, 1), e.g. 0.999, got {config.ema_decay}.")
    if (restore := config.restore_step) is not None and not (_integer(restore) and restore >= 0):
        raise ValueError(f"config.restore_step must be None (the latest) or a step number >= 0, got {restore!r}.")
    _check_data(config.data)


def _check_data(data: ConfigDict) -> None:
    fraction = data.validation_fraction
    if not (fraction == 0 or 0 < round(100 * fraction) < 100):
        raise ValueError(
            f"config.data.validation_fraction must be 0 (validate on test) or in [0.01, 0.99], got {fraction}."
        )
    if data.view not in ("crop", "resize"):
        raise ValueError(f"config.data.view must be 'crop' or 'resize', got {data.view!r}.")
    for name, lowest in (("views_per_image", 1), ("center_crop", 1), ("shrink_to", 1), ("validation_split_seed", 0)):
        value, bound = data[name], MAX_SEED if name == "validation_split_seed" else MAX_INT
        if (value is not None or name == "views_per_image") and not (_integer(value) and lowest <= value <= bound):
            none = "" if name == "views_per_image" else "None or "
            raise ValueError(f"config.data.{name} must be {none}an integer in [{lowest}, {bound}], got {value!r}.")


def smoke(config: ConfigDict) -> ConfigDict:
    """A copy of ``config`` shrunk to run in seconds: one epoch of 2 steps, small evaluation."""
    config = ConfigDict(config.to_dict())
    config.num_epochs, config.max_steps_per_epoch, config.max_eval_examples = 1, 2, 256
    config.eval_batch_size = 256  # no padding 256 images up to a full-size evaluation batch
    return config


def prepared(config: ConfigDict) -> ConfigDict:
    """The config a run trains: ``smoke`` applied when asked, then checked."""
    if config.get("smoke"):
        config = smoke(config)
    check(config)
    return config
