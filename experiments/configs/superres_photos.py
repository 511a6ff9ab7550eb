"""Super-resolution x2 of natural photographs, on random crops drawn on the fly; MSE; scored on whole test photos.

Source: reference setup 5 of the dae-jax issues (restoration of low-resolution photographs by a conv
encoder-decoder with additive skips and MSE), on dae-jax's offline default for natural images:
every photograph inside scikit-image (dataset ``photos``, 19 pictures of 256-1024 px, used whole;
a fixed split, ``dae_jax.data.embedded.HELD_OUT``: 4 test photographs, 2 validation, 13 train).
Training views: random 48x48 crops, 200 per photograph per epoch, flipped left-right at random,
all drawn from (seed, epoch, view). Input = the view downscaled by 2 (mean of each 2x2 block) and
upscaled back bicubically (corruption ``low_resolution``), so eval.json's ``noisy_*`` numbers ARE the bicubic baseline.
Test: each test photograph whole, at its own size (dae_jax.eval.whole_image).
Model ``superres`` (dae_jax.nn.models): strided-conv encoder, nearest-upsampling decoder with
additive skips and a global residual whose last conv starts at zero: the untrained model is the
bicubic upscaling itself. Adam 1e-3 with cosine decay, batch 32. Any folder of photographs:
``--config.data.image_dir=DIR``.

Command (2-core CPU, offline):
  dae-jax train --config=experiments/configs/superres_photos.py --workdir=workdirs/superres_photos
Expected: PSNR and SSIM above bicubic's (the noisy_* numbers) on the whole test photographs.
Measured (results/superres_photos/, _seed1, _seed2; 3 min 14 s - 3 min 26 s each): test PSNR
32.22 +- 0.14 dB vs bicubic 31.60, SSIM 0.9127 +- 0.0009 vs 0.9017 (4 test photographs).
"""

import ml_collections

from dae_jax import configs


def get_config():
    config = configs.base()
    config.data.dataset = "photos"
    config.data.views_per_image = 200
    config.data.flip = True
    config.image_shape = (48, 48, 3)
    config.model.name = "superres"
    config.corruption = ml_collections.ConfigDict({"name": "low_resolution", "factor": 2, "method": "cubic"})
    config.loss = "mse"
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.lr_schedule = "cosine"
    config.batch_size = 32
    config.eval_batch_size = 32
    config.num_epochs = 10
    config.num_figure_images = 4
    return config
