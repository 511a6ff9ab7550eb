"""Copies a finished run's results (not its checkpoints) from its workdir into results/<name>/.

  python experiments/publish_run.py --workdir workdirs/conv32_16_adam --name conv32_16_adam \\
      --command "DAE_JAX_MNIST_DIR=../shared/data/mnist dae-jax train --config=... --workdir=..."

Copied: eval.json, metrics.jsonl, metadata.json, the figures, analysis JSONs and train.log
(the run's console output, if the command saved it there); command.txt is written from
--command. Then run ``python experiments/results_table.py``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
FILES = ("eval.json", "metrics.jsonl", "metadata.json", "train.log")
PATTERNS = ("*.png", "*.json")


def publish(workdir: Path, name: str, command: str) -> Path:
    if not (workdir / "eval.json").is_file():
        raise SystemExit(f"{workdir} has no eval.json: the run did not finish.")
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    files = {workdir / f for f in FILES if (workdir / f).is_file()}
    files |= {p for pattern in PATTERNS for p in workdir.glob(pattern)}
    for path in sorted(files):
        shutil.copy2(path, out / path.name)
    (out / "command.txt").write_text(command.strip() + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--name", required=True, help="results/<name>/")
    parser.add_argument("--command", required=True, help="the exact command that made the run")
    args = parser.parse_args()
    print(f"wrote {publish(args.workdir, args.name, args.command)}")


if __name__ == "__main__":
    main()
