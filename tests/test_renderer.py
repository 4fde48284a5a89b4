"""The renderer turns plain arguments into what the screen shows, caches it, and reports errors as text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from ui_cohort import brightness, small_setup

from seegaan_explore.data.images import to_uint8
from seegaan_explore.data.readers import read_image
from seegaan_explore.explore import quality
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.explore.latent_shift import latent_shift
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.phantoms import render, sample_individual
from seegaan_explore.ui import renderer as renderer_module
from seegaan_explore.ui.renderer import CNN_PREDICTION, COHORT_MEDIAN, LATENT_SHIFT, Renderer
from seegaan_explore.ui.words import plain_words


@pytest.fixture(scope="module")
def setup():
    return small_setup()


@pytest.fixture
def renderer(setup):
    model, latents, table, cnn, oracle, images = setup
    return Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images)


def _cnn_on(cnn, images):
    x = torch.from_numpy(np.asarray(images, np.float32))[:, None]
    return cnn.predict(F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)).numpy()


def test_attributes_are_the_numeric_and_two_valued_columns_plus_the_cnn(renderer, setup):
    cnn, images = setup[3], setup[5]
    expected = {"age", "sex", "view", "device", "nt_probnp_pg_ml", "brightness", CNN_PREDICTION}
    assert expected <= set(renderer.study.attributes)
    assert not {"image_id", "patient_id", "seed", "index"} & set(renderer.study.attributes)
    assert renderer.study.encodings["sex"] == {"f": 0, "m": 1}
    assert set(np.unique(renderer.study.values("sex"))) == {0.0, 1.0}
    np.testing.assert_allclose(renderer.study.values(CNN_PREDICTION), _cnn_on(cnn, images), rtol=1e-5, atol=1e-6)
    assert renderer.study.default_attribute == "nt_probnp_pg_ml"  # what the CNN was trained on


def test_result_holds_frames_predictions_attributions_and_scores(renderer, setup):
    model, latents, table, cnn = setup[:4]
    result = renderer.render({"attribute": "age", "start": -1.5, "stop": 1.5, "n_frames": 5, "patient": 3})
    assert result["error"] is None, result["error"]
    direction = fit_direction("mean_shift", latents, table["age"].to_numpy(float), attribute="age")
    np.testing.assert_allclose(result["direction"].vector, direction.vector, rtol=1e-5)
    expected = traverse(model, latents[3], direction, np.linspace(-1.5, 1.5, 5), in_sd=True)
    assert result["frames"].dtype == np.uint8 and result["frames"].shape == (5, 32, 32)
    assert np.abs(result["frames"].astype(int) - to_uint8(expected.frames)).max() <= 1
    np.testing.assert_allclose(result["targets"], table["age"][3] + np.linspace(-1.5, 1.5, 5) * direction.scale)
    assert result["patient_value"] == pytest.approx(table["age"][3])
    np.testing.assert_allclose(result["cnn_predictions"], _cnn_on(cnn, expected.frames), rtol=1e-4, atol=1e-5)
    assert set(result["cosines"]) == set(renderer.study.attributes) - {"age", CNN_PREDICTION}  # not computed yet
    renderer.study.cohort_predictions()
    assert CNN_PREDICTION in renderer.render({"attribute": "age", "n_frames": 5, "method": None})["cosines"]
    assert all(-1 <= c <= 1 for c in result["cosines"].values())
    assert result["attribution_original"].shape == result["attribution_frame"].shape == (32, 32)
    assert result["frame"] == 4  # -1: the last frame
    assert set(result["agreement"]) == {"spearman", "top_overlap"}
    assert result["quality"]["proximity"] == pytest.approx(quality.proximity(expected.differences), abs=1e-4)
    assert result["quality"]["reconstruction_psnr_db"] > 0
    assert "nothing measures age" in result["quality"]["not_measured"]
    assert result["timings"]["total"] >= result["timings"]["decoding the frames"] > 0


def test_target_values_on_a_log_scale(renderer, setup):
    table = setup[2]
    value = table["nt_probnp_pg_ml"][0]
    result = renderer.render({"attribute": "nt_probnp_pg_ml", "log": True, "units": "value", "clip": False, "start": 50,
                              "stop": 5000, "n_frames": 3, "method": None})
    assert result["error"] is None, result["error"]
    np.testing.assert_allclose(result["targets"], [50, 500, 5000], rtol=1e-9)
    np.testing.assert_allclose(result["amounts"], np.log([50, 500, 5000]) - np.log(value), rtol=1e-9)
    assert result["direction"].scale == pytest.approx(np.log(table["nt_probnp_pg_ml"]).std(ddof=0))
    # the CNN was trained on ln NT-proBNP, so it measures the target: scored on the same (log) scale
    assert result["quality"]["measured_by"] == "the CNN"
    np.testing.assert_allclose(result["quality"]["measured"], result["cnn_predictions"])
    assert result["attribution_original"] is None and result["agreement"] is None


def test_the_oracle_measures_the_target_and_what_leaks(renderer, setup):
    model, latents = setup[:2]
    result = renderer.render({"attribute": "brightness", "n_frames": 4, "method": None, "clip": False})
    assert result["error"] is None, result["error"]
    t = traverse(model, latents[0], result["direction"], np.linspace(-2, 2, 4), in_sd=True)
    measured = brightness(t.frames)
    np.testing.assert_allclose(result["oracle_predictions"]["brightness"], measured["brightness"], atol=1e-5)
    q = result["quality"]
    assert q["measured_by"] == "the oracle"
    expected = quality.assess(t.amounts, measured["brightness"], intended=result["targets"],
                              others={"upper_brightness": measured["upper_brightness"]})
    assert q["monotonicity"] == pytest.approx(expected["monotonicity"])
    assert q["achieved_over_intended"] == pytest.approx(expected["achieved_over_intended"], rel=1e-3, abs=1e-6)
    assert set(q["leakage"]) == {"upper_brightness"}


def test_latent_shift_follows_this_patients_cnn_gradient_and_reaches_the_intended_prediction(renderer, setup):
    model, latents, table, cnn = setup[:4]
    args = {"attribute": "nt_probnp_pg_ml", "log": True, "estimator": LATENT_SHIFT, "start": -0.005, "stop": 0.005,
            "n_frames": 5, "patient": 2, "method": None}
    result = renderer.render(args)
    assert result["error"] is None, result["error"]
    scale = np.log(table["nt_probnp_pg_ml"]).std(ddof=0)
    expected = latent_shift(model, cnn, latents[2], scale=scale)
    np.testing.assert_allclose(result["direction"].vector, expected.vector, rtol=1e-4, atol=1e-7)
    other = renderer.render({**args, "patient": 3})["direction"]
    assert abs(float(other.unit_vector @ result["direction"].unit_vector)) < 0.999  # per patient, not per cohort
    # one unit of the direction raises the CNN's prediction (ln NT-proBNP) by one unit, to first order
    # (small steps: this untrained CNN's gradient is weak, so a unit is a long way in w)
    q = result["quality"]
    assert q["measured_by"] == "the CNN" and q["monotonicity"] == pytest.approx(1.0)
    assert q["achieved_over_intended"] == pytest.approx(1.0, abs=0.15)
    assert any("Latent Shift" in line and "this patient" in line for line in plain_words(result))


def test_a_latent_shift_film_stays_within_what_the_cohort_shows(renderer, setup):
    """Its steps promise what the CNN reads, in the target's units: 6 SDs down would promise an
    NT-proBNP no patient has, so the film is cut at the cohort's end and says so, as any film is."""
    table = setup[2]
    result = renderer.render({"attribute": "nt_probnp_pg_ml", "log": True, "estimator": LATENT_SHIFT, "start": -6,
                              "stop": 0, "n_frames": 5, "patient": 2, "method": None})
    assert result["error"] is None, result["error"]
    assert result["targets"].min() >= table["nt_probnp_pg_ml"].min() * (1 - 1e-9)
    assert "cut" in result["range_note"]


