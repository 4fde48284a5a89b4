"""What a traversal's exports say about it besides its frames: which end is +, and how far to trust it.

A GIF or a PNG panel travels without the dashboard that made it. :class:`FilmReport` carries with
it, in words, the two ends of the direction ("- = female, + = male"), the verdict
(:mod:`~seegaan_explore.explore.verdict`), and the quality scores behind it
(:mod:`~seegaan_explore.explore.quality`): the reconstruction's PSNR, how far the target moved and
as what measured it, and how much every other attribute changed, with the reader that measured
each (the phantoms' oracle, or a real cohort's latent readers, :mod:`~seegaan_explore.explore.readers`).
The exporters (:mod:`~seegaan_explore.explore.export`) write its :meth:`~FilmReport.lines`
into the PNG panel and the HTML report, and its JSON into the GIF's comment, the PNG's text chunk
and the traversal archive. :func:`score_film` scores a traversal and judges it, for the dashboard and
``seegaan-explore traverse`` alike; :func:`report_on` words it as a report in the same call.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FilmReport", "Readings", "ends_line", "ends_of", "report_on", "score_film"]

_SCALARS = ("reconstruction_psnr_db", "monotonicity", "achieved_over_intended", "calibrated_scale", "proximity",
            "measured_by", "not_measured")


def ends_of(direction, study=None) -> tuple[str, str]:
    """What - and + mean along ``direction``, in words: the ends it records, else the study's words
    for its attribute, else "lower <attribute>" and "higher <attribute>"."""
    if len(direction.ends) == 2:
        return direction.ends[0], direction.ends[1]
    from .attributes import split_scaled_name

    name, log = split_scaled_name(direction.attribute)
    if study is not None and name in study.attributes:
        return study.ends(name, log)
    return f"lower {direction.attribute}", f"higher {direction.attribute}"


def ends_line(ends: tuple[str, str]) -> str:
    """Which end is which, in one line: "− = female, + = male"."""
    return f"− = {ends[0]}, + = {ends[1]}"


@dataclass(frozen=True)
class Readings:
    """What a reader (the CNN) read on each frame, as an export shows it: ``values`` in the units
    ``label`` names ("NT-proBNP as the CNN reads it", in pg/mL), each in ``words`` ("3,340 pg/mL");
    ``log``: drawn on a log axis."""

    label: str
    values: np.ndarray
    words: tuple[str, ...]
    log: bool = False

    @classmethod
    def of(cls, predictions, label: str = "prediction") -> Readings | None:
        """``predictions`` as they are (a :class:`Readings`, or None), else plain numbers under ``label``."""
        if predictions is None or isinstance(predictions, Readings):
            return predictions
        values = np.asarray(predictions, np.float64).ravel()
        return cls(label, values, tuple(f"{v:.3g}" for v in values))


def _label(study, name: str) -> str:
    """The attribute in the study's words, where the study knows it."""
    return study.label(name) if study is not None and name in study.attributes else name


