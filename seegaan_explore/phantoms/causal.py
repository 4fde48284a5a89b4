"""The phantoms' structural causal model: who an individual is and what their factors are.

The first two stages of the phantom generator (equations in ``docs/phantoms.md``):

1. :func:`sample_individual` draws all exogenous noise of one individual from ``(seed, index)``
   (SCM noise terms, anatomy/pose, and a render seed for textures and quantum noise).
2. :func:`factors` evaluates the structural causal model: exogenous noise plus interventions
   (``do={'severity': 0.8, 'view': 'AP'}``) give the row of the clinical table.  Intervened
   factors are fixed; their descendants are recomputed from the same noise.

The third, drawing the radiograph from the row and the exogenous anatomy, is :mod:`.radiograph`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .anatomy import AP_HEART_MAGNIFICATION

__all__ = [
    "ANATOMY_NORMAL",
    "ANATOMY_UNIFORM",
    "EFFUSION_MAX_ML",
    "FACTOR_COLUMNS",
    "NT_PROBNP_MAX",
    "NT_PROBNP_MIN",
    "SCM_NOISE",
    "SCM_VERSION",
    "Individual",
    "factors",
    "id_row",
    "image_id",
    "patient_id",
    "randomized_do",
    "sample_individual",
]

#: exogenous noise of the clinical SCM (standard normal unless the name starts with ``u_``)
SCM_NOISE = (
    "age",
    "u_sex",
    "bmi",
    "severity",
    "bnp",
    "ctr",
    "edema",
    "effusion_left",
    "effusion_right",
    "u_view",
    "u_device",
    "bone",
)


#: exogenous anatomy / pose / exposure draws (standard normal)
ANATOMY_NORMAL = (
    "z_scale",
    "z_dx",
    "z_dy",
    "z_rot",
    "z_wt",
    "z_asym",
    "z_apex",
    "z_insp",
    "z_dome_lr",
    "z_dome_h",
    "z_med",
    "z_hilum",
    "z_heart_x",
    "z_heart_rot",
    "z_breast",
    "z_breast_x",
    "z_breast_y",
    "z_rib_sp",
    "z_rib_phase",
    "z_rib_curve",
    "z_clav",
    "z_clav_tilt",
    "z_scap",
    "z_contrast",
    "z_exposure",
    "z_blur",
    "z_noise",
    "z_aorta",
    "z_aorta_y",
    "z_spine",
    "z_stomach",
    "z_dev_x",
    "z_dev_y",
)


#: exogenous anatomy draws (uniform on [0, 1))
ANATOMY_UNIFORM = (
    "u_tex",
    "u_tex_x",
    "u_tex_y",
    "u_stomach",
    "u_device_side",
    "u_marker",
    "u_marker_y",
    "u_label",
    "u_label_side",
)


#: the generator's version: bump it whenever the SCM or the renderer changes what an (seed, id)
#: looks like, so that weights trained on phantoms name the phantoms they were trained on
SCM_VERSION = "phantoms-1"


#: columns of the clinical table, in order
FACTOR_COLUMNS = (
    "age",
    "sex",
    "bmi",
    "severity",
    "nt_probnp_pg_ml",
    "log_nt_probnp",
    "ctr",
    "ctr_projected",
    "edema_score",
    "edema_grade",
    "effusion_left",
    "effusion_right",
    "view",
    "device",
    "bone_density",
)

NT_PROBNP_MIN = 5.0
NT_PROBNP_MAX = 35000.0
EFFUSION_MAX_ML = 1500.0


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _ndtr(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _softplus(z: float) -> float:
    return math.log1p(math.exp(-abs(z))) + max(z, 0.0)


# --------------------------------------------------------------------------------------------
# (a) exogenous noise
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Individual:
    """All exogenous randomness of one phantom patient (deterministic from ``(seed, index)``)."""

    seed: int
    index: int
    noise: Mapping[str, float]  # SCM noise terms (see SCM_NOISE)
    anatomy: Mapping[str, float]  # anatomy / pose / exposure draws
    render_seed: int  # seeds textures, vessel patterns and quantum noise

    @property
    def image_id(self) -> str:
        return image_id(self.seed, self.index)

    @property
    def patient_id(self) -> str:
        return patient_id(self.seed, self.index)


def image_id(seed: int, index: int) -> str:
    """File stem of the image of individual ``index`` of cohort ``seed``."""
    return f"phantom_s{int(seed)}_{int(index):06d}"


def patient_id(seed: int, index: int) -> str:
    return f"PH{int(seed)}-{int(index):06d}"


def id_row(individual: Individual, row: dict) -> dict:
    """``row`` (factors) preceded by the individual's ids: a row of the clinical table."""
    out = {
        "image_id": individual.image_id,
        "patient_id": individual.patient_id,
        "seed": individual.seed,
        "index": individual.index,
    }
    out.update(row)
    return out


