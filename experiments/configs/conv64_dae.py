"""Conv DAE 64-64-32 with a 4x4x32 code and nearest-resize decoder on MNIST, sigma 0.5, adam 1e-3, BCE.

Source: reference setup 4 of the dae-jax issue on reference setups (conv vs dense
denoising): Conv(64)-Pool-Conv(64)-Pool-Conv(32)-Pool('same') → 4x4x32; nearest-neighbour
resize to 7, 14, 28, each followed by Conv(32), Conv(64), Conv(64); then Conv(1) logits;
noise redrawn every batch; adam 1e-3; 10 epochs; batch 128.

Command (full MNIST, 2-core CPU, 6 min 41 s in all at ~1,650 images/s):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/conv64_dae.py --workdir=workdirs/conv64_dae
Measured (10k test images, fixed noise): PSNR 19.38 dB (noisy input 9.38), SSIM 0.836 (0.412),
BCE 0.1007; results/conv64_dae/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "conv64"
    config.corruption.sigma = 0.5
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.num_epochs = 10
    return config
