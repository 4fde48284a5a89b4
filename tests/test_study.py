"""The study answers every front door's questions about a cohort once: attributes, the patient's
value, the direction a patient traverses, and what measures the target on a frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from seegaan_explore.explore.attributes import (
    CNN_PREDICTION,
    cnn_label,
    detect_attributes,
    scaled_name,
    split_scaled_name,
)
from seegaan_explore.explore.dictionary import AttributeInfo
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.explore.study import COHORT_MEDIAN, ESTIMATED, Study, direction_for, traversal_range


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


def test_attributes_are_numbers_two_level_text_and_contrasts_not_bookkeeping():
    _, table = _cohort()
    table["split"] = np.where(np.arange(len(table)) % 5, "train", "test")
    found = detect_attributes(table)
    plain = {name for name in found if "=" not in name}
    assert plain == {"age", "view", "lab"}  # not the id, the split or the constant column
    values, mapping = found["view"]
    assert mapping == {"ap": 0, "pa": 1}
    assert set(np.unique(values)) == {0.0, 1.0}
    # the 3-level site: every level against the most frequent one, and every level against the rest
    reference, *others = table["site"].value_counts().index
    assert [n for n in found if n.startswith("site=")] == (
        [f"site={level}:{reference}" for level in others] + [f"site={level}" for level in (reference, *others)])
    values, contrast = found[f"site={others[0]}:{reference}"]
    np.testing.assert_array_equal(values, np.where(table["site"] == others[0], 1.0,
                                                   np.where(table["site"] == reference, 0.0, np.nan)))
    assert contrast.column == "site"


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
    with pytest.raises(ValueError, match="'age' cannot be held: it is the attribute itself"):
        study.direction("age", confounders=("age",))
    with pytest.raises(ValueError, match="'nope' cannot be held: it must be another attribute or a categorical "
                                         "column, one of view, lab"):
        study.direction("age", confounders=("nope",))
    with pytest.raises(ValueError, match="both by matching and by a linear term"):
        study.direction("age", confounders=("view",), match=("view",), row=0)
    with pytest.raises(ValueError, match=r"'site' is not an attribute: it has 3 levels \(.*\); name one against the "
                                         r"rest \(site=\w\) or against a reference level \(site=\w:\w\)"):
        study.values("site")


def test_the_patient_value_comes_from_the_table_or_is_estimated():
    w, table = _cohort()
    table.loc[5, "age"] = np.nan
    study = Study(w, table)
    value, source = study.patient_value("age", False, row=0)
    assert value == pytest.approx(table["age"][0]) and source == "recorded"
    estimate, source = study.patient_value("age", False, row=5)
    assert source == ESTIMATED == "not recorded: estimated from the image"
    truth = (w[5, 0] if table["view"][5] == "PA" else w[5, 1]) / 0.02  # the latent encodes age, per view
    assert abs(estimate - truth) < 25  # a linear reader across both views: near, not exact
    # a value the image does not tell (no trusted reader of it) is not said to be read off it
    table["death_day"] = np.random.default_rng(4).uniform(0, 30, len(table))
    table.loc[5, "death_day"] = np.nan
    start, source = Study(w, table).patient_value("death_day", False, row=5)
    assert source == COHORT_MEDIAN and start == pytest.approx(np.nanmedian(table["death_day"]))
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
    worded = Study(w, table, cnn=binary.cnn, dictionary={"lab": AttributeInfo("lab", "NT-proBNP", "pg/mL")})
    assert worded.label(CNN_PREDICTION) == "CNN probability of NT-proBNP"  # its words, not its column's name
    assert worded.shown_as(CNN_PREDICTION) == (CNN_PREDICTION, False)  # a probability is shown as it is
    # a regression of ln lab is shown in lab's units, never as its logarithm under lab's name
    assert study.label(CNN_PREDICTION) == "lab as the CNN reads it"
    assert study.shown_as(CNN_PREDICTION) == ("lab", True)
    assert study.format(CNN_PREDICTION, np.log(900.0)) == "900"
    np.testing.assert_allclose(study.from_shown(CNN_PREDICTION, study.to_shown(CNN_PREDICTION, [4.0, 6.0])), [4, 6])


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


def _views(n: int = 300, seed: int = 1):
    """Three views: PA exams sit +1 along axis 0, LATERAL ones +1 along axis 1; age moves axis 2."""
    rng = np.random.default_rng(seed)
    view = rng.choice(["AP", "PA", "LATERAL"], n, p=[0.5, 0.35, 0.15])
    age = rng.uniform(20, 90, n)
    w = rng.normal(0, 0.05, (n, 4))
    w[view == "PA", 0] += 1.0
    w[view == "LATERAL", 1] += 1.0
    w[:, 2] += 0.02 * age
    table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "view_raw": view, "age": age,
                          "split": np.where(rng.random(n) < 0.7, "train", "test")})
    return w.astype(np.float32), table


def test_a_level_against_a_reference_level_fits_on_those_two_levels_only():
    w, table = _views()
    study = Study(w, table)
    direction = study.direction("view_raw=pa:ap")  # any case; named as the table spells it
    assert direction.attribute == "view_raw=PA:AP" and direction.ends == ("AP", "PA")
    two = table["view_raw"].isin(["AP", "PA"]).to_numpy()
    expected = fit_direction("mean_shift", w[two], (table["view_raw"][two] == "PA").to_numpy(float))
    np.testing.assert_allclose(direction.vector, expected.vector, rtol=1e-5)
    assert direction.vector[0] == pytest.approx(1.0, abs=0.03) and abs(direction.vector[1]) < 0.03  # not LATERAL's
    lateral = int((table["view_raw"] == "LATERAL").sum())
    assert direction.diagnostics["n"] == len(table) - lateral
    assert direction.diagnostics["dropped"] == [
        {"column": "view_raw", "rows": lateral, "reason": "of other levels of view_raw (LATERAL)"}]


def test_one_level_against_the_rest_fits_on_every_row():
    w, table = _views()
    direction = Study(w, table).direction("view_raw=LATERAL")
    lateral = (table["view_raw"] == "LATERAL").to_numpy()
    assert direction.ends == ("not LATERAL", "LATERAL") and direction.diagnostics["n"] == len(table)
    assert direction.vector[1] == pytest.approx(1.0, abs=0.03)
    assert direction.vector[0] == pytest.approx(-w[~lateral, 0].mean() + w[lateral, 0].mean(), abs=1e-4)


def test_the_dashboard_offers_a_categorical_columns_contrasts_in_words():
    """The attribute dropdown is [(study.label(a), a) for a in study.attributes]."""
    w, table = _views()
    study = Study(w, table)
    options = dict((study.label(a), a) for a in study.attributes)
    assert options["view_raw: PA vs AP"] == "view_raw=PA:AP"
    assert options["view_raw: LATERAL vs the rest"] == "view_raw=LATERAL"
    assert study.levels("view_raw=PA:AP") == {0.0: "AP", 1.0: "PA"} and study.two_level("view_raw=PA")
    assert study.format("view_raw=PA", 0.0) == "not PA"
    words = {"view_raw": AttributeInfo("view_raw", "view", levels={"pa": "PA (standing)", "ap": "AP (supine)"}),
             "age": AttributeInfo("age", "age", "years")}
    in_words = Study(w, table, dictionary=words)
    assert in_words.attributes[:2] == ["view_raw=PA:AP", "view_raw=LATERAL:AP"]
    assert in_words.label("view_raw=PA:AP") == "view: PA (standing) vs AP (supine)"
    assert in_words.ends("view_raw=LATERAL") == ("not LATERAL", "LATERAL")
    assert in_words.info("view_raw=PA").name == "view: PA (standing) vs the rest"
    chosen = Study(w, table, attributes=["view_raw", "age"])
    assert [a for a in chosen.attributes if a.startswith("view_raw")] == [
        "view_raw=PA:AP", "view_raw=LATERAL:AP", "view_raw=AP", "view_raw=PA", "view_raw=LATERAL"]
    assert Study(w, table, attributes=["view_raw=PA"]).attributes == ["view_raw=PA"]


def test_a_contrast_that_cannot_be_says_why():
    w, table = _views()
    study = Study(w, table)
    with pytest.raises(ValueError, match=r"column 'view_raw' has no level 'LAT'; its levels are AP \(\d+ rows\), "
                                         r"PA \(\d+\), LATERAL \(\d+\)"):
        study.direction("view_raw=PA:LAT")
    with pytest.raises(ValueError, match=r"'view_raw' is not an attribute: it has 3 levels .* \(view_raw=PA\) or "
                                         r"against a reference level \(view_raw=PA:AP\)"):
        study.direction("view_raw")
    with pytest.raises(ValueError, match="'split' is not an attribute: it is bookkeeping"):
        study.direction("split=train")
    with pytest.raises(ValueError, match="'view_raw=PA' cannot be held: 'view_raw' is the attribute's own column"):
        study.direction("view_raw=LATERAL", confounders=["view_raw=PA"])
    with pytest.raises(ValueError, match="data dictionary does not describe it"):
        Study(w, table, dictionary={"age": AttributeInfo("age")}).direction("view_raw=PA")


def test_a_categorical_column_is_held_by_indicators_or_matched():
    w, table = _views()
    table.loc[:4, "view_raw"] = None
    study = Study(w, table)
    assert list(study.categorical()) == ["view_raw"]  # held by name, besides the attributes
    direction = study.direction("age", confounders=["view_raw"])
    indicators = np.column_stack([(table["view_raw"] == v).to_numpy(float) for v in ("PA", "LATERAL")])
    known = table["view_raw"].notna().to_numpy()
    expected = fit_direction("mean_shift", w[known], table["age"][known].to_numpy(), indicators[known])
    np.testing.assert_allclose(direction.vector, expected.vector, rtol=1e-5)
    assert direction.confounders == ("view_raw",)
    assert direction.diagnostics["dropped"] == [
        {"column": "view_raw", "rows": 5, "reason": "without a value of view_raw"}]
    lateral = int(np.flatnonzero(table["view_raw"] == "LATERAL")[0])
    matched = study.direction("age", match=["view_raw"], row=lateral)
    assert matched.diagnostics["matched"] == {"view_raw": "LATERAL"}
    assert matched.diagnostics["n"] == int((table["view_raw"] == "LATERAL").sum())


def test_a_direction_fitted_on_a_subset_says_so_and_what_it_left_out():
    w, table = _views()
    table.loc[[0, 1, 2], "age"] = np.nan
    table.loc[[0, 1, 2, 3], "split"] = ["train", "train", "test", "train"]
    study = Study(w, table)
    train = (table["split"] == "train").to_numpy()
    direction = study.direction("view_raw=PA", confounders=["age"], rows="split=train")
    assert direction.diagnostics["fitted_on"] == "split = train"
    assert direction.diagnostics["dropped"] == [{"column": "age", "rows": 2, "reason": "without a value of age"}]
    keep = train & table["age"].notna().to_numpy()
    expected = fit_direction("mean_shift", w[keep], (table["view_raw"][keep] == "PA").to_numpy(float),
                             table[["age"]][keep].to_numpy())
    np.testing.assert_allclose(direction.vector, expected.vector, rtol=1e-5)
    by_mask = study.direction("view_raw=PA", confounders=["age"], rows=train)
    np.testing.assert_allclose(by_mask.vector, direction.vector)
    assert by_mask.diagnostics["fitted_on"] == f"{train.sum()} of {len(train)} rows"
    assert study.direction("view_raw=PA", confounders=["age"]).diagnostics["n"] > direction.diagnostics["n"]
    with pytest.raises(ValueError, match=r"column 'split' has no value 'trian'; its values are train \(\d+ rows\)"):
        study.direction("age", rows="split=trian")
    with pytest.raises(ValueError, match=r"among the \d+ exams with 2 of 300 rows: age: only 2 rows have a value"):
        study.direction("age", rows=[10, 11])
    with pytest.raises(ValueError, match=r"a mask of rows needs one entry per cohort row \(300\), not shape \(3,\)"):
        study.direction("age", rows=np.ones(3, bool))


def test_every_direction_records_its_two_ends_in_words():
    w, table = _cohort()
    study = Study(w, table)
    assert study.direction("view").ends == ("AP", "PA")
    assert study.direction("lab", log=True).ends == ("lower lab", "higher lab")


def test_the_dashboards_renderer_draws_a_film_for_a_contrast_and_holds_a_categorical_column():
    import torch

    from seegaan_explore.model import SeeGaan, preset_config
    from seegaan_explore.ui.renderer import Renderer

    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    model.precision = "fp32"
    _, table = _views(n=60)
    renderer = Renderer(model, model.sample_w(60, seed=1).numpy(), table)
    result = renderer.render({"attribute": "view_raw=pa:ap", "patient": 0, "n_frames": 3, "start": -1, "stop": 1,
                              "confounders": ["age"]})
    assert result["error"] is None and len(result["frames"]) == 3
    assert (result["attribute"], result["label"]) == ("view_raw=PA:AP", "view_raw: PA vs AP")
    held = renderer.render({"attribute": "age", "patient": 3, "n_frames": 3, "confounders": ["view_raw"]})
    assert held["error"] is None and len(held["frames"]) == 3


def test_an_estimate_beyond_what_the_cohort_shows_says_so_in_its_units():
    """An upload's estimated NT-proBNP of 1.2 pg/mL is no patient's: the verdict must say where it lies."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"nt_probnp": np.exp(rng.uniform(np.log(50), np.log(30000), 40))})
    words = {"nt_probnp": AttributeInfo("nt_probnp", "NT-proBNP", "pg/mL", log=True)}
    study = Study(rng.normal(size=(40, 8)).astype(np.float32), table, dictionary=words)
    low, high = study.bounds("nt_probnp", True)
    assert study.estimate_in_words("nt_probnp", True, np.log(900.0)) == "900 pg/mL"
    below = study.estimate_in_words("nt_probnp", True, np.log(1.2))
    assert below.startswith("1.20 pg/mL, below what the cohort shows (")
    assert study.on_scale_in_words("nt_probnp", True, low) in below and study.on_scale_in_words(
        "nt_probnp", True, high) in below
    assert "above what the cohort shows" in study.estimate_in_words("nt_probnp", True, high + 1.0)


