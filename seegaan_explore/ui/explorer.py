"""The Explorer: widgets that write plain arguments, one renderer that answers them.

Controls only build an arguments dict (see :data:`~seegaan_explore.ui.renderer.DEFAULTS`); a worker
thread hands the newest dict to :class:`~seegaan_explore.ui.renderer.Renderer` and shows the result,
so the kernel stays responsive and a newer request supersedes an older one. The traversal player
is a plotly figure with frames that the browser plays by itself (smooth, no kernel round trip per
frame); the only FigureWidget is the cohort scatter, which needs clicks and hovers.
"""

from __future__ import annotations

import base64
import copy
import html
import os
import tempfile
import threading
import time
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..data.formats import ImageReadError
from ..data.readers import read_image
from ..explore import export
from ..explore.attribution import METHODS
from ..explore.directions import ESTIMATORS
from ..explore.study import from_scale
from .cohort_map import CohortMap
from .film import Film, film_curve, png
from .renderer import CNN_PREDICTION, LATENT_SHIFT, MAX_FRAMES, SPLINE, Renderer
from .serve import SERVER_PATHS_ENV
from .words import VERDICT_COLOURS, verdict_html

ESTIMATOR_LABELS = {SPLINE: "mean shift at the patient's level (spline)"}

PROGRESS_AFTER_S = 0.5  # show the progress indicator only for work a user would notice
MAP_PX = (300, 250)  # the cohort map's width and height: it shares the left column with the controls
SCATTER_ACK_S = 1.5  # a browser that shows the cohort map acknowledges an edit within this (else: rebuild it)
EXPORTS = ("GIF", "MP4", "PNG", "HTML")
LINK_LIMIT = 20_000_000  # bytes: larger exports are only saved on the server, not offered as a download link
UPLOAD_SUFFIXES = ".dcm,.dicom,.ima,.png,.jpg,.jpeg,.tif,.tiff,.npy"


def _server_paths(setting: bool | str | Path) -> tuple[Path | None, bool]:
    """(the folder typed paths are confined to, whether the page offers the box at all) from
    :data:`~seegaan_explore.ui.serve.SERVER_PATHS_ENV`'s "0" (no), "1" (any path) or a folder."""
    if isinstance(setting, bool) or setting in ("0", "1"):
        return None, setting in (True, "1")
    return Path(setting).resolve(), True


def _signed_unit(image: np.ndarray) -> np.ndarray:
    """uint8 grey back to [-1, 1], as the export helpers take it."""
    return image.astype(np.float32) / 127.5 - 1


