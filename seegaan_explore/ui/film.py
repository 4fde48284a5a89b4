"""The traversal player: a small anywidget that plays the film in the browser.

Every frame and change map is decoded in the browser before it is shown, and a panel changes only
from one painted image to the next, so it never goes blank (plotly's image frames left it empty
while playing). It plays at a chosen speed without a kernel round trip per frame, and its slider is
the dashboard's one frame slider: ``frame`` syncs back when the slider stops or the film pauses, and
the attribution follows it. Everything it needs ships in this file: no CDN.
"""

from __future__ import annotations

import base64
import io

import anywidget
import numpy as np
import traitlets
from PIL import Image

from ..explore.export import diverging_rgb

SPEEDS = (("½×", 4.0), ("1×", 8.0), ("2×", 16.0))  # frames per second

_ESM = r"""
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// A tick label as at most two lines, split at the space nearest its middle, so that "88% towards male"
// fits beside the chart instead of running off its left edge.
function tickLines(text) {
  if (text.length <= 12 || !text.includes(" ")) return [text];
  let split = -1;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === " " && (split < 0 || Math.abs(i - text.length / 2) < Math.abs(split - text.length / 2))) split = i;
  }
  return [text.slice(0, split), text.slice(split + 1)];
}

function decoded(sources) {
  // every image decoded before any is shown: painting a decoded image is instant, never blank
  return Promise.all(sources.map((src) => {
    const image = new Image();
    image.src = src;
    return image.decode().then(() => image, () => image);
  }));
}

function render({ model, el }) {
  el.classList.add("seegaan-film-player");
  el.innerHTML = `
    <div class="seegaan-film-panels">
      <figure><figcaption class="seegaan-film-title-frame">Synthetic radiograph</figcaption>
        <img class="seegaan-film-frame" alt="synthetic radiograph"></figure>
      <figure><figcaption class="seegaan-film-title-change"></figcaption>
        <img class="seegaan-film-change" alt="change from the reconstruction">
        <div class="seegaan-film-colourbar"></div>
        <div class="seegaan-film-colourlabels"><span class="lo"></span><span>0</span><span class="hi"></span></div>
      </figure>
      <figure class="seegaan-film-curve"><figcaption class="seegaan-film-title-curve"></figcaption></figure>
    </div>
    <div class="seegaan-film-controls">
      <button class="seegaan-film-play" type="button">▶ Play</button>
      <input class="seegaan-film-slider" type="range" min="0" step="1">
      <select class="seegaan-film-speed" title="playback speed"></select>
      <span class="seegaan-film-label"></span>
    </div>`;
  const frameImage = el.querySelector(".seegaan-film-frame");
  const changeImage = el.querySelector(".seegaan-film-change");
  const play = el.querySelector(".seegaan-film-play");
  const slider = el.querySelector(".seegaan-film-slider");
  const speed = el.querySelector(".seegaan-film-speed");
  const label = el.querySelector(".seegaan-film-label");
  const curveBox = el.querySelector(".seegaan-film-curve");
  let frames = [], changes = [], current = 0, timer = null, generation = 0, marker = null, points = [];

  for (const [name, fps] of model.get("speeds")) {
    const option = document.createElement("option");
    option.value = fps; option.textContent = name; speed.appendChild(option);
  }
  speed.value = model.get("fps");

  function paint(k) {
    if (!frames.length) return;
    current = Math.max(0, Math.min(k, frames.length - 1));
    frameImage.src = frames[current].src;
    changeImage.src = changes[current].src;
    slider.value = current;
    label.textContent = (model.get("labels") || [])[current] || "";
    if (marker && points[current]) {
      marker.setAttribute("cx", points[current][0]);
      marker.setAttribute("cy", points[current][1]);
    }
    el.dataset.painted = current;
  }

  function drawCurve() {
    curveBox.querySelectorAll("svg").forEach((node) => node.remove());
    const c = model.get("curve") || {};
    el.querySelector(".seegaan-film-title-curve").textContent = c.title || "";
    const xs = c.x || [], ys = c.y || [];
    points = []; marker = null;
    if (!xs.length) return;
    const yLow = tickLines(c.y_low || ""), yHigh = tickLines(c.y_high || "");
    // the left margin fits the longest line of the y labels (10 px text is about 6 px a character)
    const W = 280, H = 220, R = 8, T = 8, B = 40;
    const L = Math.min(110, Math.max(40, 10 + 6 * Math.max(...yLow.concat(yHigh).map((line) => line.length))));
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "seegaan-film-chart" });
    const fx = c.log ? Math.log : (v) => v;
    const X = xs.map(fx), xmin = Math.min(...X), xmax = Math.max(...X);
    const finite = ys.filter((v) => Number.isFinite(v));
    let ymin = Math.min(...finite), ymax = Math.max(...finite);
    if (ymax - ymin < 1e-9) { ymin -= 1; ymax += 1; }
    // a film that runs downwards (PA to AP, high to low) still starts at the left, as its slider does
    const falling = X[0] > X[X.length - 1];
    const px = (v) => L + (W - L - R) * (xmax > xmin ? (falling ? xmax - v : v - xmin) / (xmax - xmin) : 0.5);
    const py = (v) => T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin));
    points = X.map((x, k) => [px(x), py(ys[k])]);
    chart.appendChild(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame" }));
    chart.appendChild(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "line" }));
    for (const p of points) chart.appendChild(svg("circle", { cx: p[0], cy: p[1], r: 2.5, class: "dot" }));
    const tick = (lines, x, y, anchor, upwards = false) => {
      const node = svg("text", { x, y, "text-anchor": anchor, class: "tick" });
      lines.forEach((line, k) => {  // a label at the bottom grows upwards, one at the top downwards
        const span = svg("tspan", { x, dy: k ? "1.1em" : upwards ? `${-1.1 * (lines.length - 1)}em` : "0" });
        span.textContent = line;
        node.appendChild(span);
      });
      chart.appendChild(node);
    };
    tick(yLow, L - 4, H - B, "end", true); tick(yHigh, L - 4, T + 8, "end");
    const [left, right] = falling ? [c.x_high, c.x_low] : [c.x_low, c.x_high];
    tick([left || ""], L, H - B + 14, "start"); tick([right || ""], W - R, H - B + 14, "end");
    tick([c.x_title || ""], (L + W - R) / 2, H - 6, "middle");
    marker = svg("circle", { r: 6, class: "marker" });
    chart.appendChild(marker);
    curveBox.appendChild(chart);
  }

  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    play.textContent = "▶ Play";
  }

  function commit() {
    if (model.get("frame") !== current) { model.set("frame", current); model.save_changes(); }
  }

  function start() {
    if (!frames.length) return;
    stop();
    play.textContent = "❚❚ Pause";
    if (current >= frames.length - 1) paint(0);
    timer = setInterval(() => {
      if (current >= frames.length - 1) { stop(); commit(); return; }
      paint(current + 1);
    }, 1000 / Number(speed.value));
  }

  async function load() {
    const mine = ++generation;
    const [f, d] = await Promise.all([decoded(model.get("frames")), decoded(model.get("changes"))]);
    if (mine !== generation) return;  // a newer film arrived meanwhile: the latest wins
    const wasPlaying = timer !== null;
    frames = f; changes = d;
    slider.max = Math.max(0, frames.length - 1);
    el.querySelector(".seegaan-film-title-change").textContent = model.get("change_title");
    el.querySelector(".seegaan-film-colourlabels .lo").textContent = model.get("colour_low");
    el.querySelector(".seegaan-film-colourlabels .hi").textContent = model.get("colour_high");
    drawCurve();
    paint(model.get("frame"));
    el.dataset.loaded = mine;
    if (wasPlaying) start();
  }

  play.addEventListener("click", () => { if (timer === null) start(); else { stop(); commit(); } });
  slider.addEventListener("input", () => { stop(); paint(Number(slider.value)); });
  slider.addEventListener("change", commit);
  speed.addEventListener("change", () => {
    model.set("fps", Number(speed.value)); model.save_changes();
    if (timer !== null) start();
  });
  model.on("change:frames", load);
  model.on("change:frame", () => { if (timer === null) paint(model.get("frame")); });
  load();
  if (!model.get("seen")) { model.set("seen", true); model.save_changes(); }
  return () => stop();
}

export default { render };
"""

