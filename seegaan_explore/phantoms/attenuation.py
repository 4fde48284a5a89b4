"""The attenuation map of a phantom chest: what the X-ray beam meets, stage by stage.

:func:`attenuation_map` draws the body on the image grid in the patient's frame
(:func:`~.anatomy.patient_frame`: the pose from the exogenous anatomy) in the order an exam's
physics composes it, one stage a function: soft tissue and the organs below the diaphragm domes;
the lungs, hidden in part by the heart and the aortic knob; pleural effusions; lung markings (vessel
trees), edema and the hila; bones; the trachea and the gastric bubble (air); a cardiac device and
the side marker, objects in the beam. Higher = more attenuating = brighter in MONOCHROME2; float32.
The shapes come from :mod:`.anatomy`, the brushes from :mod:`.drawing`, the detector is
:mod:`.radiograph`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import (
    AP_HEART_MAGNIFICATION,
    Frame,
    RenderInputs,
    heart_sdf,
    lung_sdf,
    patient_to_image,
    ribcage_side,
    spine,
    vessel_tree,
)
from .drawing import (
    annotation_margin,
    bezier,
    box_window,
    ellipse_sdf,
    occupancy,
    sigmoid,
    splat_segments,
    text_bitmap,
    texture_bank,
)

__all__ = ["Body", "attenuation_map"]

_F32 = np.float32


# --------------------------------------------------------------------------------------------
# the body, stage by stage (each adds to the attenuation map or returns what it adds)
# --------------------------------------------------------------------------------------------
def _soft_tissue(f: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2: the chest wall's half width (curved), widening into the shoulders, the neck at the
    top, and the breasts: ``(attenuation, inside the body)``."""
    P, A, x, y, edge, one = f.P, f.A, f.x, f.y, f.edge, _F32(1.0)
    W = P["W"]
    ax_ = np.abs(x)
    hw = (
        _F32(W + P["tissue"] + 0.03)
        - _F32(0.07) * (y - _F32(0.15)) ** 2
        + _F32(0.16) * sigmoid(-(y + _F32(0.70)) / _F32(0.05))
    )
    y_top = _F32(-1.02) + _F32(0.30) * np.clip((ax_ - _F32(0.20)) / _F32(0.75), 0.0, None) ** _F32(1.4)
    y_top = y_top - _F32(0.04) * sigmoid((_F32(0.22) - ax_) / _F32(0.02))
    inside = sigmoid((hw - ax_) / edge) * sigmoid((y - y_top) / _F32(0.012))
    prof = np.sqrt(np.clip(one - (x / hw) ** 2, 0.0, None))
    upper = sigmoid((y + _F32(0.62)) / _F32(0.08))  # shoulders and neck are thinner than the chest
    attn = _F32(P["depth"]) * (_F32(0.50) + _F32(0.50) * prof) * (_F32(0.55) + _F32(0.45) * upper) * inside
    if P["breast"] > 0.01:
        for side in (-1, 1):
            sl = f.cols[side]
            xx, yy = x[:, sl], y[:, sl]
            bx = side * (0.60 * W + 0.03 * A["z_breast_x"])
            by = P["dome_r"] - 0.10 + 0.04 * A["z_breast_y"]
            occ = occupancy(ellipse_sdf(xx, yy, bx, by, 0.36 * W, 0.25, side * 0.35), 0.10, edge)
            grad = np.clip((yy - _F32(by - 0.25)) / _F32(0.45), 0.0, 1.0)
            attn[:, sl] += _F32(0.34 * P["breast"]) * occ * (_F32(0.25) + _F32(0.75) * grad)
    return attn, inside


def _side_params(P: dict, side: int) -> tuple[float, float, float, float]:
    """(half width, apex, dome, costophrenic angle) of one side: +1 the patient's left, -1 the right."""
    if side > 0:
        return P["W_l"], P["apex_l"], P["dome_l"], P["cp_l"]
    return P["W_r"], P["apex_r"], P["dome_r"], P["cp_r"]


@dataclass(frozen=True)
class _Lungs:
    """Per side (-1, 1): signed distance, lateral coordinate, occupancy, inside, and the window."""

    distance: dict
    lateral: dict
    occupancy: dict
    inside: dict
    window: dict


