"""The jitted steps: ``make_train_step(setup)`` and ``make_eval_step(setup)``. No I/O here.

The steps are written per device, with gradients and metrics averaged over the mesh axis
``data`` by ``lax.pmean``/``psum``; ``sharding.data_parallel`` runs them under ``jit(shard_map)``
on a ``Mesh``, and the same functions run unchanged under ``jax.pmap(..., axis_name="data")``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from dae_jax import corruptions
from dae_jax.eval import metrics
from dae_jax.setup import Setup
from dae_jax.sharding import DATA_AXIS
from dae_jax.training.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def make_train_step(setup: Setup) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """``train_step(state, batch, key) -> (state, {"loss": mean loss})``, the setup bound by closure.

    ``setup.compute_dtype`` (e.g. bfloat16): the model runs in it on copies of the float32
    parameters, whose gradients and updates stay float32; the loss is taken in float32.
    ``config.train_noise`` "fixed" keys each image's noise by ``batch["row"]`` instead of by the step.
    ``setup.micro_batch`` (models without BatchNorm): this device's rows are processed in chunks
    of that many by a ``lax.scan`` that sums their gradients. The update is the same (to float
    rounding); on CPU each chunk's activations stay in cache, which is faster (results/benchmarks).
    """
    compute_dtype, micro_batch = setup.compute_dtype, setup.micro_batch
    fixed_noise = setup.config.get("train_noise", "fresh") == "fixed"  # batch["row"]: the image's row in its split

    def train_step(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
        clean = corruptions.to_float(batch["image"])  # this device's rows: [n, H, W, C]
        given = corruptions.to_float(batch["input"]) if "input" in batch else clean  # after host corruptions
        n = clean.shape[0]
        if fixed_noise and "row" not in batch:  # at trace time
            raise ValueError(
                "config.train_noise='fixed' keys each image's noise by its row: give each batch a 'row' "
                "(int32 [B], the image's index in the training split), or set train_noise='fresh'."
            )
        if fixed_noise:  # each training image's noise is a function of (key, its row) only: the same every epoch
            noisy = corruptions.per_example(setup.corrupt, key, given, batch["row"], fast_bits=True)
        else:  # fresh noise every step; example i of the global batch gets fold_in(step_key, i)
            step_key = jax.random.fold_in(key, state.step)
            index = lax.axis_index(DATA_AXIS) * n + jnp.arange(n)
            noisy = corruptions.per_example(setup.corrupt, step_key, given, index, fast_bits=True)

        def summed_loss(params, noisy, clean):
            if compute_dtype is not None:
                params, noisy = jax.tree.map(lambda x: x.astype(compute_dtype), (params, noisy))
            variables = {"params": params, "batch_stats": state.batch_stats}
            logits, updates = state.apply_fn(variables, noisy, train=True, mutable=["batch_stats"])
            return setup.loss(logits.astype(jnp.float32), clean).sum(), updates.get("batch_stats", {})

        grad_fn = jax.value_and_grad(summed_loss, has_aux=True)
        if micro_batch is None or micro_batch >= n:
            (total, batch_stats), grads = grad_fn(state.params, noisy, clean)
        else:

            def accumulate(sums, chunk):  # chunk: ([m, H, W, C] noisy, [m, H, W, C] clean)
                (value, _), grads = grad_fn(state.params, *chunk)
                return jax.tree.map(jnp.add, sums, (value, grads)), None

            chunks = _chunked((noisy, clean), micro_batch)
            zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
            (total, grads), _ = lax.scan(accumulate, zeros, chunks)
            batch_stats = state.batch_stats
        # Equal shards: the mean over devices of this device's mean is the global mean. BatchNorm already
        # normalises with global-batch statistics (axis "data"), so its statistics agree on every device; the
        # pmean keeps the state replicated by construction. All in one all-reduce (_flat).
        grads, batch_stats, loss = _flat(lax.pmean, (jax.tree.map(lambda g: g / n, grads), batch_stats, total / n))
        state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats).with_ema(setup.ema_decay)
        return state, {"loss": loss}

    return train_step


def _flat(all_reduce: Callable, tree):
    """``all_reduce(tree, DATA_AXIS)`` (``lax.pmean``, ``lax.psum``); on CPU as one all-reduce of the leaves
    concatenated (promoted to one float dtype: here all float32), the same sums elementwise.

    XLA:CPU reduces the tuple its all-reduce combiner makes one array at a time, each a rendezvous of the
    devices' threads: bn_dense576's step had 33 on each device (its 20 gradients, 6 BatchNorm statistics and
    loss, and its BatchNorms' own 6), 7 with one vector. Side by side on a 2-core Xeon (batch 128, 2 alternating
    rounds), train steps at 1.11-1.18x (bn_dense576) and 1.03-1.06x (conv32) the images/s. Elsewhere XLA
    overlaps each array's all-reduce with the rest of the backward pass, so the tree is reduced as it is."""
    if jax.default_backend() != "cpu":
        return all_reduce(tree, DATA_AXIS)
    flat, unravel = ravel_pytree(tree)
    return unravel(all_reduce(flat, DATA_AXIS))


