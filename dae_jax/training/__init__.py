"""Training: ``state`` and ``steps`` (the jitted train and eval steps; no I/O), ``feeds`` and
``device_loop`` (how steps are fed: arrays, streamed files, device-resident), ``checkpoints``
(orbax, checksums, resume), ``workdir`` (the run's files), ``loop`` (``train_and_evaluate``) and ``sweep``
(grids of runs).

This ``__init__`` imports nothing, so ``dae_jax.training.steps`` loads without the loop, TFDS or matplotlib.
"""
