"""Entry point: ``python experiments/main.py --config=experiments/configs/<setup>.py --workdir=DIR``.

Overrides: ``--config.num_epochs=3 --config.corruption.sigma=0.3``. Same as ``dae-jax train``.
"""

from absl import app

from dae_jax import cli

if __name__ == "__main__":
    app.run(cli.train_main)