_CSS = """
.seegaan-film-player { font-family: sans-serif; font-size: 13px; }
/* Side by side where there is room (Voila's page); in a narrower notebook the images shrink to share a
   row, at most 260 px each, and the curve wraps below them rather than off the edge */
.seegaan-film-panels { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.seegaan-film-panels > figure { flex: 1 1 200px; max-width: 260px; min-width: 0; }
.seegaan-film-panels > figure.seegaan-film-curve { flex: 0 0 280px; max-width: none; }
.seegaan-film-player figure { margin: 0; }
.seegaan-film-player figcaption { font-size: 13px; text-align: center; height: 18px; white-space: nowrap;
  overflow: hidden; }
.seegaan-film-player img { width: 100%; aspect-ratio: 1 / 1; image-rendering: auto; display: block;
  background: #000; }
.seegaan-film-colourbar { width: 100%; height: 8px;
  background: linear-gradient(to right, rgb(5,48,97), rgb(67,147,195), rgb(247,247,247), rgb(214,96,77),
    rgb(103,0,31)); }
.seegaan-film-colourlabels { width: 100%; display: flex; justify-content: space-between; font-size: 11px;
  color: #333; }
.seegaan-film-chart { width: 280px; height: 220px; }
.seegaan-film-chart .frame { fill: #f4f6fa; stroke: #ccd; }
.seegaan-film-chart .line { fill: none; stroke: #1f77b4; stroke-width: 2; }
.seegaan-film-chart .dot { fill: #1f77b4; }
.seegaan-film-chart .marker { fill: #d62728; }
.seegaan-film-chart .tick { font-size: 10px; fill: #333; }
.seegaan-film-controls { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
.seegaan-film-play { white-space: nowrap; }
.seegaan-film-slider { flex: 0 1 420px; min-width: 120px; }
.seegaan-film-label { font-size: 13px; }
"""


