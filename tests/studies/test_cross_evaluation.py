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


def test_rows_are_compared_with_each_columns_specialist():
    """A row trained on no column's condition gets its PSNR minus the specialist's per column (the blind study)."""
    cell = {"psnr": 0.0, "ssim": 0.5, "noisy_psnr": 9.0, "noisy_ssim": 0.4}
    rows = {"sigma 0.1": {"sigma 0.1": 25.0, "sigma 0.5": 15.0}, "sigma 0.5": {"sigma 0.1": 22.0, "sigma 0.5": 19.3}}
    rows["blind"] = {"sigma 0.1": 24.8, "sigma 0.5": 19.5}
    report = {
        "study": "s",
        "about": "",
        "config": "conv32_16_adam",
        "command": "c",
        "columns": {"sigma 0.1": {}, "sigma 0.5": {}},
        "rows": [{"row": r, "cells": {c: cell | {"psnr": v} for c, v in cs.items()}} for r, cs in rows.items()],
    }
    assert "| blind | -0.20 | +0.20 |" in ce.table(report)
    report["rows"] = report["rows"][:2]  # specialists only: no comparison table
    assert "minus the specialist" not in ce.table(report)


def test_an_ablation_says_what_each_change_bought():
    """A cumulative study's rows are each the one above plus one change: the table gives each row's gain."""
    rows = [("base", 20.0, 0.880), ("+ mse", 20.5, 0.885), ("+ residual", 20.4, 0.890)]
    report = {
        "study": "s",
        "about": "",
        "config": "unet32_best",
        "command": "c",
        "columns": {"sigma 0.5": {}},
        "cumulative": True,
        "rows": [
            {"row": r, "cells": {"sigma 0.5": {"psnr": p, "ssim": q, "noisy_psnr": 9.0, "noisy_ssim": 0.4}}}
            for r, p, q in rows
        ],
    }
    text = ce.table(report)
    assert "| + mse | +0.50 / +0.005 |" in text and "| + residual | -0.10 / +0.005 |" in text
    rows = list(ce.STUDIES["ablation_unet32"].rows.values())
    assert all(rows[i].items() < rows[i + 1].items() for i in range(len(rows) - 1))  # each adds to the changes above


@pytest.mark.parametrize("study", sorted(ce.STUDIES))
def test_every_row_of_every_study_builds(study):
    """Each row's config (its study's config, dae-jax's recipe, the row's overrides) is a runnable Setup."""
    from dae_jax.setup import Setup

    for overrides in ce.STUDIES[study].rows.values():
        config = ce.row_config(ce.STUDIES[study], overrides)
        assert config.model.kernel_init == "lecun_normal" and config.train_noise == "fresh"
        Setup.from_config(config)


def test_the_psnr_loss_blind_study_changes_only_the_loss():
    """noise_blind_psnr's rows are noise_blind's own (same names, same overrides) with loss="psnr"."""
    blind, psnr = ce.STUDIES["noise_blind"].rows, ce.STUDIES["noise_blind_psnr"].rows
    assert set(psnr) < set(blind) and all(psnr[row] == blind[row] | {"loss": "psnr"} for row in psnr)
    assert ce.STUDIES["noise_blind_psnr"].columns.keys() <= ce.STUDIES["noise_blind"].columns.keys()


def test_the_residual_blind_study_is_the_noise_study_on_the_best_recipe():
    """noise_blind_unet32_residual: noise_blind's specialists and blind model (10 epochs; the blind one also at 40)
    on unet32_residual with the PSNR loss; its own rows are the specialists (the differences need a row a column)."""
    study, blind = ce.STUDIES["noise_blind_unet32_residual"], ce.STUDIES["noise_blind"].rows
    assert set(study.rows) < set(blind) and set(study.columns) < set(study.rows) and study.specialists is None
    for name, overrides in study.rows.items():
        config = ce.row_config(study, overrides)
        epochs = 40 if name.endswith("40 epochs") else 10
        assert overrides == blind[name] | {"loss": "psnr", "num_epochs": epochs}
        assert (config.model.name, config.loss, config.num_epochs) == ("unet32_residual", "psnr", epochs)


def test_specialists_from_another_study_are_its_committed_rows():
    """noise_blind_unet32's specialists are noise_sweep_unet32's committed rows, refused when its noisy images differ;
    the table then compares the blind row with them."""
    study = ce.STUDIES["noise_blind_unet32"]
    committed = json.loads((ce.RESULTS / "noise_sweep_unet32" / "matrix.json").read_text())
    assert committed["columns"] == study.columns
    assert study.rows["blind [0, 0.7]"] == ce.STUDIES["noise_blind"].rows["blind [0, 0.7]"] | {"num_epochs": 10}
    cells = {c: dict(committed["rows"][0]["cells"][c]) for c in study.columns}  # the same noisy images...
    specialists = ce._specialist_rows(study, [{"row": "blind [0, 0.7]", "cells": cells}])
    assert specialists == {"study": "noise_sweep_unet32", "rows": committed["rows"]}
    cells["sigma 0.3"]["noisy_psnr"] += 1e-3  # ...and not
    with pytest.raises(ValueError, match="other noisy images in column 'sigma 0.3'"):
        ce._specialist_rows(study, [{"row": "blind [0, 0.7]", "cells": cells}])
    for column in cells:  # scored on fewer images (a smoke run): not comparable, not checked
        cells[column] = cells[column] | {"num_images": 256}
    assert ce._specialist_rows(study, [{"row": "blind [0, 0.7]", "cells": cells}]) == specialists

    blind = {c: cells[c] | {"psnr": committed["rows"][i]["cells"][c]["psnr"] - 0.25} for i, c in enumerate(cells)}
    report = {"study": "noise_blind_unet32", "about": "", "config": "unet32_best", "command": "c"}
    report |= {
        "columns": study.columns,
        "rows": [{"row": "blind [0, 0.7]", "cells": blind}],
        "specialists": specialists,
    }
    text = ce.table(report)
    assert "(from results/noise_sweep_unet32/)" in text and "| blind [0, 0.7] | -0.25 | -0.25 | -0.25 | -0.25 |" in text
