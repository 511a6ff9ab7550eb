"""The device-resident fast path, and host batches stacked k a call, run the same train steps as the host loop."""

import jax
import numpy as np

from dae_jax import sharding
from dae_jax.training import device_loop, feeds, steps
from dae_jax.training.state import create_train_state
from tests.conftest import setup_of


def test_same_batches_give_the_same_parameters_as_the_host_loop(mnist_sample):
    mesh = sharding.make_mesh(jax.devices()[:4])
    setup = setup_of("conv32_16", optimizer="adam", micro_batch_size=4)
    train_step = steps.make_train_step(setup)
    images = mnist_sample["image"][:512]
    order = device_loop.epoch_order(jax.random.key(5), 0, len(images), steps=4, batch_size=32)

    def fresh_state():
        return jax.device_put(create_train_state(setup, jax.random.key(0)), sharding.replicated(mesh))

    host_step = sharding.data_parallel(train_step, mesh, donate_state=True)
    host, host_losses = fresh_state(), []
    for rows in np.asarray(order):  # the host loop fed the very batches the device loop gathers
        host, m = host_step(host, sharding.global_batch({"image": images[rows]}, mesh), jax.random.key(7))
        host_losses.append(float(m["loss"]))

    multi_step = device_loop.make_multi_step(train_step, mesh)
    resident = device_loop.put_images(images, mesh)
    device, first = multi_step(fresh_state(), resident, order[:1], jax.random.key(7))
    device, rest = multi_step(device, resident, order[1:], jax.random.key(7))  # k varies between calls

    np.testing.assert_allclose(np.concatenate([first, rest]), host_losses, rtol=1e-5)
    assert int(device.step) == int(host.step) == 4
    for a, b in zip(jax.tree.leaves(device.params), jax.tree.leaves(host.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_epoch_order_is_a_seeded_permutation():
    a = np.asarray(device_loop.epoch_order(jax.random.key(1), 3, 100, steps=6, batch_size=16))
    assert a.shape == (6, 16) and len(set(a.ravel())) == 96 and a.max() < 100
    np.testing.assert_array_equal(a, device_loop.epoch_order(jax.random.key(1), 3, 100, 6, 16))
    assert not np.array_equal(a, device_loop.epoch_order(jax.random.key(1), 4, 100, 6, 16))


def test_epoch_orders_compute_the_next_epoch_ahead_on_an_idle_device():
    """The same orders as epoch_order, in sequence, resumed out of it, and with the next one already dispatched
    onto a device the one-device mesh leaves idle."""
    key, shape = jax.random.key(2), (100, 6, 16)
    want = [np.asarray(device_loop.epoch_order(key, e, *shape)) for e in range(4)]
    one = device_loop.EpochOrders(key, *shape, sharding.make_mesh(jax.devices()[:1]), num_epochs=4)
    for epoch in (0, 1, 3, 2, 3):  # 3 then 2: a resumed run asks for an epoch other than the one computed ahead
        np.testing.assert_array_equal(one(epoch), want[epoch])
        if epoch < 3:
            assert one._next[0] == epoch + 1 and one._next[1].devices() == {jax.local_devices()[-1]}
        else:  # none after the last epoch
            assert one._next is None
    every = device_loop.EpochOrders(key, *shape, sharding.make_mesh(), num_epochs=4)
    np.testing.assert_array_equal(every(1), want[1])
    assert every._next is None  # no idle device: each epoch's order when it starts


def test_host_batches_stacked_k_a_call_give_the_parameters_of_one_step_a_call(mnist_sample, monkeypatch):
    mesh = sharding.make_mesh(jax.devices()[:4])
    setup = setup_of("conv32_16", optimizer="adam", micro_batch_size=4)
    assert feeds._stacks(setup)  # its batches go k a call, the path under test
    images = mnist_sample["image"][:192]
    batches = [{"image": images[i : i + 32], "row": np.arange(i, i + 32)} for i in range(0, 192, 32)]

    def fresh_state():
        return jax.device_put(create_train_state(setup, jax.random.key(0)), sharding.replicated(mesh))

    host_step = sharding.data_parallel(steps.make_train_step(setup), mesh, donate_state=True)
    host, host_losses = fresh_state(), []
    for batch in batches:
        host, m = host_step(host, sharding.global_batch(batch, mesh), setup.keys.train)
        host_losses.append(float(m["loss"]))

    def fed(sizes: list[int], stack_max_batches: int):
        """The 6 batches through ``advance`` calls of ``sizes`` steps, at most ``stack_max_batches`` a call."""
        monkeypatch.setattr(feeds, "STACK_MAX_BYTES", stack_max_batches * sum(v.nbytes for v in batches[0].values()))
        advance, state, losses = feeds._host_fed(setup, mesh)(iter(batches)), fresh_state(), []
        for k in sizes:
            state, chunk = advance(state, k)
            assert chunk.shape == (k,)
            losses.append(chunk)
        return state, np.concatenate(losses)

    fed_a, losses_a = fed([4, 2], stack_max_batches=3)  # calls of 3, 1 and 2 steps
    fed_b, losses_b = fed([1, 5], stack_max_batches=8)  # calls of 1 and 5 steps: a resumed run's other split
    np.testing.assert_allclose(losses_a, host_losses, rtol=1e-5)
    np.testing.assert_array_equal(losses_a, losses_b)
    assert int(fed_a.step) == int(host.step) == 6
    for a, b, c in zip(*(jax.tree.leaves(s.params) for s in (fed_a, fed_b, host)), strict=True):
        np.testing.assert_array_equal(a, b)  # how the steps are grouped into calls changes no bit
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_resident_images_give_back_the_rows_they_were_put_as():
    """Held as 32-bit words (a row's bytes zero-padded to a whole word), gathered rows come back exact."""
    mesh = sharding.make_mesh(jax.devices()[:2])
    rng = np.random.default_rng(0)
    index = np.array([3, 0, 9, 3])
    for images in (
        rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8),  # 784 bytes a row: whole words
        rng.integers(0, 256, (10, 5, 3, 3), dtype=np.uint8),  # 45 bytes: padded to 48
        rng.random((10, 3, 3, 1), dtype=np.float32),
        rng.integers(-128, 128, (10, 3, 3, 1), dtype=np.int8),
        rng.random((10, 2, 2, 1)).astype(">f4"),  # the other byte order: given back as numbers, not bytes
    ):
        resident = device_loop.put_images(images, mesh)
        assert resident.words.dtype == np.uint32 and resident.words.shape[1] == -(-images[0].nbytes // 4)
        for rows in (resident.rows(index), jax.jit(lambda r, i: r.rows(i))(resident, index)):
            assert rows.dtype == images.dtype.newbyteorder("=")
            np.testing.assert_array_equal(np.asarray(rows), images[index])
