"""Calibrating a film on other patients: each step is drawn where the median response read on their
films gives the intended change (a straight stretch where the response is straight, a bent one where
it bends), out to a cap, and never calibrated on a wrong-way or barely-moving reading."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from seegaan_explore.explore.archives import load_direction, save_direction
from seegaan_explore.explore.calibration import MAX_STRETCH, calibrate, other_patients
from seegaan_explore.explore.directions import Direction

sys.path.insert(0, str(Path(__file__).parent))

SCALE = 0.05
FILM = np.linspace(-2, 2, 9) * SCALE  # the default film's intended steps, -2 to +2 SD


def _direction() -> Direction:
    return Direction("ctr", "mean_shift", "generative", np.array([3.0, 4.0], np.float32), SCALE, ())


def _reader(shares: dict[int, float]):
    """Each patient's films read as ``share`` of the intended change, plus an offset of its own."""
    return lambda row, amounts: 0.4 + row * 0.01 + shares[row] * amounts


def _achieved(direction: Direction, response) -> np.ndarray:
    """What a patient whose films read ``response(step along the vector)`` reads on ``direction``'s film."""
    return response(direction.drawn_at(FILM))


def test_a_straight_response_is_stretched_by_the_median_share_read_on_other_patients():
    direction, calibration = calibrate(_direction(), [1, 2, 3], _reader({1: 0.4, 2: 0.5, 3: 0.9}), "the oracle", "CTR")
    assert calibration.achieved == pytest.approx(0.5) and calibration.stretch == pytest.approx(2.0)
    np.testing.assert_allclose(_achieved(direction, lambda u: 0.5 * u), FILM, atol=1e-9)  # the median patient
    np.testing.assert_allclose(direction.vector, _direction().vector)  # the vector stays; the steps move
    assert calibration.reach == 1.0 and "the oracle" in calibration.words
    assert "2.00× the fitted steps" in calibration.words


def test_a_reader_that_reads_part_of_a_real_difference_is_read_against_that_part():
    """A regressor reads its target's differences between the cohort's own exams at its gain (the CNN:
    0.69 of ln NT-proBNP's). A film is calibrated until it reads what such a difference reads, not the
    whole intended change, which would draw it further than the cohort's exams differ."""
    reader = _reader({1: 0.4, 2: 0.5, 3: 0.9})
    direction, calibration = calibrate(_direction(), [1, 2, 3], reader, "the CNN", "NT-proBNP", gain=0.5)
    assert calibration.gain == 0.5 and calibration.achieved == pytest.approx(1.0)
    assert calibration.stretch == pytest.approx(1.0)  # the median patient reads half: what real exams read
    np.testing.assert_allclose(_achieved(direction, lambda u: 0.5 * u), 0.5 * FILM, atol=1e-9)
    assert "against the 50% of a difference in NT-proBNP it reads between the cohort's own exams" in calibration.words
    whole, _ = calibrate(_direction(), [1, 2, 3], reader, "the CNN", "NT-proBNP")
    assert whole.drawn_at(FILM)[-1] == pytest.approx(2 * direction.drawn_at(FILM)[-1])


def test_a_bending_response_is_inverted_step_by_step_where_one_stretch_would_overshoot():
    """The CNN reads NT-proBNP's films as a cubic: little near the patient, much further out."""
    def bent(u):
        return 0.05 * u + 0.2 * u ** 3 / SCALE ** 2

    direction, calibration = calibrate(_direction(), [1, 2, 3], lambda row, amounts: 1.0 + row + bent(amounts),
                                       "the CNN", "NT-proBNP")
    achieved = _achieved(direction, bent)
    np.testing.assert_allclose(achieved, FILM, atol=0.05 * SCALE)  # every frame near what it promises
    one_stretch = FILM / calibration.achieved  # the single stretch the old calibration drew
    assert abs(bent(one_stretch[-1]) / FILM[-1]) > 2  # ...which overshoots the last frame more than twofold


def test_a_saturating_response_is_measured_out_to_the_cap_and_says_how_far_it_falls_short():
    def saturating(u):
        return 0.5 * SCALE * np.tanh(u / SCALE)  # never more than half an SD of change

    direction, calibration = calibrate(_direction(), [1, 2], lambda row, amounts: saturating(amounts), "the oracle",
                                       "age")
    drawn = direction.drawn_at(FILM)
    assert np.all(np.diff(drawn) > 0)  # still a film that runs one way
    assert np.all(np.abs(drawn) <= MAX_STRETCH * np.abs(FILM) + 1e-12)  # no step further out than the cap
    assert abs(drawn[-1]) > 1.5 * abs(FILM[-1])  # ...but beyond the intended step, where it reads more
    assert calibration.reach == pytest.approx(0.25, abs=0.01) and "draws no more" in calibration.words


def test_what_a_two_level_film_cannot_draw_is_said_as_a_share_of_the_way_not_in_sds():
    """AP/PA coded 0 and 1 with an SD of 0.5: a film that reads at most a quarter of its 2-SD step
    on each side reaches a quarter of the way from one view to the other, which is what the note says."""
    view = Direction("view", "mean_shift", "generative", np.array([3.0, 4.0], np.float32), 0.5, (), ends=("AP", "PA"))

    def saturating(u):
        return 0.25 * np.tanh(u)  # never more than a quarter of the way between the views

    _, calibration = calibrate(view, [1, 2], lambda row, amounts: saturating(amounts), "the reader", "View",
                               two_level=True)
    assert "at most 25% of the way towards AP and 25% of the way towards PA" in calibration.words
    assert "cohort SDs" not in calibration.words


