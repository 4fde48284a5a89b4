"""The anatomy of a phantom chest: its geometry from the factors and the exogenous anatomy.

The renderer's (:mod:`.radiograph`) inputs (:class:`RenderInputs`: the causal factors of one
individual, already intervened upon, and its exogenous anatomy and noise draws) become geometry,
exposure and processing parameters (:func:`derive_params`), and those become the shapes the
radiograph is drawn from: the lungs, the cardiac silhouette, the pulmonary vessel trees, the ribcage
with clavicles, scapulae and humeral heads, and the spine. Nothing here knows the structural causal
model (:mod:`.causal`). Coordinates: the patient frame of :mod:`.drawing`'s grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .drawing import box_window, cortical, ellipse_sdf, grid, sigmoid, softplus, tube

__all__ = ["AP_HEART_MAGNIFICATION", "Frame", "RenderInputs", "derive_params", "heart_sdf", "lung_sdf",
           "patient_frame", "patient_to_image", "ribcage_side", "spine", "vessel_tree"]

_F32 = np.float32

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
def derive_params(inp: RenderInputs) -> dict:
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


def lung_sdf(x, y, side, P):
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
    s_med = _F32(med_top) + _F32(med_low - med_top) * sigmoid((y - _F32(P["heart_ay"] - 0.40)) / _F32(0.06))
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


def heart_sdf(x, y, P, ctr_proj):
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
    w = box_window(x, y, *box, margin=0.06)
    if w is not None:
        u = (x[w] - _F32(ax)) / _F32(fx * W)
        v = (y[w] - _F32(ay)) / _F32(fy * W)
        dd = ellipse_sdf(u, v, *parts[0])
        for e in parts[1:]:
            dd = np.minimum(dd, ellipse_sdf(u, v, *e))
        d[w] = dd * _F32(min(fx, fy) * W)
    # landmarks in the patient frame (for device leads)
    apex = (ax + fx * W * (lv[0] + 0.55 * lv[2]), ay + fy * W * (lv[1] + 0.45 * lv[3]))
    ra = (ax + fx * W * _RA[0], ay + fy * W * (_RA[1] - 0.1))
    top = ay + fy * W * (_LV[1] - 0.8 * _LV[3])
    return d, {"apex": apex, "ra": ra, "top": top}


def patient_to_image(P, pts):
    c, s = math.cos(P["rot"]), math.sin(P["rot"])
    xi = c * pts[:, 0] - s * pts[:, 1]
    yi = s * pts[:, 0] + c * pts[:, 1]
    return np.stack([xi * P["scale"] + P["dx"], yi * P["scale"] + P["dy"]], axis=1)


# --------------------------------------------------------------------------------------------
# the frame: the image grid in the patient's coordinates
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """What every stage shares: the pixel grid in patient coordinates (``x``, ``y``), the derived
    parameters ``P``, the exogenous anatomy ``A``, the pixel pitch ``px`` (normalised units), the
    soft ``edge`` of a shape (about half a pixel), and column ranges that can hold the patient's
    right side (-1), left side (1) and mediastinum (0)."""

    size: int
    P: dict
    A: Mapping[str, float]
    x: np.ndarray
    y: np.ndarray
    px: float
    edge: np.float32
    cols: dict

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)


def _column_slices(size: int, P: dict) -> dict:
    """Column ranges that can hold each side's anatomy (with a generous margin for pose)."""
    cols = grid(size)[0][0]
    return {
        -1: slice(0, int(np.searchsorted(cols, 0.25))),
        1: slice(int(np.searchsorted(cols, -0.25)), size),
        0: slice(int(np.searchsorted(cols, -0.4)), int(np.searchsorted(cols, 0.4))),
    }


def patient_frame(inp: RenderInputs, size: int) -> Frame:
    """The image grid in the patient's frame: shift, scale, rotate."""
    P = derive_params(inp)
    X0, Y0 = grid(size)
    px = 2.0 / size  # pixel pitch in normalised units
    c, s_ = math.cos(P["rot"]), math.sin(P["rot"])
    xs = (X0 - _F32(P["dx"])) / _F32(P["scale"])
    ys = (Y0 - _F32(P["dy"])) / _F32(P["scale"])
    x = _F32(c) * xs + _F32(s_) * ys
    y = -_F32(s_) * xs + _F32(c) * ys
    return Frame(size, P, inp.anatomy, x, y, px, _F32(max(0.5 * px, 0.002)), _column_slices(size, P))


# --------------------------------------------------------------------------------------------
# lung markings and bones
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def vessel_tree(render_seed: int):
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


