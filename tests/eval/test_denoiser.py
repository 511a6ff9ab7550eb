import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dae_jax import configs, corruptions
from dae_jax.data import image_files
from dae_jax.eval import denoiser, layout
from dae_jax.setup import Setup
from dae_jax.training import checkpoints
from dae_jax.training.state import create_train_state
from tests.conftest import setup_of


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A workdir with one checkpoint of a conv32 model, and that model's params."""
    workdir = tmp_path_factory.mktemp("run")
    state = create_train_state(setup_of("conv32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
    ckpts.save(state, configs.base())
    ckpts.close()
    return workdir, state


def test_load_denoise_matches_the_model_in_every_layout(saved):
    workdir, state = saved
    d = denoiser.load(workdir)
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    want = np.asarray(jax.nn.sigmoid(state.apply_fn(state.variables(), x)))
    np.testing.assert_allclose(d.denoise(x), want, atol=1e-6)  # NHWC float, 5 padded to the 8-bucket
    np.testing.assert_allclose(d.denoise(x[0]), want[0], atol=1e-6)  # HWC
    np.testing.assert_allclose(d.denoise(x[0, :, :, 0]), want[0, :, :, 0], atol=1e-6)  # HW
    x8 = (x * 255).astype(np.uint8)
    u8 = d.denoise(x8)  # converted to float and back inside the model's program, as training converts
    want8 = layout.to_uint8(np.asarray(jax.nn.sigmoid(state.apply_fn(state.variables(), corruptions.to_float(x8)))))
    assert u8.dtype == np.uint8 and u8.shape == (5, 28, 28, 1)
    assert np.abs(u8.astype(int) - want8).max() <= 1 and np.mean(u8 == want8) > 0.99  # jit's rounding: 1 level
    out = d.denoise(jnp.asarray(x))
    assert isinstance(out, jax.Array)
    codes = d.encode(x)
    assert codes.shape == (5, 7, 7, 32) and d.encode(x[0]).shape == (7, 7, 32)
    np.testing.assert_allclose(d.decode(codes), want, atol=1e-5)
    assert d.denoise(np.zeros((300, 28, 28, 1), np.float32)).shape == (300, 28, 28, 1)  # 256 + 64-bucket


def test_a_batch_is_split_over_the_devices_in_chunks_and_keeps_the_models_values(saved):
    workdir, state = saved
    d = denoiser.load(workdir)
    x = np.random.default_rng(1).random((200, 28, 28, 1), dtype=np.float32)  # the 256-bucket: 32 rows a device
    want = np.asarray(jax.nn.sigmoid(state.apply_fn(state.variables(), x)))
    np.testing.assert_allclose(d.denoise(x), want, atol=1e-6)
    program = d._apply["denoise"].lower(d._replicated_variables, np.zeros((256, 28, 28, 1), np.float32)).as_text()
    assert f"num_partitions = {jax.local_device_count()}" in program  # every device takes a share
    assert "while" in program  # its rows denoiser.CHUNK at a time (lax.map), a conv model on CPU
    dense_state = create_train_state(setup_of("dense32"))  # not the fixture's conv32 state above
    dense = denoiser.Denoiser(setup=setup_of("dense32"), variables=dense_state.variables())
    program = dense._apply["denoise"].lower(dense._replicated_variables, np.zeros((256, 28, 28, 1))).as_text()
    assert "while" not in program and "num_partitions = 1" in program  # dense: one piece, one device on CPU
    want = np.asarray(jax.nn.sigmoid(dense_state.apply_fn(dense_state.variables(), x)))
    np.testing.assert_allclose(dense.denoise(x), want, atol=1e-6)


def test_uint8_conversions_agree_on_the_host_and_in_a_program():
    """to_uint8 rounds half to even in numpy and in XLA alike (every level's midpoint and edges included), and
    a program's uint8 output passes from_model_output untouched."""
    levels = np.arange(256, dtype=np.float32)
    y = np.concatenate([(levels + 0.5) / 255, levels / 255, np.nextafter(levels / 255, 2), [-0.3, 1.7]])
    y = np.concatenate([y, np.random.default_rng(4).random(10_000, dtype=np.float32)]).astype(np.float32)
    host = layout.to_uint8(y)
    np.testing.assert_array_equal(np.asarray(jax.jit(layout.to_uint8)(y)), host)
    assert host.dtype == np.uint8 and (host[:255] % 2 == 0).all()  # the midpoints went to the even level
    u8 = host[:784].reshape(1, 28, 28, 1)
    given = layout.Layout(ndim=2, uint8=True, jax_array=False)
    np.testing.assert_array_equal(layout.from_model_output(u8, given), u8[0, :, :, 0])
    floats = y[:784].reshape(1, 28, 28, 1)
    np.testing.assert_array_equal(layout.from_model_output(floats, given), host[:784].reshape(28, 28))


def test_a_dense_model_takes_up_to_1024_rows_a_call_and_a_conv_model_256(saved):
    """Fewer, larger calls where the rows are cheap (a dense model's dispatch costs as much as ~100 of its rows);
    the padding of the last call never changes the values."""
    dense_state = create_train_state(setup_of("dense32"))
    dense = denoiser.Denoiser(setup=setup_of("dense32"), variables=dense_state.variables())
    conv = denoiser.load(saved[0])
    assert (dense.max_rows, conv.max_rows) == (1024, denoiser.CONV_MAX_ROWS) == (1024, 256)
    rows = []
    apply = dense._apply["denoise"]
    dense._apply["denoise"] = lambda variables, x: rows.append(len(x)) or apply(variables, x)
    x = np.random.default_rng(3).random((1300, 28, 28, 1), dtype=np.float32)
    want = np.asarray(jax.nn.sigmoid(dense_state.apply_fn(dense_state.variables(), x)))
    np.testing.assert_allclose(dense.denoise(x), want, atol=1e-6)
    assert rows == [1024, 512]  # 1,024 rows, then the other 276 padded to the 512-bucket


def test_denoise_each_batches_runs_of_model_size_images_in_order(saved, monkeypatch):
    """Any mix of sizes and layouts comes back in order, each as ``denoise_any_size`` gives it, with the
    model-size images of one kind denoised in one call per run (not one per image)."""
    d = denoiser.load(saved[0])
    rng = np.random.default_rng(2)
    u8 = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(3)]
    f32 = rng.random((28, 28, 1), dtype=np.float32)
    images = [*u8, f32, jnp.asarray(f32), rng.random((40, 33), dtype=np.float32), u8[0]]
    calls = []
    batched = denoiser.Denoiser._batched

    def counted(self, name, x):
        calls.append(len(x))
        return batched(self, name, x)

    monkeypatch.setattr(denoiser.Denoiser, "_batched", counted)
    outputs = list(d.denoise_each(iter(images)))
    # 3 uint8 HW; the numpy float HWC; the jax one (another kind); the 40x33 image in 2x2 tiles; the last uint8.
    assert calls == [3, 1, 1, 4, 1]
    calls.clear()
    many = list(d.denoise_each([u8[0]] * 300))
    assert calls == [256, 44] and len(many) == 300  # full batches, then the rest
    monkeypatch.undo()
    np.testing.assert_array_equal(many[-1], d.denoise(u8[0]))
    assert len(outputs) == len(images)
    for image, out in zip(images, outputs, strict=True):
        want = d.denoise_any_size(image)
        assert type(out) is type(want) and out.dtype == want.dtype and out.shape == want.shape == image.shape
        tolerance = 1 if out.dtype == np.uint8 else 1e-5  # another batch: one level of rounding at most
        np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(want, np.float32), atol=tolerance)
    with pytest.raises(ValueError, match="Unknown fit 'crop'"):
        d.denoise_each([], fit="crop")  # refused at the call, before any image
    bad = d.denoise_each([u8[0], np.full((28, 28), np.nan, np.float32), u8[1]])
    with pytest.raises(ValueError, match="NaN"):
        next(bad)  # at the NaN image's turn, not when a batch of 256 fills


