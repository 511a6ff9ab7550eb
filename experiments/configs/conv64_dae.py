"""Conv DAE 64-64-32 with a 4x4x32 code and nearest-resize decoder on MNIST, sigma 0.5, adam 1e-3, BCE.

Source: reference setup 4 of the dae-jax issue on reference setups (conv vs dense
denoising): Conv(64)-Pool-Conv(64)-Pool-Conv(32)-Pool('same') → 4x4x32; nearest-neighbour
resize to 7, 14, 28, each followed by Conv(32), Conv(64), Conv(64); then Conv(1) logits;
noise redrawn every batch; adam 1e-3; 10 epochs; batch 128.
Variants (dae_jax.variants): faithful (default; glorot_uniform kernels, all 60,000 training
images with the test set as validation, Keras's adam; the write-up redraws the noise, so fresh
noise is faithful here) and ``:ours`` (the last 10% of train held out, warm-up + cosine peaking at
lr 3e-3).

Command (full MNIST, 2-core CPU, 10-19 minutes with the CPU shared):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/conv64_dae.py --workdir=workdirs/conv64_dae
  (the ours variant: --config=experiments/configs/conv64_dae.py:ours)
Measured: results/README.md (mean ± std over 3 seeds; 10k test images, fixed noise).
"""

from dae_jax import configs, variants


def get_config(variant: str = "faithful"):
    config = variants.keras_layers(configs.base())
    config.model.name = "conv64"
    config.corruption.sigma = 0.5
    config.data.validation_fraction = 0  # all 60k train; the test set validates
    variants.keras_optimizer(config, "adam")
    config.num_epochs = 10
    return variants.select(config, variant, learning_rate=3e-3)