def test_changing_only_the_frame_reuses_the_traversal_and_attributes_one_image(renderer, monkeypatch):
    calls = []
    real = renderer_module.attribute
    monkeypatch.setattr(renderer_module, "attribute", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    first = renderer.render({"attribute": "bmi", "frame": 2})
    assert first["error"] is None and not first["cached"]["traversal"] and len(calls) == 2
    second = renderer.render({"attribute": "bmi", "frame": 6})
    assert second["cached"]["traversal"] and len(calls) == 3  # the new frame only
    assert second["traversal"] is first["traversal"]
    assert second["attribution_original"] is first["attribution_original"]
    assert not np.array_equal(second["attribution_frame"], first["attribution_frame"])
    assert "decoding the frames" not in second["timings"]
    renderer.render({"attribute": "bmi", "frame": 6})
    assert len(calls) == 3
    renderer.render({"attribute": "bmi", "frame": 6, "method": "saliency"})
    assert calls[-2:] == ["saliency", "saliency"]


def test_matching_fits_the_direction_on_the_exams_that_share_the_patients_value(renderer, setup):
    latents, table = setup[1], setup[2]
    sex, age, bmi = renderer.study.values("sex"), table["age"].to_numpy(float), table[["bmi"]].to_numpy(float)
    args = {"attribute": "age", "confounders": ("bmi",), "match": ("sex",), "n_frames": 5, "method": None}
    directions = {}
    for patient in (int(np.flatnonzero(sex == 0)[0]), int(np.flatnonzero(sex == 1)[0])):
        result = renderer.render({**args, "patient": patient})
        assert result["error"] is None, result["error"]
        same = sex == sex[patient]
        expected = fit_direction("mean_shift", latents[same], age[same], bmi[same])
        np.testing.assert_allclose(result["direction"].vector, expected.vector, rtol=1e-4, atol=1e-6)
        assert result["direction"].scale == pytest.approx(age.std())  # one SD is still the whole cohort's
        directions[patient] = result["direction"].vector
        level = table["sex"][patient]  # as the table writes it
        words = " ".join(plain_words(result))
        assert f"fitted on the {same.sum()} exams with sex {level}, as this patient's" in words
        assert "Among these exams, " in words and "not explained by bmi" in words  # the group's own variation
    first, second = directions.values()
    assert not np.allclose(first, second, rtol=0.05)  # each patient gets its own group's direction
    pooled = renderer.study.direction("age", confounders=("bmi", "sex")).vector
    assert not np.allclose(pooled, first, rtol=0.05) and not np.allclose(pooled, second, rtol=0.05)


def test_a_spline_mean_shift_takes_its_slope_over_this_traversals_range(renderer, setup):
    latents, table = setup[1], setup[2]
    age = table["age"].to_numpy(float)
    args = {"attribute": "age", "estimator": "spline_mean_shift", "n_frames": 5, "method": None}
    young, old = int(np.argmin(age)), int(np.argmax(age))
    vectors = []
    for patient in (young, old):
        result = renderer.render({**args, "patient": patient, "start": -1.0, "stop": 1.5, "clip": False})
        assert result["error"] is None, result["error"]
        at = (age[patient] - age.std(), age[patient] + 1.5 * age.std())  # steps in SDs, from the patient's age
        expected = fit_direction("spline_mean_shift", latents, age, at=at)
        np.testing.assert_allclose(result["direction"].vector, expected.vector, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result["targets"][[0, -1]], at, rtol=1e-6)
        words = " ".join(plain_words(result))
        assert f"between age {at[0]:.3g} and {at[1]:.3g}, this traversal's range" in words
        psnr = result["cohort_psnr"]  # the patient's PSNR beside the cohort's, the figures the verdict weighs
        assert f"at {result['quality']['reconstruction_psnr_db']:.1f} dB" in words
        assert f"the cohort's median {psnr.median:.1f} dB, its worst twentieth below {psnr.low:.1f} dB" in words
        in_range = ((age >= at[0]) & (age <= at[1])).sum()
        assert f"{in_range} of the {len(age)} exams lie in that range" in words
        vectors.append(result["direction"].vector)
    assert not np.allclose(*vectors, rtol=0.05)  # a young and an old patient: each its own slope
    in_years = renderer.render({**args, "patient": young, "units": "value", "start": 40, "stop": 70})
    assert in_years["direction"].diagnostics["at"] == (40.0, 70.0)
    upload = renderer.add_image(np.asarray(setup[5][young], np.float32), name="scan.png")
    estimated = renderer.render({**args, "patient": upload, "start": -1.0, "stop": 1.0})
    value = estimated["patient_value"]  # no recorded age: the slope is taken around the estimated one
    assert estimated["direction"].diagnostics["at"] == pytest.approx((value - age.std(), value + age.std()))
    assert "a spline needs a continuous attribute" in renderer.render({**args, "attribute": "sex"})["error"]


def test_matching_errors_name_the_group_and_the_patient(renderer):
    upload = renderer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="scan.png")
    result = renderer.render({"attribute": "age", "match": ("sex",), "patient": upload})
    assert "matching on sex needs a cohort patient's values" in result["error"]
    view = renderer.study.values("view")
    ap = int(np.flatnonzero(view == renderer.study.encodings["view"]["ap"])[0])  # 5 of the 24 exams are AP
    result = renderer.render({"attribute": "age", "match": ("view",), "patient": ap})
    assert f"among the {(view == view[ap]).sum()} exams with view = AP" in result["error"]
    assert "at least 10 are needed" in result["error"]
    assert "both by matching and by a linear term" in renderer.render(
        {"attribute": "age", "confounders": ("sex",), "match": ("sex",)})["error"]
    assert ("only a mean shift can be fitted on the exams that share this patient's sex; the pca direction cannot "
            "use it") in renderer.render({"attribute": "age", "estimator": "pca", "match": ("sex",)})["error"]


