"""Super-resolution x2 of face photographs (LFW): the fourth reference setup, faithful to its data.

Source: reference setup 4 of the dae-jax mission (an autoencoder that restores low-resolution face
photographs: LFW, 250x250 RGB, shrunk, degraded by downscaling, restored by a conv encoder-decoder
with additive skips and MSE). Data: dataset ``faces``: TFDS ``lfw`` (13,233 faces) when prepared or
when the network answers; offline, any folder of face photographs (``--config.data.image_dir=DIR``).
Sizes, ours: each 250x250 photograph is centre-cropped to 128x128 (LFW's faces are centred and fill
about the middle half: this keeps the face and drops most background) and shrunk to 64x64 with an
antialiased filter (what 2 CPU cores train in minutes per epoch; the reference shrinks too). The
low-resolution input: the 64x64 face downscaled x2 (antialiased, as image libraries shrink) and
upscaled back bicubically (host corruption ``downscale``); scored against that bicubic input
(eval.json ``noisy_*``), PSNR/SSIM on whole 64x64 test faces. Model ``superres`` (strided-conv
encoder, additive skips, global residual starting as the identity), MSE, adam 1e-3 cosine.

``superres_faces.py:lfw_subset`` trains offline on the only real faces this machine has:
scikit-image's 100 LFW faces (25x25 grayscale, repeated to RGB), centre 24x24, a smoke-size check.

Commands:
  dae-jax train --config=experiments/configs/superres_faces.py --workdir=workdirs/superres_faces
  dae-jax train --config=experiments/configs/superres_faces.py:lfw_subset --workdir=workdirs/faces_subset
Expected: PSNR and SSIM above bicubic's. Measured offline (results/superres_faces_lfw_subset/, _seed1,
_seed2; 49-58 s each): 23.46 +- 0.05 dB vs bicubic 23.22, SSIM 0.775 +- 0.002 vs 0.752 (15 test faces).
The LFW run needs the network: not run here.
"""

import ml_collections

from dae_jax import configs


def get_config(arg: str = ""):
    config = configs.load("superres_photos")  # its model, MSE, adam 1e-3 cosine, batch 32, 10 epochs
    config.data.dataset, config.data.views_per_image = "faces", 1
    config.data.center_crop, config.data.shrink_to, config.data.view = 128, 64, "resize"
    config.image_shape = (64, 64, 3)
    config.corruption = ml_collections.ConfigDict({"name": "downscale", "factor": 2})
    config.num_figure_images = 10
    if arg == "lfw_subset":  # the embedded 25x25 faces: no shrinking, the central 24x24
        config.data.source = "embedded"
        config.data.center_crop, config.data.shrink_to = 24, None
        config.image_shape = (24, 24, 3)
        config.num_epochs = 30
    elif arg:
        raise ValueError(f"superres_faces takes '' or 'lfw_subset', not {arg!r}")
    return config
