"""Dense denoising autoencoder 784 → 32 (relu) → 784 (sigmoid) on MNIST, Gaussian sigma 0.5 clipped.

Source: reference setup 4 of the dae-jax issue on reference setups (dense vs conv
denoising): adam lr 1e-3, binary cross-entropy, 30 epochs, batch 128.
Variants (dae_jax.variants): faithful (default; glorot_uniform kernels, noisy training images
made once, all 60,000 training images with the test set as validation, Keras's adam) and
``:ours`` (fresh noise every step, the last 10% of train held out, warm-up + cosine peaking at
lr 1e-2).

Command (full MNIST, 2-core CPU, about 1.5 minutes):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/dense32_dae.py --workdir=workdirs/dense32_dae
  (the ours variant: --config=experiments/configs/dense32_dae.py:ours)
Measured: results/README.md (mean ± std over 3 seeds, 10k test images, fixed noise).
"""

from dae_jax import configs, variants


def get_config(variant: str = "faithful"):
    config = variants.keras_layers(configs.base())
    config.model.name = "dense32"
    config.corruption.sigma = 0.5
    config.train_noise = "fixed"
    config.data.validation_fraction = 0  # all 60k train; the test set validates
    variants.keras_optimizer(config, "adam")
    config.num_epochs = 30
    return variants.select(config, variant, learning_rate=1e-2)
