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
    median, low = renderer.cohort_psnr()
    assert 25 < low <= median  # the bundled model reconstructs its phantoms at about 29 dB
    good = renderer.render({"attribute": "age", "patient": 3})
    assert good["verdict"].level != STOP, good["verdict"]
    checkerboard = np.indices((128, 128)).sum(0) % 2 * 2.0 - 1  # nothing like a radiograph
    result = renderer.render({"attribute": "age", "patient": renderer.add_image(checkerboard, "odd.png")})
    assert result["quality"]["reconstruction_psnr_db"] < low - 3
    assert result["verdict"].level == STOP
    assert "does not represent this image" in result["verdict"].reasons[0]
