"""Calibrating a film: stretch a direction's steps so that films reach the change they promise.

A direction's steps are in the attribute's units, but a generator draws only part of the change:
a film of +2 SD of NT-proBNP may read, to the oracle or the CNN, as +1 SD. Where something reads the
target on an image, :func:`calibrate` measures that share (achieved over intended) on other patients'
films, never the patient's own (that would make any film look right), and stretches the steps by
its inverse. The stretch is capped: far beyond the cohort's latents a generator draws no longer a
radiograph, and a film stretched that far would promise what it cannot show.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..model.cnn import at_resolution_of
from ..model.oracle import in_table_coding
from .directions import Direction
from .quality import calibrated, slope
from .traversal import traverse

__all__ = ["MAX_STRETCH", "PATIENTS", "Calibration", "FilmReader", "calibrate", "other_patients"]

PATIENTS = 8  # other patients' films a direction is calibrated on

MAX_STRETCH = 4.0  # at most this many times the fitted steps
_BARELY = 1 / 20  # a share below this is no change to calibrate on


@dataclass(frozen=True)
class Calibration:
    """How a film was calibrated: ``achieved`` (the median share of the intended change that
    ``by`` read on ``patients`` other patients' films), the ``stretch`` the steps were multiplied by
    (None: not calibrated) and why, in ``words``."""

    by: str
    patients: int
    achieved: float
    stretch: float | None
    words: str


def calibrate(direction: Direction, rows: Sequence[int], read: Callable[[int, np.ndarray], np.ndarray | None],
              by: str, target: str) -> tuple[Direction, Calibration]:
    """``direction`` stretched so that, on the films of cohort ``rows``, ``by`` reads the intended change.

    ``read(row, amounts)`` decodes patient ``row`` at ``amounts`` (steps in the attribute's units
    on the fitted scale, from the patient's own latent) and returns the target as ``by`` reads it on
    those frames, on the same scale (None where it cannot). Each film spans the dashboard's default
    range, two SDs either side: a generator's response is not linear, so a shorter span would
    calibrate a longer film wrongly."""
    amounts = np.array([-2.0, 0.0, 2.0]) * abs(direction.scale)
    shares = []
    for row in rows:
        measured = read(row, amounts)
        if measured is not None and np.all(np.isfinite(measured)):
            shares.append(slope(amounts, measured))
    if not shares:
        return direction, Calibration(by, 0, math.nan, None, f"Not calibrated: {by} read no other patient's film.")
    achieved = float(np.median(shares))
    if not achieved > _BARELY:
        how = "the wrong way" if achieved < -_BARELY else "barely"
        return direction, Calibration(by, len(shares), achieved, None,
                                      f"Not calibrated: on {len(shares)} other patients' films {by} reads {target} "
                                      f"moving {how} ({achieved:.0%} of the intended change).")
    stretch = min(1 / achieved, MAX_STRETCH)
    capped = " (capped: further out the generator no longer draws a radiograph)" if stretch < 1 / achieved else ""
    words = (f"Calibrated by {by}: on {len(shares)} other patients' films it read {achieved:.0%} of the intended "
             f"change of {target}, so the steps are stretched ×{stretch:.2f}{capped}.")
    return calibrated(direction, 1 / stretch), Calibration(by, len(shares), achieved, stretch, words)


def other_patients(study, attribute: str, patient, match: Sequence[str] = (), n: int = PATIENTS) -> list[int]:
    """``n`` cohort rows, evenly spread, with a value of ``attribute`` (those matched to the patient
    where the direction was fitted on them, ``match``), never ``patient`` itself. The same rows serve
    every patient but the ``n + 1`` spread ones, so that one calibration serves most patients."""
    values = study.values(attribute)
    rows = [r for r in range(len(values)) if np.isfinite(values[r])]
    for column in match if not isinstance(patient, str) else ():
        codes = study.held(column)
        rows = [r for r in rows if codes[r] == codes[patient]]
    return [r for r in rows[:: max(1, len(rows) // (n + 1))][: n + 1] if r != patient][:n]


class FilmReader:
    """``read(row, amounts)`` for :func:`calibrate`: cohort patient ``row`` decoded along
    ``direction`` at ``amounts`` by the study's model, and the target read on the frames by its oracle
    or CNN (:meth:`~seegaan_explore.explore.study.Study.measured`); :attr:`by` names the reader,
    None where nothing reads the target on an image."""

    def __init__(self, study, direction: Direction, attribute: str, log: bool, noise_seed: int = 0,
                 lock: threading.Lock | None = None):
        self.study, self.direction, self.attribute, self.log = study, direction, attribute, log
        self.noise_seed = noise_seed
        self.lock = lock or threading.Lock()
        self.by = None
        if len(study.latents):
            self(0, np.zeros(1))  # one frame tells what reads the target, if anything does

    def __call__(self, row: int, amounts: np.ndarray) -> np.ndarray | None:
        study = self.study
        with self.lock:
            t = traverse(study.model, study.latents[row], self.direction, amounts, in_sd=False,
                         noise_seed=self.noise_seed)
            frames = torch.from_numpy(t.frames)[:, None]
            cnn = study.cnn_predict(frames) if study.cnn is not None else None
            oracle = None if study.oracle is None else in_table_coding(
                study.oracle.predict(at_resolution_of(study.oracle, frames)).reset_index(drop=True), study.table)
        measured, by = study.measured(self.attribute, self.log, cnn_predictions=cnn, oracle_predictions=oracle)
        self.by = by if measured is not None else None
        return measured