@pytest.mark.parametrize("args, words", [
    ({"attribute": "heart_size"}, "unknown attribute 'heart_size'"),
    ({"attribute": "age", "confounders": ("sex",), "estimator": "pca"}, "cannot condition on confounders"),
    ({"attribute": "age", "frame": 9}, "frame 9 is outside the 9 frames"),
    ({"attribute": "age", "n_frames": 1}, "n_frames must be between 2 and 64, got 1"),
    ({"attribute": "age", "patient": 99}, "patient 99 is neither a row of the cohort (0..23)"),
    ({"attribute": "age", "confounders": ("age",)}, "'age' cannot be held: it is the attribute itself"),
    ({"attribute": "age", "start": 1, "stop": 1}, "the film would start and end at +1 cohort SD: choose another end"),
    ({"attribute": "age", "method": "lime"}, "unknown attribution method 'lime'"),
    ({"attribute": "age", "colour": "red"}, "unknown argument(s) ['colour']"),
    ({"attribute": "age", "estimator": "latent_shift"},
     "Latent Shift moves what the CNN predicts: pick nt_probnp_pg_ml on the log scale or nt_probnp_pg_ml as the CNN "
     "reads it, not age"),
    ({"attribute": "sex", "estimator": "logistic", "log": True},
     "log scale needs positive values, but the smallest is 0"),
    ({"attribute": "age", "units": "value", "log": True, "start": -1, "stop": 80}, "smallest is -1"),
])
def test_errors_are_messages_naming_the_value(renderer, args, words):
    result = renderer.render(args)
    assert words in result["error"]
    assert not result["cancelled"]


