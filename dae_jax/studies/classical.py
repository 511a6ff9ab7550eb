"""Classical denoisers as baselines for the DAEs: median, Gaussian, non-local means (scikit-image), BM3D.

Each is ``denoise(noisy, param) -> denoised`` on float images [N, H, W, C] in [0, 1], each channel of
each image filtered on its own; ``METHODS`` registers them by name with the grid their one parameter
is tuned over, and ``tune`` picks the grid point with the best mean PSNR on validation images.
``fixed_noisy`` gives the noisy images the models are scored on (``Setup.eval_noisy``, the fixed evaluation noise).

Clipped Gaussian noise is biased: y = clip(x + sigma z, 0, 1) has mean ``clipped_mean(x, sigma)``,
above x on the black background (0.195 instead of 0 at sigma 0.5) and below x on white strokes.
A filter that averages (Gaussian, NLM, BM3D) estimates that mean, not x. The ``inverse_mean``
correction maps its output through the inverse of x -> E[y | x] (the last step of the clipped-data
denoising of Foi, "Clipped noisy images: heteroskedastic modeling and practical denoising", Signal
Processing 2009). The median is biased too, less: per pixel median(clip(x + sigma z, 0, 1)) = x, but
on a black background exactly half the noisy values are 0, so a window's sample median is 0 only about
half the time. Every method is tuned and scored with and without the correction.

Needs the ``eval`` extra: ``pip install -e ".[eval]"`` (bm3d, scikit-image).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from dae_jax import configs, corruptions
from dae_jax.eval import metrics
from dae_jax.setup import Setup

Denoise = Callable[[np.ndarray, float], np.ndarray]
Correction = Callable[[np.ndarray], np.ndarray]


def _check_images(noisy: np.ndarray) -> np.ndarray:
    x = np.asarray(noisy)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"noisy images must be float [N, H, W, C]; got {x.dtype} {x.shape}.")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"noisy images must lie in [0, 1], these span [{x.min():g}, {x.max():g}].")
    return x.astype(np.float32)


def _per_channel(filter_2d: Callable[[np.ndarray], np.ndarray], noisy: np.ndarray) -> np.ndarray:
    """Applies ``filter_2d`` ([H, W] -> [H, W]) to every channel of every image; clipped to [0, 1]."""
    x = _check_images(noisy)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[3]):
            out[i, :, :, c] = filter_2d(x[i, :, :, c])
    return np.clip(out, 0.0, 1.0)


def median(noisy: np.ndarray, size: float) -> np.ndarray:
    """Median over a ``size`` x ``size`` window (edges repeated)."""
    from skimage import filters

    x = _check_images(noisy)
    return filters.median(x, footprint=np.ones((1, int(size), int(size), 1), bool), mode="nearest")


def gaussian(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter with std ``sigma`` pixels (edges repeated)."""
    from skimage import filters

    x = _check_images(noisy)
    return filters.gaussian(x, sigma=(0.0, sigma, sigma, 0.0), mode="nearest", preserve_range=True).astype(np.float32)


def nl_means(noisy: np.ndarray, h: float) -> np.ndarray:
    """Non-local means with filtering strength ``h``: 5x5 patches, 13x13 search window (sizes for 28x28 digits)."""
    from skimage.restoration import denoise_nl_means

    return _per_channel(functools.partial(denoise_nl_means, h=h, patch_size=5, patch_distance=6, fast_mode=True), noisy)


@functools.cache
def _bm3d_profile():
    import bm3d

    profile = bm3d.BM3DProfile()
    # One thread: on a 28x28 image the thread pool costs more than it saves (0.2 vs 0.4 s of CPU per image).
    profile.num_threads = 1
    # The FFT size of the exact noise-variance computation: 16 (what the package picks itself for
    # images under 16 pixels) instead of 32 costs 0.045 instead of 0.2 s of CPU per digit; on 60
    # validation digits at sigma 0.5 the best mean PSNR moved from 16.82 to 16.80 dB.
    profile.nf = 16
    return profile


def bm3d(noisy: np.ndarray, sigma_psd: float) -> np.ndarray:
    """BM3D (both stages, the package's 'np' profile, FFT size 16) for white noise of std ``sigma_psd``."""
    import bm3d as bm3d_lib

    return _per_channel(lambda image: bm3d_lib.bm3d(image, sigma_psd, profile=_bm3d_profile()), noisy)


