import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dae_jax import configs, setup, sharding
from dae_jax.eval import evaluation
from dae_jax.nn import models
from dae_jax.setup import micro_batch_size
from dae_jax.training import checkpoints, device_loop, steps
from dae_jax.training.state import create_train_state
from tests.conftest import ROOT, setup_of


def _state(seed=0, model="conv32"):
    return create_train_state(setup_of(model), jax.random.key(seed))


def _step_and_state(mesh, setup):
    """The jitted data-parallel train step of ``setup`` on ``mesh`` and its initial state, replicated."""
    step = sharding.data_parallel(steps.make_train_step(setup), mesh, True)
    return step, jax.device_put(create_train_state(setup, jax.random.key(0)), sharding.replicated(mesh))


def _run(mesh, batches, model="conv32", micro_batch=0, **fields):
    step, state = _step_and_state(mesh, setup_of(model, micro_batch_size=micro_batch, **fields))
    losses = []
    for b in batches:
        state, m = step(state, sharding.global_batch(b, mesh), jax.random.key(7))
        losses.append(float(m["loss"]))
    return state, losses


def _batches(sample, n_steps, batch):
    return [{k: v[i * batch : (i + 1) * batch] for k, v in sample.items()} for i in range(n_steps)]


def test_loss_decreases_on_real_digits(mnist_sample):
    _, losses = _run(sharding.make_mesh(), _batches(mnist_sample, 30, 128))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


@pytest.mark.parametrize("model", ["conv32", "bn_dense576"])
def test_eight_devices_match_one_device(mnist_sample, model):
    assert jax.device_count() == 8
    batches = _batches(mnist_sample, 3, 32)
    state8, losses8 = _run(sharding.make_mesh(), batches, model)
    state1, losses1 = _run(sharding.make_mesh(jax.devices()[:1]), batches, model)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state8.variables()), jax.tree.leaves(state1.variables()), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    if model == "bn_dense576":  # BatchNorm statistics moved and agree
        assert not np.allclose(
            jax.tree.leaves(state8.batch_stats)[0], jax.tree.leaves(_state(model=model).batch_stats)[0]
        )


@pytest.mark.parametrize("model", ["conv32", "bn_dense576"])
def test_the_step_averages_over_devices_in_one_flat_all_reduce(mnist_sample, model):
    # XLA:CPU reduces a tuple one array at a time (a rendezvous each): the gradients, BatchNorm's statistics and
    # the loss go as one vector. Each BatchNorm adds its own psums, one forward and one backward.
    setup = setup_of(model)
    mesh = sharding.make_mesh(jax.devices()[:2])
    step, state = _step_and_state(mesh, setup)
    batch = sharding.global_batch(_batches(mnist_sample, 1, 32)[0], mesh)
    hlo = step.lower(state, batch, jax.random.key(7)).compile().as_text()
    results = re.findall(r"= (\([^)]*\)|\S+) all-reduce\(", hlo)  # a tuple's shape holds spaces
    assert len(results) == hlo.count(" all-reduce(")
    flat = [r for r in results if re.fullmatch(r"f32\[\d+\]\{0\}", r)]
    assert len(flat) == 1 and not any(r.startswith("(") for r in results)
    batch_norms = sum(layer == "bn" for layer in setup.model.encoder + setup.model.decoder)
    assert len(results) == 1 + 2 * batch_norms


