"""The best MNIST denoiser at Gaussian sigma 0.5 that dae-jax trains within one hour on the 2-core CPU.

Setup (ours, not a reference write-up): the unet32 preset (dae_jax.nn.models: conv 32 / 64 / 64
channels at 28 / 14 / 7 pixels, additive skips from the encoder at 28 and 14 pixels, 166,849
parameters), noise x + 0.5 N(0, 1) clipped to [0, 1] and redrawn every batch, binary
cross-entropy, adam 1e-3 with cosine decay to 0 over the run, batch 128.

Command (full MNIST, 2-core CPU):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/unet32_best.py --workdir=workdirs/unet32_best
Cost: 28 min on the 2-core CPU (~33 s per epoch, ~1,950 images/s).
Expected: well above the reference conv DAEs' ~19.3-19.5 dB test PSNR.
Measured (10k test images, fixed noise): PSNR 21.35 dB (noisy input 9.38), SSIM 0.898 (0.412),
BCE 0.0859; 1.9 dB above conv32_adadelta (19.48 dB), 4.6 dB above BM3D; validation PSNR was
still rising by 0.01 dB per epoch at the end. results/unet32_best/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "unet32"
    config.corruption.sigma = 0.5
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.lr_schedule = "cosine"
    config.num_epochs = 50
    return config