def test_a_calibrated_direction_is_saved_with_its_warp(tmp_path):
    direction, _ = calibrate(_direction(), [1, 2, 3], _reader({1: 0.4, 2: 0.5, 3: 0.9}), "the oracle", "CTR")
    save_direction(direction, tmp_path / "ctr.safetensors")
    np.testing.assert_allclose(load_direction(tmp_path / "ctr.safetensors").offsets(FILM), direction.offsets(FILM))


@pytest.mark.parametrize("share, words", [(-0.6, "the wrong way"), (0.01, "barely")])
def test_a_wrong_way_or_barely_moving_reading_is_not_calibrated_on(share, words):
    direction, calibration = calibrate(_direction(), [1, 2, 3], _reader(dict.fromkeys((1, 2, 3), share)),
                                       "the oracle", "CTR")
    assert calibration.stretch is None and words in calibration.words
    np.testing.assert_array_equal(direction.vector, _direction().vector)


class _Study:
    """What other_patients asks of a study: a column's values, and a held column's codes."""

    def __init__(self, values, view):
        self._values, self._view = np.asarray(values, np.float64), np.asarray(view)

    def values(self, attribute):
        return self._values

    def held(self, column):
        return self._view


def test_a_film_is_calibrated_on_the_patients_nearest_in_the_attribute_never_on_itself():
    values = [0, 0, 1, 1, 0, 1, 0, 1, np.nan, 0.9]
    view = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    study = _Study(values, view)
    assert other_patients(study, "sex", 2, n=3) == [3, 5, 7]  # the other men (ties spread), never row 2
    assert other_patients(study, "sex", 3, n=4) == [2, 5, 7, 9]  # a nearly-1 value comes after the 1s
    assert other_patients(study, "sex", 2, match=("view",), n=3) == [0, 4, 6]  # only its view: all women there
    assert other_patients(study, "sex", "upload:mine.png", n=3) == [0, 3, 6]  # an image: spread over all


def test_the_renderer_calibrates_by_default_on_other_patients_and_says_by_what():
    """On the tiny setup the oracle reads brightness barely move on other patients' films: the
    renderer says so and leaves the steps as fitted; where nothing reads the target, it says that."""
    from ui_cohort import small_setup

    from seegaan_explore.ui.renderer import Renderer
    from seegaan_explore.ui.words import verdict_html

    model, latents, table, cnn, oracle, images = small_setup()
    renderer = Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images)
    plain = renderer.render({"attribute": "brightness", "patient": 3, "calibrate": False})
    asked = renderer.render({"attribute": "brightness", "patient": 3})
    assert plain["calibration"] is None
    c = asked["calibration"]
    assert (c.by, c.patients, c.stretch) == ("the oracle", 8, None) and abs(c.achieved) < 0.05
    assert "barely" in c.words
    np.testing.assert_array_equal(asked["direction"].vector, plain["direction"].vector)
    assert asked["direction"].warp is None
    assert "Not calibrated: on 8 other patients&#x27; films the oracle reads brightness" in \
        verdict_html(asked, renderer.study)
    unread = renderer.render({"attribute": "age", "patient": 3})["calibration"]
    assert unread.stretch is None and unread.words.startswith("Not calibrated: nothing reads age")


def test_on_a_real_cohort_the_latent_reader_calibrates_and_says_it_reads_high():
    """Without an oracle (a real cohort), a trusted reader of the cohort's own latents reads the target
    on the re-encoded frames; the note says which reader, and that it reads a change high."""
    from ui_cohort import small_setup

    from seegaan_explore.explore.readers import readers_of
    from seegaan_explore.ui.renderer import Renderer

    model, latents, table, _, _, images = small_setup()
    renderer = Renderer(model, latents, table, images=images)  # no oracle, no CNN
    c = renderer.render({"attribute": "brightness", "patient": 3})["calibration"]
    reader = readers_of(renderer.study, ["brightness"])["brightness"]
    assert reader.trusted and c.by == f"the {reader.describe()} on the frames encoded again"
    calibrated = f"Calibrated on 8 other patients' films, where, as fitted, {c.by} read "
    assert c.patients == 8 and c.words.startswith((calibrated, "Not calibrated: on 8"))
    assert c.words.endswith("That reader reads a change high, so the film may show less than promised.")
    untrusted = next(a for a in ("age", "severity", "ctr") if not readers_of(renderer.study, [a])[a].trusted)
    words = renderer.render({"attribute": untrusted, "patient": 3})["calibration"].words
    assert "cannot read it well enough), so the steps are drawn as fitted" in words


def test_the_next_patients_calibration_reads_only_the_films_not_read_before(monkeypatch):
    """Calibrating along one direction, a film of a cohort patient is decoded and read once: the next
    patient's nearest rows are mostly the last one's, so a click on a neighbour costs a few films."""
    from ui_cohort import small_setup

    from seegaan_explore.explore.calibration import FilmReader
    from seegaan_explore.ui.renderer import Renderer

    read, measure = [], FilmReader._measure
    monkeypatch.setattr(FilmReader, "_measure",
                        lambda self, row, amounts: read.append(row) or measure(self, row, amounts))
    model, latents, table, cnn, oracle, images = small_setup()
    renderer = Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images)
    renderer.render({"attribute": "brightness", "patient": 3})
    neighbour = other_patients(renderer.study, "brightness", 3)[0]
    first = len(read)
    renderer.render({"attribute": "brightness", "patient": neighbour})
    before, now = (set(other_patients(renderer.study, "brightness", p)) for p in (3, neighbour))
    assert sorted(read[first:]) == sorted(now - before) and 0 < len(now - before) < len(now)
