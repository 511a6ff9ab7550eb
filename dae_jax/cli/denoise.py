"""``dae-jax denoise --workdir=W IN... --out=DIR``: PNG/JPEG files or folders of any size, denoised into PNGs."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from dae_jax.cli import common
from dae_jax.cli.evaluate import workdir_option

DESCRIPTION = (
    "Denoises PNG/JPEG images of any size into PNGs. Images are read as the model's channels (grayscale "
    "or RGB).\n\nSizes (--fit):\n"
    "  tile    (default) a side shorter than the model's input is padded with its edge pixels and cropped\n"
    "          again; a longer side is covered by model-size tiles overlapping by --overlap pixels, blended\n"
    "          with triangular weights. Every pixel is denoised at its own scale.\n"
    "  resize  the image is scaled to the model's input size (antialiased bilinear) and the result back."
)
EXAMPLE = "dae-jax denoise --workdir workdirs/conv32 scans/ noisy.png --out denoised/"


def build() -> common.Parser:
    p = common.parser("denoise", DESCRIPTION, EXAMPLE)
    workdir_option(p)
    p.add_argument("inputs", nargs="+", metavar="IN", help="PNG/JPEG files, or folders searched for them")
    p.add_argument("--out", required=True, help="output folder: IN's name (or path under a folder IN) as .png")
    p.add_argument(
        "--fit", choices=("tile", "resize"), default="tile", help="how sizes other than the model's are handled"
    )
    p.add_argument("--overlap", type=common.count, help="pixels shared by neighbouring tiles (default: a quarter tile)")
    common.overwrite_option(p)
    return p


def image_pairs(inputs: list[str], out: Path) -> list[tuple[Path, Path]]:
    """(input file, output PNG) for every file given and every PNG/JPEG under every folder given."""
    from dae_jax.data import image_files

    pairs = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = image_files.find_images(given)
            if not found:
                raise ValueError(f"folder {str(given)!r} has no PNG/JPEG files.")
            pairs += [(p, out / p.relative_to(given).with_suffix(".png")) for p in found]
        elif given.is_file():
            pairs.append((given, out / given.with_suffix(".png").name))
        else:
            raise ValueError(f"input {str(given)!r} does not exist; give PNG/JPEG files or folders of them.")
    targets = [target for _, target in pairs]
    counts = collections.Counter(targets)  # quadratic list.count would dominate for large folders
    clash = next((t for t in targets if counts[t] > 1), None)
    if clash is not None:
        sources = [str(p) for p, t in pairs if t == clash]
        raise ValueError(f"{sources} would all be written to {clash}; denoise them into different --out folders.")
    return pairs


def run(args: argparse.Namespace) -> None:
    from dae_jax import files, sharding
    from dae_jax.data import image_files
    from dae_jax.eval import denoiser

    sharding.use_cpu_cores()  # one XLA:CPU device per core: a batch is split over every core
    pairs = image_pairs(args.inputs, Path(args.out))
    # Before anything is read or written: no input replaced, nothing written through a link out of --out.
    files.check_outputs([t for _, t in pairs], args.out, [s for s, _ in pairs], args.overwrite)
    model = denoiser.load(args.workdir)
    channels = model.image_shape[2]
    for source, _ in pairs:  # every input read once before any output is written: no half-done folder
        image_files.read_image(source, channels)
    for source, target in pairs:
        image = image_files.read_image(source, channels)  # uint8 [H, W, C], C = the model's channel count
        image_files.write_png(target, model.denoise_any_size(image, args.fit, args.overlap))
        print(f"{source} ({image.shape[0]}x{image.shape[1]}) -> {target}")
    print(f"denoised {len(pairs)} image(s) into {args.out}")