def test_micro_batched_step_matches_full_batch(mnist_sample):
    """Chunks of 4 rows per device, gradients summed in a scan: the same training to float rounding."""
    batches = _batches(mnist_sample, 3, 64)
    mesh = sharding.make_mesh(jax.devices()[:2])
    full, losses_full = _run(mesh, batches)
    micro, losses_micro = _run(mesh, batches, micro_batch=4)
    np.testing.assert_allclose(losses_micro, losses_full, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(micro.params), jax.tree.leaves(full.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


MNIST = (28, 28, 1)


def _auto(requested, per_device, model, image_shape=MNIST):
    """micro_batch_size of ``model`` (a name or a model) on images of ``image_shape``."""
    model = models.make(model) if isinstance(model, str) else model
    return micro_batch_size(requested, per_device, model, setup.layer_output_bytes(model, image_shape))


@pytest.mark.parametrize(
    "requested,per_device,model,expected",
    [(None, 64, "conv32", 16), (None, 8, "conv32", None), (None, 64, "bn_dense576", None), (0, 64, "conv32", None)]
    + [(8, 64, "conv32", 8), (None, 64, "dense32", None), (None, 64, "linear16", None), (8, 64, "dense32", 8)]
    + [(None, 64, "conv64", 8), (None, 64, "unet32", 8), (None, 16, "unet32", 8), (None, 64, "unet_deep_residual", 4)],
)
def test_micro_batch_size_choice(requested, per_device, model, expected):
    assert _auto(requested, per_device, model) == expected  # tests run on CPU


def test_layer_output_bytes_count_each_layers_output():
    # conv32 on MNIST: conv+pool 14x14x32, conv+pool 7x7x32, conv 7x7x32, up+conv 14x14x32, up+conv 28x28x1 (the
    # decoder's last layer), and the model's output 28x28x1; float32.
    assert setup.layer_output_bytes(models.make("conv32"), MNIST) == 4 * (2 * 14 * 14 * 32 + 2 * 7 * 7 * 32 + 2 * 784)
    assert setup.layer_output_bytes(models.make("conv32"), (56, 56, 1)) == 4 * setup.layer_output_bytes(
        models.make("conv32"), MNIST
    )


@pytest.mark.parametrize("model,image_shape", [("conv32", MNIST), ("unet32", MNIST), ("superres", (48, 48, 3))])
def test_micro_batches_are_the_largest_that_fit_the_cache_budget(model, image_shape):
    size = _auto(None, 64, model, image_shape)
    per_image = setup.layer_output_bytes(models.make(model), image_shape)
    assert size * per_image <= setup.MICRO_BATCH_BYTES
    assert size == setup.CPU_MICRO_BATCH or 2 * size * per_image > setup.MICRO_BATCH_BYTES


def test_a_run_sizes_its_micro_batches_for_its_own_images():
    config = configs.load("superres_faces")  # 64x64x3 photographs: 1.6 MiB of layer outputs an image
    assert tuple(config.image_shape) == (64, 64, 3)
    assert setup.Setup.from_config(config, num_devices=2).micro_batch == 2


def test_a_model_that_does_not_fit_the_images_is_named():
    config = configs.load("conv32_adadelta")
    config.image_shape = (28, 28, 3)  # the decoder ends in 1 channel
    with pytest.raises(ValueError, match=r"config.model 'conv32' turns images of \(28, 28, 3\) into \(28, 28, 1\)"):
        setup.Setup.from_config(config, num_devices=2)
    config.image_shape = (30, 30, 1)  # 30 -> 15 -> 7 (pooled) -> 14 -> 28
    with pytest.raises(
        ValueError, match=r"turns images of \(30, 30, 1\) into \(28, 28, 1\); use an image_shape it returns unchanged"
    ):
        setup.Setup.from_config(config, num_devices=2)
    config = configs.load("unet32_best")
    config.image_shape = (30, 30, 1)  # its skip connection: 15x15 saved, 14x14 after pooling and upsampling
    with pytest.raises(
        ValueError, match=r"config.model 'unet32' cannot take images of config.image_shape \(30, 30, 1\)"
    ):
        setup.Setup.from_config(config, num_devices=2)


def test_huge_images_train_one_at_a_time():
    assert _auto(None, 3, "conv32", (512, 512, 1)) == 1


def test_no_automatic_micro_batches_where_layers_are_slow_in_scans():
    for name in ("conv32", "dense32", "superres", "bn_dense576"):  # stride-2 convs and 3x3 s2 tconvs: fast forms
        assert models.scan_friendly(models.make(name))
    slow = [models.Autoencoder(encoder=("conv 8",), decoder=(t, "conv 1")) for t in ("tconv 8 s2 k5", "tconv 8")]
    assert not any(map(models.scan_friendly, slow))  # XLA's own transposed convs
    assert not models.scan_friendly(models.make("superres", fast=False))  # the textbook layers
    assert _auto(None, 64, slow[0]) is None
    assert _auto(8, 64, slow[0]) == 8  # asked for: done (correct, slower)
    assert _auto(None, 64, "superres", (48, 48, 3)) == 4


def test_device_resident_loop_by_default_where_it_is_faster():
    images = np.zeros((100, 28, 28, 1), np.uint8)
    assert device_loop.wanted(None, images, models.make("conv32"))
    assert device_loop.wanted(None, images, models.make("bn_dense576"))  # fast strided and transposed convs
    textbook = models.make("bn_dense576", fast=False)  # XLA's strided convs: slow in scans
    assert not device_loop.wanted(None, images, textbook)
    assert device_loop.wanted(True, images, textbook)  # asked for: done
    assert not device_loop.wanted(False, images, models.make("conv32"))
    big = np.broadcast_to(np.zeros((), np.uint8), (device_loop.RESIDENT_MAX_BYTES + 1,))
    assert not device_loop.wanted(None, big, models.make("conv32"))


def test_bad_micro_batch_sizes_are_named():
    with pytest.raises(ValueError, match="does not divide the 64 images per device"):
        _auto(24, 64, "conv32")
    with pytest.raises(ValueError, match="BatchNorm"):
        _auto(8, 64, "bn_dense576")


def test_bfloat16_compute_keeps_float32_parameters(mnist_sample):
    mesh = sharding.make_mesh(jax.devices()[:2])
    batches = _batches(mnist_sample, 3, 32)
    state, losses = _run(mesh, batches, compute_dtype="bfloat16")
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
    _, reference = _run(mesh, batches)
    np.testing.assert_allclose(losses, reference, rtol=2e-2)  # bf16 rounding, same training


def test_same_step_runs_under_pmap(mnist_sample):
    batches = _batches(mnist_sample, 2, 32)
    ref, _ = _run(sharding.make_mesh(), batches)
    step = jax.pmap(steps.make_train_step(setup_of("conv32")), axis_name="data")
    n = jax.device_count()
    state = jax.tree.map(lambda x: jnp.stack([x] * n), _state())
    keys = jax.random.wrap_key_data(jnp.stack([jax.random.key_data(jax.random.key(7))] * n))
    for b in batches:
        state, _ = step(state, {k: v.reshape(8, -1, *v.shape[1:]) for k, v in b.items()}, keys)
    for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(a, b[0], atol=1e-5)


def test_eval_step_counts_each_image_once(mnist_sample):
    mesh = sharding.make_mesh()
    eval_step = sharding.data_parallel(steps.make_eval_step(setup_of("conv32")), mesh, False)
    variables = jax.device_put(_state().variables(), sharding.replicated(mesh))
    arrays = {k: v[:100] for k, v in mnist_sample.items()}
    key = jax.random.key(3)
    a = evaluation.evaluate_arrays(eval_step, variables, arrays, key, 64, mesh)  # 2 batches, the second padded
    b = evaluation.evaluate_arrays(eval_step, variables, arrays, key, 200, mesh)  # 1 batch
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
    assert a["psnr"] > 0 and 0 < a["noisy_ssim"] < 1


def test_eval_step_in_chunks_scores_every_image_as_the_whole_batch_does(mnist_sample):
    """1,600 images a batch over 8 devices: 200 each, scored as 2 chunks of 100 (one padded batch of 300 real
    images); the means are those of the textbook per-image metrics over all 300 at once."""
    from dae_jax import corruptions
    from dae_jax.eval import metrics

    assert steps.eval_chunk(200) == 100 and steps.eval_chunk(125) == 25 and steps.eval_chunk(127) == 127
    setup, mesh = setup_of("conv32"), sharding.make_mesh()
    variables = _state().variables()
    eval_step = sharding.data_parallel(steps.make_eval_step(setup), mesh, False)
    arrays = {k: v[:300] for k, v in mnist_sample.items()}
    key = jax.random.key(3)
    got = evaluation.evaluate_arrays(
        eval_step, jax.device_put(variables, sharding.replicated(mesh)), arrays, key, 1600, mesh
    )
    clean = corruptions.to_float(jnp.asarray(arrays["image"]))
    noisy = setup.eval_noisy(clean, jnp.arange(300), key)
    want = metrics.image_metrics(setup.output(variables, noisy), clean)
    want |= {f"noisy_{k}": v for k, v in metrics.image_metrics(noisy, clean).items()}
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], float(jnp.mean(v)), rtol=1e-5, err_msg=k)


