"""The ``dae-jax`` console script: ``dae-jax COMMAND ...``; ``dae-jax COMMAND --help`` says how.

``train`` and ``sweep`` take absl flags with ml_collections config overrides
(``--config.field=value``); the other commands take argparse options. Exit codes: 0 done,
2 usage error, 1 failure. An error is one line, ``dae-jax COMMAND: error: ...``; ``--debug``
shows the traceback instead. JAX and TensorFlow are imported only once a command runs.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
# TensorFlow only reads and shuffles data here (no float math), so its oneDNN kernels change no
# result; turned off, their start-up notice no longer sits above every error line.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, eval.json and figures.")
flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")
flags.DEFINE_multi_string("grid", [], "(sweep) FIELD=V1,V2,...: values of one config field; repeat for a grid.")
flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 of a multi-process run ($DAE_JAX_COORDINATOR_ADDRESS)."
)
flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run ($DAE_JAX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's id in [0, num_processes) ($DAE_JAX_PROCESS_ID).")
config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. experiments/configs/conv32_adadelta.py.", lock_config=True
)

EXIT_FAILURE, EXIT_USAGE = 1, 2
HELP_ARGS = {"-h", "--help", "--helpshort", "--helpfull"}
# What a failure of the work itself raises (bad input, missing files, NaN loss, damaged checkpoint):
# one line, no traceback. Anything else is a bug and says so.
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, RuntimeError)


class UsageError(Exception):
    """A command line that cannot run: exit code 2."""


def _fail(command: str, message: str, code: int) -> NoReturn:
    print(f"dae-jax {command}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, EXPECTED_ERRORS) else f"{type(e).__name__}: {text} (a bug? --debug shows where)"


def _guarded(command: str, debug: bool, fn: Callable, *args) -> None:
    """Runs ``fn(*args)`` and turns an error into one line and the exit code."""
    try:
        fn(*args)
    except UsageError as e:
        if debug:
            raise
        _fail(command, f"{e} (dae-jax {command} --help)", EXIT_USAGE)
    except Exception as e:
        if debug:
            raise
        _fail(command, _one_line(e), EXIT_FAILURE)


def _quiet_logs() -> None:
    """orbax/TFDS INFO logs off; ``--verbosity=0`` (train, sweep) brings them back."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)


# ---- train and sweep: absl flags ----------------------------------------------------------------


def _config_and_workdir(argv: list[str]):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}")
    if FLAGS.config is None or FLAGS.workdir is None:
        raise UsageError("--config and --workdir are required")
    return FLAGS.config, FLAGS.workdir


def train_main(argv: list[str]) -> None:
    """Trains FLAGS.config in FLAGS.workdir (resuming from its latest checkpoint), evaluates, writes figures."""
    config, workdir = _config_and_workdir(argv)
    if FLAGS.grid:
        raise UsageError("--grid is an option of dae-jax sweep")
    _quiet_logs()
    from dae_jax import sharding, training

    sharding.use_cpu_cores(config.batch_size, config.eval_batch_size)
    sharding.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    training.train_and_evaluate(config, workdir)


def sweep_main(argv: list[str]) -> None:
    """Trains every combination of the --grid values into FLAGS.workdir/<point>/, then writes the summary."""
    config, workdir = _config_and_workdir(argv)
    if not FLAGS.grid:
        raise UsageError("give at least one --grid FIELD=V1,V2,...")
    _quiet_logs()
    from dae_jax import sharding, sweep

    sharding.use_cpu_cores(config.batch_size, config.eval_batch_size)
    try:
        grid = sweep.parse_grid(FLAGS.grid, config)
    except ValueError as e:
        raise UsageError(str(e)) from None
    rows = sweep.run(config, workdir, grid, command=shlex.join(["dae-jax", *sys.argv[1:]]), stop_on_error=FLAGS.debug)
    print(f"wrote {Path(workdir) / 'summary.md'} and {Path(workdir) / 'summary.png'}")
    failed = [row["name"] for row in rows if "error" in row]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} grid points failed ({', '.join(failed)}); see summary.md")


