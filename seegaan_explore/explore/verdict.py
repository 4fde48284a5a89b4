"""A verdict in plain words: can this film be read, and if not, why.

A traversal can look convincing and still mislead: the model may not represent the image (its
reconstruction is far worse than the cohort's), the target may have moved the wrong way or barely,
or another attribute may change as much as the target does. The scores say so in numbers
(:mod:`~seegaan_explore.explore.quality`); the verdict says it as a traffic light with its reasons,
so that a clinician knows when not to trust a film before reading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRUST, CARE, STOP = "trust", "care", "stop"
HEADLINES = {TRUST: "The film can be trusted.", CARE: "Read this film with care.",
             STOP: "Do not interpret this film."}
BARELY = 0.25  # the target reached less than this share of the intended change
UNEVEN = 0.5  # rank correlation of the measured target with the steps below this: it does not rise steadily
POOR_RECONSTRUCTION_DB = 3.0  # this far below the cohort's 5th percentile PSNR: the model does not represent the image
LEAKAGE_SHARE = 0.5  # another attribute changes at least this much (in its SDs) per SD the target changes


@dataclass(frozen=True)
class Verdict:
    level: str  # TRUST, CARE or STOP
    reasons: tuple[str, ...]

    @property
    def headline(self) -> str:
        return HEADLINES[self.level]


def judge(quality: dict, *, target: str, cohort_psnr: tuple[float, float] | None = None,
          leakage: list[tuple[str, float, str]] = (), estimated: bool = False) -> Verdict:
    """The verdict on one traversal.

    ``quality``: :func:`~seegaan_explore.explore.quality.score`'s scores (with ``measured_by`` when
    something measured the target); ``target``: the attribute's name in words; ``cohort_psnr``: the
    cohort's (median, 5th percentile) reconstruction PSNR in dB; ``leakage``: (attribute in words,
    its change in its SDs per SD of the target's change, the change in its own units in words);
    ``estimated``: the patient's value of the target was estimated, not recorded."""
    stop, care = [], []
    psnr = quality.get("reconstruction_psnr_db")
    if psnr is not None and cohort_psnr is not None and math.isfinite(psnr):
        median, low = cohort_psnr
        if psnr < low - POOR_RECONSTRUCTION_DB:
            stop.append(f"the model does not represent this image: its reconstruction reaches {psnr:.0f} dB, "
                        f"the cohort's {median:.0f} dB (the films start from the reconstruction)")
        elif psnr < low:
            care.append(f"the reconstruction ({psnr:.0f} dB) is among the cohort's worst (median {median:.0f} dB)")
    if quality.get("measured_by"):
        mono, achieved = quality["monotonicity"], quality["achieved_over_intended"]
        by = quality["measured_by"]
        if mono < 0 or (math.isfinite(achieved) and achieved < 0):
            stop.append(f"{target} moved the wrong way, as {by} reads the frames (rank correlation {mono:+.2f})")
        elif math.isfinite(achieved) and achieved < BARELY:
            care.append(f"{target} barely changed: the frames reach {achieved:.0%} of the intended change, "
                        f"as {by} reads them")
        elif mono < UNEVEN:
            care.append(f"{target} does not rise steadily across the frames (rank correlation {mono:.2f})")
    else:
        care.append(f"nothing measured {target} on the frames, so whether they show the intended change is unknown")
    for name, share, words in leakage:
        if abs(share) >= LEAKAGE_SHARE:
            care.append(f"{name} changes too ({words}): the film shows it as well as {target}")
    if estimated:
        care.append(f"the patient's {target} is not recorded; the film starts from an estimate")
    level = STOP if stop else CARE if care else TRUST
    return Verdict(level, tuple(stop + care) or (f"{target} changes steadily and reaches the intended change, "
                                                   "and no other attribute moves as much",))
