"""Plain (not denoising) dense autoencoder 784 → 64 (relu) → 784 (sigmoid) on MNIST.

Source: reference setup 4 of the dae-jax issue on reference setups (dense vs conv
autoencoders): no corruption, adam lr 0.01, binary cross-entropy, 20 epochs, batch 128.
Its `noisy_*` metrics score the clean input against itself (infinite PSNR is capped by
MSE 0): the row to compare is the reconstruction quality.
Variants (dae_jax.variants): faithful (default; glorot_uniform kernels, all 60,000 training
images with the test set as validation, Keras's adam at the write-up's lr 0.01) and ``:ours``
(the last 10% of train held out, warm-up + cosine peaking at lr 0.01).

Command (full MNIST, 2-core CPU, about 1.5 minutes):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/dense64_ae.py --workdir=workdirs/dense64_ae
  (the ours variant: --config=experiments/configs/dense64_ae.py:ours)
Measured: results/README.md (mean ± std over 3 seeds, 10k clean test images).
"""

import ml_collections

from dae_jax import configs, variants


def get_config(variant: str = "faithful"):
    config = variants.keras_layers(configs.base())
    config.model.name = "dense64"
    config.corruption = ml_collections.ConfigDict({"name": "none"})
    config.data.validation_fraction = 0  # all 60k train; the test set validates
    variants.keras_optimizer(config, "adam", learning_rate=0.01)
    config.num_epochs = 20
    return variants.select(config, variant, learning_rate=0.01)
