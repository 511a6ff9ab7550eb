"""Super-resolution x4 of face photographs: ``superres_faces`` with the input downscaled by 4 (64 -> 16 -> 64).

Commands:
  dae-jax train --config=experiments/configs/superres_faces_x4.py --workdir=workdirs/superres_faces_x4
  dae-jax train --config=experiments/configs/superres_faces_x4.py:lfw_subset --workdir=workdirs/faces_subset_x4
Expected: PSNR and SSIM above bicubic's. Measured (:lfw_subset, results/superres_faces_x4_lfw_subset[_seedS]/,
seeds 0-2, 25-53 s each): 19.71 ± 0.01 dB vs bicubic 19.52, SSIM 0.469 ± 0.014 vs 0.392 (15 test faces).
"""

from dae_jax import configs


def get_config(arg: str = ""):
    config = configs.load(f"superres_faces:{arg}" if arg else "superres_faces")
    config.corruption.factor = 4
    return config
