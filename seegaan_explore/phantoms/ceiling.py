"""The diffmap ceiling: how far an estimator's direction can go with a perfect autoencoder.

The ideal latent is the phantom renderer's own input (age, BMI, CTR, edema, effusions, bone density;
and, for a two-valued attribute, the attribute itself coded 0/1; the anatomy fixed): perfectly
disentangled, and decoded exactly by the renderer. The direction is fitted on it with the same
estimator, confounders and matching as on a model's latents (:meth:`.specs.Spec.direction`), over a
fit set of phantom tables. Each patient's inputs are stepped along it by the same span as the
traversal :func:`.evaluation.evaluate` scores, from the patient's own value, with the view and the
device held unless the view is the attribute (a renderer cannot draw 0.3 of a pacemaker; a two-valued
attribute's steps land on its two levels), and the rendered difference is correlated with the true
counterfactual's: diffmap r of an ideal model, what no model can beat with that estimator.

What stays below 1 is the attribute's effect differing between individuals in the causal model
itself (sigmoid onsets, a switch at each person's own threshold, an inverted U), or a confounder that
the estimator does not hold (the unconditioned view's direction also draws the disease that makes
exams AP). The spline mean shift follows an effect that depends on the patient's level of the
attribute, not one that depends on anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..model.oracle import FACTORS, factor_targets
from .causal import Individual, factors
from .cohort import cohort_table
from .evaluation import pearson, true_ends
from .specs import Spec

__all__ = ["BINARY_LEVELS", "RENDER_INPUTS", "Ceiling", "IdealFitSet", "diffmap_ceiling", "ideal_fit_set",
           "ideal_latents", "ideal_rs", "stepped_interventions"]

#: the renderer's continuous inputs, with the range the SCM keeps each in
RENDER_INPUTS = {"age": (18.0, 95.0), "bmi": (15.0, 60.0), "ctr": (0.30, 0.80), "edema_score": (0.0, 3.0),
                 "effusion_left": (0.0, 1500.0), "effusion_right": (0.0, 1500.0), "bone_density": (0.0, 2.0)}
#: a two-valued factor's levels, coded 0 and 1 as the oracle codes them
BINARY_LEVELS = {"sex": ("F", "M"), "view": ("PA", "AP")}


@dataclass(frozen=True, eq=False)
class IdealFitSet:
    """Phantom tables (no images needed) the ideal directions are fitted on, and their factors coded
    as the oracle codes them."""

    table: pd.DataFrame
    factors: pd.DataFrame


def ideal_fit_set(n: int, seed: int) -> IdealFitSet:
    """``n`` phantoms' clinical tables, drawn as :func:`.evaluation.encode_held_out` draws its fit set."""
    table = cohort_table(n, seed=seed)
    return IdealFitSet(table, factor_targets(table, tuple(name for name, _ in FACTORS)))


def ideal_latents(table: pd.DataFrame, spec: Spec) -> np.ndarray:
    """The ideal latent of each row: the renderer's continuous inputs, plus ``spec``'s factor (0/1)
    when it is two-valued."""
    inputs = table[list(RENDER_INPUTS)].to_numpy(float)
    if not spec.binary:
        return inputs
    return np.column_stack([inputs, factor_targets(table, (spec.factor,)).to_numpy(float)])


def stepped_interventions(own: Mapping[str, Any], spec: Spec, per_unit: np.ndarray,
                          span: tuple[float, float]) -> tuple[dict, dict]:
    """The interventions that draw a patient whose factors are ``own`` at the two ends of ``span``
    along ``per_unit`` (a direction in :func:`ideal_latents`' coordinates, per unit of the attribute):
    every render input set to the patient's own value plus the step, clipped to its range; the view and
    the device held at the patient's own unless the view is the attribute."""
    slopes = dict(zip(RENDER_INPUTS, per_unit[:len(RENDER_INPUTS)]))
    held = {"view": own["view"], "device": own["device"]}
    ends = []
    for step in span:
        do = {name: float(np.clip(own[name] + step * slopes[name], *bounds)) for name, bounds in RENDER_INPUTS.items()}
        if spec.binary:
            levels = BINARY_LEVELS[spec.factor]
            code = levels.index(own[spec.factor]) + step * float(per_unit[len(RENDER_INPUTS)])
            if not np.isclose(code, round(code), atol=1e-3) or round(code) not in (0, 1):
                raise ValueError(f"{spec.name}: a step to {code:g} is not one of the two levels a renderer can draw")
            do[spec.factor] = levels[int(round(code))]
        ends.append({**held, **do})
    return ends[0], ends[1]


