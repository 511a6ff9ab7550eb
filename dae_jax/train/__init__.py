"""Training: ``state`` and ``steps`` (the jitted train and eval steps; no I/O), ``runners`` and
``device_loop`` (how steps are fed), ``checkpoints`` (orbax, checksums, resume), ``workdir`` (the
run's files), ``loop`` (``train_and_evaluate``) and ``sweep`` (grids of runs).

This ``__init__`` imports nothing, so ``dae_jax.train.steps`` loads without the loop, TFDS or matplotlib.
"""
