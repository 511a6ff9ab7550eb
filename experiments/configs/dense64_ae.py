"""Plain (not denoising) dense autoencoder 784 → 64 (relu) → 784 (sigmoid) on MNIST.

Source: reference setup 4 of the dae-jax issue on reference setups (dense vs conv
autoencoders): no corruption, adam lr 0.01, binary cross-entropy, 20 epochs, batch 128.
Its `noisy_*` metrics score the clean input against itself (infinite PSNR is capped by
MSE 0): the row to compare is the reconstruction quality.

Command (full MNIST, 2-core CPU, 1 min 13 s in all):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/dense64_ae.py --workdir=workdirs/dense64_ae
Measured (10k clean test images): reconstruction PSNR 19.33 dB, SSIM 0.815, BCE 0.1038;
results/dense64_ae/.
"""

import ml_collections

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "dense64"
    config.corruption = ml_collections.ConfigDict({"name": "none"})
    config.optimizer = "adam"
    config.learning_rate = 0.01
    config.num_epochs = 20
    return config