def test_orbax_round_trip_is_bit_identical(tmp_path, mnist_sample):
    import ml_collections

    state, _ = _run(sharding.make_mesh(), _batches(mnist_sample, 2, 32))
    ckpts = checkpoints.Checkpoints(tmp_path / "ckpt")
    config = ml_collections.ConfigDict({"seed": 3, "model": {"name": "conv32"}})
    ckpts.save(state, config, {"epoch_losses": [0.5]})
    ckpts.close()
    restored, saved_config, progress = checkpoints.Checkpoints(tmp_path / "ckpt").restore(_state(seed=1))
    assert int(restored.step) == int(state.step) == 2
    for a, b in zip(
        jax.tree.leaves((state.params, state.opt_state)),
        jax.tree.leaves((restored.params, restored.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert saved_config == config.to_dict() and progress == {"epoch_losses": [0.5]}


def _one_step(mnist_sample, train_noise: str, step: int, order=slice(None)):
    """Params after one SGD step (stateless: only the noise can see ``state.step``) on 16 images with rows."""
    setup = setup_of("conv32", optimizer="sgd", train_noise=train_noise)
    mesh = sharding.make_mesh(jax.devices()[:1])
    fn = sharding.data_parallel(steps.make_train_step(setup), mesh, False)
    state = create_train_state(setup, jax.random.key(0))
    state = jax.device_put(state.replace(step=step), sharding.replicated(mesh))
    batch = {"image": mnist_sample["image"][:16][order], "row": np.arange(100, 116, dtype=np.int32)[order]}
    return fn(state, sharding.global_batch(batch, mesh), jax.random.key(7))[0].params


def test_fixed_training_noise_is_a_function_of_the_row_only(mnist_sample):
    """train_noise "fixed": the same image rows get the same noise at any step and in any batch order
    (the Keras write-ups' x_train_noisy); "fresh" draws new noise at every step."""
    first = _one_step(mnist_sample, "fixed", 0)
    for later in (_one_step(mnist_sample, "fixed", 9), _one_step(mnist_sample, "fixed", 0, np.arange(16)[::-1])):
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(later), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
    fresh = [_one_step(mnist_sample, "fresh", s) for s in (0, 9)]
    assert not np.allclose(jax.tree.leaves(fresh[0])[0], jax.tree.leaves(fresh[1])[0], atol=1e-6)
    assert not np.allclose(jax.tree.leaves(fresh[0])[0], jax.tree.leaves(first)[0], atol=1e-6)


def test_a_model_without_convolutions_trains_on_one_cpu_device():
    """Its matrix products use every core of one device; splitting a batch only adds collectives."""
    assert jax.device_count() == 8
    assert sharding.model_mesh(False).devices.size == 1
    assert sharding.model_mesh(True).devices.size == 8
    assert sharding.model_mesh(True, jax.devices()[2:6]).devices.size == 4


def test_a_dense_run_trains_on_one_device_and_records_it(tfds_dir, tmp_path):
    import json

    import dae_jax

    config = dae_jax.configs.load(str(ROOT / "experiments" / "configs" / "dense32_dae.py"))
    config.data.source, config.data.data_dir = "embedded", tfds_dir
    config.num_epochs, config.max_steps_per_epoch, config.batch_size = 1, 3, 64
    config.max_eval_examples = config.eval_batch_size = 64
    run = dae_jax.train(config, tmp_path / "run")
    assert {d for leaf in jax.tree.leaves(run.state.params) for d in leaf.sharding.device_set} == {jax.devices()[0]}
    assert json.loads((tmp_path / "run" / "metadata.json").read_text())["devices"] == [str(jax.devices()[0])]
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    again = dae_jax.evaluate(run.workdir, max_examples=64)  # over all 8 devices: the scores of its one
    # Each device sums its images' scores, then the devices' sums are added: the float32 association, so
    # the last bits, depend on the device count (make_eval_step), nothing else does.
    keys = ("bce", "mse", "psnr", "ssim", "noisy_psnr", "noisy_ssim")
    np.testing.assert_allclose([again[k] for k in keys], [saved[k] for k in keys], rtol=1e-6)
    assert np.isfinite(saved["psnr"])