def test_a_cut_range_names_the_plausible_range_and_never_quotes_an_impossible_value():
    """With the log scale off, 2 SDs below a low NT-proBNP is a negative value: no pg/mL to show."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"nt": np.exp(rng.uniform(np.log(50), np.log(30000), 40)), "sex": rng.choice(["f", "m"], 40)})
    words = {"nt": AttributeInfo("nt", "NT-proBNP", "pg/mL", low=5.0, high=35000.0, decimals=0),
             "sex": AttributeInfo("sex", levels={"f": "female", "m": "male"})}
    study = Study(rng.normal(size=(40, 8)).astype(np.float32), table, dictionary=words)
    low, high = study.bounds("nt", False)
    shows = f"what the cohort shows ({study.format('nt', low)} to {study.format('nt', high)})"
    first, last, note = study.within_range("nt", False, -2660.0, 1000.0)
    assert (first, last) == (low, 1000.0)  # cut where the cohort ends, above the plausible 5 pg/mL: named so
    assert note.startswith(f"The requested range was cut: it starts below {shows}.")
    assert "2,660" not in note and "-" not in note
    _, _, note = study.within_range("nt", False, 10.0, 40000.0)  # below the cohort, above the plausible range
    assert f"10 pg/mL lies below {shows}" in note and f"it ends above {shows}" in note and "40,000" not in note
    first, last, note = study.within_range("nt", False, -500.0, -100.0, start=1000.0)
    assert (first, last) == (low, 1000.0)  # between the patient and the lowest value the cohort shows
    assert note.startswith(f"The requested range lies below {shows}. The film runs from the patient's 1,000 pg/mL")
    assert "-" not in note
    # where the plausible range is narrower than the cohort's, the film is cut at its end, and says so
    narrow = Study(rng.normal(size=(40, 8)).astype(np.float32), table, dictionary={
        "nt": AttributeInfo("nt", "NT-proBNP", "pg/mL", low=100.0, high=20000.0, decimals=0)})
    _, _, note = narrow.within_range("nt", False, -2660.0, 25000.0)
    assert note.startswith("The requested range was cut: it starts below 100 pg/mL, the lowest plausible value; "
                           "it ends above 20,000 pg/mL, the highest plausible value.")
    # two levels: the share of the way, and nothing beyond a level
    assert [study.format("sex", v) for v in (0.003, 0.4, 1.2)] == ["female", "40% towards male", "male"]
    assert study.within_range("sex", False, -1.0, 0.5)[2] == ("The requested range was cut: nothing lies beyond "
                                                             "female. The film runs from female to 50% towards male.")


def test_a_readers_gain_and_what_goes_with_the_target_are_measured_on_the_cohorts_exams():
    """On the bundled demo: the CNN reads ln NT-proBNP's differences between exams at about its R²
    (the image shows the disease, not the lab noise), the oracle reads the cardiothoracic ratio's
    nearly whole; across the exams the ratio goes with NT-proBNP and sex does not."""
    from seegaan_explore.demo import load_demo
    from seegaan_explore.explore.study import Study

    demo = load_demo()
    study = Study(demo.latents, demo.table, model=demo.model, cnn=demo.cnn, oracle=demo.oracle, images=demo.images)
    cnn_gain, ctr_gain = study.reader_gain("nt_probnp_pg_ml", True), study.reader_gain("ctr", False)
    assert 0.4 < cnn_gain < 0.9 and 0.85 < ctr_gain < 1.15
    assert study.reader_gain("nt_probnp_pg_ml", True) is cnn_gain  # measured once
    shares = study.cohort_shares("nt_probnp_pg_ml", True, ["ctr", "sex", "age"], held=["age", "view"])
    assert shares["age"] == 0.0 and shares["ctr"] > 0.5 and abs(shares["sex"]) < 0.1
    assert study.cohort_shares("nt_probnp_pg_ml", True, ["age"])["age"] > 0.2  # unheld, age goes with it
    # a film scored from Python is read against that gain, as the dashboard reads it; gain=1: the whole change
    from seegaan_explore.explore.report import score_film
    from seegaan_explore.explore.traversal import traverse

    film = traverse(demo.model, demo.latents[3], study.direction("nt_probnp_pg_ml", log=True), np.linspace(-2, 2, 5))
    measured, by = study.measured("nt_probnp_pg_ml", True, cnn_predictions=study.cnn_predict(
        torch.from_numpy(film.frames)[:, None]))
    as_shown = score_film(film, study=study, measured=measured, measured_by=by)[0]
    whole = score_film(film, study=study, measured=measured, measured_by=by, gain=1.0)[0]
    assert by == "the CNN" and as_shown["reader_gain"] == cnn_gain
    assert as_shown["achieved_over_intended"] == pytest.approx(whole["achieved_over_intended"] / cnn_gain)


def test_without_a_dictionary_a_cut_range_never_quotes_a_negative_value_the_table_never_holds():
    """A CRP the table never records below 0: 2 SDs below a low one is no value to quote."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"crp_val": np.round(rng.gamma(0.8, 40, 60)), "change": rng.normal(0, 5, 60)})
    study = Study(rng.normal(size=(60, 8)).astype(np.float32), table)
    first, last, note = study.within_range("crp_val", False, -174.0, 20.0)
    assert first == study.bounds("crp_val", False)[0] and last == 20.0
    assert note.startswith("The requested range was cut: it starts below 0 (the table holds no negative value).")
    assert "174" not in note
    _, _, note = study.within_range("change", False, -40.0, 0.0)  # a column with negative values: quoted
    assert "-40.0 lies below what the cohort shows" in note


