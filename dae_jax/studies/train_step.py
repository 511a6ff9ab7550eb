"""dae-jax's side of the training benchmark (``dae-jax bench``): ``JaxRunner``, the isolated train step.

The peers' sides are the ``Runner`` classes of dae_jax/studies/peers/*_models.py; the command users run
is ``cli_train.CliRunner``; the benchmark's loop, rounds and tables are ``benchmark.measure``'s.
"""

from __future__ import annotations

import time

import numpy as np

from dae_jax.studies.bench_report import xla_flops


class JaxRunner:
    """dae-jax's jitted data-parallel train step on ``recipe``'s reference config, same interface as the peers'.

    The state and step are built from the config's ``Setup`` as ``dae_jax.train`` builds them (micro-batched
    on CPU, on ``setup.training_mesh``'s devices). Variant ``resident``: the accelerator fast path, the images on the
    devices and ``steps`` steps in one jitted ``lax.scan`` (``dae_jax.training.device_loop``); ``resident_bf16``:
    the same computing in bfloat16 on float32 parameters (``config.compute_dtype``; for GPUs and TPUs).
    """

    VARIANTS = (None, "resident", "resident_bf16")
    DEFAULT_VARIANT = None

    def __init__(self, recipe, batch_size: int, images: np.ndarray, variant: str | None = None):
        import jax

        from dae_jax import configs, sharding
        from dae_jax.nn import models
        from dae_jax.setup import training_mesh
        from dae_jax.training import device_loop

        if variant not in self.VARIANTS:
            raise ValueError(f"dae-jax variant {variant!r}; choose one of {self.VARIANTS}.")
        config = configs.load(recipe.config) if recipe.config else configs.base()
        config.batch_size = batch_size
        if variant == "resident_bf16":
            config.compute_dtype = "bfloat16"
        mesh = training_mesh(config)  # as dae-jax train runs it
        sharding.check_batch_size(batch_size, mesh)
        self.state, train_step, run_setup = _state_and_step(config, mesh)
        self.params = models.param_count(self.state.params)
        self.key = run_setup.keys.train
        n = len(images) // batch_size * batch_size
        self.batches = [
            sharding.global_batch(
                {"image": images[i : i + batch_size], "row": np.arange(i, i + batch_size, dtype=np.int32)}, mesh
            )
            for i in range(0, n, batch_size)
        ]
        self.step = sharding.data_parallel(train_step, mesh, donate_state=True)
        self.resident = variant in ("resident", "resident_bf16")
        if self.resident:
            self.images = device_loop.put_images(images[:n], mesh)
            self.multi_step = device_loop.make_multi_step(train_step, mesh)
            self.rows = np.arange(n).reshape(-1, batch_size)
        # Model FLOPs: XLA's cost analysis of the textbook step (models' fast=False layers, no micro-batches,
        # whose scan body the analysis would count once), the work every framework's layers do. dae-jax's own
        # formulation does less (its upsample-convs), so its GFLOP/s is an effective rate, like the peers'.
        textbook = config.copy_and_resolve_references()
        textbook.model.fast, textbook.micro_batch_size = False, 0
        state, plain, _ = _state_and_step(textbook, mesh)
        plain = sharding.data_parallel(plain, mesh, donate_state=False)
        # The cost of one device's program, which sees batch_size / devices images.
        flops = xla_flops(plain.lower(state, self.batches[0], self.key))
        self.flops_per_image = flops * mesh.devices.size / batch_size
        device = jax.devices()[0]
        self.device = {"platform": device.platform, "device_kind": device.device_kind, "count": mesh.devices.size}
        how = "lax.scan over steps, images on device" if self.resident else "one jitted step per batch"
        how += ", bfloat16 compute" if variant == "resident_bf16" else ""
        self.description = (
            f"dae-jax (jax {jax.__version__}), jit(shard_map) over {mesh.devices.size} {device.platform}, {how}"
        )

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps, the final state ready."""
        import jax

        start = time.perf_counter()
        if self.resident:
            order = self.rows[np.arange(steps) % len(self.rows)]
            self.state, losses = self.multi_step(self.state, self.images, order, self.key)
        else:
            for i in range(steps):
                self.state, _ = self.step(self.state, self.batches[i % len(self.batches)], self.key)
        jax.block_until_ready(self.state)
        return time.perf_counter() - start


def _state_and_step(config, mesh):
    """(replicated initial state, per-device train step, Setup) of ``config`` on ``mesh``, as a run builds them."""
    import jax

    from dae_jax import sharding
    from dae_jax.setup import Setup
    from dae_jax.training import state, steps

    setup = Setup.from_config(config, steps_per_epoch=10**6, num_devices=mesh.devices.size)
    initial = jax.device_put(state.create_train_state(setup), sharding.replicated(mesh))
    return initial, steps.make_train_step(setup), setup