def _lungs(f: Frame) -> _Lungs:
    """Stage 3a: both lungs, each computed in its own window of the grid."""
    distance, lateral, occ_lung, in_lung, lung_win = {}, {}, {}, {}, {}
    for side in (-1, 1):
        W_s, apex_s, _, cp_s = _side_params(f.P, side)
        lo, hi = sorted((side * 0.02, side * 1.06 * W_s))
        w = box_window(f.x, f.y, lo, hi, apex_s - 0.02, cp_s + 0.02)
        lung_win[side] = w
        d_full = np.full(f.shape, 1.0, dtype=_F32)
        s_full = np.zeros(f.shape, dtype=_F32)
        occ = np.zeros(f.shape, dtype=_F32)
        inl = np.zeros(f.shape, dtype=_F32)
        if w is not None:
            d_w, s_w, _ = lung_sdf(f.x[w], f.y[w], side, f.P)
            d_full[w], s_full[w] = d_w, s_w
            occ[w] = occupancy(d_w, 0.035, f.edge)
            inl[w] = sigmoid(-d_w / f.edge)
        distance[side], lateral[side], occ_lung[side], in_lung[side] = d_full, s_full, occ, inl
    return _Lungs(distance, lateral, occ_lung, in_lung, lung_win)


def _add_below_domes(f: Frame, attn: np.ndarray, inside: np.ndarray) -> None:
    """Stage 2b: below each dome, the liver (right) is denser than spleen and stomach (left)."""
    x, y = f.x, f.y
    for side in (-1, 1):
        W_s, _, y_dome, cp_s = _side_params(f.P, side)
        k = (cp_s - y_dome) / (W_s - 0.40 * W_s) ** 2
        ydia = _F32(y_dome) + _F32(k) * (x * _F32(side) - _F32(0.40 * W_s)) ** 2
        attn += (sigmoid((y - ydia) / _F32(0.01)) * sigmoid(x * _F32(side / 0.05)) * _F32(0.10 if side < 0 else 0.06)
                 * inside)


def _heart_and_aorta(f: Frame, ctr: float, lungs: _Lungs) -> tuple[np.ndarray, dict, dict]:
    """Stage 3b: the cardiac silhouette (magnified in AP) and the aortic knob (unfolding with age)
    bulging into the left lung, which both hide lung: ``(heart distance, heart landmarks, aerated
    lung per side)``."""
    P, A, x, y, edge, one = f.P, f.A, f.x, f.y, f.edge, _F32(1.0)
    mag = AP_HEART_MAGNIFICATION if P["ap"] else 1.0
    ctr_proj = float(np.clip(ctr * mag, 0.25, 0.95))
    d_h, landmarks = heart_sdf(x, y, P, ctr_proj)
    keep = one - _F32(0.92) * occupancy(d_h, 0.03, edge)
    sl0 = f.cols[0]
    ar = P["aorta"]
    aorta_occ = np.zeros(f.shape, dtype=_F32)
    d_ak = ellipse_sdf(
        x[:, sl0], y[:, sl0], P["med_top"] + 0.1 * ar, -0.36 + 0.02 * A["z_aorta_y"], 1.1 * ar, 1.5 * ar
    )
    aorta_occ[:, sl0] = occupancy(d_ak, 0.03, edge)
    air_side = {-1: lungs.occupancy[-1] * keep, 1: lungs.occupancy[1] * keep * (one - aorta_occ)}
    return d_h, landmarks, air_side


def _effusions(f: Frame, inp: RenderInputs, lungs: _Lungs, air_side: dict) -> dict:
    """Stage 4a: pleural fluid per side, with a meniscus at the costophrenic angle (a hazy gradient
    in AP, where it layers posteriorly); the fluid displaces air in ``air_side``."""
    P, y, one = f.P, f.y, _F32(1.0)
    eff_occ = {}
    for side, vol in ((-1, inp.effusion_right_ml), (1, inp.effusion_left_ml)):
        W_s, _, _, y_cp = _side_params(P, side)
        h = 0.55 * (max(float(vol), 0.0) / 1500.0) ** 1.25  # meniscus height (normalised units)
        occ = np.zeros(f.shape, dtype=_F32)
        if h > 1e-4:
            sl = lungs.window[side] or (slice(0, 0), slice(0, 0))
            frac = np.clip((lungs.lateral[side][sl] - _F32(0.15)) / _F32(W_s - 0.15), 0.0, 1.2)
            if P["ap"]:  # semi-supine: fluid layers posteriorly -> a hazy gradient, no sharp meniscus
                y_top = _F32(y_cp + 0.01 - 0.8 * h) - _F32(0.3 * h) * frac
                soft = _F32(0.05 + 0.1 * h)
            else:
                y_top = _F32(y_cp + 0.01) - _F32(h) * (_F32(0.30) + _F32(0.70) * frac * frac)
                soft = _F32(0.012)
            occ[sl] = sigmoid((y[sl] - y_top) / soft) * lungs.inside[side][sl] * _F32(min(1.0, h / 0.01))
        eff_occ[side] = occ
        air_side[side] = air_side[side] * (one - _F32(0.95) * occ)
    return eff_occ


