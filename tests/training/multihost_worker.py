"""One process of tests/training/test_multihost.py: a few data-parallel train steps on fixed global batches.

  python tests/training/multihost_worker.py OUT.json NUM_PROCESSES PROCESS_ID PORT DEVICES_PER_PROCESS

Writes {"losses": [...], "param_sums": [...]}; each process feeds only its rows of every global batch.
"""

import json
import sys

import jax

out, num_processes, process_id, port, devices = sys.argv[1], *map(int, sys.argv[2:])
jax.config.update("jax_num_cpu_devices", devices)

from dae_jax import configs, sharding  # noqa: E402
from dae_jax.setup import Setup  # noqa: E402
from dae_jax.training import state as state_lib  # noqa: E402
from dae_jax.training import steps  # noqa: E402

if num_processes > 1:
    sharding.initialize_distributed(f"localhost:{port}", num_processes, process_id)

import numpy as np  # noqa: E402

mesh = sharding.make_mesh()
assert mesh.devices.size == num_processes * devices and jax.process_count() == num_processes
config = configs.base()
config.optimizer, config.micro_batch_size = "adam", 4
setup = Setup.from_config(config)
step = sharding.data_parallel(steps.make_train_step(setup), mesh, True)
state = jax.device_put(state_lib.create_train_state(setup, jax.random.key(0)), sharding.replicated(mesh))
global_batches = np.random.default_rng(0).integers(0, 256, (3, 32, 28, 28, 1), dtype=np.uint8)
rows = 32 // num_processes
losses = []
for batch in global_batches:
    local = {"image": batch[process_id * rows : (process_id + 1) * rows]}
    state, metrics = step(state, sharding.global_batch(local, mesh), jax.random.key(7))
    losses.append(float(metrics["loss"]))
sums = [float(np.asarray(jax.device_get(x)).astype(np.float64).sum()) for x in jax.tree.leaves(state.params)]
with open(out, "w") as f:
    json.dump({"losses": losses, "param_sums": sums}, f)
