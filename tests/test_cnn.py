"""The attribute CNN learns phantom factors, round-trips through its checkpoint, and reports bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from seegaan_explore.cli import main
from seegaan_explore.model.checkpoint import CheckpointError
from seegaan_explore.model.cnn import CnnConfig, load_cnn, save_cnn
from seegaan_explore.model.oracle import factor_targets, load_oracle
from seegaan_explore.phantoms import generate_cohort, write_cohort
from seegaan_explore.train.cnn import train_cnn

SIZE = 64


@pytest.fixture(scope="module")
def phantoms():
    images, table = generate_cohort(480, SIZE, seed=5)
    return images, table


def _split(images, values, n_train=400):
    return images[:n_train], values[:n_train], images[n_train:], values[n_train:]


def test_cnn_learns_the_view_from_the_image(phantoms):
    images, table = phantoms
    view = (table["view"] == "AP").to_numpy(dtype=np.float64)
    config = CnnConfig(resolution=SIZE, widths=(16, 32, 64), task="binary", attribute="view")
    model, metrics = train_cnn(*_split(images, view), config, epochs=4, progress=False)
    assert metrics["auc"] > 0.9, metrics


def test_cnn_regresses_the_cardiothoracic_ratio(phantoms, tmp_path):
    images, table = phantoms
    ctr = table["ctr_projected"].to_numpy(dtype=np.float64)
    config = CnnConfig(resolution=SIZE, widths=(16, 32, 64), attribute="ctr_projected")
    model, metrics = train_cnn(*_split(images, ctr), config, epochs=4, auc_threshold=0.5, progress=False)
    assert metrics["pearson_r"] > 0.6, metrics
    assert 0.3 < model.config.target_mean < 0.8  # predictions come back in the attribute's own units

    path = tmp_path / "cnn.safetensors"
    save_cnn(path, model, metrics)
    loaded = load_cnn(path)
    x = torch.from_numpy(images[400:])[:, None]
    torch.testing.assert_close(loaded.predict(x), model.predict(x))
    assert loaded.metrics["pearson_r"] == pytest.approx(metrics["pearson_r"])
    assert isinstance(loaded.gradcam_layer, torch.nn.Module)


def test_foreign_file_is_not_a_cnn(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="not a seegaan-explore CNN checkpoint"):
        load_cnn(path)


def test_train_cnn_command(tmp_path, capsys):
    write_cohort(tmp_path / "c", n=120, size=SIZE, seed=1, progress=False, workers=1)
    common = ["train-cnn", "--data", str(tmp_path / "c" / "phantoms.csv"), "--resolution", str(SIZE),
              "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--epochs", "1"]
    with pytest.raises(SystemExit, match="seegaan-explore train-cnn: no attribute 'bnp'"):
        main(common + ["--attribute", "bnp", "--out", str(tmp_path / "x.safetensors")])
    out = tmp_path / "cnn.safetensors"
    assert main(common + ["--attribute", "nt_probnp_pg_ml", "--log", "--auc-threshold", "125",
                          "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "regression" and result["n_train"] + result["n_val"] == 120
    model = load_cnn(out)
    assert model.config.log_transform and model.config.attribute == "nt_probnp_pg_ml"
    assert 3 < model.config.target_mean < 9  # ln(pg/mL)


def test_oracle_reads_every_factor_and_round_trips(tmp_path, capsys):
    write_cohort(tmp_path / "c", n=360, size=SIZE, seed=3, progress=False, workers=1)
    out = tmp_path / "oracle.safetensors"
    assert main(["train-oracle", "--data", str(tmp_path / "c" / "phantoms.csv"), "--resolution", str(SIZE),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--epochs", "4", "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["view"]["auc"] > 0.85, metrics["view"]       # the AP label and magnification
    assert metrics["severity"]["pearson_r"] > 0.5, metrics["severity"]
    oracle = load_oracle(out)
    assert oracle.config.factors[:3] == ("severity", "log_nt_probnp", "age")
    table = generate_cohort(4, SIZE, seed=9)[1]
    x = torch.from_numpy(generate_cohort(4, SIZE, seed=9)[0])[:, None]
    predicted = oracle.predict(x)
    assert list(predicted.columns) == list(oracle.config.factors) and len(predicted) == 4
    assert predicted["view"].between(0, 1).all()                  # binary factors as probabilities
    assert 20 < predicted["age"].mean() < 95                       # regression factors in their own units
    assert set(table.columns) >= set(oracle.config.factors)
    with pytest.raises(ValueError, match="no column 'severity'"):
        factor_targets(table.drop(columns=["severity"]), oracle.config.factors)


def test_the_oracles_two_level_readings_are_put_in_the_tables_coding():
    """The oracle reads view as P(AP); a table codes its levels in sorted order (AP 0, PA 1). A film
    towards PA must read as view rising, or every view film seems to move the wrong way."""
    import pandas as pd

    from seegaan_explore.model.oracle import in_table_coding, reversed_factors

    readings = pd.DataFrame({"view": [0.9, 0.5, 0.1], "sex": [0.2, 0.5, 0.8], "age": [40.0, 50.0, 60.0]})
    table = pd.DataFrame({"view": ["AP", "PA", "AP"], "sex": ["F", "M", "M"], "age": [1, 2, 3]})
    coded = in_table_coding(readings, reversed_factors(table))
    np.testing.assert_allclose(coded["view"], [0.1, 0.5, 0.9])  # P(PA): PA is the table's 1
    np.testing.assert_allclose(coded["sex"], readings["sex"])  # P(M): M is the table's 1 already
    np.testing.assert_allclose(coded["age"], readings["age"])
    numeric = in_table_coding(readings, reversed_factors(table.assign(view=[1.0, 0.0, 1.0])))  # the oracle's own 0/1
    np.testing.assert_allclose(numeric["view"], readings["view"])
    assert readings["view"].iloc[0] == 0.9  # the caller's frame is not changed


@pytest.mark.filterwarnings("ignore:Only one class is present")  # 40 phantoms: the held-out AUCs do not matter here
def test_training_precision_is_chosen_on_the_command_line(tmp_path, capsys):
    """``--precision fp32`` trains in fp32 on any machine (``auto`` picks bf16 where it is fast): the
    flag reaches the training, since bf16 trains another network from the same seed."""
    write_cohort(tmp_path / "c", n=40, size=SIZE, seed=4, progress=False, workers=1)
    trained = {}
    for precision in ("fp32", "bf16", "fp32"):
        out = tmp_path / f"{precision}-{len(trained)}.safetensors"
        assert main(["train-oracle", "--data", str(tmp_path / "c" / "phantoms.csv"), "--resolution", str(SIZE),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--epochs", "1",
                     "--precision", precision, "--out", str(out)]) == 0
        trained[out.stem] = load_oracle(out).state_dict()
    capsys.readouterr()
    first, bf16, again = trained.values()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], bf16[k]) for k in first)