def _edema_levels(edema_score: float) -> tuple[float, float, float, float]:
    """(score, vascular congestion saturating at grade 1, interstitial, alveolar edema), each 0..1 but the score."""
    e = max(0.0, float(edema_score))
    return e, min(e, 1.0), float(np.clip(e - 1.0, 0.0, 1.0)), float(np.clip(e - 2.0, 0.0, 1.0))


def _lung_markings(f: Frame, tree, lung_in: np.ndarray, cong: float) -> np.ndarray:
    """Stage 4b: the vessel trees, hilum-centred lung coordinates -> patient frame -> image,
    splatted and blurred; congestion diverts them to the upper lobes."""
    P, y, px, size, one = f.P, f.y, f.px, f.size, _F32(1.0)
    v0, v1, vr, vside = tree
    hxs = np.where(vside < 0, -(P["med_top"] + 0.05), P["med_top"] + 0.07)
    hys = np.where(vside < 0, P["hilum_y"] + 0.03, P["hilum_y"] - 0.01)
    Ws = np.where(vside < 0, P["W_r"], P["W_l"])
    vert = (P["cp_r"] - P["apex_r"]) / 1.25

    def _to_patient(q):
        return np.stack([hxs + vside * q[:, 0] * Ws, hys + q[:, 1] * vert], axis=1)

    q0 = patient_to_image(P, _to_patient(v0))
    q1 = patient_to_image(P, _to_patient(v1))
    thick = vr > 0.009
    sig_t = 0.008 / px
    sig_f = max(0.5, 0.003 / px)
    acc_t = np.zeros(f.shape, dtype=_F32)
    acc_f = np.zeros(f.shape, dtype=_F32)
    # line density such that the blurred peak equals the projected vessel thickness 2r
    splat_segments(acc_t, q0[thick], q1[thick], vr[thick] * 2.0 * math.sqrt(2 * math.pi) * sig_t, size)
    splat_segments(acc_f, q0[~thick], q1[~thick], vr[~thick] * 2.0 * math.sqrt(2 * math.pi) * sig_f, size)
    marks = ndimage.gaussian_filter(acc_t, sig_t, truncate=2.5)
    if sig_f > 0.6:  # below that the bilinear footprint and the final blur suffice
        acc_f = ndimage.gaussian_filter(acc_f, sig_f, truncate=2.5)
    marks += acc_f
    upper_zone = sigmoid(-(y - _F32(P["hilum_y"])) / _F32(0.12))
    marks *= lung_in * (one + _F32(0.8 * cong) * upper_zone)  # upper-lobe diversion
    return marks / (one + marks * _F32(6.0))  # overlapping vessels near the hila saturate


def _edema(f: Frame, levels: tuple[float, float, float, float], kerley, air_side: dict) -> np.ndarray:
    """Stage 4c: perihilar ("bat-wing") haze, fluffy and confluent when alveolar, and Kerley B lines
    at the lateral bases when interstitial; only where there is air."""
    P, A, x, y, size = f.P, f.A, f.x, f.y, f.size
    e, cong, inter, alv = levels
    edema_f = np.zeros(f.shape, dtype=_F32)
    if not e > 1e-3:
        return edema_f
    bank = texture_bank(size)
    tex = bank[int(A["u_tex"] * 4) % 4]
    ox, oy = int(A["u_tex_x"] * size), int(A["u_tex_y"] * size)
    tex = tex[oy : oy + size, ox : ox + size]
    ew = _F32(0.24 + 0.12 * min(e, 3.0) / 3.0)
    for side in (-1, 1):
        sl = f.cols[side]
        xx, yy, air_h = x[:, sl], y[:, sl], air_side[side][:, sl]
        dxh = (xx - _F32(side * (P["med_top"] + 0.07))) * _F32(side)
        dyh = yy - _F32(P["hilum_y"])
        bw = np.exp(-((dxh / (ew * _F32(1.25))) ** 2 + (dyh / (ew * _F32(1.6))) ** 2))
        val = _F32(0.20 * inter + 0.06 * cong) * (bw * _F32(0.8) + _F32(0.2))
        if alv > 0.0:
            val = val + _F32(0.55 * alv) * bw * (_F32(0.4) + _F32(0.6) * sigmoid(_F32(2.0) * tex[:, sl] + _F32(0.5)))
        if inter > 0.0:  # Kerley B lines: short horizontal lines at the lateral bases
            W_s = P["W_l"] if side > 0 else P["W_r"]
            lat = sigmoid((xx * _F32(side) - _F32(W_s * 0.90)) / _F32(0.01))
            base = sigmoid((yy - _F32(P["hilum_y"] + 0.30)) / _F32(0.04))
            phk = yy * _F32(1.0 / 0.045) + _F32(0.35) * np.sin(yy * _F32(37.0) + _F32(kerley[int(side > 0)] * 6.3))
            lines = np.clip(np.cos(_F32(2 * np.pi) * phk), 0.0, None) ** 12
            val = val + _F32(0.35 * inter) * lat * base * lines
        edema_f[:, sl] += val * air_h
    return edema_f


