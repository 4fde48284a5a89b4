"""The Explorer driven as a user would, in Python: set widget values, send the scatter's click and
hover messages, and check the results the worker shows and the figures it sends."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pytest
from PIL import Image
from ui_cohort import small_setup

from seegaan_explore.data.images import to_uint8
from seegaan_explore.phantoms import render, sample_individual
from seegaan_explore.ui.cohort_map import CohortMap, log_ticks
from seegaan_explore.ui.explorer import PROGRESS_AFTER_S, Explorer
from seegaan_explore.ui.renderer import Renderer


@pytest.fixture(scope="module")
def setup():
    return small_setup()


@pytest.fixture
def explorer(setup, tmp_path):
    model, latents, table, cnn, oracle, images = setup
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    e.wait()
    _page_shows(e)
    yield e
    e.close()


def _film_frames(e: Explorer) -> list[np.ndarray]:
    """The film's frames as the browser receives them (PNG data URIs), decoded."""
    return [_decoded(base64.b64decode(uri.split(",", 1)[1])) for uri in e.film.frames]


def _page_shows(e: Explorer) -> None:
    """What a browser sends when it displays the dashboard: one more view of the cohort box."""
    e.scatter_box._view_count += 1


def _pointer(e: Explorer, event: str, index: int) -> None:
    """The message plotly.js sends when a point of the cohort scatter is clicked or hovered."""
    e.scatter._js2py_pointsCallback = {"event_type": event, "points": {
        "xs": [e.scatter.data[0].x[index]], "ys": [e.scatter.data[0].y[index]], "point_indexes": [index],
        "trace_indexes": [0]}}


def _decoded(png_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes)))


def test_first_view_shows_the_cnn_target_with_a_playable_traversal(explorer, setup):
    r = explorer.result
    assert r["error"] is None and r["attribute"] == "nt_probnp_pg_ml" and r["log"]
    frames = _film_frames(explorer)
    assert len(frames) == 9 and len(explorer.film.changes) == 9 and len(explorer.film.labels) == 9
    np.testing.assert_array_equal(frames[4], r["frames"][4])  # what the browser paints is the decoded frame
    assert len({f.tobytes() for f in frames}) > 1  # the frames differ
    np.testing.assert_allclose(explorer.film.curve["y"], r["cnn_predictions"])  # the prediction curve
    assert explorer.film.curve["x_low"].endswith(" pg/mL") is False  # no dictionary here: plain numbers
    assert explorer.film.colour_low.startswith("−") and explorer.film.colour_high.startswith("+")
    assert "Shown" in explorer.status.value
    # a lab value on the log scale is coloured on it too
    logged = np.log10(explorer.renderer.study.values("nt_probnp_pg_ml"))
    np.testing.assert_allclose(explorer.scatter.data[0].marker.color, logged)
    # the synced state a browser connecting later starts from holds the colours too
    np.testing.assert_allclose(explorer.scatter._widget_data[0]["marker"]["color"], logged)
    bar = explorer.scatter.data[0].marker.colorbar
    assert bar.title.text == "nt_probnp_pg_ml, log scale"  # and its ticks say values, not their logs:
    np.testing.assert_allclose(bar.tickvals, np.log10([float(t.replace(",", "")) for t in bar.ticktext]))
    assert "nt_probnp_pg_ml" not in explorer.confounders.options[0]


def test_a_log_colour_bar_is_ticked_at_round_values_of_the_attribute():
    assert log_ticks(120, 900) == [200, 500]
    assert log_ticks(30, 35_000) == [100, 1_000, 10_000]  # 1-2-5 would make nine ticks: powers of ten only
    assert log_ticks(150, 180) == [150, 180]  # no round value inside: the ends


def test_picking_an_attribute_recolours_the_cohort_and_replaces_the_film(explorer):
    before = explorer.film.frames
    explorer.attribute.value = "ctr"
    r = explorer.wait()
    assert r["attribute"] == "ctr"
    assert explorer.film.frames[-1] != before[-1]
    np.testing.assert_allclose(explorer.scatter.data[0].marker.color, explorer.renderer.study.values("ctr"))
    assert "ctr" not in [value for _, value in explorer.confounders.options]
    assert "ctr" in explorer.words.value


def test_the_status_says_how_long_a_film_took_or_that_it_came_from_memory(explorer):
    """The opening film was drawn before the page was opened (a preheated kernel): its time is not the
    viewer's wait, so it is not given."""
    assert re.fullmatch(r"Shown: [^,]+, \d+ frames\. .+", html.unescape(re.sub("<[^>]+>", "", explorer.status.value)))
    explorer.attribute.value = "ctr"
    first = explorer.wait()
    assert re.search(r"Shown: ctr, \d+ frames \(in (\d+\.\d|\d+|under 0\.1) s\)\.", explorer.status.value)
    assert not first["cached"]["traversal"]
    explorer.request(sync=True)  # the same film again
    assert explorer.result["cached"]["traversal"] and "frames (from memory)." in explorer.status.value


def test_films_are_calibrated_and_say_so_unless_the_box_is_cleared(explorer):
    r = explorer.result
    assert explorer.calibrate.value and r["args"]["calibrate"] and r["calibration"] is not None
    assert html.escape(r["calibration"].words) in explorer.words.value
    explorer.calibrate.value = False
    r = explorer.wait()
    assert not r["args"]["calibrate"] and r["calibration"] is None and "calibrated" not in explorer.words.value.lower()


