"""The Explorer: widgets that write plain arguments, one renderer that answers them.

Controls only build an arguments dict (see :data:`~seegaan_explore.ui.renderer.DEFAULTS`); a worker
thread (:class:`~seegaan_explore.ui.worker.LatestWins`) hands the newest dict to
:class:`~seegaan_explore.ui.renderer.Renderer` and shows the result, so the kernel stays responsive and
a newer request supersedes an older one. This module lays the page out and decides what it shows; the
film player (:mod:`~seegaan_explore.ui.film`) and the cohort map (:mod:`~seegaan_explore.ui.cohort_map`)
are widgets of their own, as are the choice of image (:mod:`~seegaan_explore.ui.patient_choice`), the
attribution panel (:mod:`~seegaan_explore.ui.attribution_panel`) and the exports
(:mod:`~seegaan_explore.ui.downloads`); the default ranges are plain functions
(:mod:`~seegaan_explore.ui.ranges`). It is about 500 lines because every control is wired to the
arguments, every result to the panels, and the films prepared ahead are asked for with the same
arguments the controls would write (:meth:`Explorer.args_for`), here in one place.
"""

from __future__ import annotations

import html
import logging
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..explore.directions import ESTIMATORS
from ..explore.study import from_scale
from .attribution_panel import NONE, AttributionPanel
from .cohort_map import MAP_PX, CohortMap, CohortMapPanel, colour_scale
from .downloads import ExportBar
from .film import Film, film_curve, frame_labels, png
from .patient_choice import PatientChoice
from .ranges import anchor_buttons, default_range, log_by_default, rounded
from .renderer import CNN_PREDICTION, LATENT_SHIFT, MATCHABLE, MAX_FRAMES, SPLINE, Renderer, plainly
from .words import VERDICT_COLOURS, verdict_html
from .worker import LatestWins, release_freed_memory

logger = logging.getLogger(__name__)

# what each direction is, in words, with its name in the literature (directions.md) in brackets
ESTIMATOR_LABELS = {"mean_shift": "average difference (mean shift)",
                    SPLINE: "local difference (spline)",
                    "binned_means": "band averages (binned means)",
                    "pca": "main variation (PCA)",
                    "ridge": "predictor, diagnostic (ridge)",
                    "logistic": "classifier, diagnostic (logistic)",
                    "svm": "boundary, diagnostic (SVM)",
                    LATENT_SHIFT: "CNN gradient (latent shift)"}
ESTIMATOR_TIP = ("how the direction is found. Average difference (the default): how the model's code differs, on "
                 "average, between exams that differ in the attribute, holding what is chosen fixed. Local: the "
                 "same at the patient's own level. Diagnostic: what predicts the attribute from the code; it shows "
                 "what the model knows, and need not change the image as the attribute does. CNN gradient: what "
                 "this patient's CNN prediction responds to")
MATCH_TIP = ("fit on the exams that share the patient's value (its view, its sex), instead of holding it by a "
             "linear term")
SD_TIP = ("cohort SDs: steps from this patient's value, in standard deviations of the attribute across the "
          "cohort; values: the attribute's own values, in its units")
LEVELS_TIP = ("cohort SDs: steps from this patient's value, in standard deviations of the attribute across the "
              "cohort; levels: 0 is {0}, 1 is {1}, and 0.5 halfway between them")

PROGRESS_AFTER_S = 0.5  # show the progress indicator only for work a user would notice


