"""Faults, done for real: a user's files under threat, bad images, divergence, refused starts, full disks while
writing, and every error as one line (runs interrupted by signals, a second run or a full disk:
tests/training/test_interrupted_runs.py). README "When things go wrong" lists these cases with their outcome."""

import json
import os
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import dae_jax
from dae_jax import configs, files
from dae_jax.data import idx, image_files
from dae_jax.training import checkpoints, workdir
from tests.conftest import CONFIG, DAE_JAX, ROOT, dae_jax_cli, file_size_limited, one_line_error


def _tree(path) -> dict:
    """{relative path: bytes (or link target)} of everything under ``path``."""
    out = {}
    for p in sorted(path.rglob("*")):
        key = str(p.relative_to(path))
        out[key] = ("link", os.readlink(p)) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


# ---- a user's files ---------------------------------------------------------------------------------------


def _noisy_pngs(folder, mnist_sample, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(mnist_sample["image"][i, :, :, 0]).save(folder / f"digit{i}.png")


def test_denoise_never_replaces_inputs_existing_files_or_files_behind_links(trained_run, mnist_sample, tmp_path, cli):
    scans = tmp_path / "scans"
    _noisy_pngs(scans, mnist_sample)
    before = _tree(scans)
    w = trained_run.workdir
    one_line_error(cli("denoise", f"--workdir={w}", scans, f"--out={scans}"), 1, "replace their own inputs")
    one_line_error(dae_jax_cli("denoise", f"--workdir={w}", scans, f"--out={scans}", "--overwrite"), 1, "own inputs")
    assert _tree(scans) == before  # the originals are untouched

    out = tmp_path / "out"
    out.mkdir()
    (out / "digit0.png").write_bytes(b"my own file")
    one_line_error(cli("denoise", f"--workdir={w}", scans, f"--out={out}"), 1, "exist already", "digit0.png")
    assert (out / "digit0.png").read_bytes() == b"my own file" and not (out / "digit1.png").exists()

    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"outside --out")
    (out / "digit0.png").unlink()
    (out / "digit0.png").symlink_to(elsewhere)
    for extra in ((), ("--overwrite",)):  # a link out of --out is refused even when overwriting is allowed
        one_line_error(cli("denoise", f"--workdir={w}", scans, f"--out={out}", *extra), 1, "outside")
    assert elsewhere.read_bytes() == b"outside --out"

    (out / "digit0.png").unlink()
    (out / "digit0.png").write_bytes(b"replace me")
    proc = dae_jax_cli("denoise", f"--workdir={w}", scans, f"--out={out}", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert image_files.read_image(out / "digit0.png").shape == (28, 28, 1)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_evaluate_and_encode_refuse_existing_outputs(trained_run, tmp_path, cli):
    mine = tmp_path / "codes.npy"
    mine.write_bytes(b"precious")
    w = trained_run.workdir
    one_line_error(cli("encode", f"--workdir={w}", f"--out={mine}"), 1, "exist already", "--overwrite")
    (tmp_path / "scores.json").symlink_to(tmp_path / "target.json")
    one_line_error(cli("evaluate", f"--workdir={w}", f"--out={tmp_path / 'scores.json'}"), 1, "symlink")
    assert mine.read_bytes() == b"precious" and not (tmp_path / "target.json").exists()


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "eval.json"
    files.write_json(path, {"psnr": 1.0})
    with pytest.raises(RuntimeError):
        with files.atomic(path) as f:
            f.write('{"psnr": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"psnr": 1.0} and [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def test_full_disk_during_a_figure_write_leaves_the_old_figure(tmp_path):
    figure = tmp_path / "denoising.png"
    figure.write_bytes(b"the previous figure")
    code = f"from dae_jax import files; files.write_bytes({str(figure)!r}, bytes(1 << 20))"
    proc = subprocess.run(
        file_size_limited(1 << 16, [sys.executable, "-c", code]), capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode != 0 and "cannot write" in proc.stderr and "File too large" in proc.stderr
    assert figure.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["denoising.png"]


@pytest.mark.slow
def test_full_disk_while_denoising_a_folder_stops_naming_the_file_and_lists_every_png_written(
    trained_run, mnist_sample, tmp_path
):
    """Outputs are written by a thread pool while the model runs: a failed write stops the run with one line
    naming its file, the writes not yet begun are dropped, and every PNG left in --out is whole and listed."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    _noisy_pngs(scans, mnist_sample, n=40)  # digit0..39.png: small PNGs
    noise = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    Image.fromarray(noise).save(scans / "digit1_page.png")  # sorted after digit19.png; its PNG is over the limit
    command = [DAE_JAX, "denoise", f"--workdir={trained_run.workdir}", str(scans), f"--out={out}"]
    proc = subprocess.run(file_size_limited(4096, command), capture_output=True, text=True, cwd=ROOT, timeout=300)
    one_line_error(proc, 1, "cannot write", "digit1_page.png", "File too large")
    written = sorted(p.name for p in out.iterdir())  # no .tmp file
    listed = sorted(line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if " -> " in line)
    assert written == listed and "digit0.png" in written and "digit1_page.png" not in written
    for name in written:
        assert image_files.read_image(out / name).shape == (28, 28, 1)


# ---- images read exactly or refused -----------------------------------------------------------------------


def _png_rgb16(path, rgb: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_images_are_read_exactly_or_refused_by_name(tmp_path):
    gray16 = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    got = image_files.read_image(tmp_path / "gray16.png")[..., 0]
    np.testing.assert_array_equal(got, np.round(gray16 / 257).astype(np.uint8))  # scaled, not clipped to 255

    rgb16 = np.stack([gray16, gray16 // 2, 65535 - gray16], -1)
    _png_rgb16(tmp_path / "rgb16.png", rgb16)
    assert np.abs(image_files.read_image(tmp_path / "rgb16.png").astype(float) - rgb16 / 257).max() <= 1.0

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "palette.png")
    palette = image_files.read_image(tmp_path / "palette.png")
    assert palette.shape == (16, 16, 3) and palette.dtype == np.uint8

    opaque = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], -1)
    Image.fromarray(opaque).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(image_files.read_image(tmp_path / "opaque.png"), rgb)  # alpha all 255: dropped
    Image.fromarray(np.stack([rgb[..., 0], np.full((16, 16), 255, np.uint8)], -1), "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(image_files.read_image(tmp_path / "la.png")[..., 0], rgb[..., 0])

    seethrough = opaque.copy()
    seethrough[:4, :, 3] = 0
    Image.fromarray(seethrough).save(tmp_path / "seethrough.png")
    with pytest.raises(ValueError, match=r"seethrough.png.*25% of its pixels are transparent"):
        image_files.read_image(tmp_path / "seethrough.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    with pytest.raises(ValueError, match=r"cmyk.jpg.*CMYK"):
        image_files.read_image(tmp_path / "cmyk.jpg")

    tall = np.zeros((20, 10, 3), np.uint8)
    tall[:5] = 255  # white band at the top
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(tall).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    shown = image_files.read_image(tmp_path / "rotated.jpg")
    assert shown.shape == (10, 20, 3) and shown[:, -5:].mean() > 200 and shown[:, :5].mean() < 50  # band at right


# ---- divergence, refusals, locks --------------------------------------------------------------------------


def test_non_finite_hyperparameters_are_refused_before_anything_runs(tmp_path):
    for field, value, match in [
        ("learning_rate", float("nan"), "config.learning_rate must be a finite number"),
        ("data.validation_fraction", float("nan"), "validation_fraction must be a finite number"),
        ("optimizer_kwargs", {"rho": float("inf")}, r"config.optimizer_kwargs.rho must be a finite number"),
        ("seed", 2**40, r"config.seed must be an integer in \[0, 2\*\*32 - 1\]"),
        ("restore_step", -3, "config.restore_step must be None"),
    ]:
        config = configs.base()
        configs.set_field(config, field, value)
        with pytest.raises(ValueError, match=match):
            dae_jax.train(config, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_refused_start_changes_nothing_in_the_workdir(trained_run, tmp_path):
    before = _tree(trained_run.workdir)
    config = configs.ConfigDict(dae_jax.load(trained_run.workdir).config.to_dict())
    config.model.name = "conv32_16"  # another model: the checkpoint cannot be resumed
    with pytest.raises(checkpoints.CheckpointError, match="different config"):
        dae_jax.train(config, trained_run.workdir)
    assert _tree(trained_run.workdir) == before  # metadata.json, metrics, checkpoints: as they were
    config.data.source, config.data.idx_dir = "idx", str(tmp_path / "no_such_dir")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dae_jax.train(config, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_workdir_belongs_to_one_run(tmp_path, caplog):
    w = tmp_path / "w"
    with workdir.Lock(w):
        with pytest.raises(ValueError, match=rf"in use by process {os.getpid()} on .* since"):
            with workdir.Lock(w):
                pass
    assert not w.exists()  # the lock made the workdir and, leaving it empty, removed it again
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dae_jax.training import workdir\n"
         f"with workdir.Lock({str(w)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by process {holder.pid} on "):
            with workdir.Lock(w):
                pass
        holder.send_signal(signal.SIGKILL)  # dies holding it: the kernel releases the flock, the file stays
        holder.wait()
        assert json.loads((w / workdir.LOCK).read_text())["pid"] == holder.pid
        with caplog.at_level("WARNING", logger="dae_jax"), workdir.Lock(w):
            assert json.loads((w / workdir.LOCK).read_text())["pid"] == os.getpid()
        assert f"taking over the lock of process {holder.pid}" in caplog.text
    finally:
        holder.kill()


# ---- one line for every error -----------------------------------------------------------------------------


def test_bad_files_get_one_line_naming_the_file(trained_run, tmp_path):
    for body, match in [
        ("x = 1\n", "defines no get_config"),
        ("def get_config():\n    return {'a': 1}\n", "returned a dict"),
        ("def get_config(arg):\n    return int(arg)\n", r"get_config\('x'\) raised ValueError: invalid literal"),
    ]:
        (tmp_path / "c.py").write_text(body)
        with pytest.raises(ValueError, match=match):
            configs.load(str(tmp_path / "c.py") + (":x" if "arg" in body else ""))

    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([1, 200, 3]))
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28)) + bytes(3 * 784))
    with pytest.raises(ValueError, match=r"label 200 at row 1 .* outside 0-9") as error:
        idx.load_idx_pair(images, labels)
    assert len(str(error.value)) < 300

    with pytest.raises(ValueError, match="is a file"):
        dae_jax.load(images)
    with pytest.raises(ValueError, match="have no pixels"):
        dae_jax.load(trained_run.workdir).denoise_any_size(np.zeros((0, 5), np.uint8))


def test_damaged_checkpoint_and_metadata_files_are_named(trained_run, tmp_path):
    import shutil

    w = tmp_path / "copy"
    shutil.copytree(trained_run.workdir, w)
    (w / "metadata.json").write_text('{"data": {"kind": "idx", "name"\x07: 1')
    with pytest.raises(ValueError, match=r"metadata.json is damaged"):
        dae_jax.evaluate(w)
    (step,) = checkpoints.Checkpoints(w / "checkpoints").all_steps()
    manifest = w / "checkpoints" / str(step) / checkpoints.MANIFEST
    manifest.write_text("{not json")
    with pytest.raises(checkpoints.CheckpointError, match=rf"step {step} is damaged: .*{checkpoints.MANIFEST}"):
        dae_jax.load(w)
    shutil.copy(trained_run.workdir / "checkpoints" / str(step) / checkpoints.MANIFEST, manifest)
    shutil.rmtree(w / "checkpoints" / str(step) / "config")
    with pytest.raises(checkpoints.CheckpointError, match=r"config.* is missing"):
        dae_jax.load(w)


def test_errors_of_the_command_line_are_one_line_with_nothing_after(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    for _ in range(2):  # a second call once printed orbax's shutdown traceback after the error line
        one_line_error(dae_jax_cli("denoise", f"--workdir={tmp_path / 'empty'}", CONFIG, f"--out={tmp_path}"), 1)
    proc = cli("train", f"--config={CONFIG}", f"--workdir={tmp_path / 'w'}", "--config.seed=99999999999")
    one_line_error(proc, 1, "config.seed must be an integer")
    (tmp_path / "c.py").write_text("def get_config(arg):\n    raise KeyError(arg)\n")
    proc = cli("train", f"--config={tmp_path / 'c.py'}:oops", f"--workdir={tmp_path / 'w'}")
    one_line_error(proc, 2, "c.py", "raised KeyError")
    assert "Traceback" not in proc.stderr and not (tmp_path / "w").exists()
