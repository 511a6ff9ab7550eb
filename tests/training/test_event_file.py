"""TensorBoard scalars without TensorFlow: TensorBoard's own reader reads them back, CRCs checked."""

import pytest

from dae_jax.training import event_file


def test_crc32c_is_castagnoli():
    assert event_file.crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert event_file.crc32c(b"") == 0


def test_tensorboard_reads_the_scalars_back(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    writer = event_file.ScalarWriter(tmp_path / "tb")
    for step in (10, 20, 30):
        writer.write(step, {"train_loss": 1.0 / step, "val_psnr": 15.0 + step / 10})
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["train_loss", "val_psnr"]
    assert [(s.step, s.value) for s in events.Scalars("val_psnr")] == [(10, 16.0), (20, 17.0), (30, 18.0)]
    assert events.Scalars("train_loss")[2].value == pytest.approx(1 / 30)
    raw = writer.path.read_bytes()
    damaged = raw[:-1] + bytes([raw[-1] ^ 1])  # the last record's data CRC no longer matches
    writer.path.write_bytes(damaged)
    reread = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    reread.Reload()
    assert len(reread.Scalars("val_psnr")) == 2  # the reader checks the framing: a bad record is dropped


def test_an_existing_event_file_is_never_overwritten(tmp_path, monkeypatch):
    first = event_file.ScalarWriter(tmp_path)
    first.write(1, {"loss": 1.0})
    before = first.path.read_bytes()
    monkeypatch.setattr(event_file.time, "time", lambda: float(first.path.name.split(".")[3]))  # the same second
    second = event_file.ScalarWriter(tmp_path)
    second.write(2, {"loss": 0.5})
    assert second.path != first.path and second.path.name.endswith(".1")
    assert first.path.read_bytes() == before
