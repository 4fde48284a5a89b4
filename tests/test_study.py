"""The study answers every front door's questions about a cohort once: attributes, the patient's
value, the direction a patient traverses, and what measures the target on a frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.explore.study import (
    CNN_PREDICTION,
    Study,
    cnn_label,
    detect_attributes,
    direction_for,
    scaled_name,
    split_scaled_name,
    traversal_range,
)


def _cohort(n: int = 240, seed: int = 0):
    """Latents in which age moves axis 0 on PA exams and axis 1 on AP exams: an effect that differs by view."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, n)
    ap = rng.random(n) < 0.4
    w = rng.normal(0, 0.05, (n, 4))
    w[~ap, 0] += 0.02 * age[~ap]
    w[ap, 1] += 0.02 * age[ap]
    table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "age": age,
                          "view": np.where(ap, "AP", "PA"), "lab": np.exp(rng.normal(5, 1, n)),
                          "site": rng.choice(["a", "b", "c"], n), "constant": 1.0})
    return w.astype(np.float32), table


def test_attributes_are_numbers_and_two_level_text_not_bookkeeping():
    _, table = _cohort()
    found = detect_attributes(table)
    assert set(found) == {"age", "view", "lab"}  # not the id, the 3-level site or the constant column
    values, mapping = found["view"]
    assert mapping == {"ap": 0, "pa": 1}
    assert set(np.unique(values)) == {0.0, 1.0}


def test_matching_fits_among_the_patients_like_it_and_says_so():
    w, table = _cohort()
    study = Study(w, table)
    ap_row = int(np.flatnonzero(table["view"] == "AP")[0])
    direction = study.direction("age", match=("view",), row=ap_row)
    ap = (table["view"] == "AP").to_numpy()
    expected = fit_direction("mean_shift", w, table["age"].to_numpy(), rows=ap, attribute="age")
    np.testing.assert_allclose(direction.vector, expected.vector, rtol=1e-5)
    assert direction.diagnostics["matched"] == {"view": "AP"}
    assert abs(direction.vector[1]) > 5 * abs(direction.vector[0])  # AP exams: age moves axis 1
    pa_row = int(np.flatnonzero(~ap)[0])
    pa = study.direction("age", match=("view",), row=pa_row).vector
    assert abs(pa[0]) > 5 * abs(pa[1]) and pa[0] == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ValueError, match="needs a cohort patient"):
        study.direction("age", match=("view",))


def test_a_failed_matched_fit_names_the_group():
    w, table = _cohort(n=40)
    table.loc[table["view"] == "AP", "age"] = 50.0  # constant among AP exams
    ap_row = int(np.flatnonzero(table["view"] == "AP")[0])
    with pytest.raises(ValueError, match=r"among the \d+ exams with view = AP: age: the column is constant"):
        Study(w, table).direction("age", match=("view",), row=ap_row)


def test_direction_for_on_plain_arrays_equals_the_study():
    """evaluate holds plain factor arrays: the same function gives the same direction."""
    w, table = _cohort()
    study = Study(w, table)
    row = 3
    at = traversal_range(float(np.log(table["lab"][row])), [-1, 0, 1], study.sd("lab", True))
    from_study = study.direction("lab", "spline_mean_shift", confounders=("age",), log=True, at=at)
    plain = direction_for("spline_mean_shift", w, np.log(table["lab"].to_numpy()), table[["age"]].to_numpy(),
                          attribute="lab", confounder_names=("age",), at=at)
    np.testing.assert_allclose(from_study.vector, plain.vector, rtol=1e-6)
    assert from_study.diagnostics["at"] == pytest.approx(at)
    with pytest.raises(ValueError, match="spline_mean_shift"):
        direction_for("mean_shift", w, table["age"], attribute="age", at=(30.0, 40.0))
    with pytest.raises(ValueError, match="cannot use it"):
        direction_for("pca", w, table["age"], attribute="age", match={"view": np.zeros(len(w))}, like={"view": 0.0})


def test_held_columns_must_be_other_attributes():
    w, table = _cohort()
    study = Study(w, table)
    with pytest.raises(ValueError, match="must be another attribute"):
        study.direction("age", confounders=("age",))
    with pytest.raises(ValueError, match="both by matching and by a linear term"):
        study.direction("age", confounders=("view",), match=("view",), row=0)
    with pytest.raises(ValueError, match=r"'site' is not an attribute: .* neither numeric nor binary \(3"):
        study.values("site")


def test_the_patient_value_comes_from_the_table_or_is_estimated():
    w, table = _cohort()
    table.loc[5, "age"] = np.nan
    study = Study(w, table)
    value, source = study.patient_value("age", False, row=0)
    assert value == pytest.approx(table["age"][0]) and source == "the table"
    estimate, source = study.patient_value("age", False, row=5)
    assert source.startswith("estimated")
    truth = (w[5, 0] if table["view"][5] == "PA" else w[5, 1]) / 0.02  # the latent encodes age, per view
    assert abs(estimate - truth) < 25  # a linear reader across both views: near, not exact
    logged, _ = study.patient_value("lab", True, row=0)
    assert logged == pytest.approx(np.log(table["lab"][0]))
    with pytest.raises(ValueError, match="log scale needs positive values"):
        study.scaled("view", True)  # coded 0/1


def test_what_measures_the_target():
    w, table = _cohort()
    cnn = SimpleNamespace(config=SimpleNamespace(attribute="lab", log_transform=True, task="regression"))
    study = Study(w, table, cnn=cnn)
    assert CNN_PREDICTION in study.attributes
    predictions = np.array([4.0, 5.0, 6.0])
    measured, by = study.measured("lab", True, cnn_predictions=predictions)
    assert by == "the CNN"
    np.testing.assert_allclose(measured, predictions)  # ln of exp: the CNN's own scale
    oracle = pd.DataFrame({"lab": [1.0, 2.0, 3.0]})
    measured, by = study.measured("lab", False, cnn_predictions=predictions, oracle_predictions=oracle)
    assert by == "the oracle" and measured.tolist() == [1.0, 2.0, 3.0]
    measured, reason = study.measured("age", False, cnn_predictions=predictions)
    assert measured is None and "nothing measures age" in reason
    binary = Study(w, table, cnn=SimpleNamespace(config=SimpleNamespace(attribute="lab", log_transform=False,
                                                                        task="binary")))
    assert binary.measured("lab", False, cnn_predictions=predictions)[0] is None
    assert cnn_label(binary.cnn.config) == "CNN probability of lab"
    assert study.label(CNN_PREDICTION) == "CNN prediction of ln lab"


def test_names_on_the_log_scale_round_trip():
    assert split_scaled_name(scaled_name("nt_probnp", True)) == ("nt_probnp", True)
    assert split_scaled_name("age") == ("age", False)
    assert traversal_range(2.0, [1, -1, 0], 0.5) == (1.5, 2.5)


def test_a_column_that_is_no_attribute_says_why():
    w, table = _cohort()
    table["patient_id"] = range(len(table))
    study = Study(w, table)
    with pytest.raises(ValueError, match="'constant' is not an attribute: it is constant \\(1\\)"):
        study.values("constant")
    with pytest.raises(ValueError, match="'patient_id' is not an attribute: it is bookkeeping"):
        study.values("patient_id")
    with pytest.raises(ValueError, match="unknown attribute 'nope'; choose one of age, view, lab"):
        study.values("nope")