def test_an_unexpected_failure_is_reported_with_its_traceback(setup, caplog):
    model, latents, table, _, _, images = setup

    class BrokenOracle:
        def predict(self, images):
            raise RuntimeError("oracle weights missing")

    renderer = Renderer(model, latents, table, oracle=BrokenOracle(), images=images)
    result = renderer.render({"attribute": "age", "calibrate": False})
    assert result["error"] == ("predicting on the frames: it failed unexpectedly (oracle weights missing); the "
                               "server's log has the details")  # a sentence: the exception's type is for the log
    assert "oracle weights missing" in result["traceback"]
    assert "RuntimeError: oracle weights missing" in caplog.text
    # calibrated (the default), the oracle is first asked while calibrating on other patients' films
    assert renderer.render({"attribute": "age"})["error"].startswith("calibrating on other patients: it failed "
                                                                     "unexpectedly")


def test_a_newer_request_cancels_between_stages(renderer):
    polls = []
    result = renderer.render({"attribute": "ctr", "n_frames": 5}, cancelled=lambda: polls.append(1) or len(polls) > 3)
    assert result["cancelled"] and result["error"] is None and "frames" not in result
    stages = []
    done = renderer.render({"attribute": "ctr", "n_frames": 5}, progress=stages.append)
    assert done["error"] is None
    assert stages[:4] == ["fitting the direction", "calibrating on other patients",
                          "comparing with the other attributes", "building the traversal"]
    assert stages[-1] == "done"


