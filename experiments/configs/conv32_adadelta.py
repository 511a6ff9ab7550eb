"""Conv DAE on MNIST, Gaussian noise sigma 0.5 clipped, adadelta, BCE.

Source: F. Chollet, "Building Autoencoders in Keras" (Keras blog, 2016), section
"Application to image denoising": Conv(32,3x3,relu,same) → MaxPool 2 → Conv(32) → MaxPool 2
(code 7x7x32) / Conv(32) → UpSampling 2 → Conv(32) → UpSampling 2 → Conv(1, sigmoid);
x_noisy = clip(x + 0.5·N(0,1), 0, 1); adadelta (Keras-2 defaults lr 1.0, rho 0.95, eps 1e-7);
binary cross-entropy; batch 128. The blog trains 100 epochs and reports only pictures
(validation loss about 0.10). We run 10 epochs.

Command (full MNIST, 2-core CPU, about 10 minutes):
  DAE_JAX_MNIST_DIR=../shared/data/mnist python experiments/main.py \
      --config=experiments/configs/conv32_adadelta.py --workdir=/tmp/dae/conv32_adadelta
Measured: see results/conv32_adadelta/eval.json and the table in README.md.
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.model.name = "conv32"
    config.corruption.sigma = 0.5
    config.optimizer = "adadelta"
    config.loss = "bce"
    config.batch_size = 128
    config.num_epochs = 10
    return config
