"""The export buttons: the film on screen written as a GIF, an MP4, a PNG panel or an HTML
report on the server, and offered to the page as a download link when it is small enough."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets

from ..explore import export
from ..explore.report import FilmReport, Readings
from ..fileio import safe_name
from .film import frame_labels
from .ranges import rounded

EXPORTS = ("GIF", "MP4", "PNG", "HTML")
LINK_LIMIT = 20_000_000  # bytes: larger exports are only saved on the server, not offered as a download link


def export_path(result: dict, kind: str, folder: Path, study=None) -> Path:
    """Where ``result`` (a :meth:`~seegaan_explore.ui.renderer.Renderer.render` result) is saved as
    ``kind``: named by what the film shows, in ``study``'s words and units (the attribute, the patient,
    the values it runs between: "NT-proBNP_0_6_to_2560_pg_mL.gif")."""
    shown = result["targets"] if study is None else study.to_shown(result["attribute"], result["targets"])
    unit = study.info(result["attribute"]).unit if study is not None else ""
    ends = "_to_".join(f"{rounded(float(v)):g}" for v in (shown[0], shown[-1]))
    stem = safe_name(f"{result['label']} {result['args']['patient']} {ends} {unit or ''}")
    return folder / f"{stem}.{kind.lower()}"


def save(result: dict, kind: str, path: Path, study=None) -> None:
    """Write ``result``'s traversal to ``path`` as ``kind`` (one of :data:`EXPORTS`). The GIF, PNG and
    HTML carry what the page says of the film: its two ends in words, the verdict and the scores
    (:class:`~seegaan_explore.explore.report.FilmReport`, in ``study``'s words)."""
    t, predictions = result["traversal"], result["cnn_predictions"]
    if predictions is not None:
        predictions = study.cnn_readings(predictions) if study is not None else Readings.of(
            predictions, result["cnn_label"] or "prediction")
    report = FilmReport.of_render(result, study)
    if kind == "GIF":
        export.save_gif(t, path, report=report, captions=frame_labels(result, study) if study is not None else None)
    elif kind == "MP4":
        export.save_mp4(t, path, report=report)
    elif kind == "PNG":
        export.save_panel(t, path, predictions=predictions, report=report)
    else:
        words = [result["range_note"]] if result.get("range_note") else []
        export.save_html_report(t, path, predictions=predictions,
                                title=" ".join([f"{result['label']}: {result['patient_label']}.", *words]),
                                report=report, step_labels=frame_labels(result, study) if study is not None else None)


def saved_html(path: Path) -> str:
    """Where ``path`` was saved on the server, after a download link to it unless it is over
    :data:`LINK_LIMIT` (the link carries the whole file)."""
    link = ""
    if path.stat().st_size <= LINK_LIMIT:
        encoded = base64.b64encode(path.read_bytes()).decode()
        link = (f"<a download='{html.escape(path.name)}' href='data:application/octet-stream;base64,{encoded}'>"
                f"download {html.escape(path.name)}</a> ")
    return f"{link}<small>(saved on the server at {html.escape(str(path))})</small>"


class ExportBar(widgets.HBox):
    """One button per format in :data:`EXPORTS` and the :attr:`link` to what was saved. A click saves
    ``result()`` (the result on screen, or None) under ``folder`` in ``study``'s words;
    ``say(message, error)`` reports."""

    def __init__(self, result: Callable[[], dict | None], folder: Path, say: Callable[..., None], study=None):
        self._result, self._folder, self._say, self._study = result, folder, say, study
        self.buttons = [widgets.Button(description=name, icon="download", layout=widgets.Layout(width="90px"))
                        for name in EXPORTS]
        for button in self.buttons:
            button.on_click(self._on_click)
        self.link = widgets.HTML()
        super().__init__([widgets.HTML("<b>Export</b>&nbsp;"), *self.buttons, self.link])

    def _on_click(self, button) -> None:
        result = self._result()
        if result is None:
            self._say("Nothing to export yet: no traversal on screen.", error=True)
            return
        path = export_path(result, button.description, self._folder, self._study)
        try:
            save(result, button.description, path, self._study)
        except (ImportError, OSError, ValueError, RuntimeError) as e:
            self._say(f"Export to {path} failed: {e}", error=True)
            return
        self.link.value = saved_html(path)
        self._say(f"Exported {path.name}.")
