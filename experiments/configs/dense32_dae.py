"""Dense denoising autoencoder 784 → 32 (relu) → 784 (sigmoid) on MNIST, Gaussian sigma 0.5 clipped.

Source: reference setup 4 of the dae-jax issue on reference setups (dense vs conv
denoising): adam lr 1e-3, binary cross-entropy, 30 epochs, batch 128.

Command (full MNIST, 2-core CPU, 1 min 20 s in all):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/dense32_dae.py --workdir=workdirs/dense32_dae
Measured (10k test images, fixed noise): PSNR 15.83 dB (noisy input 9.38), SSIM 0.597 (0.412),
BCE 0.1489; results/dense32_dae/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "dense32"
    config.corruption.sigma = 0.5
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.num_epochs = 30
    return config
