"""experiments/parity.py: its statistics, and the whole study end to end on a few steps (slow)."""

import json

import numpy as np
import pytest
from scipy import stats

from tests.conftest import experiment


def test_difference_interval_is_welchs():
    parity = experiment("parity")
    a, b = [19.52, 19.34, 19.29], [19.40, 19.61, 19.47, 19.55]
    d = parity.difference(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    np.testing.assert_allclose(d["ci95"], [welch.low, welch.high], rtol=1e-9)
    assert d["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert parity.difference([1.0], b)["ci95"] is None
    assert parity.summary([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2}


@pytest.mark.slow
def test_parity_study_end_to_end(tmp_path, tfds_dir):
    """Two seeds of conv32_16_adam in dae-jax (both variants) and Keras, 2 steps an epoch, one scorer."""
    pytest.importorskip("keras")
    parity = experiment("parity")
    argv = ["--configs", "conv32_16_adam", "--seeds", "0", "1", "--max_steps_per_epoch", "2"]
    argv += ["--max_eval_examples", "64", "--source", "embedded", "--data_dir", tfds_dir]
    argv += ["--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    result = parity.main(argv)
    table = result["table"]["conv32_16_adam"]
    assert set(table["frameworks"]) == {"dae-jax", "dae-jax:ours", "keras"}
    assert all(s["psnr"]["n"] == 2 and np.isfinite(s["psnr"]["mean"]) for s in table["frameworks"].values())
    assert set(table["vs_keras"]) == {"dae-jax", "dae-jax:ours"}
    assert json.loads((tmp_path / "out" / "result.json").read_text())["table"] == json.loads(
        json.dumps(result["table"])
    )
    assert "dae-jax − keras" in (tmp_path / "out" / "README.md").read_text()
    kept = sorted(p.name for p in (tmp_path / "runs" / "conv32_16_adam").glob("*.json"))
    assert len(kept) == 6 and (tmp_path / "runs" / "conv32_16_adam" / "dae-jax_seed0" / "train.log").is_file()
    again = parity.main(argv[:-1] + [str(tmp_path / "out2")])  # every run kept: scored from --workdir at once
    assert again["runs"] == result["runs"]
