"""Calibrating a film on other patients: the steps are stretched by the inverse of the share of the
intended change a reader reads on their films, capped, and never calibrated on a wrong-way or
barely-moving reading."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from seegaan_explore.explore.calibration import MAX_STRETCH, calibrate
from seegaan_explore.explore.directions import Direction

sys.path.insert(0, str(Path(__file__).parent))


def _direction() -> Direction:
    return Direction("ctr", "mean_shift", "generative", np.array([3.0, 4.0], np.float32), 0.05, ())


def _reader(shares: dict[int, float]):
    """Each patient's films read as ``share`` of the intended change, plus an offset of its own."""
    return lambda row, amounts: 0.4 + row * 0.01 + shares[row] * amounts


def test_the_steps_are_stretched_by_the_median_share_read_on_other_patients():
    direction, calibration = calibrate(_direction(), [1, 2, 3], _reader({1: 0.4, 2: 0.5, 3: 0.9}), "the oracle", "CTR")
    assert calibration.achieved == pytest.approx(0.5) and calibration.stretch == pytest.approx(2.0)
    np.testing.assert_allclose(direction.vector, [6.0, 8.0], rtol=1e-6)
    assert direction.scale == 0.05 and "stretched ×2.00" in calibration.words and "the oracle" in calibration.words


def test_the_stretch_is_capped():
    direction, calibration = calibrate(_direction(), [1, 2], _reader({1: 0.1, 2: 0.1}), "the CNN", "NT-proBNP")
    assert calibration.stretch == MAX_STRETCH and "capped" in calibration.words
    np.testing.assert_allclose(np.linalg.norm(direction.vector), 5.0 * MAX_STRETCH, rtol=1e-6)


@pytest.mark.parametrize("share, words", [(-0.6, "the wrong way"), (0.01, "barely")])
def test_a_wrong_way_or_barely_moving_reading_is_not_calibrated_on(share, words):
    direction, calibration = calibrate(_direction(), [1, 2, 3], _reader(dict.fromkeys((1, 2, 3), share)),
                                       "the oracle", "CTR")
    assert calibration.stretch is None and words in calibration.words
    np.testing.assert_array_equal(direction.vector, _direction().vector)


def test_the_renderer_calibrates_on_other_patients_and_says_by_what():
    """On the tiny setup the oracle reads brightness barely move on other patients' films: the
    renderer says so and leaves the steps as fitted; where nothing reads the target, it claims nothing."""
    from ui_cohort import small_setup

    from seegaan_explore.ui.renderer import Renderer
    from seegaan_explore.ui.words import verdict_html

    model, latents, table, cnn, oracle, images = small_setup()
    renderer = Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images)
    plain = renderer.render({"attribute": "brightness", "patient": 3})
    asked = renderer.render({"attribute": "brightness", "patient": 3, "calibrate": True})
    assert plain["calibration"] is None
    c = asked["calibration"]
    assert (c.by, c.patients, c.stretch) == ("the oracle", 8, None) and abs(c.achieved) < 0.05
    assert "barely" in c.words
    np.testing.assert_array_equal(asked["direction"].vector, plain["direction"].vector)
    assert "Not calibrated: on 8 other patients&#x27; films the oracle reads brightness" in \
        verdict_html(asked, renderer.study)
    assert renderer.render({"attribute": "age", "patient": 3, "calibrate": True})["calibration"] is None
