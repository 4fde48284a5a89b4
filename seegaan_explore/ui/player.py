"""The traversal player: one plotly figure with frames that the browser plays by itself (smooth, no
kernel round trip per frame): radiograph, change from the reconstruction, and the prediction curve."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..explore import export

FRAME_MS = 80  # client-side playback: 12.5 frames per second


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def format_value(value: float) -> str:
    return f"{value:.3g}"


def player_figure(result: dict) -> go.Figure:
    """The traversal as one figure with frames: radiograph, change from the reconstruction, and the
    prediction curve with the current frame marked, played and scrubbed in the browser."""
    frames, targets = result["frames"], result["targets"]
    limit = result["difference_limit"]
    if result["cnn_predictions"] is not None:
        curve, curve_title = result["cnn_predictions"], result["cnn_label"]
    elif result["quality"].get("measured_by"):
        curve = result["quality"]["measured"]
        curve_title = f"{result['attribute']} measured by {result['quality']['measured_by']}"
    else:
        curve, curve_title = result["targets"], f"intended {result['attribute']}"
    names = [format_value(v) + (f" ({a:+.2g} SD)" if result["in_sd"] else "")
             for v, a in zip(targets, result["amounts"])]
    figure = make_subplots(rows=1, cols=3, column_widths=[0.34, 0.34, 0.32], horizontal_spacing=0.06,
                           subplot_titles=("Synthetic radiograph", f"Change from the reconstruction (±{limit:.2g})",
                                           curve_title))

    def images(k: int) -> list:
        return [go.Image(source=data_uri(frames[k]), hoverinfo="skip"),
                go.Image(source=data_uri(export.diverging_rgb(result["differences"][k], limit)), hoverinfo="skip")]

    def marker(k: int) -> go.Scatter:
        return go.Scatter(x=[targets[k]], y=[curve[k]], mode="markers", marker={"size": 13, "color": "#d62728"},
                          name="this frame", hovertemplate="%{y:.3g}<extra>this frame</extra>")

    first, second = images(0)
    figure.add_trace(first, 1, 1)
    figure.add_trace(second, 1, 2)
    figure.add_trace(go.Scatter(x=targets, y=curve, mode="lines+markers", name="over the traversal",
                                line={"color": "#1f77b4"}, hovertemplate="%{x:.3g}: %{y:.3g}<extra></extra>"), 1, 3)
    figure.add_trace(marker(0), 1, 3)
    figure.frames = [go.Frame(name=str(k), data=[*images(k), marker(k)], traces=[0, 1, 3])
                     for k in range(len(frames))]
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    figure.update_layout(
        height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False,
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0.0, "y": -0.08, "xanchor": "left",
                      "yanchor": "top", "pad": {"t": 0, "r": 10},
                      "buttons": [
                          {"label": "▶ Play", "method": "animate",
                           "args": [None, {"frame": {"duration": FRAME_MS, "redraw": True}, "fromcurrent": True,
                                           "transition": {"duration": 0}, "mode": "immediate"}]},
                          {"label": "❚❚ Pause", "method": "animate", "args": [[None], step_args]}]}],
        sliders=[{"active": 0, "x": 0.16, "len": 0.84, "y": -0.05, "yanchor": "top",
                  "currentvalue": {"prefix": f"{result['attribute']}: "}, "pad": {"t": 0},
                  "steps": [{"label": name, "method": "animate", "args": [[str(k)], step_args]}
                            for k, name in enumerate(names)]}],
    )
    figure.update_xaxes(visible=False, row=1, col=1).update_yaxes(visible=False, row=1, col=1)
    figure.update_xaxes(visible=False, row=1, col=2).update_yaxes(visible=False, row=1, col=2)
    figure.update_xaxes(title_text=result["label"] + (" (log scale)" if result["log"] else ""),
                        type="log" if result["log"] else "linear", row=1, col=3)
    return figure


def mime_output(figure: go.Figure) -> dict:
    """A display_data output the plotly mime renderer draws (frames included), without plotly.js from a CDN."""
    spec = json.loads(figure.to_json())
    spec["config"] = {"displaylogo": False}  # not "responsive": inside an output area it collapses to 0 px
    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.plotly.v1+json": spec, "text/plain": "traversal player"}}