def _hila(f: Frame, cong: float) -> np.ndarray:
    """Stage 4d: the hila, pulmonary arteries enlarged by congestion."""
    P, sl0 = f.P, f.cols[0]
    hil = np.zeros(f.shape, dtype=_F32)
    for side, dyh in ((-1.0, 0.03), (1.0, -0.02)):
        d_hh = ellipse_sdf(
            f.x[:, sl0], f.y[:, sl0], side * (P["med_top"] + 0.05), P["hilum_y"] + dyh, 0.05 + 0.01 * cong, 0.10,
            side * 0.3
        )
        hil[:, sl0] += occupancy(d_hh, 0.05, f.edge * 3)
    return hil


def _bones(f: Frame, air: np.ndarray, bone_density: float) -> np.ndarray:
    """Stage 5a: ribcages (ribs read best against aerated lung) and the spine, scaled by bone density."""
    bone = np.zeros(f.shape, dtype=_F32)
    lung_vis = np.clip(air, 0.0, 1.0)
    for side in (-1, 1):
        ribcage_side(f.x, f.y, lung_vis, side, f.P, f.edge, bone)
    sl0 = f.cols[0]
    bone[:, sl0] += spine(f.x[:, sl0], f.y[:, sl0], f.P, f.A)
    bone *= _F32(bone_density)
    return bone


def _trachea(f: Frame) -> np.ndarray:
    """Stage 5b: the trachea, an air column down to the carina (mediastinal columns only)."""
    sl0 = f.cols[0]
    xc, yc0 = f.x[:, sl0], f.y[:, sl0]
    return occupancy(np.abs(xc - _F32(0.005)) - _F32(0.032), 0.025, f.edge) * sigmoid(
        (_F32(f.P["hilum_y"] - 0.10) - yc0) / _F32(0.03)
    )


def _subtract_gastric_bubble(f: Frame, attn: np.ndarray) -> None:
    """Stage 5c: the gastric bubble under the left dome, in most individuals."""
    if not f.A["u_stomach"] < 0.75:
        return
    P, A, edge = f.P, f.A, f.edge
    sl = f.cols[1]
    x, y = f.x[:, sl], f.y[:, sl]
    gy = P["dome_l"] + 0.12
    dgs = ellipse_sdf(x, y, 0.40 * P["W"], gy, 0.10 + 0.025 * A["z_stomach"], 0.065)
    attn[:, sl] -= _F32(0.25) * occupancy(dgs, 0.04, edge) * sigmoid((_F32(gy + 0.015) - y) / edge)