class Explorer(widgets.VBox):
    """The clinician's dashboard over :class:`~seegaan_explore.ui.renderer.Renderer` (built from the
    arguments, which it takes as they are, or passed ready as ``renderer``).

    ``threaded=False`` renders in the calling thread (for scripts); the default renders in a worker
    thread, and :meth:`wait` blocks until the newest request is shown. While nothing else is asked and
    a browser shows the film, the worker calibrates the other attributes' films of the patient on
    screen ahead (``prepare_ahead``; :attr:`prepared` lists those done), so that choosing one shows its
    film sooner. ``import_options`` (``filters``, ``colour``, ``framing``, as the cohort was imported
    with them) read a viewer's own image as the cohort's were read.
    """

    def __init__(self, model=None, latents=None, table: pd.DataFrame | None = None, cnn=None, oracle=None,
                 images=None, *, dictionary=None, note: str = "", renderer: Renderer | None = None,
                 threaded: bool = True, export_dir: str | Path | None = None,
                 server_paths: bool | str | Path | None = None, prepare_ahead: bool = True, cache_dir=None,
                 import_options: dict | None = None):
        if renderer is None and (model is None or latents is None or table is None):
            raise ValueError("an Explorer needs a model, latents and a table (or a ready renderer=...)")
        options = import_options or {}
        self.renderer = renderer or Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images,
                                             dictionary=dictionary, cache_dir=cache_dir,
                                             framing=options.get("framing", "pad"))
        r = self.renderer
        self.result: dict | None = None  # the result on screen
        self._moving = threading.local()  # .quiet: this thread is the Explorer moving controls itself
        self.prepare_ahead = prepare_ahead  # calibrate the other attributes' films while the viewer looks
        self.prepared: deque[tuple] = deque(maxlen=256)  # (patient, attribute) prepared ahead, newest last
        self._worker = LatestWins(self._render, threaded=threaded, name="seegaan-explorer-render",
                                  idle_job=self._prepare_others)
        self._stage = ""
        self._started = 0.0
        self._film_key = None
        self._scatter_thread: threading.Thread | None = None
        self._coloured_by = None

        self._build_controls(r, server_paths, options)
        self._build_cohort_map(r)
        self._build_panels(r, Path(export_dir) if export_dir else Path(tempfile.mkdtemp(prefix="seegaan-export-")))
        self._lay_out(note)
        self._sync_confounders()
        self._sync_anchors()
        self._sync_units()
        self._sync_holding()
        self._sync_log()
        for control in (self.attribute, self.estimator, self.confounders, self.match, self.log_scale, self.units,
                        self.start, self.stop, self.calibrate, self.n_frames, self.patient, self.uploaded,
                        self.method):
            control.observe(self._on_control, names="value")
        self.film.observe(self._on_frame, names="frame")
        self.film.observe(lambda _: self._worker.run_idle_job(), names="seen")
        self.view.observe(self._on_view, names="value")
        # The first view is rendered before the widget is displayed: a FigureWidget only ships the state it
        # has when displayed, and Voila (preheated) displays it before any browser is connected.
        self.request(sync=True)

    # ------------------------------------------------------------------ building the page

    def _build_controls(self, r: Renderer, server_paths, import_options: dict) -> None:
        style, wide = {"description_width": "90px"}, widgets.Layout(width="300px")
        study = r.study
        self.attribute = widgets.Dropdown(options=[(study.label(a), a) for a in study.attributes],
                                          value=study.default_attribute, description="Attribute", style=style,
                                          layout=wide)
        self.estimator = widgets.Dropdown(
            options=[(ESTIMATOR_LABELS[name], name) for name in ESTIMATORS]
            + ([(ESTIMATOR_LABELS[LATENT_SHIFT], LATENT_SHIFT)] if r.cnn is not None else []),
            value="mean_shift", description="Direction", tooltip=ESTIMATOR_TIP, style=style,
            layout=widgets.Layout(width="320px"))  # the default's name whole
        self.confounders = widgets.SelectMultiple(options=[], description="Hold fixed", rows=3, style=style,
                                                  layout=wide)
        self.match = widgets.Checkbox(value=False, description="match categories to the patient", indent=False,
                                      tooltip=MATCH_TIP, layout=widgets.Layout(width="auto"))
        self.log_scale = widgets.Checkbox(value=log_by_default(study, r.cnn, study.default_attribute),
                                          description="log", indent=False, layout=widgets.Layout(width="80px"))
        self.units = widgets.Dropdown(options=[("cohort SDs", "sd"), ("values", "value")], value="sd",
                                      description="Steps in", tooltip=SD_TIP, style=style,
                                      layout=widgets.Layout(width="218px"))
        narrow = widgets.Layout(width="148px")
        self.start = widgets.FloatText(value=-2.0, description="From", tooltip=SD_TIP,
                                       style={"description_width": "90px"}, layout=narrow)
        self.stop = widgets.FloatText(value=2.0, description="to", tooltip=SD_TIP, style={"description_width": "20px"},
                                      layout=widgets.Layout(width="84px"))
        self.calibrate = widgets.Checkbox(value=True, description="calibrate", indent=False,
                                          tooltip="draw each step where the oracle or the CNN reads, on other "
                                                  "patients' films, the change it promises",
                                          layout=widgets.Layout(width="92px", margin="0 0 0 4px"))
        self.n_frames = widgets.IntSlider(value=9, min=3, max=MAX_FRAMES // 2, description="Frames", style=style,
                                          layout=wide, continuous_update=False)
        choice = self.patient_choice = PatientChoice(len(r.latents), add_image=r.add_image, say=self._say,
                                                     quietly=self._quietly, server_paths=server_paths, style=style,
                                                     filters=import_options.get("filters"),
                                                     colour=import_options.get("colour", "refuse"))
        self.patient, self.uploaded, self.upload, self.path, self.load = (choice.patient, choice.uploaded,
                                                                          choice.upload, choice.path, choice.load)
        self.patient_info = widgets.HTML()
        self.anchors = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self._ranges: dict[str, tuple] = {}  # per attribute, the range last typed for it

    def _build_cohort_map(self, r: Renderer) -> None:
        cnn = r.cnn is not None
        self.view = widgets.ToggleButtons(
            options=[("similar images", "pca")] + ([("value vs CNN", "cnn")] if cnn else []),
            tooltips=["similar images lie near each other (the model's codes on their two main axes)"]
            + (["each patient's recorded value against the CNN's reading"] if cnn else []),
            value="pca", style={"button_width": "120px"})
        self.cohort = CohortMapPanel(*self._scatter_xy("pca"), on_click=self.patient_choice.pick,
                                     on_hover=self._on_hover)
        self.scatter_box = self.cohort.box
        # empty until a point is hovered: another patient's image here would be read as this one's
        self.thumbnail = widgets.Image(value=b"", format="png", width=120, height=120,
                                       layout=widgets.Layout(visibility="hidden"))
        self.thumbnail_caption = widgets.HTML("<small>Point at a patient in the cohort map to see their image "
                                              "here.</small>")

    def _build_panels(self, r: Renderer, export_dir: Path) -> None:
        self.film = Film(layout=widgets.Layout(min_height="330px"))
        self.attribution = AttributionPanel(r.cnn is not None, style={"description_width": "90px"})
        self.method, self.attribution_caption = self.attribution.method, self.attribution.caption
        self.attribution_original, self.attribution_frame = self.attribution.original, self.attribution.frame
        self.words = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.exports = ExportBar(lambda: self.result, export_dir, self._say, study=r.study)
        self.export_buttons, self.export_link = self.exports.buttons, self.exports.link
        self.status = widgets.HTML()
        # what an upload, a typed path or an export answered: kept until the viewer's next change, so a
        # film drawn meanwhile (Play, the slider) cannot replace it as it replaces the status
        self.notice = widgets.HTML(layout=widgets.Layout(margin="0 0 0 16px"))
        self.progress = widgets.HTML(layout=widgets.Layout(visibility="hidden"))

    def _lay_out(self, note: str) -> None:
        """At 1280 x 800 the controls, the film, Play and the cohort map fit without scrolling; the
        attribution and the exports follow below."""
        gap = widgets.Label(layout=widgets.Layout(width="94px"))
        controls = widgets.VBox([
            self.attribute, self.estimator, self.confounders, widgets.HBox([gap, self.match]),
            widgets.HBox([self.units, self.log_scale], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.start, self.stop, self.calibrate], layout=widgets.Layout(align_items="center")),
            self.anchors, self.n_frames,
            widgets.HBox([self.patient, self.upload]), self.uploaded, self.patient_info,
            self.view, self.scatter_box,
        ], layout=widgets.Layout(width=f"{MAP_PX[0] + 24}px", min_width=f"{MAP_PX[0] + 24}px",
                                 margin="0 10px 0 0"))
        if self.patient_choice.offers_path:
            controls.children = (*controls.children, widgets.HBox([self.path, self.load]))
        hover = widgets.VBox([widgets.HTML("<b>Under the pointer</b>"), self.thumbnail, self.thumbnail_caption])
        right = widgets.VBox([
            self.film,
            widgets.VBox([widgets.HTML("<b>What this shows</b>"), self.words]),
            widgets.HBox([self.attribution, hover]),
            self.exports,
        ], layout=widgets.Layout(flex="1 1 auto"))
        self.results = right
        title = ("<style>.seegaan-stale {opacity: 0.35}</style>"
                 "<b style='font-size:15px'>SEE-GAAN explorer</b> <span style='color:#555'>what changes in a "
                 "radiograph as an attribute changes" + (", and where a CNN looks" if self.renderer.cnn else "")
                 + (f" · {html.escape(note)}" if note else "") + "</span>")
        self.progress.layout.margin = "0 0 0 16px"
        super().__init__([widgets.HTML(title),
                          widgets.HBox([self.status, self.notice, self.progress],
                                       layout=widgets.Layout(flex_flow="row wrap")),
                          widgets.HBox([controls, right])])
        self.add_class("seegaan-explorer")
        for name in ("attribute", "estimator", "units", "start", "stop", "calibrate", "n_frames", "patient",
                     "patient_info", "thumbnail",
                     "thumbnail_caption", "film", "method", "attribution_original", "attribution_frame",
                     "attribution_caption", "words", "status", "notice", "progress", "upload"):
            getattr(self, name).add_class("seegaan-" + name.replace("_", "-"))  # stable hooks for browser tests
        self.path.add_class("seegaan-server-path")
        self.load.add_class("seegaan-server-load")

    # ------------------------------------------------------------------ arguments and requests

    def args(self) -> dict:
        """The plain arguments the controls describe now."""
        return {"attribute": self.attribute.value, "estimator": self.estimator.value,
                **self._holding(tuple(self.confounders.value)), "log": self.log_scale.value,
                **self._range_args(self.attribute.value, self.units.value, self.start.value, self.stop.value),
                "n_frames": self.n_frames.value,
                "patient": self.patient_choice.value, "calibrate": self.calibrate.value,
                "method": None if self.method.value == NONE else self.method.value,
                "frame": min(self.film.frame, self.n_frames.value - 1)}

    def request(self, sync: bool = False) -> None:
        """Render the current arguments; a request still waiting or running is superseded.
        ``sync`` renders in the calling thread."""
        self._worker.request(self.args(), sync=sync)

    def wait(self, timeout: float = 120.0) -> dict | None:
        """Block until the newest request (and a redrawn cohort map) has been shown; returns the result."""
        deadline = time.monotonic() + timeout
        if not self._worker.idle(timeout):
            raise TimeoutError(f"the explorer did not finish rendering within {timeout} s")
        if self._scatter_thread is not None:
            self._scatter_thread.join(max(0.0, deadline - time.monotonic()))
        return self.result

    @property
    def scatter(self) -> go.Figure | CohortMap:
        """The cohort map's figure: a widget once a page shows the dashboard."""
        return self.cohort.figure

    def close(self) -> None:
        if hasattr(self, "_worker"):  # not where the constructor failed before it: only the widgets to close
            self._worker.close()
        super().close()

    def _render(self, args: dict, superseded: Callable[[], bool]) -> None:
        """One request's work, in the worker: the film first, then the attribution, unless superseded."""
        timer = threading.Timer(PROGRESS_AFTER_S, self._show_progress)
        self._started, self._stage = time.perf_counter(), "starting"
        timer.start()
        try:
            result = self.renderer.render(args, cancelled=superseded, progress=self._on_stage, attribution=False)
            if not result.get("cancelled") and not superseded():
                self._show(result)  # the film first: the attribution must not hold it back
                if not result.get("error") and result["args"]["method"] is not None and self.renderer.cnn is not None:
                    attributed = self.renderer.attribute(result, cancelled=superseded, progress=self._on_stage)
                    if not attributed.get("cancelled") and not superseded():
                        self._show_attribution(attributed)
        except Exception as e:  # noqa: BLE001 -- showing a result failed: say so, keep the worker alive
            logger.exception("showing a result failed")
            self._set_status(f"Could not show the result: {plainly(e)}", error=True)
        finally:
            timer.cancel()
            self.progress.layout.visibility = "hidden"

    def _on_stage(self, stage: str) -> None:
        self._stage = stage
        if self.progress.layout.visibility == "visible":
            self._show_progress()

    def _show_progress(self) -> None:
        elapsed = time.perf_counter() - self._started
        self.progress.value = (f"<span class='seegaan-busy'>&#8987; Working: {html.escape(self._stage)} "
                               f"({elapsed:.1f} s)</span>")
        self.progress.layout.visibility = "visible"

    @property
    def _quiet(self) -> bool:
        return getattr(self._moving, "quiet", False)

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """While the Explorer itself moves controls: their observers ask for no render. Per thread, since
        observers run in the thread that sets a value: the worker showing a film must not swallow a
        click the kernel applies meanwhile. Nested uses leave it quiet until the outermost ends (else a
        change made after an inner one would be taken for the user's, and reset what was just restored)."""
        before, self._moving.quiet = self._quiet, True
        try:
            yield
        finally:
            self._moving.quiet = before

    def _set_status(self, message: str, error: bool = False, colour: str | None = None) -> None:
        self.status.value = _coloured("seegaan-status", message, colour or ("#b00020" if error else "#2e7d32"))

    def _say(self, message: str, error: bool = False) -> None:
        """An answer to the viewer's upload, typed path or export, beside the film's status."""
        self.notice.value = _coloured("seegaan-said", message, "#b00020" if error else "#2e7d32")

    # ------------------------------------------------------------------ control handlers

    def _on_control(self, change) -> None:
        if self._quiet:
            return
        owner = change["owner"]
        self.notice.value = ""  # the viewer moved on
        with self._quietly():
            if owner is self.attribute:
                self._ranges[change["old"]] = (self.units.value, self.start.value, self.stop.value,
                                               self.log_scale.value)
                self._sync_confounders()
                self._sync_anchors()
                self._sync_units()
                self.units.value, self.start.value, self.stop.value, self.log_scale.value = \
                    self._range_for(self.attribute.value)
                self._sync_log()
            elif owner is self.units or (self.units.value == "value" and owner is self.log_scale):
                self.start.value, self.stop.value = self._default_range()
            elif owner is self.estimator:
                self._sync_holding()
            if owner is self.n_frames:
                self.film.frame = self.n_frames.value - 1
            if owner is self.patient:
                self.uploaded.value = ""
                self._follow_the_patient()
        self.request()

    def _follow_the_patient(self) -> None:
        """A range in values that starts at the last patient's value (as a clinical anchor sets it) starts
        at the new patient's: "from the patient to 125 pg/mL" stays true after a click on the map."""
        shown, study, attribute = self.result, self.renderer.study, self.attribute.value
        if self.units.value != "value" or shown is None or shown.get("error") or shown["attribute"] != attribute:
            return
        if self.start.value != rounded(float(study.to_shown(attribute, shown["patient_value"]))):
            return  # a range of the viewer's own
        log = self.log_scale.value
        try:
            scaled, _ = study.patient_value(attribute, log, row=self.patient.value)
        except ValueError:
            return
        start = rounded(float(study.to_shown(attribute, from_scale(np.array([scaled]), log)[0])))
        if start != self.stop.value:
            self.start.value = start

    def _on_anchor(self, button) -> None:
        """A clinical anchor: the film runs from the patient's value to it, in the attribute's units."""
        value = self.renderer.study.to_shown(self.attribute.value, self.result["patient_value"]) \
            if self.result and self.result["attribute"] == self.attribute.value else None
        with self._quietly():
            self.units.value = "value"
            start = rounded(value) if value is not None and np.isfinite(value) else self._default_range()[0]
            self.start.value, self.stop.value = start, button.anchor
        self.request()

    def _sync_log(self) -> None:
        """The log box is off, and says why, for an attribute that holds a value <= 0 (a log scale cannot
        show it: a death offset of 0 days)."""
        study, attribute = self.renderer.study, self.attribute.value
        values = study.values(attribute) if attribute != CNN_PREDICTION else np.ones(1)
        impossible = bool(np.any(values[np.isfinite(values)] <= 0))
        self.log_scale.disabled = impossible
        if not impossible:
            self.log_scale.tooltip = ""
            return
        levels = study.levels(attribute)
        self.log_scale.tooltip = (f"no log scale for levels ({', '.join(levels.values())})" if levels else
                                  f"a log scale needs positive values; {study.label(attribute)} holds "
                                  f"{study.format(attribute, float(np.nanmin(values)))}")
        self.log_scale.value = False

    def _sync_anchors(self) -> None:
        study, attribute = self.renderer.study, self.attribute.value
        self.anchors.children = anchor_buttons(study.info(attribute), self._on_anchor, study.levels(attribute))

    def _sync_units(self) -> None:
        """A two-level attribute's values are its levels, 0 and 1: the menu and the tooltips say which is which."""
        levels = self.renderer.study.levels(self.attribute.value)
        words = [levels[code] for code in sorted(levels)] if levels else None
        self.units.options = [("cohort SDs", "sd"), ("levels (0 to 1)" if words else "values", "value")]
        tip = LEVELS_TIP.format(*words) if words else SD_TIP
        self.units.tooltip = self.start.tooltip = self.stop.tooltip = tip

    def _sync_holding(self) -> None:
        """Only a mean shift holds attributes fixed (by linear terms, or by matching): for another
        direction the list and the box are off, keep what was chosen, and say why."""
        usable = self.estimator.value in MATCHABLE
        self.confounders.disabled = self.match.disabled = not usable
        why = f"only an average difference (mean shift) holds attributes fixed; the {self.estimator.label} cannot"
        self.confounders.tooltip = None if usable else why
        self.match.tooltip = MATCH_TIP if usable else why

    def _range_args(self, attribute: str, units: str, start: float, stop: float) -> dict:
        """The range boxes as arguments: values typed in the units the screen shows (the CNN's reading of
        NT-proBNP in pg/mL), given in the attribute's own (its logarithm)."""
        if units == "value":
            start, stop = map(float, self.renderer.study.from_shown(attribute, [start, stop]))
        return {"units": units, "start": start, "stop": stop}

    def _on_frame(self, change) -> None:
        """The film's slider stopped or the film paused on a frame: the attribution follows it."""
        if not self._quiet and self.result is not None and change["new"] != self.result["args"]["frame"]:
            self.request()

    def _default_range(self) -> tuple[float, float]:
        return default_range(self.renderer.study, self.attribute.value, self.units.value, self.log_scale.value,
                             row=self.patient_choice.row)

    def _range_for(self, attribute: str) -> tuple[str, float, float, bool]:
        """(units, start, stop, log) the controls take when ``attribute`` is chosen: what was typed for it
        before, else its defaults in the current units."""
        kept = self._ranges.get(attribute)
        if kept:
            return kept
        study, units = self.renderer.study, self.units.value
        log = log_by_default(study, self.renderer.cnn, attribute)
        return (units, *default_range(study, attribute, units, log, row=self.patient_choice.row), log)

    def _held_by_default(self, attribute: str) -> tuple[list[str], tuple[str, ...]]:
        """What may be held on ``attribute``'s film (every other whole column), and what its dictionary
        holds when it is chosen (NT-proBNP: age and view)."""
        study = self.renderer.study
        own = study.column_of(attribute)  # whole columns are held (a categorical one by all its levels)
        holdable = [a for a in [*study.attributes, *study.categorical()] if study.column_of(a) == a != own]
        return holdable, tuple(c for c in study.info(attribute).hold if c in holdable)

    def _holding(self, held: tuple[str, ...]) -> dict:
        """``held`` as arguments: by matching where the match box is ticked and a column can be matched
        (two levels, or categorical), else by a linear term; nothing where the direction is no mean shift."""
        study = self.renderer.study
        if self.estimator.value not in MATCHABLE:
            return {"confounders": (), "match": ()}
        match = tuple(c for c in held if self.match.value and (study.two_level(c) or c in study.categorical()))
        return {"confounders": tuple(c for c in held if c not in match), "match": match}

    def args_for(self, attribute: str) -> dict:
        """The arguments the controls would describe if ``attribute`` were chosen now (what a viewer's next
        film may ask for, prepared while the viewer looks at this one)."""
        units, start, stop, log = self._range_for(attribute)
        return {**self.args(), "attribute": attribute, **self._holding(self._held_by_default(attribute)[1]),
                "log": log, **self._range_args(attribute, units, start, stop), "frame": 0}

    def _prepare_others(self, interrupted: Callable[[], bool]) -> None:
        """While nothing else is asked, calibrate every other attribute's film of this patient ahead (0.6
        to 3.6 s each on 2 CPU cores, with and without bf16), so that choosing one shows its film without
        waiting for that; a viewer's request stops it after at most one patient's film. Only once a
        browser shows the film: a kernel Voila preheats for the next viewer would otherwise spend
        that time beside the viewers already there."""
        shown = self.result
        if not self.prepare_ahead or not self.film.seen or shown is None or shown.get("error") \
                or not shown["args"]["calibrate"] or shown["args"]["estimator"] == LATENT_SHIFT:
            return
        for attribute in self.renderer.study.attributes:
            if attribute == shown["attribute"]:
                continue
            args = self.args_for(attribute)
            if interrupted() or not self.renderer.prepare(args, cancelled=interrupted):
                return
            self.prepared.append((args["patient"], attribute))
        release_freed_memory()

    def _sync_confounders(self) -> None:
        """Offer every attribute but the chosen one and hold what the dictionary holds for it
        (NT-proBNP: age and view), listed first: the box shows three rows, and what is held must
        be seen without scrolling."""
        study = self.renderer.study
        holdable, held = self._held_by_default(self.attribute.value)
        with self._quietly():
            self.confounders.options = [(study.label(a), a) for a in [*held, *(a for a in holdable if a not in held)]]
            self.confounders.value = held

    def _on_hover(self, index: int) -> None:
        try:
            self.thumbnail.value = png(self.renderer.thumbnail(index))
            self.thumbnail.layout.visibility = "visible"
            value = self.renderer.study.values(self.attribute.value)[index]
            self.thumbnail_caption.value = (f"{html.escape(self.renderer.patient_label(index))}<br>"
                                            f"{html.escape(self.renderer.study.label(self.attribute.value))}: "
                                            f"{html.escape(self.renderer.study.format(self.attribute.value, value))}")
        except ValueError as e:
            self._set_status(str(e), error=True)

    def _scatter_xy(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        """The map's points: the latents' first two principal axes, or the attribute against the CNN's
        reading in the units it is shown in (NT-proBNP as the CNN reads it in pg/mL, not its logarithm)."""
        study = self.renderer.study
        if view == "cnn":
            return tuple(study.to_shown(a, study.values(a)) for a in (self.attribute.value, CNN_PREDICTION))
        return tuple(study.embedding()[0].T)

    def _on_view(self, change) -> None:
        """In a thread: the CNN view may first run the CNN over the whole cohort (seconds)."""
        def update() -> None:
            try:
                self._update_scatter(force=True)
                self.cohort.ensure_live()
            except Exception as e:  # noqa: BLE001 -- a thread's error would vanish: show it
                logger.exception("drawing the cohort failed")
                self._set_status(f"Could not draw the cohort: {plainly(e)}", error=True)

        self._scatter_thread = threading.Thread(target=update, name="seegaan-explorer-scatter", daemon=True)
        self._scatter_thread.start()

    def _update_scatter(self, force: bool = False) -> None:
        """Colour the map by the attribute, on the log scale the traversal uses for a lab value
        (:func:`colour_scale`); unless ``force``, only when that changed."""
        study, attribute = self.renderer.study, self.attribute.value
        with self.cohort.lock:
            values = np.asarray(study.values(attribute), dtype=np.float64)
            log = bool(self.log_scale.value) and np.nanmin(values, initial=np.inf) > 0
            if not force and (attribute, log) == self._coloured_by:
                return
            shown, label, ticks, hover = colour_scale(study, attribute, values, log)
            if self.view.value == "pca":
                share = self.renderer.study.embedding()[1]
                titles = (f"how the images differ most ({share[0]:.0%})", f"next most ({share[1]:.0%})")
                log_axes = (False, False)
            else:
                titles = (self._axis_title(attribute), self._axis_title(CNN_PREDICTION))
                log_axes = (log or study.shown_as(attribute)[1], study.shown_as(CNN_PREDICTION)[1])
            self.cohort.show(*self._scatter_xy(self.view.value), shown, label, titles, marked=self._marked(),
                             ticks=ticks, hover=hover, log_axes=log_axes)
            self._coloured_by = (attribute, log)

    def _axis_title(self, attribute: str) -> str:
        """A map axis in words and the units it shows: "NT-proBNP as the CNN reads it (pg/mL)"."""
        study = self.renderer.study
        unit = study.info(study.shown_as(attribute)[0]).unit
        return f"{study.label(attribute)} ({unit})" if unit and study.levels(attribute) is None else \
            study.label(attribute)

    def _marked(self) -> int | None:
        """The cohort patient on screen; None for an uploaded image (not on the map)."""
        patient = self.result["patient"] if self.result else self.patient.value
        return None if isinstance(patient, str) else patient

    # ------------------------------------------------------------------ showing a result

    def _show(self, result: dict) -> None:
        if result.get("error"):  # the last good film stays, greyed, and the status says which it is
            still = f" Still showing the last film drawn: {self.result['label']}." if self.result else ""
            self._set_status(result["error"].rstrip(".") + "." + still, error=True)
            self.results.add_class("seegaan-stale")
            return
        self.results.remove_class("seegaan-stale")
        previous, self.result = self.result, result
        key = result["traversal"]
        if key is not self._film_key:
            self._show_film(result)
            self._film_key = key
        self._update_scatter(force=previous is None)
        self.cohort.mark(self._marked())
        said = self.renderer.study.format(result["attribute"], result["patient_value"])
        self.patient_info.value = (f"<small>{html.escape(result['patient_label'])}: {html.escape(result['label'])} "
                                   f"{html.escape(said)} ({html.escape(result['patient_value_source'])})</small>")
        self._show_attribution(result)
        # how long a film the viewer asked for took; the opening film was drawn before anyone asked
        took, verdict = result["timings"]["total"], result["verdict"]
        how = ("" if previous is None else " (from memory)" if result["cached"]["traversal"] else
               f" (in {took:.{1 if took < 10 else 0}f} s)" if took >= 0.1 else " (in under 0.1 s)")
        self._set_status(f"Shown: {result['label']}, {len(result['frames'])} frames{how}. {verdict.headline}",
                         colour=VERDICT_COLOURS[verdict.level])
        self.cohort.ensure_live()

    def _show_film(self, result: dict) -> None:
        labels = frame_labels(result, self.renderer.study)
        with self._quietly():
            self.film.show(result["frames"], result["differences"], result["difference_limit"], labels,
                           film_curve(result, self.renderer.study), result["args"]["frame"])

    def _show_attribution(self, result: dict) -> None:
        """The attribution panel and the plain words, once ``result`` has its maps (or has none)."""
        self.result = result
        self.attribution.show(result, self.renderer.study)
        self.words.value = verdict_html(result, self.renderer.study)


def _coloured(name: str, message: str, colour: str) -> str:
    return f"<span class='{name}' style='color:{colour}'>{html.escape(message)}</span>"
