"""How much of a real difference do the readers read, and what does calibrating to the whole change do?

The oracle and the CNN read a target on images. A regressor of a target the image shows only in part
(NT-proBNP: the image shows the disease, not the lab's noise) reads the differences between the
cohort's own exams at a slope near its R², its gain. A film calibrated until its reader reads the
whole intended change is then drawn further than the cohort's exams differ, and shows the disease's
signs exaggerated. This prints every reader's gain on the bundled demo's exams (originals, and the
autoencoder's reconstructions of them), then the dashboard's default films of ``--patients`` patients
calibrated against the whole change (as before) and against the reader's gain (now): how far the ends
are drawn, how far the signs that go with the target move per SD of it (the cohort's own exams: the
yardstick), and the verdicts.

    python benchmarks/reader_gain.py [--patients 16]
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from seegaan_explore.demo import load_demo
from seegaan_explore.explore.study import Study
from seegaan_explore.ui.renderer import Renderer

FILMS = {"nt_probnp_pg_ml": (True, ("age", "view")), "severity": (False, ("age",))}
SIGNS = ("ctr", "effusion_left", "effusion_right", "edema_score", "sex")


def gains(demo, kwargs) -> None:
    study = Study(kwargs["latents"], kwargs["table"], model=demo.model, cnn=demo.cnn, oracle=demo.oracle,
                  images=kwargs["images"])
    with torch.no_grad():
        decoded = np.concatenate([demo.model.decode(torch.from_numpy(study.latents[k:k + 100]), noise=0)[:, 0].numpy()
                                  for k in range(0, len(study.latents), 100)])
    reconstructed = Study(kwargs["latents"], kwargs["table"], model=demo.model, cnn=demo.cnn, oracle=demo.oracle,
                          images=decoded)
    print("| attribute | read by | gain on the exams | on their reconstructions |\n|---|---|---|---|")
    for name in study.attributes:
        for log in (False, True) if name == "nt_probnp_pg_ml" else (False,):
            gain = study.reader_gain(name, log)
            if gain is None:
                continue
            by = "the oracle" if name in study.oracle_predict(torch.zeros(1, 1, 128, 128)).columns else "the CNN"
            on_reconstructions = reconstructed.reader_gain(name, log)
            print(f"| {name}{' (ln)' if log else ''} | {by} | {gain:.2f} | {on_reconstructions:.2f} |")


def films(kwargs, patients: int, against_gain: bool) -> None:
    if not against_gain:  # as before: every reader read against the whole intended change
        Study.reader_gain = lambda self, attribute, log: None
    renderer = Renderer(**kwargs)
    for attribute, (log, held) in FILMS.items():
        cohort = renderer.study.cohort_shares(attribute, log, SIGNS, held)
        stretch, levels, moved = [], collections.Counter(), collections.defaultdict(list)
        for patient in range(patients):
            out = renderer.render({"attribute": attribute, "log": log, "confounders": held, "patient": patient},
                                  attribution=False)
            stretch.append(out["calibration"].stretch or np.nan)
            levels[out["verdict"].level] += 1
            shares = {label: share for label, share, _ in out["leakage"]}
            for sign in SIGNS:
                moved[sign].append(shares.get(renderer.study.label(sign), np.nan))
        signs = ", ".join(f"{s} {np.nanmedian(moved[s]):+.2f} ({cohort[s]:+.2f})" for s in SIGNS)
        sex = np.abs(moved["sex"])
        print(f"| {attribute} | {'the gain' if against_gain else 'the whole change'} | {np.nanmedian(stretch):.2f} "
              f"| {signs} | {int((sex >= 0.4).sum())} (largest {np.nanmax(sex):.2f}) | {dict(levels)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16)
    args = parser.parse_args()
    demo = load_demo()
    kwargs = {k: v for k, v in demo.explorer_kwargs().items() if k != "note"}
    gains(demo, kwargs)
    print("\n| film | calibrated against | ends drawn (median) | signs per SD of the target, median over "
          "patients (the cohort's exams) | films moving sex 0.4 SD per SD or more | verdicts |")
    print("|---|---|---|---|---|---|")
    films(kwargs, args.patients, against_gain=True)
    films(kwargs, args.patients, against_gain=False)


if __name__ == "__main__":
    main()
