"""dae_jax.training.timings: seconds per phase add up to the whole."""

import json
import time

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
    assert sum(v for k, v in record.items() if k != "total") == pytest.approx(record["total"], abs=0.005)
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
