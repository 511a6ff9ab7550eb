"""Linear autoencoder 784 → k → 784 (no nonlinearity) with MSE on MNIST, compared with PCA.

Source: reference setup 6 of the dae-jax issue on reference setups, the known equivalence
(Bourlard & Kamp 1988; Baldi & Hornik 1989): at its optimum, a linear autoencoder trained
with squared error spans the top-k principal subspace of the (centered) training data,
though its weights need not be the principal directions themselves. After training,
``pca_angles`` (dae_jax.eval.analysis) writes the principal angles between the decoder's column
space (and the encoder's row space) and that subspace to <workdir>/pca_angles.json, with the
test MSE of rank-k PCA, the bound the model's test MSE (eval.json) approaches.
No corruption, k = 16, adam 3e-3 with cosine decay to 0, 20 epochs, batch 128 (at a constant
1e-3 the smallest principal direction was still 13 degrees off after 10 or 20 epochs).

Command (full MNIST, 2-core CPU):
  DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train \\
      --config=experiments/configs/linear_ae_pca.py --workdir=workdirs/linear_ae_pca
Expected: small principal angles for the decoder; test MSE close to PCA's.
Measured (20 epochs, 54,000 training images; 70 s on the 2-core CPU): decoder angles to
PCA's top-16 subspace 0.05-0.20 degrees; singular values of encoder @ decoder all 1.0000
(+-6e-5), the encoder inverts the decoder; test MSE 0.026860 vs rank-16 PCA's 0.026859; the
16 components explain 59.4% of the variance. The encoder's raw row space stays 44-67 degrees
off: its weights on pixels that never vary (MNIST's border) get no gradient and keep their
random start. results/linear_ae_pca/ (pca_angles.json).
"""

import ml_collections

from dae_jax import configs


def get_config():
    config = configs.base()
    config.model.name = "linear16"
    config.corruption = ml_collections.ConfigDict({"name": "none"})
    config.loss = "mse"
    config.optimizer = "adam"
    config.learning_rate = 3e-3
    config.lr_schedule = "cosine"
    config.num_epochs = 20
    config.analyses = ("pca_angles",)
    return config
