"""Calibrating a film: draw each step where the generator shows the change it promises.

A direction's steps are in the attribute's units, but a generator draws only part of the change,
and not in proportion: a film of +2 SD of NT-proBNP may read, to the CNN, as +0.1 SD, and a film of
+8 SD as +3 SD. Where something reads the target on an image, :func:`calibrate` measures that
response on other patients' films, never the patient's own (that would make any film look right),
at steps out to :data:`MAX_STRETCH` times the default film's ends, and inverts it: each intended step
is drawn at the step whose median reading is the intended change (a ``warp`` on the direction). A
single stretch cannot do this where the response bends: it overshoots the far frames to reach the
near ones. No step is drawn more than :data:`MAX_STRETCH` times further out than it promises: far
beyond the cohort's latents a generator draws no longer a radiograph, and a film stretched that far
would promise what it cannot show.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from sklearn.isotonic import IsotonicRegression

from .directions import Direction
from .quality import slope
from .traversal import stepped

__all__ = ["MAX_STRETCH", "PATIENTS", "STEPS_SD", "Calibration", "FilmReader", "calibrate", "calibrate_for",
           "other_patients", "response_steps"]

PATIENTS = 8  # other patients' films a direction is calibrated on

MAX_STRETCH = 4.0  # no step drawn further out than this many times its promise; the response is measured that far
DEFAULT_END_SD = 2.0  # the dashboard's default film ends at +-2 SD
# where the response is read: as many films as 13 steps reach what they promise, in two thirds of the
# time (docs/results/studies.md, "Does calibrating a film on other patients make it reach what it promises?")
STEPS_SD = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])
_BARELY = 1 / 20  # a share below this is no change to calibrate on
READ_ON_IMAGES = ("the oracle", "the CNN")  # readers whose gain on the cohort's exams is measured


@dataclass(frozen=True)
class Calibration:
    """How a film was calibrated: ``achieved``, the median share of the intended change that ``by``
    read on ``patients`` other patients' default films (-2 to +2 SD) before calibrating; ``stretch``,
    how many times the fitted step the calibrated film draws those ends at (None: not calibrated);
    ``reach``, the share of a 2 SD step its shorter side can show at most (1: all of it); ``gain``,
    the share of a difference between the cohort's own exams that ``by`` reads, which the intended
    change is read against (None: the whole change); and all of it in ``words``."""

    by: str
    patients: int
    achieved: float
    stretch: float | None
    words: str
    reach: float = 1.0
    gain: float | None = None

    @classmethod
    def not_done(cls, why: str, by: str = "") -> Calibration:
        """A film left as fitted, and ``why`` ("Not calibrated: ...")."""
        return cls(by, 0, math.nan, None, f"Not calibrated: {why}")


def calibrate(direction: Direction, rows: Sequence[int], read: Callable[[int, np.ndarray], np.ndarray | None],
              by: str, target: str, gain: float | None = None, *,
              two_level: bool = False) -> tuple[Direction, Calibration]:
    """``direction`` warped so that, on the films of cohort ``rows``, ``by`` reads the intended change
    as it reads that difference between the cohort's own exams: ``gain`` of it
    (:meth:`~seegaan_explore.explore.study.Study.reader_gain`; None: all of it).

    ``read(row, amounts)`` decodes patient ``row`` at ``amounts`` (steps in the attribute's units
    on the fitted scale, from the patient's own latent) and returns the target as ``by`` reads it on
    those frames, on the same scale (None where it cannot). The median response over the rows, made
    monotone, is inverted on each side of the patient. ``two_level``: the target's levels are 0 and 1, so
    what the generator cannot draw is said as a share of the way between them, not in cohort SDs."""
    if direction.path is not None:
        return direction, Calibration.not_done("a path through the cohort's bins is drawn as the bins were.", by)
    steps = response_steps(direction)
    responses = []
    for row in rows:
        measured = read(row, steps)
        if measured is not None and np.all(np.isfinite(measured)):
            responses.append(np.asarray(measured, np.float64) - measured[STEPS_SD == 0][0])
    if not responses:
        return direction, Calibration.not_done(f"{by} read no other patient's film.", by)
    response = np.median(responses, axis=0) / (gain or 1.0)
    default = np.abs(STEPS_SD) <= DEFAULT_END_SD
    achieved = slope(steps[default], response[default])
    moves = max(achieved, slope(steps, response))  # near the patient, or only further out (NT-proBNP)
    against = (f", against the {gain:.0%} of a difference in {target} it reads between the cohort's own exams"
               if gain else "")
    if not moves > _BARELY:
        how = "the wrong way" if moves < -_BARELY else "barely"
        return direction, Calibration(by, len(responses), achieved, None,
                                      f"Not calibrated: on {len(responses)} other patients' films {by} reads {target} "
                                      f"moving {how} ({achieved:.0%} of the intended change{against}).", gain=gain)
    warp = _inverse(steps, response)
    calibrated = dataclasses.replace(direction, warp=warp)
    end = DEFAULT_END_SD * abs(direction.scale)
    drawn = calibrated.drawn_at([-end, end])
    stretch = float(np.mean(np.abs(drawn)) / end)
    reaches = [min(1.0, float(-warp[0, 0] / end)), min(1.0, float(warp[0, -1] / end))]
    sides = [f"towards {word}" for word in direction.ends] if len(direction.ends) == 2 else ["downwards", "upwards"]
    step = (lambda reach: f"{max(reach, 0.0) * end + 0.0:.0%} of the way") if two_level else \
        (lambda reach: f"{max(reach, 0.0) + 0.0:.0%} of a step of {DEFAULT_END_SD:g} cohort SDs")
    short = [f"{step(reach)} {side}" for side, reach in zip(sides, reaches) if reach < 0.95]
    words = (f"Calibrated on {len(responses)} other patients' films, where, as fitted, {by} read {achieved:.0%} "
             f"of the intended change of {target}{against}: each step is now drawn where it reads as intended, the "
             f"ends at {stretch:.2f}× the fitted steps."
             + (f" Even {MAX_STRETCH:g}× further out the films show at most {' and '.join(short)}: the generator "
                "draws no more of it." if short else ""))
    reach = min(reaches)
    return calibrated, Calibration(by, len(responses), achieved, stretch, words, reach, gain)


def response_steps(direction: Direction) -> np.ndarray:
    """Where :func:`calibrate` reads the response along ``direction``: :data:`STEPS_SD` in the
    attribute's units on the fitted scale."""
    return STEPS_SD * abs(direction.scale)


def _inverse(steps: np.ndarray, response: np.ndarray, points: int = 161) -> np.ndarray:
    """[2, points]: intended changes and the steps that draw them, the patient's own step 0 drawing 0.

    The response is made monotone (isotonic), smoothed between the measured steps by a
    shape-preserving cubic (PCHIP: a response that bends is not drawn as straight segments), and read
    backwards, no step further out than :data:`MAX_STRETCH` times its intended change. A side whose
    response does not rise away from 0 keeps no point."""
    rising = IsotonicRegression().fit(steps, response).predict(steps)
    zero = int(np.flatnonzero(steps == 0)[0])
    rising = rising - rising[zero]
    kept_steps, kept = [0.0], [0.0]
    for k in range(zero + 1, len(steps)):  # above: strictly rising readings only
        if rising[k] > kept[-1] + 1e-12:
            kept_steps.append(steps[k]), kept.append(rising[k])
    for k in range(zero - 1, -1, -1):  # below
        if rising[k] < kept[0] - 1e-12:
            kept_steps.insert(0, steps[k]), kept.insert(0, rising[k])
    if len(kept) < 3:  # one side only: the straight segment is all there is to draw
        intended, applied = np.array(kept), np.array(kept_steps)
    else:
        applied = np.linspace(kept_steps[0], kept_steps[-1], points)
        intended = PchipInterpolator(kept_steps, kept)(applied)
    # where the response flattens, no step is drawn more than MAX_STRETCH times further out than intended
    return np.array([intended, np.sign(applied) * np.minimum(np.abs(applied), MAX_STRETCH * np.abs(intended))])


def other_patients(study, attribute: str, patient, match: Sequence[str] = (), n: int = PATIENTS) -> list[int]:
    """``n`` cohort rows with a value of ``attribute`` nearest the patient's own (a generator's response
    depends on where a film starts: a man's film moves little further towards male), ties spread
    evenly over the cohort; those matched to the patient where the direction was fitted on them
    (``match``); never ``patient`` itself. An image without a row is calibrated on rows spread over
    the whole range."""
    values = study.values(attribute)
    rows = [r for r in range(len(values)) if np.isfinite(values[r]) and r != patient]
    for column in match if not isinstance(patient, str) else ():
        codes = study.held(column)
        rows = [r for r in rows if codes[r] == codes[patient]]
    spread = rows[:: max(1, len(rows) // n)]
    if isinstance(patient, str) or not np.isfinite(values[patient]):
        return spread[:n]
    first = set(spread)  # among equally near rows, the evenly spread ones first
    return sorted(rows, key=lambda r: (abs(values[r] - values[patient]), r not in first, r))[:n]


class FilmReader:
    """``read(row, amounts)`` for :func:`calibrate`: cohort patient ``row`` decoded along
    ``direction`` at ``amounts`` by the study's model, and the target read on the frames by its oracle
    or CNN (:meth:`~seegaan_explore.explore.study.Study.measured`); :attr:`by` names the reader,
    None where nothing reads the target on an image. A patient's film is read once: the next
    patient's calibration shares most of its nearest rows."""

    def __init__(self, study, direction: Direction, attribute: str, log: bool, noise_seed: int = 0,
                 lock: threading.Lock | None = None):
        self.study, self.direction, self.attribute, self.log = study, direction, attribute, log
        self.noise_seed = noise_seed
        self.lock = lock or threading.Lock()
        self.by = None
        self.caveat = ""  # what the note adds about the reader
        self._read: dict[tuple[int, bytes], np.ndarray | None] = {}
        if len(study.latents):
            self(0, np.zeros(1))  # one frame tells what reads the target, if anything does

    @property
    def gain(self) -> float | None:
        """The share of a difference between the cohort's exams the oracle or the CNN reads (a latent
        reader's is not measured: None)."""
        return self.study.reader_gain(self.attribute, self.log) if self.by in READ_ON_IMAGES else None

    def __call__(self, row: int, amounts: np.ndarray) -> np.ndarray | None:
        key = (int(row), np.asarray(amounts, np.float64).tobytes())
        if key not in self._read:
            self._read[key] = self._measure(row, amounts)
        return self._read[key]

    def _measure(self, row: int, amounts: np.ndarray) -> np.ndarray | None:
        study = self.study
        ws = stepped(study.model, study.latents[row], self.direction, amounts)[1]  # the frames only, not the start
        measured = by = None
        if self.by in READ_ON_IMAGES:  # known from the first frame; what it reads is kept on disk
            measured, by = study.measured(self.attribute, self.log,
                                          **study.frame_readings(self.by, ws, self.noise_seed, self.lock))
        elif self.by is None:  # the first frame: does the oracle or the CNN read the target?
            with self.lock:
                frames = study.model.decode(ws, noise=self.noise_seed).cpu()
                oracle = study.oracle_predict(frames) if study.oracle is not None else None
                cnn = None if study.cnn is None or (oracle is not None and self.attribute in oracle.columns) \
                    else study.cnn_predict(frames)
            measured, by = study.measured(self.attribute, self.log, cnn_predictions=cnn, oracle_predictions=oracle)
        if measured is None and study.oracle is None:  # a real cohort: its own reader of the attribute, if trusted
            measured, by = self._read_by_latent_reader(ws)
        self.by = by if measured is not None else None
        return measured

    def _read_by_latent_reader(self, ws) -> tuple[np.ndarray | None, str]:
        """The target as the cohort's latent reader reads it on the frames decoded from ``ws`` and
        encoded again (:mod:`~seegaan_explore.explore.readers`), where one is trusted. It reads a
        film's change high, so a film calibrated by it is stretched too little rather than too far."""
        from .readers import NAME, on_frames, readers_of
        from .study import on_scale

        reader = readers_of(self.study, [self.attribute])[self.attribute]
        if not reader.trusted:
            return None, reader.describe()
        values = reader.read(self.study.frame_latents(ws, self.noise_seed, self.lock))
        if self.log and np.any(values <= 0):
            return None, f"the {NAME} read values of 0 or below, which a log scale cannot show"
        self.caveat = "That reader reads a change high, so the film may show less than promised."
        return on_scale(values, self.log, self.attribute), on_frames(reader.describe())


def calibrate_for(study, direction: Direction, attribute: str, log: bool, patient, match: Sequence[str] = (), *,
                  reader: FilmReader | None = None, noise_seed: int = 0) -> tuple[Direction, Calibration | None]:
    """``direction`` calibrated for ``patient`` (a cohort row, or an image's key) on the films of the
    cohort patients nearest it in ``attribute`` (:func:`other_patients`), read by ``reader`` (default
    a new :class:`FilmReader`); as it is, with None, where nothing reads the target on an image."""
    if study.model is None:
        raise ValueError("calibrating decodes other patients' films: build the Study with the model "
                         "(Study(..., model=model) or Study.of(latents, model=model))")
    rows = other_patients(study, attribute, patient, match)
    reader = reader or FilmReader(study, direction, attribute, log, noise_seed)
    if not rows or reader.by is None:
        return direction, None
    calibrated, calibration = calibrate(direction, rows, reader, reader.by, study.label(attribute), reader.gain,
                                        two_level=study.levels(attribute) is not None)
    if reader.caveat:
        calibration = dataclasses.replace(calibration, words=f"{calibration.words} {reader.caveat}")
    return calibrated, calibration
