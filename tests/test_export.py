"""Exported traversals read back as written: GIF/MP4 frames, PNG panel layout, offline HTML, archives;
and the ends in words and the quality scores they carry, read back from each."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from seegaan_explore.data.images import to_uint8
from seegaan_explore.explore.archives import load_direction, load_report, load_traversal, save_direction, save_traversal
from seegaan_explore.explore.directions import Direction, direction_from_average_latents
from seegaan_explore.explore.export import (
    GAP,
    LABEL_HEIGHT,
    LINE_HEIGHT,
    TITLE_HEIGHT,
    diverging_rgb,
    mp4_report,
    save_gif,
    save_html_report,
    save_mp4,
    save_panel,
)
from seegaan_explore.explore.readers import HELD_OUT, NAME
from seegaan_explore.explore.report import FilmReport, ends_of
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.explore.verdict import CARE, Verdict
from seegaan_explore.model import CheckpointError, SeeGaan, preset_config

K = 5


@pytest.fixture(scope="module")
def traversal():
    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    model.precision = "fp32"
    vector = np.random.default_rng(0).normal(size=model.config.w_dim).astype(np.float32) * 0.5
    direction = Direction("severity", "mean_shift", "generative", vector, 0.2,
                          diagnostics={"n": 12, "bin_means": np.ones((2, 3), np.float32)})
    return traverse(model, model.sample_w(1, seed=3), direction, np.linspace(-2, 2, K), in_sd=True)


def _grey(frames: np.ndarray) -> np.ndarray:
    """Frames read back by imageio as RGB: grey frames have three equal channels."""
    assert frames.ndim == 4 and frames.shape[-1] == 3
    return frames[..., 0]


def test_gif_holds_every_frame_losslessly(traversal, tmp_path):
    path = tmp_path / "t.gif"
    save_gif(traversal, path, fps=5)
    frames = _grey(iio.imread(path, index=None))
    assert frames.shape == (K, 32, 32)
    np.testing.assert_array_equal(frames, to_uint8(traversal.frames))
    assert iio.immeta(path)["duration"] == 200
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_captioned_gif_says_under_each_frame_what_it_shows(traversal, tmp_path):
    """A GIF passed on, as the dashboard exports it: each frame twice as large over its caption."""
    path = tmp_path / "c.gif"
    captions = [f"CRP: {v:.0f} mg/L" for v in np.linspace(3, 300, K)]
    save_gif(traversal, path, captions=captions)
    frames = _grey(iio.imread(path, index=None))
    assert frames.shape[0] == K and frames.shape[2] == 64 and frames.shape[1] > 64  # 2x, a strip below
    strips = frames[:, 64:, :]
    assert (strips.min(axis=(1, 2)) < 100).all() and (strips.max(axis=(1, 2)) == 255).all()  # dark text on white
    assert len({s.tobytes() for s in strips}) == K  # each frame its own words
    with pytest.raises(ValueError, match="2 captions for"):
        save_gif(traversal, tmp_path / "x.gif", captions=captions[:2])


def test_mp4_holds_every_frame_within_a_few_grey_levels(traversal, tmp_path):
    path = tmp_path / "t.mp4"
    save_mp4(traversal, path, fps=8)
    frames = _grey(iio.imread(path, index=None)).astype(np.float64)
    assert frames.shape == (K, 32, 32)
    error = np.abs(frames - to_uint8(traversal.frames))
    assert error.mean() < 2.0 and error.max() < 32
    assert iio.immeta(path)["fps"] == 8


def test_panel_rows_are_frames_differences_and_attributions(traversal, tmp_path):
    path = tmp_path / "panel.png"
    save_panel(traversal, path, tile=64)
    panel = np.asarray(Image.open(path).convert("RGB"))
    assert panel.shape == (TITLE_HEIGHT + 2 * (64 + GAP) + GAP + LABEL_HEIGHT, K * (64 + GAP) + GAP, 3)
    top = TITLE_HEIGHT + GAP
    for k in range(K):  # frames, enlarged by pixel repetition
        left = GAP + k * (64 + GAP)
        cell = panel[top:top + 64, left:left + 64]
        expected = np.kron(to_uint8(traversal.frames[k]), np.ones((2, 2), np.uint8))
        np.testing.assert_array_equal(cell[..., 0], expected)
        np.testing.assert_array_equal(cell[..., 0], cell[..., 2])
    middle = K // 2  # amount 0: the difference map is zero, i.e. white
    diff = panel[top + 64 + GAP:top + 128 + GAP, GAP + middle * (64 + GAP):GAP + middle * (64 + GAP) + 64]
    np.testing.assert_array_equal(diff, np.broadcast_to([247, 247, 247], diff.shape))
    last = panel[top + 64 + GAP:top + 128 + GAP, GAP + (K - 1) * (64 + GAP):GAP + (K - 1) * (64 + GAP) + 64]
    np.testing.assert_array_equal(last[::2, ::2], diverging_rgb(traversal.differences[-1]))

    attributions = np.abs(traversal.differences)
    save_panel(traversal, path, attributions=attributions, predictions=np.linspace(0, 1, K), tile=64)
    with_maps = np.asarray(Image.open(path).convert("RGB"))
    assert with_maps.shape[0] == panel.shape[0] + 64 + GAP
    overlay = with_maps[top + 2 * (64 + GAP):top + 2 * (64 + GAP) + 64, GAP:GAP + 64].astype(int)
    assert (overlay[..., 0] - overlay[..., 2]).max() > 50  # the heat scale is red where the map is high
    with pytest.raises(ValueError, match="3 predictions for 5 frames"):
        save_panel(traversal, path, predictions=[1, 2, 3])
    with pytest.raises(ValueError, match="must match the frames"):
        save_panel(traversal, path, attributions=attributions[:2])


def test_diverging_scale_is_blue_white_red_and_clipped():
    rgb = diverging_rgb(np.array([-1.0, -0.5, 0.0, 0.5, 2.0]), limit=0.5)
    np.testing.assert_array_equal(rgb[2], [247, 247, 247])
    assert rgb[1, 2] > rgb[1, 0] and rgb[3, 0] > rgb[3, 2]
    np.testing.assert_array_equal(rgb[0], rgb[1])  # clipped at -limit
    np.testing.assert_array_equal(rgb[3], rgb[4])


def test_html_report_is_self_contained_and_animates_every_frame(traversal, tmp_path):
    path = tmp_path / "report.html"
    save_html_report(traversal, path, predictions=np.linspace(0.1, 0.9, K), prediction_label="CNN: severity")
    html = path.read_text(encoding="utf-8")
    assert not re.findall(r"<(?:script|link|img)[^>]*(?:src|href)\s*=", html, flags=re.IGNORECASE)  # nothing fetched
    assert re.search(r"plotly\.js v\d+\.\d+\.\d+", html)  # the bundle itself is embedded
    assert len(html) > 3_000_000
    unescaped = html.replace("\\u002f", "/")
    pngs = [np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
            for uri in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", unescaped)]
    frames = [png for png in pngs if png.shape == (32, 32)]  # the bundle holds a 1x1 one of its own
    assert len(frames) == K + 1  # the first frame on screen, then one per animation frame
    expected = to_uint8(traversal.frames)
    for shown, frame in zip(frames, [expected[0], *expected]):
        np.testing.assert_array_equal(shown, frame)
    assert "Plotly.addFrames" in html and "CNN: severity" in html
    assert unescaped.count('"method":"animate"') == K + 2  # one slider step per frame, play and pause


def test_traversal_archive_round_trips(traversal, tmp_path):
    path = tmp_path / "t.npz"
    save_traversal(traversal, path, predictions=np.arange(K) / 10)
    back, predictions = load_traversal(path)
    for name in ("amounts", "latents", "reconstruction", "frames", "differences"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traversal, name))
    assert back.in_sd is True and back.direction.attribute == "severity" and back.direction.scale == 0.2
    np.testing.assert_array_equal(back.direction.vector, traversal.direction.vector)
    assert back.direction.diagnostics["bin_means"] == [[1.0] * 3] * 2
    np.testing.assert_allclose(predictions, np.arange(K) / 10)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ValueError, match="plain.npy: not a saved traversal"):
        load_traversal(tmp_path / "plain.npy")
    np.savez(tmp_path / "other.npz", frames=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not a saved traversal .missing amounts"):
        load_traversal(tmp_path / "other.npz")


def test_direction_file_round_trips_and_rejects_other_files(traversal, tmp_path):
    path = tmp_path / "severity.safetensors"
    save_direction(traversal.direction, path)
    back = load_direction(path)
    np.testing.assert_array_equal(back.vector, traversal.direction.vector)
    assert (back.attribute, back.estimator, back.kind, back.scale) == ("severity", "mean_shift", "generative", 0.2)
    from safetensors.torch import save_file

    save_file({"vector": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a seegaan-explore direction file"):
        load_direction(tmp_path / "foreign.safetensors")


def test_average_latents_of_the_original_become_a_direction(tmp_path):
    rng = np.random.default_rng(1)
    base, step = rng.normal(size=16), rng.normal(size=16) * 0.05
    values = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
    average = base + (values[:, None] - 100) * step / 100  # collinear, evenly spaced
    d = direction_from_average_latents(average, "nt_probnp", values)
    np.testing.assert_allclose(d.vector, step / 100, rtol=1e-5)
    assert d.estimator == "average_latents" and d.diagnostics["min_step_cosine"] == pytest.approx(1.0)
    assert np.isnan(d.scale)

    np.save(tmp_path / "HeartFailure_average_latents.npy", average.astype(np.float32))
    loaded = load_direction(tmp_path / "HeartFailure_average_latents.npy", bin_values=values)
    assert loaded.attribute == "HeartFailure_average_latents"
    np.testing.assert_allclose(loaded.vector, step / 100, rtol=1e-4)
    with pytest.raises(ValueError, match="5 average latents but 3 bin values"):
        load_direction(tmp_path / "HeartFailure_average_latents.npy", bin_values=[1, 2, 3])
    with pytest.raises(ValueError, match=r"must be \[bins >= 2, w_dim\], got shape \(16,\)"):
        direction_from_average_latents(average[0], "x")
    with pytest.raises(ValueError, match="define no range"):
        direction_from_average_latents(average, "x", [1, 2, 3, 4, 1])
    with pytest.raises(ValueError, match="bin values must rise \\(or fall\\) from bin to bin, got 1, 3, 2, 4, 5"):
        direction_from_average_latents(average, "x", [1, 3, 2, 4, 5])


def test_average_latents_step_through_every_bin_as_the_original():
    """The original's frames are G(w + h_k - h_0) for every bin k; bins that do not lie on one line
    (as real bin means do not) must not be replaced by the line from the first bin to the last."""
    average = np.random.default_rng(2).normal(size=(5, 16))  # bins on no line
    d = direction_from_average_latents(average, "nt_probnp")
    assert d.diagnostics["min_step_cosine"] < 0.9
    np.testing.assert_allclose(d.offsets(np.arange(5)), average - average[0], atol=1e-6)
    halfway = d.offsets([1.5, 3.25])
    np.testing.assert_allclose(halfway[0], (average[1] + average[2]) / 2 - average[0], atol=1e-6)
    np.testing.assert_allclose(halfway[1], 0.75 * average[3] + 0.25 * average[4] - average[0], atol=1e-6)
    straight = np.arange(5)[:, None] * (average[-1] - average[0])[None] / 4
    assert np.abs(d.offsets(np.arange(5)) - straight).max() > 0.5  # what the straight line got wrong
    falling = direction_from_average_latents(average, "x", [500, 400, 300, 200, 100])
    np.testing.assert_allclose(falling.offsets([0, -100, -250]),
                               [np.zeros(16), average[1] - average[0], (average[2] + average[3]) / 2 - average[0]],
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"nt_probnp: step 4.5 lies beyond the bins; steps from 0 to 4 reach every "
                                         r"bin \(bin values 0, 1, 2, 3, 4\)"):
        d.offsets([0, 4.5])
    with pytest.raises(ValueError, match="step -1 lies beyond the bins"):
        d.offsets([-1])


def test_a_direction_file_keeps_its_ends_and_an_average_latents_path(tmp_path):
    average = np.random.default_rng(3).normal(size=(4, 16)).astype(np.float32)
    path = dataclasses.replace(direction_from_average_latents(average, "nt_probnp", [10, 20, 40, 80]),
                               ends=("lower NT-proBNP", "higher NT-proBNP"))
    save_direction(path, tmp_path / "path.safetensors")
    back = load_direction(tmp_path / "path.safetensors")
    assert back.ends == ("lower NT-proBNP", "higher NT-proBNP")
    np.testing.assert_allclose(back.offsets([0, 10, 30, 70]), average - average[0], atol=1e-6)
    np.testing.assert_allclose(back.offsets([50]), path.offsets([50]), atol=1e-6)


READER = f"{NAME} ({HELD_OUT}: R² 0.41; 194 exams of 60 patients)"


@pytest.fixture(scope="module")
def report(traversal):
    scores = {"reconstruction_psnr_db": 27.25, "monotonicity": 0.9, "achieved_over_intended": 0.8,
              "measured_by": "the CNN", "leakage": {"age": 4.0}, "leakage_read_by": {"age": READER},
              "leakage_unread": {"sex": f"{NAME} ({HELD_OUT}: R² 0.02), not used: R² below 0.2 {HELD_OUT}"},
              "measured": np.zeros(K)}  # arrays are left out of the report
    leakage = [("age", 0.62, f"+7 years across the film; read by the {READER}")]
    verdict = Verdict(CARE, (f"age changes too (+7 years across the film; read by the {READER}): the film shows "
                             "it as well",))
    return FilmReport.of(traversal, scores, verdict=verdict, leakage=leakage, target="severity of the disease")


def test_the_report_in_words_names_ends_scores_and_readers(traversal, report):
    assert ends_of(traversal.direction) == ("lower severity", "higher severity")
    assert report.ends == ("lower severity", "higher severity") and "measured" not in report.scores
    lines = report.lines()
    assert lines[:2] == ["− = lower severity, + = higher severity", "Read this film with care."]
    assert "reconstruction: 27.2 dB PSNR against the original" in lines
    assert any("reached 80% of the intended change" in line and "as the CNN reads it" in line for line in lines)
    assert any(line.startswith("age: +0.62 SD per SD of severity of the disease") and "R² 0.41" in line
               for line in lines)
    assert lines[-1] == "not read (no trusted reader): sex"
    assert FilmReport.from_json(report.to_json()) == report


def test_the_report_names_unread_attributes_in_the_studys_words(traversal, report):
    """"not read: sex, d-dimer_val" was the table's spelling on a page in the dictionary's words."""
    import dataclasses

    import pandas as pd

    from seegaan_explore.explore.dictionary import AttributeInfo
    from seegaan_explore.explore.study import Study

    table = pd.DataFrame({"sex": ["f", "m"] * 10, "age": np.linspace(40, 80, 20)})
    study = Study(np.random.default_rng(0).normal(size=(20, 4)), table,
                  dictionary={"sex": AttributeInfo("sex", "Sex", levels={"f": "female", "m": "male"}),
                              "age": AttributeInfo("age", "Age", "years")})
    worded = FilmReport.of(traversal, dataclasses.asdict(report)["scores"], study=study, target=report.target)
    assert worded.labels == {"age": "Age", "sex": "Sex"}
    assert worded.lines()[-1] == "not read (no trusted reader): Sex"
    assert FilmReport.from_json(worded.to_json()) == worded


def test_the_png_panel_writes_the_report_under_the_columns(traversal, report, tmp_path):
    plain, scored = tmp_path / "plain.png", tmp_path / "scored.png"
    save_panel(traversal, plain, tile=64)
    save_panel(traversal, scored, tile=64, report=report)
    without, with_report = Image.open(plain), Image.open(scored)
    assert with_report.size[0] == without.size[0] == K * (64 + GAP) + GAP
    columns_end = TITLE_HEIGHT + 2 * (64 + GAP) + GAP + LABEL_HEIGHT
    assert without.size[1] == columns_end
    lines = (with_report.size[1] - columns_end - GAP) // LINE_HEIGHT
    assert lines >= len(report.lines())  # long lines wrap to the panel's width
    pixels = np.asarray(with_report.convert("RGB")).astype(int)
    # the film is unchanged (the title above it names the target in the report's words)
    np.testing.assert_array_equal(pixels[TITLE_HEIGHT:columns_end], np.asarray(without.convert("RGB"))[TITLE_HEIGHT:])
    text = pixels[columns_end:]
    assert (text.sum(-1) < 300).sum() > 500  # dark text written below the columns
    headline = text[LINE_HEIGHT:2 * LINE_HEIGHT]
    assert ((headline[..., 0] - headline[..., 2]) > 100).any()  # the verdict in its colour (amber: care)
    assert "Comment" not in without.text
    assert FilmReport.from_json(with_report.text["Comment"]) == report


def test_the_gif_keeps_its_frames_and_carries_the_report_as_its_comment(traversal, report, tmp_path):
    path = tmp_path / "t.gif"
    save_gif(traversal, path, report=report)
    np.testing.assert_array_equal(iio.imread(path, index=None)[..., 0], to_uint8(traversal.frames))
    comment = Image.open(path).info["comment"].decode("utf-8")
    assert FilmReport.from_json(comment) == report
    assert json.loads(comment)["ends"] == ["lower severity", "higher severity"]


def test_the_mp4_carries_the_report_even_where_its_words_hold_ffmpegs_escapes(traversal, report, tmp_path):
    worded = dataclasses.replace(report, calibration="Calibrated by the CNN; steps = 1.5x #ends \\ 50%")
    save_mp4(traversal, tmp_path / "t.mp4", report=worded)
    assert mp4_report(tmp_path / "t.mp4") == worded
    save_mp4(traversal, tmp_path / "bare.mp4")
    assert mp4_report(tmp_path / "bare.mp4") is None
    (tmp_path / "notes.mp4").write_text("not a film")
    with pytest.raises(ValueError, match="notes.mp4: not a readable MP4"):
        mp4_report(tmp_path / "notes.mp4")


def test_the_html_report_says_which_end_is_plus_and_how_far_to_trust_the_film(traversal, report, tmp_path):
    plain, scored = tmp_path / "plain.html", tmp_path / "scored.html"
    save_html_report(traversal, plain)
    save_html_report(traversal, scored, report=report)
    html, before = scored.read_text(encoding="utf-8"), plain.read_text(encoding="utf-8")
    block = re.search(r'<div id="seegaan-film-report".*?</div>', html, flags=re.S).group(0)
    assert "<b>− = lower severity, + = higher severity</b>" in block
    assert "Read this film with care." in block and "color:rgb(170,95,0)" in block
    assert "reconstruction: 27.2 dB PSNR" in block and "R² 0.41; 194 exams of 60 patients" in block
    assert "not read (no trusted reader): sex" in block
    data = re.search(r'<script type="application/json" id="seegaan-film-report-json">(.*?)</script>', html,
                     flags=re.S).group(1)
    assert FilmReport.from_json(data) == report
    assert "\\u2212 = lower severity, + = higher severity" in html  # in the figure's title too
    assert "seegaan-film-report" not in before and "lower severity" not in before


def test_the_traversal_archive_keeps_the_report(traversal, report, tmp_path):
    save_traversal(traversal, tmp_path / "with.npz", report=report)
    save_traversal(traversal, tmp_path / "without.npz")
    assert load_report(tmp_path / "with.npz") == report
    assert load_report(tmp_path / "without.npz") is None
    back, _ = load_traversal(tmp_path / "with.npz")
    np.testing.assert_array_equal(back.frames, traversal.frames)


def test_without_a_report_a_direction_that_records_its_ends_still_shows_them(traversal, tmp_path):
    sexed = traversal.__class__(**{**traversal.__dict__, "direction": dataclasses.replace(
        traversal.direction, attribute="sex", ends=("female", "male"))})
    save_panel(sexed, tmp_path / "sex.png", tile=64)
    save_panel(traversal, tmp_path / "plain.png", tile=64)
    plain_height = Image.open(tmp_path / "plain.png").size[1]
    assert Image.open(tmp_path / "sex.png").size[1] == plain_height + LINE_HEIGHT + GAP
    assert "Comment" not in Image.open(tmp_path / "sex.png").text
    save_html_report(sexed, tmp_path / "sex.html")
    assert "sex: traversal along the mean_shift direction (steps in SD); \\u2212 = female, + = male" in (
        tmp_path / "sex.html").read_text(encoding="utf-8")


def test_a_heat_overlay_scaled_to_a_percentile_keeps_a_marker_from_fading_the_rest():
    """A change of 0.1 over the lungs beside a 2.0 side marker: scaled to its maximum the lungs get 3%
    of the heat; to the 99th percentile (the marker is under 1% of the pixels) all of it."""
    from seegaan_explore.explore.export import heat_overlay

    image = np.zeros((50, 50), np.float32)
    change = np.zeros((50, 50))
    change[10:40, 10:40] = 0.1  # the lungs
    change[0:3, 0:3] = 2.0  # a side marker, 9 of 2500 pixels
    heat = lambda overlay: overlay.astype(int)[20, 20, 0] - overlay.astype(int)[45, 45, 0]  # noqa: E731
    assert heat(heat_overlay(image, change)) < 10
    assert heat(heat_overlay(image, change, percentile=99)) > 60  # full heat at opacity 0.6: 128 -> 204
    np.testing.assert_array_equal(heat_overlay(image, change, percentile=99)[1, 1],
                                  heat_overlay(image, change, percentile=99)[20, 20])  # the marker saturates


def test_a_notebook_panel_fits_jupyterlab_at_1280_px_and_wraps_its_titles():
    """Seven frames at 125 px were 915 px wide, beyond the 848 px JupyterLab's output area has at
    1280 px with the file browser open, and a first column's long title ran off the left edge."""
    from seegaan_explore.ui.figures import MAX_WIDTH, panel

    frames = [np.zeros((32, 32), np.float32)] * 7
    fig = panel(frames, ["phantom_s1_000000 unconditioned +1.0 SD", *[f"{k} SD" for k in range(6)]], "t",
                cols=7, size=125)
    assert fig.layout.width <= MAX_WIDTH <= 848
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "phantom_s1_000000<br>unconditioned +1.0<br>SD" and titles[1] == "0 SD"
    assert panel(frames[:3], ["a", "b", "c"], "t", size=125).layout.width == 3 * 125 + 40  # small ones stay