def png(image: np.ndarray) -> bytes:
    """A uint8 grey [H, W] or RGB [H, W, 3] image as PNG bytes (fast compression: it is sent, not stored)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def frame_labels(result: dict, study) -> list[str]:
    """Each frame of a render ``result`` as the page names it: "CRP: 36.0 mg/L (+0.5 cohort SD)"; a
    two-level attribute's share of the way needs no SDs beside it."""
    name = result["attribute"]
    in_sd = result["in_sd"] and study.levels(name) is None
    steps = [f" ({round(a, 6) + 0.0:+.2g} cohort SD)" if in_sd else "" for a in result["amounts"]]  # not -1e-16
    return [f"{result['label']}: {study.format(name, v)}{step}" for v, step in zip(result["targets"], steps)]


def film_curve(result: dict, study) -> dict:
    """What the curve beside the film shows, in the attribute's own words and units: the CNN's
    prediction per frame (its target's units where it predicts a column), else the target as
    measured (by the oracle), else the intended values."""
    name, targets = result["attribute"], np.asarray(result["targets"], np.float64)
    if result["cnn_predictions"] is not None:  # on its own scale (ln where it predicts a log), in its units' words
        y = np.asarray(result["cnn_predictions"], np.float64)
        title = study.cnn_readings(y).label
        say = lambda v: study.cnn_readings([v]).words[0]  # noqa: E731
    elif result["quality"].get("measured_by"):
        y = np.asarray(result["quality"]["measured"], np.float64)
        title = f"{result['label']} measured by {result['quality']['measured_by']}"
        say = (lambda v: study.format(name, float(np.exp(v)))) if result["log"] else (lambda v: study.format(name, v))
    else:  # on the scale the steps are drawn on, so that a film of even steps is a straight line
        logged = bool(result["log"]) and bool(np.all(targets > 0))
        y, title = (np.log(targets) if logged else targets), f"intended {result['label']}"
        say = (lambda v: study.format(name, float(np.exp(v)))) if logged else (lambda v: study.format(name, v))
    finite = y[np.isfinite(y)]
    return {"x": targets.tolist(), "y": [float(v) if np.isfinite(v) else None for v in y], "title": title,
            "log": bool(result["log"]) and bool(np.all(targets > 0)), "x_title": result["label"],
            "x_low": study.format(name, float(targets.min())), "x_high": study.format(name, float(targets.max())),
            "y_low": say(float(finite.min())) if finite.size else "", "y_high": say(float(finite.max())) if finite.size
            else ""}


class Film(anywidget.AnyWidget):
    """A traversal film: ``frames`` and ``changes`` (PNG data URIs), one ``labels`` line per frame,
    the ``curve`` drawn beside them, and the shown ``frame``, shared with the kernel. ``seen`` turns
    true once a browser has drawn the player: someone is looking."""

    _esm = _ESM
    _css = _CSS
    frames = traitlets.List(traitlets.Unicode()).tag(sync=True)
    changes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    curve = traitlets.Dict().tag(sync=True)
    change_title = traitlets.Unicode("Change from the reconstruction").tag(sync=True)
    colour_low = traitlets.Unicode("").tag(sync=True)
    colour_high = traitlets.Unicode("").tag(sync=True)
    frame = traitlets.Int(0).tag(sync=True)
    fps = traitlets.Float(SPEEDS[1][1]).tag(sync=True)
    speeds = traitlets.List(default_value=[list(s) for s in SPEEDS]).tag(sync=True)
    seen = traitlets.Bool(False).tag(sync=True)

    def show(self, frames: np.ndarray, differences: np.ndarray, limit: float, labels: list[str], curve: dict,
             frame: int, darker: str = "darker", brighter: str = "brighter") -> None:
        """Send a new film (uint8 ``frames`` [K, R, R], signed ``differences`` [K, R, R] shown to
        ±``limit``); the browser swaps to it once every image is decoded."""
        with self.hold_sync():
            self.frame = int(frame)
            self.labels = list(labels)
            self.curve = curve
            self.colour_low, self.colour_high = f"−{limit:.2g} {darker}", f"+{limit:.2g} {brighter}"
            self.changes = [data_uri(diverging_rgb(d, limit)) for d in differences]
            self.frames = [data_uri(f) for f in frames]
