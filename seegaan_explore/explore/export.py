"""Files a scientist looks at or shares: traversals as GIF, MP4, a PNG panel or a self-contained HTML
report, and attribution overlays (the direction and traversal archives the CLI reads back are
:mod:`~seegaan_explore.explore.archives`'). Given a
:class:`~seegaan_explore.explore.report.FilmReport`, the GIF, the PNG panel, the HTML report and
the HTML report carry which end is + and the quality scores (in words where a reader sees them, as JSON
in the file's metadata: the GIF's comment, the PNG's ``Comment`` text chunk).

Everything is written through :func:`~seegaan_explore.fileio.atomic_write`, so an interrupted
export never leaves a truncated file under the final name. Images in [-1, 1] map linearly to
0..255 grey; difference maps use a blue-white-red scale at a fixed +-``difference_range`` (0.5,
as the original SEE-GAAN figures), so panels of different patients compare at a glance.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from ..data.images import to_uint8
from ..fileio import atomic_write
from .attributes import split_scaled_name
from .report import FilmReport, Readings, ends_line
from .traversal import Traversal

__all__ = [
    "GAP", "LABEL_HEIGHT", "LINE_HEIGHT", "TITLE_HEIGHT", "checked_predictions", "diverging_rgb", "heat_overlay",
    "mp4_report", "save_attribution_png", "save_gif", "save_html_report", "save_mp4", "save_panel",
]

GAP = 4  # pixels between panel tiles
TITLE_HEIGHT = 20
LABEL_HEIGHT = 32  # two lines under each column: the step, and the prediction when given
LINE_HEIGHT = 15  # one line of the report under the panel
VERDICT_COLOURS = {"trust": (0, 110, 50), "care": (170, 95, 0), "stop": (180, 0, 0)}
# RdBu reversed: blue for darker than the reconstruction, red for brighter
_DIVERGING = np.array([(5, 48, 97), (67, 147, 195), (247, 247, 247), (214, 96, 77), (103, 0, 31)], np.float64)


def diverging_rgb(maps: np.ndarray, limit: float = 0.5) -> np.ndarray:
    """Signed maps -> RGB uint8 (..., 3): -limit blue, 0 white, +limit red; beyond the limit clipped."""
    if not limit > 0:
        raise ValueError(f"difference range must be positive, got {limit}")
    t = np.clip(np.asarray(maps, np.float64) / limit, -1, 1)
    anchors = np.linspace(-1, 1, len(_DIVERGING))
    return np.stack([np.round(np.interp(t, anchors, _DIVERGING[:, c])) for c in range(3)], -1).astype(np.uint8)


def heat_overlay(image: np.ndarray, attribution: np.ndarray, opacity: float = 0.6,
                 percentile: float = 100.0) -> np.ndarray:
    """Grey image [R, R] in [-1, 1] with |attribution| blended over it in a black-red-yellow heat scale;
    RGB uint8. Magnitude only: signed methods show where, not which way. Scaled to the ``percentile``
    of the magnitude (100: its maximum): a lower one keeps a few strong pixels (a side marker) from
    fading the rest to nothing."""
    image, attribution = np.asarray(image), np.asarray(attribution, np.float64)
    if image.shape != attribution.shape:
        raise ValueError(f"attribution map {attribution.shape} does not match the image {image.shape}")
    magnitude = np.abs(attribution)
    top = float(np.percentile(magnitude, percentile))
    a = np.minimum(magnitude / top, 1.0) if top > 0 else magnitude
    heat = np.stack([np.clip(3 * a, 0, 1), np.clip(3 * a - 1, 0, 1), np.clip(3 * a - 2, 0, 1)], -1) * 255
    grey = to_uint8(image).astype(np.float64)[..., None]
    alpha = opacity * a[..., None]
    return np.round(grey * (1 - alpha) + heat * alpha).astype(np.uint8)


def _step_labels(traversal: Traversal) -> list[str]:
    unit = " SD" if traversal.in_sd else ""
    return [f"{a:+.3g}{unit}" for a in traversal.amounts]


def _write_frames(path: Path, frames: np.ndarray, **options) -> None:
    import imageio.v3 as iio

    path = Path(path)
    with atomic_write(path, suffix=path.suffix) as tmp:  # imageio picks the format by suffix
        iio.imwrite(tmp, frames, **options)


def save_gif(traversal: Traversal, path: str | Path, fps: float = 8, report: FilmReport | None = None,
             captions: list[str] | None = None) -> None:
    """The traversal's frames as a looping grey GIF (lossless: 256 grey levels); the ``report``
    (its ends and scores, :class:`~seegaan_explore.explore.report.FilmReport`) as JSON in the GIF's
    comment, ``json.loads(PIL.Image.open(path).info["comment"])``. ``captions`` (one per frame, "CRP:
    36.0 mg/L") are written under the frames, drawn twice as large for the words to fit: a GIF passed
    on says which frame shows what.

    GIF stores delays in hundredths of a second, and Pillow merges identical consecutive frames."""
    comment = {"comment": report.to_json()} if report is not None else {}
    frames = to_uint8(traversal.frames)
    if captions is not None:
        frames = _captioned(frames, captions)
    _write_frames(Path(path), frames, extension=".gif", duration=1000 / fps, loop=0, **comment)


def _captioned(frames: np.ndarray, captions: list[str], scale: int = 2) -> np.ndarray:
    """Grey ``frames`` [K, R, R] enlarged ``scale`` times, each over a white strip with its caption."""
    if len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    side = frames.shape[-1] * scale
    font = ImageFont.load_default(size=12)
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines = [_wrapped([caption], draw, font, side - 2 * GAP) for caption in captions]
    strip = GAP + max(len(text) for text in lines) * LINE_HEIGHT
    out = []
    for frame, text in zip(frames, lines):
        canvas = Image.new("L", (side, side + strip), 255)
        canvas.paste(Image.fromarray(frame).resize((side, side), Image.LANCZOS), (0, 0))
        pen = ImageDraw.Draw(canvas)
        for n, line in enumerate(text):
            pen.text((GAP, side + GAP // 2 + n * LINE_HEIGHT), line, fill=0, font=font)
        out.append(np.asarray(canvas))
    return np.stack(out)


def save_mp4(traversal: Traversal, path: str | Path, fps: float = 8, quality: int = 10,
             report: FilmReport | None = None) -> None:
    """The frames as H.264 MP4 (yuv420p, playable everywhere; lossy, within a few grey levels at
    ``quality=10``); the ``report`` as JSON in the file's comment tag (:func:`mp4_report` reads it
    back). Needs the ``imageio-ffmpeg`` package, which ships its own ffmpeg."""
    _ffmpeg()
    tags = {"output_params": ["-metadata", f"comment={report.to_json()}"]} if report is not None else {}
    _write_frames(Path(path), to_uint8(traversal.frames), extension=".mp4", fps=fps, quality=quality,
                  macro_block_size=1, **tags)


def mp4_report(path: str | Path) -> FilmReport | None:
    """The :class:`~seegaan_explore.explore.report.FilmReport` an MP4 of :func:`save_mp4` carries
    (None where it was written without one)."""
    import subprocess

    done = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, encoding="utf-8")
    if done.returncode != 0:
        raise ValueError(f"{path}: not a readable MP4 ({done.stderr.strip()[-200:]})")
    for line in done.stdout.splitlines():
        if line.startswith("comment="):  # ffmetadata escapes = ; # \ with a backslash
            return FilmReport.from_json(re.sub(r"\\(.)", r"\1", line[len("comment="):]))
    return None


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise ImportError("MP4 export needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tile(rgb: np.ndarray, size: int) -> Image.Image:
    image = Image.fromarray(rgb)
    if image.size[0] == size:
        return image
    return image.resize((size, size), Image.Resampling.NEAREST if size > image.size[0] else Image.Resampling.BOX)


def _panel_text(traversal: Traversal, report: FilmReport | None) -> list[str]:
    """What is written under a panel: the report's lines, or the direction's recorded ends alone."""
    if report is not None:
        return report.lines()
    return [ends_line(traversal.direction.ends)] if len(traversal.direction.ends) == 2 else []


_PLAIN = str.maketrans({"−": "-", "–": "-", "—": "-", "²": "^2", "≥": ">=", "≤": "<=", "×": "x", "’": "'"})


def _wrapped(lines: list[str], draw: ImageDraw.ImageDraw, font, width: int) -> list[str]:
    """Lines broken at spaces to fit ``width`` pixels, continuations indented; characters the
    built-in font lacks become plain ones (R², −)."""
    out = []
    for line in lines:
        current = ""
        for word in line.translate(_PLAIN).split(" "):
            candidate = f"{current} {word}" if current else word
            if current.strip() and draw.textlength(candidate, font=font) > width:
                out.append(current)
                current = f"   {word}"
            else:
                current = candidate
        out.append(current)
    return out


def save_panel(traversal: Traversal, path: str | Path, attributions: np.ndarray | None = None,
               predictions=None, *, tile: int | None = None, difference_range: float = 0.5,
               report: FilmReport | None = None) -> None:
    """A PNG: one column per step; rows: frames, difference maps (frame minus reconstruction), and
    when given the attribution of each frame over it. Under each column its step and, when given,
    the prediction for the frame (``predictions``: plain numbers, or
    :class:`~seegaan_explore.explore.report.Readings` in the attribute's units, as
    ``Study.cnn_readings`` words them). Under the columns, the ``report``
    (:class:`~seegaan_explore.explore.report.FilmReport`: which end is +, the verdict and the
    quality scores) in words, its JSON in the PNG's ``Comment`` text chunk; without a report, the
    two ends where the direction records them.

    ``tile``: pixels per image (default the image size, at least 128; enlarged by pixel repetition).
    Size: ``K * (tile + GAP) + GAP`` wide, ``TITLE_HEIGHT + rows * (tile + GAP) + GAP + LABEL_HEIGHT`` high,
    and ``LINE_HEIGHT`` more per line of text under the columns, with a ``GAP`` below them.
    """
    frames = traversal.frames
    k, size = len(frames), frames.shape[-1]
    tile = tile or max(size, 128)
    rows = [np.repeat(to_uint8(frames)[..., None], 3, -1), diverging_rgb(traversal.differences, difference_range)]
    if attributions is not None:
        attributions = np.asarray(attributions)
        if attributions.shape != frames.shape:
            raise ValueError(f"attributions {attributions.shape} must match the frames {frames.shape}")
        rows.append(np.stack([heat_overlay(f, a) for f, a in zip(frames, attributions)]))
    readings = _readings(predictions, k)
    width = k * (tile + GAP) + GAP
    font = ImageFont.load_default(size=12)
    text = _wrapped(_panel_text(traversal, report), ImageDraw.Draw(Image.new("RGB", (1, 1))), font, width - 2 * GAP)
    labels_height = TITLE_HEIGHT + len(rows) * (tile + GAP) + GAP + LABEL_HEIGHT
    height = labels_height + (len(text) * LINE_HEIGHT + GAP if text else 0)
    panel = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(panel)
    target, unit = _scale_words(traversal, report.target if report is not None else None)
    read = f"; under each step: {readings.label}" if readings is not None else ""
    draw.text((GAP, 4), f"{target} ({traversal.direction.estimator}), steps in {unit}{read}; differences at "
              f"+-{difference_range:g}".translate(_PLAIN), fill="black", font=font)
    for r, images in enumerate(rows):
        top = TITLE_HEIGHT + GAP + r * (tile + GAP)
        for c, rgb in enumerate(images):
            panel.paste(_tile(rgb, tile), (GAP + c * (tile + GAP), top))
    labels_top = TITLE_HEIGHT + len(rows) * (tile + GAP) + GAP
    for c, label in enumerate(_step_labels(traversal)):
        left = GAP + c * (tile + GAP)
        draw.text((left, labels_top), label, fill="black", font=font)
        if readings is not None:
            draw.text((left, labels_top + 15), readings.words[c].translate(_PLAIN), fill="black", font=font)
    headline = report.verdict[1] if report is not None and report.verdict is not None else None
    for n, line in enumerate(text):
        colour = VERDICT_COLOURS[report.verdict[0]] if headline and line == headline.translate(_PLAIN) else "black"
        draw.text((GAP, labels_height + n * LINE_HEIGHT), line, fill=colour, font=font)
    info = PngInfo()
    if report is not None:
        info.add_itxt("Comment", report.to_json())
    with atomic_write(Path(path)) as tmp:
        panel.save(tmp, format="PNG", pnginfo=info)


def save_attribution_png(image: np.ndarray, attribution: np.ndarray, path: str | Path, *,
                         tile: int | None = None) -> None:
    """The image beside its attribution overlay, one PNG ``2 * tile + 3 * GAP`` wide."""
    size = np.shape(image)[-1]
    tile = tile or max(size, 128)
    panel = Image.new("RGB", (2 * tile + 3 * GAP, tile + 2 * GAP), "white")
    panel.paste(_tile(np.repeat(to_uint8(image)[..., None], 3, -1), tile), (GAP, GAP))
    panel.paste(_tile(heat_overlay(image, attribution), tile), (2 * GAP + tile, GAP))
    with atomic_write(Path(path)) as tmp:
        panel.save(tmp, format="PNG")


def _readings(predictions, k: int, label: str = "prediction") -> Readings | None:
    """``predictions`` (a :class:`~seegaan_explore.explore.report.Readings`, or plain numbers called
    ``label``) for ``k`` frames, or None."""
    readings = Readings.of(predictions, label)
    if readings is not None:
        checked_predictions(readings.values, k)
    return readings


def _scale_words(traversal: Traversal, target: str | None) -> tuple[str, str]:
    """The film's target in words (``target``, else the direction's attribute) and the unit its
    steps are in: "SD", or the attribute's own (its logarithm's, "ln NT-proBNP", where fitted on one)."""
    name, log = split_scaled_name(traversal.direction.attribute)
    label = target or name
    return label, "SD" if traversal.in_sd else (f"ln {label}" if log else label)


def checked_predictions(predictions, k: int) -> np.ndarray | None:
    if predictions is None:
        return None
    predictions = np.asarray(predictions, np.float64).ravel()
    if len(predictions) != k:
        raise ValueError(f"{len(predictions)} predictions for {k} frames")
    return predictions


def _png_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _report_html(report: FilmReport) -> str:
    """The report above the figure: the ends, the verdict in its colour with its reasons, the
    scores; and its JSON in a script element that a program reads (``id="seegaan-film-report-json"``)."""
    import html

    lines = report.lines()
    parts = [f"<p><b>{html.escape(lines[0])}</b></p>"]
    rest = lines[1:]
    if report.verdict is not None:
        level, headline, reasons = report.verdict
        colour = "rgb({},{},{})".format(*VERDICT_COLOURS[level])
        parts.append(f'<p style="color:{colour}"><b>{html.escape(headline)}</b></p>')
        parts.append("<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in reasons) + "</ul>")
        rest = rest[1 + len(reasons):]
    parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in rest) + "</ul>")
    data = report.to_json().replace("</", "<\\/")
    return (f'<div id="seegaan-film-report" style="font-family:sans-serif;margin:1em 2em">{"".join(parts)}</div>\n'
            f'<script type="application/json" id="seegaan-film-report-json">{data}</script>\n')


def save_html_report(traversal: Traversal, path: str | Path, predictions=None, *, title: str | None = None,
                     prediction_label: str = "prediction", difference_range: float = 0.5,
                     report: FilmReport | None = None, step_labels: list[str] | None = None) -> None:
    """One HTML file that opens offline (plotly.js embedded, no network): the frames and their
    difference maps animated by a slider and a play button, and the prediction curve with the
    current step marked when ``predictions`` are given (plain numbers called ``prediction_label``, or
    :class:`~seegaan_explore.explore.report.Readings` in their units). The title says which end is +; above the
    figure, the ``report`` (:class:`~seegaan_explore.explore.report.FilmReport`: the verdict and the
    quality scores) in words. ``step_labels``: what the slider calls each frame (default its step,
    "+0.5 SD"; the dashboard passes its own, "CRP: 36.0 mg/L (+0.5 cohort SD)")."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    readings = _readings(predictions, len(traversal.frames), prediction_label)
    labels = list(step_labels) if step_labels is not None else _step_labels(traversal)
    if len(labels) != len(traversal.frames):
        raise ValueError(f"{len(labels)} step labels for {len(traversal.frames)} frames")
    d = traversal.direction
    target, unit = _scale_words(traversal, report.target if report is not None else None)
    titles = ["frame", "difference from the reconstruction"] + ([readings.label] if readings is not None else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.08)
    differences = traversal.differences.astype(np.float32)

    def step_traces(k: int) -> list:
        traces = [go.Image(source=_png_uri(traversal.frames[k]), hoverinfo="skip"),
                  go.Heatmap(z=differences[k], zmin=-difference_range, zmax=difference_range, zmid=0,
                             colorscale="RdBu_r",
                             colorbar={"title": "change", "x": 0.64 if readings is not None else 1.0})]
        if readings is not None:
            traces.append(go.Scatter(x=[traversal.amounts[k]], y=[readings.values[k]], text=[readings.words[k]],
                                     hovertemplate="%{text}<extra></extra>", mode="markers",
                                     marker={"size": 12, "color": "crimson"}, name="this frame"))
        return traces

    for col, trace in enumerate(step_traces(0), start=1):
        fig.add_trace(trace, row=1, col=col)
    if readings is not None:
        fig.add_trace(go.Scatter(x=traversal.amounts, y=readings.values, text=list(readings.words),
                                 hovertemplate="%{text}<extra></extra>", mode="lines+markers", name=readings.label,
                                 line={"color": "grey"}), row=1, col=3)
        fig.update_xaxes(title_text=f"step ({unit})", row=1, col=3)
        fig.update_yaxes(type="log" if readings.log else "linear", row=1, col=3)
    fig.update_yaxes(autorange="reversed", scaleanchor="x2", row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(showticklabels=False, showgrid=False, row=1, col=col)
        fig.update_yaxes(showticklabels=False, showgrid=False, row=1, col=col)
    traced = list(range(len(titles)))
    fig.frames = [go.Frame(data=step_traces(k), traces=traced, name=str(k)) for k in range(len(labels))]
    show = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}
    play = {"frame": {"duration": 150, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    ends = report.ends if report is not None else d.ends if len(d.ends) == 2 else None
    fig.update_layout(
        title=title or f"{target}: traversal along the {d.estimator} direction (steps in {unit})"
                       + (f"; {ends_line(ends)}" if ends else ""),
        height=460, width=420 * len(titles) + 80, showlegend=False,
        updatemenus=[{"type": "buttons", "x": 0, "y": -0.12, "xanchor": "left", "direction": "left", "buttons": [
            {"label": "play", "method": "animate", "args": [None, play]},
            {"label": "pause", "method": "animate", "args": [[None], show]},
        ]}],
        sliders=[{"active": 0, "x": 0.12, "y": -0.08, "len": 0.85,
                  "currentvalue": {"prefix": "step " if step_labels is None else ""},
                  "steps": [{"label": label, "method": "animate", "args": [[str(k)], show]}
                            for k, label in enumerate(labels)]}],
    )
    html = fig.to_html(include_plotlyjs=True, full_html=True, include_mathjax=False, auto_play=False,
                       config={"displaylogo": False})
    if report is not None:
        html = html.replace("<body>", "<body>\n" + _report_html(report), 1)
    with atomic_write(Path(path)) as tmp:
        tmp.write_text(html, encoding="utf-8")


# --------------------------------------------------------------------------- archives the CLI reads