def test_the_match_box_holds_two_level_attributes_by_matching_and_the_rest_by_a_linear_term(explorer):
    explorer.attribute.value = "age"
    explorer.confounders.value = ("sex", "bmi")
    r = explorer.wait()
    assert r["args"]["confounders"] == ("sex", "bmi") and r["args"]["match"] == ()
    explorer.match.value = True
    r = explorer.wait()
    assert r["error"] is None, r["error"]
    assert r["args"]["confounders"] == ("bmi",) and r["args"]["match"] == ("sex",)  # bmi is not two-level
    sex = explorer.renderer.study.values("sex")
    assert r["direction"].diagnostics["n"] == (sex == sex[r["patient"]]).sum()
    assert "exams with sex" in explorer.words.value
    explorer.estimator.value = "ridge"  # only a mean shift holds: the list and the box are off and say why
    r = explorer.wait()
    assert explorer.match.disabled and explorer.confounders.disabled
    assert "only an average difference (mean shift) holds attributes fixed" in explorer.match.tooltip
    assert "predictor, diagnostic (ridge) cannot" in explorer.match.tooltip
    assert r["error"] is None and r["args"]["confounders"] == () and r["args"]["match"] == ()
    explorer.estimator.value = "mean_shift"
    r = explorer.wait()
    assert not explorer.match.disabled and not explorer.confounders.disabled
    assert r["args"]["confounders"] == ("bmi",) and r["args"]["match"] == ("sex",)  # what was chosen was kept


def test_a_recolour_made_while_the_kernel_applies_a_browser_message_reaches_the_browser(explorer):
    """ipywidgets holds a widget's notifications while it applies a message from the browser and squashes
    the changes made meanwhile: an edit from the render thread in that window would never be sent."""
    sent, rendered, applying = [], threading.Event(), threading.Event()
    explorer.scatter.observe(lambda change: sent.append(str(change["new"])), names="_py2js_update")
    render = explorer.renderer.render

    def render_then_signal(*args, **kwargs):
        result = render(*args, **kwargs)
        rendered.set()
        return result

    def slow_from_json(value, widget):  # the kernel is applying a browser message until the render is done
        applying.set()
        rendered.wait(60)
        time.sleep(0.3)
        return value

    explorer.renderer.render = render_then_signal
    explorer.scatter._trait_from_json = slow_from_json
    browser = threading.Thread(target=explorer.scatter.set_state,
                               args=({"_dom_classes": list(explorer.scatter._dom_classes)},))
    browser.start()
    assert applying.wait(10)
    explorer.attribute.value = "ctr"
    explorer.wait()
    browser.join(60)
    assert any("'ctr'" in message for message in sent), "the recolour was never sent to the browser"


def test_each_page_that_shows_the_dashboard_gets_a_cohort_map_made_while_it_is_connected(setup, tmp_path):
    model, latents, table, cnn, oracle, images = setup
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    try:
        e.wait()
        assert not isinstance(e.scatter_box.children[0], CohortMap)  # no FigureWidget for a page to restore
        e.attribute.value = "ctr"  # edits before any page: the map's content follows
        e.wait()
        _page_shows(e)
        first = e.scatter
        assert isinstance(first, CohortMap) and e.scatter_box.children == (first,)
        np.testing.assert_allclose(first.data[0].marker.color, e.renderer.study.values("ctr"))
        assert first._widget_data[0]["marker"]["colorbar"]["title"]["text"] == "ctr"
        _pointer(e, "plotly_click", 4)  # it answers clicks
        assert e.wait()["patient"] == 4
        _page_shows(e)  # a reload, or a second page
        assert e.scatter is not first and e.scatter_box.children == (e.scatter,)
        assert e.scatter.data[1].x == (e.scatter.data[0].x[4],)  # the selected patient is still marked
    finally:
        e.close()


def test_a_cohort_map_whose_browser_view_stops_applying_edits_is_rebuilt(explorer):
    first = explorer.scatter

    def acknowledge() -> None:  # what plotly.js sends after applying an edit
        first._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": first._last_trace_edit_id}

    def live_view(change) -> None:
        if change["new"] is not None:
            threading.Timer(0.05, acknowledge).start()

    acknowledge()  # a browser has shown the map
    first.observe(live_view, names="_py2js_update")
    explorer.attribute.value = "ctr"
    explorer.wait()
    assert explorer.scatter is first  # its edits were acknowledged
    first.unobserve(live_view, names="_py2js_update")
    explorer.attribute.value = "age"  # now nothing acknowledges: the view is stale
    explorer.wait()
    rebuilt = explorer.scatter
    assert rebuilt is not first and explorer.scatter_box.children == (rebuilt,)
    assert rebuilt.data[0].marker.colorbar.title.text == "age" and "seegaan-scatter" in rebuilt._dom_classes
    np.testing.assert_allclose(rebuilt.data[0].marker.color, explorer.renderer.study.values("age"))
    _pointer(explorer, "plotly_click", 5)  # the new map answers clicks
    assert explorer.wait()["patient"] == 5


def test_the_directions_are_offered_in_words_with_their_names_in_brackets(explorer):
    labels = dict((value, label) for label, value in explorer.estimator.options)
    assert labels["mean_shift"] == "average difference (mean shift)" and explorer.estimator.value == "mean_shift"
    assert labels["spline_mean_shift"] == "local difference (spline)"
    assert all("diagnostic" in labels[name] for name in ("ridge", "logistic", "svm"))
    assert len(set(labels.values())) == len(labels) and "_" not in "".join(labels.values())
    explorer.attribute.value = "age"
    explorer.estimator.value = "spline_mean_shift"
    r = explorer.wait()
    assert r["error"] is None and r["direction"].estimator == "spline_mean_shift"
    assert r["direction"].diagnostics["at"] == pytest.approx((r["targets"][0], r["targets"][-1]))


