"""The verdict says in plain words when a film can be trusted, read with care, or not interpreted."""

from __future__ import annotations

import numpy as np
import pytest

from seegaan_explore.explore.verdict import CARE, STOP, TRUST, judge

GOOD = {"measured_by": "the oracle", "monotonicity": 0.98, "achieved_over_intended": 0.9,
        "reconstruction_psnr_db": 29.0}


def test_a_film_that_does_what_it_promises_can_be_trusted():
    verdict = judge(GOOD, target="NT-proBNP", cohort_psnr=(29.0, 26.0),
                    leakage=[("age", 0.1, "+1 years across the film")])
    assert verdict.level == TRUST and verdict.headline == "The film can be trusted."


@pytest.mark.parametrize("change, level, words", [
    ({"monotonicity": -1.0, "achieved_over_intended": -0.8}, STOP, "view moved the wrong way"),
    ({"achieved_over_intended": 0.1}, CARE, "barely changed: the frames reach 10%"),
    ({"monotonicity": 0.3}, CARE, "does not rise steadily"),
    ({"measured_by": None}, CARE, "nothing measured view"),
    ({"reconstruction_psnr_db": 14.0}, STOP, "the model does not represent this image: its reconstruction "
                                             "reaches 14 dB, the cohort's 29 dB"),
    ({"reconstruction_psnr_db": 25.0}, CARE, "among the cohort's worst"),
])
def test_what_goes_wrong_is_named(change, level, words):
    verdict = judge({**GOOD, **change}, target="view", cohort_psnr=(29.0, 26.0))
    assert verdict.level == level and any(words in reason for reason in verdict.reasons), verdict


def test_a_coarse_model_is_named_on_every_film_in_a_blur_a_clinician_can_picture():
    from seegaan_explore.explore.quality import CohortPsnr

    coarse = judge(GOOD, target="view", cohort_psnr=CohortPsnr(17.8, 15.9, 5.3, 128))
    assert coarse.level == CARE and coarse.reasons[0] == (
        "the model draws this cohort coarsely: its reconstructions are as far from the originals as a blur over 5 "
        "pixels (of 128) would take them (median 18 dB), so what is finer than that cannot change in its films")
    assert judge(GOOD, target="view", cohort_psnr=CohortPsnr(28.1, 26.1, 1.5, 128)).level == TRUST


def test_with_attributes_held_the_trusted_verdict_names_what_moves_with_the_target():
    """Held age and view are what leakage is judged on; the cardiothoracic ratio follows the disease
    NT-proBNP measures across the cohort, so it is named, not counted, and never denied."""
    leakage = [("cardiothoracic ratio", 1.18, "+0.25 across the film"), ("age", -0.19, "−14 years across the film"),
               ("view", 0.0, "1% of the way towards AP"), ("BMI", 0.07, "+1.3 kg/m² across the film")]
    cohort = {"cardiothoracic ratio": 0.78, "age": 0.0, "view": 0.0, "BMI": -0.12}
    verdict = judge(GOOD, target="NT-proBNP", leakage=leakage, held={"age", "view"}, cohort=cohort)
    assert verdict.level == TRUST
    assert verdict.reasons == ("NT-proBNP changes steadily and reaches the intended change. Held fixed, age and view "
                               "move less than half as much (in cohort SDs). Not held, cardiothoracic ratio changes "
                               "with it, as it goes with it across the cohort's exams: the film shows it as well",)
    moved = judge(GOOD, target="NT-proBNP", leakage=[("age", 0.7, "−50 years across the film")], held={"age"})
    assert moved.level == CARE
    assert moved.reasons[0].startswith("age changes too (−50 years across the film), though it is held fixed")
    alone = judge(GOOD, target="NT-proBNP", leakage=leakage[1:])  # nothing held, nothing moves as much
    assert alone.reasons == ("NT-proBNP changes steadily and reaches the intended change, and no other attribute "
                             "moves as much",)


