"""Copies a finished run's results (not its checkpoints) from its workdir into results/<name>/.

  python experiments/publish_run.py --workdir workdirs/conv32_16_adam --name conv32_16_adam \\
      --command "DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train --config=... --workdir=..."

Copied: eval.json, metrics.jsonl, metadata.json, the figures, analysis JSONs and train.log
(the run's console output, if the command saved it there); command.txt is written from
--command. Paths of this machine in the text files become portable ones: the folder above the
checkout is written ``..`` (``../shared/data/mnist``), the checkout ``.``, the home folder ``~``, the
workdir ``workdirs/<name>``. Files already in ``results/<name>/`` are refused unless ``--overwrite``.
Then run ``python experiments/results_table.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dae_jax import files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
FILES = ("eval.json", "metrics.jsonl", "metadata.json", "train.log")
PATTERNS = ("*.png", "*.json")


def portable(text: str, workdir: Path, name: str) -> str:
    """``text`` with this machine's absolute paths written as paths that mean the same on any checkout."""
    text = text.replace(str(workdir.resolve()), f"workdirs/{name}").replace(str(ROOT) + "/", "./")
    return text.replace(str(ROOT.parent) + "/", "../").replace(str(Path.home()) + "/", "~/")


def publish(workdir: Path, name: str, command: str, overwrite: bool = False) -> Path:
    if not (workdir / "eval.json").is_file():
        raise SystemExit(f"{workdir} has no eval.json: the run did not finish.")
    out = RESULTS / name
    sources = sorted(
        {workdir / f for f in FILES if (workdir / f).is_file()} | set().union(*map(workdir.glob, PATTERNS))
    )
    try:
        files.check_outputs([out / p.name for p in sources] + [out / "command.txt"], out, overwrite=overwrite)
    except ValueError as e:
        raise SystemExit(f"publish_run: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    for path in sources:
        if path.suffix == ".png":
            files.write_bytes(out / path.name, path.read_bytes())
        else:
            files.write_text(out / path.name, portable(path.read_text(), workdir, name))
    files.write_text(out / "command.txt", portable(command.strip(), workdir, name) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--name", required=True, help="results/<name>/")
    parser.add_argument("--command", required=True, help="the exact command that made the run")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of results/<name>/")
    args = parser.parse_args()
    print(f"wrote {publish(args.workdir, args.name, args.command, args.overwrite)}")


if __name__ == "__main__":
    main()