def test_latent_shift_is_offered_beside_the_cohort_estimators(explorer):
    assert "latent_shift" in [value for _, value in explorer.estimator.options]
    explorer.estimator.value = "latent_shift"
    r = explorer.wait()
    assert r["error"] is None and r["direction"].estimator == "latent_shift"
    assert "Latent Shift" in explorer.words.value
    explorer.attribute.value = "age"
    explorer.wait()
    assert "Latent Shift moves what the CNN predicts" in explorer.status.value


def test_clicking_a_point_selects_that_patient(explorer):
    _pointer(explorer, "plotly_click", 6)
    r = explorer.wait()
    assert explorer.patient.value == 6 and r["patient"] == 6
    assert explorer.scatter.data[1].x == (explorer.scatter.data[0].x[6],)
    assert "phantom_s0_000006" in explorer.patient_info.value


def test_the_cohort_map_switches_to_attribute_against_the_cnn(explorer):
    explorer.view.value = "cnn"
    explorer.wait()
    r = explorer.renderer
    np.testing.assert_allclose(explorer.scatter.data[0].x, r.study.values("nt_probnp_pg_ml"))
    # the CNN's reading of ln NT-proBNP, shown in NT-proBNP's units on a log axis, as the attribute is
    np.testing.assert_allclose(explorer.scatter.data[0].y, np.exp(r.study.values("cnn_prediction")))
    assert explorer.scatter.layout.yaxis.title.text == "nt_probnp_pg_ml as the CNN reads it"
    assert (explorer.scatter.layout.xaxis.type, explorer.scatter.layout.yaxis.type) == ("log", "log")
    assert explorer.scatter.data[1].x == (r.study.values("nt_probnp_pg_ml")[0],)  # the selected patient moved along
    explorer.view.value = "pca"
    explorer.wait()
    np.testing.assert_allclose(explorer.scatter.data[0].x, r.study.embedding()[0][:, 0])
    assert explorer.scatter.layout.yaxis.type == "linear"


def test_hovering_shows_the_patients_thumbnail(explorer, setup):
    images = setup[5]
    assert explorer.thumbnail.layout.visibility == "hidden" and "Point at a patient" in explorer.thumbnail_caption.value
    _pointer(explorer, "plotly_hover", 11)
    assert explorer.thumbnail.layout.visibility == "visible"
    np.testing.assert_array_equal(_decoded(explorer.thumbnail.value), to_uint8(images[11]))
    assert "phantom_s0_000011" in explorer.thumbnail_caption.value


def test_the_films_slider_is_the_attributions_frame(explorer):
    """One slider: where the film stops, the attribution follows, without resending the film."""
    film = explorer.film.frames
    shown = explorer.attribution_frame.value
    explorer.film.frame = 2  # what the browser syncs when the slider stops or the film pauses
    r = explorer.wait()
    assert r["frame"] == 2 and r["cached"]["traversal"]
    assert explorer.film.frames is film
    assert explorer.attribution_frame.value != shown
    assert "frame 2" in explorer.attribution_caption.value
    explorer.method.value = "saliency"
    assert explorer.wait()["method"] == "saliency"
    assert "saliency" in explorer.attribution_caption.value
    explorer.method.value = "none"  # a word in the box (a value of None would show it empty)
    assert explorer.wait()["args"]["method"] is None and explorer.method.label == "none"
    assert "No attribution chosen." in explorer.attribution_caption.value


def test_without_a_cnn_no_attribution_is_offered_and_the_caption_says_why(setup, tmp_path):
    model, latents, table, _, oracle, images = setup
    e = Explorer(model, latents, table, oracle=oracle, images=images, export_dir=tmp_path, threaded=False)
    try:
        assert e.result["args"]["method"] is None and e.method.layout.display == "none"
        assert "started without a CNN to explain" in e.attribution_caption.value
        assert "where a CNN looks" not in e.children[0].value  # the title promises no CNN
    finally:
        e.close()


def test_frame_count_and_units_rebuild_the_range(explorer):
    assert explorer.units.label == "cohort SDs" and "standard deviations" in explorer.units.tooltip
    explorer.n_frames.value = 5
    r = explorer.wait()
    assert len(r["frames"]) == 5 and explorer.film.frame == 4 and r["frame"] == 4
    assert len(explorer.film.frames) == 5
    assert [label.endswith(f"({a:+.2g} cohort SD)") for label, a in zip(explorer.film.labels, r["amounts"])] \
        == [True] * 5
    explorer.units.value = "value"
    r = explorer.wait()
    values = explorer.renderer.study.values("nt_probnp_pg_ml")
    own = values[explorer.patient.value]
    assert explorer.log_scale.value  # the CNN learned NT-proBNP on a log scale: so does the first view
    # the patient's own value 2 SDs either side, within what the cohort shows
    sd = np.std(np.log(values))
    ends = np.clip(np.log(own) + np.array([-2, 2]) * sd, np.log(values.min()), np.log(values.max()))
    expected = tuple(float(f"{v:.3g}") for v in np.exp(ends))
    assert (explorer.start.value, explorer.stop.value) == expected
    np.testing.assert_allclose(r["targets"], np.geomspace(*expected, 5), rtol=1e-6)
    assert explorer.film.curve["log"]
    explorer.log_scale.value = False
    r = explorer.wait()
    ends = np.clip(own + np.array([-2, 2]) * np.std(values), values.min(), values.max())
    expected = tuple(float(f"{v:.3g}") for v in ends)
    assert (explorer.start.value, explorer.stop.value) == expected
    np.testing.assert_allclose(r["targets"], np.linspace(*expected, 5), rtol=1e-6)