def _number(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


@dataclass(frozen=True)
class FilmReport:
    """A traversal's ends and scores in words.

    ``target``: the attribute in words; ``ends``: what - and + mean; ``scores``: the quality
    scores (:func:`~seegaan_explore.explore.quality.score`, with ``measured_by``); ``leakage``: the
    other attributes' change as :func:`~seegaan_explore.explore.verdict.leakage_in_words` gives it;
    ``verdict``: (level, headline, reasons) of :func:`~seegaan_explore.explore.verdict.judge`;
    ``calibration``: how the steps were calibrated, in words ("": drawn as fitted); ``labels``: the
    scores' column names in words, where a study gave them (``crp_val``: "CRP")."""

    target: str
    ends: tuple[str, str]
    scores: dict
    leakage: tuple[tuple[str, float, str], ...] = ()
    verdict: tuple[str, str, tuple[str, ...]] | None = None
    calibration: str = ""
    labels: dict = field(default_factory=dict)

    @classmethod
    def of(cls, traversal, scores: dict, *, study=None, verdict=None, leakage=(), target: str | None = None,
           calibration: str = "") -> FilmReport:
        """The report on ``traversal``: its ends (:func:`ends_of`), the attribute as ``study`` names
        it (or ``target``), and what is JSON-safe of ``scores``; ``verdict`` a
        :class:`~seegaan_explore.explore.verdict.Verdict`."""
        from .attributes import split_scaled_name

        name, _ = split_scaled_name(traversal.direction.attribute)
        if target is None:
            target = _label(study, name)
        kept = {k: (scores[k] if isinstance(scores[k], str) else _number(scores[k]))
                for k in _SCALARS if scores.get(k) is not None}
        for key in ("leakage", "leakage_read_by", "leakage_unread", "target_read"):
            if scores.get(key):
                kept[key] = {n: (v if isinstance(v, str) else _number(v)) for n, v in scores[key].items()}
        verdict = None if verdict is None else (verdict.level, verdict.headline, tuple(verdict.reasons))
        named = {n for key in ("leakage", "leakage_unread") for n in kept.get(key, {})}
        labels = {n: _label(study, n) for n in sorted(named) if study is not None and _label(study, n) != n}
        return cls(target, ends_of(traversal.direction, study), kept,
                   tuple((label, float(share), words) for label, share, words, *_ in leakage), verdict, calibration,
                   labels)

    @classmethod
    def of_render(cls, result: dict, study=None) -> FilmReport:
        """The report on what :meth:`~seegaan_explore.ui.renderer.Renderer.render` returned
        (``study``: the renderer's, for the ends in its words)."""
        calibration = result.get("calibration")
        return cls.of(result["traversal"], result["quality"], study=study, verdict=result.get("verdict"),
                      leakage=result.get("leakage", ()), target=result.get("label"),
                      calibration=calibration.words if calibration is not None else "")

    # ------------------------------------------------------------------ in words

    def lines(self) -> list[str]:
        """The report as lines of text, most important first: the ends, the verdict and its reasons,
        the reconstruction, the target's change, every other attribute's change and what was not read."""
        s = self.scores
        lines = [ends_line(self.ends)]
        if self.verdict is not None:
            _, headline, reasons = self.verdict
            lines += [headline, *[f"- {reason}" for reason in reasons]]
        if self.calibration:
            lines.append(self.calibration)
        if s.get("reconstruction_psnr_db") is not None:
            lines.append(f"reconstruction: {s['reconstruction_psnr_db']:.1f} dB PSNR against the original")
        if s.get("measured_by"):
            achieved, mono = s.get("achieved_over_intended"), s.get("monotonicity")
            reach = f"reached {achieved:.0%} of the intended change" if achieved is not None else "moved"
            rank = f" (rank correlation with the steps {mono:+.2f})" if mono is not None else ""
            lines.append(f"{self.target}: {reach}{rank}, as {s['measured_by']} reads it")
        else:
            lines.append(f"{self.target}: not measured on the frames"
                         + (f" ({s['not_measured']})" if s.get("not_measured") else ""))
        read = s.get("target_read")
        if read and read.get("achieved_over_intended") is not None:
            lines.append(f"{self.target}, as {read['by']} reads it: {read['achieved_over_intended']:.0%} of the "
                         "intended change (read high: on the phantoms this reading was above the oracle's for "
                         "every attribute)")
        for label, share, words in self.leakage:
            lines.append(f"{label}: {share:+.2f} SD per SD of {self.target} ({words})")
        if not self.leakage and s.get("leakage"):
            by = s.get("leakage_read_by", {})
            lines += [f"{self.labels.get(name, name)}: {slope:+.3g} per unit of {self.target}"
                      + (f" (read by the {by[name]})" if name in by else "")
                      for name, slope in s["leakage"].items() if slope is not None]
        if s.get("leakage_unread"):
            unread = ", ".join(self.labels.get(name, name) for name in s["leakage_unread"])
            lines.append(f"not read (no trusted reader): {unread}")
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())

    # ------------------------------------------------------------------ as a file keeps it

    def to_json(self) -> str:
        return json.dumps({"format": "seegaan-explore-film-report/1", "target": self.target, "ends": list(self.ends),
                           "scores": self.scores, "leakage": [list(x) for x in self.leakage],
                           "verdict": None if self.verdict is None else
                           {"level": self.verdict[0], "headline": self.verdict[1], "reasons": list(self.verdict[2])},
                           "calibration": self.calibration, "labels": self.labels}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> FilmReport:
        data = json.loads(text)
        verdict = data.get("verdict")
        return cls(data["target"], tuple(data["ends"]), data["scores"],
                   tuple((label, float(share), words) for label, share, words in data.get("leakage", ())),
                   None if verdict is None else (verdict["level"], verdict["headline"], tuple(verdict["reasons"])),
                   data.get("calibration", ""),  # reports written before calibration was recorded have none
                   data.get("labels", {}))


def score_film(traversal, *, study=None, model=None, readers=None, measured=None, measured_by: str | None = None,
               not_measured: str | None = None, others: dict | None = None, original=None,
               cohort_psnr: tuple | None = None, target: str | None = None, log: bool = False,
               held=None, estimated: bool | str = False, gain: float | None = None) -> tuple[dict, object, list]:
    """A traversal's quality scores, its verdict and the other attributes' change in words: one rule
    for the dashboard and ``traverse``.

    ``measured``: the target on each frame (fitted scale) by ``measured_by``, if anything measured
    it (else ``not_measured`` says why). ``others``: every other attribute read on each frame (the
    phantoms' oracle); without them, and with ``readers``
    (:func:`~seegaan_explore.explore.readers.readers_of` of ``study``) and the ``model``, the frames
    are re-encoded and read: every other attribute for the leakage, and the target as its reader
    reads it (``target_read``, read high). ``original``: the patient's image, for the
    reconstruction's PSNR; ``cohort_psnr``: the cohort's PSNR it is judged against
    (:func:`~seegaan_explore.explore.quality.cohort_psnr`); ``target``/``log``: the attribute where it is
    not the direction's (a Latent Shift's CNN prediction, a renderer's column); ``held``: the attributes
    held fixed (default the direction's confounders and matched columns); ``estimated``: the patient's
    value is not recorded (a string: where the film starts instead, in words); ``gain``: the share of
    a difference between the cohort's own exams that ``measured_by`` reads: the film's achieved change
    is read against it, as its calibration was. By default the ``study``'s
    (:meth:`~seegaan_explore.explore.study.Study.reader_gain`) where the oracle or the CNN measured the
    frames, so that a script judges a film as the dashboard does; 1 reads the whole change."""
    from . import quality
    from .attributes import split_scaled_name
    from .calibration import READ_ON_IMAGES
    from .verdict import judge, leakage_in_words

    direction = traversal.direction
    name, log = (target, log) if target is not None else split_scaled_name(direction.attribute)
    if gain is None and study is not None and measured is not None and measured_by in READ_ON_IMAGES:
        gain = study.reader_gain(name, log)
    reading = None
    if others is None and readers is not None and model is not None:
        from .readers import read_film

        reading = read_film(model, traversal.frames, readers)
        others = reading.others(name)
    if measured is not None and len(traversal.amounts) < 3:
        measured, not_measured = None, "3 or more frames are needed to score a traversal"
    scores = quality.score(traversal, measured, others=others, original=original)
    scores.update(reading.scores(traversal, name, log) if reading else {})
    if measured is not None and gain:
        scores.update(achieved_over_intended=scores["achieved_over_intended"] / gain, reader_gain=gain)
    scores.update(measured_by=measured_by if measured is not None else None,
                  **({"not_measured": not_measured} if measured is None and not_measured else {}))
    label = _label(study, name)
    leakage, cohort = [], {}
    if held is None:
        held = set(direction.confounders) | set(direction.diagnostics.get("matched", {}))
    if study is not None and scores.get("leakage"):
        target_sd = abs(direction.scale) if math.isfinite(direction.scale) else math.nan
        intended = float(np.ptp(traversal.amounts)) * (abs(direction.scale) if traversal.in_sd else 1.0)
        leakage = leakage_in_words(study, scores["leakage"], target_sd=target_sd, intended=intended,
                                   read_by=scores.get("leakage_read_by"))
        if name in study.attributes:
            shares = study.cohort_shares(name, log, list(scores["leakage"]), sorted(held))
            cohort = {_label(study, c): share for c, share in shares.items()}
    entangled = _entangled(study, direction, name, set(scores.get("leakage") or ()) | set(held))
    verdict = judge(scores, target=label, cohort_psnr=cohort_psnr, leakage=leakage,
                    held={_label(study, c) for c in held}, cohort=cohort, estimated=estimated, entangled=entangled,
                    few=_few_patients(study, name, label))
    return scores, verdict, leakage


def _few_patients(study, name: str, label: str) -> str | None:
    """Who a cohort direction rests on, in words, where fewer than
    :data:`~seegaan_explore.explore.readers.MIN_PATIENTS` patients have a value (of a two-level
    attribute: have its rarer level; :meth:`~seegaan_explore.explore.study.Study.patients_behind`);
    None where enough do."""
    from .readers import MIN_PATIENTS

    if study is None or name not in study.table.columns and name not in study.contrasts:
        return None
    patients, exams, level = study.patients_behind(name)
    if patients >= MIN_PATIENTS:
        return None
    who = f"have {label} recorded" if level is None else f"are “{study.levels(name)[level]}”"
    return f"only {patients} patients {who} ({exams} exams)"


def _entangled(study, direction, name: str, accounted: set[str]) -> dict[str, float]:
    """The attributes nothing read on the film nor held whose directions lie within
    :data:`~seegaan_explore.explore.verdict.ENTANGLED_COSINE` of the film's, by label (a lab's film that
    may replay another lab no reader can read)."""
    from .study import CNN_PREDICTION
    from .verdict import ENTANGLED_COSINE

    if study is None or name not in study.attributes or direction.path is not None:
        return {}
    own = study.column_of(name)
    accounted = {study.column_of(a) for a in accounted if a in study.attributes or a in study.table.columns}
    if study.cnn is not None:  # the CNN reads every frame: its prediction and the column it predicts
        accounted |= {CNN_PREDICTION, getattr(getattr(study.cnn, "config", None), "attribute", None)}
    return {_label(study, other): cosine for other, cosine in study.cosines(direction).items()
            if abs(cosine) >= ENTANGLED_COSINE and study.column_of(other) not in accounted | {own}}


def report_on(traversal, *, study=None, calibration: str = "", target: str | None = None,
              **scoring) -> tuple[dict, FilmReport]:
    """A traversal's quality scores and its :class:`FilmReport` (with the verdict), as the dashboard
    makes them (:func:`score_film`, whose arguments it takes); ``calibration``: how the steps were
    calibrated, in words."""
    scores, verdict, leakage = score_film(traversal, study=study, target=target, **scoring)
    return scores, FilmReport.of(traversal, scores, study=study, verdict=verdict, leakage=leakage,
                                 target=None if target is None else _label(study, target), calibration=calibration)
