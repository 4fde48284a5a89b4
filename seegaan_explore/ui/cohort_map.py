"""The cohort map: a plotly FigureWidget scatter of the cohort, the one widget that needs clicks and
hovers, and the panel that keeps it drawn on every page that shows it (:class:`CohortMapPanel`)."""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from .serve import PLOTLY_MODULE_ENV

CAPTION = "Cohort: click a patient"
MAP_PX = (300, 250)  # the cohort map's width and height: it shares the left column with the controls
SCATTER_ACK_S = 1.5  # a browser that shows the cohort map acknowledges an edit within this (else: rebuild it)


def plotly_module_loader(path: str) -> str:
    """A small anywidget module that imports plotly's FigureWidget module from the page's own server.

    Otherwise every map widget carries the 5 MB module in its state: about 1.5 s through kernel, server
    and websocket, and a fresh compile for each map on a page. By URL the browser fetches it once and
    caches it. ``path`` is relative to the server's base URL (read from the page's Jupyter config)."""
    return ("const config = document.getElementById('jupyter-config-data');\n"
            "const base = ((config && JSON.parse(config.textContent).baseUrl) || '/').replace(/\\/?$/, '/');\n"
            f"const plotly = await import(new URL(base + {json.dumps(path)}, location.href).href);\n"
            "export default plotly.default;\n")


def log_ticks(low: float, high: float) -> list[float]:
    """Round values (1, 2 and 5 times a power of ten; only the powers where that makes more than seven)
    from ``low`` to ``high`` (both > 0): where a colour bar on the log scale is labelled in the
    attribute's units. Fewer than two such values in a narrow range: its ends."""
    values = [m * 10.0 ** k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
              for m in (1, 2, 5)]
    inside = [v for v in values if low <= v <= high]
    if len(inside) > 7:
        inside = [v for v in inside if f"{v:e}".startswith("1")]
    return inside if len(inside) >= 2 else [low, high]


def colour_scale(study, attribute: str, values: np.ndarray, log: bool):
    """How the map shows ``values`` of ``attribute`` to a clinician: the colours (log10 of a lab value
    on its log scale, so that one patient is not yellow and the rest dark), the colour bar's title (with
    the unit) and ticks at the attribute's own round values or words, and each point's hover text
    ("NT-proBNP: 890 pg/mL")."""
    name, levels = study.label(attribute), study.levels(attribute)
    shown_as, logged = study.shown_as(attribute)  # the CNN's reading of ln NT-proBNP is shown in pg/mL
    unit = study.info(shown_as).unit
    title = f"{name} ({unit})" if unit and levels is None else name
    shown, ticks = study.to_shown(attribute, values), None
    if log or logged:
        colours, title = np.log10(shown), f"{title}, log scale"
        finite = shown[np.isfinite(shown)]
        if finite.size:
            at = log_ticks(float(finite.min()), float(finite.max()))
            ticks = ([math.log10(v) for v in at], [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in at])
    else:
        colours = values
        if levels is not None:
            ticks = (list(levels), list(levels.values()))
    hover = [f"{name}: {study.format(attribute, float(v))}" if np.isfinite(v) else f"{name}: no value" for v in values]
    return colours, title, ticks, hover


class CohortMap(go.FigureWidget):
    """The cohort scatter, edited by the render thread while the kernel applies the browser's messages.

    While ipywidgets applies a message from the browser it holds the widget's notifications and squashes
    every change made meanwhile, from any thread, into the last value; plotly sends each edit as a
    value followed by None, so an edit from the render thread in that window is never sent. Browser
    messages are therefore applied under the panel's lock, which every edit from another thread takes.
    """

    def __init__(self, figure: go.Figure, edit_lock: threading.RLock):
        module = os.environ.get(PLOTLY_MODULE_ENV)
        if module:
            self._esm = plotly_module_loader(module)
        super().__init__(figure)
        self._edit_lock = edit_lock

    def set_state(self, sync_data):
        with self._edit_lock:
            super().set_state(sync_data)