def test_the_encoded_cohort_itself_may_be_passed_and_a_broken_latent_is_named():
    """What ``encode_cohort`` returns is accepted as it is (``Study.of`` passes the model on, so that a
    film can be calibrated); a latent that is NaN is refused by its image's id, before any fit."""
    from seegaan_explore.explore.calibration import calibrate_for

    w, table = _cohort(40)
    encoded = SimpleNamespace(ids=list(table["image_id"]), latents=w, table=table)
    model = object()
    study = Study.of(encoded, model=model)
    assert study.model is model and study.latents.shape == (40, 4)
    np.testing.assert_array_equal(Study(encoded, table).latents, w)
    without = Study.of(encoded)
    with pytest.raises(ValueError, match=r"build the Study with the model"):
        calibrate_for(without, without.direction("age"), "age", False, 3)
    broken = w.copy()
    broken[[4, 7]] = np.nan
    with pytest.raises(ValueError, match=r"2 latent\(s\) hold NaN or infinity \('im4', 'im7'\)"):
        Study(SimpleNamespace(ids=encoded.ids, latents=broken), table)
    with pytest.raises(ValueError, match=r"\(row 4, row 7\)"):
        Study(broken, table)


def test_a_log_scale_direction_is_named_so_and_not_compared_with_itself():
    w, table = _cohort()
    study = Study(w, table)
    lab = study.direction("lab", log=True)
    assert lab.attribute == "ln(lab)" and study.direction("lab").attribute == "lab"
    cosines = study.cosines(lab)
    assert "lab" not in cosines and "age" in cosines
