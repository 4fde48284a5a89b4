"""Figures for notebooks: radiographs and maps as RGB uint8 images in one plotly panel, sent as
compact PNGs so that a notebook stays small. Maps take the dashboard's colours
(:func:`~seegaan_explore.explore.export.diverging_rgb`, :func:`~seegaan_explore.explore.export.heat_overlay`)."""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from scipy import ndimage

from ..data.images import to_uint8

__all__ = ["outlined", "panel", "rgb"]


def rgb(image: np.ndarray) -> np.ndarray:
    """A grey image in [-1, 1] as RGB uint8 [R, R, 3]."""
    return np.repeat(to_uint8(image)[..., None], 3, axis=-1)


def outlined(image: np.ndarray, *masks_and_colours) -> np.ndarray:
    """The radiograph (or an RGB image) with each (mask, colour)'s outline drawn in that colour."""
    out = rgb(image) if np.ndim(image) == 2 else np.array(image)
    for mask, colour in masks_and_colours:
        out[mask & ~ndimage.binary_erosion(mask)] = colour
    return out


#: The widest a panel is drawn: JupyterLab's output area on a 1280 px screen with the file browser open.
MAX_WIDTH = 840


def panel(images, titles, title: str, cols: int | None = None, size: int = 150) -> go.Figure:
    """A grid of equally sized images (grey in [-1, 1] or RGB uint8), one title each, no wider than
    :data:`MAX_WIDTH` (the tiles shrink), each title wrapped to its tile's width."""
    images = np.stack([rgb(i) if np.ndim(i) == 2 else i for i in images])
    cols = cols or len(images)
    rows = -(-len(images) // cols)
    size = min(size, (MAX_WIDTH - 40) // cols)
    per_line = max(8, size // 6)  # characters of 11 px text a tile holds

    def wrapped(text: str) -> str:
        return text if "<br>" in text else "<br>".join(textwrap.wrap(text, per_line)) or text

    shown = [wrapped(t) for t in titles]
    title_px = 14 * max(t.count("<br>") + 1 for t in shown) + 6  # above each row, for its longest title
    height = rows * (size + title_px) + 60
    fig = px.imshow(images, facet_col=0, facet_col_wrap=cols, binary_string=True, title=title,
                    facet_col_spacing=0.01, facet_row_spacing=title_px / (height - 80) if rows > 1 else 0.0)
    fig.for_each_annotation(lambda a: a.update(text=shown[int(a.text.split("=")[-1])], font_size=11))
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(width=size * cols + 40, height=height, margin=dict(l=10, r=10, t=50 + title_px, b=10),
                      title_font_size=14)
    return fig
