"""Linear probe: how much of the class a representation exposes to a linear classifier.

A multinomial logistic regression with an L2 penalty is fitted by L-BFGS (optax, jitted, full
batch) on the training split's features and scored by its error on the test split. Features are a
model's codes of the clean images (``dae_jax.load(workdir).encode``, flattened), the raw pixels, or
the pixels projected on their first k principal components (fitted on the training split), k = the
code's dimension (at most 784, the pixels' own).

The objective is scikit-learn's: ``C * sum_i CE_i + |W|^2 / 2`` (intercept not penalised), divided by
``C * N``. Every feature set is centred per feature and divided by one number, the root mean variance
of its features (``standardize``): a rotation of the features (PCA with k = 784 is one) leaves the
problem, and so the error, unchanged, while codes of any scale share one ``C``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from dae_jax.eval import analysis

Splits = dict[str, np.ndarray]  # split name ("train", "validation", "test") -> features [N, D] or labels [N]


def pixels(images: Splits) -> Splits:
    """Raw pixels in [0, 1], flattened: uint8 [N, H, W, C] -> [N, H*W*C] per split."""
    return {k: np.asarray(x, np.float32).reshape(len(x), -1) / 255.0 for k, x in images.items()}


def codes(encode: Callable[[np.ndarray], np.ndarray], images: Splits) -> Splits:
    """A model's codes of the clean images, flattened (``encode`` as ``dae_jax.load(workdir).encode``)."""
    return {k: np.asarray(encode(x), np.float32).reshape(len(x), -1) for k, x in images.items()}


def pca(features: Splits, dim: int) -> Splits:
    """Projections on the first ``dim`` principal components of the "train" features."""
    d = features["train"].shape[1]
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= d:
        raise ValueError(f"PCA dimension must be an integer in [1, {d}] (the features' dimension), got {dim!r}.")
    mean, basis, _ = analysis.pca(features["train"], dim)  # basis: [D, dim]
    return {k: ((f - mean) @ basis).astype(np.float32) for k, f in features.items()}


def standardize(features: Splits) -> Splits:
    """Centred per feature, then divided by sqrt(mean feature variance) of "train": one number, so rotations commute."""
    mean = features["train"].mean(axis=0)
    scale = float(np.sqrt(features["train"].var(axis=0).mean())) or 1.0
    return {k: (f - mean) / scale for k, f in features.items()}


class Result(NamedTuple):
    errors: dict[str, float]  # error of every split, "train" included, in [0, 1]
    dim: int
    iterations: int
    gradient_norm: float  # at the end; below tol when L-BFGS converged


def _fit(x: jax.Array, labels: jax.Array, num_classes: int, l2: float, max_iter: int, tol: float):
    """L-BFGS on mean cross-entropy + l2 / 2 |W|^2. x: [N, D]; labels: [N] -> (params, iterations, |grad|)."""

    def objective(params):
        logits = x @ params["w"] + params["b"][None, :]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean() + 0.5 * l2 * jnp.sum(
            jnp.square(params["w"])
        )

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(params, updates), state

    def running(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        return (count == 0) | ((count < max_iter) & (otu.tree_norm(otu.tree_get(state, "grad")) >= tol))

    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
    params, state = jax.lax.while_loop(running, step, (params, opt.init(params)))
    return params, otu.tree_get(state, "count"), otu.tree_norm(otu.tree_get(state, "grad"))


_fit_jit = jax.jit(_fit, static_argnums=(2, 4))


def fit(features: Splits, labels: Splits, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4) -> Result:
    """Multinomial logistic regression on the standardized "train" features; the error on every split."""
    for k in features:
        if k not in labels or len(features[k]) != len(labels[k]):
            raise ValueError(
                f"split {k!r}: {len(features[k])} feature rows but {len(labels.get(k, ()))} labels; give one label "
                "per row for every split."
            )
    if "train" not in features:
        raise ValueError(f"the probe is fitted on a 'train' split; got splits {sorted(features)}.")
    if not C > 0:
        raise ValueError(f"C (inverse penalty strength) must be > 0, got {C}.")
    x = standardize(features)
    num_classes = int(max(v.max() for v in labels.values())) + 1
    params, iterations, grad_norm = _fit_jit(
        jnp.asarray(x["train"]), jnp.asarray(labels["train"]), num_classes, 1.0 / (C * len(x["train"])), max_iter, tol
    )
    errors = {
        k: float(
            np.mean(np.asarray(jnp.argmax(jnp.asarray(f) @ params["w"] + params["b"][None, :], axis=-1)) != labels[k])
        )
        for k, f in x.items()
    }
    return Result(errors, x["train"].shape[1], int(iterations), float(grad_norm))
