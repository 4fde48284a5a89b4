"""Rendering of phantom chest radiographs from causal factors and exogenous anatomy.

This module is the third stage of the phantom generator (see :mod:`seegaan_explore.data.phantoms`
and ``docs/phantoms.md``): it maps the factors of one individual (age, sex, BMI, cardiothoracic
ratio, edema, effusions, view, device, bone density) plus the individual's exogenous anatomy and
noise draws to an image and ground-truth masks.  It knows nothing of the structural causal model.

Everything is drawn as an attenuation map (higher = more attenuating = brighter in MONOCHROME2)
on a normalised grid ``x, y`` in ``[-1, 1]`` (``x`` to the image right, which is the patient's
left; ``y`` downwards), with analytic soft-edged shapes so that the image depends smoothly on the
continuous factors.  The attenuation map is blurred, given signal-dependent quantum noise and put
through a film-like characteristic curve into ``[-1, 1]``; burned-in annotations come last.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["AP_HEART_MAGNIFICATION", "AP_LABELS", "MASK_NAMES", "RenderInputs", "render_arrays", "text_bitmap"]

MASK_NAMES = (
    "heart",
    "lungs",
    "effusion",
    "effusion_left",
    "effusion_right",
    "edema",
    "device",
    "text_label",
    "marker",
)

_F32 = np.float32
_DEBUG = None  # set to a dict to collect intermediate fields (development aid)

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

#: burned-in labels of AP exams (one is picked per individual from its exogenous draws)
AP_LABELS = ("AP", "AP", "AP SUPINE", "PORTABLE")


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


# --------------------------------------------------------------------------------------------
# small vectorised helpers
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=_F32) + _F32(0.5)) * _F32(2.0 / size) - _F32(1.0)
    y, x = np.meshgrid(c, c, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _sig(z):
    """Logistic function, numerically safe for float32 arrays."""
    return _F32(0.5) + _F32(0.5) * np.tanh(_F32(0.5) * z)


def _softplus(z, e):
    """A smooth (C1) ``max(z, 0)``: exactly 0 below ``-e``, exactly ``z`` above ``e``, a parabola
    in between.  The compact support keeps shapes from leaking into distant pixels."""
    e = _F32(e)
    t = np.clip(z + e, 0.0, 2.0 * e)
    return t * t * _F32(0.25 / e) + np.maximum(z - e, _F32(0.0))


def _ellipse_sdf(x, y, cx, cy, a, b, ang=0.0):
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


def _occupancy(d, lam, edge):
    """Thickness-like occupancy of a shape with signed distance ``d``: 0 outside, rising over ``lam``
    to 1 deep inside; the outline is rounded over ``edge`` (about a pixel) so it is smooth."""
    depth = _softplus(-d, edge)
    return _F32(1.0) - np.exp(-depth / _F32(lam))


def _tube(d, half_width):
    """Projected thickness of a cylinder of radius ``half_width`` at distance ``d`` from its axis,
    normalised to 1 on the axis."""
    t = np.clip(_F32(1.0) - (d / _F32(half_width)) ** 2, 0.0, None)
    return np.sqrt(t)


def _cortical(d, half_width, rim=0.55):
    """Projected thickness of a hollow bone (cortex brighter than the marrow)."""
    t = np.clip(_F32(1.0) - (d / _F32(half_width)) ** 2, 0.0, None)
    outer = np.sqrt(t)
    r2 = _F32(rim * rim)
    inner = np.sqrt(np.clip(r2 - (d / _F32(half_width)) ** 2, 0.0, None))
    return outer - _F32(0.55) * inner


def _bezier(p0, p1, p2, p3, n):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t * t * p2 + (t**3) * p3


@functools.lru_cache(maxsize=4)
def _texture_bank(size: int) -> np.ndarray:
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


@functools.lru_cache(maxsize=256)
def _vessel_tree(render_seed: int):
    """Pulmonary vessel trees of both lungs as line segments in hilum-centred lung coordinates
    (``s`` lateral, ``t`` downwards, in units of the hemithorax width), with a radius each.

    Returns ``(p0, p1, radius, side)`` arrays and per-side Kerley-line phases."""
    rng = np.random.default_rng([render_seed % (2**63), 11])
    # six main trunks per lung: upper lobe (up, up-lateral), middle, lower lobe (down-lateral, down)
    side = np.repeat([-1.0, 1.0], 6)
    ang = np.radians(np.tile([-80.0, -45.0, -10.0, 25.0, 55.0, 85.0], 2) + rng.normal(0, 6, 12))
    start = np.zeros((12, 2))
    length = np.tile([0.22, 0.22, 0.19, 0.21, 0.24, 0.22], 2) * rng.uniform(0.85, 1.15, 12)
    rad = np.tile([0.016, 0.015, 0.013, 0.017, 0.019, 0.017], 2) * rng.uniform(0.85, 1.15, 12)
    P0, P1, R, S = [], [], [], []
    for _depth in range(6):
        m = ang.shape[0]
        bend = rng.normal(0.0, 0.12, m)  # each branch: three sub-segments with a gentle bend
        p = start
        a = ang
        for k in range(3):
            a = a + bend
            nxt = p + (length / 3.0)[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
            P0.append(p)
            P1.append(nxt)
            R.append(rad * (1.0 - 0.08 * k))
            S.append(side)
            p = nxt
        spread = np.radians(rng.uniform(18.0, 38.0, m))  # two children per branch
        ang = np.concatenate([a - spread, a + spread * rng.uniform(0.6, 1.1, m)])
        start = np.concatenate([p, p])
        length = np.concatenate([length, length]) * rng.uniform(0.66, 0.86, 2 * m)
        rad = np.concatenate([rad, rad]) * rng.uniform(0.62, 0.78, 2 * m)
        side = np.concatenate([side, side])
    out = (np.concatenate(P0), np.concatenate(P1), np.concatenate(R), np.concatenate(S))
    kerley = rng.uniform(0.0, 1.0, 2)
    return out, kerley


def _splat_segments(acc, q0, q1, weight, size, spacing_px=0.6):
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


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderInputs:
    """Everything the renderer needs: causal factors (already intervened upon) and exogenous
    anatomy (standard-normal ``z_*`` and uniform ``u_*`` draws) of one individual."""

    age: float
    sex: str  # 'M' | 'F'
    bmi: float
    ctr: float  # anatomical (PA-equivalent) cardiothoracic ratio
    edema_score: float  # continuous 0..3
    effusion_left_ml: float
    effusion_right_ml: float
    view: str  # 'AP' | 'PA'
    device: bool
    bone_density: float
    anatomy: dict  # name -> float
    render_seed: int


#: AP projection magnifies the heart by this factor (heart is far from the detector in AP)
AP_HEART_MAGNIFICATION = 1.15


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def _derive_params(inp: RenderInputs) -> dict:
    """Geometry, exposure and processing parameters from the factors and the exogenous anatomy."""
    A = inp.anatomy
    male = inp.sex == "M"
    ap = inp.view == "AP"
    P: dict = {"ap": ap}
    size_f = (1.03 if male else 0.97) * (1.0 + 0.025 * A["z_scale"])
    if ap:
        size_f *= 1.04  # AP: the whole chest is slightly magnified
    P["scale"] = size_f
    P["dx"] = 0.02 * A["z_dx"]
    P["dy"] = 0.02 * A["z_dy"] + (0.03 if ap else 0.0)
    P["rot"] = math.radians(1.5 * A["z_rot"] * (1.6 if ap else 1.0))
    W = 0.80 * (1.0 + 0.02 * A["z_wt"])
    P["W_r"] = W * (1.0 + 0.012 * A["z_asym"])
    P["W_l"] = W * (1.0 - 0.012 * A["z_asym"])
    P["W"] = 0.5 * (P["W_r"] + P["W_l"])
    apex = -0.76 + 0.02 * A["z_apex"]
    P["apex_r"] = apex
    P["apex_l"] = apex - 0.01
    # inspiration: AP exams (supine / ill patients) and obese patients breathe in less
    insp = 0.035 * A["z_insp"] - (0.06 if ap else 0.0) - 0.012 * float(np.clip(inp.bmi - 30.0, 0.0, 15.0)) / 5.0
    dome_r = 0.40 + insp
    dome_l = dome_r + 0.045 + 0.015 * A["z_dome_lr"]
    cp_drop = 0.16 + 0.02 * A["z_dome_h"]
    P["dome_r"], P["dome_l"] = dome_r, dome_l
    P["cp_r"], P["cp_l"] = dome_r + cp_drop, dome_l + cp_drop - 0.01
    P["med_top"] = 0.10 + 0.008 * A["z_med"] + (0.012 if ap else 0.0)
    P["hilum_y"] = -0.10 + 0.02 * A["z_hilum"] + 0.5 * insp
    P["heart_ax"] = 0.04 + 0.015 * A["z_heart_x"]
    P["heart_ay"] = 0.5 * (dome_r + dome_l) + 0.04
    P["heart_rot"] = 0.55 + 0.06 * A["z_heart_rot"]
    # soft tissue grows with BMI
    P["tissue"] = float(np.clip(0.06 + 0.006 * (inp.bmi - 25.0), 0.025, 0.22))
    P["depth"] = 1.0 + 0.012 * (inp.bmi - 25.0)
    bm = float(np.clip(0.6 + 0.05 * (inp.bmi - 22.0), 0.4, 1.8))
    P["breast"] = (
        (0.55 + 0.12 * A["z_breast"]) * bm if not male else 0.15 * float(np.clip((inp.bmi - 29.0) / 8.0, 0.0, 1.0))
    )
    # ribs
    P["rib_dy"] = 0.122 * (1.0 + 0.03 * A["z_rib_sp"]) * (0.95 if ap else 1.0)
    P["rib_y0"] = apex + 0.07 + 0.015 * A["z_rib_phase"]
    P["rib_curve"] = 1.0 + 0.1 * A["z_rib_curve"] - (0.15 if ap else 0.0)
    # clavicles: higher and more horizontal in AP (lordotic projection)
    P["clav_y"] = apex + 0.15 + 0.02 * A["z_clav"] - (0.07 if ap else 0.0)
    P["clav_tilt"] = 0.20 + 0.03 * A["z_clav_tilt"] - (0.10 if ap else 0.0)
    # scapulae: rotated out of the lung fields in PA, over the lateral lungs in AP
    P["scap_u"] = (1.0 if not ap else 0.70) + 0.035 * A["z_scap"]
    # exposure / processing (AP portable: lower contrast, more noise and unsharpness)
    P["contrast"] = (1.0 + 0.06 * A["z_contrast"]) * (0.9 if ap else 1.0)
    P["exposure"] = 0.04 * A["z_exposure"] + (0.05 if ap else 0.0)
    P["blur"] = (0.0045 + 0.0008 * A["z_blur"]) * (1.25 if ap else 1.0)
    P["noise"] = (0.014 + 0.002 * A["z_noise"]) * (1.3 if ap else 1.0) * (1.0 + 0.015 * max(0.0, inp.bmi - 25.0))
    # the aorta unfolds with age (a direct, documented effect of age on the mediastinum)
    P["aorta"] = 0.05 + 0.008 * A["z_aorta"] + 0.0006 * (inp.age - 50.0)
    return P


def _lung_sdf(x, y, side, P):
    """Signed distance (approx.) of one lung; ``side`` +1 = patient left (image right)."""
    s = x * _F32(side)
    W = P["W_l"] if side > 0 else P["W_r"]
    y_apex = P["apex_l"] if side > 0 else P["apex_r"]
    y_dome = P["dome_l"] if side > 0 else P["dome_r"]
    y_cp = P["cp_l"] if side > 0 else P["cp_r"]
    # outline: a superellipse, boxy at the apex, widest just above the costophrenic angle
    cy = y_cp - 0.12
    b = cy - y_apex
    sc, a0 = 0.50 * W, 0.515 * W
    tt = np.clip((cy - y) / _F32(b), 0.0, 1.0)
    a = _F32(a0) * (_F32(1.0) - _F32(0.16) * tt * tt)
    dx = np.abs(s - _F32(sc)) / a
    dy = np.abs(y - _F32(cy)) / _F32(b)
    p = _F32(2.6)
    r = (dx**p + dy**p) ** (_F32(1.0) / p)
    d_e = (r - _F32(1.0)) * a
    # medial border: superior mediastinum above the hilum, behind the heart below it
    med_low = 0.035
    med_top = P["med_top"] + (0.02 if side > 0 else 0.0)
    s_med = _F32(med_top) + _F32(med_low - med_top) * _sig((y - _F32(P["heart_ay"] - 0.40)) / _F32(0.06))
    d_m = s_med - s
    # diaphragm dome: parabola through the dome peak and the costophrenic angle
    s_peak = 0.40 * W
    k = (y_cp - y_dome) / (W - s_peak) ** 2
    y_dia = _F32(y_dome) + _F32(k) * (s - _F32(s_peak)) ** 2
    d_d = y - y_dia
    d = np.maximum(np.maximum(d_e, d_m), d_d)
    return d, s, y_dia


# heart in its own frame (units of the thoracic half width): left ventricle and right atrium
_LV = (0.16, -0.34, 0.42, 0.33, 0.60)
_RA = (-0.15, -0.30, 0.15, 0.27, 0.05)
_BASE = (0.02, -0.60, 0.19, 0.17, 0.0)
_FLOOR = (0.03, -0.10, 0.24, 0.12, 0.0)  # fills the notch between RA and LV on the diaphragm


def _ell_xext(e):
    cx, _cy, a, b, ang = e
    h = math.sqrt((a * math.cos(ang)) ** 2 + (b * math.sin(ang)) ** 2)
    return cx - h, cx + h


def _ell_ext(e):
    """Axis-aligned bounding box (x0, x1, y0, y1) of a rotated ellipse."""
    cx, cy, a, b, ang = e
    hx = math.sqrt((a * math.cos(ang)) ** 2 + (b * math.sin(ang)) ** 2)
    hy = math.sqrt((a * math.sin(ang)) ** 2 + (b * math.cos(ang)) ** 2)
    return cx - hx, cx + hx, cy - hy, cy + hy


def _heart_sdf(x, y, P, ctr_proj):
    """Cardiac silhouette scaled so that its horizontal extent is ``ctr_proj`` x thoracic width.

    Returns the signed distance on the full grid (+1 far outside) and landmarks for the leads."""
    W = P["W"]
    lv = (_LV[0], _LV[1], _LV[2], _LV[3], P["heart_rot"])
    parts = (lv, _RA, _BASE, _FLOOR)
    l0 = min(_ell_xext(lv)[0], _ell_xext(_RA)[0])
    r0 = max(_ell_xext(lv)[1], _ell_xext(_RA)[1])
    width0 = (r0 - l0) * W
    fx = ctr_proj * (P["W_l"] + P["W_r"]) / width0
    fy = fx**0.6 * 0.95
    ax, ay = P["heart_ax"], P["heart_ay"]
    ext = [_ell_ext(e) for e in parts]
    box = (
        ax + fx * W * min(e[0] for e in ext),
        ax + fx * W * max(e[1] for e in ext),
        ay + fy * W * min(e[2] for e in ext),
        ay + fy * W * max(e[3] for e in ext),
    )
    d = np.full(x.shape, 1.0, dtype=_F32)
    w = _window(x, y, *box, margin=0.06)
    if w is not None:
        u = (x[w] - _F32(ax)) / _F32(fx * W)
        v = (y[w] - _F32(ay)) / _F32(fy * W)
        dd = _ellipse_sdf(u, v, *parts[0])
        for e in parts[1:]:
            dd = np.minimum(dd, _ellipse_sdf(u, v, *e))
        d[w] = dd * _F32(min(fx, fy) * W)
    # landmarks in the patient frame (for device leads)
    apex = (ax + fx * W * (lv[0] + 0.55 * lv[2]), ay + fy * W * (lv[1] + 0.45 * lv[3]))
    ra = (ax + fx * W * _RA[0], ay + fy * W * (_RA[1] - 0.1))
    top = ay + fy * W * (_LV[1] - 0.8 * _LV[3])
    return d, {"apex": apex, "ra": ra, "top": top}


def _patient_to_image(P, pts):
    c, s = math.cos(P["rot"]), math.sin(P["rot"])
    xi = c * pts[:, 0] - s * pts[:, 1]
    yi = s * pts[:, 0] + c * pts[:, 1]
    return np.stack([xi * P["scale"] + P["dx"], yi * P["scale"] + P["dy"]], axis=1)


# --------------------------------------------------------------------------------------------
# the renderer
# --------------------------------------------------------------------------------------------
def _column_slices(size: int, P: dict) -> dict:
    """Column ranges that can hold each side's anatomy (with a generous margin for pose)."""
    cols = _grid(size)[0][0]
    return {
        -1: slice(0, int(np.searchsorted(cols, 0.25))),
        1: slice(int(np.searchsorted(cols, -0.25)), size),
        0: slice(int(np.searchsorted(cols, -0.4)), int(np.searchsorted(cols, 0.4))),
    }