def test_an_uploaded_image_is_encoded_and_its_value_estimated(renderer, setup, tmp_path):
    model = setup[0]
    phantom = render(sample_individual(seed=5, index=3), 64)
    Image.fromarray(to_uint8(phantom.image)).save(tmp_path / "mine.png")
    key = renderer.add_image(read_image(tmp_path / "mine.png"), "mine.png")
    assert key == "upload:mine.png"
    result = renderer.render({"attribute": "age", "patient": key, "n_frames": 3, "clip": False})
    assert result["error"] is None, result["error"]
    # the tiny model's latents tell age too poorly for a trusted reader: the film starts at the cohort's median
    assert result["patient_value_source"] == COHORT_MEDIAN
    said = renderer.study.estimate_in_words("age", False, result["patient_value"])
    assert said == renderer.study.format("age", float(np.nanmedian(renderer.study.values("age"))))
    assert (f"the patient's age is not recorded; the cohort's median ({said}) stands in for it, as nothing reads "
            "it reliably from an image" in result["verdict"].reasons)
    assert result["original"].shape == (32, 32)
    w = model.encode(torch.from_numpy(renderer._original(key))[None, None])[0].numpy()
    np.testing.assert_allclose(result["traversal"].latents[1] - w, 0, atol=1e-5)  # the middle frame: no step
    by_cnn = renderer.render({"attribute": CNN_PREDICTION, "patient": key, "n_frames": 3, "method": None,
                              "clip": False})
    assert by_cnn["patient_value_source"] == "the CNN"
    assert by_cnn["patient_value"] == pytest.approx(by_cnn["cnn_original"], rel=1e-5)


def test_without_cnn_oracle_or_images(setup):
    model, latents, table = setup[:3]
    r = Renderer(model, latents, table)
    assert CNN_PREDICTION not in r.study.attributes
    result = r.render({"attribute": "age"})
    assert result["error"] is None
    assert result["cnn_predictions"] is None and result["attribution_frame"] is None and result["original"] is None
    assert "reconstruction_psnr_db" not in result["quality"] and "proximity" in result["quality"]
    # no images: the thumbnail is the patient's reconstruction
    assert np.abs(r.thumbnail(0).astype(int) - result["reconstruction"]).max() <= 1


def test_constructor_names_what_does_not_fit(setup):
    model, latents, table, _, _, images = setup
    with pytest.raises(ValueError, match="the table has 23 rows but there are 24 latents"):
        Renderer(model, latents, table.iloc[:23])
    with pytest.raises(ValueError, match=r"latents of shape \(24, 7\)"):
        Renderer(model, latents[:, :7], table)
    with pytest.raises(ValueError, match=r"images of shape \(24, 16, 16\)"):
        Renderer(model, latents, table, images=images[:, :16, :16])
    with pytest.raises(ValueError, match=r"images reach 255, where the model's are in \[-1, 1\]"):
        Renderer(model, latents, table, images=np.round((images + 1) * 127.5))  # 8-bit pixels, unscaled
    with pytest.raises(ValueError, match=r"attribute 'image_id' is not a numeric, two-valued or categorical column"):
        Renderer(model, latents, table, attributes=["age", "image_id"])


