"""Writing files without ever leaving half of one: every file dae-jax writes goes through here.

Each writer writes to a temporary name in the target's own directory, flushes it to disk and
renames it over the target (``os.replace``: atomic on POSIX), so a kill, a full disk or a crash
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A file object for ``path`` that becomes ``path`` only when the block ends without an error.

    A failed write (a full disk, say) leaves ``path`` as it was and raises an OSError naming it.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it (mkstemp makes 0600)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}; it is left as it was") from None
    except BaseException:
        _remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic(path) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as strict JSON (NaN/inf refused: write them as None first)."""
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def read_own_json(path: Path, kind: type) -> list | dict | None:
    """A JSON file dae-jax wrote itself (and appends to), or None when absent; damaged (unreadable, not JSON,
    not a ``kind``) it is logged and taken as absent, so the next write starts it anew instead of failing a run."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        value = None
    if not isinstance(value, kind):
        log.warning("%s was damaged: written anew", path)
        return None
    return value


def check_outputs(
    targets: list[Path], root: str | os.PathLike, inputs: list[Path] = (), overwrite: bool = False
) -> None:
    """Refuses, naming them, outputs that would replace a user's file without being asked.

    ``targets`` are to be written under the folder ``root``. ValueError when one resolves (symlinks
    followed) outside ``root`` or onto one of ``inputs`` (always), or already exists (unless
    ``overwrite``). Nothing is written here.
    """
    root = Path(root).resolve()
    sources = {Path(p).resolve() for p in inputs}
    escaping, onto_inputs, existing = [], [], []
    for target in map(Path, targets):
        resolved = target.resolve()
        if not resolved.is_relative_to(root):
            escaping.append(f"{target} -> {resolved}")
        elif resolved in sources:
            onto_inputs.append(str(target))
        elif target.exists() or target.is_symlink():
            existing.append(str(target))
    if escaping:
        raise ValueError(f"outputs would be written outside {root} (through symlinks): {_listed(escaping)}; refused.")
    if onto_inputs:
        raise ValueError(
            f"outputs would replace their own inputs: {_listed(onto_inputs)}; choose another --out folder."
        )
    if existing and not overwrite:
        raise ValueError(f"outputs exist already: {_listed(existing)}; pass --overwrite to replace them.")


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """A single output file: ``check_outputs`` with its own folder as the root (a symlink there is refused);
    the folder is made."""
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"output {str(path)!r} is a symlink; refused (it would write through to another file).")
    check_outputs([path], path.parent, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _listed(items: list[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
