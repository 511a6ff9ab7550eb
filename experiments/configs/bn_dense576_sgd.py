"""BatchNorm/strided-conv DAE with a dense 576 bottleneck on MNIST, Gaussian sigma 0.3 clipped, SGD 0.5, BCE.

Source: reference setup 2 of the dae-jax issue on reference setups (a Keras write-up):
encoder Conv(16,3,relu,same) → BatchNorm → MaxPool 2 → Conv(32,3,stride 2,same,relu) →
BatchNorm → MaxPool 2 → Conv(64,3,stride 2,same,relu) → BatchNorm → Flatten → Dense(576);
decoder Reshape(3,3,64) → ConvTranspose(32,3,stride 2,valid,relu) → ConvTranspose(16,3,
stride 2,same,relu) → ConvTranspose(1,3,stride 2,same,sigmoid). Train/validation = 80/20
split of the training set with seed 13 (a seeded permutation here; Keras' exact rows cannot
be matched through TFDS' storage order). The write-up gives no epoch count: we use 10.
BatchNorm statistics are taken over the global batch, so any device count trains the same.

Command (full MNIST, 2-core CPU, 2 min 52 s in all):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/bn_dense576_sgd.py --workdir=workdirs/bn_dense576_sgd
Measured (10k test images, fixed sigma-0.3 noise): PSNR 18.92 dB (noisy input 13.33), SSIM 0.822
(0.583), BCE 0.1068; results/bn_dense576_sgd/.
"""

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "bn_dense576"
    config.corruption.sigma = 0.3
    config.optimizer = "sgd"
    config.learning_rate = 0.5
    config.num_epochs = 10
    config.data.validation_fraction = 0.2
    config.data.validation_split_seed = 13
    return config