def test_the_cnns_reading_is_typed_and_read_in_its_targets_units(explorer):
    """The CNN predicts ln NT-proBNP: its range boxes, frames and hover say NT-proBNP, never its logarithm."""
    study = explorer.renderer.study
    explorer.attribute.value = "cnn_prediction"
    explorer.units.value = "value"
    r = explorer.wait()
    assert r["error"] is None, r["error"]
    start, stop = explorer.start.value, explorer.stop.value
    assert r["args"]["start"] == pytest.approx(np.log(start))  # typed in NT-proBNP, fitted on its logarithm
    np.testing.assert_allclose(np.exp(r["targets"][[0, -1]]), [start, stop], rtol=0.01)
    last = study.format("nt_probnp_pg_ml", float(np.exp(r["targets"][-1])))
    assert explorer.film.labels[-1] == f"nt_probnp_pg_ml as the CNN reads it: {last}"
    reading = float(np.exp(study.values("cnn_prediction")[2]))
    hover = f"nt_probnp_pg_ml as the CNN reads it: {study.format('nt_probnp_pg_ml', reading)}"
    assert explorer.scatter.data[0].text[2] == hover


def test_a_range_typed_for_one_attribute_is_kept_and_each_starts_with_what_it_holds(setup, tmp_path):
    from seegaan_explore.explore.dictionary import AttributeInfo

    model, latents, table, cnn, oracle, images = setup
    dictionary = {"age": AttributeInfo("age", "age", "years", hold=("sex",)),
                  "ctr": AttributeInfo("ctr", "cardiothoracic ratio", anchors=((0.5, "enlarged heart"),)),
                  "sex": AttributeInfo("sex", levels={"f": "female", "m": "male"}),
                  "nt_probnp_pg_ml": AttributeInfo("nt_probnp_pg_ml", "NT-proBNP", "pg/mL", log=True)}
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, dictionary=dictionary,
                 export_dir=tmp_path)
    try:
        e.attribute.value = "age"
        assert e.confounders.value == ("sex",)  # what the dictionary holds for age, listed first to be seen
        holdable = [value for _, value in e.confounders.options]
        assert holdable == ["sex", *(a for a in e._held_by_default("age")[0] if a != "sex")]  # then the others
        e.start.value, e.stop.value = -1.0, 0.5
        e.attribute.value = "ctr"
        assert e.confounders.value == () and (e.start.value, e.stop.value) == (-2.0, 2.0)
        (anchor,) = [c for c in e.anchors.children if isinstance(c, widgets.Button)]
        anchor.click()
        r = e.wait()
        assert e.units.value == "value" and e.stop.value == 0.5 and r["targets"][-1] == pytest.approx(0.5)
        anchor.click()  # the film shown is ctr's now: from this patient's value to 0.5
        assert e.wait()["targets"][0] == pytest.approx(table["ctr"][0], rel=5e-3)
        e.patient.value = 3  # "from the patient to 0.5" follows the next patient, as a click on the map picks one
        r = e.wait()
        assert r["targets"][0] == pytest.approx(table["ctr"][3], rel=5e-3) and r["targets"][-1] == pytest.approx(0.5)
        e.start.value = 0.45  # a range of the viewer's own stays
        e.patient.value = 4
        assert e.wait()["targets"][0] == pytest.approx(0.45)
        e.attribute.value = "age"
        assert (e.start.value, e.stop.value) == (-1.0, 0.5)  # kept
        assert e.wait()["label"] == "age"
        e.attribute.value = "nt_probnp_pg_ml"  # a lab value on its log scale, typed in pg/mL
        e.units.value = "value"
        e.start.value, e.stop.value = 100.0, 200.0
        e.attribute.value = "age"
        e.attribute.value = "nt_probnp_pg_ml"  # kept, although restoring its log scale changes that box too
        assert (e.units.value, e.start.value, e.stop.value, e.log_scale.value) == ("value", 100.0, 200.0, True)
        assert e.wait()["targets"][-1] == pytest.approx(200.0)
        # the map is coloured on the log scale but read in pg/mL: its colour bar and each point's hover
        scatter = e.scatter.data[0]
        assert scatter.marker.colorbar.title.text == "NT-proBNP (pg/mL), log scale"
        bar = scatter.marker.colorbar
        np.testing.assert_allclose(bar.tickvals, np.log10([float(t.replace(",", "")) for t in bar.ticktext]))
        value = e.renderer.study.values("nt_probnp_pg_ml")[3]
        assert scatter.text[3] == f"NT-proBNP: {e.renderer.study.format('nt_probnp_pg_ml', value)}"
        assert scatter.marker.color[3] == pytest.approx(np.log10(value))
        e.attribute.value = "sex"
        e.wait()
        assert list(e.scatter.data[0].marker.colorbar.ticktext) == ["female", "male"]
        assert set(e.scatter.data[0].text) == {"sex: female", "sex: male"}
        # two levels: their values are 0 and 1, said so, and each level is a button that ends the film there
        assert e.units.options == (("cohort SDs", "sd"), ("levels (0 to 1)", "value"))
        assert "0 is female, 1 is male" in e.units.tooltip and e.start.tooltip == e.units.tooltip
        buttons = {b.description: b for b in e.anchors.children if isinstance(b, widgets.Button)}
        assert sorted(buttons) == ["female", "male"]
        own = e.renderer.study.values("sex")[e.patient.value]
        other = "female" if own == 1 else "male"
        buttons[other].click()
        r = e.wait()
        assert r["error"] is None and e.units.value == "value"
        assert r["targets"][0] == pytest.approx(own) and r["targets"][-1] == pytest.approx(1 - own)
        buttons["male" if other == "female" else "female"].click()  # the level the patient already has
        e.wait()
        assert f"the film would start and end at {'male' if own == 1 else 'female'}: choose another end" in \
            html.unescape(e.status.value)
        e.attribute.value = "age"  # back to a measured attribute: values again, its own tooltip
        assert e.units.options[1] == ("values", "value") and "levels" not in e.units.tooltip
    finally:
        e.close()


