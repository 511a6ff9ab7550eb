"""Analyses of a trained model, run at the end of training when ``config.analyses`` names them.

Each ``analysis(state, train, test) -> dict`` gets the train state and the train/test arrays
(``{"image": uint8 [N, H, W, C], ...}``); ``run`` writes its result to ``<workdir>/<name>.json``.

- ``pca_angles``: a linear autoencoder trained with MSE learns the top-k principal subspace
  of its (centered) training data (Baldi & Hornik 1989; Bourlard & Kamp 1988). The principal
  angles between the decoder's column space (and the encoder's row space) and that subspace
  measure how close training got: 0 degrees is the same subspace, 90 degrees an orthogonal
  direction. The decoder's column space is what the theory pins down (the encoder only has to
  invert the decoder on the data, see ``pca_angles``). Also reported: the test MSE of rank-k
  PCA reconstruction, the best any linear code of size k can do on the training data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import files

log = logging.getLogger(__name__)


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, smallest first, between the column spaces of a [D, k] and b [D, m]."""
    qa, _ = np.linalg.qr(np.asarray(a, np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, np.float64))
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)  # descending
    return np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [D], top-k principal directions [D, k], all eigenvalues [D] descending) of x [N, D]."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    centered = x - mean
    eigenvalues, vectors = np.linalg.eigh(centered.T @ centered / len(x))  # ascending
    return mean, vectors[:, ::-1][:, :k], eigenvalues[::-1]


def _flat_images(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 [N, H, W, C] -> float64 [N, H*W*C] in [0, 1]."""
    return arrays["image"].reshape(len(arrays["image"]), -1).astype(np.float64) / 255.0


def linear_maps(state, image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(encoder [k, D], decoder [D, k]) matrices of an affine autoencoder with vector codes.

    Read off as Jacobians, so they do not depend on how the layers are named; checked at two
    points, so a nonlinear model gets a ValueError instead of a meaningless answer.
    """
    variables = state.variables()
    image_size = int(np.prod(image_shape))

    def encode(x):  # [D] -> [k]
        return state.apply_fn(variables, x.reshape(1, *image_shape), method="encode")[0]

    code_shape = jax.eval_shape(encode, jnp.zeros(image_size)).shape
    if len(code_shape) != 1:
        raise ValueError(f"pca_angles needs a model with vector codes (e.g. linear16); this one's are {code_shape}.")

    def decode(z):  # [k] -> [D]
        return state.apply_fn(variables, z[None], method="decode").reshape(-1)

    if not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(variables)):
        raise ValueError("pca_angles: the model's weights are not finite (training diverged).")
    x1, x2 = jax.random.uniform(jax.random.key(0), (2, image_size))
    z1, z2 = jax.random.normal(jax.random.key(1), (2, *code_shape))
    # Reverse mode: the fast convolutions define VJPs only (custom_vjp), which forward mode cannot pass.
    encoder, encoder_2 = jax.jacrev(encode)(x1), jax.jacrev(encode)(x2)
    decoder, decoder_2 = jax.jacrev(decode)(z1), jax.jacrev(decode)(z2)
    if not (np.allclose(encoder, encoder_2, atol=1e-5) and np.allclose(decoder, decoder_2, atol=1e-5)):
        raise ValueError("pca_angles needs a linear autoencoder (e.g. model linear16): this model is not affine.")
    return np.asarray(encoder, np.float64), np.asarray(decoder, np.float64)


def pca_angles(state, train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict:
    """Principal angles between the model's subspaces and the top-k PCA subspace of ``train``."""
    x = _flat_images(train)
    encoder, decoder = linear_maps(state, train["image"].shape[1:])
    k = decoder.shape[1]
    mean, directions, eigenvalues = pca(x, k)
    decoder_angles = principal_angles(decoder, directions)
    encoder_angles = principal_angles(encoder.T, directions)
    test_x = _flat_images(test) - mean
    pca_test_mse = float(np.mean(np.square(test_x - test_x @ directions @ directions.T)))
    return {
        "k": k,
        "num_train_images": len(x),
        "decoder_angles_deg": decoder_angles.tolist(),
        "encoder_angles_deg": encoder_angles.tolist(),
        "decoder_max_angle_deg": float(decoder_angles.max()),
        "encoder_max_angle_deg": float(encoder_angles.max()),
        # The encoder's rows also hold weights on pixels that (almost) never vary: those get (almost) no
        # gradient and keep their random start, so its raw row space stays far from PCA's. What it must be
        # is a left inverse of the decoder: the singular values of encoder @ decoder near 1.
        "encoder_decoder_singular_values": np.linalg.svd(encoder @ decoder, compute_uv=False).tolist(),
        "pca_explained_variance": float(eigenvalues[:k].sum() / eigenvalues.sum()),
        "pca_test_mse": pca_test_mse,
    }


ANALYSES: dict[str, Callable[..., dict]] = {"pca_angles": pca_angles}


def check(names) -> None:
    """ValueError naming the unknown entries of ``config.analyses``."""
    unknown = [name for name in names if name not in ANALYSES]
    if unknown:
        raise ValueError(f"config.analyses: unknown {unknown}; choose from {sorted(ANALYSES)}.")


def run(name: str, state, train: dict[str, np.ndarray], test: dict[str, np.ndarray], workdir: Path) -> dict:
    """Runs a registered analysis, writes ``<workdir>/<name>.json`` and logs a summary line."""
    check([name])
    result = ANALYSES[name](jax.device_get(state), train, test)
    files.write_json(Path(workdir) / f"{name}.json", result)
    for k, v in result.items():
        shown = ", ".join(f"{x:.3g}" for x in v) if isinstance(v, list) else f"{v:.4g}" if isinstance(v, float) else v
        log.info("%s: %s %s", name, k, shown)
    return result
