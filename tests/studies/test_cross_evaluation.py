"""experiments/cross_evaluation.py: every row model is scored on every column's very same noisy images."""

import json

import numpy as np
import pytest

from tests.conftest import experiment

ce = experiment("cross_evaluation")


@pytest.mark.slow
def test_matrix_of_a_small_study(tmp_path, tfds_dir, monkeypatch):
    study = ce.Study(
        "conv32_16_adam",
        {"sigma 0.3": {"corruption": ce.gaussian(0.3)}, "masking": {"corruption": {"name": "masking", "p": 0.5}}},
        {
            "sigma 0.5": {"corruption": ce.gaussian(0.5)},
            "blur, MNIST": {"corruption": {"name": "gaussian_blur", "sigma": 1.0}, "dataset": "mnist"},
        },
        "a two-by-two check",
    )
    monkeypatch.setitem(ce.STUDIES, "tiny", study)
    monkeypatch.delenv("DAE_JAX_MNIST_DIR", raising=False)  # the embedded digits: seconds
    out = tmp_path / "out"
    ce.main(["tiny", "--workdir", str(tmp_path / "runs"), "--data-dir", tfds_dir, "--out", str(out), "--smoke"])
    report = json.loads((out / "matrix.json").read_text())
    assert [r["row"] for r in report["rows"]] == ["sigma 0.3", "masking"]
    for column in study.columns:
        noisy = [r["cells"][column]["noisy_psnr"] for r in report["rows"]]
        assert noisy[0] == noisy[1]  # the same noisy images for every model of a column
        assert all(
            np.isfinite(r["cells"][column]["psnr"]) and r["cells"][column]["num_images"] == 256 for r in report["rows"]
        )
    assert "| masking |" in (out / "table.md").read_text() and (out / "psnr.png").stat().st_size > 5000