def sample_individual(seed: int, index: int, stream: int = 0) -> Individual:
    """Draw the exogenous noise of individual ``index`` of the cohort with ``seed``.

    Deterministic: a numpy ``Generator`` is seeded with ``SeedSequence([seed, index])``. A
    ``stream`` > 0 draws an independent stand-in for the same slot (see :func:`randomized_do`).
    """
    seed, index, stream = int(seed), int(index), int(stream)
    if seed < 0 or index < 0 or stream < 0:
        raise ValueError("seed, index and stream must be non-negative integers")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index] + ([stream] if stream else [])))
    z = rng.standard_normal(len(SCM_NOISE))
    u = rng.random(len(SCM_NOISE))
    noise = {k: float(u[i] if k.startswith("u_") else z[i]) for i, k in enumerate(SCM_NOISE)}
    zn = rng.standard_normal(len(ANATOMY_NORMAL))
    un = rng.random(len(ANATOMY_UNIFORM))
    anatomy = {k: float(v) for k, v in zip(ANATOMY_NORMAL, zn)}
    anatomy.update({k: float(v) for k, v in zip(ANATOMY_UNIFORM, un)})
    render_seed = int(rng.integers(0, 2**62))
    return Individual(seed, index, MappingProxyType(noise), MappingProxyType(anatomy), render_seed)


# --------------------------------------------------------------------------------------------
# (b) the structural causal model
# --------------------------------------------------------------------------------------------
_DO_ALIASES = {
    "nt_probnp": "nt_probnp_pg_ml",
    "bnp": "nt_probnp_pg_ml",
    "effusion_l": "effusion_left",
    "effusion_r": "effusion_right",
}
_INTERVENABLE = set(FACTOR_COLUMNS) - {"ctr_projected"}


def _check_do(do: Mapping[str, Any] | None) -> dict:
    if not do:
        return {}
    out = {}
    for k, v in do.items():
        k = _DO_ALIASES.get(k, k)
        if k not in _INTERVENABLE:
            raise KeyError(f"cannot intervene on {k!r}; choose from {sorted(_INTERVENABLE)}")
        out[k] = v
    if "nt_probnp_pg_ml" in out and "log_nt_probnp" in out:
        raise ValueError("intervene on nt_probnp_pg_ml or log_nt_probnp, not both")
    if "edema_score" in out and "edema_grade" in out:
        raise ValueError("intervene on edema_score or edema_grade, not both")
    return out


def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        t = v.strip().lower()
        if t in ("1", "true", "yes", "y", "t"):
            return True
        if t in ("0", "false", "no", "n", "f", ""):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    return bool(v)


def _edema_grade(score: float) -> int:
    return int(min(3, max(0, math.floor(score + 0.5))))


