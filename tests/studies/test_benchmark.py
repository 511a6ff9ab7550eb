"""The benchmark's peers rebuild dae-jax's presets exactly, and the benchmark runs end to end."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import pytest

from dae_jax.nn import models
from dae_jax.studies import benchmark, time_to_quality
from dae_jax.studies.peers import specs


def _dae_jax_params(preset: str) -> int:
    model = models.make(preset)
    return models.param_count(model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"])


@pytest.mark.parametrize("preset", specs.PRESETS)
def test_torch_peer_has_dae_jax_architecture(preset):
    torch = pytest.importorskip("torch", reason='the torch peer needs pip install -e ".[bench]"')
    from dae_jax.studies.peers import torch_models

    net = torch_models.build(specs.recipe(preset))
    assert torch_models.param_count(net) == _dae_jax_params(preset)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("preset", specs.PRESETS)
def test_keras_peer_has_dae_jax_architecture(preset):
    pytest.importorskip("keras", reason='the keras peer needs pip install -e ".[bench]"')
    from dae_jax.studies.peers import keras_models

    model = keras_models.build(specs.recipe(preset))
    assert keras_models.param_count(model) == _dae_jax_params(preset)
    assert model.output_shape == (None, 28, 28, 1)


def test_recipe_takes_the_reference_config():
    s = specs.recipe("conv32_16")
    assert (s.config, s.optimizer, s.loss, s.sigma) == ("conv32_16_adam", "adam", "bce", 0.5)
    assert s.hyperparameters == {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "keras_form": True}
    assert specs.recipe("dense64").sigma is None  # dense64_ae trains without noise
    assert specs.parse("tconv 32 s2 valid relu") == specs.Layer("tconv", 32, 2, 3, False, True)


@pytest.mark.slow
def test_benchmark_end_to_end_writes_json_and_table(tmp_path):
    out = tmp_path / "bench.json"
    argv = "--presets conv32_16 --batch-sizes 16 --steps 2 --repeats 1 --warmup 1 --pause 0 --peers torch,keras"
    report = benchmark.main([*argv.split(), "--peak-gflops", "100", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    frameworks = [r["framework"] for r in saved["results"]]
    installed = [f for f, packages in benchmark.PEER_PACKAGES.items() if all(map(importlib.util.find_spec, packages))]
    assert frameworks == ["dae-jax", "dae-jax", *installed]  # the step, the resident loop, every installed peer
    assert [r["variant"] for r in saved["results"]][:2] == [None, "resident"]
    for row in saved["results"]:
        assert row["params"] == 12_193 and row["batch_size"] == 16
        for key in ("ms_per_step_min", "images_per_s_median", "flops_per_image", "gflops_per_s_median"):
            assert row[key] > 0, (row["framework"], key)
        assert 0 < row["fraction_of_peak"] and row["dae_jax_speedup"] > 0
    assert saved["results"][0]["dae_jax_speedup"] == pytest.approx(1.0)
    (summary,) = saved["summary"]
    assert summary["dae_jax_speedup_over_fastest_peer"] > 0 or not installed
    assert summary["dae-jax:resident"] > 0
    assert saved["device"]["platform"] == "cpu" and saved["machine"]["logical_cores"] >= 1
    assert "| conv32_16 (conv32_16_adam) | 16 | dae-jax |" in out.with_suffix(".md").read_text()


def test_missing_peer_is_skipped_with_a_notice(monkeypatch, capsys):
    monkeypatch.setitem(benchmark.PEER_PACKAGES, "torch", ("no_such_package_for_dae_jax",))
    assert benchmark.parse_peers("torch") == []
    assert 'skipping the torch peer (install the peers with pip install -e ".[bench]")' in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--presets", "resnet"], "unknown presets ['resnet']"),
        (["--batch-sizes", "0"], "positive integers"),
        (["--peers", "mxnet"], "Unknown peer 'mxnet'"),
        (["--steps", "0"], "--steps and --repeats must be >= 1"),
    ],
)
def test_bad_arguments_get_one_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_time_to_quality_takes_the_first_epoch_at_target():
    records = [{"epoch": e, "train_seconds": 10.0, "test_psnr": p} for e, p in enumerate((12.0, 15.0, 14.0, 16.0), 1)]
    assert time_to_quality.time_to(records, 15.0) == {"epoch": 2, "seconds": 20.0, "test_psnr": 15.0}
    assert time_to_quality.time_to(records, 17.0)["seconds"] is None


@pytest.mark.slow
def test_time_to_quality_end_to_end(tmp_path, tfds_dir):
    pytest.importorskip("keras", reason='the keras peer needs pip install -e ".[bench]"')
    argv = "--epochs 1 --max-steps-per-epoch 3 --max-eval-examples 64 --data-source embedded --target-psnr 1"
    out = tmp_path / "ttq.json"
    argv = [*argv.split(), "--data-dir", tfds_dir, "--workdir", str(tmp_path / "run"), "--out", str(out)]
    report = time_to_quality.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["num_test_images"] == 64 and report["target_psnr"] == 1
    noisy = report["noisy_input_psnr"]
    assert noisy["keras"] == pytest.approx(noisy["dae-jax"], abs=1e-3)  # both scored the same noisy images
    for framework in ("dae-jax", "keras"):
        (epoch,) = report["epochs"][framework]
        assert epoch["train_seconds"] > 0 and 5 < epoch["test_psnr"] < 40, (framework, epoch)
        assert report["time_to_target"][framework]["epoch"] == 1
    assert report["time_to_target"]["dae_jax_over_keras"] > 0
    with pytest.raises(SystemExit):  # the report exists: refused before any training
        time_to_quality.main(argv)
    with pytest.raises(SystemExit, match="already holds a run"):
        time_to_quality.main([*argv[:-1], str(tmp_path / "other.json")])
