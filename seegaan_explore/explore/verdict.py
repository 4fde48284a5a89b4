"""A verdict in plain words: can this film be read, and if not, why.

A traversal can look convincing and still mislead: the model may not represent the image (its
reconstruction is far worse than the cohort's), the target may have moved the wrong way or barely,
or another attribute may change as much as the target does. The scores say so in numbers
(:mod:`~seegaan_explore.explore.quality`); the verdict says it as a traffic light with its reasons,
so that a clinician knows when not to trust a film before reading it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .quality import CohortPsnr
from .readers import NAME as READER

TRUST, CARE, STOP = "trust", "care", "stop"
HEADLINES = {TRUST: "The film can be trusted.", CARE: "Read this film with care.",
             STOP: "Do not interpret this film."}
BARELY = 0.25  # the target reached less than this share of the intended change
UNEVEN = 0.5  # rank correlation of the measured target with the steps below this: it does not rise steadily
POOR_RECONSTRUCTION_DB = 3.0  # this far below the cohort's 5th percentile PSNR: the model does not represent the image
# reconstructions as far from the originals as a blur over this share of the image's width: a coarse model
# (the bundled model on its phantoms: 1.2%; fine-tuned 200 steps on the Hannover films: 4.2%)
COARSE_BLUR_SHARE = 0.02
LEAKAGE_SHARE = 0.5  # another attribute changes at least this much (in its SDs) per SD the target changes
ENTANGLED_COSINE = 0.7  # an unread attribute whose direction lies this close to the target's may change too
HALF_WAY = 0.5  # or a two-level attribute moves at least this share of the way to its other level


class Leak(NamedTuple):
    """Another attribute's change along a film: its ``label``; ``share``: its SDs per SD of the
    target; ``words``: the change across the film in its own units; ``way``: for a two-level
    attribute, the share of the way from one level to the other across the film (NaN otherwise)."""

    label: str
    share: float
    words: str
    way: float = math.nan

    @property
    def visible(self) -> bool:
        """Whether the film shows it changing: half an SD per SD, or, for a two-level attribute,
        half the way to its other level (a man's film that turns halfway female shows it, whatever
        the share of an SD)."""
        return abs(self.share) >= LEAKAGE_SHARE or self.way >= HALF_WAY


@dataclass(frozen=True)
class Verdict:
    level: str  # TRUST, CARE or STOP
    reasons: tuple[str, ...]

    @property
    def headline(self) -> str:
        return HEADLINES[self.level]


def judge(quality: dict, *, target: str, cohort_psnr: CohortPsnr | tuple[float, float] | None = None,
          leakage: list[tuple[str, float, str]] = (), held: Collection[str] = (),
          cohort: Mapping[str, float] | None = None, estimated: bool | str = False,
          entangled: Mapping[str, float] | None = None, few: str | None = None) -> Verdict:
    """The verdict on one traversal.

    ``quality``: :func:`~seegaan_explore.explore.quality.score`'s scores (with ``measured_by`` when
    something measured the target, and ``target_read`` where only a latent reader read it,
    :mod:`~seegaan_explore.explore.readers`); ``target``: the attribute's name in words; ``cohort_psnr``: the
    cohort's reconstruction PSNR (:class:`~seegaan_explore.explore.quality.CohortPsnr`, or its median and
    5th percentile in dB); ``leakage``: (attribute in words,
    its change in its SDs per SD of the target's change, the change in its own units in words), of
    every other attribute read; ``held``: the attributes held fixed, in words; ``cohort``: how far
    each moves per SD of the target across the cohort's exams with them held
    (:meth:`~seegaan_explore.explore.study.Study.cohort_shares`, by label; 0 where not given). An
    attribute that does not go with the target there counts against the film where the film moves
    it half an SD per SD: heart failure may enlarge the heart on a film of NT-proBNP, as it does in
    the cohort, but age must not change when age is held, nor a man's film turn female when sex
    does not go with NT-proBNP. ``estimated``: the patient's value of the target is not recorded (a
    string: what stands in for it, in words: "an estimate read off the image (64 years) stands in for
    it"); the film's steps are taken from that value, whatever range was asked for. ``entangled``:
    attributes nothing read on the frames whose directions lie close to the target's in the model's
    code (label -> cosine, :data:`ENTANGLED_COSINE` or more): the film may show them too. ``few``: who
    the direction rests on where they are too few to stand for the attribute ("only 5 patients have
    a death date recorded (48 exams)")."""
    stop, care = [], []
    psnr = quality.get("reconstruction_psnr_db")
    cohort_psnr = None if cohort_psnr is None else CohortPsnr(*cohort_psnr)
    if cohort_psnr is not None and cohort_psnr.blur_px >= COARSE_BLUR_SHARE * cohort_psnr.resolution:
        care.append(f"the model draws this cohort coarsely: its reconstructions are as far from the originals as "
                    f"a blur over {cohort_psnr.blur_px:.0f} pixels (of {cohort_psnr.resolution}) would take them "
                    f"(median {cohort_psnr.median:.0f} dB), so what is finer than that cannot change in its films")
    if psnr is not None and cohort_psnr is not None and math.isfinite(psnr):
        median, low = cohort_psnr.median, cohort_psnr.low
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
        read = quality.get("target_read") or {}
        achieved = read.get("achieved_over_intended")
        if achieved is None or not math.isfinite(achieved):
            care.append(f"nothing measured {target} on the frames, so whether they show the intended change is "
                        "unknown")
        elif achieved < BARELY:
            # the latent readers read a film's own change high, so only a shortfall is news
            care.append(f"{target} barely changed even as the {READER} reads it ({achieved:.0%} of the intended "
                        "change), and that reader reads high")
        else:  # named (the calibration note gives its numbers), but it never vouches for a film
            care.append(f"only the {READER} read {target} on this film ({achieved:.0%} of the intended change), "
                        "and that reader reads a change high, so whether the film shows the intended change is unknown")
    cohort = cohort or {}
    leakage = [Leak(*item) for item in leakage]
    for leak in leakage:
        if _leaks(leak, cohort.get(leak.label, 0.0)):
            why = (", though it is held fixed" if leak.label in held else
                   f", though it does not go with {target} across the cohort's exams" if leak.label in cohort
                   else "")
            care.append(f"{leak.label} changes too ({leak.words}){why}: the film shows it as well as {target}")
    if few:
        care.append(f"{few}: the direction may show what sets those patients apart rather than {target}")
    if entangled:
        close = [f"{name} (cosine {cosine:+.2f})" for name, cosine in entangled.items()]
        care.append(f"nothing read {_listed(list(entangled))} on the frames, and in the model's code "
                    f"{'its direction lies' if len(close) == 1 else 'their directions lie'} close to {target}'s: "
                    f"{_listed(close)}; the cohort's exams differ in them together, so the film may show "
                    f"{'it' if len(close) == 1 else 'them'} as well")
    if estimated:
        care.append(f"the patient's {target} is not recorded; "
                    + (estimated if isinstance(estimated, str) else "an estimate read off the image stands in for it"))
    # what moves with the target as across the cohort's exams: named, never counted (a lab's film that
    # replays AP/PA says so whether or not the film is trusted)
    along = [leak.label for leak in leakage if leak.visible and leak.label not in held
             and not _leaks(leak, cohort.get(leak.label, 0.0))]
    if (stop or care) and along:
        care.append(_moving_with(along, f"{target} on this film"))
    level = STOP if stop else CARE if care else TRUST
    return Verdict(level, tuple(stop + care) or (_trusted(target, leakage, held, along),))


def _leaks(leak: Leak, in_cohort: float) -> bool:
    """Whether a film shows a change it should not: a visible one (:attr:`Leak.visible`) of an
    attribute that does not go with the target across the cohort's exams (``in_cohort``, its SDs
    per SD of the target there, below a quarter). One that does, heart size with NT-proBNP, may
    differ between patients as much as it likes: it is named, not counted."""
    return leak.visible and abs(in_cohort) < LEAKAGE_SHARE / 2


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _moving_with(along: list[str], what: str) -> str:
    """``along`` (attributes that move with the target as they do across the cohort's exams) in words."""
    one = len(along) == 1
    return (f"{_listed(along)} {'changes' if one else 'change'} with {what}, as {'it goes' if one else 'they go'} "
            f"with it across the cohort's exams: the film shows {'it' if one else 'them'} as well")


def _trusted(target: str, leakage, held: Collection[str], along: list[str]) -> str:
    """Why a film can be trusted, true to its numbers: the held attributes barely move, and the others
    that move with the target at least half as much, as they do across the cohort's exams (``along``),
    are named."""
    words = f"{target} changes steadily and reaches the intended change"
    kept = [leak.label for leak in leakage if leak.label in held]
    if kept:
        words += (f". Held fixed, {_listed(kept)} {'moves' if len(kept) == 1 else 'move'} less than half as much "
                  "(in cohort SDs)")
    if along:
        words += f". Not held, {_moving_with(along, 'it')}"
    elif leakage and not held:
        words += ", and no other attribute moves as much"
    return words


def leakage_in_words(study, leakage: Mapping[str, float], *, target_sd: float, intended: float,
                     read_by: Mapping[str, str] | None = None) -> list[Leak]:
    """The other attributes' change along a film, as :func:`judge` takes it and the exports show it.

    ``study``: the :class:`~seegaan_explore.explore.study.Study` that words the attributes;
    ``leakage``: each attribute's change per unit of the target's intended change (the quality
    scores' ``leakage``); ``target_sd``: one SD of the target on its fitted scale; ``intended``: the
    target's change across the film on that scale; ``read_by``: the reader that measured each
    attribute, named in its words. Returns every attribute as a :class:`Leak`, largest share first."""
    words_of = []
    for other, slope in leakage.items():
        other_sd = study.sd(other, False)
        if not (other_sd > 0 and target_sd > 0 and math.isfinite(slope)):
            continue
        change = slope * intended
        levels, way = study.levels(other), math.nan
        if levels:  # a two-level attribute moves towards one of its levels, at most all the way
            low, high = sorted(levels)
            way, towards = abs(change) / (high - low), levels[high if change > 0 else low]
            words = f"all the way to {towards}" if way >= 0.995 else f"{way:.0%} of the way towards {towards}"
        else:
            words = f"{'+' if change >= 0 else '−'}{study.info(other).format(abs(change))} across the film"
        if read_by and other in read_by:
            words += f"; read by the {read_by[other]}"
        words_of.append(Leak(study.label(other), slope * target_sd / other_sd, words, way))
    return sorted(words_of, key=lambda item: -abs(item[1]))