class Explorer(widgets.VBox):
    """The clinician's dashboard over :class:`~seegaan_explore.ui.renderer.Renderer` (built from the
    arguments, which it takes as they are, or passed ready as ``renderer``).

    ``threaded=False`` renders in the calling thread (for scripts); the default renders in a worker
    thread, and :meth:`wait` blocks until the newest request is shown.
    """

    def __init__(self, model=None, latents=None, table: pd.DataFrame | None = None, cnn=None, oracle=None,
                 images=None, *, dictionary=None, note: str = "", renderer: Renderer | None = None,
                 threaded: bool = True, export_dir: str | Path | None = None,
                 server_paths: bool | str | Path | None = None):
        if renderer is None and (model is None or latents is None or table is None):
            raise ValueError("an Explorer needs a model, latents and a table (or a ready renderer=...)")
        self.renderer = renderer or Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images,
                                             dictionary=dictionary)
        # a file path typed in the page reads files on the server: anywhere only for a server on this
        # machine; under a folder (``--data-root``) for one that others reach
        self._server_root, self._server_paths = _server_paths(
            os.environ.get(SERVER_PATHS_ENV, "1") if server_paths is None else server_paths)
        r = self.renderer
        self.result: dict | None = None  # the result on screen
        self._quiet = False  # set while the Explorer itself moves controls, so that no request follows
        self._threaded = threaded
        self._condition = threading.Condition()
        self._token = 0  # of the newest request
        self._pending: tuple[int, dict] | None = None
        self._shown_token = 0
        self._busy = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self._stage = ""
        self._started = 0.0
        self._export_dir = Path(export_dir) if export_dir else Path(tempfile.mkdtemp(prefix="seegaan-export-"))
        self._film_key = None
        self._scatter_thread: threading.Thread | None = None
        self._coloured_by = None

        self._build_controls(r)
        self._build_cohort_map(r)
        self._build_panels(r)
        self._lay_out(note)
        self._sync_confounders(defaults=True)
        self._sync_anchors()
        for control in (self.attribute, self.estimator, self.confounders, self.match, self.log_scale, self.units,
                        self.start, self.stop, self.n_frames, self.patient, self.uploaded, self.method):
            control.observe(self._on_control, names="value")
        self.film.observe(self._on_frame, names="frame")
        self.view.observe(self._on_view, names="value")
        # The first view is rendered before the widget is displayed: a FigureWidget only ships the state it
        # has when displayed, and Voila (preheated) displays it before any browser is connected.
        self.request(sync=True)

    # ------------------------------------------------------------------ building the page

    def _build_controls(self, r: Renderer) -> None:
        style, wide = {"description_width": "90px"}, widgets.Layout(width="300px")
        study = r.study
        self.attribute = widgets.Dropdown(options=[(study.label(a), a) for a in study.attributes],
                                          value=study.default_attribute, description="Attribute", style=style,
                                          layout=wide)
        self.estimator = widgets.Dropdown(
            options=[(ESTIMATOR_LABELS.get(e.name, f"{e.name.replace('_', ' ')} ({e.kind})"), e.name)
                     for e in ESTIMATORS.values()]
            + ([("latent shift (this patient's CNN gradient)", LATENT_SHIFT)] if r.cnn is not None else []),
            value="mean_shift", description="Direction", style=style, layout=wide)
        self.confounders = widgets.SelectMultiple(options=[], description="Hold fixed", rows=3, style=style,
                                                  layout=wide)
        self.match = widgets.Checkbox(value=False, description="match two-level ones to the patient", indent=False,
                                      tooltip="fit on the exams that share the patient's value (its view, its sex), "
                                              "instead of holding it by a linear term",
                                      layout=widgets.Layout(width="auto"))
        self.log_scale = widgets.Checkbox(value=self._log_by_default(study.default_attribute), description="log",
                                          indent=False, layout=widgets.Layout(width="80px"))
        self.units = widgets.Dropdown(options=[("SDs", "sd"), ("values", "value")], value="sd",
                                      description="Steps in", style=style, layout=widgets.Layout(width="218px"))
        narrow = widgets.Layout(width="148px")
        self.start = widgets.FloatText(value=-2.0, description="From", style={"description_width": "90px"},
                                       layout=narrow)
        self.stop = widgets.FloatText(value=2.0, description="to", style={"description_width": "20px"},
                                      layout=widgets.Layout(width="100px"))
        self.n_frames = widgets.IntSlider(value=9, min=3, max=MAX_FRAMES // 2, description="Frames", style=style,
                                          layout=wide, continuous_update=False)
        self.patient = widgets.BoundedIntText(value=0, min=0, max=len(r.latents) - 1, description="Patient #",
                                              style=style, layout=narrow)
        self.uploaded = widgets.Dropdown(options=[("a cohort patient (by #)", "")], value="",
                                         description="Image", style=style,
                                         layout=widgets.Layout(width="300px", display="none"))  # until an upload
        self.upload = widgets.FileUpload(accept=UPLOAD_SUFFIXES, multiple=False, description="Your image",
                                         layout=widgets.Layout(width="140px"))
        self.path = widgets.Text(placeholder="or a file path on the server" if self._server_root is None
                                 else "or a file path in the data folder", layout=widgets.Layout(width="210px"))
        self.load = widgets.Button(description="Encode", icon="upload", layout=widgets.Layout(width="86px"))
        self.upload.observe(self._on_upload, names="value")
        self.load.on_click(self._on_load_path)
        self.patient_info = widgets.HTML()
        self.anchors = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self._ranges: dict[str, tuple] = {}  # per attribute, the range last typed for it
        self.method = widgets.Dropdown(options=[(m.replace("_", " "), m) for m in METHODS] + [("none", None)],
                                       value="gradcam" if r.cnn is not None else None, description="Attribution",
                                       style=style, layout=wide, disabled=r.cnn is None)

    def _build_cohort_map(self, r: Renderer) -> None:
        self.view = widgets.ToggleButtons(options=[("latent map", "pca")]
                                          + ([("attribute vs CNN", "cnn")] if r.cnn is not None else []),
                                          value="pca", style={"button_width": "120px"})
        xy = self._scatter_xy("pca")
        self._scatter_lock = threading.RLock()
        self._scatter_shown = False  # a browser acknowledged an edit of the current map widget
        # the map's content; a page that shows the dashboard gets it as a widget (see _on_cohort_viewed)
        self.scatter: go.Figure | CohortMap = go.Figure(
            data=[go.Scatter(x=xy[0], y=xy[1], mode="markers", customdata=np.arange(len(r.latents)),
                             marker={"size": 6, "colorscale": "Viridis", "showscale": True,
                                     "colorbar": {"thickness": 10}},
                             hovertemplate="#%{customdata}<extra></extra>", name="cohort"),
                  go.Scatter(x=[xy[0][0]], y=[xy[1][0]], mode="markers", hoverinfo="skip", name="selected",
                             marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d62728"}})],
            layout={"height": MAP_PX[1], "width": MAP_PX[0], "margin": {"l": 36, "r": 6, "t": 26, "b": 34},
                    "showlegend": False, "title": {"text": "Cohort: click a patient", "font": {"size": 12}},
                    "dragmode": "pan", "font": {"size": 10}})
        self.scatter_box = widgets.Box([widgets.HTML("<i>Drawing the cohort map…</i>")],
                                       layout=widgets.Layout(min_width=f"{MAP_PX[0]}px", min_height=f"{MAP_PX[1]}px"))
        self.scatter_box._view_count = 0  # the browser reports its views of the box
        self.scatter_box.observe(self._on_cohort_viewed, names="_view_count")
        self.thumbnail = widgets.Image(value=png(r.thumbnail(0)), format="png", width=120, height=120)
        self.thumbnail_caption = widgets.HTML()

    def _build_panels(self, r: Renderer) -> None:
        self.film = Film(layout=widgets.Layout(min_height="330px"))
        self.attribution_original = widgets.Image(format="png", width=200, height=200)
        self.attribution_frame = widgets.Image(format="png", width=200, height=200)
        self.attribution_caption = widgets.HTML()
        self.words = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.export_buttons = [widgets.Button(description=name, icon="download", layout=widgets.Layout(width="90px"))
                               for name in EXPORTS]
        for button in self.export_buttons:
            button.on_click(self._on_export)
        self.export_link = widgets.HTML()
        self.status = widgets.HTML()
        self.progress = widgets.HTML(layout=widgets.Layout(visibility="hidden"))

    def _lay_out(self, note: str) -> None:
        """At 1280 x 800 the controls, the film, Play and the cohort map fit without scrolling; the
        attribution and the exports follow below."""
        gap = widgets.Label(layout=widgets.Layout(width="94px"))
        controls = widgets.VBox([
            self.attribute, self.estimator, self.confounders, widgets.HBox([gap, self.match]),
            widgets.HBox([self.units, self.log_scale], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.start, self.stop]), self.anchors, self.n_frames,
            widgets.HBox([self.patient, self.upload]), self.uploaded, self.patient_info,
            self.view, self.scatter_box,
        ], layout=widgets.Layout(width=f"{MAP_PX[0] + 24}px", min_width=f"{MAP_PX[0] + 24}px",
                                 margin="0 10px 0 0"))
        if self._server_paths:
            controls.children = (*controls.children, widgets.HBox([self.path, self.load]))
        attribution = widgets.VBox([
            self.method,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>Original</b>"), self.attribution_original]),
                          widgets.VBox([widgets.HTML("<b>This frame</b> (the film's slider)"),
                                        self.attribution_frame])]),
            self.attribution_caption], layout=widgets.Layout(width="440px"))
        hover = widgets.VBox([widgets.HTML("<b>Hovered in the map</b>"), self.thumbnail, self.thumbnail_caption])
        right = widgets.VBox([
            self.film,
            widgets.VBox([widgets.HTML("<b>What this shows</b>"), self.words]),
            widgets.HBox([attribution, hover]),
            widgets.HBox([widgets.HTML("<b>Export</b>&nbsp;"), *self.export_buttons, self.export_link]),
        ], layout=widgets.Layout(flex="1 1 auto"))
        title = ("<b style='font-size:15px'>SEE-GAAN explorer</b> <span style='color:#555'>what changes in a "
                 "radiograph as an attribute changes, and where a CNN looks"
                 + (f" · {html.escape(note)}" if note else "") + "</span>")
        self.progress.layout.margin = "0 0 0 16px"
        super().__init__([widgets.HTML(title), widgets.HBox([self.status, self.progress]),
                          widgets.HBox([controls, right])])
        self.add_class("seegaan-explorer")
        for name in ("attribute", "estimator", "units", "n_frames", "patient", "patient_info", "thumbnail",
                     "thumbnail_caption", "film", "method", "attribution_original", "attribution_frame",
                     "attribution_caption", "words", "status", "progress", "upload"):
            getattr(self, name).add_class("seegaan-" + name.replace("_", "-"))  # stable hooks for browser tests
        self.path.add_class("seegaan-server-path")
        self.load.add_class("seegaan-server-load")

    # ------------------------------------------------------------------ arguments and requests

    def args(self) -> dict:
        """The plain arguments the controls describe now."""
        held = tuple(self.confounders.value)
        match = tuple(c for c in held if self.match.value and self.renderer.study.two_level(c))
        return {"attribute": self.attribute.value, "estimator": self.estimator.value,
                "confounders": tuple(c for c in held if c not in match), "match": match,
                "log": self.log_scale.value, "units": self.units.value,
                "start": self.start.value, "stop": self.stop.value, "n_frames": self.n_frames.value,
                "patient": self.uploaded.value or self.patient.value,
                "method": self.method.value, "frame": min(self.film.frame, self.n_frames.value - 1)}

    def request(self, sync: bool = False) -> None:
        """Render the current arguments; a request still waiting or running is superseded.
        ``sync`` renders in the calling thread."""
        args = self.args()
        with self._condition:
            self._token += 1
            token = self._token
            self._pending = (token, args)
            self._condition.notify_all()
        if sync or not self._threaded:
            self._work_once()
        elif self._worker is None:
            self._worker = threading.Thread(target=self._work, name="seegaan-explorer-render", daemon=True)
            self._worker.start()

    def wait(self, timeout: float = 120.0) -> dict | None:
        """Block until the newest request (and a redrawn cohort map) has been shown; returns the result."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the explorer did not finish rendering within {timeout} s")
                self._condition.wait(left)
        if self._scatter_thread is not None:
            self._scatter_thread.join(max(0.0, deadline - time.monotonic()))
        return self.result

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        super().close()

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
            self._work_once()

    def _work_once(self) -> None:
        with self._condition:
            if self._pending is None:
                return
            token, args = self._pending
            self._pending, self._busy = None, True
        timer = threading.Timer(PROGRESS_AFTER_S, self._show_progress)
        self._started, self._stage = time.perf_counter(), "starting"
        timer.start()
        try:
            superseded = lambda: self._token != token  # noqa: E731
            result = self.renderer.render(args, cancelled=superseded, progress=self._on_stage, attribution=False)
            if not result.get("cancelled") and not superseded():
                self._show(result)  # the film first: the attribution must not hold it back
                if not result.get("error") and result["args"]["method"] is not None and self.renderer.cnn is not None:
                    attributed = self.renderer.attribute(result, cancelled=superseded, progress=self._on_stage)
                    if not attributed.get("cancelled") and not superseded():
                        self._show_attribution(attributed)
        except Exception as e:  # noqa: BLE001 -- showing a result failed: say so, keep the worker alive
            self._set_status(f"Could not show the result: {type(e).__name__}: {e}", error=True)
        finally:
            timer.cancel()
            self.progress.layout.visibility = "hidden"
            with self._condition:
                self._busy = False
                self._condition.notify_all()

    def _on_stage(self, stage: str) -> None:
        self._stage = stage
        if self.progress.layout.visibility == "visible":
            self._show_progress()

    def _show_progress(self) -> None:
        elapsed = time.perf_counter() - self._started
        self.progress.value = (f"<span class='seegaan-busy'>&#8987; Working: {html.escape(self._stage)} "
                               f"({elapsed:.1f} s)</span>")
        self.progress.layout.visibility = "visible"

    def _set_status(self, message: str, error: bool = False, colour: str | None = None) -> None:
        colour = colour or ("#b00020" if error else "#2e7d32")
        self.status.value = f"<span class='seegaan-status' style='color:{colour}'>{html.escape(message)}</span>"

    # ------------------------------------------------------------------ control handlers

    def _on_control(self, change) -> None:
        if self._quiet:
            return
        owner = change["owner"]
        self._quiet = True
        try:
            if owner is self.attribute:
                self._ranges[change["old"]] = (self.units.value, self.start.value, self.stop.value,
                                               self.log_scale.value)
                self._sync_confounders(defaults=True)
                self._sync_anchors()
                kept = self._ranges.get(self.attribute.value)  # what was typed for it before is kept
                if kept:
                    self.units.value, self.start.value, self.stop.value, self.log_scale.value = kept
                else:
                    self.log_scale.value = self._log_by_default(self.attribute.value)
                    self.start.value, self.stop.value = self._default_range()
            elif owner is self.units or (self.units.value == "value" and owner is self.log_scale):
                self.start.value, self.stop.value = self._default_range()
            if owner is self.n_frames:
                self.film.frame = self.n_frames.value - 1
            if owner is self.patient:
                self.uploaded.value = ""
        finally:
            self._quiet = False
        self.request()

    def _on_anchor(self, button) -> None:
        """A clinical anchor: the film runs from the patient's value to it, in the attribute's units."""
        value = self.result["patient_value"] if self.result and self.result["attribute"] == self.attribute.value \
            else None
        self._quiet = True
        try:
            self.units.value = "value"
            start = float(f"{value:.3g}") if value is not None and np.isfinite(value) else self._default_range()[0]
            self.start.value, self.stop.value = start, button.anchor
        finally:
            self._quiet = False
        self.request()

    def _sync_anchors(self) -> None:
        info = self.renderer.study.info(self.attribute.value)
        buttons = []
        for value, words in info.anchors:
            button = widgets.Button(description=info.format(value, unit=False), tooltip=words or info.format(value),
                                    layout=widgets.Layout(width="auto"))
            button.anchor = value
            button.on_click(self._on_anchor)
            buttons.append(button)
        unit = f" ({info.unit})" if info.unit else ""
        self.anchors.children = ([widgets.HTML(f"<small>go to{unit}:</small>"), *buttons] if buttons else [])

    def _on_frame(self, change) -> None:
        """The film's slider stopped or the film paused on a frame: the attribution follows it."""
        if not self._quiet and self.result is not None and change["new"] != self.result["args"]["frame"]:
            self.request()

    def _log_by_default(self, attribute: str) -> bool:
        """A lab value starts on its log scale: where the dictionary says so, or the CNN learned it so."""
        if self.renderer.study.info(attribute).log:
            return True
        config = getattr(self.renderer.cnn, "config", None)
        return attribute == getattr(config, "attribute", None) and bool(getattr(config, "log_transform", False))

    def _default_range(self) -> tuple[float, float]:
        """In SDs, 2 either side; in values, the patient's own value 2 SDs either side, within what the
        cohort shows (the study's bounds), in the attribute's units."""
        if self.units.value == "sd":
            return -2.0, 2.0
        study, name, log = self.renderer.study, self.attribute.value, self.log_scale.value
        if log and not np.nanmin(study.values(name), initial=np.inf) > 0:
            log = False
        row = self.patient.value if not self.uploaded.value else None
        try:
            centre, _ = study.patient_value(name, log, row=row) if row is not None else (None, "")
        except ValueError:
            centre = None
        if centre is None or not np.isfinite(centre):
            centre = float(np.nanmedian(study.scaled(name, log)))
        sd = study.sd(name, log)
        low, high, _ = study.within_range(name, log, centre - 2 * sd, centre + 2 * sd)
        return tuple(float(f"{v:.3g}") for v in from_scale(np.array([low, high]), log))

    def _sync_confounders(self, defaults: bool = False) -> None:
        """Offer every attribute but the chosen one; keep what is still valid, or with ``defaults``
        hold what the dictionary holds for this attribute (NT-proBNP: age and view)."""
        study, name = self.renderer.study, self.attribute.value
        keep = [c for c in self.confounders.value if c != name]
        if defaults:
            keep = [c for c in study.info(name).hold if c in study.attributes and c != name]
        self._quiet = True
        self.confounders.options = [(study.label(a), a) for a in study.attributes if a != name]
        self.confounders.value = tuple(keep)
        self._quiet = False

    def _on_click(self, trace, points, state) -> None:
        if points.point_inds:
            self._quiet = True
            self.uploaded.value = ""
            self._quiet = False
            self.patient.value = int(points.point_inds[0])  # observers request the render

    def _on_hover(self, trace, points, state) -> None:
        if not points.point_inds:
            return
        index = int(points.point_inds[0])
        try:
            self.thumbnail.value = png(self.renderer.thumbnail(index))
            value = self.renderer.study.values(self.attribute.value)[index]
            self.thumbnail_caption.value = (f"{html.escape(self.renderer.patient_label(index))}<br>"
                                            f"{html.escape(self.renderer.study.label(self.attribute.value))}: "
                                            f"{html.escape(self.renderer.study.format(self.attribute.value, value))}")
        except ValueError as e:
            self._set_status(str(e), error=True)

    def _scatter_xy(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        if view == "cnn":
            return self.renderer.study.values(self.attribute.value), self.renderer.study.values(CNN_PREDICTION)
        return tuple(self.renderer.embedding()[0].T)

    def _on_view(self, change) -> None:
        """In a thread: the CNN view may first run the CNN over the whole cohort (seconds)."""
        def update() -> None:
            try:
                self._update_scatter(force=True)
                self._ensure_scatter_is_live()
            except Exception as e:  # noqa: BLE001 -- a thread's error would vanish: show it
                self._set_status(f"Could not draw the cohort: {type(e).__name__}: {e}", error=True)

        self._scatter_thread = threading.Thread(target=update, name="seegaan-explorer-scatter", daemon=True)
        self._scatter_thread.start()

    def _update_scatter(self, force: bool = False) -> None:
        with self._scatter_lock:
            self._recolour_scatter(force)

    def _recolour_scatter(self, force: bool) -> None:
        attribute = self.attribute.value
        values = np.asarray(self.renderer.study.values(attribute), dtype=np.float64)
        # lab values span decades: colour them on the log scale the traversal uses, or one patient is yellow
        log = bool(self.log_scale.value) and np.nanmin(values, initial=np.inf) > 0
        if not force and (attribute, log) == self._coloured_by:
            return
        x, y = self._scatter_xy(self.view.value)
        name = self.renderer.study.label(attribute)
        shown, label = (np.log10(values), f"log10 {name}") if log else (values, name)
        share = self.renderer.embedding()[1]
        titles = ((f"latent axis 1 ({share[0]:.0%} of variance)", f"latent axis 2 ({share[1]:.0%})")
                  if self.view.value == "pca"
                  else (self.renderer.study.label(attribute), self.renderer.study.label(CNN_PREDICTION)))
        with self.scatter.batch_update():
            self.scatter.data[0].x, self.scatter.data[0].y = x, y
            self.scatter.data[0].marker.color = [float(v) if np.isfinite(v) else "lightgrey" for v in shown]
            self.scatter.data[0].marker.colorbar.title = {"text": label, "side": "right"}
            self.scatter.data[0].hovertemplate = f"#%{{customdata}}<br>{label} %{{marker.color:.3g}}<extra></extra>"
            self.scatter.layout.xaxis.title, self.scatter.layout.yaxis.title = titles
        self._coloured_by = (attribute, log)
        self._mark_patient()

    def _on_cohort_viewed(self, change) -> None:
        """Give each new page that shows the dashboard a cohort map created while it is connected.

        A FigureWidget whose model a page restores from the kernel's state can ignore every later edit
        (seen with Voila's preheated kernel): its colours would stay those of the first attribute. One
        created after the page connected applies them. The previous widget is left open:
        closing a model whose view is still on a page raises there."""
        if (change["new"] or 0) <= (change["old"] or 0):
            return
        self._replace_scatter_widget()

    def _replace_scatter_widget(self) -> None:
        with self._scatter_lock:
            scatter = CohortMap(go.Figure(self.scatter), self._scatter_lock)
            scatter.data[0].on_click(self._on_click)
            scatter.data[0].on_hover(self._on_hover)
            scatter.add_class("seegaan-scatter")
            scatter.observe(self._on_scatter_acknowledged, names="_js2py_traceDeltas")
            self.scatter, self._scatter_shown = scatter, False
        self.scatter_box.children = (scatter,)

    def _on_scatter_acknowledged(self, change) -> None:
        if change["new"] is not None:
            self._scatter_shown = True

    def _ensure_scatter_is_live(self) -> None:
        """Rebuild the cohort map when a browser showed it but stopped applying its edits.

        plotly.js acknowledges every edit. anywidget drops every message to a model whose module took
        over 2 s to load (plotly's is 5 MB; a loaded machine can take that long): such a map shows but
        never changes. A new widget gets a new model. Called from the render thread: the
        acknowledgement arrives on the kernel's thread."""
        if not self._scatter_shown:
            return  # no browser has shown the map (yet): nothing acknowledges
        deadline = time.monotonic() + SCATTER_ACK_S
        while self.scatter._trace_edit_in_process and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.scatter._trace_edit_in_process:
            self._replace_scatter_widget()

    def _mark_patient(self) -> None:
        patient = self.result["patient"] if self.result else self.patient.value
        with self._scatter_lock:
            if isinstance(patient, str):  # an uploaded image is not on the cohort map
                self.scatter.data[1].visible = False
            else:
                x, y = self.scatter.data[0].x, self.scatter.data[0].y
                with self.scatter.batch_update():
                    self.scatter.data[1].visible = True
                    self.scatter.data[1].x, self.scatter.data[1].y = [x[patient]], [y[patient]]
            self._refresh_scatter_state()

    def _refresh_scatter_state(self) -> None:
        """Copy the figure into the widget's synced state. Edits reach a connected browser as messages,
        but a second view of this widget (the dashboard displayed twice) starts from this state."""
        if not isinstance(self.scatter, CohortMap):
            return  # no page shows the map yet
        self.scatter._widget_data = copy.deepcopy(self.scatter._data)
        self.scatter._widget_layout = copy.deepcopy(self.scatter._layout_obj._props)

    def _add_upload(self, image: np.ndarray, name: str) -> None:
        key = self.renderer.add_image(image, name)
        self._quiet = True
        self.uploaded.options = [*[o for o in self.uploaded.options if o[1] != key], (name, key)]
        self.uploaded.layout.display = None
        self._quiet = False
        self.uploaded.value = key  # observers request the render
        self._set_status(f"Encoded {name}.")

    def _on_upload(self, change) -> None:
        for item in change["new"]:
            name = item["name"]
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / Path(name).name
                path.write_bytes(bytes(item["content"]))
                self._encode_file(path, name)

    def _on_load_path(self, _button) -> None:
        if not self._server_paths:
            return
        typed = self.path.value.strip()
        if self._server_root is None:
            path = Path(typed).expanduser()
        else:  # the same answer whether or not a file outside exists: nothing to probe
            path = (self._server_root / typed).resolve()
            if not path.is_relative_to(self._server_root):
                self._set_status(f"Could not use {typed}: only files in the data folder can be read", error=True)
                return
        self._encode_file(path, Path(typed).name)

    def _encode_file(self, path: Path, name: str) -> None:
        try:
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            self._add_upload(read_image(path), name)
        except (ImageReadError, FileNotFoundError, ValueError) as e:
            self._set_status(f"Could not use {name}: {e}", error=True)

    def _on_export(self, button) -> None:
        result = self.result
        if result is None:
            self._set_status("Nothing to export yet: no traversal on screen.", error=True)
            return
        a, t = result["args"], result["traversal"]
        stem = f"{a['attribute']}_{str(a['patient']).replace(':', '_')}_{a['units']}_{a['start']:g}_{a['stop']:g}"
        path = self._export_dir / f"{stem}.{button.description.lower()}"
        predictions = result["cnn_predictions"]
        try:
            if button.description == "GIF":
                export.save_gif(t, path)
            elif button.description == "MP4":
                export.save_mp4(t, path)
            elif button.description == "PNG":
                export.save_panel(t, path, predictions=predictions)
            else:
                export.save_html_report(t, path, predictions=predictions,
                                        prediction_label=result["cnn_label"] or "prediction",
                                        title=f"{result['label']}: {result['patient_label']}")
        except (ImportError, OSError, ValueError, RuntimeError) as e:
            self._set_status(f"Export to {path} failed: {e}", error=True)
            return
        link = ""
        if path.stat().st_size <= LINK_LIMIT:
            encoded = base64.b64encode(path.read_bytes()).decode()
            link = (f"<a download='{html.escape(path.name)}' href='data:application/octet-stream;base64,{encoded}'>"
                    f"download {html.escape(path.name)}</a> ")
        self.export_link.value = f"{link}<small>(saved on the server at {html.escape(str(path))})</small>"
        self._set_status(f"Exported {path.name}.")

    # ------------------------------------------------------------------ showing a result

    def _show(self, result: dict) -> None:
        if result.get("error"):
            self._set_status(result["error"], error=True)
            return
        previous, self.result = self.result, result
        key = result["traversal"]
        if key is not self._film_key:
            self._show_film(result)
            self._film_key = key
        self._update_scatter(force=previous is None)
        self._mark_patient()
        said = self.renderer.study.format(result["attribute"], result["patient_value"])
        self.patient_info.value = (f"<small>{html.escape(result['patient_label'])}: {html.escape(result['label'])} "
                                   f"{html.escape(said)} ({html.escape(result['patient_value_source'])})</small>")
        self._show_attribution(result)
        timings, verdict = result["timings"], result["verdict"]
        self._set_status(f"Ready: {result['label']}, {len(result['frames'])} frames "
                         f"({timings['total']:.2f} s{', traversal cached' if result['cached']['traversal'] else ''}). "
                         f"{verdict.headline}", colour=VERDICT_COLOURS[verdict.level])
        self._ensure_scatter_is_live()

    def _show_film(self, result: dict) -> None:
        study, name = self.renderer.study, result["attribute"]
        steps = [f" ({a:+.2g} SD)" if result["in_sd"] else "" for a in result["amounts"]]
        labels = [f"{result['label']}: {study.format(name, v)}{step}" for v, step in zip(result["targets"], steps)]
        self._quiet = True
        try:
            self.film.show(result["frames"], result["differences"], result["difference_limit"], labels,
                           film_curve(result, study), result["args"]["frame"])
        finally:
            self._quiet = False

    def _show_attribution(self, result: dict) -> None:
        """The attribution panel and the plain words, once ``result`` has its maps (or has none)."""
        self.result = result
        a, k = result["args"], result["args"]["frame"]
        original = result["original"] if result["original"] is not None else result["reconstruction"]
        if result["attribution_original"] is not None:
            self.attribution_original.value = png(export.heat_overlay(_signed_unit(original),
                                                                      result["attribution_original"]))
            self.attribution_frame.value = png(export.heat_overlay(_signed_unit(result["frames"][k]),
                                                                   result["attribution_frame"]))
            g = result["agreement"]
            self.attribution_caption.value = (
                f"<small>{html.escape(a['method'].replace('_', ' '))} on the original and on frame {k} "
                f"({html.escape(result['label'])} "
                f"{html.escape(self.renderer.study.format(result['attribute'], result['targets'][k]))}); "
                "bright = where the CNN looks. "
                f"Agreement with where the traversal changes the image: rank correlation "
                f"<b class='seegaan-agreement'>{g['spearman']:.2f}</b>, top-5% overlap {g['top_overlap']:.0%}.</small>")
        else:
            self.attribution_original.value = png(original)
            self.attribution_frame.value = png(result["frames"][k])
            following = a["method"] is not None and self.renderer.cnn is not None
            self.attribution_caption.value = ("<small>Attribution follows…</small>" if following
                                              else "<small>No attribution (no CNN, or none chosen).</small>")
        self.words.value = verdict_html(result, self.renderer.study)
