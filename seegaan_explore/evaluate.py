"""Score an autoencoder's traversals against the phantoms' true counterfactuals.

On held-out phantoms, per attribute: fit the mean-shift direction (the same code the explorer uses),
traverse held-out patients, measure every factor on the frames with the oracle, and compare the
traversal's difference map with the difference between two noise-free re-renders of the same
individual under the matching intervention. Scores come from :func:`explore.quality.assess`, the
function every traversal in the explorer is scored with. ``achieved_on_truth`` and
``leakage_on_truth`` are the oracle's reading of the same two re-renders: what a perfect traversal
would score, i.e. the SCM's own effects plus the oracle's bias (it reads age partly from features
that change with severity, for instance, and a change of a factor not quite one-for-one).

Every render enters the models as a phantom written to disk and read back would (``as_read``):
the models were trained on such files, whose intensities :func:`~.data.images.preprocess` windows.

The intervention that matches an attribute:

* ``severity`` and ``age``: do(factor = value -/+ h); the factor's descendants follow, as they do
  in the data the direction was fitted on.
* ``sex`` and ``view`` (binary): do(factor = 0) and do(factor = 1), severity and age held. Sicker and
  older patients are imaged AP more often, so ``view|nt_probnp,age`` also fits the view's direction
  with its causes held (severity through its blood marker, the column a real table has).
* ``nt_probnp``: NT-proBNP causes nothing in the image; its visible counterpart is severity, which
  raises log NT-proBNP by 5.0 per unit (docs/phantoms.md), so do(severity = s -/+ h / 5.0). Conditioned
  on age and view, the view is held at the patient's own.

A categorical confounder can be held by matching (``Spec.matched``) instead of a linear term: the
direction is fitted on the fit-set phantoms that share the patient's value (an AP patient's on AP
exams), adjusted linearly for the remaining confounders. That is how ``nt_probnp|age,view`` holds
the view: the effect of heart failure on the image differs between AP and PA exams, which one
additive view term cannot express.

The traversal runs between the same two ends, measured from the patient's latent (``Spec.span``):
the patient is its own factual exam, so a PA patient's view traversal steps from 0 to +1, not from
-0.5 to +0.5 around it. Centred steps would compare an exaggerated PA and a half-AP exam with the
true PA and AP exams: a different change wherever the decoder is not linear in w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data.images import intensity_window, preprocess
from .data.phantoms import Individual, generate_cohort, render_noise_free, sample_individual
from .explore.directions import Direction, fit_direction
from .explore.quality import assess, psnr_db
from .explore.traversal import traverse
from .model.oracle import Oracle, factor_targets
from .model.seegaan import SeeGaan

FIT_SEED, PATIENT_SEED = 2, 3  # neither the models' training seed (0) nor the demo cohort's (1)
SEVERITY_PER_LOG_NT_PROBNP = 1 / 5.0  # the SCM's coefficient, inverted


@dataclass(frozen=True)
class Spec:
    """One evaluated attribute: the oracle factor it targets, its confounders (adjusted linearly, or
    ``matched``: categorical, held by fitting among phantoms with the patient's value), its intervention."""

    name: str
    factor: str
    confounders: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()

    def direction(self, latents: np.ndarray, fit_factors: pd.DataFrame, patient: pd.Series | None = None, *,
                  estimator: str = "mean_shift", span: tuple[float, float] | None = None) -> Direction:
        """The mean-shift direction for traversing ``patient`` (its factor values, encoded as
        ``fit_factors`` are; needed with ``matched`` or a spline). ``estimator="spline_mean_shift"``
        takes the slope over the patient's own range, its value plus ``span`` (:meth:`span`); a
        binary attribute keeps the straight mean shift, which is its spline."""
        rows = None
        for name in self.matched:
            same = fit_factors[name].to_numpy() == patient[name]
            rows = same if rows is None else rows & same
        confounders = fit_factors[list(self.confounders)].to_numpy() if self.confounders else None
        if estimator not in ("mean_shift", "spline_mean_shift"):
            raise ValueError(f"evaluate fits mean_shift or spline_mean_shift, not {estimator!r}")
        at = {"at": tuple(float(patient[self.factor] + step) for step in span)} if self.per_patient(estimator) else {}
        return fit_direction(estimator if at else "mean_shift", latents, fit_factors[self.factor].to_numpy(),
                             confounders, rows=rows, attribute=self.name, confounder_names=self.confounders, **at)

    def per_patient(self, estimator: str) -> bool:
        """Whether each patient needs its own fit: a spline's slope is taken at the patient's value."""
        return estimator == "spline_mean_shift" and not self.binary

    def half_step(self, fit_factors: pd.DataFrame) -> float:
        """Half the intervention: one SD of the attribute over the whole fit set, or 0.5 (0 -> 1) when binary."""
        return 0.5 if self.binary else float(fit_factors[self.factor].std(ddof=0))

    @property
    def binary(self) -> bool:
        return self.factor in ("sex", "view")

    def interventions(self, row: pd.Series, half_step: float) -> tuple[dict, dict]:
        """(do at the low end, do at the high end) for a patient whose table row is ``row``."""
        if self.binary:
            values = {"sex": ("F", "M"), "view": ("PA", "AP")}[self.factor]
            return {self.factor: values[0]}, {self.factor: values[1]}
        if self.factor == "log_nt_probnp":
            delta, factor, centre, bounds = half_step * SEVERITY_PER_LOG_NT_PROBNP, "severity", row["severity"], (0, 1)
        else:
            delta, factor, centre = half_step, self.factor, row[self.factor]
            bounds = {"severity": (0.0, 1.0), "age": (18.0, 95.0)}[self.factor]
        low, high = (float(np.clip(centre + s * delta, *bounds)) for s in (-1, 1))
        held = {"view": row["view"]} if "view" in self.confounders + self.matched else {}
        return {factor: low, **held}, {factor: high, **held}

    def span(self, row: pd.Series, half_step: float) -> tuple[float, float]:
        """The traversal's first and last step, in the attribute's units, that match
        :meth:`interventions`: measured from the patient's own value, because the intervention's
        ends are (a patient at AP goes from PA to AP by steps -1 to 0; a clipped end is clipped)."""
        low, high = self.interventions(row, half_step)
        if self.binary:
            return (-1.0, 0.0) if row[self.factor] == high[self.factor] else (0.0, 1.0)
        if self.factor == "log_nt_probnp":
            return tuple((end["severity"] - row["severity"]) / SEVERITY_PER_LOG_NT_PROBNP for end in (low, high))
        return tuple(end[self.factor] - row[self.factor] for end in (low, high))


SPECS = (
    Spec("nt_probnp", "log_nt_probnp"),
    Spec("nt_probnp|age,view", "log_nt_probnp", ("age",), matched=("view",)),
    Spec("severity", "severity"),
    Spec("age", "age"),
    Spec("sex", "sex"),
    Spec("view", "view"),
    # view's causes held: severity (through its blood marker, as a real table would have it) and age
    Spec("view|nt_probnp,age", "view", ("log_nt_probnp", "age")),
)


def as_read(images: np.ndarray, windows: list[tuple[float, float]] | None = None) -> np.ndarray:
    """Renders in the units the models were trained in: a phantom written to disk is read back
    through :func:`preprocess`, whose intensity window comes from the (noisy) exam itself (the
    default). A noise-free render of the same exam takes that exam's window, so that it is the exam
    without its noise, in the same units."""
    windows = windows or [None] * len(images)
    return np.stack([preprocess(image, image.shape[-1], window) for image, window in zip(images, windows)])


def encode_images(model: SeeGaan, images: np.ndarray) -> np.ndarray:
    """Latents of [N, H, W] images already in model units (:func:`as_read`)."""
    return model.encode(torch.from_numpy(images)[:, None]).cpu().numpy()


def true_ends(individual: Individual, dos, size: int, window: tuple[float, float]) -> np.ndarray:
    """The individual re-rendered without noise under each of two interventions ``dos``, in the units
    of its exam (the exam's ``window``): for an attribute's interventions, the true counterfactual pair."""
    return as_read(np.stack([render_noise_free(individual, size, do=do).image for do in dos]), [window] * 2)


def true_latent_change(model: SeeGaan, individual: Individual, spec: Spec, row: pd.Series, half: float,
                       window: tuple[float, float]) -> np.ndarray:
    """The latent change, per unit of the attribute, between the individual's two true re-renders
    under ``spec``'s interventions (its exam's ``row`` and ``window``): what a traversal would need."""
    low, high = spec.span(row, half)
    latents = encode_images(model, true_ends(individual, spec.interventions(row, half), model.config.resolution,
                                             window))
    return (latents[1] - latents[0]) / (high - low)


@dataclass(frozen=True, eq=False)
class HeldOut:
    """Encoded held-out phantoms: the fit set (seed ``FIT_SEED``) the directions are fitted on, and
    the patients (seed ``PATIENT_SEED``) that are traversed; ``*windows`` are their exams' windows."""

    fit_table: pd.DataFrame
    fit_windows: list[tuple[float, float]]
    fit_latents: np.ndarray
    fit_factors: pd.DataFrame
    table: pd.DataFrame
    windows: list[tuple[float, float]]
    w0: np.ndarray


def encode_held_out(model: SeeGaan, n_fit: int, n_patients: int, factors: tuple[str, ...],
                    progress: bool = False) -> HeldOut:
    """Render and encode the held-out phantoms, as a cohort read from disk would be (:func:`as_read`)."""
    size = model.config.resolution
    fit_images, fit_table = generate_cohort(n_fit, size, seed=FIT_SEED, progress=progress)
    fit_windows = [intensity_window(image) for image in fit_images]
    images, table = generate_cohort(n_patients, size, seed=PATIENT_SEED)
    windows = [intensity_window(image) for image in images]
    return HeldOut(fit_table, fit_windows, encode_images(model, as_read(fit_images, fit_windows)),
                   factor_targets(fit_table, factors), table, windows, encode_images(model, as_read(images, windows)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two arrays over all their elements: diffmap r (0 when either is constant)."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denominator) if denominator > 0 else 0.0


def _leakage_ratio(conditioned: np.ndarray, unconditioned: np.ndarray) -> np.ndarray:
    """|mean conditioned leakage| / |mean unconditioned leakage| over the last axis (the patients)."""
    return np.abs(conditioned.mean(-1)) / np.maximum(np.abs(unconditioned.mean(-1)), 1e-12)


def bootstrap_ratio_ci(conditioned, unconditioned, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the leakage ratio over patients resampled with replacement, the
    same patients for both directions (each patient is traversed along both)."""
    conditioned, unconditioned = np.asarray(conditioned, np.float64), np.asarray(unconditioned, np.float64)
    draws = np.random.default_rng(seed).integers(0, len(conditioned), size=(resamples, len(conditioned)))
    low, high = np.percentile(_leakage_ratio(conditioned[draws], unconditioned[draws]), [2.5, 97.5])
    return float(low), float(high)


def evaluate(model: SeeGaan, oracle: Oracle, *, n_fit: int = 1000, n_patients: int = 16, frames: int = 7,
             n_reconstructed: int = 200, specs: tuple[Spec, ...] = SPECS, estimator: str = "mean_shift",
             progress: bool = True) -> dict:
    """Reconstruction PSNR (mean over ``n_reconstructed`` held-out phantoms, at least the
    ``n_patients`` traversed; it varies by about 1.7 dB between phantoms) and per-attribute
    traversal scores, means over the patients, with the spread of diffmap r between them and a
    bootstrap interval for the conditioned-leakage ratio (see the module docstring).
    ``estimator``: ``mean_shift``, or ``spline_mean_shift`` (each patient's slope at its own value)."""
    size = model.config.resolution
    n_reconstructed = max(n_reconstructed, n_patients)
    held_out = encode_held_out(model, n_fit, n_reconstructed, oracle.config.factors, progress)
    latents, fit_factors, table, windows, w0 = (held_out.fit_latents, held_out.fit_factors, held_out.table,
                                                held_out.windows, held_out.w0)
    patients = [sample_individual(PATIENT_SEED, i) for i in range(n_reconstructed)]
    clean = as_read(np.stack([render_noise_free(p, size).image for p in patients]), windows)
    reconstructions = model.decode(torch.from_numpy(w0), noise=0)[:, 0].cpu().numpy()
    psnr = np.array([psnr_db(r, c) for r, c in zip(reconstructions, clean)])
    results = {"reconstruction_psnr_db": float(psnr.mean()), "reconstruction_psnr_sd_db": float(psnr.std()),
               "n_reconstructed": n_reconstructed, "n_fit": n_fit, "n_patients": n_patients, "frames": frames,
               "estimator": estimator, "attributes": {}}
    patients = patients[:n_patients]

    patient_factors = factor_targets(table, oracle.config.factors)
    per_spec: dict[str, list[dict]] = {}
    for spec in tqdm(specs, desc="evaluate", unit="attribute", disable=not progress):
        half = spec.half_step(fit_factors)
        per_patient = per_spec[spec.name] = []
        directions: dict[tuple, Direction] = {}  # one fit per group of matched values (one without matching)
        for k, patient in enumerate(patients):
            span = spec.span(table.iloc[k], half)
            group = tuple(patient_factors.iloc[k][name] for name in spec.matched)
            group += (k,) if spec.per_patient(estimator) else ()
            if group not in directions:
                directions[group] = spec.direction(latents, fit_factors, patient_factors.iloc[k], estimator=estimator,
                                                   span=span)
            direction = directions[group]
            amounts = np.linspace(*span, frames)
            t = traverse(model, w0[k], direction, amounts)
            measured = oracle.predict(torch.from_numpy(t.frames)[:, None])
            others = {c: measured[c].to_numpy() for c in measured.columns if c != spec.factor}
            scores = assess(amounts, measured[spec.factor].to_numpy(), others=others)
            ends = true_ends(patient, spec.interventions(table.iloc[k], half), size, windows[k])
            scores["diffmap_r"] = pearson(t.frames[-1] - t.frames[0], ends[1] - ends[0])
            # the oracle on the true counterfactual: what it reads there is the SCM's effect plus its own bias
            read = oracle.predict(torch.from_numpy(ends)[:, None])
            change_on_truth = {c: float(read[c].iloc[1] - read[c].iloc[0]) / (amounts[-1] - amounts[0])
                               for c in read.columns}
            scores["achieved_on_truth"] = change_on_truth.pop(spec.factor)
            scores["leakage_on_truth"] = change_on_truth
            per_patient.append(scores)
        results["attributes"][spec.name] = {
            "spearman": float(np.mean([s["monotonicity"] for s in per_patient])),
            "achieved_over_intended": float(np.mean([s["achieved_over_intended"] for s in per_patient])),
            "achieved_on_truth": float(np.mean([s["achieved_on_truth"] for s in per_patient])),
            "diffmap_r": float(np.mean([s["diffmap_r"] for s in per_patient])),
            "diffmap_r_sd": float(np.std([s["diffmap_r"] for s in per_patient])),
            **{key: {name: float(np.mean([s[key][name] for s in per_patient])) for name in per_patient[0][key]}
               for key in ("leakage", "leakage_on_truth")},
        }
    if {"nt_probnp", "nt_probnp|age,view"} <= set(per_spec):
        # what conditioning bought: the conditioned direction's leakage as a share of the unconditioned one's
        leak = {name: {f: np.array([s["leakage"][f] for s in per_spec[name]]) for f in ("age", "view")}
                for name in ("nt_probnp|age,view", "nt_probnp")}
        results["conditioned_leakage_ratio"] = {
            f: float(_leakage_ratio(leak["nt_probnp|age,view"][f], leak["nt_probnp"][f])) for f in ("age", "view")}
        results["conditioned_leakage_ratio_ci95"] = {
            f: bootstrap_ratio_ci(leak["nt_probnp|age,view"][f], leak["nt_probnp"][f]) for f in ("age", "view")}
    return results