def test_an_attribute_that_does_not_go_with_the_target_in_the_cohort_counts_though_not_held():
    """A man's NT-proBNP film that turns him female: sex does not go with NT-proBNP across the cohort's
    exams, so the film shows a change no exam shows, held or not; heart size may move as it likes."""
    leakage = [("cardiothoracic ratio", 1.18, "+0.25 across the film"), ("sex", -0.57, "all the way to female")]
    cohort = {"cardiothoracic ratio": 0.78, "sex": -0.01, "age": 0.0}
    verdict = judge(GOOD, target="NT-proBNP", leakage=leakage, held={"age"}, cohort=cohort)
    assert verdict.level == CARE
    # what goes with the target is named on a film read with care too, not only on a trusted one
    assert verdict.reasons == ("sex changes too (all the way to female), though it does not go with NT-proBNP "
                               "across the cohort's exams: the film shows it as well as NT-proBNP",
                               "cardiothoracic ratio changes with NT-proBNP on this film, as it goes with it across "
                               "the cohort's exams: the film shows it as well")
    going = judge(GOOD, target="NT-proBNP", leakage=leakage, held={"age"}, cohort={**cohort, "sex": -0.4})
    assert going.level == TRUST


def test_a_two_level_attribute_counts_when_the_film_moves_it_half_the_way():
    """Sex moved 0.45 SD per SD of NT-proBNP along a four-SD film of a cohort of one man in two is
    0.9 of the way to female: plain to see, though under half an SD per SD."""
    from seegaan_explore.explore.verdict import Leak

    cohort = {"sex": -0.01}
    far = Leak("sex", -0.45, "90% of the way towards female", 0.9)
    near = Leak("sex", -0.45, "40% of the way towards female", 0.4)  # a shorter film
    assert judge(GOOD, target="NT-proBNP", leakage=[far], cohort=cohort).level == CARE
    assert judge(GOOD, target="NT-proBNP", leakage=[near], cohort=cohort).level == TRUST
    assert judge(GOOD, target="NT-proBNP", leakage=[far], cohort={"sex": -0.3}).level == TRUST


def test_leakage_names_the_attribute_in_its_own_units():
    verdict = judge(GOOD, target="NT-proBNP", leakage=[("left pleural effusion", 0.8, "+210 mL across the film")])
    assert verdict.level == CARE
    assert "left pleural effusion changes too (+210 mL across the film)" in verdict.reasons[0]


def test_an_upload_the_bundled_model_cannot_represent_is_not_to_be_interpreted(tmp_path):
    from seegaan_explore.demo import load_demo
    from seegaan_explore.ui.renderer import Renderer

    demo = load_demo(tmp_path, n=40)
    kwargs = {k: v for k, v in demo.explorer_kwargs().items() if k != "note"}
    renderer = Renderer(**kwargs)
    median, low, blur, resolution = renderer.cohort_psnr()
    assert 25 < low <= median  # the bundled model reconstructs its phantoms at about 29 dB
    assert blur < 0.02 * resolution  # not coarse: its films are not told to be
    good = renderer.render({"attribute": "age", "patient": 3})
    assert good["verdict"].level != STOP, good["verdict"]
    checkerboard = np.indices((128, 128)).sum(0) % 2 * 2.0 - 1  # nothing like a radiograph
    result = renderer.render({"attribute": "age", "patient": renderer.add_image(checkerboard, "odd.png")})
    assert result["quality"]["reconstruction_psnr_db"] < low - 3
    assert result["verdict"].level == STOP
    assert "does not represent this image" in result["verdict"].reasons[0]
    # NT-proBNP holding age and view (the dictionary's default): the words never deny what the numbers show
    held = renderer.render({"attribute": "nt_probnp_pg_ml", "log": True, "confounders": ("age", "view"),
                            "patient": 0, "method": None, "calibrate": False})
    (reason,) = held["verdict"].reasons
    moving = [leak.label for leak in held["leakage"] if leak.visible]
    assert held["verdict"].level == TRUST and "cardiothoracic ratio" in moving
    assert "no other attribute moves as much" not in reason and "Held fixed, age and view" in reason
    assert all(label in reason.split("Not held, ")[1] for label in moving)


READ = ("the reader fitted on this cohort's images (on patients left out of its fit: R² 0.89; 243 exams of 71 "
        "patients) on the frames encoded again")
SHORT = "the reader fitted on this cohort's images"  # the verdict names it; its numbers are the calibration note's


@pytest.mark.parametrize("achieved, words", [
    (0.1, f"view barely changed even as {SHORT} reads it (10% of the intended change), and that reader reads "
          "high"),
    # a latent reader reads high: it never vouches for a film, but it is named, as the calibration note names it
    (0.9, f"only {SHORT} read view on this film (90% of the intended change), and that reader reads a change high, "
          "so whether the film shows the intended change is unknown"),
    (None, "nothing measured view on the frames, so whether they show the intended change is unknown"),
])
def test_a_latent_reader_of_the_target_only_ever_raises_doubt(achieved, words):
    read = {"target_read": {"achieved_over_intended": achieved, "monotonicity": 1.0, "by": READ}} if achieved else {}
    verdict = judge({"measured_by": None, **read}, target="view")
    assert verdict.level == CARE and verdict.reasons == (words,)


