"""Does calibrating a film on other patients make it reach what it promises? The dashboard's question.

For every attribute of the bundled demo, the dashboard's default film (mean shift, -2 to +2 SD) of
``--patients`` cohort patients is rendered as it is and calibrated (``Renderer.render(...,
calibrate=True)``: the steps stretched by the inverse of the median share of the intended change
the oracle or the CNN reads on 8 other patients' films, at most 4x), and each film's achieved over
intended change is read by the same reader on the patient's own frames. Target (issue 18): between
0.8 and 1.25.

    python benchmarks/dashboard_calibration.py [--patients 0 5 11 23 37]
"""

from __future__ import annotations

import argparse

import numpy as np

from seegaan_explore.demo import load_demo
from seegaan_explore.ui.renderer import Renderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[0, 5, 11, 23, 37])
    args = parser.parse_args()
    demo = load_demo()
    renderer = Renderer(**{k: v for k, v in demo.explorer_kwargs().items() if k != "note"})
    print("| attribute | read by | share read on others | stretch | as fitted (median) | calibrated (median) "
          "| calibrated within 0.8-1.25 |")
    print("|---|---|---|---|---|---|---|")
    for attribute in renderer.study.attributes:
        films = {False: [], True: []}
        calibration = None
        for patient in args.patients:
            for calibrate in (False, True):
                result = renderer.render({"attribute": attribute, "patient": patient, "method": None,
                                          "calibrate": calibrate}, attribution=False)
                if result.get("error"):
                    continue
                films[calibrate].append(result["quality"].get("achieved_over_intended", np.nan))
                calibration = result["calibration"] if calibrate else calibration
        if calibration is None:
            print(f"| {attribute} | nothing | | | | | |")
            continue
        within = sum(0.8 <= v <= 1.25 for v in films[True])
        stretch = "none" if calibration.stretch is None else f"{calibration.stretch:.2f}"
        print(f"| {attribute} | {calibration.by} | {calibration.achieved:.2f} | {stretch} | "
              f"{np.nanmedian(films[False]):.2f} | {np.nanmedian(films[True]):.2f} | {within} of {len(films[True])} |")


if __name__ == "__main__":
    main()