def test_plain_words_explain_the_direction_and_the_scores(renderer):
    words = plain_words(renderer.render({"attribute": "brightness", "confounders": ("age",)}))
    text = " ".join(words)
    assert "not explained by age" in text
    assert "Measured by the oracle, brightness" in text
    assert "the direction lies closest to" in text
    assert "rank correlation" in text
    predictive = " ".join(plain_words(renderer.render({"attribute": "age", "estimator": "ridge", "method": None})))
    assert "diagnostic" in predictive and "cross-validated R²" in predictive
    assert plain_words({"error": "bad"}) == []


def test_embedding_is_the_latents_on_their_principal_axes(renderer, setup):
    latents = setup[1]
    xy, share = renderer.study.embedding()
    assert xy.shape == (len(latents), 2) and share[0] >= share[1] > 0
    centred = latents - latents.mean(0)
    assert np.var(xy[:, 0]) == pytest.approx(np.linalg.svd(centred, compute_uv=False)[0] ** 2 / len(latents), rel=1e-3)


def test_the_film_can_come_first_and_the_attribution_after(renderer):
    args = {"attribute": "age", "patient": 2, "method": "gradcam", "frame": 3}
    film = renderer.render(args, attribution=False)
    assert film["error"] is None and film["attribution_original"] is None and film["agreement"] is None
    attributed = renderer.attribute(film)
    whole = renderer.render(args)
    np.testing.assert_array_equal(attributed["attribution_frame"], whole["attribution_frame"])
    np.testing.assert_array_equal(attributed["frames"], film["frames"])
    assert attributed["agreement"] == whole["agreement"]
    assert renderer.attribute(film, cancelled=lambda: True)["cancelled"]


def test_a_range_wholly_beyond_the_cohort_runs_from_the_patient_to_the_nearer_end_or_is_refused(renderer):
    """50,000-100,000 pg/mL asked where the cohort ends lower: never an unclipped film without a word."""
    ages = renderer.study.values("age")
    oldest, youngest = int(np.nanargmax(ages)), int(np.nanargmin(ages))
    beyond = {"attribute": "age", "units": "value", "start": float(np.nanmax(ages)) + 10,
              "stop": float(np.nanmax(ages)) + 20, "method": None}
    result = renderer.render({**beyond, "patient": youngest})
    assert result["error"] is None
    assert result["targets"][0] == pytest.approx(ages[youngest])
    assert result["targets"][-1] == pytest.approx(np.nanmax(ages))
    assert "lies above what the cohort shows" in result["range_note"]
    assert "The film runs from the patient's" in result["range_note"]
    refused = renderer.render({**beyond, "patient": oldest})  # the patient is at the end already
    assert "there is no film to draw" in refused["error"]


def test_a_film_stays_within_what_the_cohort_shows_and_says_where_it_was_cut(renderer):
    ages = renderer.study.values("age")
    oldest = int(np.nanargmax(ages))
    result = renderer.render({"attribute": "age", "patient": oldest, "start": -1.0, "stop": 2.0, "method": None})
    assert result["targets"][-1] == pytest.approx(np.nanmax(ages))  # not beyond the oldest exam
    assert result["targets"][0] < ages[oldest] and len(set(np.round(result["targets"], 9))) == 9
    assert "lies above what the cohort shows" in result["range_note"]
    inside = renderer.render({"attribute": "age", "patient": oldest, "start": -1.0, "stop": -0.5, "method": None})
    assert inside["range_note"] is None
    free = renderer.render({"attribute": "age", "patient": oldest, "start": -1.0, "stop": 2.0, "method": None,
                            "clip": False})
    assert free["targets"][-1] > np.nanmax(ages)
