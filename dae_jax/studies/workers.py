"""Each framework of a benchmark in its own process: ``Worker`` (the parent's end) and ``serve`` (the child's).

Frameworks never share a process: in one process their thread pools slow each other down several
times. A worker imports its framework, then builds one runner at a time and times it on request.
A runner is the object that does the timed work of a ``task``: ``"train"`` (train steps) or
``"infer"`` (denoising batches); ``RUNNERS`` names its class, imported only in the worker.
Every runner takes ``(recipe, batch_size, images, variant)``, has ``run(steps) -> seconds``,
``params``, ``description``, a class attribute ``DEFAULT_VARIANT``, and dae-jax's also
``flops_per_image`` and ``device``.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import traceback

from dae_jax import allocator

# The packages each peer needs; a peer whose packages are missing is skipped with a notice.
PEER_PACKAGES = {"torch": ("torch",), "keras": ("keras", "tensorflow")}
PEERS = tuple(PEER_PACKAGES)
TASKS = ("train", "infer")
# (framework, task) -> "module:Class" of its runner; (framework, task, variant) where a variant has its own class.
RUNNERS = {
    ("dae-jax", "train", "cli"): "dae_jax.studies.cli_train:CliRunner",
    ("dae-jax", "train"): "dae_jax.studies.train_step:JaxRunner",
    ("dae-jax", "infer"): "dae_jax.studies.inference:JaxPredictor",
    ("torch", "train"): "dae_jax.studies.peers.torch_models:Runner",
    ("torch", "infer"): "dae_jax.studies.peers.torch_models:Predictor",
    ("keras", "train"): "dae_jax.studies.peers.keras_models:Runner",
    ("keras", "infer"): "dae_jax.studies.peers.keras_models:Predictor",
}


def runner_class(framework: str, task: str, variant: str | None = None) -> type:
    module, _, name = RUNNERS.get((framework, task, variant), RUNNERS[framework, task]).partition(":")
    return getattr(importlib.import_module(module), name)


def _version(framework: str, module, task: str) -> str:
    if framework == "dae-jax":
        import jax

        import dae_jax
        from dae_jax import sharding

        # One XLA:CPU device per core (before JAX starts), as dae-jax train runs, and inference run inline
        # as dae-jax denoise runs it.
        sharding.use_cpu_cores(inline=task == "infer")
        return f"dae-jax {dae_jax.__version__}, jax {jax.__version__}"
    return module.version()


def serve(conn, framework: str, variant: str | None, task: str) -> None:
    """Worker process: builds and warms up a runner per ``("build", recipe, batch_size, images, warmup)``, times
    ``("run", steps)``, and tells its ``_info`` on ``("info",)``.

    The first reply is ``(version, variant)``, the variant being the runner's default when None.
    Every reply is ``("ok", value)`` or ``("error", message)``; ``("stop",)`` ends it.
    """
    runner = None
    allocator.keep_freed_memory()  # every framework alike: freed blocks reused, not faulted in again
    try:
        cls = runner_class(framework, task, variant)
        version = _version(framework, importlib.import_module(cls.__module__), task)
        variant = variant or cls.DEFAULT_VARIANT  # the runner refuses an unknown variant
        conn.send(("ok", (version, variant)))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:  # the parent is gone
            return
        if command == "stop":
            return
        try:
            if command == "build":
                recipe, batch_size, images, warmup = args
                runner = None  # free the previous model before building the next
                runner = cls(recipe, batch_size, images, variant)
                runner.run(warmup)
                conn.send(("ok", None))
            elif command == "info":
                conn.send(("ok", _info(runner)))
            else:
                conn.send(("ok", runner.run(*args)))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"))


def _info(runner) -> dict:
    """What a runner tells besides its times: every runner's ``params`` and ``description``; dae-jax's
    ``flops_per_image`` and ``device``; the CLI's ``startup_s`` (of its latest run)."""
    info = {"params": runner.params, "description": runner.description}
    return info | {k: getattr(runner, k) for k in ("flops_per_image", "device", "startup_s") if hasattr(runner, k)}


class Worker:
    """A framework in its own process (spawned, so no thread pool is shared with the parent or the others)."""

    def __init__(self, framework: str, variant: str | None, task: str = "train"):
        self.framework, self.name = framework, framework if variant is None else f"{framework}:{variant}"
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, framework, variant, task), daemon=True)
        self.process.start()
        self.version = None

    def start(self) -> None:
        """Waits until the framework is imported; learns its version and the variant it runs."""
        self.version, self.variant = self.receive()
        self.name = self.framework if self.variant is None else f"{self.framework}:{self.variant}"

    def receive(self):
        if not self.conn.poll(900):
            raise TimeoutError(f"{self.name}: worker gave no answer in 15 minutes.")
        status, value = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"{self.name}: {value}")
        return value

    def send(self, *command) -> None:
        self.conn.send(command)

    def call(self, *command):
        self.send(*command)
        return self.receive()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:  # the worker is gone already
                pass
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


def parse_peers(text: str) -> list[tuple[str, str | None]]:
    """``"torch,keras:step"`` -> [("torch", None), ("keras", "step")]; frameworks not installed dropped."""
    peers = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        framework, _, variant = item.partition(":")
        if framework not in PEERS:
            raise ValueError(f"Unknown peer {framework!r}; choose from {sorted(PEERS)} (e.g. --peers torch,keras).")
        missing = [p for p in PEER_PACKAGES[framework] if importlib.util.find_spec(p) is None]
        if missing:
            print(
                f"notice: {', '.join(missing)} not installed: skipping the {framework} peer "
                '(install the peers with pip install -e ".[bench]").',
                flush=True,
            )
            continue
        peers.append((framework, variant or None))
    return peers
