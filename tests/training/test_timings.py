"""dae_jax.training.timings: seconds per phase add up to the whole."""

import json
import shlex
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from dae_jax.training import timings


def test_phases_add_up_to_the_total():
    timer = timings.Timings()
    with timer.phase("train"):
        time.sleep(0.02)
    with timer.phase("train"):  # summed over every time the phase ran
        time.sleep(0.02)
    timer.add("validation", 0.5)
    record = timer.record()
    assert record["train"] >= 0.04 and record["validation"] == 0.5 and record["test"] == 0.0
    assert record["total"] >= 0.04  # add()'s seconds are claimed, not slept: "other" takes the difference
    assert sum(record[k] for k in (*timings.PHASES, "other")) == pytest.approx(record["total"], abs=0.005)
    line = timings.summary(record)
    assert line.startswith("seconds: prepare 0.0, first_chunk 0.0, train ") and ", validation 0.5, " in line


def test_the_first_call_of_steps_is_counted_apart():
    timer = timings.Timings()
    for seconds in (3.0, 0.5, 0.5):
        timer.chunk(seconds)
    assert timer.seconds["first_chunk"] == 3.0 and timer.seconds["train"] == 1.0


def test_each_finished_invocation_appends_its_record(tmp_path):
    timings.Timings().finish(tmp_path, 0)
    timings.Timings().finish(tmp_path, 120)  # a resumed run: its own record after the first's
    records = json.loads((tmp_path / "timings.json").read_text())
    assert [r["from_step"] for r in records] == [0, 120] and all(set(timings.PHASES) <= set(r) for r in records)
    (tmp_path / "timings.json").write_text('{"not": "a list"}')
    timings.Timings().finish(tmp_path, 7)  # damaged: written anew, not raised
    assert [r["from_step"] for r in json.loads((tmp_path / "timings.json").read_text())] == [7]


def test_an_unknown_phase_is_named():
    with pytest.raises(ValueError, match="unknown phase 'compile'"):
        timings.Timings().add("compile", 1.0)


def test_overlapping_spans_count_once_and_are_clipped_to_the_window():
    spans = [(0.0, 4.0), (1.0, 2.0), (3.0, 6.0), (8.0, 9.0)]  # nested and overlapping: 0-6 and 8-9
    assert timings.covered(spans) == 7.0
    assert timings.covered(spans, 5.0, 8.5) == 1.5


def test_compilation_and_start_up_are_measured_while_entered():
    with timings.Timings() as timer:
        jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.arange(7.0)).block_until_ready()  # a program of its own
        timer.chunk(0.01)
        record = timer.record()
    assert 0 < record["compile"] <= record["total"]
    assert record["launch"] > 0  # dae_jax was imported before the timer was made
    assert record["startup"] == pytest.approx(record["launch"] + record["prepare"], abs=0.02)  # no compile in it
    jax.jit(lambda x: jnp.cos(x) - 2)(jnp.arange(5.0)).block_until_ready()
    assert timer.record()["compile"] == record["compile"]  # outside the block: not listened to


def test_launch_counts_from_dae_jax_import_not_from_a_shell_that_execs_the_command():
    """``bash -c 'install && dae-jax train'`` execs into the command in the shell's process: its start is not
    the command's. Four seconds of shell before the exec stay out of ``launch``."""
    script = "from dae_jax.training import timings; print(timings.Timings().record()['launch'])"
    shell = f"sleep 4 && exec {shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True, timeout=120)
    launch = float(out.stdout.split()[-1])
    assert 0 < launch < 4.0  # the imports only (about 2 s); the process is older than 4 s
