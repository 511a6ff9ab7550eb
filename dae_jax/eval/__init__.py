"""Evaluation: ``metrics`` (PSNR, SSIM, BCE, MSE per image), ``evaluation`` (scoring a split with the
fixed noise), ``denoiser`` (a trained model on user images), ``layout`` and ``tiling`` (user images of
any layout and size), ``figures`` and ``analysis`` (what a run writes at its end)."""
