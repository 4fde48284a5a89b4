"""The attributes ``evaluate`` scores, each with the intervention that is its true counterfactual.

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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..explore.directions import Direction
from ..explore.study import direction_for, traversal_range

__all__ = ["SEVERITY_PER_LOG_NT_PROBNP", "SPECS", "Spec"]

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
        if estimator not in ("mean_shift", "spline_mean_shift"):
            raise ValueError(f"evaluate fits mean_shift or spline_mean_shift, not {estimator!r}")
        confounders = fit_factors[list(self.confounders)].to_numpy() if self.confounders else None
        at = traversal_range(float(patient[self.factor]), span) if self.per_patient(estimator) else None
        return direction_for(estimator if at else "mean_shift", latents, fit_factors[self.factor].to_numpy(),
                             confounders, attribute=self.name, confounder_names=self.confounders,
                             match={name: fit_factors[name].to_numpy() for name in self.matched},
                             like={name: patient[name] for name in self.matched}, at=at)

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