def test_leakage_in_words_names_the_reader_and_goes_at_most_all_the_way_to_a_level():
    import pandas as pd

    from seegaan_explore.explore.study import Study
    from seegaan_explore.explore.verdict import leakage_in_words

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"age": rng.normal(60, 10, 50), "sex": rng.choice(["f", "m"], 50),
                          "bnp": rng.normal(0, 1, 50)})
    study = Study(rng.normal(size=(50, 4)), table)
    reader = "reader fitted on this cohort's images (on patients left out of its fit: R² 0.41; 50 exams of 50 patients)"
    leakage = {"age": 2.0, "sex": -0.2}  # per unit of the target, whose SD is 1 and which moves 4 units
    every = leakage_in_words(study, leakage, target_sd=1.0, intended=4.0, read_by={"age": reader})
    assert [leak.label for leak in every] == ["sex", "age"]  # largest share of an SD first
    sex, age = every
    assert age[1] == pytest.approx(2.0 / study.sd("age", False))
    assert age[2] == f"+8.00 across the film; read by the {reader}"
    assert sex[2] == "80% of the way towards f" and sex.way == pytest.approx(0.8) and np.isnan(age.way)
    (beyond,) = leakage_in_words(study, {"sex": -0.3}, target_sd=1.0, intended=4.0)  # 120% of the way
    assert beyond[2] == "all the way to f"


def test_an_attribute_nothing_read_whose_direction_lies_close_is_named():
    """A lab's film on a real cohort may replay another lab no reader can read: where their directions
    lie close in the model's code, the verdict says so (and never for what was read, held or the CNN's)."""
    import pandas as pd

    from seegaan_explore.explore.report import score_film
    from seegaan_explore.explore.study import Study
    from seegaan_explore.explore.traversal import Traversal

    rng = np.random.default_rng(0)
    n = 300
    crp = rng.normal(0, 1, n)
    table = pd.DataFrame({"crp": crp, "ddimer": crp + rng.normal(0, 0.2, n), "age": rng.normal(60, 10, n)})
    latents = np.column_stack([crp + rng.normal(0, 0.1, n), rng.normal(0, 1, (n, 3))]).astype(np.float32)
    study = Study(latents, table)
    direction = study.direction("crp")
    blank = np.zeros((5, 8, 8), np.float32)
    film = Traversal(amounts=np.linspace(-2, 2, 5), in_sd=True, latents=np.zeros((5, 4), np.float32),
                     reconstruction=blank[0], frames=blank, differences=blank, direction=direction)
    flat = np.zeros(5)
    _, verdict, _ = score_film(film, study=study, others={"age": flat})
    (said,) = [r for r in verdict.reasons if r.startswith("nothing read")]
    assert said.startswith("nothing read ddimer on the frames, and in the model's code its direction lies close "
                           "to crp's: ddimer (cosine +")
    assert verdict.level == CARE
    _, read, _ = score_film(film, study=study, others={"age": flat, "ddimer": flat})
    _, held, _ = score_film(film, study=study, others={"age": flat}, held={"ddimer"})
    assert not [r for v in (read, held) for r in v.reasons if r.startswith("nothing read")]


def test_a_direction_that_rests_on_a_few_patients_says_so():
    """A death date recorded for 5 patients (48 exams, as in the Hannover table), or a level only 5
    patients have: the direction may show those patients, and the verdict says who it rests on."""
    import pandas as pd

    from seegaan_explore.explore.report import _few_patients
    from seegaan_explore.explore.study import Study

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 6)
    died = np.isin(patients, [3, 9, 17, 21, 30])
    table = pd.DataFrame({"patient_id": patients, "death_offset": np.where(died, rng.uniform(0, 20, 240), np.nan),
                          "outcome": np.where(died, "died", "ward"), "age": rng.normal(60, 10, 240)})
    study = Study(rng.normal(size=(240, 4)), table)
    assert _few_patients(study, "death_offset", "death") == "only 5 patients have death recorded (30 exams)"
    assert _few_patients(study, "outcome", "outcome") == "only 5 patients are “died” (30 exams)"
    assert _few_patients(study, "age", "age") is None
    verdict = judge({"measured_by": None}, target="death", few="only 5 patients have death recorded (30 exams)")
    assert "only 5 patients have death recorded (30 exams): the direction may show what sets those patients " \
           "apart rather than death" in verdict.reasons
