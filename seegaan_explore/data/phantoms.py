"""Phantom chest radiographs with a known causal ground truth.

A synthetic cohort in three separate stages (equations in ``docs/phantoms.md``):

1. :func:`sample_individual` draws all exogenous noise of one individual from ``(seed, index)``
   (SCM noise terms, anatomy/pose, and a render seed for textures and quantum noise).
2. :func:`factors` evaluates the structural causal model: exogenous noise plus interventions
   (``do={'severity': 0.8, 'view': 'AP'}``) give the row of the clinical table.  Intervened
   factors are fixed; their descendants are recomputed from the same noise.
3. :func:`render` draws the radiograph and ground-truth masks from the row and the exogenous anatomy.

Re-rendering the same individual with ``do=...`` is the true counterfactual.

Example::

    ind = sample_individual(seed=0, index=12)
    base = render(ind, 256)
    worse = render(ind, 256, do={"severity": 0.9})
    diff = worse.image - base.image          # the true counterfactual difference map
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..fileio import atomic_write
from .images import to_uint8
from .phantom_anatomy import AP_HEART_MAGNIFICATION, MASK_NAMES, RenderInputs, render_arrays

__all__ = [
    "MASK_NAMES",
    "SCM_NOISE",
    "ANATOMY_NORMAL",
    "ANATOMY_UNIFORM",
    "FACTOR_COLUMNS",
    "Individual",
    "Phantom",
    "sample_individual",
    "randomized_do",
    "factors",
    "render",
    "render_noise_free",
    "cohort_table",
    "generate_cohort",
    "write_cohort",
    "image_id",
    "patient_id",
    "to_uint16",
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


# --------------------------------------------------------------------------------------------
# (c) rendering
# --------------------------------------------------------------------------------------------
@dataclass
class Phantom:
    """One rendered phantom: ``image`` float32 ``[size, size]`` in ``[-1, 1]`` (bright = dense),
    ``row`` the clinical-table row (plus ids), ``masks`` boolean ``[size, size]`` arrays."""

    image: np.ndarray
    row: dict
    masks: dict = field(default_factory=dict)


def _render_inputs(individual: Individual, row: Mapping[str, Any]) -> RenderInputs:
    return RenderInputs(
        age=float(row["age"]),
        sex=str(row["sex"]),
        bmi=float(row["bmi"]),
        ctr=float(row["ctr"]),
        edema_score=float(row["edema_score"]),
        effusion_left_ml=float(row["effusion_left"]),
        effusion_right_ml=float(row["effusion_right"]),
        view=str(row["view"]),
        device=bool(row["device"]),
        bone_density=float(row["bone_density"]),
        anatomy=individual.anatomy,
        render_seed=individual.render_seed,
    )


def _id_row(individual: Individual, row: dict) -> dict:
    out = {
        "image_id": individual.image_id,
        "patient_id": individual.patient_id,
        "seed": individual.seed,
        "index": individual.index,
    }
    out.update(row)
    return out


def render(individual: Individual, size: int = 256, do: Mapping[str, Any] | None = None, noise: bool = True) -> Phantom:
    """Render ``individual`` (under intervention ``do``) at ``size`` x ``size`` pixels.

    ``noise=False`` leaves out the quantum noise (the clean image, e.g. to score reconstructions).
    The noise field itself is part of the individual's exogenous noise: counterfactual renders of
    the same individual share it, so they differ only where the anatomy differs.
    """
    if int(size) < 32:
        raise ValueError("size must be at least 32 pixels")
    row = factors(individual, do)
    img, masks = render_arrays(_render_inputs(individual, row), int(size), noise=noise)
    return Phantom(img, _id_row(individual, row), masks)


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


def render_noise_free(individual: Individual, size: int = 256, do: Mapping[str, Any] | None = None) -> Phantom:
    """:func:`render` without quantum noise."""
    return render(individual, size, do=do, noise=False)


# --------------------------------------------------------------------------------------------
# cohorts
# --------------------------------------------------------------------------------------------
def cohort_table(n: int, seed: int = 0, start: int = 0, do: Mapping[str, Any] | None = None):
    """The clinical table of ``n`` individuals (no rendering; fast)."""
    import pandas as pd

    rows = [_id_row(ind, factors(ind, do)) for ind in (sample_individual(seed, i) for i in range(start, start + n))]
    return pd.DataFrame(rows)


def generate_cohort(n: int, size: int = 128, seed: int = 0, start: int = 0, noise: bool = True, progress: bool = False):
    """Render ``n`` phantoms in memory: ``(images float32 [n, size, size], DataFrame)``."""
    import pandas as pd

    images = np.empty((n, size, size), dtype=np.float32)
    rows = []
    it: Iterable[int] = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="phantoms", unit="img")
    for k in it:
        ph = render(sample_individual(seed, start + k), size, noise=noise)
        images[k] = ph.image
        rows.append(ph.row)
    return images, pd.DataFrame(rows)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((image + 1.0) * 32767.5), 0, 65535).astype(np.uint16)


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _dicom_bytes(image: np.ndarray, row: Mapping[str, Any], size: int) -> bytes:
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    key = f"{row['seed']}-{row['index']}"
    sop_uid = generate_uid(entropy_srcs=["seegaan-phantom-sop", key])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["seegaan-phantom-study", key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["seegaan-phantom-series", key])
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = str(row["view"])
    ds.PatientOrientation = ["R", "F"] if row["view"] == "AP" else ["L", "F"]
    ds.PatientID = str(row["patient_id"])
    ds.PatientName = f"Phantom^{row['index']}"
    ds.PatientSex = str(row["sex"])
    ds.PatientAge = f"{int(row['age']):03d}Y"
    ds.ImageComments = "synthetic phantom (seegaan-explore); not a real patient"
    ds.StudyDescription = "Phantom chest radiograph"
    ds.SeriesDescription = f"Chest {row['view']}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    spacing = 400.0 / size
    ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
    ds.WindowCenter = 32768
    ds.WindowWidth = 65536
    ds.PixelData = to_uint16(image).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _write_one(args) -> dict:
    out_dir, seed, index, size, fmt, randomize = args
    ind = sample_individual(seed, index)
    ph = render(ind, size, do=randomized_do(seed, index, randomize))
    ext = "png" if fmt == "png" else "dcm"
    name = f"{ind.image_id}.{ext}"
    data = _png_bytes(ph.image) if fmt == "png" else _dicom_bytes(ph.image, ph.row, size)
    _atomic_write_bytes(Path(out_dir) / name, data)
    row = dict(ph.row)
    row["file"] = name
    return row


def write_cohort(
    out_dir,
    n: int,
    size: int = 128,
    seed: int = 0,
    fmt: str = "png",
    progress: bool = True,
    workers: int | None = None,
    start: int = 0,
    csv_name: str = "phantoms.csv",
    randomize: tuple[str, ...] = (),
):
    """Write ``n`` phantoms (``fmt`` 'png' or 'dicom') and the clinical table ``csv_name`` to
    ``out_dir``; returns the table as a DataFrame.  Files are written atomically.

    ``randomize``: factors assigned as in a randomized trial (:func:`randomized_do`), not by their
    causes: the cohort an unbiased oracle is trained on.

    ``workers`` processes render in parallel (default: the CPU count, at most 8).
    """
    import pandas as pd

    fmt = fmt.lower()
    if fmt in ("dcm",):
        fmt = "dicom"
    if fmt not in ("png", "dicom"):
        raise ValueError("fmt must be 'png' or 'dicom'")
    n, size = int(n), int(size)
    randomize = tuple(randomize)
    randomized_do(seed, start, randomize)  # an unknown factor fails here, before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    workers = max(1, min(int(workers), n)) if n > 0 else 1
    jobs = [(str(out), seed, i, size, fmt, randomize) for i in range(start, start + n)]
    pool = None
    if workers > 1:
        import multiprocessing as mp

        # fork (where available) before the progress bar starts its monitor thread; the workers
        # only use numpy / scipy / PIL, never torch, so forking a process that imported torch is safe
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(workers)
    bar = None
    rows = []
    ok = False
    try:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"phantoms {size}px", unit="img")
        if pool is None:
            results = map(_write_one, jobs)
        else:
            results = pool.imap(_write_one, jobs, chunksize=max(1, min(64, n // (workers * 8))))
        for row in results:
            rows.append(row)
            if bar is not None:
                bar.update(1)
        ok = True
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            if ok:
                pool.close()
            else:  # an error or Ctrl-C: do not wait for the remaining images
                pool.terminate()
            pool.join()
    cols = ["image_id", "patient_id", "file", "seed", "index", *FACTOR_COLUMNS]
    table = pd.DataFrame(rows, columns=cols)
    _atomic_write_bytes(out / csv_name, table.to_csv(index=False, float_format="%.6g").encode())
    return table
