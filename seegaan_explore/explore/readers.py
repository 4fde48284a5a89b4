"""Readers of a real cohort's attributes: what measures every other attribute on a film when no
oracle knows the truth.

On the phantoms an oracle reads every factor off an image, so a traversal's leakage (how much the
other attributes change along it) is measured. A real cohort has no oracle; it has its own exams,
their latents and their clinical table. A reader is fitted for each attribute on that:

- **what it reads**: the latent ``w`` the encoder gives an image, through a ridge regression (two-level
  attributes, such as sex or AP/PA, are read as the share of the way from one level to the other);
- **how far to trust it**: its R² (and AUC for two levels) on exams held out *by patient*, in
  grouped folds, so that no patient's other films help read it. A reader below
  :data:`TRUSTED_R2` reads too little of its attribute to measure it, and is not used;
- **in whose units**: a regression reads shrunk towards the cohort's mean (errors in the latent
  attenuate it). The held-out readings' slope on the recorded values measures that shrinkage, and
  readings are divided by it, so that a change of one unit between exams reads as one unit.

A film is read by **re-encoding its decoded frames** (:func:`read_film`). Reading the latents the
frames were decoded from would only measure the direction's projection onto each reader, whatever
the generator draws; re-encoding measures what the film shows, as the encoder sees it. The readers
are the cohort's own encoder and latents, so they are not independent of the model the way an
oracle is. The encoder was trained to see its own generator's changes, so the readers read a film's
change high: on the phantoms their leakage follows the oracle's closely and is mostly larger, and
they read the target's own change higher than the oracle does (``benchmarks/readers_vs_oracle.py``;
the figures are in docs/quality.md). Leakage they read is therefore a cautious flag,
and the target as they read it only an upper bound, never what makes a film trustworthy.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.table import PATIENT_CANDIDATES
from .quality import slope

__all__ = ["FOLDS", "HELD_OUT", "MAX_EXAMS", "MIN_PATIENTS", "NAME", "TRUSTED_R2", "FilmReading", "Reader",
           "Readers", "fit_reader", "fit_readers", "on_frames", "patient_groups", "read_film", "readers_of"]

TRUSTED_R2 = 0.2  # held-out R² below this: the reader explains too little of its attribute to measure it
MIN_PATIENTS = 10  # fewer patients with a value: nothing to hold out
MIN_EXAMS = 20
FOLDS = 5  # grouped folds for the held-out readings
MAX_EXAMS = 20_000  # a reader is fitted on at most this many exams, whole patients drawn at random
ALPHAS = np.logspace(-1, 5, 13)  # ridge penalties tried (on standardised latents), chosen by generalised CV
NAME = "reader fitted on this cohort's images"  # through their latents: docs/quality.md's latent ridge reader
HELD_OUT = "on patients left out of its fit"  # where its R² and AUC were measured


@dataclass(frozen=True, eq=False)
class Reader:
    """One attribute read from latents: ``reading = centre + (w @ weights + intercept - centre) / gain``.

    ``held_out_r2`` (and ``held_out_auc`` for two-level attributes) come from exams held out by
    patient; ``gain`` is the slope of those held-out readings on the recorded values. ``reason``
    says why a reader is not trusted (None where it is)."""

    attribute: str
    weights: np.ndarray | None  # [w_dim] on the raw latent; None where too little was there to fit
    intercept: float
    centre: float
    gain: float
    held_out_r2: float
    held_out_auc: float | None
    exams: int
    patients: int
    by_patient: bool  # held out by patient (else by exam: no patient column was known)
    reason: str | None = None

    @property
    def trusted(self) -> bool:
        return self.reason is None

    def read(self, latents) -> np.ndarray:
        """The attribute read from latents [K, w_dim], in its own units (on the calibrated scale)."""
        if self.weights is None:
            raise ValueError(f"the reader of {self.attribute} was not fitted: {self.reason}")
        raw = np.asarray(latents, np.float64) @ self.weights + self.intercept
        return self.centre + (raw - self.centre) / self.gain

    def describe(self) -> str:
        """Which reader, and how far to trust it: "reader fitted on this cohort's images (on patients
        left out of its fit: R² 0.89, AUC 1.00; 243 exams of 71 patients)"; where it is not trusted, why."""
        if not np.isfinite(self.held_out_r2):
            return f"no {NAME}: {self.reason}"
        auc = "" if self.held_out_auc is None else f", AUC {self.held_out_auc:.2f}"
        where = HELD_OUT if self.by_patient else ("on exams left out of its fit (no patient column, so one "
                                                  "patient's films may sit on both sides)")
        text = f"{NAME} ({where}: R² {self.held_out_r2:.2f}{auc}; {self.exams} exams of {self.patients} patients)"
        return text if self.trusted else f"{text}, not used: {self.reason}"

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "reader": NAME, "held_out_r2": self.held_out_r2,
                "held_out_auc": self.held_out_auc, "gain": self.gain, "exams": self.exams,
                "patients": self.patients, "by_patient": self.by_patient, "trusted": self.trusted,
                "reason": self.reason, "description": self.describe()}