def _window(x, y, xlo, xhi, ylo, yhi, margin=0.03):
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


def _ribcage_side(x, y, lung_vis, side, P, edge, bone):
    """Add ribs (posterior and anterior arcs), clavicle, scapula and humeral head of one side to
    ``bone`` (full-size arrays; each part is computed in its own window)."""
    one = _F32(1.0)
    W_s = P["W_l"] if side > 0 else P["W_r"]
    dy = _F32(P["rib_dy"])
    sgn = _F32(side)

    def box(u0, u1, y0, y1):
        lo, hi = sorted((side * u0, side * u1))
        return _window(x, y, lo, hi, y0, y1)

    # posterior ribs: level sets of a phase field. From the spine each rib runs laterally and
    # upwards, turns at the lateral third and runs down along the lateral chest wall; the upper
    # ribs are more curved.
    w = box(0.06, 1.03 * W_s, -2.0, 2.0)
    if w is not None:
        xx, yy, lv_w = x[w], y[w], lung_vis[w]
        u = xx * sgn / _F32(W_s)
        up = np.clip(u, 0.0, 1.12)
        bend = _softplus(up - _F32(0.68), 0.05)
        lvl = (yy - _F32(P["rib_y0"])) / dy
        shape_u = _F32(-2.6) * up + _F32(18.0) * bend * bend
        lc = np.clip(lvl - shape_u, 0.0, 11.0)  # one fixed-point step for the level-dependent curvature
        cv = _F32(P["rib_curve"]) * (one + _F32(0.6) * (one - lc / _F32(11.0)) ** 2)
        lvl = lvl - cv * shape_u
        fr = lvl - np.floor(lvl)
        slope = cv * (_F32(-2.6) + _F32(36.0) * bend * _sig((up - _F32(0.68)) / _F32(0.05))) * (dy / _F32(W_s))
        dd = (fr - _F32(0.5)) / np.sqrt(one + slope * slope)
        ext = _sig((u - _F32(0.09)) / _F32(0.02)) * _sig((_F32(1.01) - u) / _F32(0.012))
        ext *= _sig((lvl + _F32(0.4)) / _F32(0.05)) * _sig((_F32(11.5) - lvl) / _F32(0.1))
        rib_w = _F32(0.40) + _F32(0.60) * lv_w  # ribs read best against aerated lung
        bone[w] += _F32(0.13) * _cortical(dd, 0.17, 0.7) * ext * rib_w
    # anterior ribs: from the lateral wall down and medially to the (invisible) costal cartilage
    ya0 = P["rib_y0"] + 1.2 * P["rib_dy"]
    w = box(0.33 * W_s, 1.03 * W_s, ya0 - 1.2 * P["rib_dy"], ya0 + 9.5 * P["rib_dy"])
    if w is not None:
        xx, yy = x[w], y[w]
        u = xx * sgn / _F32(W_s)
        one_u = np.clip(one - u, 0.0, 1.0)
        la = (yy - _F32(ya0) - dy * (_F32(2.2) * one_u ** _F32(1.3) - _F32(0.5) * np.clip(u, 0.0, 1.12))) / (
            dy * _F32(1.08)
        )
        fra = la - np.floor(la)
        exta = _sig((u - _F32(0.40)) / _F32(0.05)) * _sig((_F32(1.0) - u) / _F32(0.02))
        exta *= _sig((la + _F32(0.5)) / _F32(0.05)) * _sig((_F32(6.5) - la) / _F32(0.1))
        bone[w] += _F32(0.07) * _tube(fra - _F32(0.5), 0.26) * exta * (_F32(0.40) + _F32(0.60) * lung_vis[w])
    # clavicle (S-shaped; the medial end dips to the sternoclavicular joint)
    tilt = P["clav_tilt"]
    w = box(0.03, 1.05, P["clav_y"] - tilt - 0.12, P["clav_y"] + 0.15)
    if w is not None:
        uc, yy = x[w] * sgn, y[w]
        yc = (
            _F32(P["clav_y"])
            - _F32(tilt) * uc
            + _F32(0.04) * np.sin(_F32(6.0) * uc)
            + _F32(0.05) * _sig((_F32(0.14) - uc) / _F32(0.03))
        )
        dcl = (yy - yc) * _F32(1.0 / math.sqrt(1.0 + tilt * tilt))
        extc = _sig((uc - _F32(0.075)) / _F32(0.012)) * _sig((_F32(0.95) - uc) / _F32(0.03))
        bone[w] += _F32(0.28) * _cortical(dcl, 0.036, 0.7) * extc
    # scapula: a thin plate with a bright lateral border; its medial border lies at scap_u * W
    top = P["apex_r"] - 0.04
    bot = P["hilum_y"] + 0.14
    w = box((P["scap_u"] - 0.05) * W_s, 1.4 * W_s, top - 0.08, bot + 0.1)
    if w is not None:
        uc, yy = x[w] * sgn, y[w]
        ts = np.clip((yy - _F32(top)) / _F32(bot - top), 0.0, 1.0)
        med = (_F32(P["scap_u"]) + _F32(0.10) * ts) * _F32(W_s)
        lat_b = _F32(W_s * 1.35) - _F32(0.30) * ts
        vert = _sig((yy - _F32(top)) / _F32(0.02)) * _sig((_F32(bot) - yy) / _F32(0.03))
        plate = _F32(0.06) * _sig((uc - med) / _F32(0.01)) * _sig((lat_b - uc) / _F32(0.02))
        bone[w] += (
            plate + _F32(0.08) * _tube(uc - med, 0.012) + _F32(0.14) * _tube(uc - lat_b + _F32(0.03), 0.03)
        ) * vert
    # humeral head
    hx, hy, hr = W_s + 0.27, P["apex_r"] - 0.06, 0.13
    w = box(hx - hr, hx + hr, hy - hr, hy + hr)
    if w is not None:
        hh = _ellipse_sdf(x[w] * sgn, y[w], hx, hy, hr, hr)
        bone[w] += _F32(0.40) * _cortical(hh + _F32(hr), hr, 0.85) * _sig(-hh / edge)


