"""Image corruptions: pure, key-first JAX functions ``corrupt(key, images) -> images``.

Images are float arrays in [0, 1] of any shape (usually NHWC). Hyperparameters are bound
with ``functools.partial`` (see ``make``) so a jitted step never traces them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dae_jax import random_bits

Corruption = Callable[[jax.Array, jax.Array], jax.Array]


def _flat_draw(sample: Callable, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``sample(key, shape=...)`` (a ``jax.random`` sampler) drawn as one flat vector and reshaped.

    The same values: a sampler makes its bits for the flat size either way. But XLA:CPU vectorizes the
    elementwise transform of the bits (erfinv for normals) along the last axis, and an image's last axis is
    its channels, 1 or 3 long; drawn flat, 128 x 28 x 28 x 1 normals took 0.80x the time, 128 x 32 x 32 x 3
    0.47x (2-core Zen 4, measured side by side).
    """
    return sample(key, shape=(int(np.prod(shape)),)).reshape(shape)


def to_float(images: jax.Array) -> jax.Array:
    """Images as corruptions take them: uint8 [0, 255] -> float32 [0, 1]; float images are taken to be in [0, 1]."""
    if images.dtype != jnp.uint8:
        return images.astype(jnp.float32)
    return images.astype(jnp.float32) / 255.0


def none(key: jax.Array, images: jax.Array) -> jax.Array:
    """No corruption: a plain (not denoising) autoencoder."""
    del key
    return images


def gaussian(key: jax.Array, images: jax.Array, *, sigma: float = 0.5, clip: bool = True) -> jax.Array:
    """Additive Gaussian noise: ``x + sigma * N(0, 1)``, clipped to [0, 1] when ``clip``.

    Clipping biases the noise (background pixels at 0 can only go up), as in the Keras
    references, which clip with ``np.clip(x_noisy, 0., 1.)``.
    """
    noisy = images + sigma * _flat_draw(functools.partial(jax.random.normal, dtype=images.dtype), key, images.shape)
    return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


def masking(key: jax.Array, images: jax.Array, *, p: float = 0.25) -> jax.Array:
    """Masking noise (Vincent et al. 2010): each pixel is set to 0 with probability ``p``.

    One draw per pixel, shared by its channels. images: [N, H, W, C].
    """
    keep = _flat_draw(functools.partial(jax.random.bernoulli, p=1.0 - p), key, (*images.shape[:-1], 1))
    return jnp.where(keep, images, 0.0)


def salt_and_pepper(key: jax.Array, images: jax.Array, *, p: float = 0.1) -> jax.Array:
    """Each pixel, with probability ``p``, becomes 0 or 1 with equal chance (shared by its channels)."""
    hit_key, value_key = jax.random.split(key)
    shape = (*images.shape[:-1], 1)
    hit = _flat_draw(functools.partial(jax.random.bernoulli, p=p), hit_key, shape)
    value = _flat_draw(jax.random.bernoulli, value_key, shape).astype(images.dtype)  # p = 0.5
    return jnp.where(hit, value, images)


def gaussian_blur(key: jax.Array, images: jax.Array, *, sigma: float = 1.0) -> jax.Array:
    """Separable Gaussian blur with std ``sigma`` pixels, kernel radius ceil(3 sigma), edges repeated.

    Deterministic: ``key`` is unused. sigma 0 is the identity.
    """
    del key
    radius = int(np.ceil(3 * sigma))
    if radius == 0:
        return images
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = jnp.asarray(taps / taps.sum(), images.dtype)
    x = jnp.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    # Sum of shifted copies: exact, and cheap for the small kernels used here.
    x = sum(t * x[:, i : i + h, :, :] for i, t in enumerate(taps))
    return sum(t * x[:, :, i : i + w, :] for i, t in enumerate(taps))