ABSL_HELP = {
    "train": (
        "dae-jax train --config=FILE --workdir=DIR [--config.FIELD=VALUE ...]",
        "Trains the config in DIR and evaluates it on the test set with fixed noise; rerunning resumes from the "
        "latest checkpoint. DIR gets eval.json, metrics.jsonl, figures, metadata.json and checkpoints. A "
        "multi-process run starts this command once per process with --coordinator_address, --num_processes and "
        "--process_id (README, Multi-host).",
        ("config", "workdir", "coordinator_address", "num_processes", "process_id", "debug"),
        "dae-jax train --config=experiments/configs/conv32_adadelta.py --workdir=workdirs/conv32 --config.num_epochs=3",
    ),
    "sweep": (
        "dae-jax sweep --config=FILE --workdir=DIR --grid FIELD=V1,V2,... [--grid ...] [--config.FIELD=VALUE ...]",
        "Trains every combination of the grid values, each in DIR/<point>/ (a rerun resumes them), then writes "
        "DIR/summary.md (one row per point: test PSNR, SSIM, BCE, MSE, minutes) and DIR/summary.png. Values are "
        "Python literals (numbers, True) or plain strings. A failed point is listed with its error; the others run.",
        ("config", "workdir", "grid", "debug"),
        "dae-jax sweep --config=experiments/configs/conv32_adadelta.py --workdir=workdirs/sweep "
        "--grid corruption.sigma=0.1,0.3,0.5 --grid optimizer=adam,adadelta --config.num_epochs=2",
    ),
}


def _absl_help(command: str) -> str:
    usage, description, names, example = ABSL_HELP[command]
    lines = [f"usage: {usage}", "", description, "", "options:"]
    lines += [f"  --{name}: {FLAGS[name].help}" for name in names]
    lines += [
        "  --config.FIELD=VALUE: override any config field (experiments/configs/base.py documents them), e.g.",
        "      --config.num_epochs=3 --config.corruption.sigma=0.3; --config.smoke=True shrinks any config to seconds",
        "  --verbosity=0: show the INFO logs of orbax and TFDS",
        "",
        f"example: {example}",
    ]
    return "\n".join(lines)


def _run_absl(command: str, main_fn: Callable, args: list[str]) -> None:
    if HELP_ARGS & set(args):
        print(_absl_help(command))
        sys.exit(0)
    debug = any(a.split("=")[0] == "--debug" for a in args)

    def parse(argv: list[str]) -> list[str]:
        try:
            rest = FLAGS(argv)
            if FLAGS.config is not None:
                FLAGS.config.keys()  # a config file that failed to load raises on first use: make that now
        except Exception as e:
            if debug:
                raise
            _fail(command, f"{_flag_error(e, args)} (dae-jax {command} --help)", EXIT_USAGE)
        return rest

    app.run(
        lambda argv: _guarded(command, FLAGS.debug, main_fn, argv),
        argv=[f"dae-jax {command}", *args],
        flags_parser=parse,
    )


def _flag_error(e: Exception, args: list[str]) -> str:
    """One line for flags that do not parse, naming a missing config file or an unknown config field."""
    flag = FLAGS["config"]
    filename = config_flags.get_config_filename(flag) if flag.present else None
    if filename and not Path(filename.split(":")[0]).is_file():
        return f"config file {filename!r} does not exist"
    text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())  # KeyError reprs its message
    unknown = re.search(r"'(\w+)'", text)
    if isinstance(e, (KeyError, AttributeError)) and unknown:  # config_flags on --config.<no such field>
        field = unknown.group(1)
        arg = next((a for a in args if a.startswith("--config.") and field in re.split(r"[.=]", a)), "--config.*")
        suggestion = re.search(r'Did you mean \W*"([\w.]+)"', text)
        hint = f"; did you mean {suggestion.group(1)!r}?" if suggestion else " (experiments/configs/base.py lists them)"
        return f"{arg.split('=')[0]}: the config has no field {field!r}{hint}"
    return text


# ---- the other commands: argparse ---------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit code 2, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} ({self.prog} --help)\n")


def _parser(prog: str, description: str, epilog: str | None = None, debug: bool = True) -> _Parser:
    parser = _Parser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if debug:
        _debug_arg(parser)
    return parser


