"""The cohort map: a plotly FigureWidget scatter of the latents, the one widget that needs clicks and hovers."""

from __future__ import annotations

import json
import os
import threading

import plotly.graph_objects as go

from .serve import PLOTLY_MODULE_ENV


def plotly_module_loader(path: str) -> str:
    """A small anywidget module that imports plotly's FigureWidget module from the page's own server.

    Otherwise every map widget carries the 5 MB module in its state: about 1.5 s through kernel, server
    and websocket, and a fresh compile for each map on a page. By URL the browser fetches it once and
    caches it. ``path`` is relative to the server's base URL (read from the page's Jupyter config)."""
    return ("const config = document.getElementById('jupyter-config-data');\n"
            "const base = ((config && JSON.parse(config.textContent).baseUrl) || '/').replace(/\\/?$/, '/');\n"
            f"const plotly = await import(new URL(base + {json.dumps(path)}, location.href).href);\n"
            "export default plotly.default;\n")


class CohortMap(go.FigureWidget):
    """The cohort scatter, edited by the render thread while the kernel applies the browser's messages.

    While ipywidgets applies a message from the browser it holds the widget's notifications and squashes
    every change made meanwhile, from any thread, into the last value; plotly sends each edit as a
    value followed by None, so an edit from the render thread in that window is never sent. Browser
    messages are therefore applied under the Explorer's lock, which every edit from another thread takes.
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