def on_frames(description: str) -> str:
    """A reader's ``description`` as it reads a film: each frame is encoded again and read from that latent."""
    return f"the {description} on the frames encoded again"


def _standardised_ridge(x: np.ndarray, y: np.ndarray):
    """Ridge of y on x standardised per column (penalty by generalised CV): (weights on raw x, intercept)."""
    from sklearn.linear_model import RidgeCV

    mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    model = RidgeCV(alphas=ALPHAS).fit((x - mean) / sd, y)
    weights = model.coef_ / sd
    return weights, float(model.intercept_ - mean @ weights)


def _drawn_by_patient(groups: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """A boolean mask of whole patients, drawn at random, holding at most ``limit`` exams (all where fewer)."""
    if len(groups) <= limit:
        return np.ones(len(groups), bool)
    patients, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(patients))
    keep = np.zeros(len(patients), bool)
    keep[order[np.cumsum(counts[order]) <= limit]] = True
    return keep[inverse]


def fit_reader(latents, values, groups=None, *, attribute: str, two_level: bool = False,
               folds: int = FOLDS) -> Reader:
    """A reader of ``values`` (one per latent row, NaN where unknown) from ``latents`` [N, w_dim].

    ``groups``: the patient of each row (None: each exam its own patient, said so in the description).
    Scored on grouped folds, then refitted on every row with a value."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    latents, values = np.asarray(latents, np.float64), np.asarray(values, np.float64)
    if len(latents) != len(values):
        raise ValueError(f"{len(values)} values of {attribute} for {len(latents)} latents")
    by_patient = groups is not None
    exams = np.array([f"\0exam:{i}" for i in range(len(values))], dtype=object)
    # an exam without a patient counts as its own patient, as in the cohort's split
    g = np.where(pd.notna(np.asarray(groups, dtype=object)), groups, exams) if by_patient else exams
    rows = np.flatnonzero(np.isfinite(values))
    rows = rows[_drawn_by_patient(g[rows].astype(str), MAX_EXAMS)]
    x, y, g = latents[rows], values[rows], g[rows]
    patients = len(set(g))
    unfitted = dict(attribute=attribute, weights=None, intercept=float("nan"), centre=float("nan"),
                    gain=float("nan"), held_out_r2=float("nan"), held_out_auc=None, exams=len(y), patients=patients,
                    by_patient=by_patient)
    if patients < MIN_PATIENTS or len(y) < MIN_EXAMS:
        return Reader(**unfitted, reason=f"only {len(y)} exams of {patients} patients have a value "
                                         f"(a reader needs {MIN_EXAMS} exams of {MIN_PATIENTS} patients)")
    if np.ptp(y) == 0:
        return Reader(**unfitted, reason="the attribute is constant where it is known")
    held_out = np.empty_like(y)
    for train, test in GroupKFold(min(folds, patients)).split(x, y, g):
        weights, intercept = _standardised_ridge(x[train], y[train])
        held_out[test] = x[test] @ weights + intercept
    r2 = 1 - float(np.sum((y - held_out) ** 2) / np.sum((y - y.mean()) ** 2))
    auc = float(roc_auc_score(y == y.max(), held_out)) if two_level else None
    gain = slope(y, held_out)
    weights, intercept = _standardised_ridge(x, y)
    reason = None
    if not (gain > 0 and r2 >= TRUSTED_R2):
        reason = f"R² below {TRUSTED_R2:g} {HELD_OUT}"
    return Reader(attribute, weights, intercept, float(y.mean()), gain, r2, auc, len(y), patients, by_patient, reason)


@dataclass(frozen=True, eq=False)
class Readers(Mapping):
    """A reader per attribute of one cohort (a mapping name -> :class:`Reader`)."""

    readers: dict[str, Reader]

    def __getitem__(self, name: str) -> Reader:
        return self.readers[name]

    def __iter__(self):
        return iter(self.readers)

    def __len__(self) -> int:
        return len(self.readers)

    def trusted(self) -> dict[str, Reader]:
        return {name: r for name, r in self.readers.items() if r.trusted}

    def summary(self) -> dict[str, dict]:
        """Every reader's quality (held-out R², AUC, exams, patients, trusted or why not), by attribute."""
        return {name: r.to_dict() for name, r in self.readers.items()}