class Method(NamedTuple):
    denoise: Denoise
    param: str  # what the tuned parameter is, for tables
    grid: tuple[float, ...]


METHODS: dict[str, Method] = {
    "median": Method(median, "window size", (3, 5, 7, 9)),
    "gaussian": Method(gaussian, "sigma (pixels)", (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)),
    "nl_means": Method(nl_means, "h", (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)),
    "bm3d": Method(bm3d, "sigma_psd", (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)),
}


def clipped_mean(x: np.ndarray, sigma: float) -> np.ndarray:
    """E[clip(x + sigma z, 0, 1)] for z ~ N(0, 1): sigma (g(x / sigma) - g((x - 1) / sigma)), g(a) = E[(z + a)+].

    E[(z + a)+] = pdf(a) + a cdf(a); the second term removes the mass clipped at 1.
    """
    x = np.asarray(x, np.float64)
    if sigma == 0:
        return np.clip(x, 0.0, 1.0)

    def g(a):
        return stats.norm.pdf(a) + a * stats.norm.cdf(a)

    return sigma * (g(x / sigma) - g((x - 1.0) / sigma))


def inverse_clipped_mean(y: np.ndarray, sigma: float) -> np.ndarray:
    """The x in [0, 1] with ``clipped_mean(x, sigma) == y`` (monotone; y outside the range maps to 0 or 1)."""
    grid = np.linspace(0.0, 1.0, 2001)
    return np.interp(y, clipped_mean(grid, sigma), grid).astype(np.float32)


def corrections(sigma: float) -> dict[str, Correction]:
    """What to do with a filter's output under clipped Gaussian noise of std ``sigma``: nothing, or invert its mean."""
    return {"none": lambda y: y, "inverse_mean": functools.partial(inverse_clipped_mean, sigma=sigma)}


def fixed_noisy(images: np.ndarray, corruption: Mapping, seed: int, batch_size: int = 1000) -> np.ndarray:
    """float32 [N, H, W, C]: a split's uint8 ``images`` with the fixed evaluation noise of a run with ``seed``.

    The noise ``Setup.eval_noisy`` gives example i of the split: the same noisy images every model of that
    seed and corruption is scored on.
    """
    config = configs.base()
    config.seed, config.corruption = seed, ml_collections.ConfigDict(dict(corruption))
    setup = Setup.from_config(config, training=False)
    noisy_batch = jax.jit(lambda x, index: setup.eval_noisy(corruptions.to_float(x), index))
    starts = range(0, len(images), batch_size)
    return np.concatenate(
        [
            np.asarray(noisy_batch(images[s : s + batch_size], jnp.arange(s, min(s + batch_size, len(images)))))
            for s in starts
        ]
    )


_image_metrics = jax.jit(metrics.image_metrics)  # one compile per shape instead of one per eager op


def score(denoised: np.ndarray, clean: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
    """Means over the images of every ``metrics.METRICS`` value (the numbers models are scored with)."""
    sums: dict[str, float] = {}
    for s in range(0, len(clean), batch_size):
        per_image = _image_metrics(jnp.asarray(denoised[s : s + batch_size]), jnp.asarray(clean[s : s + batch_size]))
        for k, v in per_image.items():
            sums[k] = sums.get(k, 0.0) + float(jnp.sum(v))
    return {k: v / len(clean) for k, v in sums.items()}


def mean_psnr(denoised: np.ndarray, clean: np.ndarray) -> float:
    return float(jnp.mean(metrics.psnr(jnp.asarray(denoised), jnp.asarray(clean))))


class Tuning(NamedTuple):
    param: float  # the grid point with the best mean PSNR
    psnr: dict[float, float]  # mean validation PSNR at every grid point


def tune(
    method: Method, noisy: np.ndarray, clean: np.ndarray, corrections_: Mapping[str, Correction]
) -> dict[str, Tuning]:
    """For each correction, the grid point of ``method`` with the best mean PSNR of the corrected output.

    The filter runs once per grid point; every correction is scored on that output.
    """
    if len(noisy) != len(clean) or len(noisy) == 0:
        raise ValueError(f"tune needs as many clean as noisy images (at least 1); got {len(noisy)} and {len(clean)}.")
    outputs = {p: method.denoise(noisy, p) for p in method.grid}
    result = {}
    for name, correct in corrections_.items():
        psnr = {p: mean_psnr(correct(out), clean) for p, out in outputs.items()}
        result[name] = Tuning(max(psnr, key=psnr.get), psnr)
    return result
