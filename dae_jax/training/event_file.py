"""TensorBoard scalars written without TensorFlow: an event file is TFRecord-framed ``Event`` protos.

``flax.metrics.tensorboard`` writes through ``tf.summary``, and importing TensorFlow costs 7-9 s of a
run's start on a 2-core CPU; the handful of scalars a run writes per epoch need only the framing below
and TensorBoard's own protos (``tensorboard`` is a dependency, TensorFlow is not imported).
TFRecord framing: ``uint64 length, uint32 masked_crc(length), data, uint32 masked_crc(data)``, little
endian, where the CRC is CRC-32C (Castagnoli).
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import struct
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2


@functools.cache
def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # the reversed Castagnoli polynomial
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (table-driven; an event is ~100 bytes, a few per epoch)."""
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(crc32c(length))) + data + struct.pack("<I", _masked(crc32c(data)))


class ScalarWriter:
    """Scalars appended to a new event file in ``logdir`` (made if absent; an existing file is never touched).

    Each ``write`` opens, appends and closes: a killed run leaves every earlier record readable.
    """

    def __init__(self, logdir: str | os.PathLike):
        Path(logdir).mkdir(parents=True, exist_ok=True)
        stem = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        for n in itertools.count():  # "x": a file of that name (another writer's this second) is skipped
            self.path = Path(logdir) / f"{stem}.{n}"
            try:
                with self.path.open("xb") as f:
                    f.write(_framed(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")))
                break
            except FileExistsError:
                continue

    def write(self, step: int, scalars: dict[str, float]) -> None:
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        event = event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values))
        with self.path.open("ab") as f:
            f.write(_framed(event))


def _framed(event: event_pb2.Event) -> bytes:
    return tfrecord(event.SerializeToString())
