"""Conv DAE 32-16 on MNIST, Gaussian noise sigma 0.5 clipped, adam, BCE, 10 epochs, batch 128.

Source: reference setup 3 of the dae-jax issue on reference setups (a Keras/TensorFlow
write-up): Conv(32,3x3,relu,same) → MaxPool 2 → Conv(16) → MaxPool 2 (code 7x7x16) /
Conv(16) → UpSampling 2 → Conv(32) → UpSampling 2 → Conv(1, sigmoid); adam (Keras defaults,
lr 1e-3); binary cross-entropy.

Command (full MNIST, 2-core CPU, 66 s in all):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/conv32_16_adam.py --workdir=workdirs/conv32_16_adam
Expected: denoised digits clearly better than the noisy input (the write-up shows pictures).
Measured (10k test images, fixed noise): PSNR 19.29 dB (noisy input 9.38), SSIM 0.835 (0.412),
BCE 0.1013; results/conv32_16_adam/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "conv32_16"
    config.corruption.sigma = 0.5
    config.optimizer = "adam"
    config.num_epochs = 10
    return config