def fit_readers(latents, columns: Mapping[str, np.ndarray], groups=None, *,
                two_level: Sequence[str] = ()) -> Readers:
    """A reader for each of ``columns`` (name -> values per latent row); ``two_level`` names the
    columns with two values."""
    return Readers({name: fit_reader(latents, values, groups, attribute=name, two_level=name in two_level)
                    for name, values in columns.items()})


def patient_groups(table, column: str | None = None) -> np.ndarray | None:
    """The patient of each row of ``table``: ``column``, else the first of the usual patient id
    columns it has; None where it has none."""
    names = [column] if column else [c for c in table.columns if str(c).lower() in PATIENT_CANDIDATES]
    if not names:
        return None
    if names[0] not in table.columns:
        raise ValueError(f"the table has no patient column {names[0]!r}")
    return table[names[0]].astype(object).where(table[names[0]].notna(), None).to_numpy()


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def readers_of(study, names: Sequence[str] | None = None, patient_column: str | None = None) -> Readers:
    """The readers of ``names`` (default every table attribute; never the CNN's prediction, which
    the CNN reads itself) of a :class:`~seegaan_explore.explore.study.Study`, each fitted once per
    study. ``patient_column``: the table's patient column (default the usual names)."""
    from .study import CNN_PREDICTION

    names = [n for n in (study.attributes if names is None else names) if n != CNN_PREDICTION]
    with _cache_lock:
        fitted = _cache.setdefault(study, {}).setdefault(patient_column, {})
        missing = [n for n in names if n not in fitted]
        if missing:
            groups = patient_groups(study.table, patient_column)
            fitted.update(fit_readers(study.latents, {n: study.values(n) for n in missing}, groups,
                                      two_level=[n for n in missing if study.two_level(n)]))
        return Readers({n: fitted[n] for n in names})


def film_attributes(study, target: str | None) -> list[str]:
    """What a film of ``target`` is read for: the target, and every attribute of another column (a
    contrast of the target's own column, "died vs ward" beside "died vs the rest", is the target
    seen another way, not leakage)."""
    if target is None:
        return list(study.attributes)
    own = study.column_of(target)
    return [target, *(a for a in study.attributes if a != target and study.column_of(a) != own)]


@dataclass(frozen=True)
class FilmReading:
    """The attributes read on a film's re-encoded frames, and by what."""

    values: dict[str, np.ndarray]  # attribute -> reading per frame, in its own units
    read_by: dict[str, str] = field(default_factory=dict)  # attribute -> the reader, in words
    unread: dict[str, str] = field(default_factory=dict)  # attribute -> why no reader measured it

    def others(self, target: str) -> dict[str, np.ndarray]:
        """The readings of every attribute but the ``target``: what leakage is measured on."""
        return {name: v for name, v in self.values.items() if name != target}

    def scores(self, traversal, target: str, log: bool = False) -> dict:
        """What a traversal's quality scores carry from the readers: which reader read each other
        attribute (``leakage_read_by``), which were not read and why (``leakage_unread``), and the
        target as its own reader reads it (``target_read``: achieved / intended change, rank
        correlation with the steps, and by what). The readers see a film's own change more readily
        than an image reader does, so ``target_read`` is an upper bound, not a measurement."""
        from .quality import score
        from .study import on_scale

        scores = {"leakage_read_by": {n: by for n, by in self.read_by.items() if n != target},
                  "leakage_unread": {n: why for n, why in self.unread.items() if n != target}}
        values = self.values.get(target)
        if values is not None and len(values) >= 3 and not (log and np.any(values <= 0)):
            read = score(traversal, on_scale(values, log, target))
            scores["target_read"] = {"achieved_over_intended": read["achieved_over_intended"],
                                     "monotonicity": read["monotonicity"],
                                     "by": on_frames(self.read_by[target])}
        return scores


def read_film(model, frames, readers: Readers, names: Sequence[str] | None = None) -> FilmReading:
    """Re-encode ``frames`` [K, R, R] with ``model`` and read each of ``names`` (default every
    reader's attribute) with its trusted reader; the others are listed with why they were not read."""
    import torch

    names = list(readers) if names is None else [n for n in names if n in readers]
    trusted = [n for n in names if readers[n].trusted]
    unread = {n: readers[n].describe() for n in names if not readers[n].trusted}
    if not trusted:
        return FilmReading({}, {}, unread)
    with torch.no_grad():
        latents = model.encode(torch.as_tensor(np.asarray(frames, np.float32))[:, None]).float().cpu().numpy()
    return FilmReading({n: readers[n].read(latents) for n in trusted}, {n: readers[n].describe() for n in trusted},
                       unread)