class CohortMapPanel:
    """The cohort map in its box: one point per patient, coloured by given values, a ring on the
    selected one. It is told what to show (coordinates, colours, labels) and calls ``on_click(index)``
    and ``on_hover(index)``; what the points mean is the caller's.

    Until a page shows the box, :attr:`figure` is a plain figure (the map's content); each page that
    shows it gets a :class:`CohortMap` made while it is connected (see :meth:`_on_viewed`). Every edit
    takes :attr:`lock`, which a caller holds to make several edits one.
    """

    def __init__(self, x, y, on_click: Callable[[int], None], on_hover: Callable[[int], None]):
        self._on_click, self._on_hover = on_click, on_hover
        self.lock = threading.RLock()
        self._shown = False  # a browser acknowledged an edit of the current map widget
        self.figure: go.Figure | CohortMap = go.Figure(
            data=[go.Scatter(x=x, y=y, mode="markers", customdata=np.arange(len(x)),
                             marker={"size": 6, "colorscale": "Viridis", "showscale": True,
                                     "colorbar": {"thickness": 10}},
                             hovertemplate="#%{customdata}<extra></extra>", name="cohort"),
                  go.Scatter(x=[x[0]], y=[y[0]], mode="markers", hoverinfo="skip", name="selected",
                             marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d62728"}})],
            layout={"height": MAP_PX[1], "width": MAP_PX[0], "margin": {"l": 36, "r": 6, "t": 26, "b": 34},
                    "showlegend": False, "title": {"text": CAPTION, "font": {"size": 12}},
                    "dragmode": "pan", "font": {"size": 10}})
        self.box = widgets.Box([widgets.HTML("<i>Drawing the cohort map…</i>")],
                               layout=widgets.Layout(min_width=f"{MAP_PX[0]}px", min_height=f"{MAP_PX[1]}px"))
        self.box._view_count = 0  # the browser reports its views of the box
        self.box.observe(self._on_viewed, names="_view_count")

    def show(self, x, y, colours: np.ndarray, label: str, titles: tuple[str, str], marked: int | None,
             ticks: tuple[list[float], list[str]] | None, hover: list[str],
             log_axes: tuple[bool, bool] = (False, False)) -> None:
        """Points at ``x``, ``y`` coloured by ``colours`` (grey where not finite) under the colour bar's
        ``label``, the axes' ``titles`` (each on a log scale where ``log_axes`` says), and the ring on
        patient ``marked``. ``ticks`` (positions, words; None: plotly's) label the colour bar and ``hover``
        says each point's value, in the attribute's own words and units where the colours are on another
        scale (a lab value's log): :func:`colour_scale`."""
        with self.lock:
            trace = self.figure.data[0]
            with self.figure.batch_update():
                trace.x, trace.y = x, y
                trace.marker.color = [float(v) if np.isfinite(v) else "lightgrey" for v in colours]
                trace.marker.colorbar.title = {"text": label, "side": "right"}
                missing = not np.isfinite(np.asarray(colours, np.float64)).all()
                caption = CAPTION + (" · grey: not recorded" if missing else "")
                if self.figure.layout.title.text != caption:  # (an unchanged layout sends the browser nothing)
                    self.figure.layout.title.text = caption
                trace.marker.colorbar.tickvals, trace.marker.colorbar.ticktext = ticks if ticks else (None, None)
                trace.text = hover
                trace.hovertemplate = "#%{customdata}<br>%{text}<extra></extra>"
                self.figure.layout.xaxis.title, self.figure.layout.yaxis.title = titles
                self.figure.layout.xaxis.type, self.figure.layout.yaxis.type = (
                    "log" if logged else "linear" for logged in log_axes)
            self.mark(marked)

    def mark(self, index: int | None) -> None:
        """The ring on patient ``index``; None (an image not in the cohort) shows none."""
        with self.lock:
            if index is None:
                self.figure.data[1].visible = False
            else:
                x, y = self.figure.data[0].x, self.figure.data[0].y
                with self.figure.batch_update():
                    self.figure.data[1].visible = True
                    self.figure.data[1].x, self.figure.data[1].y = [x[index]], [y[index]]
            self._refresh_state()

    def ensure_live(self) -> None:
        """Rebuild the map when a browser showed it but stopped applying its edits.

        plotly.js acknowledges every edit. anywidget drops every message to a model whose module took
        over 2 s to load (plotly's is 5 MB; a loaded machine can take that long): such a map shows but
        never changes. A new widget gets a new model. Called from a worker thread: the acknowledgement
        arrives on the kernel's thread."""
        if not self._shown:
            return  # no browser has shown the map (yet): nothing acknowledges
        deadline = time.monotonic() + SCATTER_ACK_S
        while self.figure._trace_edit_in_process and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.figure._trace_edit_in_process:
            self._replace_widget()

    def _on_viewed(self, change) -> None:
        """Give each new page that shows the dashboard a cohort map created while it is connected.

        A FigureWidget whose model a page restores from the kernel's state can ignore every later edit
        (seen with Voila's preheated kernel): its colours would stay those of the first attribute. One
        created after the page connected applies them. The previous widget is left open:
        closing a model whose view is still on a page raises there."""
        if (change["new"] or 0) <= (change["old"] or 0):
            return
        self._replace_widget()

    def _replace_widget(self) -> None:
        with self.lock:
            figure = CohortMap(go.Figure(self.figure), self.lock)
            figure.data[0].on_click(self._clicked)
            figure.data[0].on_hover(self._hovered)
            figure.add_class("seegaan-scatter")
            figure.observe(self._on_acknowledged, names="_js2py_traceDeltas")
            self.figure, self._shown = figure, False
        self.box.children = (figure,)

    def _clicked(self, trace, points, state) -> None:
        if points.point_inds:
            self._on_click(int(points.point_inds[0]))

    def _hovered(self, trace, points, state) -> None:
        if points.point_inds:
            self._on_hover(int(points.point_inds[0]))

    def _on_acknowledged(self, change) -> None:
        if change["new"] is not None:
            self._shown = True

    def _refresh_state(self) -> None:
        """Copy the figure into the widget's synced state. Edits reach a connected browser as messages,
        but a second view of this widget (the dashboard displayed twice) starts from this state."""
        if not isinstance(self.figure, CohortMap):
            return  # no page shows the map yet
        self.figure._widget_data = copy.deepcopy(self.figure._data)
        self.figure._widget_layout = copy.deepcopy(self.figure._layout_obj._props)