def ribcage_side(x, y, lung_vis, side, P, edge, bone):
    """Add ribs (posterior and anterior arcs), clavicle, scapula and humeral head of one side to
    ``bone`` (full-size arrays; each part is computed in its own window)."""
    one = _F32(1.0)
    W_s = P["W_l"] if side > 0 else P["W_r"]
    dy = _F32(P["rib_dy"])
    sgn = _F32(side)

    def box(u0, u1, y0, y1):
        lo, hi = sorted((side * u0, side * u1))
        return box_window(x, y, lo, hi, y0, y1)

    # posterior ribs: level sets of a phase field. From the spine each rib runs laterally and
    # upwards, turns at the lateral third and runs down along the lateral chest wall; the upper
    # ribs are more curved.
    w = box(0.06, 1.03 * W_s, -2.0, 2.0)
    if w is not None:
        xx, yy, lv_w = x[w], y[w], lung_vis[w]
        u = xx * sgn / _F32(W_s)
        up = np.clip(u, 0.0, 1.12)
        bend = softplus(up - _F32(0.68), 0.05)
        lvl = (yy - _F32(P["rib_y0"])) / dy
        shape_u = _F32(-2.6) * up + _F32(18.0) * bend * bend
        lc = np.clip(lvl - shape_u, 0.0, 11.0)  # one fixed-point step for the level-dependent curvature
        cv = _F32(P["rib_curve"]) * (one + _F32(0.6) * (one - lc / _F32(11.0)) ** 2)
        lvl = lvl - cv * shape_u
        fr = lvl - np.floor(lvl)
        slope = cv * (_F32(-2.6) + _F32(36.0) * bend * sigmoid((up - _F32(0.68)) / _F32(0.05))) * (dy / _F32(W_s))
        dd = (fr - _F32(0.5)) / np.sqrt(one + slope * slope)
        ext = sigmoid((u - _F32(0.09)) / _F32(0.02)) * sigmoid((_F32(1.01) - u) / _F32(0.012))
        ext *= sigmoid((lvl + _F32(0.4)) / _F32(0.05)) * sigmoid((_F32(11.5) - lvl) / _F32(0.1))
        rib_w = _F32(0.40) + _F32(0.60) * lv_w  # ribs read best against aerated lung
        bone[w] += _F32(0.13) * cortical(dd, 0.17, 0.7) * ext * rib_w
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
        exta = sigmoid((u - _F32(0.40)) / _F32(0.05)) * sigmoid((_F32(1.0) - u) / _F32(0.02))
        exta *= sigmoid((la + _F32(0.5)) / _F32(0.05)) * sigmoid((_F32(6.5) - la) / _F32(0.1))
        bone[w] += _F32(0.07) * tube(fra - _F32(0.5), 0.26) * exta * (_F32(0.40) + _F32(0.60) * lung_vis[w])
    # clavicle (S-shaped; the medial end dips to the sternoclavicular joint)
    tilt = P["clav_tilt"]
    w = box(0.03, 1.05, P["clav_y"] - tilt - 0.12, P["clav_y"] + 0.15)
    if w is not None:
        uc, yy = x[w] * sgn, y[w]
        yc = (
            _F32(P["clav_y"])
            - _F32(tilt) * uc
            + _F32(0.04) * np.sin(_F32(6.0) * uc)
            + _F32(0.05) * sigmoid((_F32(0.14) - uc) / _F32(0.03))
        )
        dcl = (yy - yc) * _F32(1.0 / math.sqrt(1.0 + tilt * tilt))
        extc = sigmoid((uc - _F32(0.075)) / _F32(0.012)) * sigmoid((_F32(0.95) - uc) / _F32(0.03))
        bone[w] += _F32(0.28) * cortical(dcl, 0.036, 0.7) * extc
    # scapula: a thin plate with a bright lateral border; its medial border lies at scap_u * W
    top = P["apex_r"] - 0.04
    bot = P["hilum_y"] + 0.14
    w = box((P["scap_u"] - 0.05) * W_s, 1.4 * W_s, top - 0.08, bot + 0.1)
    if w is not None:
        uc, yy = x[w] * sgn, y[w]
        ts = np.clip((yy - _F32(top)) / _F32(bot - top), 0.0, 1.0)
        med = (_F32(P["scap_u"]) + _F32(0.10) * ts) * _F32(W_s)
        lat_b = _F32(W_s * 1.35) - _F32(0.30) * ts
        vert = sigmoid((yy - _F32(top)) / _F32(0.02)) * sigmoid((_F32(bot) - yy) / _F32(0.03))
        plate = _F32(0.06) * sigmoid((uc - med) / _F32(0.01)) * sigmoid((lat_b - uc) / _F32(0.02))
        bone[w] += (
            plate + _F32(0.08) * tube(uc - med, 0.012) + _F32(0.14) * tube(uc - lat_b + _F32(0.03), 0.03)
        ) * vert
    # humeral head
    hx, hy, hr = W_s + 0.27, P["apex_r"] - 0.06, 0.13
    w = box(hx - hr, hx + hr, hy - hr, hy + hr)
    if w is not None:
        hh = ellipse_sdf(x[w] * sgn, y[w], hx, hy, hr, hr)
        bone[w] += _F32(0.40) * cortical(hh + _F32(hr), hr, 0.85) * sigmoid(-hh / edge)


def spine(x, y, P, A):
    """Thoracic spine: vertebral bodies, disc spaces, pedicles and spinous processes."""
    one = _F32(1.0)
    dy = _F32(P["rib_dy"])
    sx = x - _F32(0.005 * A["z_spine"])
    vb = (y - _F32(P["rib_y0"] + 0.3 * P["rib_dy"])) / dy
    fr = vb - np.floor(vb)
    body = sigmoid((fr - _F32(0.12)) / _F32(0.04)) * sigmoid((_F32(0.90) - fr) / _F32(0.04))
    out = _F32(0.16) * cortical(sx, 0.056, 0.9) * (_F32(0.35) + _F32(0.65) * body)
    for sp in (-1.0, 1.0):
        dpd = np.sqrt(((sx - _F32(sp * 0.042)) / _F32(0.014)) ** 2 + ((fr - _F32(0.35)) / _F32(0.13)) ** 2)
        out += _F32(0.10) * np.clip(one - dpd, 0.0, None)
    dsp = np.sqrt((sx / _F32(0.011)) ** 2 + ((fr - _F32(0.75)) / _F32(0.16)) ** 2)
    out += _F32(0.07) * np.clip(one - dsp, 0.0, None)
    return out
