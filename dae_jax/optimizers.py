"""Optimizers from optax by name, with the Keras defaults the reference setups used, and learning-rate schedules.

A schedule (``SCHEDULES``) maps the peak learning rate and the run's total number of steps to
``step -> learning rate``; its other parameters are given as fractions of the run, so a
config means the same thing on 4,000 or 60,000 images and in smoke mode. "constant" passes
the plain number to the optimizer (its state then has no step counter, as before schedules).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax


def adadelta(learning_rate: float = 1.0, rho: float = 0.95, eps: float = 1e-7) -> optax.GradientTransformation:
    """Keras-2 ``Adadelta()`` defaults: learning rate 1.0, rho 0.95, epsilon 1e-7."""
    return optax.adadelta(learning_rate, rho=rho, eps=eps)


def adam(
    learning_rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7, keras_form: bool = False
) -> optax.GradientTransformation:
    """Keras ``Adam()`` defaults (note Keras' epsilon 1e-7, not optax's 1e-8).

    ``keras_form``: Keras's update, ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``, instead of
    optax's ``lr * m_hat / (sqrt(v_hat) + eps)``: Keras adds epsilon before the bias correction, an
    effective ``eps / sqrt(1 - b2^t)`` (32x larger at step 1, 1.6x at step 1,000). With the tiny
    gradients of a per-pixel mean loss the two diverge from the first step; the Keras write-ups' runs
    follow Keras's (tests/test_optimizers.py compares the updates with Keras's own).
    """
    if not keras_form:
        return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
    return optax.chain(_scale_by_keras_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def _scale_by_keras_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """Adam's direction as Keras computes it (see ``adam``); optax's Adam state, so checkpoints look alike."""

    def init(params):
        mu, nu = (jax.tree.map(jnp.zeros_like, params) for _ in range(2))  # two buffers: the step donates both
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

    def update(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float32)
        scale = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        updates = jax.tree.map(lambda m, v: scale * m / (jnp.sqrt(v) + eps), mu, nu)
        return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def sgd(
    learning_rate: float = 0.01, momentum: float | None = None, nesterov: bool = False
) -> optax.GradientTransformation:
    """Keras ``SGD()`` defaults: learning rate 0.01, no momentum."""
    return optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adadelta": adadelta,
    "adam": adam,
    "sgd": sgd,
}


def constant(learning_rate: float, total_steps: int) -> float:
    """The learning rate at every step."""
    del total_steps
    return learning_rate


def cosine(learning_rate: float, total_steps: int, alpha: float = 0.0) -> optax.Schedule:
    """Cosine decay from ``learning_rate`` at step 0 to ``alpha * learning_rate`` at the last step."""
    return optax.cosine_decay_schedule(learning_rate, decay_steps=total_steps, alpha=alpha)


def warmup_cosine(
    learning_rate: float, total_steps: int, warmup: float = 0.05, init_scale: float = 0.0, end_scale: float = 0.0
) -> optax.Schedule:
    """Linear warm-up from ``init_scale * learning_rate`` over the first ``warmup`` fraction of the steps,
    then cosine decay to ``end_scale * learning_rate`` at the last step."""
    if not 0 <= warmup < 1:
        raise ValueError(f"Schedule 'warmup_cosine': warmup is a fraction of the run in [0, 1), got {warmup!r}.")
    return optax.warmup_cosine_decay_schedule(
        init_value=init_scale * learning_rate,
        peak_value=learning_rate,
        warmup_steps=int(warmup * total_steps),
        decay_steps=total_steps,
        end_value=end_scale * learning_rate,
    )


def exponential(learning_rate: float, total_steps: int, decay_rate: float = 0.1) -> optax.Schedule:
    """``learning_rate * decay_rate ** (step / total_steps)``: ``decay_rate`` is the factor reached at the end."""
    return optax.exponential_decay(learning_rate, transition_steps=total_steps, decay_rate=decay_rate)


def piecewise(
    learning_rate: float,
    total_steps: int,
    boundaries: Sequence[float] = (0.5, 0.75),
    scales: Sequence[float] = (0.1, 0.1),
) -> optax.Schedule:
    """Step decay: at each boundary (a fraction of the run) the learning rate is multiplied by its scale."""
    if len(boundaries) != len(scales) or any(not 0 < b < 1 for b in boundaries):
        raise ValueError(
            f"Schedule 'piecewise': boundaries must be fractions in (0, 1), one per scale; "
            f"got boundaries={list(boundaries)}, scales={list(scales)}."
        )
    return optax.piecewise_constant_schedule(
        learning_rate, {int(b * total_steps): s for b, s in zip(boundaries, scales, strict=True)}
    )


SCHEDULES: dict[str, Callable[..., float | optax.Schedule]] = {
    "constant": constant,
    "cosine": cosine,
    "warmup_cosine": warmup_cosine,
    "exponential": exponential,
    "piecewise": piecewise,
}


def _parameters(what: str, fn: Callable, kwargs: dict, fixed: tuple[str, ...] = ()) -> dict:
    """``fn``'s parameters; ValueError naming a key of ``kwargs`` it does not take (``fixed`` ones dae-jax sets)."""
    parameters = dict(inspect.signature(fn).parameters)
    accepted = [p for p in parameters if p not in fixed]
    for k in kwargs:
        if k not in accepted:
            raise ValueError(f"{what} has no parameter {k!r}; it accepts {accepted}.")
    return parameters


def schedule(name: str, learning_rate: float, total_steps: int, **kwargs) -> float | optax.Schedule:
    """A registered schedule for a run of ``total_steps`` steps peaking at ``learning_rate``."""
    if name not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {name!r}; choose one of {sorted(SCHEDULES)}.")
    fn = SCHEDULES[name]
    _parameters(f"Learning-rate schedule {name!r}", fn, kwargs, fixed=("learning_rate", "total_steps"))
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(
            f"Learning-rate schedule {name!r}: total_steps must be a positive integer, got {total_steps!r}."
        )
    return fn(learning_rate, total_steps, **kwargs)


def make(
    name: str, *, schedule_name: str = "constant", total_steps: int = 1, schedule_kwargs=None, **kwargs
) -> optax.GradientTransformation:
    """Builds a registered optimizer; ``None`` values fall back to its defaults.

    With a ``schedule_name`` other than "constant", the learning rate (given, or the optimizer's
    default) becomes the peak of that schedule over ``total_steps`` steps.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}.")
    fn = OPTIMIZERS[name]
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    parameters = _parameters(f"Optimizer {name!r}", fn, kwargs)
    lr = kwargs.get("learning_rate", parameters["learning_rate"].default)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Optimizer {name!r}: learning_rate must be a number > 0, got {lr!r}.")
    kwargs["learning_rate"] = schedule(schedule_name, lr, total_steps, **dict(schedule_kwargs or {}))
    return fn(**kwargs)


def from_config(config, total_steps: int) -> optax.GradientTransformation:
    """The optimizer of a run's config, its learning rate following ``config.lr_schedule`` over ``total_steps``.

    Configs saved before schedules existed have no ``lr_schedule``: constant.
    """
    return make(
        config.optimizer,
        learning_rate=config.learning_rate,
        schedule_name=config.get("lr_schedule", "constant"),
        schedule_kwargs=config.get("lr_schedule_kwargs"),
        total_steps=total_steps,
        **config.optimizer_kwargs,
    )