def low_resolution(key: jax.Array, images: jax.Array, *, factor: int = 2, method: str = "linear") -> jax.Array:
    """Downscale by ``factor`` (mean of each factor x factor block) and upscale back with ``method``.

    Deterministic: ``key`` is unused. factor 1 is the identity. An image whose sides are not multiples
    of ``factor`` is edge-padded up to them first and cropped back after (whole-image evaluation).
    """
    del key
    n, h, w, c = images.shape
    ph, pw = -h % factor, -w % factor
    x = jnp.pad(images, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else images
    small = x.reshape(n, (h + ph) // factor, factor, (w + pw) // factor, factor, c).mean(axis=(2, 4))
    return jax.image.resize(small, x.shape, method)[:, :h, :w]


def compose(key: jax.Array, images: jax.Array, *, steps: Sequence[Mapping]) -> jax.Array:
    """Applies several corruptions in order, step i with key ``fold_in(key, i)``.

    steps: e.g. ``[{"name": "gaussian_blur", "sigma": 1.0}, {"name": "gaussian", "sigma": 0.1}]``.
    """
    for i, spec in enumerate(steps):
        images = from_spec(spec)(jax.random.fold_in(key, i), images)
    return images


def blind_gaussian(
    key: jax.Array, images: jax.Array, *, low: float = 0.0, high: float = 0.7, clip: bool = True
) -> jax.Array:
    """``gaussian`` with a std drawn for each image uniformly from [low, high]: a blind denoiser's noise.

    images: [N, ...]; one sigma per image along the first axis (so per example under ``per_example``).
    """
    sigma_key, noise_key = jax.random.split(key)
    sigma = jax.random.uniform(sigma_key, (images.shape[0],) + (1,) * (images.ndim - 1), images.dtype, low, high)
    return gaussian(noise_key, images, sigma=sigma, clip=clip)


def mixture(key: jax.Array, images: jax.Array, *, choices: Sequence[Mapping]) -> jax.Array:
    """Each image corrupted by one of ``choices`` (corruption specs), drawn uniformly per image.

    choices: e.g. ``[{"name": "blind_gaussian"}, {"name": "masking", "p": 0.5}]``. Every choice is computed
    for the whole batch and one kept per image (cheap next to a train step). images: [N, ...].
    """
    pick_key, key = jax.random.split(key)
    outputs = jnp.stack([from_spec(c)(jax.random.fold_in(key, i), images) for i, c in enumerate(choices)])
    pick = jax.random.randint(pick_key, (images.shape[0],), 0, len(choices))
    return outputs[pick, jnp.arange(images.shape[0])]


CORRUPTIONS: dict[str, Callable[..., jax.Array]] = {
    "none": none,
    "gaussian": gaussian,
    "masking": masking,
    "salt_and_pepper": salt_and_pepper,
    "gaussian_blur": gaussian_blur,
    "low_resolution": low_resolution,
    "compose": compose,
    "blind_gaussian": blind_gaussian,
    "mixture": mixture,
}
_NESTED = {"compose": "steps", "mixture": "choices"}  # corruptions whose parameter is a list of specs


RESIZE_METHODS = ("nearest", "linear", "cubic", "lanczos3", "lanczos5")  # jax.image.resize's


def _check(name: str, param: str, value) -> None:
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and np.isfinite(value)
    if param in ("sigma", "p", "low", "high") and not (number and value >= 0):
        raise ValueError(f"Corruption {name!r}: {param} must be a finite number >= 0, got {value!r}.")
    if param == "method" and value not in RESIZE_METHODS:
        raise ValueError(f"Corruption {name!r}: method must be one of {list(RESIZE_METHODS)}, got {value!r}.")
    if param == "clip" and not isinstance(value, bool):
        raise ValueError(f"Corruption {name!r}: clip must be True or False, got {value!r}.")
    if param == "p" and value > 1:
        raise ValueError(f"Corruption {name!r}: p is a probability and must be <= 1, got {value!r}.")
    if param == "factor" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"Corruption {name!r}: factor must be an integer >= 1, got {value!r}.")


def make(name: str, **kwargs) -> Corruption:
    """Returns ``corrupt(key, images)`` for a registered corruption with its parameters bound.

    Raises ValueError naming the valid choices for an unknown name or parameter and for a
    negative, non-numeric or out-of-range rate.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {name!r}; choose one of {sorted(CORRUPTIONS)}.")
    fn = CORRUPTIONS[name]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("key", "images")]
    for k, v in kwargs.items():
        if k not in accepted:
            raise ValueError(f"Corruption {name!r} has no parameter {k!r}; it accepts {accepted}.")
        _check(name, k, v)
    if name in _NESTED:
        specs = kwargs[_NESTED[name]] = tuple(dict(spec) for spec in kwargs.get(_NESTED[name], ()))
        if name == "mixture" and not specs:
            raise ValueError("Corruption 'mixture' needs choices, e.g. [{'name': 'masking', 'p': 0.5}].")
        for spec in specs:
            from_spec(spec)  # validate every step now, not when the step is traced
    if name == "blind_gaussian" and kwargs.get("low", 0.0) > kwargs.get("high", 0.7):
        raise ValueError(f"Corruption 'blind_gaussian': low must be <= high, got {kwargs}.")
    return functools.partial(fn, **kwargs)


def from_spec(spec: Mapping) -> Corruption:
    """``make`` from a mapping with a ``name`` key, as stored in configs."""
    spec = dict(spec)
    if "name" not in spec:
        raise ValueError(f"Corruption spec {spec} has no 'name'; choose one of {sorted(CORRUPTIONS)}.")
    return make(spec.pop("name"), **spec)


def parse_spec(text: str) -> dict:
    """A spec from text: ``"gaussian"``, ``"gaussian:sigma=0.3,clip=False"`` or a JSON object (for ``compose``).

    Values are Python literals (numbers, True/False); anything else is taken as a string.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            return dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"corruption {text!r} is not valid JSON: {e}.") from None
    name, _, params = text.partition(":")
    spec = {"name": name.strip()}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"corruption {text!r}: write parameters as name:key=value,key=value (got {item!r}).")
        spec[key.strip()] = literal(value.strip())
    return spec


def literal(text: str):
    """A Python literal (number, True, None, ...) from text, else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def per_example(
    corrupt: Corruption, key: jax.Array, images: jax.Array, indices: jax.Array, *, fast_bits: bool = False
) -> jax.Array:
    """Corrupts image i with the key ``fold_in(key, indices[i])``.

    The noise of an example then depends only on (key, index): not on the batch size, the
    number of devices or how the batch is sharded. That is what makes the 8-device step equal
    the 1-device step, and the fixed test noise the same for every run.
    images: [N, ...]; indices: [N] int.

    fast_bits: draw with threefry's original bit layout, which makes two 32-bit words of every hash block,
    where JAX's default (partitionable: jit can then shard one random array without communication) hashes a
    block for each word. An example's draw is never sharded, so the default only doubles the hashing: 128 x 784
    normals took 0.21 against 0.32 ms, 512 x 784 0.77 against 1.19 ms (2-core Zen 5, JAX's looped hash). Other
    numbers than the default's, as random. Training draws so; the fixed evaluation noise keeps the default, so
    every version scores the same noisy test images.

    The keys draw through ``random_bits.unrolled``: JAX's very numbers, spread over the cores of a CPU device.
    """
    keys = random_bits.unrolled(jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices))
    with jax.threefry_partitionable(not fast_bits):
        return jax.vmap(lambda k, x: corrupt(k, x[None])[0])(keys, images)