def ideal_rs(spec: Spec, latents: np.ndarray, fit_factors: pd.DataFrame, own: list[Mapping[str, Any]],
             table: pd.DataFrame, patient_factors: pd.DataFrame, half: float,
             draw: Callable[[int, tuple[dict, dict]], np.ndarray], *, estimator: str = "mean_shift",
             truths: list[np.ndarray] | None = None) -> list[float]:
    """diffmap r of the ideal model per patient: ``spec``'s direction fitted with ``estimator`` on the
    ideal ``latents`` of a fit set (its factors ``fit_factors``), each patient (its factors ``own``, its
    table row, its coded factors) stepped along it by ``half`` as evaluate steps, and ``draw(k, (do_low,
    do_high))``'s two images of patient ``k`` compared with the true counterfactual's: ``truths[k]``, or
    drawn under ``spec``'s interventions."""
    vectors: dict[tuple, np.ndarray] = {}
    rs = []
    for k in range(len(own)):
        row, values = table.iloc[k], patient_factors.iloc[k]
        span = spec.span(row, half)
        group = tuple(values[name] for name in spec.matched) + ((k,) if spec.per_patient(estimator) else ())
        if group not in vectors:
            vectors[group] = spec.direction(latents, fit_factors, values, estimator=estimator, span=span).vector
        if truths is None:
            ends = draw(k, spec.interventions(row, half))
            truth = ends[1] - ends[0]
        else:
            truth = truths[k]
        ends = draw(k, stepped_interventions(own[k], spec, vectors[group], span))
        rs.append(pearson(ends[1] - ends[0], truth))
    return rs


@dataclass(frozen=True)
class Ceiling:
    """The ideal model's diffmap r per patient, its mean (``r``), and which patients keep their view
    and device across the true intervention (``unswitched``, with their mean ``r_unswitched``): a
    switch at the patient's own threshold is what one direction for everyone cannot draw."""

    per_patient: tuple[float, ...]
    unswitched: tuple[bool, ...]

    @property
    def r(self) -> float:
        return float(np.mean(self.per_patient))

    @property
    def r_unswitched(self) -> float:
        kept = [r for r, u in zip(self.per_patient, self.unswitched) if u]
        return float(np.mean(kept)) if kept else float("nan")


def diffmap_ceiling(spec: Spec, fit: IdealFitSet, patients: list[Individual], table: pd.DataFrame,
                    windows: list[tuple[float, float]], half: float, size: int, *, estimator: str = "mean_shift",
                    truths: list[np.ndarray] | None = None) -> Ceiling:
    """The ideal model's diffmap r for ``spec`` with ``estimator`` on phantom ``patients`` (their table
    rows ``table`` and exams' ``windows``), stepped by ``half`` (:meth:`Spec.half_step`) as evaluate
    steps, rendered at ``size``. ``truths``: the true counterfactual differences where already rendered."""
    own = [factors(individual) for individual in patients]

    def draw(k: int, dos: tuple[dict, dict]) -> np.ndarray:
        return true_ends(patients[k], dos, size, windows[k])

    rs = ideal_rs(spec, ideal_latents(fit.table, spec), fit.factors, own, table,
                  factor_targets(table, tuple(fit.factors.columns)), half, draw, estimator=estimator, truths=truths)
    unswitched = []
    for k, individual in enumerate(patients):
        at_low, at_high = (factors(individual, do) for do in spec.interventions(table.iloc[k], half))
        unswitched.append(spec.binary or (at_low["view"] == at_high["view"] and at_low["device"] == at_high["device"]))
    return Ceiling(tuple(rs), tuple(unswitched))
