"""Super-resolution x2 of RGB patches: conv encoder-decoder with additive skip connections, MSE, vs bicubic.

Source: reference setup 5 of the dae-jax issue on reference setups. Input = the image
downscaled by 2 (mean of each 2x2 block) and upscaled back with bicubic interpolation
(corruption ``low_resolution``, factor 2, method "cubic"); target = the original. Because
that corruption is the bicubic upscaling itself, eval.json's ``noisy_psnr``/``noisy_ssim``
ARE the bicubic baseline. To also blur the input, compose it:
``config.corruption = {"name": "compose", "steps": ({"name": "gaussian_blur", "sigma": 0.5},
{"name": "low_resolution", "factor": 2, "method": "cubic"})}``.
Model ``superres`` (dae_jax.nn.models): strided-conv encoder to 12x12x64, nearest-upsampling
decoder with additive skips from the encoder at full and half resolution and a global
residual (output = input + correction). MSE loss, adam with cosine decay, batch 32.
Data: dataset ``rgb_patches`` (dae_jax.data.sources): a folder of pictures when given,
TFDS ``lfw`` faces when prepared or online, else (as here) the embedded default: 4,000 train
/ 500 test seeded 48x48 crops of 5 photographs inside scikit-image; test crops come from a
strip of each photograph that no train crop touches. 48x48 (not 64x64) keeps an epoch near
a minute on 2 shared CPU cores.

Command (2-core CPU, offline: embedded scikit-image patches; 7 minutes, 85-220 images/s on the
shared CPU):
  dae-jax train --config=experiments/configs/superres_rgb.py --workdir=workdirs/superres_rgb
Expected: PSNR and SSIM above bicubic's (the noisy_* numbers).
Measured (10 epochs, 500 test patches): PSNR 38.09 dB vs bicubic 37.46 dB (+0.62 dB), SSIM
0.9335 vs 0.9203, MSE 3.76e-4 vs 4.94e-4; validation PSNR 33.55 vs 32.35 dB; results/superres_rgb/.
The mean PSNR over patches weighs the easy ones heavily: chelsea.png's test strip is
out-of-focus background where bicubic is already near 50 dB, and the model gains less there.
Model choice, on validation PSNR gain after 6 epochs: a randomly initialised last conv +0.13 dB
(its 10-epoch run: test +0.17 dB), zero-initialised +0.83 dB; adam 3e-3 instead of 1e-3 +0.29 dB.
"""

import ml_collections

from dae_jax import configs


def get_config():
    config = configs.base()
    config.data.dataset = "rgb_patches"
    config.image_shape = (48, 48, 3)
    config.model.name = "superres"
    config.corruption = ml_collections.ConfigDict({"name": "low_resolution", "factor": 2, "method": "cubic"})
    config.loss = "mse"
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.lr_schedule = "cosine"
    config.batch_size = 32
    config.eval_batch_size = 200
    config.num_epochs = 10
    return config