def factors(individual: Individual, do: Mapping[str, Any] | None = None) -> dict:
    """Evaluate the SCM for ``individual`` under the intervention ``do`` (a dict factor -> value).

    Intervened factors are set to the given value; every other factor is computed by its
    structural equation from its parents and the individual's exogenous noise (so descendants of
    an intervened factor change, everything else stays).  See ``docs/phantoms.md``.
    """
    do = _check_do(do)
    n = individual.noise
    r: dict[str, Any] = {}

    # age: skewed towards the elderly, 18..95 years
    r["age"] = float(do["age"]) if "age" in do else 18.0 + 77.0 * _ndtr(0.25 + 0.85 * n["age"])
    age = r["age"]
    # sex
    if "sex" in do:
        sx = str(do["sex"]).upper()[:1]
        if sx not in ("M", "F"):
            raise ValueError("sex must be 'M' or 'F'")
        r["sex"] = sx
    else:
        r["sex"] = "F" if n["u_sex"] < 0.48 else "M"
    male = r["sex"] == "M"
    # BMI (kg/m^2): log-normal, depends on sex and (inverted U) on age
    if "bmi" in do:
        r["bmi"] = float(do["bmi"])
    else:
        lb = math.log(26.5) + (0.03 if male else 0.0) - 0.00006 * (age - 55.0) ** 2 + 0.17 * n["bmi"]
        r["bmi"] = min(60.0, max(15.0, math.exp(lb)))
    # latent heart-failure severity in (0, 1), rising with age
    if "severity" in do:
        r["severity"] = float(do["severity"])
    else:
        r["severity"] = _sigmoid(-1.8 + 0.05 * (age - 60.0) + 1.5 * n["severity"])
    sev = r["severity"]
    # NT-proBNP (pg/mL): log-normal given severity and age
    if "nt_probnp_pg_ml" in do:
        r["nt_probnp_pg_ml"] = float(do["nt_probnp_pg_ml"])
        r["log_nt_probnp"] = math.log(max(r["nt_probnp_pg_ml"], 1e-9))
    elif "log_nt_probnp" in do:
        r["log_nt_probnp"] = float(do["log_nt_probnp"])
        r["nt_probnp_pg_ml"] = math.exp(r["log_nt_probnp"])
    else:
        lbnp = 3.6 + 5.0 * sev + 0.02 * (age - 60.0) + 0.7 * n["bnp"]
        lbnp = min(math.log(NT_PROBNP_MAX), max(math.log(NT_PROBNP_MIN), lbnp))
        r["log_nt_probnp"] = lbnp
        r["nt_probnp_pg_ml"] = math.exp(lbnp)
    # cardiothoracic ratio (anatomical, PA-equivalent)
    r["ctr"] = float(do["ctr"]) if "ctr" in do else min(0.8, max(0.3, 0.42 + 0.23 * sev + 0.02 * n["ctr"]))
    # pulmonary edema: continuous score 0..3 and grade (0 none, 1 congestion, 2 interstitial, 3 alveolar)
    if "edema_score" in do:
        r["edema_score"] = float(do["edema_score"])
    elif "edema_grade" in do:
        r["edema_score"] = float(do["edema_grade"])
    else:
        r["edema_score"] = 3.0 * _sigmoid(7.0 * (sev - 0.62) + 0.8 * n["edema"])
    r["edema_grade"] = _edema_grade(r["edema_score"])
    # pleural effusions (mL), right-sided more common
    r["effusion_left"] = (
        float(do["effusion_left"])
        if "effusion_left" in do
        else EFFUSION_MAX_ML * _sigmoid(6.0 * (sev - 0.75) + 1.0 * n["effusion_left"])
    )
    r["effusion_right"] = (
        float(do["effusion_right"])
        if "effusion_right" in do
        else EFFUSION_MAX_ML * _sigmoid(6.0 * (sev - 0.68) + 1.0 * n["effusion_right"])
    )
    # view: AP (portable / supine) more likely for sicker and older patients
    if "view" in do:
        v = str(do["view"]).upper()
        if v not in ("AP", "PA"):
            raise ValueError("view must be 'AP' or 'PA'")
        r["view"] = v
    else:
        r["view"] = "AP" if n["u_view"] < _sigmoid(-2.0 + 4.0 * sev + 0.02 * (age - 60.0)) else "PA"
    r["ctr_projected"] = r["ctr"] * (AP_HEART_MAGNIFICATION if r["view"] == "AP" else 1.0)
    # cardiac device (pacemaker / ICD): more likely with age and severity
    if "device" in do:
        r["device"] = _as_bool(do["device"])
    else:
        r["device"] = bool(n["u_device"] < _sigmoid(-4.2 + 0.06 * (age - 60.0) + 3.0 * sev))
    # bone density (relative to young adults = 1), falling with age, faster in women after 50
    if "bone_density" in do:
        r["bone_density"] = float(do["bone_density"])
    else:
        bd = (
            1.0
            - 0.0055 * 6.0 * _softplus((age - 35.0) / 6.0)
            - (0.0 if male else 0.08 * _sigmoid((age - 52.0) / 3.0))
            + 0.06 * n["bone"]
        )
        r["bone_density"] = min(1.3, max(0.3, bd))
    return {k: r[k] for k in FACTOR_COLUMNS}


def randomized_do(seed: int, index: int, names: Iterable[str]) -> dict:
    """A randomized trial's assignment for individual ``index``: each named factor takes the value
    its structural equation gives in a donor individual drawn for it alone. It keeps its population
    distribution but loses every arrow into it, so a model trained on such a cohort cannot read it
    from its causes or read its causes from it (what a neutral measuring instrument needs)."""
    do = {}
    for stream, name in enumerate(names, start=1):
        name = _DO_ALIASES.get(name, name)
        if name not in _INTERVENABLE:
            raise KeyError(f"cannot randomize {name!r}; choose from {sorted(_INTERVENABLE)}")
        do[name] = factors(sample_individual(seed, index, stream))[name]
    return do