def _spine(x, y, P, A):
    """Thoracic spine: vertebral bodies, disc spaces, pedicles and spinous processes."""
    one = _F32(1.0)
    dy = _F32(P["rib_dy"])
    sx = x - _F32(0.005 * A["z_spine"])
    vb = (y - _F32(P["rib_y0"] + 0.3 * P["rib_dy"])) / dy
    fr = vb - np.floor(vb)
    body = _sig((fr - _F32(0.12)) / _F32(0.04)) * _sig((_F32(0.90) - fr) / _F32(0.04))
    out = _F32(0.16) * _cortical(sx, 0.056, 0.9) * (_F32(0.35) + _F32(0.65) * body)
    for sp in (-1.0, 1.0):
        dpd = np.sqrt(((sx - _F32(sp * 0.042)) / _F32(0.014)) ** 2 + ((fr - _F32(0.35)) / _F32(0.13)) ** 2)
        out += _F32(0.10) * np.clip(one - dpd, 0.0, None)
    dsp = np.sqrt((sx / _F32(0.011)) ** 2 + ((fr - _F32(0.75)) / _F32(0.16)) ** 2)
    out += _F32(0.07) * np.clip(one - dsp, 0.0, None)
    return out


def render_arrays(inp: RenderInputs, size: int, noise: bool = True):
    """Render one phantom.

    Returns ``(image, masks)``: ``image`` float32 ``[size, size]`` in ``[-1, 1]`` (MONOCHROME2,
    bright = attenuating), ``masks`` a dict of boolean ``[size, size]`` arrays (:data:`MASK_NAMES`).
    """
    size = int(size)
    A = inp.anatomy
    P = _derive_params(inp)
    ap = P["ap"]
    X0, Y0 = _grid(size)
    px = 2.0 / size  # pixel pitch in normalised units
    edge = _F32(max(0.5 * px, 0.002))
    one = _F32(1.0)
    shape = (size, size)
    cols = _column_slices(size, P)

    # patient frame: shift, scale, rotate
    c, s_ = math.cos(P["rot"]), math.sin(P["rot"])
    xs = (X0 - _F32(P["dx"])) / _F32(P["scale"])
    ys = (Y0 - _F32(P["dy"])) / _F32(P["scale"])
    x = _F32(c) * xs + _F32(s_) * ys
    y = -_F32(s_) * xs + _F32(c) * ys
    ax_ = np.abs(x)
    W = P["W"]

    # ---------------- soft tissue ---------------------------------------------------------
    # chest wall half width (curved), widening into the shoulders; the neck at the top
    hw = (
        _F32(W + P["tissue"] + 0.03)
        - _F32(0.07) * (y - _F32(0.15)) ** 2
        + _F32(0.16) * _sig(-(y + _F32(0.70)) / _F32(0.05))
    )
    y_top = _F32(-1.02) + _F32(0.30) * np.clip((ax_ - _F32(0.20)) / _F32(0.75), 0.0, None) ** _F32(1.4)
    y_top = y_top - _F32(0.04) * _sig((_F32(0.22) - ax_) / _F32(0.02))
    inside = _sig((hw - ax_) / edge) * _sig((y - y_top) / _F32(0.012))
    prof = np.sqrt(np.clip(one - (x / hw) ** 2, 0.0, None))
    upper = _sig((y + _F32(0.62)) / _F32(0.08))  # shoulders and neck are thinner than the chest
    T = _F32(P["depth"]) * (_F32(0.50) + _F32(0.50) * prof) * (_F32(0.55) + _F32(0.45) * upper) * inside
    attn = T.copy()
    if P["breast"] > 0.01:
        for side in (-1, 1):
            sl = cols[side]
            xx, yy = x[:, sl], y[:, sl]
            bx = side * (0.60 * W + 0.03 * A["z_breast_x"])
            by = P["dome_r"] - 0.10 + 0.04 * A["z_breast_y"]
            occ = _occupancy(_ellipse_sdf(xx, yy, bx, by, 0.36 * W, 0.25, side * 0.35), 0.10, edge)
            grad = np.clip((yy - _F32(by - 0.25)) / _F32(0.45), 0.0, 1.0)
            attn[:, sl] += _F32(0.34 * P["breast"]) * occ * (_F32(0.25) + _F32(0.75) * grad)

    # ---------------- lungs, heart, mediastinum --------------------------------------------
    d_lung, s_lat, occ_lung, in_lung, lung_win = {}, {}, {}, {}, {}
    for side in (-1, 1):
        W_s = P["W_l"] if side > 0 else P["W_r"]
        apex_s = P["apex_l"] if side > 0 else P["apex_r"]
        cp_s = P["cp_l"] if side > 0 else P["cp_r"]
        lo, hi = sorted((side * 0.02, side * 1.06 * W_s))
        w = _window(x, y, lo, hi, apex_s - 0.02, cp_s + 0.02)
        lung_win[side] = w
        d_full = np.full(shape, 1.0, dtype=_F32)
        s_full = np.zeros(shape, dtype=_F32)
        occ = np.zeros(shape, dtype=_F32)
        inl = np.zeros(shape, dtype=_F32)
        if w is not None:
            d_w, s_w, _ = _lung_sdf(x[w], y[w], side, P)
            d_full[w], s_full[w] = d_w, s_w
            occ[w] = _occupancy(d_w, 0.035, edge)
            inl[w] = _sig(-d_w / edge)
        d_lung[side], s_lat[side], occ_lung[side], in_lung[side] = d_full, s_full, occ, inl
        # below the dome: liver (right) is denser than spleen and stomach (left)
        y_dome = P["dome_l"] if side > 0 else P["dome_r"]
        k = (cp_s - y_dome) / (W_s - 0.40 * W_s) ** 2
        ydia = _F32(y_dome) + _F32(k) * (x * _F32(side) - _F32(0.40 * W_s)) ** 2
        attn += _sig((y - ydia) / _F32(0.01)) * _sig(x * _F32(side / 0.05)) * _F32(0.10 if side < 0 else 0.06) * inside

    mag = AP_HEART_MAGNIFICATION if ap else 1.0
    ctr_proj = float(np.clip(inp.ctr * mag, 0.25, 0.95))
    d_h, hl = _heart_sdf(x, y, P, ctr_proj)
    heart_occ = _occupancy(d_h, 0.03, edge)
    keep = one - _F32(0.92) * heart_occ
    # aortic knob (unfolding with age) bulging into the left lung
    sl0 = cols[0]
    ar = P["aorta"]
    aorta_occ = np.zeros(shape, dtype=_F32)
    d_ak = _ellipse_sdf(
        x[:, sl0], y[:, sl0], P["med_top"] + 0.1 * ar, -0.36 + 0.02 * A["z_aorta_y"], 1.1 * ar, 1.5 * ar
    )
    aorta_occ[:, sl0] = _occupancy(d_ak, 0.03, edge)
    air_side = {-1: occ_lung[-1] * keep, 1: occ_lung[1] * keep * (one - aorta_occ)}

    # ---------------- effusions: fluid with a meniscus at the costophrenic angle -------------
    eff_occ = {}
    for side, vol in ((-1, inp.effusion_right_ml), (1, inp.effusion_left_ml)):
        y_cp = P["cp_l"] if side > 0 else P["cp_r"]
        W_s = P["W_l"] if side > 0 else P["W_r"]
        h = 0.55 * (max(float(vol), 0.0) / 1500.0) ** 1.25  # meniscus height (normalised units)
        occ = np.zeros(shape, dtype=_F32)
        if h > 1e-4:
            sl = lung_win[side] or (slice(0, 0), slice(0, 0))
            frac = np.clip((s_lat[side][sl] - _F32(0.15)) / _F32(W_s - 0.15), 0.0, 1.2)
            if ap:  # semi-supine: fluid layers posteriorly -> a hazy gradient, no sharp meniscus
                y_top = _F32(y_cp + 0.01 - 0.8 * h) - _F32(0.3 * h) * frac
                soft = _F32(0.05 + 0.1 * h)
            else:
                y_top = _F32(y_cp + 0.01) - _F32(h) * (_F32(0.30) + _F32(0.70) * frac * frac)
                soft = _F32(0.012)
            occ[sl] = _sig((y[sl] - y_top) / soft) * in_lung[side][sl] * _F32(min(1.0, h / 0.01))
        eff_occ[side] = occ
        air_side[side] = air_side[side] * (one - _F32(0.95) * occ)
    air = air_side[-1] + air_side[1]
    lung_in = in_lung[-1] + in_lung[1]
    attn += _F32(0.12) * (eff_occ[-1] + eff_occ[1])  # the fluid layer itself

    # ---------------- lung markings and edema ----------------------------------------------
    (v0, v1, vr, vside), kerley = _vessel_tree(int(inp.render_seed))
    e = max(0.0, float(inp.edema_score))
    cong = min(e, 1.0)  # vascular congestion / cephalisation, saturating at grade 1
    inter = float(np.clip(e - 1.0, 0.0, 1.0))  # interstitial edema
    alv = float(np.clip(e - 2.0, 0.0, 1.0))  # alveolar edema
    # vessel trees: hilum-centred lung coordinates -> patient frame -> image, splatted and blurred
    hxs = np.where(vside < 0, -(P["med_top"] + 0.05), P["med_top"] + 0.07)
    hys = np.where(vside < 0, P["hilum_y"] + 0.03, P["hilum_y"] - 0.01)
    Ws = np.where(vside < 0, P["W_r"], P["W_l"])
    vert = (P["cp_r"] - P["apex_r"]) / 1.25

    def _to_patient(q):
        return np.stack([hxs + vside * q[:, 0] * Ws, hys + q[:, 1] * vert], axis=1)

    q0 = _patient_to_image(P, _to_patient(v0))
    q1 = _patient_to_image(P, _to_patient(v1))
    thick = vr > 0.009
    sig_t = 0.008 / px
    sig_f = max(0.5, 0.003 / px)
    acc_t = np.zeros(shape, dtype=_F32)
    acc_f = np.zeros(shape, dtype=_F32)
    # line density such that the blurred peak equals the projected vessel thickness 2r
    _splat_segments(acc_t, q0[thick], q1[thick], vr[thick] * 2.0 * math.sqrt(2 * math.pi) * sig_t, size)
    _splat_segments(acc_f, q0[~thick], q1[~thick], vr[~thick] * 2.0 * math.sqrt(2 * math.pi) * sig_f, size)
    marks = ndimage.gaussian_filter(acc_t, sig_t, truncate=2.5)
    if sig_f > 0.6:  # below that the bilinear footprint and the final blur suffice
        acc_f = ndimage.gaussian_filter(acc_f, sig_f, truncate=2.5)
    marks += acc_f
    upper_zone = _sig(-(y - _F32(P["hilum_y"])) / _F32(0.12))
    marks *= lung_in * (one + _F32(0.8 * cong) * upper_zone)  # upper-lobe diversion
    marks = marks / (one + marks * _F32(6.0))  # overlapping vessels near the hila saturate

    edema_f = np.zeros(shape, dtype=_F32)
    if e > 1e-3:
        bank = _texture_bank(size)
        tex = bank[int(A["u_tex"] * 4) % 4]
        ox, oy = int(A["u_tex_x"] * size), int(A["u_tex_y"] * size)
        tex = tex[oy : oy + size, ox : ox + size]
        ew = _F32(0.24 + 0.12 * min(e, 3.0) / 3.0)
        for side in (-1, 1):
            sl = cols[side]
            xx, yy, air_h = x[:, sl], y[:, sl], air_side[side][:, sl]
            dxh = (xx - _F32(side * (P["med_top"] + 0.07))) * _F32(side)
            dyh = yy - _F32(P["hilum_y"])
            # perihilar ("bat-wing") haze, fluffy and confluent when alveolar
            bw = np.exp(-((dxh / (ew * _F32(1.25))) ** 2 + (dyh / (ew * _F32(1.6))) ** 2))
            val = _F32(0.20 * inter + 0.06 * cong) * (bw * _F32(0.8) + _F32(0.2))
            if alv > 0.0:
                val = val + _F32(0.55 * alv) * bw * (_F32(0.4) + _F32(0.6) * _sig(_F32(2.0) * tex[:, sl] + _F32(0.5)))
            if inter > 0.0:  # Kerley B lines: short horizontal lines at the lateral bases
                W_s = P["W_l"] if side > 0 else P["W_r"]
                lat = _sig((xx * _F32(side) - _F32(W_s * 0.90)) / _F32(0.01))
                base = _sig((yy - _F32(P["hilum_y"] + 0.30)) / _F32(0.04))
                phk = yy * _F32(1.0 / 0.045) + _F32(0.35) * np.sin(yy * _F32(37.0) + _F32(kerley[int(side > 0)] * 6.3))
                lines = np.clip(np.cos(_F32(2 * np.pi) * phk), 0.0, None) ** 12
                val = val + _F32(0.35 * inter) * lat * base * lines
            edema_f[:, sl] += val * air_h

    # hila: pulmonary arteries, enlarged by congestion
    hil = np.zeros(shape, dtype=_F32)
    for side, dyh in ((-1.0, 0.03), (1.0, -0.02)):
        d_hh = _ellipse_sdf(
            x[:, sl0], y[:, sl0], side * (P["med_top"] + 0.05), P["hilum_y"] + dyh, 0.05 + 0.01 * cong, 0.10, side * 0.3
        )
        hil[:, sl0] += _occupancy(d_hh, 0.05, edge * 3)

    # ---------------- bones ----------------------------------------------------------------
    bone = np.zeros(shape, dtype=_F32)
    lung_vis = np.clip(air, 0.0, 1.0)
    for side in (-1, 1):
        _ribcage_side(x, y, lung_vis, side, P, edge, bone)
    bone[:, sl0] += _spine(x[:, sl0], y[:, sl0], P, A)
    bone *= _F32(inp.bone_density)

    # ---------------- assemble attenuation ----------------------------------------------------
    attn -= _F32(0.45 * P["depth"]) * air
    attn += _F32(4.0) * marks * (air + _F32(0.15))
    attn += _F32(0.9) * edema_f
    attn += _F32(0.10 * (1.0 + 0.6 * cong)) * hil * lung_in
    # trachea (air column) down to the carina
    xc, yc0 = x[:, sl0], y[:, sl0]
    tr = _occupancy(np.abs(xc - _F32(0.005)) - _F32(0.032), 0.025, edge) * _sig(
        (_F32(P["hilum_y"] - 0.10) - yc0) / _F32(0.03)
    )
    attn[:, sl0] -= _F32(0.16) * tr
    # gastric bubble under the left dome
    if A["u_stomach"] < 0.75:
        sl = cols[1]
        gy = P["dome_l"] + 0.12
        dgs = _ellipse_sdf(x[:, sl], y[:, sl], 0.40 * W, gy, 0.10 + 0.025 * A["z_stomach"], 0.065)
        attn[:, sl] -= _F32(0.25) * _occupancy(dgs, 0.04, edge) * _sig((_F32(gy + 0.015) - y[:, sl]) / edge)
    attn += bone

    # ---------------- device: pacemaker / ICD generator and leads -----------------------------
    dev_img = None
    if inp.device:
        side = -1.0 if A["u_device_side"] < 0.12 else 1.0
        gx = side * (0.50 * W + 0.04 * A["z_dev_x"])
        gy = P["clav_y"] + 0.17 + 0.03 * A["z_dev_y"]
        gen = _sig(-_ellipse_sdf(x, y, gx, gy, 0.085, 0.06, 0.25 * side) / edge)
        g0 = np.array([gx - side * 0.05, gy - 0.02])
        svc = np.array([-0.07, P["hilum_y"] - 0.02])
        ra, apex = np.array(hl["ra"]), np.array(hl["apex"])
        atrial = np.array([hl["ra"][0] + 0.06, hl["top"] + 0.04])
        n = 64

        def _vein(o):
            return _bezier(
                g0 + o,
                np.array([gx - side * 0.22, gy - 0.14]) + o,
                np.array([0.04, P["clav_y"] + 0.03]) + o,
                svc + o,
                n,
            )

        ventricular = np.concatenate([_vein(0.0), _bezier(svc, svc + np.array([-0.02, 0.2]), ra, apex, n)])
        atrial_lead = np.concatenate(
            [
                _vein(0.012),
                _bezier(svc + 0.012, svc + np.array([-0.03, 0.25]), atrial + np.array([-0.06, 0.1]), atrial, n),
            ]
        )
        acc = np.zeros(shape, dtype=_F32)
        sig_d = max(0.6, 0.004 / px)
        for lead in (ventricular, atrial_lead):
            q = _patient_to_image(P, lead)
            _splat_segments(
                acc, q[:-1], q[1:], np.full(len(q) - 1, 0.012 * math.sqrt(2 * math.pi) * sig_d / 0.012), size
            )
        acc = ndimage.gaussian_filter(acc, sig_d, truncate=2.5)
        dev_img = np.clip(acc, 0.0, 1.0) + gen
        attn += _F32(1.5) * np.clip(dev_img, 0.0, 1.2)

    # ---------------- side marker (lead letter, a physical object in the beam) ------------------
    marker_mask = np.zeros(shape, dtype=bool)
    letter = "L" if A["u_marker"] < 0.7 else "R"  # names the patient side it lies on
    bm = text_bitmap(letter, max(1, round(size / 128)))
    mh, mw = bm.shape
    margin = max(2, int(size * 0.04))
    my = int(size * (0.12 + 0.15 * A["u_marker_y"]))
    mx = size - margin - mw if letter == "L" else margin
    marker_mask[my : my + mh, mx : mx + mw] = bm
    attn += _F32(1.8) * marker_mask

    if _DEBUG is not None:
        _DEBUG.update(T=T, bone=bone, air=air, marks=marks, edema=edema_f, attn=attn.copy(), heart=heart_occ)

    # ---------------- blur, quantum noise, characteristic curve ----------------------------------
    sig_px = P["blur"] / px
    if sig_px > 0.3:
        attn = ndimage.gaussian_filter(attn, sig_px, truncate=3.0)
    if noise:
        rng = np.random.default_rng([int(inp.render_seed) % (2**63), size, 3])
        z = rng.standard_normal(shape, dtype=_F32)
        # log-domain quantum noise: fewer photons behind dense structures -> more noise there
        sd = _F32(P["noise"]) * np.exp(_F32(0.8) * (np.clip(attn, 0.0, 2.0) - _F32(0.6)))
        attn = attn + sd * z
    center = _F32(0.70 + P["exposure"])
    width = _F32(0.62 / P["contrast"])
    img = np.tanh((attn - center) / width)

    # ---------------- burned-in text label (AP only) ----------------------------------------
    label_mask = np.zeros(shape, dtype=bool)
    if ap:
        text = AP_LABELS[int(A["u_label"] * len(AP_LABELS)) % len(AP_LABELS)]
        bm = text_bitmap(text, max(1, round(size / 128)))
        lh, lw = bm.shape
        lw = min(lw, size - 2 * margin)
        ly = max(1, int(size * 0.025))
        lx = margin if (letter == "L" or A["u_label_side"] < 0.6) else size - margin - lw
        label_mask[ly : ly + lh, lx : lx + lw] = bm[:, :lw]
        img = np.where(label_mask, _F32(0.97), img)
    img = np.clip(img, -1.0, 1.0).astype(_F32, copy=False)

    # ---------------- masks -----------------------------------------------------------------
    heart_m = d_h < 0
    lungs_m = ((d_lung[-1] < 0) | (d_lung[1] < 0)) & ~heart_m
    eff_r = (eff_occ[-1] > 0.5) & (d_lung[-1] < 0)
    eff_l = (eff_occ[1] > 0.5) & (d_lung[1] < 0)
    masks = {
        "heart": heart_m,
        "lungs": lungs_m,
        "effusion": eff_r | eff_l,
        "effusion_left": eff_l,
        "effusion_right": eff_r,
        "edema": (edema_f > 0.05) & lungs_m,
        "device": (dev_img > 0.35) if dev_img is not None else np.zeros(shape, dtype=bool),
        "text_label": label_mask,
        "marker": marker_mask,
    }
    return img, masks
