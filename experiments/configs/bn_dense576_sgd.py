"""BatchNorm/strided-conv DAE with a dense 576 bottleneck on MNIST, Gaussian sigma 0.3 clipped, SGD 0.5, BCE.

Source: reference setup 2 of the dae-jax issue on reference setups (a Keras write-up):
encoder Conv(16,3,relu,same) → BatchNorm → MaxPool 2 → Conv(32,3,stride 2,same,relu) →
BatchNorm → MaxPool 2 → Conv(64,3,stride 2,same,relu) → BatchNorm → Flatten → Dense(576);
decoder Reshape(3,3,64) → ConvTranspose(32,3,stride 2,valid,relu) → ConvTranspose(16,3,
stride 2,same,relu) → ConvTranspose(1,3,stride 2,same,sigmoid). Train/validation = 80/20
split of the training set with seed 13 (a seeded permutation here; Keras' exact rows cannot
be matched through TFDS' storage order). The write-up gives no epoch count: we use 10.
BatchNorm statistics are taken over the global batch, so any device count trains the same.
Variants (dae_jax.variants): faithful (default; glorot_uniform kernels, BatchNorm momentum 0.99
and epsilon 1e-3, noisy training images made once, SGD 0.5 without momentum) and ``:ours`` (fresh
noise every step, warm-up + cosine peaking at 0.5; the same 80/20 split).

Command (full MNIST, 2-core CPU, about 3 minutes):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/bn_dense576_sgd.py --workdir=workdirs/bn_dense576_sgd
  (the ours variant: --config=experiments/configs/bn_dense576_sgd.py:ours)
Measured: results/README.md (mean ± std over 3 seeds, 10k test images, fixed sigma-0.3 noise). Those
runs used the tf.data loop (their metadata.json says so); since 7e3ad96 this model trains by default in
the faster device-resident loop, which orders the epochs differently: add --config.device_resident=False
to rerun them exactly.
"""

from dae_jax import configs, variants


def get_config(variant: str = "faithful"):
    config = variants.keras_layers(configs.base())
    config.model.name = "bn_dense576"
    config.corruption.sigma = 0.3
    config.train_noise = "fixed"
    variants.keras_optimizer(config, "sgd", learning_rate=0.5)
    config.num_epochs = 10
    config.data.validation_fraction = 0.2
    config.data.validation_split_seed = 13
    return variants.select(config, variant, learning_rate=0.5)
