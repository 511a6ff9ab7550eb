"""dae-jax's cache folder: decoded splits (``dae_jax.data.array_cache``) and, for the ``dae-jax`` commands,
JAX's compiled programs, so that a run's second start skips both the data decode and most compilation.

Where: ``$DAE_JAX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/dae_jax`` or ``~/.cache/dae_jax``);
``DAE_JAX_CACHE_DIR=off`` turns both off. Compiled programs sit in ``xla/<machine>/``, one folder per CPU
model, feature set and jax version (an XLA:CPU executable is built for the CPU that compiled it, and a
home folder may be shared by unlike machines); JAX evicts the least recently used beyond 2 GiB. The
decoded splits are never evicted: delete ``arrays/`` (or the whole folder) to reclaim their space.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import jax

OFF = ("off", "0", "false", "no")
COMPILED_MAX_BYTES = 2 * 2**30


def cache_dir() -> Path | None:
    """dae-jax's cache folder (``DAE_JAX_CACHE_DIR``, else the XDG cache home), None when turned off."""
    chosen = os.environ.get("DAE_JAX_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in OFF or not chosen.strip() else Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dae_jax"


def machine_tag() -> str:
    """This machine's compiled programs' folder name: its CPU model and feature flags, and the jax version."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    wanted = ("model name", "flags", "Features", "CPU part")  # x86 and Arm spellings; the first CPU's lines
    described = sorted({line for line in cpuinfo if line.split(":")[0].strip() in wanted})
    identity = "\n".join([platform.machine(), platform.processor(), jax.__version__, *described])
    return f"{platform.machine()}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def use_for_compilation() -> Path | None:
    """Points JAX's persistent compilation cache at ``xla/<machine>`` of the cache folder, and returns it.

    Left alone (None) where the user chose a folder (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) or
    turned the cache off. Programs that compile in under 0.2 s are not kept (JAX's default: 1 s).
    """
    root = cache_dir()
    if root is None or os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None
    folder = root / "xla" / machine_tag()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
        jax.config.update("jax_compilation_cache_max_size", COMPILED_MAX_BYTES)
    return folder
