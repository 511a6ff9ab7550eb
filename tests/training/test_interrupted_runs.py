"""Training runs interrupted for real, in subprocesses: SIGTERM/SIGINT (preemption), a second run on the same
workdir, a full disk while checkpointing, parameters made non-finite by an update; and the Ctrl-C handler."""

import os
import signal
import sys
import time

import jax
import numpy as np
import pytest

import dae_jax
from dae_jax.training import checkpoints, workdir
from tests.conftest import file_size_limited, one_line_error

# A run of 2 epochs x 6 steps of 64 images on the embedded digits, checkpointed every 2 steps.
TINY = (
    "--config.batch_size=64",
    "--config.eval_batch_size=64",
    "--config.max_steps_per_epoch=6",
    "--config.max_eval_examples=64",
    "--config.num_epochs=2",
    "--config.checkpoint_every_steps=2",
    "--config.log_every_steps=1",
)


def _records(w) -> list[dict]:
    """metrics.jsonl without its wall-clock field."""
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in workdir.read_history(w)]


def _leaves(w) -> list[np.ndarray]:
    from dae_jax.training.state import create_train_state
    from tests.conftest import setup_of

    template = create_train_state(setup_of("conv32"), jax.random.key(9))
    with checkpoints.Checkpoints(w / "checkpoints") as ckpts:
        state = ckpts.restore(template).state
    return [np.asarray(x) for x in jax.tree.leaves((state.step, state.params, state.opt_state))]


# Long enough (3 epochs x 20 steps) that a signal sent after the first checkpoint lands mid-run.
LONGER = (*TINY, "--config.max_steps_per_epoch=20", "--config.num_epochs=3")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_preemption_saves_exits_0_and_the_rerun_is_exact(tmp_path, run_train, sig):
    run_train(tmp_path / "straight", *LONGER)
    w = tmp_path / "preempted"
    proc = run_train(w, *LONGER, popen=True, capture=True)
    _wait_for_step(w, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "preempted at step" in out and "rerun to resume" in out, out[-500:]
    run_train(w, *LONGER)
    assert _records(w) == _records(tmp_path / "straight")
    for a, b in zip(_leaves(w), _leaves(tmp_path / "straight"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_first_ctrl_c_asks_to_stop_and_the_second_stops_at_once():
    from dae_jax.training import preemption

    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a job started in the background
    with preemption.stop_requests() as requested:
        assert not requested()
        os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled between two bytecodes
        time.sleep(0.01)
        assert requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before  # restored on leaving


def _wait_for_step(w, proc, timeout=180):
    """Until the run has written its first step checkpoint (it is training, past start-up)."""
    start = time.time()
    while not any((w / "checkpoints").glob(f"*/{checkpoints.MANIFEST}")):
        assert proc.poll() is None and time.time() - start < timeout, proc.communicate()[1][-2000:]
        time.sleep(0.2)


@pytest.mark.slow
def test_two_runs_on_one_workdir_the_second_is_refused(tmp_path, run_train):
    w = tmp_path / "w"
    first = run_train(w, *TINY, "--config.num_epochs=50", popen=True, capture=True)
    _wait_for_step(w, first)
    second = run_train(w, *TINY, check=False)
    one_line_error(second, 1, "in use by process", str(first.pid))
    first.kill()
    first.wait()
    third = run_train(w, *TINY)  # the killed run's lock is stale: taken over
    assert "taking over the lock" in third.stdout + third.stderr


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, run_train):
    w = tmp_path / "w"
    run_train(w, *TINY, "--config.num_epochs=1")
    kept = checkpoints.Checkpoints(w / "checkpoints").all_steps()
    proc = run_train(w, *TINY, check=False, entry=file_size_limited(48 << 10, [sys.executable, "experiments/main.py"]))
    line = one_line_error(proc, 1, "writing checkpoint step", "disk is full or a file size limit")
    assert f"step {kept[-1]} is kept" in line and "Traceback" not in proc.stderr
    assert int(dae_jax.load(w).setup.config.num_epochs) == 1  # the last good step, loadable
    run_train(w, *TINY)  # with space again: resumes and finishes
    assert [r["epoch"] for r in workdir.read_history(w)] == [1, 2]


@pytest.mark.slow
def test_parameters_made_non_finite_by_an_update_are_caught_at_that_step(tmp_path, run_train):
    """A run of one step whose update overflows the parameters (adam's first step moves each by the learning
    rate, 1e39 is inf in float32) while its loss, taken before the update, is finite: once saved and scored."""
    w = tmp_path / "w"
    one_step = ("--config.optimizer=adam", "--config.learning_rate=1e39", "--config.max_steps_per_epoch=1")
    proc = run_train(w, *TINY, *one_step, "--config.num_epochs=1", check=False)
    one_line_error(proc, 1, "parameters are not finite at step 1", "No checkpoint was saved", "no eval.json")
    assert not (w / "eval.json").exists() and not list((w / "checkpoints").glob("*"))