def test_an_error_is_shown_and_the_last_good_view_stays_greyed_and_named(explorer):
    good = explorer.result
    explorer.attribute.value = "sex"
    explorer.wait()
    assert not explorer.log_scale.value  # a log scale is the CNN's NT-proBNP's default only
    assert not [label for label in explorer.film.labels if "SD" in label]  # "40% towards male", no SDs
    assert explorer.log_scale.disabled and explorer.log_scale.tooltip == "no log scale for levels (F, M)"
    # (the box is off for a column with a value <= 0; from Python it can still be set)
    explorer.log_scale.value = True
    explorer.wait()
    assert explorer.result["attribute"] == "sex" and not explorer.result["log"]  # the last good view stays
    assert "log scale needs positive values, but the smallest is 0. Still" in explorer.status.value
    assert "#b00020" in explorer.status.value
    # greyed, and said to be the last film, so that it is not read as what the controls now ask for
    assert "Still showing the last film drawn: sex." in explorer.status.value
    assert "seegaan-stale" in explorer.results._dom_classes
    explorer.log_scale.value = False
    assert explorer.wait()["error"] is None and "Shown" in explorer.status.value
    assert "seegaan-stale" not in explorer.results._dom_classes
    study = explorer.renderer.study
    zero = next(a for a in study.attributes if a != "cnn_prediction" and study.levels(a) is None
                and np.nanmin(study.values(a)) <= 0)
    explorer.attribute.value = zero
    assert explorer.log_scale.disabled and explorer.log_scale.tooltip.startswith(
        f"a log scale needs positive values; {study.label(zero)} holds "
        f"{study.format(zero, float(np.nanmin(study.values(zero))))}")
    explorer.attribute.value = "nt_probnp_pg_ml"
    assert not explorer.log_scale.disabled and explorer.log_scale.tooltip == ""
    assert good is not explorer.result


def test_the_latest_request_wins(setup, tmp_path):
    model, latents, table, cnn, _, images = setup
    renderer = Renderer(model, latents, table, cnn=cnn, images=images)
    started, release, seen, cancelled = threading.Event(), threading.Event(), [], []
    real = renderer.render

    def held(args, **kwargs):
        seen.append(args["attribute"])
        if len(seen) == 2:
            started.set()
            release.wait(30)  # the user keeps clicking while this one renders
        result = real(args, **kwargs)
        cancelled.append(result["cancelled"])
        return result

    renderer.render = held
    e = Explorer(renderer=renderer, export_dir=tmp_path)
    e.wait()
    e.attribute.value = "age"
    assert started.wait(30)
    for name in ("bmi", "ctr", "severity"):
        e.attribute.value = name
    release.set()
    r = e.wait()
    assert seen == ["nt_probnp_pg_ml", "age", "severity"]  # bmi and ctr were superseded before they started
    assert cancelled == [False, True, False]  # age stopped at its next stage
    assert r["attribute"] == "severity" and e.result is r
    e.close()


def test_a_pick_made_while_the_worker_shows_a_film_is_not_swallowed(setup, tmp_path):
    """The worker moves the film's controls quietly; an attribute the user picks in that moment (the
    kernel applies it in its own thread) must still be rendered, not taken for the Explorer's own move."""
    model, latents, table, cnn, _, images = setup
    e = Explorer(model, latents, table, cnn=cnn, images=images, export_dir=tmp_path)
    e.wait()
    showing, release = threading.Event(), threading.Event()
    real = e.film.show

    def slow_show(*args, **kwargs):
        if e.attribute.value == "age":  # the film of "age" is being put on screen...
            showing.set()
            release.wait(30)
        real(*args, **kwargs)

    e.film.show = slow_show
    e.attribute.value = "age"
    assert showing.wait(30)
    e.attribute.value = "bmi"  # ...when the user picks BMI
    release.set()
    assert e.wait()["attribute"] == "bmi"
    assert "Shown: bmi" in e.status.value
    e.close()


