"""The benchmark's peers rebuild dae-jax's presets exactly, and the benchmark runs end to end."""

import dataclasses
import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax.nn import models
from dae_jax.studies import benchmark, time_to_quality, workers
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


def _dae_jax_unet32() -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(images [2, 28, 28, 1], dae-jax's unet32 logits on them, its (HWIO kernel, bias) per conv in spec order)."""
    model = models.make("unet32", fast=False)
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    # Names like "decoder_layers_3_0": the encoder's, then the decoder's, each in layer order.
    names = sorted(params, key=lambda name: (name.startswith("decoder"), int(name.split("_")[2])))
    weights = [(np.asarray(params[n]["kernel"]), np.asarray(params[n]["bias"])) for n in names]
    return np.asarray(x), np.asarray(model.apply({"params": params}, x)), weights


def test_torch_peer_adds_the_saved_activations():
    """With dae-jax's weights the peer's unet32 computes dae-jax's logits, which it could not without its two
    skips added; its unet32_residual starts as the identity (a zero last conv, then the input added back)."""
    torch = pytest.importorskip("torch", reason='the torch peer needs pip install -e ".[bench]"')
    from dae_jax.studies.peers import torch_models

    x, expected, weights = _dae_jax_unet32()
    net = torch_models.build(specs.recipe("unet32"))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv, (kernel, bias) in zip(convs, weights, strict=True):
            conv.weight.copy_(torch.tensor(kernel.transpose(3, 2, 0, 1)))  # HWIO -> OIHW
            conv.bias.copy_(torch.tensor(bias))
        logits = net(torch.tensor(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
        residual = torch_models.build(specs.recipe("unet32_residual")).to(memory_format=torch.channels_last)
        noisy = torch.rand(2, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        assert torch.equal(residual(noisy), noisy)


def test_keras_peer_adds_the_saved_activations():
    """As for torch: with dae-jax's weights, dae-jax's unet32 logits; the untrained unet32_residual: the identity."""
    pytest.importorskip("keras", reason='the keras peer needs pip install -e ".[bench]"')
    from dae_jax.studies.peers import keras_models

    x, expected, weights = _dae_jax_unet32()
    model = keras_models.build(specs.recipe("unet32"))
    for layer, kernel_and_bias in zip([k for k in model.layers if k.weights], weights, strict=True):
        layer.set_weights(list(kernel_and_bias))
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-4, atol=1e-5)
    residual = keras_models.build(specs.recipe("unet32_residual"))
    noisy = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    np.testing.assert_array_equal(np.asarray(residual(noisy)), noisy)


def test_peers_refuse_to_add_a_saved_activation_of_another_shape():
    """numpy, like torch, would broadcast the saved [1, 2, 2, 1] over 4 channels; dae-jax refuses, so do the peers."""
    layers = tuple(map(specs.parse, ("save a", "conv 4", "add a")))
    with pytest.raises(ValueError, match=r"'add a' on a \(1, 2, 2, 4\) activation; saved: \(1, 2, 2, 1\)"):
        specs.forward(layers, np.zeros((1, 2, 2, 1)), lambda i, x: np.zeros((1, 2, 2, 4)), np.add)


def test_recipe_takes_the_reference_config():
    s = specs.recipe("conv32_16")
    assert (s.config, s.optimizer, s.loss, s.sigma) == ("conv32_16_adam", "adam", "bce", 0.5)
    assert s.hyperparameters == {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "keras_form": True}
    assert specs.recipe("dense64").sigma is None  # dense64_ae trains without noise
    linear = specs.recipe("linear16")  # no corruption, MSE
    assert (linear.config, linear.loss, linear.sigma) == ("linear_ae_pca", "mse", None)
    residual = specs.recipe("unet32_residual")
    assert (residual.config, residual.loss, residual.sigma) == ("unet32_residual", "mse", 0.5)
    assert (residual.lr_schedule, s.lr_schedule) == ("warmup_cosine", "constant")
    assert specs.parse("tconv 32 s2 valid relu") == specs.Layer("tconv", 32, 2, 3, False, True)
    assert specs.parse("conv 1 zero") == specs.Layer("conv", 1, zero=True)
    assert specs.parse("add input") == specs.Layer("add", name="input")


def test_the_peers_neither_take_nor_pass_a_clipped_config():
    from dae_jax import configs

    config = configs.load("conv32_16_adam")
    config.loss = "mse"
    recipe = dataclasses.replace(specs.recipe("conv32_16"), loss="mse")
    assert specs.differences(config, recipe) == []
    config.clip_output = True  # the peers train and score unclipped outputs
    assert specs.differences(config, recipe) == ["clip_output (the peers do not clip)"]
    # unet_deep_clipped sorts before unet_deep_residual: still the unclipped config is the model's reference.
    assert specs._reference_configs()["unet_deep_residual"] == "unet_deep_residual"


@pytest.mark.slow
def test_benchmark_end_to_end_writes_json_and_table(tmp_path):
    out = tmp_path / "bench.json"
    argv = "--presets conv32_16 --batch-sizes 16 --steps 2 --repeats 1 --warmup 1 --pause 0 --peers torch,keras"
    report = benchmark.main([*argv.split(), "--variants", "resident,cli", "--peak-gflops", "100", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    frameworks = [r["framework"] for r in saved["results"]]
    installed = [f for f, packages in workers.PEER_PACKAGES.items() if all(map(importlib.util.find_spec, packages))]
    # The step, the resident loop, the dae-jax train command, every installed peer.
    assert frameworks == ["dae-jax", "dae-jax", "dae-jax", *installed]
    assert [r["variant"] for r in saved["results"]][:3] == [None, "resident", "cli"]
    cli = saved["results"][2]
    assert "dae-jax train" in cli["description"] and 0 < cli["startup_s"] < 120  # from the command's timings.json
    assert "(2 steps of " in cli["description"] and "MNIST" in cli["description"]  # what its epoch ran on
    for row in saved["results"]:
        assert row["params"] == 12_193 and row["batch_size"] == 16
        for key in ("ms_per_step_min", "images_per_s_median", "flops_per_image", "gflops_per_s_median"):
            assert row[key] > 0, (row["framework"], key)
        assert 0 < row["fraction_of_peak"] and row["dae_jax_speedup"] > 0
    assert saved["results"][0]["dae_jax_speedup"] == pytest.approx(1.0)
    (summary,) = saved["summary"]
    assert summary["dae_jax_speedup_over_fastest_peer"] > 0 or not installed
    assert summary["dae-jax:resident"] > 0
    assert summary["cli_over_step"] == pytest.approx(summary["dae-jax:cli"] / summary["dae-jax"])
    assert "start-up (launch to first step" in out.with_suffix(".md").read_text()
    assert saved["device"]["platform"] == "cpu" and saved["machine"]["logical_cores"] >= 1
    assert "| conv32_16 (conv32_16_adam) | 16 | dae-jax |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_inference_benchmark_times_every_framework_on_the_same_model(tmp_path):
    out = tmp_path / "infer.json"
    argv = "--task infer --presets conv32_16 --batch-sizes 16 --steps 2 --repeats 1 --warmup 1 --pause 0"
    report = benchmark.main([*argv.split(), "--peers", "torch,keras,keras:predict_on_batch", "--out", str(out)])
    installed = [f for f, packages in workers.PEER_PACKAGES.items() if all(map(importlib.util.find_spec, packages))]
    names = [(r["framework"], r["variant"]) for r in report["results"]]
    peers = {"torch": [("torch", "channels_last")], "keras": [("keras", "predict"), ("keras", "predict_on_batch")]}
    assert names == [("dae-jax", None), ("dae-jax", "evaluate"), *(n for f in installed for n in peers[f])]
    assert {r["params"] for r in report["results"]} == {12_193}  # one architecture in every framework
    assert all(r["images_per_s_median"] > 0 for r in report["results"])
    assert "Denoiser.denoise" in report["results"][0]["description"] and report["task"] == "infer"
    assert report["results"][0]["description"].endswith("(one-device calls inline)")  # as dae-jax denoise runs
    (summary,) = report["summary"]
    assert summary["dae-jax:evaluate"] > 0 and "evaluate / faster peer" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".md").read_text().startswith("# Inference throughput")


def test_noisy_batches_are_the_same_clipped_inputs_for_every_framework():
    images = benchmark.load_images(40)
    first, again = specs.noisy_batches(images, 16, 0.5), specs.noisy_batches(images, 16, 0.5)
    assert len(first) == 2 and first[0].shape == (16, 28, 28, 1) and first[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert 0.0 <= first[0].min() and first[0].max() <= 1.0 and first[0].std() > 0.2  # noisy, clipped
    clean = specs.noisy_batches(images, 16, None)[1]
    np.testing.assert_array_equal(clean, images[16:32] / np.float32(255))


def test_missing_peer_is_skipped_with_a_notice(monkeypatch, capsys):
    monkeypatch.setitem(workers.PEER_PACKAGES, "torch", ("no_such_package_for_dae_jax",))
    assert workers.parse_peers("torch") == []
    assert 'skipping the torch peer (install the peers with pip install -e ".[bench]")' in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--presets", "resnet"], "unknown presets ['resnet']"),
        (["--batch-sizes", "0"], "positive integers"),
        (["--peers", "mxnet"], "Unknown peer 'mxnet'"),
        (["--steps", "0"], "--steps and --repeats must be >= 1"),
        (["--variants", "resident,fast"], "--variants ['fast'] for --task train"),
        (["--task", "infer", "--variants", "cli"], "--variants ['cli'] for --task infer"),
    ],
)
def test_bad_arguments_get_one_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["conv32_16_adam", "=4", "conv32_16_adam=0", "conv32_16_adam=4,x"])
def test_time_to_quality_refuses_a_bad_command_spec(spec, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        time_to_quality.main(["--workdir", str(tmp_path / "run"), "--command", spec])
    assert exit_info.value.code == 2 and "CONFIG=N[,N...]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "conv32_16_adam:ours"], "differs from conv32_16's reference recipe, which Keras trains"),
        (["--command", "nope=3"], "no config named 'nope'"),
        (["--command", "conv32_16_adam=3", "--command", "experiments/configs/conv32_16_adam.py=4"], "share a run"),
        (["--seed", "-1"], "config.seed must be"),
    ],
)
def test_time_to_quality_refuses_bad_configs_before_training(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        time_to_quality.main(["--workdir", str(tmp_path / "run"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_time_to_quality_takes_the_first_epoch_at_target():
    records = [{"epoch": e, "train_seconds": 10.0, "test_psnr": p} for e, p in enumerate((12.0, 15.0, 14.0, 16.0), 1)]
    assert time_to_quality.time_to(records, 15.0) == {"epoch": 2, "seconds": 20.0, "test_psnr": 15.0}
    assert time_to_quality.time_to(records, 17.0)["seconds"] is None


@pytest.mark.slow
@pytest.mark.parametrize("config", ["conv32_16_adam", "conv64_dae"])  # Keras: the write-up's fit; fresh noise
def test_time_to_quality_end_to_end(config, tmp_path, tfds_dir):
    pytest.importorskip("keras", reason='the keras peer needs pip install -e ".[bench]"')
    argv = f"--config {config} --epochs 1 --max-steps-per-epoch 3 --max-eval-examples 64 --data-source embedded"
    argv += " --target-psnr 1 --seed 3"
    argv += " --command experiments/configs/conv32_16_adam.py:ours=2,1"  # 1 epoch reaches 1 dB: no 2-epoch run
    out = tmp_path / "ttq.json"
    argv = [*argv.split(), "--data-dir", tfds_dir, "--workdir", str(tmp_path / "run"), "--out", str(out)]
    report = time_to_quality.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["num_test_images"] == 64 and report["target_psnr"] == 1 and report["seed"] == 3
    noisy = report["noisy_input_psnr"]
    assert noisy["keras"] == pytest.approx(noisy["dae-jax"], abs=1e-3)  # both scored the same noisy images
    for framework in ("dae-jax", "keras"):
        (epoch,) = report["epochs"][framework]
        assert epoch["train_seconds"] > 0 and 5 < epoch["test_psnr"] < 40, (framework, epoch)
        assert report["time_to_target"][framework]["epoch"] == 1
    assert report["time_to_target"]["dae_jax_over_keras"] > 0
    (command,) = report["whole_command"]
    (run,) = command["runs"]  # the whole dae-jax train command: launch to exit, test scores from its eval.json
    assert command["at_target"] == run and run["epochs"] == 1 and 5 < run["test_psnr"] < 40
    assert run["wall_seconds"] > run["timings"]["startup"] > 0 and command["over_keras"] > 0
    workdir = tmp_path / "run" / "commands" / "conv32_16_adam_ours_1"
    assert json.loads((workdir / "eval.json").read_text())["psnr"] == run["test_psnr"]
    assert json.loads((workdir / "metadata.json").read_text())["config"]["seed"] == 3  # --seed reached the command
    with pytest.raises(SystemExit):  # the report exists: refused before any training
        time_to_quality.main(argv)
    with pytest.raises(SystemExit, match="already holds runs"):
        time_to_quality.main([*argv[:-1], str(tmp_path / "other.json")])
