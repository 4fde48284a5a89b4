"""Score an autoencoder's traversals against the phantoms' true counterfactuals.

On held-out phantoms, per attribute: fit the mean-shift direction (the same code the explorer uses),
traverse held-out patients, measure every factor on the frames with the oracle, and compare the
traversal's difference map with the difference between two noise-free re-renders of the same
individual under the matching intervention. Scores come from :func:`explore.quality.assess`, the
function every traversal in the explorer is scored with. ``achieved_on_truth`` and
``leakage_on_truth`` are the oracle's reading of the same two re-renders: what a perfect traversal
would score, i.e. the SCM's own effects plus the oracle's bias (it reads age partly from features
that change with severity, for instance, and a change of a factor not quite one-for-one).

The attributes and their interventions are :mod:`.specs`'s. Beside diffmap r, :mod:`.ceiling` gives
what an ideal autoencoder reaches with the same estimator on the same patients and steps; beside
achieved / intended, the same with each direction calibrated on fit-set phantoms, never on the
patients it is scored on, against the ruler's gain on the fit set's exams (how much of a real
difference it reads: a film is calibrated until the ruler reads that much of the intended change, as
the dashboard calibrates), and that over the gain. Every reading is the oracle's, and the output
names it (``ruler``).

Every render enters the models as a phantom written to disk and read back would (``as_read``):
the models were trained on such files, whose intensities :func:`~seegaan_explore.data.images.preprocess` windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.images import intensity_window, preprocess
from ..explore.calibration import Calibration, calibrate
from ..explore.directions import Direction
from ..explore.quality import assess, psnr_db
from ..explore.traversal import stepped, traverse
from ..model.oracle import Oracle, factor_targets
from ..model.seegaan import SeeGaan
from .causal import Individual, sample_individual
from .cohort import generate_cohort
from .radiograph import render_noise_free
from .specs import SPECS, Spec

__all__ = ["FIT_SEED", "PATIENT_SEED", "HeldOut", "as_read", "bootstrap_mean_ci", "bootstrap_ratio_ci",
           "encode_held_out", "encode_images", "evaluate", "pearson", "true_ends", "true_latent_change"]

FIT_SEED, PATIENT_SEED = 2, 3  # neither the models' training seed (0) nor the demo cohort's (1)


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
    fit_images: np.ndarray  # as read from disk: what a ruler's gain is measured on
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
    read = as_read(fit_images, fit_windows)
    return HeldOut(fit_table, fit_windows, encode_images(model, read), factor_targets(fit_table, factors), read,
                   table, windows, encode_images(model, as_read(images, windows)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two arrays over all their elements: diffmap r (0 when either is constant)."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denominator) if denominator > 0 else 0.0


def _leakage_ratio(conditioned: np.ndarray, unconditioned: np.ndarray) -> np.ndarray:
    """|mean conditioned leakage| / |mean unconditioned leakage| over the last axis (the patients)."""
    return np.abs(_signed_leakage_ratio(conditioned, unconditioned))


def _signed_leakage_ratio(conditioned: np.ndarray, unconditioned: np.ndarray) -> np.ndarray:
    """Mean conditioned leakage / mean unconditioned leakage: negative where the two leak opposite ways."""
    denominator = unconditioned.mean(-1)
    return conditioned.mean(-1) / np.where(np.abs(denominator) < 1e-12, 1e-12, denominator)


def bootstrap_ratio_ci(conditioned, unconditioned, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the leakage ratio over patients resampled with replacement, the same patients
    for both directions (each patient is traversed along both). The percentile interval is taken on the
    signed ratio and then folded onto its size (0 to the larger end where it spans 0): taken on the
    size itself, it excludes a ratio near 0, since almost every resample's size lies above it."""
    conditioned, unconditioned = np.asarray(conditioned, np.float64), np.asarray(unconditioned, np.float64)
    draws = np.random.default_rng(seed).integers(0, len(conditioned), size=(resamples, len(conditioned)))
    low, high = np.percentile(_signed_leakage_ratio(conditioned[draws], unconditioned[draws]), [2.5, 97.5])
    if low <= 0 <= high:
        return 0.0, float(max(-low, high))
    return float(min(abs(low), abs(high))), float(max(abs(low), abs(high)))


