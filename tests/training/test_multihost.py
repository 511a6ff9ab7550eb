"""Multi-process data parallelism: real jax.distributed processes on localhost, CPU collectives (gloo)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CONFIG, ROOT
from tests.data.test_folders import draw

WORKER = Path(__file__).with_name("multihost_worker.py")
FOLDER_WORKER = Path(__file__).with_name("folder_share_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict:
    """The test session's environment without its 8 forced CPU devices (each process sets its own count)."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    return {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)}


def _run_all(commands, logs: Path, timeout=300) -> list[str]:
    """Runs the commands at once (the processes of one run); their outputs, after all exited 0."""
    files = [(logs / f"process{i}.log").open("w+") for i in range(len(commands))]
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT)
        for c, f in zip(commands, files, strict=True)
    ]
    for p in procs:
        p.wait(timeout=timeout)
    outputs = []
    for p, f in zip(procs, files, strict=True):
        f.seek(0)
        outputs.append(f.read())
        f.close()
        assert p.returncode == 0, outputs[-1][-3000:]
    return outputs


@pytest.mark.slow
def test_two_processes_match_one_process_with_as_many_devices(tmp_path):
    port = _free_port()
    results = [tmp_path / f"p{i}.json" for i in range(2)]
    _run_all([[sys.executable, str(WORKER), str(results[i]), "2", str(i), str(port), "2"] for i in range(2)], tmp_path)
    single = tmp_path / "single.json"
    _run_all([[sys.executable, str(WORKER), str(single), "1", "0", "0", "4"]], tmp_path)
    one = json.loads(single.read_text())
    for path in results:  # 2 processes x 2 devices == 1 process x 4 devices
        two = json.loads(path.read_text())
        np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
        np.testing.assert_allclose(two["param_sums"], one["param_sums"], rtol=1e-5, atol=1e-5)


def _pictures(directory, count):
    rng = np.random.default_rng(5)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(20, 40, 2))
        draw(directory / f"{i}.png", h, w, i)
    return str(directory)


@pytest.mark.slow
@pytest.mark.parametrize("data", ["mnist", "streamed_folder"])
def test_dae_jax_train_runs_as_two_processes(tmp_path, tfds_dir, data):
    port, workdir = _free_port(), tmp_path / "run"
    dataset = {
        "mnist": ["--config.data.source=embedded", f"--config.data.data_dir={tfds_dir}"],
        "streamed_folder": [
            "--config.data.dataset=image_folder",
            f"--config.data.image_dir={_pictures(tmp_path / 'pictures', 60)}" if data == "streamed_folder" else "",
            f"--config.data.data_dir={tmp_path / 'tfds'}",
            "--config.image_shape=(16, 16, 1)",
        ],
    }[data]
    base = [
        str(Path(sys.executable).parent / "dae-jax"),
        "train",
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        *dataset,
        "--config.batch_size=32" if data == "mnist" else "--config.batch_size=8",
        "--config.eval_batch_size=32",
        "--config.max_steps_per_epoch=4" if data == "mnist" else "--config.max_steps_per_epoch=2",
        "--config.num_epochs=2",
        "--config.max_eval_examples=64",
        f"--coordinator_address=localhost:{port}",
        "--num_processes=2",
    ]
    outputs = _run_all([[*base, f"--process_id={i}"] for i in range(2)], tmp_path)
    result = json.loads((workdir / "eval.json").read_text())
    assert json.loads((workdir / "metadata.json").read_text())["process_count"] == 2
    epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # written once, by process 0
    tested = result["num_test_images"]
    assert tested == 128 if data == "mnist" else tested % 2 == 0 and tested >= 2  # each process its half
    assert result["step"] == (8 if data == "mnist" else 4)
    assert all(f"test ({tested} images)" in out for out in outputs)


@pytest.mark.slow
def test_each_process_streams_only_its_half_of_an_image_folder(tmp_path):
    folder = _pictures(tmp_path / "pictures", 50)
    port, data_dir = _free_port(), str(tmp_path / "tfds")
    results = [tmp_path / f"p{i}.json" for i in range(2)]
    worker = [sys.executable, str(FOLDER_WORKER)]
    _run_all([[*worker, str(results[i]), "2", str(i), str(port), folder, data_dir] for i in range(2)], tmp_path)
    shares = [json.loads(p.read_text()) for p in results]
    sizes = shares[0]["sizes"]  # each process's share of each split
    assert shares[1]["sizes"] == sizes and sizes["train"] >= 15 and sizes["test"] >= 1
    for pid, share in enumerate(shares):
        mine = range(pid * sizes["train"], (pid + 1) * sizes["train"])  # a contiguous half of the rows
        assert set(share["train"]) <= set(mine) and len(share["train"]) == sizes["train"] // 2 * 2
        assert share["test"] == list(range(pid * sizes["test"], (pid + 1) * sizes["test"]))
