"""Entry point: ``python experiments/main.py --config=experiments/configs/<setup>.py --workdir=DIR``.

Overrides: ``--config.num_epochs=3 --config.corruption.sigma=0.3``. Same as ``dae-jax train``.
"""

import sys

from dae_jax import cli

if __name__ == "__main__":
    cli.main([sys.argv[0], "train", *sys.argv[1:]])
