"""Does calibrating a film on other patients make it reach what it promises? The dashboard's question.

For every attribute of the bundled demo, the dashboard's default film (what choosing the attribute
asks for: mean shift, -2 to +2 SD, its dictionary's scale and held attributes) of ``--patients``
cohort patients is rendered as fitted and calibrated (``Renderer.render(..., calibrate=True)``, the
dashboard's default: each step drawn where the median response the oracle or the CNN reads on the
films of the 8 patients nearest in the attribute is the intended change, against the reader's gain,
no step more than 4x further out), and each film's achieved over intended change is read by the same
reader on the patient's own frames. Target (issue 18): between 0.8 and 1.25. The columns "share
read on others", "ends drawn" and "reach" are medians over the patients' calibrations; "verdicts"
counts what the dashboard says of the calibrated films (trusted / with care / not to interpret),
and "why not trusted" its most frequent reasons.

    python benchmarks/dashboard_calibration.py [--patients 0 3 5 8 ...]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import numpy as np

from seegaan_explore.demo import load_demo
from seegaan_explore.explore.verdict import CARE, STOP, TRUST
from seegaan_explore.ui.explorer import Explorer


def reason_in_short(reason: str) -> str:
    """"sex changes too (all the way to female), though ..." -> "sex changes too"; the others up to
    their colon, without what they say in brackets."""
    moved = re.match(r"(.+?) changes too", reason)
    return f"{moved[1]} changes too" if moved else re.sub(r" \([^)]*\)", "", reason).split(":")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+",
                        default=[0, 3, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 37, 40])
    args = parser.parse_args()
    demo = load_demo()
    # the dashboard only for the defaults choosing an attribute sets; no films prepared behind the benchmark's back
    dashboard = Explorer(**demo.explorer_kwargs(), prepare_ahead=False)
    renderer = dashboard.renderer
    print("| attribute | read by | share read on others | ends drawn | reach | as fitted (median) "
          "| calibrated (median) | within 0.8-1.25 as fitted | calibrated | verdicts | why not trusted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for attribute in renderer.study.attributes:
        films = {False: [], True: []}
        calibrations, verdicts, reasons = [], Counter(), Counter()
        for patient in args.patients:
            for calibrate in (False, True):
                result = renderer.render({**dashboard.args_for(attribute), "patient": patient, "method": None,
                                          "calibrate": calibrate}, attribution=False)
                if result.get("error"):
                    continue
                films[calibrate].append(result["quality"].get("achieved_over_intended", np.nan))
                if calibrate:
                    verdicts[result["verdict"].level] += 1
                    if result["verdict"].level != TRUST:
                        reasons.update(reason_in_short(r) for r in result["verdict"].reasons)
                    if result["calibration"].stretch is not None:
                        calibrations.append(result["calibration"])
        said = f"{verdicts[TRUST]} / {verdicts[CARE]} / {verdicts[STOP]}"
        why = "; ".join(f"{reason} ×{n}" for reason, n in reasons.most_common(2))
        if not calibrations:
            print(f"| {attribute} | not calibrated | | | | {np.nanmedian(films[False]):.2f} | | | | {said} | {why} |")
            continue
        within = {c: sum(0.8 <= v <= 1.25 for v in films[c]) for c in (False, True)}
        medians = [np.median([getattr(c, name) for c in calibrations]) for name in ("achieved", "stretch", "reach")]
        print(f"| {attribute} | {calibrations[0].by} | {medians[0]:.2f} | ×{medians[1]:.2f} "
              f"| {max(medians[2], 0) + 0:.0%} "
              f"| {np.nanmedian(films[False]):.2f} | {np.nanmedian(films[True]):.2f} | {within[False]} of "
              f"{len(films[False])} | {within[True]} of {len(films[True])} | {said} | {why} |")
    dashboard.close()


if __name__ == "__main__":
    main()
