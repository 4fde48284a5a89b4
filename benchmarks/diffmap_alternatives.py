"""Per-patient and curved alternatives to the mean-shift traversal, scored like ``evaluate``'s diffmap r
(Pearson r of the traversal's difference map against the true counterfactual's, held-out phantoms,
every path stepped from the patient's own value as ``evaluate`` steps):

* ``local k``: the mean shift fitted on the patient's k nearest latents of the fit set (skipped for a
  patient whose neighbours all share one value);
* ``from covariates`` / ``from w0``: each patient's latent change per unit predicted (ridge) from its sex,
  view, age, BMI and severity, or from its latent, trained on the true latent changes of ``--people``
  fit-set phantoms (an ideal training signal no real cohort has);
* ``re-projected``: ``--steps`` steps along the mean shift, re-encoding the decoded frame after each
  (a curved path that stays on what the encoder reads);
* Latent Shift with the bundled CNN, for NT-proBNP only.

    python benchmarks/diffmap_alternatives.py [--checkpoint CKPT] [--fit 3000] [--patients 8] [--people 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import Ridge

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.explore.latent_shift import latent_shift
from seegaan_explore.model import load_model
from seegaan_explore.model.cnn import load_cnn
from seegaan_explore.model.oracle import FACTORS
from seegaan_explore.phantoms import sample_individual
from seegaan_explore.phantoms.evaluation import (
    FIT_SEED,
    PATIENT_SEED,
    encode_held_out,
    encode_images,
    pearson,
    true_ends,
    true_latent_change,
)
from seegaan_explore.phantoms.specs import SPECS

NEIGHBOURS = (1000, 300, 100)


def covariates(table) -> np.ndarray:
    return np.column_stack([table.sex == "M", table.view == "AP", table.age / 50, table.bmi / 25,
                            table.severity]).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--fit", type=int, default=3000)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    cnn = load_cnn(WEIGHTS_DIR / FILES["cnn"])
    size = model.config.resolution
    held = encode_held_out(model, args.fit, args.patients, tuple(name for name, _ in FACTORS))
    fit_table, latents, table, w0 = held.fit_table, held.fit_latents, held.table, held.w0

    def decode(ws) -> np.ndarray:
        return model.decode(torch.from_numpy(np.stack(ws).astype(np.float32)), noise=0)[:, 0].cpu().numpy()

    def change(low, high) -> np.ndarray:
        frames = decode([low, high])
        return frames[1] - frames[0]

    def walk(w, step) -> np.ndarray:
        if not np.any(step):  # the patient's own end: its latent, as for every other path
            return w
        for _ in range(args.steps):
            w = encode_images(model, decode([w + step / args.steps]))[0]
        return w

    for spec in (s for s in SPECS if not s.confounders):
        values = held.fit_factors[spec.factor].to_numpy(np.float64)
        direction = fit_direction("mean_shift", latents, values, attribute=spec.name)
        half = 0.5 if spec.binary else direction.scale
        people = range(min(args.people, args.fit))
        true_changes = np.stack([true_latent_change(model, sample_individual(FIT_SEED, j), spec, fit_table.iloc[j],
                                                    half, held.fit_windows[j]) for j in people])
        by_covariates = Ridge(alpha=1e-3).fit(covariates(fit_table.iloc[list(people)]), true_changes)
        by_latent = Ridge(alpha=10.0).fit(latents[list(people)], true_changes)
        scores: dict[str, list[float]] = {}
        for k in range(args.patients):
            truth = np.diff(true_ends(sample_individual(PATIENT_SEED, k), spec.interventions(table.iloc[k], half), size,
                                      held.windows[k]), axis=0)[0]
            low, high = spec.span(table.iloc[k], half)

            def straight(per_unit: np.ndarray) -> np.ndarray:
                return change(w0[k] + low * per_unit, w0[k] + high * per_unit)

            candidates = {"mean shift": straight(direction.vector)}
            nearest = np.argsort(np.linalg.norm(latents - w0[k], axis=1))
            for n in NEIGHBOURS:
                try:
                    local = fit_direction("mean_shift", latents[nearest[:n]], values[nearest[:n]], attribute=spec.name)
                except ValueError:  # all neighbours share one value (one sex, say): no local direction
                    continue
                candidates[f"local {n}"] = straight(local.vector)
            for name, predicted in (("from covariates", by_covariates.predict(covariates(table.iloc[[k]]))[0]),
                                    ("from w0", by_latent.predict(w0[k:k + 1])[0])):
                candidates[name] = straight(predicted)
            candidates["re-projected"] = change(walk(w0[k], low * direction.vector),
                                                walk(w0[k], high * direction.vector))
            if spec.factor == "log_nt_probnp":
                shift = latent_shift(model, cnn, w0[k])
                candidates["latent shift"] = straight(shift.vector)
            for name, difference in candidates.items():
                scores.setdefault(name, []).append(pearson(difference, truth))
        print(f"{spec.name:10s} " + ", ".join(
            f"{name} {np.mean(r):.2f}" + ("" if len(r) == args.patients else f" ({len(r)} patients)")
            for name, r in scores.items()), flush=True)


if __name__ == "__main__":
    main()