def bootstrap_mean_ci(values, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-patient ``values``, the patients resampled with replacement."""
    values = np.asarray(values, np.float64)
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    low, high = np.percentile(values[draws].mean(-1), [2.5, 97.5])
    return float(low), float(high)


def _read(model: SeeGaan, oracle: Oracle, w: np.ndarray, direction: Direction, amounts: np.ndarray, factor: str):
    """Traverse ``w`` along ``direction`` by ``amounts``; the traversal, and :func:`assess`'s scores of
    the oracle's reading of its frames (``factor`` the target, every other factor leakage)."""
    t = traverse(model, w, direction, amounts)
    measured = oracle.predict(torch.from_numpy(t.frames)[:, None])
    others = {c: measured[c].to_numpy() for c in measured.columns if c != factor}
    return t, assess(amounts, measured[factor].to_numpy(), others=others)


def ruler_gains(oracle: Oracle, held_out: HeldOut) -> dict[str, float | None]:
    """Each factor's gain, as the dashboard measures its readers'
    (:meth:`~seegaan_explore.explore.study.Study.reader_gain`): the slope of the ruler's readings of the
    fit set's exams on their true values (None where it is not above 0.1)."""
    read = pd.concat([oracle.predict(torch.from_numpy(held_out.fit_images[k:k + 64])[:, None])
                      for k in range(0, len(held_out.fit_images), 64)], ignore_index=True)
    gains = {}
    for factor in held_out.fit_factors.columns:
        truth, reading = held_out.fit_factors[factor].to_numpy(np.float64), read[factor].to_numpy(np.float64)
        rows = np.isfinite(truth) & np.isfinite(reading)
        gain = float(np.polyfit(truth[rows], reading[rows], 1)[0]) if np.ptp(truth[rows]) > 0 else math.nan
        gains[factor] = gain if gain > 0.1 else None
    return gains


def _calibrated(model: SeeGaan, oracle: Oracle, spec: Spec, held_out: HeldOut, direction: Direction,
                values: pd.Series, n: int, ruler: str, read_before: dict,
                gain: float | None) -> tuple[Direction, Calibration]:
    """``direction`` calibrated as the dashboard calibrates a film (:func:`~seegaan_explore.explore.
    calibration.calibrate`): on the ``n`` fit-set phantoms (never a scored patient) nearest the
    patient's ``values`` in the attribute among those of its matched group, read by the oracle. Each
    phantom's film along a direction is read once: ``read_before`` keeps the readings, as the
    dashboard's film reader does (patients near each other share most of their nearest phantoms).
    Read against the ruler's ``gain`` (:func:`ruler_gains`), as the dashboard reads against its readers'."""
    fit = held_out.fit_factors
    alike = np.ones(len(fit), bool)
    for name in spec.matched:
        alike &= fit[name].to_numpy() == values[name]
    distance = np.abs(fit[spec.factor].to_numpy() - values[spec.factor])
    rows = [int(j) for j in np.lexsort((np.arange(len(fit)), distance)) if alike[j]][:n]

    def read(j: int, amounts: np.ndarray) -> np.ndarray:
        key = (direction, j, amounts.tobytes())  # a direction hashes by identity
        if key not in read_before:
            frames = model.decode(stepped(model, held_out.fit_latents[j], direction, amounts)[1]).cpu()
            read_before[key] = oracle.predict(frames)[spec.factor].to_numpy()
        return read_before[key]

    return calibrate(direction, rows, read, ruler, spec.name, gain)


def _summary(calibrations: list[Calibration]) -> dict | None:
    """How the patients' films were calibrated: how many were, their median stretch of the default
    film's ends, and the median share of a 2 SD step the shorter side can show."""
    if not calibrations:
        return None
    done = [c for c in calibrations if c.stretch is not None]
    return {"calibrated": len(done), "of": len(calibrations),
            "stretch": float(np.median([c.stretch for c in done])) if done else None,
            "reach": float(np.median([c.reach for c in done])) if done else None}


def evaluate(model: SeeGaan, oracle: Oracle, *, n_fit: int = 1000, n_patients: int = 16, frames: int = 7,
             n_reconstructed: int = 200, specs: tuple[Spec, ...] = SPECS, estimator: str = "mean_shift",
             n_calibration: int = 8, ceiling_fit: int = 5000, ruler: str = "the oracle",
             progress: bool = True) -> dict:
    """Reconstruction PSNR (mean over ``n_reconstructed`` held-out phantoms, at least the
    ``n_patients`` traversed, because it varies between phantoms; with its SD) and per-attribute
    traversal scores, means over the patients, with the spread of diffmap r between them and a
    bootstrap interval for the leakage and the conditioned-leakage ratio (see the module docstring).
    ``estimator``: ``mean_shift``, or ``spline_mean_shift`` (each patient's slope at its own value).

    Beside diffmap r: its ceiling, the same estimator's on an ideal latent fitted on ``ceiling_fit``
    phantom tables (:mod:`.ceiling`), same patients and steps, and their ratio. Beside achieved /
    intended: the same with each film calibrated as the dashboard calibrates it
    (:mod:`~seegaan_explore.explore.calibration`), on the ``n_calibration`` fit-set phantoms nearest
    the patient in the attribute (of its group where a confounder is matched; 0: no calibration).
    ``ruler`` names ``oracle`` in the output: every reading (leakage included) is its."""
    from .ceiling import diffmap_ceiling, ideal_fit_set  # it imports this module

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
               "estimator": estimator, "ruler": ruler,
               "calibration": {"phantoms": min(n_calibration, n_fit),
                               "from": f"the fit set (seed {FIT_SEED}) nearest the patient in the attribute, in its "
                                       f"matched group, never a scored patient (seed {PATIENT_SEED})",
                               "read_by": ruler},
               "ceiling": {"latent": "the renderer's own inputs (ideal autoencoder)", "estimator": estimator,
                           "n_fit": ceiling_fit, "seed": FIT_SEED, "patients": "the scored patients and steps"},
               "attributes": {}}
    table, patients = table.iloc[:n_patients], patients[:n_patients]
    ideal = ideal_fit_set(ceiling_fit, FIT_SEED)

    patient_factors = factor_targets(table, oracle.config.factors)
    gains = ruler_gains(oracle, held_out)
    per_spec: dict[str, list[dict]] = {}
    for spec in tqdm(specs, desc="evaluate", unit="attribute", disable=not progress):
        half = spec.half_step(fit_factors)
        per_patient = per_spec[spec.name] = []
        directions: dict[tuple, Direction] = {}  # one fit per group of matched values (one without matching)

        def direction_of(values: pd.Series, span: tuple[float, float], key: tuple) -> Direction:
            group = tuple(values[name] for name in spec.matched) + (key if spec.per_patient(estimator) else ())
            if group not in directions:
                directions[group] = spec.direction(latents, fit_factors, values, estimator=estimator, span=span)
            return directions[group]

        calibrations: list[Calibration] = []
        read_before: dict = {}  # the fit-set phantoms' films read along this spec's directions
        truths = []
        for k, patient in enumerate(patients):
            span = spec.span(table.iloc[k], half)
            direction = direction_of(patient_factors.iloc[k], span, ("patient", k))
            amounts = np.linspace(*span, frames)
            t, scores = _read(model, oracle, w0[k], direction, amounts, spec.factor)
            ends = true_ends(patient, spec.interventions(table.iloc[k], half), size, windows[k])
            truths.append(ends[1] - ends[0])
            scores["diffmap_r"] = pearson(t.frames[-1] - t.frames[0], truths[-1])
            if n_calibration > 0:
                film, calibration = _calibrated(model, oracle, spec, held_out, direction, patient_factors.iloc[k],
                                                n_calibration, ruler, read_before, gains[spec.factor])
                calibrations.append(calibration)
                scores["achieved_calibrated"] = _read(model, oracle, w0[k], film, amounts,
                                                      spec.factor)[1]["achieved_over_intended"]
            # the oracle on the true counterfactual: what it reads there is the SCM's effect plus its own bias
            read = oracle.predict(torch.from_numpy(ends)[:, None])
            change_on_truth = {c: float(read[c].iloc[1] - read[c].iloc[0]) / (amounts[-1] - amounts[0])
                               for c in read.columns}
            scores["achieved_on_truth"] = change_on_truth.pop(spec.factor)
            scores["leakage_on_truth"] = change_on_truth
            per_patient.append(scores)
        ceiling = diffmap_ceiling(spec, ideal, patients, table, windows, half, size, estimator=estimator,
                                  truths=truths).r
        diffmap_r = float(np.mean([s["diffmap_r"] for s in per_patient]))
        leakage = {name: [s["leakage"][name] for s in per_patient] for name in per_patient[0]["leakage"]}
        results["attributes"][spec.name] = {
            "spearman": float(np.mean([s["monotonicity"] for s in per_patient])),
            "achieved_over_intended": float(np.mean([s["achieved_over_intended"] for s in per_patient])),
            # a film left as fitted (its target barely moves on the other phantoms) counts as it is
            "achieved_over_intended_calibrated": (float(np.mean([s["achieved_calibrated"] for s in per_patient]))
                                                  if calibrations else None),
            "calibration": _summary(calibrations),
            "ruler_gain": gains[spec.factor],
            # the promise a film keeps: the change its ruler reads between the fit set's own exams
            "achieved_over_gain_calibrated": (float(np.mean([s["achieved_calibrated"] for s in per_patient]))
                                              / (gains[spec.factor] or 1.0) if calibrations else None),
            "achieved_on_truth": float(np.mean([s["achieved_on_truth"] for s in per_patient])),
            "diffmap_r": diffmap_r,
            "diffmap_r_sd": float(np.std([s["diffmap_r"] for s in per_patient])),
            "diffmap_r_ceiling": ceiling,
            "diffmap_r_share": diffmap_r / ceiling if ceiling > 0 else None,
            "leakage": {name: float(np.mean(values)) for name, values in leakage.items()},
            "leakage_ci95": {name: bootstrap_mean_ci(values) for name, values in leakage.items()},
            "leakage_ruler": ruler,
            "leakage_on_truth": {name: float(np.mean([s["leakage_on_truth"][name] for s in per_patient]))
                                 for name in per_patient[0]["leakage_on_truth"]},
        }
    if {"nt_probnp", "nt_probnp|age,view"} <= set(per_spec):
        # what conditioning bought: the conditioned direction's leakage as a share of the unconditioned one's;
        # on the true counterfactuals, the share a perfect traversal would leave by this ruler (the target's
        # floor: the ruler reads some change of a held factor where there is none)
        for suffix, key in (("", "leakage"), ("_on_truth", "leakage_on_truth")):
            leak = {name: {f: np.array([s[key][f] for s in per_spec[name]]) for f in ("age", "view")}
                    for name in ("nt_probnp|age,view", "nt_probnp")}
            results[f"conditioned_leakage_ratio{suffix}"] = {
                f: float(_leakage_ratio(leak["nt_probnp|age,view"][f], leak["nt_probnp"][f])) for f in ("age", "view")}
            results[f"conditioned_leakage_ratio{suffix}_ci95"] = {
                f: bootstrap_ratio_ci(leak["nt_probnp|age,view"][f], leak["nt_probnp"][f]) for f in ("age", "view")}
        results["conditioned_leakage_ratio_ruler"] = ruler
    return results