def _chunked(arrays: tuple[jax.Array, ...], m: int) -> list[jax.Array]:
    """Each [n, ...] array as [n // m, m, ...]: the chunks a ``lax.scan``/``lax.map`` body takes one by one."""
    return [x.reshape(x.shape[0] // m, m, *x.shape[1:]) for x in arrays]


# On CPU the eval step scores a device's batch in chunks of at most this many images under ``lax.map``:
# measured on conv32_16 (500 images per device), 105-117 ms per batch in chunks of 10 to 250 against 220 ms
# in one piece (XLA:CPU runs dm_pix's SSIM convolutions and the model about 2x faster inside a loop body).
EVAL_CHUNK = 100


def eval_chunk(n: int) -> int:
    """Images per chunk of an n-image eval batch: the largest divisor of n up to ``EVAL_CHUNK`` on CPU (n
    itself, one chunk, elsewhere and where that divisor is under 8, so a prime n is not scored one by one)."""
    if jax.default_backend() != "cpu":
        return n
    chunk = max(d for d in range(1, min(n, EVAL_CHUNK) + 1) if n % d == 0)
    return chunk if chunk >= 8 else n


def make_eval_step(setup: Setup) -> Callable[[dict, Batch, jax.Array], Metrics]:
    """``eval_step(variables, batch, key) -> sums`` of per-image metrics of the output and of the noisy input.

    Example ``batch["index"][i]`` gets the fixed evaluation noise (``Setup.eval_noisy`` with ``key``);
    ``batch["mask"]`` marks the real rows of a padded last batch. Every metric is per image and the model
    runs in inference mode, so scoring in chunks (``eval_chunk``) changes no value but float rounding.
    """

    def eval_step(variables: dict, batch: Batch, key: jax.Array) -> Metrics:
        clean = corruptions.to_float(batch["image"])
        given = corruptions.to_float(batch["input"]) if "input" in batch else clean  # after host corruptions

        def score(chunk):  # chunk: ([m, H, W, C] given, [m, H, W, C] clean, [m] index) -> {metric: [m]}
            given, clean, index = chunk
            noisy = setup.eval_noisy(given, index, key)
            per_image = metrics.image_metrics(setup.output(variables, noisy), clean)
            return per_image | {f"noisy_{k}": v for k, v in metrics.image_metrics(noisy, clean).items()}

        n = clean.shape[0]
        chunks = _chunked((given, clean, batch["index"]), eval_chunk(n))
        per_image = {k: v.reshape(n) for k, v in lax.map(score, chunks).items()}
        mask = batch["mask"]
        sums = {k: jnp.sum(jnp.where(mask, v, 0.0)) for k, v in per_image.items()}
        return _flat(lax.psum, sums | {"count": jnp.sum(mask.astype(jnp.float32))})

    return eval_step
