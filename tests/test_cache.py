"""dae-jax's cache folder: where it is, how it turns off, and JAX's compiled programs kept per machine."""

import os
import subprocess
import sys

import pytest

from dae_jax import cache

# Compiles one program slow enough (> 0.2 s) to be kept; prints the folder and JAX's own count of programs
# read back from the persistent cache (a count, not a timing: a busy host cannot make it fail).
COMPILE = """
import jax, jax.numpy as jnp
from dae_jax import cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
folder = cache.use_for_compilation()
print(folder)
if folder is not None:
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() + sum(jnp.sin(x * i).sum() for i in range(150)))
    f(jnp.ones((64, 64))).block_until_ready()
    print(len(hits))
"""


def run(env_changes: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT"))}
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_default_folder_follows_xdg_and_off_turns_it_off(monkeypatch, tmp_path):
    monkeypatch.delenv("DAE_JAX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "dae_jax"
    for off in ("off", "0", " ", "False"):
        monkeypatch.setenv("DAE_JAX_CACHE_DIR", off)
        assert cache.cache_dir() is None
    monkeypatch.setenv("DAE_JAX_CACHE_DIR", "~/elsewhere")
    assert cache.cache_dir() == cache.Path.home() / "elsewhere"


@pytest.mark.slow  # two fresh processes compiling: 14 s on 2 cores
def test_compiled_programs_are_kept_per_machine_and_reused(tmp_path):
    first = run({"DAE_JAX_CACHE_DIR": str(tmp_path)})
    assert first[0] == str(tmp_path / "xla" / cache.machine_tag())
    assert any((tmp_path / "xla" / cache.machine_tag()).iterdir()) and first[1] == "0"  # written, not read
    second = run({"DAE_JAX_CACHE_DIR": str(tmp_path)})
    assert int(second[1]) >= 1, (first, second)  # read back, not compiled again


def test_a_chosen_compilation_cache_or_off_is_left_alone(monkeypatch):
    chosen = os.environ["JAX_COMPILATION_CACHE_DIR"]  # tests/conftest.py chose one for the session
    assert cache.use_for_compilation() is None and cache.jax.config.jax_compilation_cache_dir == chosen
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("DAE_JAX_CACHE_DIR", "off")
    assert cache.use_for_compilation() is None and cache.jax.config.jax_compilation_cache_dir == chosen
