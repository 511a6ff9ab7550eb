"""Conv DAE on MNIST, Gaussian noise sigma 0.5 clipped, adadelta, BCE.

Source: F. Chollet, "Building Autoencoders in Keras" (Keras blog, 2016), section
"Application to image denoising": Conv(32,3x3,relu,same) → MaxPool 2 → Conv(32) → MaxPool 2
(code 7x7x32) / Conv(32) → UpSampling 2 → Conv(32) → UpSampling 2 → Conv(1, sigmoid);
x_noisy = clip(x + 0.5·N(0,1), 0, 1); adadelta (Keras-2 defaults lr 1.0, rho 0.95, eps 1e-7);
binary cross-entropy; batch 128. The blog trains 100 epochs and reports only pictures
(validation loss about 0.10). We run 10 epochs.

Command (full MNIST, 2-core CPU, 1 min 49 s in all at ~8,000 images/s):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/conv32_adadelta.py --workdir=workdirs/conv32_adadelta
Expected: test BCE about 0.10 (the blog's validation loss after 100 epochs).
Measured (10 epochs, 10k test images, fixed noise): BCE 0.0996, PSNR 19.48 dB (noisy input
9.38), SSIM 0.841 (noisy input 0.412); results/conv32_adadelta/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "conv32"
    config.corruption.sigma = 0.5
    config.optimizer = "adadelta"
    config.loss = "bce"
    config.batch_size = 128
    config.num_epochs = 10
    return config
