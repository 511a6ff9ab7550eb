"""``dae-jax denoise --workdir=W IN... --out=DIR``: PNG/JPEG files or folders of any size, denoised into PNGs."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dae_jax.cli import common
from dae_jax.cli.evaluate import workdir_option

if TYPE_CHECKING:
    import numpy as np

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


# Decoded images kept from the first pass (every input read before any output is written) for the
# second; beyond this many bytes of pixels the rest are read again when their turn comes.
KEEP_BYTES = 512 * 2**20
# PNGs are encoded and fsync-ed by this many threads while the model works (zlib and fsync release the
# GIL), at most WRITES_AHEAD of them waiting: a 28x28 digit's PNG takes ~0.2 ms to encode and ~0.4 ms to
# fsync here.
WRITERS, WRITES_AHEAD = 4, 256


def read_all(sources: list[Path], channels: int) -> Iterator[np.ndarray]:
    """uint8 [H, W, C] of every source, in order; all are decoded now, so an unreadable file stops the run
    before any output is written."""
    from dae_jax.data import image_files

    kept, size = [], 0
    for source in sources:
        image = image_files.read_image(source, channels)
        size += image.nbytes
        kept.append(image if size <= KEEP_BYTES else None)
    return (image_files.read_image(s, channels) if i is None else i for s, i in zip(sources, kept, strict=True))


def run(args: argparse.Namespace) -> None:
    from dae_jax import files
    from dae_jax.data import image_files
    from dae_jax.eval import denoiser

    common.prepare_process(inline=True)
    pairs = image_pairs(args.inputs, Path(args.out))
    # Before anything is read or written: no input replaced, nothing written through a link out of --out.
    files.check_outputs([t for _, t in pairs], args.out, [s for s, _ in pairs], args.overwrite)
    model = denoiser.load(args.workdir)
    outputs = model.denoise_each(read_all([s for s, _ in pairs], model.image_shape[2]), args.fit, args.overlap)
    writing = collections.deque()  # (source, target, shape, future of its write), in order

    def listed(source, target, shape) -> None:
        print(f"{source} ({shape[0]}x{shape[1]}) -> {target}")

    def report(source, target, shape, written) -> None:
        written.result()  # a failed write (a full disk) stops the run here, naming its file
        listed(source, target, shape)

    pool = concurrent.futures.ThreadPoolExecutor(WRITERS)
    try:
        for (source, target), output in zip(pairs, outputs, strict=True):
            writing.append((source, target, output.shape, pool.submit(image_files.write_png, target, output)))
            while writing and (len(writing) > WRITES_AHEAD or writing[0][3].done()):
                report(*writing.popleft())
        while writing:
            report(*writing.popleft())
    finally:  # on an error (or Ctrl-C) the writes not yet begun are dropped, and every file written is listed
        pool.shutdown(cancel_futures=True)
        for source, target, shape, written in writing:
            if not written.cancelled() and written.exception() is None:
                listed(source, target, shape)
    print(f"denoised {len(pairs)} image(s) into {args.out}")