def _debug_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _count(text: str) -> int:
    """argparse type: an integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _workdir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir", required=True, help="a run's workdir (or its checkpoints dir, or one step's dir W/checkpoints/N)"
    )


def _dataset_args(parser: argparse.ArgumentParser, split_help: str) -> None:
    parser.add_argument(
        "--dataset",
        help="a TFDS dataset name (fashion_mnist, local_images/NAME, ...; see dae-jax data info); "
        "default: the run's own data source",
    )
    parser.add_argument("--split", default="test", help=split_help)
    parser.add_argument("--max-examples", type=_count, help="use the first N images (default: all)")


def evaluate_command(args: argparse.Namespace) -> None:
    from dae_jax import evaluation, training

    result = evaluation.evaluate(
        args.workdir, args.dataset, args.corruption, split=args.split, max_examples=args.max_examples, seed=args.seed
    )
    spec = ",".join(f"{k}={v}" for k, v in result["corruption"].items() if k != "name")
    print(f"{result['dataset']}: {result['num_images']} images, corruption {result['corruption']['name']} {spec}")
    print(f"{'metric':8} {'output':>10} {'noisy input':>12}")
    for name in ("bce", "mse", "psnr", "ssim"):
        print(f"{name:8} {result[name]:10.4f} {result['noisy_' + name]:12.4f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(training.strict_json(result), indent=2, allow_nan=False))
        print(f"wrote {args.out}")


def _image_inputs(inputs: list[str], out: Path) -> list[tuple[Path, Path]]:
    """(input file, output PNG) for every file given and every PNG/JPEG under every folder given."""
    from dae_jax import datasets

    pairs = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = datasets.find_images(given)
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


def denoise_command(args: argparse.Namespace) -> None:
    from dae_jax import denoiser, images

    pairs = _image_inputs(args.inputs, Path(args.out))
    model = denoiser.load(args.workdir)
    channels = model.image_shape[2]
    for source, target in pairs:
        image = images.read_image(source, channels)  # uint8 [H, W, C], C = the model's channel count
        images.write_png(target, model.denoise_any_size(image, args.fit, args.overlap))
        print(f"{source} ({image.shape[0]}x{image.shape[1]}) -> {target}")
    print(f"denoised {len(pairs)} image(s) into {args.out}")


def encode_command(args: argparse.Namespace) -> None:
    import numpy as np

    from dae_jax import denoiser, evaluation

    model = denoiser.load(args.workdir)
    arrays, description = evaluation.load_dataset(model, args.dataset, args.split, args.max_examples)
    codes = model.encode(arrays["image"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, codes)
    print(f"{description}: {len(codes)} images -> codes {codes.shape[1:]} {codes.dtype} in {args.out}")
    if args.labels:
        if "label" not in arrays:
            raise ValueError(f"{description} has no labels to write to {args.labels}.")
        np.save(args.labels, arrays["label"])
        print(f"labels [{len(arrays['label'])}] in {args.labels}")


def data_info_command(args: argparse.Namespace) -> None:
    from dae_jax import input_pipeline

    data_dir = input_pipeline.default_data_dir(args.data_dir)
    print(f"MNIST sources (data.source; TFDS data dir {data_dir}):")
    for name, (available, how) in input_pipeline.source_status(args.idx_dir, args.data_dir).items():
        print(f"  {name:9} {'yes' if available else 'no ':3}  {how}")
    prepared = input_pipeline.prepared_datasets(args.data_dir)
    print(f"prepared TFDS datasets in {data_dir} (dae-jax evaluate --dataset NAME):")
    for name, splits in prepared.items():
        print(f"  {name:32} " + ", ".join(f"{split} {n:,}" for split, n in splits.items()))
    if not prepared:
        print("  none")


def data_prepare_command(args: argparse.Namespace) -> None:
    from dae_jax import input_pipeline

    if args.idx_dir and (args.name or args.channels):
        raise UsageError("--name and --channels go with --image-dir, not --idx-dir")
    if args.idx_dir:
        b = input_pipeline.builder(input_pipeline.resolve_source("idx", args.idx_dir), args.data_dir)
        use = f"train on it with --config.data.idx_dir={args.idx_dir}"
    else:
        b = input_pipeline.prepare_image_folder(
            args.image_dir, args.name or Path(args.image_dir).resolve().name, args.channels, args.data_dir
        )
        use = f"image shape {b.info.features['image'].shape}, classes {b.info.features['label'].names}"
    splits = ", ".join(f"{name} {info.num_examples:,}" for name, info in b.info.splits.items())
    print(f"prepared TFDS {b.info.full_name} in {input_pipeline.default_data_dir(args.data_dir)} ({splits}); {use}")
    print(f"evaluate on it: dae-jax evaluate --workdir W --dataset {b.info.full_name.rsplit('/', 1)[0]}")


def _argparse_command(build: Callable[[], _Parser]) -> Callable[[str, list[str]], None]:
    def run(command: str, args: list[str]) -> None:
        namespace = build().parse_args(args)
        logging.set_verbosity(logging.ERROR)  # orbax/TFDS INFO logs
        _guarded(command, namespace.debug, namespace.run, namespace)

    return run


def _evaluate_parser() -> _Parser:
    parser = _parser(
        "dae-jax evaluate",
        "Scores a trained model as training scores its test set (BCE, MSE, PSNR, SSIM of the output and of the noisy "
        "input, fixed noise): on the run's own test set it reproduces eval.json; --dataset and --corruption score it "
        "on other data or noise.",
        "example: dae-jax evaluate --workdir workdirs/conv32 --dataset fashion_mnist --corruption masking:p=0.5",
    )
    _workdir_arg(parser)
    _dataset_args(parser, "split: train, validation or test of the run's data; any TFDS split of --dataset")
    parser.add_argument(
        "--corruption",
        help="NAME, NAME:key=value,... or a JSON spec, e.g. gaussian:sigma=0.3 (default: the run's own); "
        "names: none, gaussian, masking, salt_and_pepper, gaussian_blur, low_resolution, compose",
    )
    parser.add_argument("--seed", type=int, help="seed of the evaluation noise (default: the run's, as in eval.json)")
    parser.add_argument("--out", help="also write the metrics to this JSON file")
    parser.set_defaults(run=evaluate_command)
    return parser


def _denoise_parser() -> _Parser:
    parser = _parser(
        "dae-jax denoise",
        "Denoises PNG/JPEG images of any size into PNGs. Images are read as the model's channels (grayscale "
        "or RGB).\n\nSizes (--fit):\n"
        "  tile    (default) a side shorter than the model's input is padded with its edge pixels and cropped\n"
        "          again; a longer side is covered by model-size tiles overlapping by --overlap pixels, blended\n"
        "          with triangular weights. Every pixel is denoised at its own scale.\n"
        "  resize  the image is scaled to the model's input size (antialiased bilinear) and the result back.",
        "example: dae-jax denoise --workdir workdirs/conv32 scans/ noisy.png --out denoised/",
    )
    _workdir_arg(parser)
    parser.add_argument("inputs", nargs="+", metavar="IN", help="PNG/JPEG files, or folders searched for them")
    parser.add_argument("--out", required=True, help="output folder: IN's name (or path under a folder IN) as .png")
    parser.add_argument(
        "--fit", choices=("tile", "resize"), default="tile", help="how sizes other than the model's are handled"
    )
    parser.add_argument("--overlap", type=_count, help="pixels shared by neighbouring tiles (default: a quarter tile)")
    parser.set_defaults(run=denoise_command)
    return parser


def _encode_parser() -> _Parser:
    parser = _parser(
        "dae-jax encode",
        "Writes the codes (encoder outputs) of clean images of a dataset split to a .npy file, [N, ...code shape], "
        "float32, in the split's order.",
        "example: dae-jax encode --workdir workdirs/conv32 --split test --out codes.npy --labels labels.npy",
    )
    _workdir_arg(parser)
    _dataset_args(
        parser, "split: train, validation or test of the run's data (default test); any TFDS split of --dataset"
    )
    parser.add_argument("--out", required=True, help="the .npy file for the codes")
    parser.add_argument("--labels", help="also write the images' labels to this .npy file")
    parser.set_defaults(run=encode_command)
    return parser


def _data_parser() -> _Parser:
    parser = _parser(
        "dae-jax data",
        "Data sources, offline: `data info` shows which MNIST sources are available and which TFDS datasets are "
        "prepared; `data prepare` builds a TFDS dataset from local IDX files or an image folder.",
        debug=False,  # on the subcommands: dae-jax data info --debug
    )
    sub = parser.add_subparsers(title="commands", required=True, metavar="{info,prepare}", parser_class=_Parser)
    info = sub.add_parser(
        "info",
        help="which sources data.source=auto can use, and the prepared TFDS datasets",
        description="Lists the MNIST sources (idx, tfds, embedded), whether each is available and which one "
        "data.source=auto picks (the network is checked for at most 3 s), and every TFDS dataset prepared in the "
        "data dir.",
    )
    prepare = sub.add_parser(
        "prepare",
        help="build a TFDS dataset from IDX files or an image folder",
        description="Builds a TFDS dataset offline. --idx-dir: MNIST-format IDX files (train-images-idx3-ubyte[.gz], "
        "...) -> mnist_idx/<id>. --image-dir: one folder per split (train/, test/), each holding PNG/JPEG files or "
        "one folder per class -> local_images/<name>; all images of one size.",
        epilog="example: dae-jax data prepare --image-dir scans/ --name scans",
    )
    for p in (info, prepare):
        _debug_arg(p)
        p.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    info.add_argument("--idx-dir", help="an MNIST IDX dir to check (default: $DAE_JAX_MNIST_DIR)")
    info.set_defaults(run=data_info_command)
    source = prepare.add_mutually_exclusive_group(required=True)
    source.add_argument("--idx-dir", help="directory of MNIST-format IDX files")
    source.add_argument("--image-dir", help="folder of images: split/[class/]image.png")
    prepare.add_argument("--name", help="--image-dir only: the dataset's config name (default: the folder's name)")
    prepare.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        help="--image-dir only: 1 grayscale, 3 RGB (default: as the first image)",
    )
    prepare.set_defaults(run=data_prepare_command)
    return parser


def bench(command: str, args: list[str]) -> None:
    """Forwards to ``experiments.benchmark.main(argv)`` with argv[0] = "dae-jax bench" (absl convention)."""
    try:
        benchmark = importlib.import_module("experiments.benchmark")
    except ModuleNotFoundError as e:
        if e.name not in ("experiments", "experiments.benchmark"):
            raise
        if HELP_ARGS & set(args):
            print(
                "usage: dae-jax bench [ARGS...]\n\nRuns the benchmark suite, experiments/benchmark.py, which is "
                "not in this checkout."
            )
            sys.exit(0)
        _fail(
            command,
            "the benchmark suite experiments/benchmark.py is not in this checkout; "
            "run from a dae-jax checkout that has it",
            EXIT_FAILURE,
        )
    _guarded(command, "--debug" in args, lambda: sys.exit(benchmark.main([f"dae-jax {command}", *args])))


COMMANDS: dict[str, tuple[str, Callable[[str, list[str]], None]]] = {
    "train": (
        "train a config in a workdir (resumes), evaluate it, write figures",
        lambda c, a: _run_absl(c, train_main, a),
    ),
    "evaluate": (
        "a run's metrics on its own or any TFDS dataset, with any corruption",
        _argparse_command(_evaluate_parser),
    ),
    "denoise": ("denoise PNG/JPEG files or folders of any size into PNGs", _argparse_command(_denoise_parser)),
    "encode": ("write the codes of a dataset split to a .npy file", _argparse_command(_encode_parser)),
    "data": (
        "data sources: `data info`, `data prepare` (IDX files or an image folder)",
        _argparse_command(_data_parser),
    ),
    "sweep": (
        "train a grid of config values, then one summary table and figure",
        lambda c, a: _run_absl(c, sweep_main, a),
    ),
    "bench": ("the benchmark suite (experiments/benchmark.py)", bench),
}


def _usage() -> str:
    lines = ["usage: dae-jax COMMAND [options]   (dae-jax COMMAND --help)", "", "commands:"]
    lines += [f"  {name:9} {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += ["", "exit codes: 0 done, 1 failure, 2 usage error; --debug shows the traceback of an error"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else (None, [])
    if command in HELP_ARGS:
        print(_usage())
        sys.exit(0)
    if command not in COMMANDS:
        problem = "no command given" if command is None else f"unknown command {command!r}"
        print(f"dae-jax: error: {problem}; choose one of {', '.join(COMMANDS)} (dae-jax --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    COMMANDS[command][1](command, args)