def test_slow_work_shows_progress_then_hides_it(setup, tmp_path):
    model, latents, table, cnn, _, images = setup
    renderer = Renderer(model, latents, table, cnn=cnn, images=images)
    e = Explorer(renderer=renderer, export_dir=tmp_path)
    real = renderer.render

    def slow(args, **kwargs):
        time.sleep(PROGRESS_AFTER_S + 0.6)
        return real(args, **kwargs)

    renderer.render = slow
    e.attribute.value = "age"
    time.sleep(PROGRESS_AFTER_S + 0.3)
    assert e.progress.layout.visibility == "visible" and "Working" in e.progress.value
    e.wait()
    assert e.progress.layout.visibility == "hidden" and e.result["attribute"] == "age"
    e.close()


def test_an_uploaded_image_is_encoded_and_explored(explorer, tmp_path):
    phantom = render(sample_individual(seed=9, index=1), 64)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(phantom.image)).save(buffer, format="PNG")
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(buffer.getvalue()),
                              "content": memoryview(buffer.getvalue()),
                              "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    r = explorer.wait()
    assert r["patient"] == "upload:mine.png" and explorer.uploaded.value == "upload:mine.png"
    assert "(not recorded" in explorer.patient_info.value
    assert explorer.scatter.data[1].visible is False  # not a cohort point
    _pointer(explorer, "plotly_click", 2)  # back to a cohort patient
    assert explorer.wait()["patient"] == 2 and explorer.uploaded.value == ""


def test_a_viewers_image_is_read_as_the_cohort_was_imported(setup, tmp_path):
    """``serve --framing crop --modality any``: an opened image is fitted into the square as the
    cohort's were (cropped, not padded) and passes the same filter (a CT is let in, as asked)."""
    from pydicom.data import get_testdata_file

    from seegaan_explore.data.formats import ImportFilter
    from seegaan_explore.data.images import preprocess
    from seegaan_explore.data.readers import read_image

    model, latents, table, cnn, oracle, images = setup
    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 90), dtype=np.uint8)).save(wide)
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path,
                 import_options={"filters": ImportFilter.any(), "colour": "refuse", "framing": "crop"})
    e.wait()
    for path in (wide, Path(get_testdata_file("CT_small.dcm"))):
        e.path.value = str(path)
        e.load.click()
        assert e.wait()["patient"] == f"upload:{path.name}", e.notice.value
        shown = e.renderer._original(f"upload:{path.name}")
        np.testing.assert_array_equal(shown, preprocess(read_image(path), e.renderer.resolution, framing="crop"))
    e.close()


def test_a_bad_path_is_named_in_the_status(explorer, tmp_path):
    explorer.path.value = str(tmp_path / "missing.dcm")
    explorer.load.click()
    assert f"no such file: {tmp_path / 'missing.dcm'}" in explorer.notice.value
    (tmp_path / "notes.png").write_text("not an image")
    explorer.path.value = str(tmp_path / "notes.png")
    explorer.load.click()
    assert "Could not use notes.png" in explorer.notice.value and "not a recognised image" in explorer.notice.value
    from pydicom.data import get_testdata_file

    explorer.path.value = get_testdata_file("CT_small.dcm")  # a CT is refused as a cohort's import refuses it
    explorer.load.click()
    assert "Could not use CT_small.dcm" in explorer.notice.value and "modality CT" in explorer.notice.value


def test_a_refusal_stays_on_screen_while_a_film_is_drawn_until_the_viewer_moves_on(explorer, tmp_path):
    """The answer to a typed path sits beside the film's status: a render the slider or Play asks for
    meanwhile replaces the status, never the answer; the viewer's next change clears it."""
    explorer.path.value = str(tmp_path / "missing.dcm")
    explorer.load.click()
    explorer.film.frame = 0  # as Play or the slider would: a new render of the same film
    explorer.wait()
    assert "Shown" in explorer.status.value and "no such file" in explorer.notice.value
    explorer.attribute.value = "age"
    explorer.wait()
    assert explorer.notice.value == "" and "Shown: age" in explorer.status.value


@pytest.mark.parametrize("kind, magic", [("GIF", b"GIF8"), ("MP4", b"ftyp"), ("PNG", b"\x89PNG"),
                                          ("HTML", b"<html")])
def test_export_buttons_write_the_traversal_and_offer_a_download(explorer, tmp_path, kind, magic):
    button = next(b for b in explorer.export_buttons if b.description == kind)
    button.click()
    (path,) = tmp_path.glob(f"*.{kind.lower()}")
    first, last = (f"{float(f'{v:.3g}'):g}" for v in explorer.result["targets"][[0, -1]])
    assert path.stem == f"nt_probnp_pg_ml_0_{first}_to_{last}"  # what the film shows, as its labels say it
    assert magic in path.read_bytes()[:200]
    assert f"download {path.name}" in explorer.export_link.value and "Exported" in explorer.notice.value
    verdict = explorer.result["verdict"]
    calibration = explorer.result["calibration"].words
    if kind == "HTML":  # what the page says of the film goes with it, in its words and units
        page = path.read_text()
        assert verdict.headline in page and html.escape(calibration) in page
        readings = explorer.renderer.study.cnn_readings(explorer.result["cnn_predictions"])
        assert readings.label == "nt_probnp_pg_ml as the CNN reads it"  # the column it predicts (ln), in its units
        assert np.allclose(readings.values, np.exp(explorer.result["cnn_predictions"]))
        assert readings.label in page and readings.words[0] in page
        assert "nt_probnp_pg_ml units" not in page and "step (SD)" in page
        for label in explorer.film.labels:  # the slider names each frame as the page does, in its units
            assert json.dumps(label)[1:-1] in page
    elif kind == "GIF":
        report = json.loads(Image.open(path).info["comment"])
        assert report["verdict"]["level"] == verdict.level and len(report["ends"]) == 2
        assert report["calibration"] == calibration