BAD = [
    ([[0.5] * 28] * 28, "numpy or jax array"),
    (np.zeros((28, 28), np.int64), "dtype int64"),
    (np.zeros((28, 28), bool), "dtype bool"),
    (np.zeros((2, 2, 28, 28, 1), np.float32), "5 dimensions"),
    (np.zeros((28,), np.float32), "1 dimensions"),
    (np.zeros((0, 28, 28, 1), np.float32), "empty batch"),
    (np.zeros((32, 32), np.float32), "32x32 but the model takes 28x28"),
    (np.zeros((28, 28, 3), np.float32), "3 channels but the model takes 1"),
    (np.full((28, 28), 200.0, np.float32), "0-255 values"),
    (np.full((28, 28), -0.5, np.float32), r"span \[-0.5, -0.5\]"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
]


@pytest.mark.parametrize("bad,match", BAD)
def test_bad_images_get_one_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        layout.to_model_input(bad, (28, 28, 1))


def test_bad_codes_and_empty_workdir(saved, tmp_path):
    with pytest.raises(ValueError, match=r"model's codes are \[N, 7, 7, 32\]"):
        denoiser.load(saved[0]).decode(np.zeros((2, 4, 4, 32)))
    with pytest.raises(ValueError, match="no checkpoint"):
        denoiser.load(tmp_path)


def test_read_image_round_trip_and_unreadable_files(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "digit.png")
    np.testing.assert_array_equal(image_files.read_image(tmp_path / "digit.png")[..., 0], arr)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image file .*notes.png"):
        image_files.read_image(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="does not exist"):
        image_files.read_image(tmp_path / "missing.png")


def test_skip_model_denoises_and_refuses_decoding_codes_alone(tmp_path):
    config = configs.base()
    config.model.name, config.image_shape, config.loss, config.optimizer = "superres", (48, 48, 3), "mse", "adam"
    config.lr_schedule = "cosine"  # the optimizer state then holds a step count: restored all the same
    state = create_train_state(Setup.from_config(config, steps_per_epoch=10), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints")
    ckpts.save(state, config)
    ckpts.close()
    d = denoiser.load(tmp_path)
    x = np.random.default_rng(0).random((3, 48, 48, 3), dtype=np.float32)
    np.testing.assert_allclose(d.denoise(x), x, atol=1e-6)  # the untrained superres model is the identity
    codes = d.encode(x)
    assert codes.shape == (3, 12, 12, 64)
    with pytest.raises(ValueError, match=r"'superres' has skip connections.*use denoise\(images\)"):
        d.decode(codes)


def test_a_run_trained_on_eight_devices_loads_on_one(trained_run, tmp_path):
    """A checkpoint keeps the devices it was saved from; dae_jax.load restores it onto this process's devices
    (a run trained by `dae-jax train` on 2 CPU devices, loaded in a plain Python session with 1)."""
    code = (
        "import jax, numpy as np, dae_jax, sys; assert jax.device_count() == 1; "
        "d = dae_jax.load(sys.argv[1]); print(d.denoise(np.zeros((3, 28, 28, 1), np.float32)).shape)"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    command = [sys.executable, "-c", code, str(trained_run.workdir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(3, 28, 28, 1)")


INLINE_DENOISE = """
import sys, jax, numpy as np
from dae_jax import sharding
sharding.use_cpu_cores(inline=sys.argv[2] == "inline")
import dae_jax
d = dae_jax.load(sys.argv[1])
np.save(sys.argv[3], d.denoise(np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32)))
print(jax.config.values["jax_cpu_enable_async_dispatch"], d.device_count)
"""


def test_inline_dispatch_denoises_as_async_dispatch_does(tmp_path):
    """``use_cpu_cores(inline=True)`` (dae-jax denoise and encode) turns async dispatch off before JAX starts, so
    a dense model's one-device calls run on the calling thread, with the same results bit for bit."""
    setup = setup_of("dense32")
    with checkpoints.Checkpoints(tmp_path / "run" / "checkpoints") as ckpts:
        ckpts.save(create_train_state(setup, jax.random.key(0)), setup.config)
    printed = {}
    for mode in ("inline", "async"):
        command = [sys.executable, "-c", INLINE_DENOISE, str(tmp_path / "run"), mode, str(tmp_path / f"{mode}.npy")]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        printed[mode] = done.stdout.split()
    assert printed == {"inline": ["False", "1"], "async": ["True", "1"]}
    np.testing.assert_array_equal(np.load(tmp_path / "inline.npy"), np.load(tmp_path / "async.npy"))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_batch_reaches_xla_at_a_64_byte_boundary_with_zero_padding(dtype):
    base = (np.random.default_rng(0).random(5 * 784 + 64) * 200).astype(dtype)
    for offset in range(0, 64 // base.itemsize, 3):  # every alignment the array can have
        chunk = base[offset : offset + 3 * 784].reshape(3, 28, 28, 1)
        batch = denoiser._aligned_batch(chunk, 4)
        assert batch.ctypes.data % denoiser.ALIGNMENT == 0 and batch.dtype == dtype and batch.shape == (4, 28, 28, 1)
        np.testing.assert_array_equal(batch[:3], chunk)
        assert not batch[3].any()


def test_unaligned_images_denoise_as_aligned_ones_do(saved):
    d = denoiser.load(saved[0])
    base = np.random.default_rng(1).random(16 * 784 + 16, dtype=np.float32)
    for k in range(4):  # 0 to 12 bytes past wherever base starts: at least three are not 64-byte aligned
        x = base[k : k + 16 * 784].reshape(16, 28, 28, 1)
        aligned = denoiser._aligned_batch(x, 16)  # given to XLA as it is
        np.testing.assert_array_equal(d.denoise(x), d.denoise(aligned))
