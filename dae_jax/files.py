"""Writing files without ever leaving half of one: every file dae-jax writes goes through here.

Each writer writes to a temporary name in the target's own directory, flushes it to disk and
renames it over the target (``os.replace``: atomic on POSIX), so a kill, a full disk or a crash
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A file object for ``path`` that becomes ``path`` only when the block ends without an error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic(path) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as strict JSON (NaN/inf refused: write them as None first)."""
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
