"""Super-resolution x4 of face photographs: ``superres_faces`` with the input downscaled by 4 (64 -> 16 -> 64).

Commands:
  dae-jax train --config=experiments/configs/superres_faces_x4.py --workdir=workdirs/superres_faces_x4
  dae-jax train --config=experiments/configs/superres_faces_x4.py:lfw_subset --workdir=workdirs/faces_subset_x4
Expected: PSNR and SSIM above bicubic's, by more than at x2 (bicubic loses more).
"""

from dae_jax import configs


def get_config(arg: str = ""):
    config = configs.load(f"superres_faces:{arg}" if arg else "superres_faces")
    config.corruption.factor = 4
    return config
