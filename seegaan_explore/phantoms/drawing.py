"""What the phantom renderer draws with: soft-edged shapes on a normalised grid.

Everything is drawn on a grid ``x, y`` in ``[-1, 1]`` (``x`` to the image right, which is the
patient's left; ``y`` downwards) as analytic soft-edged shapes (signed distances turned into
thickness-like occupancies), so that an image depends smoothly on the continuous factors. Also here:
a 5x7 bitmap font for burned-in annotations (no dependence on installed fonts), line segments
splatted into a pixel grid, and a bank of smooth random textures shared by every individual.
Float32 throughout.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

__all__ = ["annotation_margin", "bezier", "box_window", "cortical", "ellipse_sdf", "grid", "occupancy", "sigmoid",
           "softplus", "splat_segments", "text_bitmap", "texture_bank", "tube"]

_F32 = np.float32

# --------------------------------------------------------------------------------------------
# a tiny 5x7 bitmap font for burned-in annotations (no dependence on installed fonts)
# --------------------------------------------------------------------------------------------
_GLYPHS = {
    "A": (" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "B": ("#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "),
    "C": (" ####", "#    ", "#    ", "#    ", "#    ", "#    ", " ####"),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "I": (" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "L": ("#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"),
    "O": (" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    "P": ("#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "),
    "R": ("#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"),
    "S": (" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
    "U": ("#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    " ": ("     ",) * 7,
}


@functools.lru_cache(maxsize=64)
def text_bitmap(text: str, scale: int = 1) -> np.ndarray:
    """Boolean bitmap of ``text`` in the built-in 5x7 font, each font pixel ``scale`` px wide."""
    rows = []
    for r in range(7):
        line = []
        for ch in text.upper():
            g = _GLYPHS.get(ch, _GLYPHS[" "])
            line.extend(c == "#" for c in g[r])
            line.append(False)
        rows.append(line[:-1])
    bm = np.array(rows, dtype=bool)
    if scale > 1:
        bm = np.kron(bm, np.ones((scale, scale), dtype=bool))
    bm.setflags(write=False)
    return bm


def annotation_margin(size: int) -> int:
    """Pixels between a burned-in annotation (side marker, text label) and the image border."""
    return max(2, int(size * 0.04))


# --------------------------------------------------------------------------------------------
# small vectorised helpers
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=_F32) + _F32(0.5)) * _F32(2.0 / size) - _F32(1.0)
    y, x = np.meshgrid(c, c, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def sigmoid(z):
    """Logistic function, numerically safe for float32 arrays."""
    return _F32(0.5) + _F32(0.5) * np.tanh(_F32(0.5) * z)


def softplus(z, e):
    """A smooth (C1) ``max(z, 0)``: exactly 0 below ``-e``, exactly ``z`` above ``e``, a parabola
    in between.  The compact support keeps shapes from leaking into distant pixels."""
    e = _F32(e)
    t = np.clip(z + e, 0.0, 2.0 * e)
    return t * t * _F32(0.25 / e) + np.maximum(z - e, _F32(0.0))


def ellipse_sdf(x, y, cx, cy, a, b, ang=0.0):
    """First-order signed distance to an ellipse (negative inside)."""
    dx = x - _F32(cx)
    dy = y - _F32(cy)
    if ang:
        c, s = _F32(math.cos(ang)), _F32(math.sin(ang))
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    ia2, ib2 = _F32(1.0 / (a * a)), _F32(1.0 / (b * b))
    f = dx * dx * ia2 + dy * dy * ib2 - _F32(1.0)
    g = _F32(2.0) * np.sqrt(dx * dx * (ia2 * ia2) + dy * dy * (ib2 * ib2)) + _F32(1e-6)
    return f / g


def occupancy(d, lam, edge):
    """Thickness-like occupancy of a shape with signed distance ``d``: 0 outside, rising over ``lam``
    to 1 deep inside; the outline is rounded over ``edge`` (about a pixel) so it is smooth."""
    depth = softplus(-d, edge)
    return _F32(1.0) - np.exp(-depth / _F32(lam))


def tube(d, half_width):
    """Projected thickness of a cylinder of radius ``half_width`` at distance ``d`` from its axis,
    normalised to 1 on the axis."""
    t = np.clip(_F32(1.0) - (d / _F32(half_width)) ** 2, 0.0, None)
    return np.sqrt(t)


def cortical(d, half_width, rim=0.55):
    """Projected thickness of a hollow bone (cortex brighter than the marrow)."""
    t = np.clip(_F32(1.0) - (d / _F32(half_width)) ** 2, 0.0, None)
    outer = np.sqrt(t)
    r2 = _F32(rim * rim)
    inner = np.sqrt(np.clip(r2 - (d / _F32(half_width)) ** 2, 0.0, None))
    return outer - _F32(0.55) * inner


def bezier(p0, p1, p2, p3, n):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t * t * p2 + (t**3) * p3


@functools.lru_cache(maxsize=4)
def texture_bank(size: int) -> np.ndarray:
    """Four smooth random fields (2*size square) shared by every individual at this size; an
    individual picks one and a window offset from its exogenous draws (cheap, deterministic).
    The fields are made at <= 384 px and interpolated up, so the same size always gives the same bank."""
    rng = np.random.default_rng(20240611)
    base = min(size, 192)
    n = 2 * base
    bank = np.empty((4, n, n), dtype=_F32)
    sig = max(1.0, base / 70.0)
    for k in range(4):
        f = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(_F32), sig, mode="wrap")
        f2 = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(_F32), 2.5 * sig, mode="wrap")
        f = f / (f.std() + 1e-6) + 0.8 * f2 / (f2.std() + 1e-6)
        bank[k] = f / (f.std() + 1e-6)
    if base != size:
        bank = ndimage.zoom(bank, (1, size / base, size / base), order=1, mode="grid-wrap", grid_mode=True)
        bank = np.ascontiguousarray(bank[:, : 2 * size, : 2 * size], dtype=_F32)
    bank.setflags(write=False)
    return bank


def splat_segments(acc, q0, q1, weight, size, spacing_px=0.6):
    """Add line segments (image coords in [-1, 1]) into ``acc`` with bilinear weights;
    ``weight`` (per segment) is the line density: mass per pixel of length."""
    if len(q0) == 0:
        return
    scale = size / 2.0
    seg_px = np.sqrt(np.sum((q1 - q0) ** 2, axis=1)) * scale
    n = np.maximum(1, np.ceil(seg_px / spacing_px).astype(np.int64))
    idx = np.repeat(np.arange(len(n)), n)
    start = np.cumsum(n) - n
    t = (np.arange(idx.shape[0]) - start[idx] + 0.5) / n[idx]
    p0 = q0[idx]
    pts = (p0 + (q1[idx] - p0) * t[:, None] + 1.0) * scale - 0.5
    w = (weight * seg_px / n)[idx]
    x0 = np.floor(pts[:, 0])
    y0 = np.floor(pts[:, 1])
    fx = pts[:, 0] - x0
    fy = pts[:, 1] - y0
    ok = (x0 >= 0) & (x0 < size - 1) & (y0 >= 0) & (y0 < size - 1)
    w = w * ok
    base = (np.clip(y0, 0, size - 2) * size + np.clip(x0, 0, size - 2)).astype(np.int64)
    ind = np.concatenate([base, base + 1, base + size, base + size + 1])
    wts = np.concatenate([w * (1 - fx) * (1 - fy), w * fx * (1 - fy), w * (1 - fx) * fy, w * fx * fy])
    acc += np.bincount(ind, weights=wts, minlength=size * size).astype(_F32).reshape(size, size)


def box_window(x, y, xlo, xhi, ylo, yhi, margin=0.03):
    """Smallest row/column window of the (affine) patient-coordinate grids ``x, y`` that contains
    every pixel inside the patient-frame box (a superset; ``None`` if empty)."""
    m = margin

    def _hits(xa, xb, ya, yb):
        return (
            (np.maximum(xa, xb) >= xlo - m)
            & (np.minimum(xa, xb) <= xhi + m)
            & (np.maximum(ya, yb) >= ylo - m)
            & (np.minimum(ya, yb) <= yhi + m)
        )

    r = np.nonzero(_hits(x[:, 0], x[:, -1], y[:, 0], y[:, -1]))[0]
    c = np.nonzero(_hits(x[0, :], x[-1, :], y[0, :], y[-1, :]))[0]
    if r.size == 0 or c.size == 0:
        return None
    return slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1)