def test_the_film_is_shown_before_the_attribution_is_ready(setup, tmp_path):
    """A slow attribution (integrated gradients) must not hold the traversal back."""
    model, latents, table, cnn, oracle, images = setup
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    e.wait()
    release, entered = threading.Event(), threading.Event()
    real = e.renderer.attribute

    def slow(result, **kwargs):
        entered.set()
        release.wait(30)
        return real(result, **kwargs)

    e.renderer.attribute = slow
    try:
        e.attribute.value = "age"
        assert entered.wait(30)
        assert e.result["attribute"] == "age" and e.result["attribution_original"] is None
        assert "Shown: age" in e.status.value and "follows" in e.attribution_caption.value
        release.set()
        e.wait()
        assert e.result["attribution_original"] is not None and "seegaan-agreement" in e.attribution_caption.value
    finally:
        release.set()
        e.close()


def test_off_loopback_the_page_offers_no_server_path(setup, tmp_path, monkeypatch):
    """`demo --ip 0.0.0.0` sets SEEGAAN_EXPLORE_SERVER_PATHS=0: nobody with the token reads server files."""
    model, latents, table, cnn, oracle, images = setup
    monkeypatch.setenv("SEEGAAN_EXPLORE_SERVER_PATHS", "0")
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    try:
        assert not any(e.path in getattr(box, "children", ()) for box in e.children[2].children[0].children)
        e.path.value = str(tmp_path / "anything.png")
        e.load.click()
        assert "anything" not in e.notice.value and e.uploaded.options == (("a cohort patient (by #)", ""),)
    finally:
        e.close()


def test_with_a_data_root_only_files_inside_it_are_read_and_outside_ones_are_not_probed(setup, tmp_path):
    """`serve --data-root DIR`: a typed path is read under DIR; one outside (by .., an absolute path or a
    link) gets the same answer whether or not it exists, so the page cannot probe the server's files."""
    model, latents, table, cnn, oracle, images = setup
    root, outside = tmp_path / "data", tmp_path / "private"
    (root / "ward").mkdir(parents=True)
    outside.mkdir()
    png = io.BytesIO()
    Image.fromarray(to_uint8(render(sample_individual(seed=9, index=1), 64).image)).save(png, format="PNG")
    (root / "ward" / "film.png").write_bytes(png.getvalue())
    (outside / "secret.png").write_bytes(png.getvalue())
    (root / "link.png").symlink_to(outside / "secret.png")
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path,
                 server_paths=str(root))
    try:
        answers = []
        for typed in ("../private/secret.png", "../private/absent.png", str(outside / "secret.png"), "link.png"):
            e.path.value = typed
            e.load.click()
            answers.append(e.notice.value.replace(typed, "PATH"))
        assert len(set(answers)) == 1 and "only files in the data folder" in answers[0]
        assert e.uploaded.options == (("a cohort patient (by #)", ""),)
        e.path.value = "ward/film.png"
        e.load.click()
        assert e.wait()["patient"] == "upload:film.png"
    finally:
        e.close()


def test_a_categorical_column_is_offered_as_contrasts_and_held_as_a_whole(setup, tmp_path):
    """A column of three levels: each level against the most frequent and against the rest as attributes;
    as a confounder the whole column (held by a term per level, or matched to the patient's level)."""
    model, latents, table, cnn, oracle, images = setup
    table = table.assign(ward=np.array(["icu", "cardiology", "icu", "emergency"] * len(table))[: len(table)])
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    try:
        offered = dict((value, label) for label, value in e.attribute.options)
        assert offered["ward=cardiology:icu"] == "ward: cardiology vs icu"
        assert offered["ward=icu"] == "ward: icu vs the rest"
        e.attribute.value = "age"
        holdable = [value for _, value in e.confounders.options]
        assert "ward" in holdable and not [v for v in holdable if v.startswith("ward=")]
        e.confounders.value, e.match.value = ("ward",), True
        r = e.wait()
        assert r["error"] is None and r["args"]["match"] == ("ward",)
        patient_level = table["ward"].iloc[r["patient"]]
        assert r["diagnostics"]["n"] == (table["ward"] == patient_level).sum()  # fitted among the patient's ward
        e.attribute.value = "ward=emergency"
        assert "ward" not in [value for _, value in e.confounders.options]  # never its own column
        assert e.wait()["label"] == "ward: emergency vs the rest"
    finally:
        e.close()


def test_while_the_viewer_looks_the_other_attributes_films_are_calibrated_ahead(setup, tmp_path, monkeypatch):
    """Nothing is prepared before a browser shows the film (a kernel preheated for the next viewer must
    not take the cores from the viewers there); once one does, choosing another attribute reads no
    other patient's film: its calibration was done while the viewer looked at the first film."""
    from seegaan_explore.explore.calibration import FilmReader

    model, latents, table, cnn, oracle, images = setup
    e = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    try:
        e.wait()
        time.sleep(1.0)  # time enough for the tiny model to prepare a film ahead, had it begun
        assert not e.prepared
        e.film.seen = True  # what the film's JavaScript sets once it has drawn the player
        others = [a for a in e.renderer.study.attributes if a != e.attribute.value]
        deadline = time.monotonic() + 120
        while {a for _, a in e.prepared} != set(others) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {a for _, a in e.prepared} == set(others) and {p for p, _ in e.prepared} == {0}
        reads = []
        real = FilmReader._measure
        monkeypatch.setattr(FilmReader, "_measure", lambda self, row, amounts: reads.append(row) or real(
            self, row, amounts))
        e.attribute.value = "brightness"  # the tiny oracle reads it: a film calibrated on other patients
        assert e.wait()["attribute"] == "brightness" and e.result["calibration"].by == "the oracle"
        assert reads == []
    finally:
        e.close()


