"""The attribution panel: where the CNN looks on the original and on the film's current frame, and how
well that agrees with where the traversal changes the image."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from ..explore import export
from ..explore.attribution import METHODS
from .film import png


def _signed_unit(image: np.ndarray) -> np.ndarray:
    """uint8 grey back to [-1, 1], as the export helpers take it."""
    return image.astype(np.float32) / 127.5 - 1


NONE = "none"  # the method chosen where no attribution is wanted


class AttributionPanel(widgets.VBox):
    """:attr:`method` (the attribution method, disabled without a CNN) over the two maps and their
    :attr:`caption`; :meth:`show` fills them from a render result."""

    def __init__(self, has_cnn: bool, style: dict | None = None):
        self.has_cnn = has_cnn
        # "none" is a word, not None: a dropdown whose value is None shows an empty box
        self.method = widgets.Dropdown(options=[(m.replace("_", " "), m) for m in METHODS] + [("none", NONE)],
                                       value="gradcam" if has_cnn else NONE, description="Attribution",
                                       style=style or {}, layout=widgets.Layout(width="300px"))
        if not has_cnn:  # nothing to choose: the caption says why
            self.method.layout.display = "none"
        self.original = widgets.Image(format="png", width=200, height=200)
        self.frame = widgets.Image(format="png", width=200, height=200)
        self.caption = widgets.HTML()
        super().__init__([
            self.method,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>Original</b>"), self.original]),
                          widgets.VBox([widgets.HTML("<b>This frame</b> (the film's slider)"), self.frame])]),
            self.caption], layout=widgets.Layout(width="440px"))

    def show(self, result: dict, study) -> None:
        """The maps of ``result`` (a render result) on its original and its current frame; without maps
        (none asked for, or still being computed) the plain images and why there are none."""
        a, k = result["args"], result["args"]["frame"]
        original = result["original"] if result["original"] is not None else result["reconstruction"]
        if result["attribution_original"] is not None:
            self.original.value = png(export.heat_overlay(_signed_unit(original), result["attribution_original"]))
            self.frame.value = png(export.heat_overlay(_signed_unit(result["frames"][k]), result["attribution_frame"]))
            g = result["agreement"]
            self.caption.value = (
                f"<small>{html.escape(a['method'].replace('_', ' '))} on the original and on frame {k} "
                f"({html.escape(result['label'])} "
                f"{html.escape(study.format(result['attribute'], result['targets'][k]))}); "
                "bright = where the CNN looks. "
                f"Agreement with where the traversal changes the image: rank correlation "
                f"<b class='seegaan-agreement'>{g['spearman']:.2f}</b>, top-5% overlap {g['top_overlap']:.0%}.</small>")
        else:
            self.original.value = png(original)
            self.frame.value = png(result["frames"][k])
            self.caption.value = ("<small>No attribution maps: this dashboard was started without a CNN to "
                                  "explain.</small>" if not self.has_cnn else
                                  "<small>No attribution chosen.</small>" if a["method"] is None else
                                  "<small>Attribution follows…</small>")
