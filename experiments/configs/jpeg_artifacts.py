"""JPEG artifact removal on natural photographs: JPEG quality 10-30, scored against the JPEG input itself.

Source: the commonest real degradation of photographs (dae-jax issue on streamed data, item 8).
Data: dataset ``photos`` (every photograph in scikit-image, or ``--config.data.image_dir``), random
48x48 views, 200 per photograph per epoch, flipped at random. Corruption ``jpeg`` (a host
corruption: Pillow's libjpeg in the input pipeline, keyed by (seed, epoch, view)), quality drawn
per view in [10, 30]; the test photographs are compressed whole at a quality keyed by their row,
so eval.json's ``noisy_*`` numbers are the JPEG input's own. Model ``superres`` (a residual net that
starts as the identity: the JPEG input itself), MSE, adam 1e-3 cosine, batch 32.

Command (2-core CPU, offline):
  dae-jax train --config=experiments/configs/jpeg_artifacts.py --workdir=workdirs/jpeg_artifacts
Expected: PSNR above the JPEG input's. Measured (results/jpeg_artifacts[_seedS]/, seeds 0-2, 2-3.5 min
each): 29.95 ± 0.24 dB vs the JPEG input's 29.45 ± 0.28, SSIM 0.833 vs 0.817 (4 test photographs).
"""

import ml_collections

from dae_jax import configs


def get_config():
    config = configs.load("superres_photos")
    config.corruption = ml_collections.ConfigDict({"name": "jpeg", "quality": (10, 30)})
    return config