def test_a_request_interrupts_the_work_done_ahead():
    """The idle job stops at its next step once a request arrives; the request then runs."""
    from seegaan_explore.ui.worker import LatestWins

    ran, stopped, started = [], [], threading.Event()

    def ahead(interrupted):
        started.set()
        while not interrupted():
            time.sleep(0.01)
        stopped.append(time.monotonic())

    worker = LatestWins(lambda request, superseded: ran.append(request), idle_job=ahead)
    worker.request("first")
    assert started.wait(10)
    asked = time.monotonic()
    worker.request("second")
    assert worker.idle(10) and ran == ["first", "second"]
    assert stopped[0] - asked < 0.5  # the idle job stopped at its next step
    worker.close()


def test_closing_the_worker_stops_its_job_and_waits_for_the_thread():
    """A process that exits right after close() must not cut the thread inside torch (an abort)."""
    from seegaan_explore.ui.worker import LatestWins

    started, told = threading.Event(), []

    def job(request, superseded):
        started.set()
        while not superseded():
            time.sleep(0.01)
        time.sleep(0.2)  # a last step after being told
        told.append(request)

    worker = LatestWins(job)
    worker.request("long")
    assert started.wait(10)
    worker.close()
    assert told == ["long"] and not worker._thread.is_alive()


def test_a_script_may_exit_while_the_worker_computes_ahead():
    """Nobody calls close() in a script that makes an Explorer and ends: the interpreter closes the
    worker itself, instead of cutting its thread inside torch (an abort, exit status 134)."""
    script = """
import time, torch
from seegaan_explore.ui.worker import LatestWins
started = []
def ahead(interrupted):
    x = torch.randn(700, 700)
    started.append(1)
    while not interrupted():
        x = torch.tanh(x @ x / 700)
worker = LatestWins(lambda request, superseded: None, idle_job=ahead)
worker.request("film")
while not started:
    time.sleep(0.01)
"""
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr


def test_the_intended_curve_of_a_log_scale_film_is_drawn_on_that_scale(setup):
    """Beside a film of even steps on a log scale, the intended values make a straight line, not an
    exponential one, and its ends are read in the attribute's own units."""
    from seegaan_explore.ui.film import film_curve

    model, latents, table, cnn, oracle, images = setup
    study = Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images).study
    targets = np.geomspace(100, 10000, 5)
    result = {"attribute": "nt_probnp_pg_ml", "targets": targets, "cnn_predictions": None, "log": True,
              "quality": {}, "label": "NT-proBNP"}
    curve = film_curve(result, study)
    assert curve["log"] and np.allclose(np.diff(curve["y"]), np.log(10) / 2)  # even steps: a straight line
    assert curve["y_low"] == study.format("nt_probnp_pg_ml", 100.0)
    assert curve["y_high"] == study.format("nt_probnp_pg_ml", 10000.0)


def test_a_refused_cohort_says_why_and_leaves_no_half_built_explorer_to_complain(setup, monkeypatch):
    """The constructor's error is the only message: the half-built widget, collected later, must not
    add an "Exception ignored" of its own."""
    import gc

    model, latents, table, _, _, images = setup
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: ignored.append(repr(u.exc_value)))
    with pytest.raises(ValueError, match="no numeric, two-valued or categorical column"):
        Explorer(model, latents, table[["image_id"]], images=images)
    gc.collect()
    assert ignored == []


@pytest.mark.parametrize("reason, shown", [
    ("the model draws this cohort coarsely", "The model draws this cohort coarsely."),
    ("crp_val moved the wrong way", "crp_val moved the wrong way."),  # a column's name, as written
    ("pH barely changed", "pH barely changed."),
])
def test_the_verdict_capitalises_a_word_but_never_a_name(explorer, reason, shown):
    from seegaan_explore.explore.verdict import CARE, Verdict
    from seegaan_explore.ui.words import verdict_html

    page = verdict_html({**explorer.result, "verdict": Verdict(CARE, (reason,))}, explorer.renderer.study)
    assert f"</b> {html.escape(shown)}</div>" in page


def test_the_cohort_map_says_what_its_grey_points_are(setup, tmp_path):
    """A patient without a value is drawn grey: the map's caption says so, where the cohort has one."""
    model, latents, table, cnn, oracle, images = setup
    gaps = table.copy()
    gaps.loc[[2, 5], "bmi"] = np.nan
    e = Explorer(model, latents, gaps, cnn=cnn, oracle=oracle, images=images, export_dir=tmp_path)
    try:
        e.wait()
        e.attribute.value = "bmi"
        e.wait()
        scatter = e.scatter.data[0]
        assert e.scatter.layout.title.text == "Cohort: click a patient · grey: not recorded"
        assert scatter.marker.color[2] == "lightgrey" and scatter.marker.colorbar.title.text == "bmi"
        e.attribute.value = "age"
        e.wait()
        assert e.scatter.layout.title.text == "Cohort: click a patient"
    finally:
        e.close()
