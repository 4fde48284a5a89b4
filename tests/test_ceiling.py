"""The diffmap ceiling (an estimator's direction on an ideal latent) on cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import hadamard

from seegaan_explore.data.images import intensity_window
from seegaan_explore.model.oracle import FACTORS, factor_targets
from seegaan_explore.phantoms import factors, generate_cohort, randomized_do, sample_individual
from seegaan_explore.phantoms.ceiling import (
    RENDER_INPUTS,
    IdealFitSet,
    diffmap_ceiling,
    ideal_fit_set,
    ideal_latents,
    ideal_rs,
    stepped_interventions,
)
from seegaan_explore.phantoms.evaluation import FIT_SEED, PATIENT_SEED
from seegaan_explore.phantoms.specs import SPECS, Spec

# a renderer that draws each input as its own pattern: orthogonal, zero-mean and of equal norm, so the
# diffmap r of two input changes is the cosine of the changes themselves
PATTERNS = dict(zip(RENDER_INPUTS, hadamard(64)[1:1 + len(RENDER_INPUTS)].reshape(-1, 8, 8).astype(float)))
BASE = {"age": 60.0, "bmi": 30.0, "ctr": 0.45, "edema_score": 1.0, "effusion_left": 200.0, "effusion_right": 200.0,
        "bone_density": 0.9}
SEVERITY = Spec("severity", "severity")


def _linear_cohort(severity: np.ndarray, effect) -> list[dict]:
    """Each individual's render inputs: BASE plus ``effect(i, severity)`` (input -> change) times its severity."""
    return [{name: BASE[name] + effect(i, s).get(name, 0.0) * s for name in RENDER_INPUTS} for i, s in
            enumerate(severity)]


def _toy_ceilings(effect, estimator: str = "mean_shift") -> list[float]:
    """The ideal model's r on six patients of a toy SCM in which severity moves the inputs by ``effect``."""
    fit_severity = np.repeat(np.linspace(0.1, 0.9, 200), 2)  # each value twice: an even and an odd individual
    fit_table = pd.DataFrame(_linear_cohort(fit_severity, effect)).assign(severity=fit_severity)
    severity = np.array([0.2, 0.3, 0.4, 0.6, 0.7, 0.8])
    own = [{**inputs, "view": "PA", "device": False} for inputs in _linear_cohort(severity, effect)]
    table = pd.DataFrame({"severity": severity})

    def draw(k: int, dos) -> np.ndarray:
        images = []
        for do in dos:
            if "severity" in do:  # the truth: the SCM's own effect of do(severity)
                inputs = {name: own[k][name] + effect(k, do["severity"]).get(name, 0.0) * do["severity"]
                          - effect(k, severity[k]).get(name, 0.0) * severity[k] for name in RENDER_INPUTS}
            else:  # the ideal model's step: the inputs themselves
                inputs = do
            images.append(sum(inputs[name] * PATTERNS[name] for name in RENDER_INPUTS))
        return np.stack(images)

    return ideal_rs(SEVERITY, ideal_latents(fit_table, SEVERITY), fit_table[["severity"]], own, table, table, 0.1,
                    draw, estimator=estimator)


def test_an_effect_alike_in_everyone_has_a_ceiling_of_one():
    rs = _toy_ceilings(lambda i, s: {"ctr": 0.2, "edema_score": 2.0})
    assert rs == pytest.approx([1.0] * 6, abs=1e-4)


def test_an_effect_that_flips_sign_between_two_halves_has_a_ceiling_of_one_over_root_two():
    """CTR grows with severity in everyone; BMI by as much, up in one half of the population and down in
    the other. The population's direction moves CTR only: half the truth's change, at 45 degrees to it."""
    rs = _toy_ceilings(lambda i, s: {"ctr": 0.2, "bmi": 0.2 if i % 2 else -0.2})
    assert rs == pytest.approx([1 / math.sqrt(2)] * 6, abs=1e-3)


def test_the_spline_follows_a_flip_at_a_level_of_the_attribute_and_the_straight_line_does_not():
    """BMI rises with severity below 0.5 and falls above it, in everyone: the straight mean shift averages
    it away (1/sqrt 2 again), the spline's slope at each patient's own level follows it."""
    def tent(i, s):
        return {"ctr": 0.2, "bmi": 0.2 * (min(s, 1 - s) / s)}  # BMI = BASE + 0.2 min(s, 1 - s)

    straight, spline = _toy_ceilings(tent), _toy_ceilings(tent, "spline_mean_shift")
    assert straight == pytest.approx([1 / math.sqrt(2)] * 6, abs=0.02)
    assert min(spline) > 0.95


def test_a_randomized_factors_ideal_direction_is_the_factor_itself_and_a_confounded_ones_is_not():
    """With the view assigned at random in the fit set nothing else moves with it: its mean shift on the
    ideal latent is the view alone and draws the true counterfactual (r = 1). Observed, AP exams are of
    sicker patients, and the mean shift draws their disease too."""
    rows = [factors(sample_individual(FIT_SEED, i), randomized_do(FIT_SEED, i, ("view",))) for i in range(1000)]
    trial = pd.DataFrame(rows)
    trial = IdealFitSet(trial, factor_targets(trial, tuple(name for name, _ in FACTORS)))
    exams, table = generate_cohort(4, 32, seed=PATIENT_SEED)
    windows = [intensity_window(exam) for exam in exams]
    patients = [sample_individual(PATIENT_SEED, k) for k in range(4)]
    view = next(spec for spec in SPECS if spec.name == "view")
    randomized = diffmap_ceiling(view, trial, patients, table, windows, 0.5, 32)
    observed = diffmap_ceiling(view, ideal_fit_set(1000, FIT_SEED), patients, table, windows, 0.5, 32)
    assert min(randomized.per_patient) > 0.999 and all(randomized.unswitched)
    assert observed.r < 0.99


def test_a_two_valued_attribute_steps_between_its_levels_only():
    own = {**BASE, "view": "PA", "device": True, "sex": "F"}
    view = Spec("view", "view")
    per_unit = np.zeros(len(RENDER_INPUTS) + 1)
    per_unit[-1], per_unit[2] = 1.0, 0.1  # the view, and CTR by 0.1 per unit of it
    low, high = stepped_interventions(own, view, per_unit, (0.0, 1.0))
    assert (low["view"], high["view"]) == ("PA", "AP") and low["device"] is high["device"] is True
    assert high["ctr"] - low["ctr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="two levels"):
        stepped_interventions(own, view, per_unit * 0.5, (0.0, 1.0))
