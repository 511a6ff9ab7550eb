"""Optimizers from optax by name, with the Keras defaults the reference setups used."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import optax


def adadelta(learning_rate: float = 1.0, rho: float = 0.95, eps: float = 1e-7) -> optax.GradientTransformation:
    """Keras-2 ``Adadelta()`` defaults: learning rate 1.0, rho 0.95, epsilon 1e-7."""
    return optax.adadelta(learning_rate, rho=rho, eps=eps)


def adam(
    learning_rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7
) -> optax.GradientTransformation:
    """Keras ``Adam()`` defaults (note Keras' epsilon 1e-7, not optax's 1e-8)."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


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


def make(name: str, **kwargs) -> optax.GradientTransformation:
    """Builds a registered optimizer; ``None`` values fall back to its defaults."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}.")
    fn = OPTIMIZERS[name]
    accepted = list(inspect.signature(fn).parameters)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for k in kwargs:
        if k not in accepted:
            raise ValueError(f"Optimizer {name!r} has no parameter {k!r}; it accepts {accepted}.")
    lr = kwargs.get("learning_rate", 1.0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Optimizer {name!r}: learning_rate must be a number > 0, got {lr!r}.")
    return fn(**kwargs)