def _device(f: Frame, landmarks: dict) -> np.ndarray:
    """Stage 5d: a pacemaker / ICD generator below a clavicle and its leads through the veins to the
    right atrium and the ventricular apex (unclipped density)."""
    P, A, x, y, px, size, edge = f.P, f.A, f.x, f.y, f.px, f.size, f.edge
    W = P["W"]
    side = -1.0 if A["u_device_side"] < 0.12 else 1.0
    gx = side * (0.50 * W + 0.04 * A["z_dev_x"])
    gy = P["clav_y"] + 0.17 + 0.03 * A["z_dev_y"]
    gen = sigmoid(-ellipse_sdf(x, y, gx, gy, 0.085, 0.06, 0.25 * side) / edge)
    g0 = np.array([gx - side * 0.05, gy - 0.02])
    svc = np.array([-0.07, P["hilum_y"] - 0.02])
    ra, apex = np.array(landmarks["ra"]), np.array(landmarks["apex"])
    atrial = np.array([landmarks["ra"][0] + 0.06, landmarks["top"] + 0.04])
    n = 64

    def _vein(o):
        return bezier(
            g0 + o,
            np.array([gx - side * 0.22, gy - 0.14]) + o,
            np.array([0.04, P["clav_y"] + 0.03]) + o,
            svc + o,
            n,
        )

    ventricular = np.concatenate([_vein(0.0), bezier(svc, svc + np.array([-0.02, 0.2]), ra, apex, n)])
    atrial_lead = np.concatenate(
        [
            _vein(0.012),
            bezier(svc + 0.012, svc + np.array([-0.03, 0.25]), atrial + np.array([-0.06, 0.1]), atrial, n),
        ]
    )
    acc = np.zeros(f.shape, dtype=_F32)
    sig_d = max(0.6, 0.004 / px)
    for lead in (ventricular, atrial_lead):
        q = patient_to_image(P, lead)
        splat_segments(acc, q[:-1], q[1:], np.full(len(q) - 1, 0.012 * math.sqrt(2 * math.pi) * sig_d / 0.012), size)
    acc = ndimage.gaussian_filter(acc, sig_d, truncate=2.5)
    return np.clip(acc, 0.0, 1.0) + gen


def _side_marker(f: Frame) -> tuple[np.ndarray, str]:
    """Stage 5e: the side marker, a lead letter in the beam naming the patient side it lies on:
    ``(mask, letter)``."""
    size = f.size
    marker_mask = np.zeros(f.shape, dtype=bool)
    letter = "L" if f.A["u_marker"] < 0.7 else "R"
    bm = text_bitmap(letter, max(1, round(size / 128)))
    mh, mw = bm.shape
    my = int(size * (0.12 + 0.15 * f.A["u_marker_y"]))
    mx = size - annotation_margin(size) - mw if letter == "L" else annotation_margin(size)
    marker_mask[my : my + mh, mx : mx + mw] = bm
    return marker_mask, letter


@dataclass(frozen=True)
class Body:
    """What the ground-truth masks are made of, per side (-1 the patient's right, 1 the left) where
    a dict: the heart's and the lungs' signed distances, the effusions' and edema's fields, the
    device's density (None without one), the side marker's mask and its letter."""

    heart_distance: np.ndarray
    lung_distance: dict
    effusion: dict
    edema: np.ndarray
    device: np.ndarray | None
    marker: np.ndarray
    letter: str


def attenuation_map(f: Frame, inp: RenderInputs) -> tuple[np.ndarray, Body]:
    """The attenuation map of ``inp``'s chest on the frame ``f``, and the fields its masks are made of."""
    attn, inside = _soft_tissue(f)
    lungs = _lungs(f)
    _add_below_domes(f, attn, inside)
    d_heart, landmarks, air_side = _heart_and_aorta(f, inp.ctr, lungs)
    effusion = _effusions(f, inp, lungs, air_side)
    air = air_side[-1] + air_side[1]
    lung_in = lungs.inside[-1] + lungs.inside[1]
    attn += _F32(0.12) * (effusion[-1] + effusion[1])  # the fluid layer itself
    tree, kerley = vessel_tree(int(inp.render_seed))
    levels = _edema_levels(inp.edema_score)
    cong = levels[1]
    marks = _lung_markings(f, tree, lung_in, cong)
    edema = _edema(f, levels, kerley, air_side)
    hila = _hila(f, cong)
    bone = _bones(f, air, inp.bone_density)

    # air darkens; vessels, edema and hila show against it; then bones, air columns and objects
    attn -= _F32(0.45 * f.P["depth"]) * air
    attn += _F32(4.0) * marks * (air + _F32(0.15))
    attn += _F32(0.9) * edema
    attn += _F32(0.10 * (1.0 + 0.6 * cong)) * hila * lung_in
    attn[:, f.cols[0]] -= _F32(0.16) * _trachea(f)
    _subtract_gastric_bubble(f, attn)
    attn += bone
    device = _device(f, landmarks) if inp.device else None
    if device is not None:
        attn += _F32(1.5) * np.clip(device, 0.0, 1.2)
    marker, letter = _side_marker(f)
    attn += _F32(1.8) * marker
    return attn, Body(d_heart, lungs.distance, effusion, edema, device, marker, letter)
