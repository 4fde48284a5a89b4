"""The range a traversal starts with before anyone types one: its scale, its ends, and the ends of a
clinical anchor, in the attribute's units or in SDs."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import numpy as np

from ..explore.dictionary import AttributeInfo
from ..explore.study import Study, from_scale


def log_by_default(study: Study, cnn, attribute: str) -> bool:
    """A lab value starts on its log scale: where the dictionary says so, or the CNN learned it so."""
    if study.info(attribute).log:
        return True
    config = getattr(cnn, "config", None)
    return attribute == getattr(config, "attribute", None) and bool(getattr(config, "log_transform", False))


def rounded(value: float) -> float:
    """Three significant digits: what a range box shows."""
    return float(f"{value:.3g}")


def default_range(study: Study, attribute: str, units: str, log: bool, row: int | None) -> tuple[float, float]:
    """In SDs (``units`` "sd"), 2 either side; in values, the value of the patient in ``row`` (None: an
    image not in the cohort, so the cohort's median) 2 SDs either side, within what the cohort shows
    (the study's bounds), in the units the screen shows (:meth:`~seegaan_explore.explore.study.Study.to_shown`)."""
    if units == "sd":
        return -2.0, 2.0
    if log and not np.nanmin(study.values(attribute), initial=np.inf) > 0:
        log = False
    try:
        centre, _ = study.patient_value(attribute, log, row=row) if row is not None else (None, "")
    except ValueError:
        centre = None
    if centre is None or not np.isfinite(centre):
        centre = float(np.nanmedian(study.scaled(attribute, log)))
    sd = study.sd(attribute, log)
    try:
        low, high, _ = study.within_range(attribute, log, centre - 2 * sd, centre + 2 * sd, start=centre)
    except ValueError:  # the patient lies beyond the dictionary's plausible range: offer all of it
        low, high = study.bounds(attribute, log)
    return tuple(rounded(v) for v in study.to_shown(attribute, from_scale(np.array([low, high]), log)))


def anchor_buttons(info: AttributeInfo, on_click: Callable,
                   levels: dict[float, str] | None = None) -> list[widgets.Widget]:
    """"go to (pg/mL): 125 300 450 900 1,800": one button per clinical anchor of the dictionary (none
    without), each carrying its value as ``button.anchor``; narrow, so that five fit on one line. A
    two-level attribute (``levels``, code -> word) has its levels as anchors: "go to: female male"."""
    if levels:
        anchors = [(code, word, f"the film runs from the patient to {word}") for code, word in levels.items()]
        unit = ""
    else:
        anchors = [(value, info.format(value, unit=False), words or info.format(value))
                   for value, words in info.anchors]
        unit = f" ({info.unit})" if info.unit else ""
    buttons = []
    for value, text, tip in anchors:
        button = widgets.Button(description=text, tooltip=tip, layout=widgets.Layout(width="auto", padding="0 6px"))
        button.anchor = value
        button.on_click(on_click)
        buttons.append(button)
    return [widgets.HTML(f"<small>go to{unit}:</small>"), *buttons] if buttons else []
