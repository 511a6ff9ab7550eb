"""``dae-jax data info`` and ``dae-jax data prepare``: which sources are available; build a TFDS dataset offline."""

from __future__ import annotations

import argparse

from dae_jax.cli import common

DESCRIPTION = (
    "Data sources, offline: `data info` shows which MNIST sources are available, what each dataset reads, and "
    "which TFDS datasets are prepared; `data prepare` builds a TFDS dataset from local IDX files or an image folder."
)


def info(args: argparse.Namespace) -> None:
    from dae_jax.data import sources

    data_dir = sources.default_data_dir(args.data_dir)
    print(f"MNIST sources (data.source; TFDS data dir {data_dir}):")
    for name, (available, how) in sources.source_status(args.idx_dir, args.data_dir).items():
        print(f"  {name:9} {'yes' if available else 'no ':3}  {how}")
    print("datasets (data.dataset; what data.source=auto reads for it, with $DAE_JAX_*_DIR as set):")
    for name, (available, how) in sources.dataset_status(args.data_dir).items():
        print(f"  {name:13} {'yes' if available else 'no ':3}  {how}")
    prepared = sources.prepared_datasets(args.data_dir)
    print(f"prepared TFDS datasets in {data_dir} (dae-jax evaluate --dataset NAME):")
    for name, splits in prepared.items():
        print(f"  {name:32} " + ", ".join(f"{split} {n:,}" for split, n in splits.items()))
    if not prepared:
        print("  none")


def prepare(args: argparse.Namespace) -> None:
    from dae_jax.data import builders, sources

    if args.idx_dir and args.name:
        raise common.UsageError("--name goes with --image-dir, not --idx-dir")
    if args.idx_dir:
        b = builders.builder(sources.resolve_source("idx", args.idx_dir), args.data_dir)
        use = f"train on it with --config.data.idx_dir={args.idx_dir}"
    else:
        b = builders.prepare_image_folder(args.image_dir, args.name, args.data_dir)
        use = (
            f"classes {b.info.features['label'].names}; train on it with --config.data.dataset=image_folder "
            f"--config.data.image_dir={args.image_dir} (streamed, no pass over the files at start)"
        )
    splits = ", ".join(f"{name} {info.num_examples:,}" for name, info in b.info.splits.items())
    print(f"prepared TFDS {b.info.full_name} in {sources.default_data_dir(args.data_dir)} ({splits}); {use}")
    print(f"evaluate on it: dae-jax evaluate --workdir W --dataset {b.info.full_name.rsplit('/', 1)[0]}")


def build() -> common.Parser:
    p = common.Parser(prog="dae-jax data", description=DESCRIPTION, allow_abbrev=False)
    sub = p.add_subparsers(title="commands", required=True, metavar="{info,prepare}", parser_class=common.Parser)
    info_p = sub.add_parser(
        "info",
        help="which sources data.source=auto can use, and the prepared TFDS datasets",
        description="Lists the MNIST sources (idx, tfds, embedded), whether each is available and which one "
        "data.source=auto picks (the network is checked for at most 3 s), the source each dataset (mnist, "
        "fashion_mnist, image_folder, photos, faces) reads, and every TFDS dataset prepared in the data dir.",
    )
    prepare_p = sub.add_parser(
        "prepare",
        help="build a TFDS dataset from IDX files or an image folder",
        description="Builds a TFDS dataset offline. --idx-dir: MNIST-format IDX files (train-images-idx3-ubyte[.gz], "
        "...) -> mnist_idx/<id>. --image-dir: any folder of PNG/JPEG files of any sizes, searched recursively, split "
        "by train/ test/ [validation/] subfolders or else by a stable hash of each path -> image_folder/<id> (or "
        "<name>): each file's bytes, read again by training without a pass over the folder.",
        epilog="example: dae-jax data prepare --image-dir scans/ --name scans",
    )
    for sp in (info_p, prepare_p):
        common.common_options(sp)
        sp.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    info_p.add_argument("--idx-dir", help="an MNIST IDX dir to check (default: $DAE_JAX_MNIST_DIR)")
    info_p.set_defaults(action=info, command="data info")
    source = prepare_p.add_mutually_exclusive_group(required=True)
    source.add_argument("--idx-dir", help="directory of MNIST-format IDX files")
    source.add_argument("--image-dir", help="folder of images, any depth: [split/][class/]image.png")
    prepare_p.add_argument("--name", help="--image-dir only: a name for evaluate --dataset (default: a digest)")
    prepare_p.set_defaults(action=prepare, command="data prepare")
    return p


def run(args: argparse.Namespace) -> None:
    args.action(args)
