"""A cohort under study: the one home for what every front door asks of an encoded cohort.

The command line, the dashboard's renderer, ``evaluate`` and the benchmark studies ask the same
questions: which columns are attributes and in what units, what is this patient's value (or, for
an image without one, its estimate), which direction does this patient traverse (the confounders
held, the exams like it matched, a spline's slope over the range the traversal covers), and what
measures the target on a frame. :class:`Study` answers them once: what the table's columns mean it
takes from :class:`~seegaan_explore.explore.attribute_table.AttributeTable`, and callers that hold
plain arrays (``evaluate`` on the phantoms' factors) use
:func:`~seegaan_explore.explore.directions.direction_for` as it does. It is close to 500 lines
because it is that one home: split, the rules would drift apart again between the front doors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..model.cnn import at_resolution_of
from ..model.oracle import in_table_coding, reversed_factors
from .attribute_table import AttributeTable
from .attributes import CNN_PREDICTION, cnn_label, from_scale, on_scale, scaled_name, split_scaled_name
from .attribution import module_device
from .dictionary import AttributeInfo
from .directions import (
    MATCHABLE,
    SPLINE,
    Direction,
    cosine_matrix,
    direction_for,
    matched_rows,
    traversal_range,
)
from .latent_shift import latent_shift
from .latents import model_digest
from .memo import array_digest, decoder_digest, remembered, weights_digest

# what the other modules take from here, some defined where they belong and kept here for them
__all__ = ["CNN_PREDICTION", "COHORT_MEDIAN", "ESTIMATED", "LATENT_SHIFT", "MATCHABLE", "SPLINE", "Lru", "Study",
           "direction_for", "from_scale", "latent_array", "measured", "on_scale", "traversal_range"]

GAIN_EXAMS = 256  # exams a reader's gain is measured on (evenly spread), once per study
LATENT_SHIFT = "latent_shift"  # a per-patient direction (the CNN's gradient through the generator), not a cohort fit
# where a film of a patient without a recorded value starts (Study.estimate), in the words the page shows
ESTIMATED = "not recorded: estimated from the image"
COHORT_MEDIAN = "not recorded, nor read reliably from an image: the cohort's median"


# --------------------------------------------------------------------------- pure functions

def measured(attribute: str, log: bool, cnn_config=None, *, cnn_predictions=None, oracle_predictions=None,
             name: str | None = None):
    """The target as measured on each frame, on the fitted scale, and by what; ``(None, reason)``
    when nothing measures it (``name``: the attribute in words, for the reason). The oracle reads its
    factors; the CNN (``cnn_config`` describes it) reads its own prediction, and its target where it
    regresses it."""
    if oracle_predictions is not None and attribute in oracle_predictions.columns:
        values, by = oracle_predictions[attribute].to_numpy(np.float64), "the oracle"
    elif cnn_predictions is not None and attribute == CNN_PREDICTION:
        values, by = np.asarray(cnn_predictions, np.float64), "the CNN"
    elif (cnn_predictions is not None and getattr(cnn_config, "attribute", None) == attribute
          and getattr(cnn_config, "task", "regression") == "regression"):
        predicted = np.asarray(cnn_predictions, np.float64)
        values, by = (np.exp(predicted) if cnn_config.log_transform else predicted), "the CNN"
    else:
        return None, f"nothing measures {name or attribute} on an image (no oracle column or CNN for it)"
    if log and np.any(values <= 0):
        return None, f"{by} measured values <= 0 on some frames, which a log scale cannot show"
    return on_scale(values, log, attribute), by


class Lru(OrderedDict):
    """A small least-recently-used cache; its own lock, so that readers never wait for a computation."""

    def __init__(self, size: int):
        super().__init__()
        self.size, self.lock = size, threading.Lock()

    def put(self, key, value):
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)
        return value

    def hit(self, key):
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        return None


def latent_array(latents) -> np.ndarray:
    """A cohort's latents as float32 [N, w_dim], from an array, a tensor or the
    :class:`~seegaan_explore.explore.latents.Latents` that ``encode_cohort`` returns; a row that is not
    finite (an image the encoder failed on) is refused by name, before any direction is fitted on it."""
    ids = getattr(latents, "ids", None)
    latents = getattr(latents, "latents", latents)
    array = latents.detach().cpu().numpy() if torch.is_tensor(latents) else np.asarray(latents)
    if array.ndim != 2:
        raise ValueError(f"latents must be [N, w_dim], got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        named = [f"{ids[k]!r}" if ids is not None else f"row {k}" for k in bad[:5]]
        raise ValueError(f"{bad.size} latent(s) hold NaN or infinity ({', '.join(named)}"
                         f"{', ...' if bad.size > 5 else ''}): encode those images again or leave them out")
    return array if array.dtype == np.float32 else array.astype(np.float32)


# --------------------------------------------------------------------------- the study

class Study(AttributeTable):
    """An encoded cohort under study.

    ``latents`` [N, w_dim] are the encodings, row ``i`` belonging to ``table`` row ``i``; ``images``
    [N, R, R] in [-1, 1] (optional; or a function that loads them when first needed) the originals
    the CNN reads; ``cnn`` a module predicting one value
    per image; ``oracle`` an object whose ``predict(images)`` returns a DataFrame, one column per
    factor it reads; ``model`` the autoencoder (for Latent Shift, and for the CNN on reconstructions
    when no images are given). ``attributes`` restricts the columns offered; a ``dictionary``
    (:mod:`~seegaan_explore.explore.dictionary`) offers the columns it describes, in its words.
    ``cache_dir`` keeps what the readers read of the cohort's exams (:mod:`~seegaan_explore.explore.memo`;
    None: the package's cache).
    """

    def __init__(self, latents, table: pd.DataFrame, *, model=None, cnn=None, oracle=None, images=None,
                 attributes: Sequence[str] | None = None, dictionary: Mapping[str, AttributeInfo] | None = None,
                 cache_dir=None):
        latents = latent_array(latents)
        if len(table) != len(latents):
            raise ValueError(f"the table has {len(table)} rows but there are {len(latents)} latents")
        self.latents = latents
        self.model, self.cnn, self.oracle, self._images = model, cnn, oracle, images
        self.cache_dir = cache_dir
        super().__init__(table, attributes=attributes, dictionary=dictionary,
                         extra=[CNN_PREDICTION] if cnn is not None else [])
        self._once = threading.Lock()  # the cohort-wide computations below run once, whoever asks first
        self._cohort_predictions: np.ndarray | None = None
        self._reversed: frozenset[str] | None = None
        self._embedding: tuple[np.ndarray, np.ndarray] | None = None
        self._directions = Lru(64)
        self._gains: dict[tuple[str, bool], float | None] = {}
        self._behind: dict[str, tuple[int, int, float | None]] = {}
        self._exams: tuple[np.ndarray, dict] | None = None
        self._digests: dict[str, str | None] = {}

    @classmethod
    def of(cls, latents, **options) -> Study:
        """A study of an encoded cohort (:class:`~seegaan_explore.explore.latents.Latents`), with the
        ``model``, ``cnn``, ``images`` and any other option of the constructor."""
        return cls(latents, latents.table, **options)

    @property
    def images(self):
        if callable(self._images):
            self._images = self._images()
        return self._images

    # ------------------------------------------------------------------ what the columns mean

    @property
    def default_attribute(self) -> str:
        trained_on = getattr(getattr(self.cnn, "config", None), "attribute", None)
        return trained_on if trained_on in self.attributes else self.attributes[0]

    def info(self, name: str) -> AttributeInfo:
        if name == CNN_PREDICTION and name not in self.dictionary:
            return AttributeInfo(name, self.label(name))
        return super().info(name)

    def label(self, name: str) -> str:
        if name == CNN_PREDICTION and name not in self.dictionary:
            reads_as, _ = self.shown_as(name)
            if reads_as != name:
                return f"{self.label(reads_as)} as the CNN reads it"
            target = getattr(getattr(self.cnn, "config", None), "attribute", None)
            return cnn_label(getattr(self.cnn, "config", None),
                             self.label(target) if target in self.attributes else None)
        return super().label(name)

    def shown_as(self, name: str) -> tuple[str, bool]:
        """The attribute in whose units ``name``'s values are shown, and whether the values are its
        logarithm: the CNN's prediction of ln NT-proBNP is shown as NT-proBNP in pg/mL (where the
        dictionary does not describe the prediction itself); any other attribute as itself."""
        config = getattr(self.cnn, "config", None)
        target = getattr(config, "attribute", None)
        if (name != CNN_PREDICTION or name in self.dictionary or target not in self.attributes
                or getattr(config, "task", "regression") != "regression"):
            return name, False
        return target, bool(getattr(config, "log_transform", False))

    def to_shown(self, name: str, values) -> np.ndarray:
        """``name``'s values in the units the screen shows them in (:meth:`shown_as`)."""
        values = np.asarray(values, np.float64)
        return np.exp(values) if self.shown_as(name)[1] else values

    def from_shown(self, name: str, values) -> np.ndarray:
        """The inverse of :meth:`to_shown`: values typed in the shown units, in ``name``'s own."""
        values = np.asarray(values, np.float64)
        if not self.shown_as(name)[1]:
            return values
        with np.errstate(invalid="ignore", divide="ignore"):  # no logarithm of a value <= 0: NaN, refused later
            return np.log(values)

    def format(self, name: str, value: float) -> str:
        """A value as a clinician reads it (:meth:`AttributeTable.format`); the CNN's prediction in
        its target's units ("77 pg/mL", not its logarithm)."""
        reads_as, _ = self.shown_as(name)
        if reads_as != name:
            return self.format(reads_as, float(self.to_shown(name, value)))
        return super().format(name, value)

    def values(self, name: str) -> np.ndarray:
        """The attribute for every cohort row in its own units (:meth:`AttributeTable.values`), or
        the CNN's prediction on every image."""
        return self.cohort_predictions() if self.check(name) == CNN_PREDICTION else super().values(name)

    # ------------------------------------------------------------------ what the CNN and the oracle read

    def cnn_predict(self, images: torch.Tensor) -> np.ndarray:
        """CNN output on images [B, 1, R, R] in the CNN's own scale (e.g. ln NT-proBNP)."""
        x = at_resolution_of(self.cnn, images.float())
        if hasattr(self.cnn, "predict"):
            return self.cnn.predict(x).cpu().numpy().astype(np.float64)
        with torch.no_grad():
            self.cnn.eval()
            return self.cnn(x.to(module_device(self.cnn))).reshape(len(x)).cpu().numpy().astype(np.float64)

    def cnn_readings(self, predictions):
        """The CNN's ``predictions`` (its own scale) as a clinician reads them
        (:class:`~seegaan_explore.explore.report.Readings`): where it predicts a column of the cohort,
        "NT-proBNP as the CNN reads it" in that column's units ("3,340 pg/mL"); else as numbers."""
        from .report import Readings

        config = getattr(self.cnn, "config", None)
        target, logged = getattr(config, "attribute", None), bool(getattr(config, "log_transform", False))
        values = np.asarray(predictions, np.float64).ravel()
        if target not in self.attributes:
            return Readings.of(values, self.label(CNN_PREDICTION))
        values = np.exp(values) if logged else values
        return Readings(f"{self.label(target)} as the CNN reads it", values,
                        tuple(self.format(target, float(v)) for v in values), logged)

    def oracle_predict(self, images: torch.Tensor) -> pd.DataFrame:
        """The oracle's readings of images [B, 1, R, R], a row per image, each two-level factor in the
        table's coding (:func:`~seegaan_explore.model.oracle.in_table_coding`)."""
        return self._in_table_coding(self._oracle_readings(images))

    def _oracle_readings(self, images: torch.Tensor) -> pd.DataFrame:
        readings = self.oracle.predict(at_resolution_of(self.oracle, images.float()))
        if len(readings) != len(images):
            raise ValueError(f"the oracle returned {len(readings)} rows for {len(images)} images")
        return readings

    def _in_table_coding(self, readings: pd.DataFrame) -> pd.DataFrame:
        if self._reversed is None:  # parsing the table's columns: once (computing it twice is harmless)
            self._reversed = reversed_factors(self.table)
        return in_table_coding(readings.reset_index(drop=True), self._reversed)

    def embedding(self) -> tuple[np.ndarray, np.ndarray]:
        """The latents on their first two principal axes [N, 2] (the cohort map), and the variance
        share of each axis; computed once (twice is harmless: no lock that the CNN's pass may hold)."""
        if self._embedding is None:
            centred = torch.from_numpy(self.latents) - torch.from_numpy(self.latents).mean(0)
            _, singular, axes = torch.linalg.svd(centred, full_matrices=False)
            share = (singular.square() / singular.square().sum())[:2].numpy()
            self._embedding = ((centred @ axes[:2].T).numpy(), share)
        return self._embedding

    def cohort_predictions(self) -> np.ndarray:
        """The CNN on every cohort image (on the reconstructions where no images were given); computed once."""
        with self._once:
            if self._cohort_predictions is None:
                if self.cnn is None:
                    raise ValueError(f"no CNN was given, so there is no {CNN_PREDICTION}")
                chunks = []
                for start in range(0, len(self.latents), 64):
                    if self.images is not None:
                        batch = torch.as_tensor(np.asarray(self.images[start:start + 64], np.float32))[:, None]
                    else:
                        batch = self.model.decode(torch.from_numpy(self.latents[start:start + 64])).cpu()
                    chunks.append(self.cnn_predict(batch))
                self._cohort_predictions = np.concatenate(chunks)
            return self._cohort_predictions

    @property
    def has_cohort_predictions(self) -> bool:
        return self._cohort_predictions is not None

    def patients_behind(self, attribute: str) -> tuple[int, int, float | None]:
        """(patients, exams, level) a direction of ``attribute`` rests on (once per attribute): the
        distinct patients with a value and their exams; of a two-level attribute, those with its
        rarer level, whose code ``level`` is (None otherwise). Without a patient column each exam
        counts as its own patient."""
        if attribute not in self._behind:
            from .readers import patient_groups

            values = self.values(attribute)
            rows = np.arange(len(values)).astype(object)
            groups = patient_groups(self.table)
            patients = rows if groups is None else np.where(pd.isna(groups), rows, groups)
            levels, level = self.levels(attribute), None
            chosen = np.isfinite(values)
            if levels:
                level = min(levels, key=lambda code: len(set(patients[values == code])))
                chosen = values == level
            self._behind[attribute] = (len(set(patients[chosen])), int(chosen.sum()), level)
        return self._behind[attribute]

    def reader_gain(self, attribute: str, log: bool) -> float | None:
        """How much of a difference in ``attribute`` between the cohort's own exams its reader (the
        oracle or the CNN, as :meth:`measured` picks) reads: the slope of its readings of their
        images on their recorded values, on the fitted scale. A regressor reads a target the image
        shows only in part with a slope near its R² (the bundled CNN reads about 0.7 of ln
        NT-proBNP's differences), so a film drawn until it reads the whole intended change is drawn further than
        the cohort's exams differ. None without images, a reader, or a slope above 0.1."""
        key = (attribute, log)
        if key not in self._gains:
            self._gains[key] = self._reader_gain(attribute, log)
        return self._gains[key]

    def _reader_gain(self, attribute: str, log: bool) -> float | None:
        if self.images is None or (self.oracle is None and self.cnn is None) or attribute == CNN_PREDICTION:
            return None
        rows, read = self._exams_read()
        recorded = self.scaled(attribute, log)[rows]
        values, _ = self.measured(attribute, log, **read)
        if values is None:
            return None
        known = np.isfinite(recorded) & np.isfinite(values)
        if known.sum() < 20 or np.ptp(recorded[known]) == 0:
            return None
        gain = float(np.polyfit(recorded[known], values[known], 1)[0])
        return gain if gain > 0.1 else None

    def _exams_read(self) -> tuple[np.ndarray, dict]:
        """Up to :data:`GAIN_EXAMS` of the cohort's exams, evenly spread, and the oracle's and the CNN's
        readings of their images, as :meth:`measured` takes them: read once for every attribute, and
        remembered on disk for the next study of the same exams by the same readers."""
        if self._exams is None:
            rows = np.unique(np.linspace(0, len(self.latents) - 1, min(len(self.latents), GAIN_EXAMS)).astype(int))
            images = np.asarray([self.images[k] for k in rows], np.float32)
            batches = [torch.from_numpy(images[k:k + 64])[:, None] for k in range(0, len(images), 64)]
            exams = array_digest(images)
            read = {}
            if self.oracle is not None:
                readings = remembered(self.cache_dir, ["oracle readings", self._digest("oracle"), exams],
                                      lambda: pd.concat([self._oracle_readings(b) for b in batches]))
                read["oracle_predictions"] = self._in_table_coding(readings)
            if self.cnn is not None:
                readings = remembered(self.cache_dir, ["cnn readings", self._digest("cnn"), exams],
                                      lambda: pd.DataFrame({"cnn": np.concatenate([self.cnn_predict(b)
                                                                                   for b in batches])}))
                read["cnn_predictions"] = readings["cnn"].to_numpy()
            self._exams = rows, read
        return self._exams

    def frame_readings(self, by: str, ws: torch.Tensor, noise_seed: int, lock: threading.Lock) -> dict:
        """What ``by`` ("the oracle" or "the CNN") reads on the frames the study's model decodes from
        the latents ``ws`` with noise ``noise_seed`` (holding ``lock``), as :meth:`measured` takes it.
        Remembered on disk (:meth:`_of_frames`): calibrating a direction reads dozens of other
        patients' films, and a later kernel's calibration of it reads them back."""
        if by == "the oracle":
            readings = self._of_frames("film readings", "oracle", ws, noise_seed, lock,
                                       lambda frames: self._oracle_readings(frames.cpu()))
            return {"oracle_predictions": self._in_table_coding(readings)}
        readings = self._of_frames("film readings", "cnn", ws, noise_seed, lock,
                                   lambda frames: pd.DataFrame({"cnn": self.cnn_predict(frames.cpu())}))
        return {"cnn_predictions": readings["cnn"].to_numpy()}

    def frame_latents(self, ws: torch.Tensor, noise_seed: int, lock: threading.Lock) -> np.ndarray:
        """The frames the study's model decodes from ``ws`` with noise ``noise_seed``, encoded again
        [K, w_dim] (what a latent reader reads a film by), holding ``lock``; remembered on disk."""
        encoded = self._of_frames("film latents", "encoder", ws, noise_seed, lock,
                                  lambda frames: pd.DataFrame(self.model.encode(frames).cpu().numpy()))
        return encoded.to_numpy(np.float32)

    def _of_frames(self, what: str, reader: str, ws: torch.Tensor, noise_seed: int, lock: threading.Lock,
                   read: Callable[[torch.Tensor], pd.DataFrame]) -> pd.DataFrame:
        """``read(frames)`` of the frames decoded from ``ws`` (holding ``lock``), kept in the memo under
        the decoder's and the ``reader``'s weights, the noise and ``ws``."""
        def decoded_and_read() -> pd.DataFrame:
            with lock:
                return read(self.model.decode(ws, noise=noise_seed))

        return remembered(self.cache_dir, [what, self._digest(reader), self._digest("model"), str(noise_seed),
                                           array_digest(ws.numpy())], decoded_and_read)

    def _digest(self, network: str) -> str | None:
        """The hash of what ``network`` computes from ("model": the decoder, "encoder", "cnn" or
        "oracle"), for what is remembered on disk."""
        if network not in self._digests:
            self._digests[network] = (decoder_digest(self.model) if network == "model" else
                                      model_digest(self.model) if network == "encoder" else
                                      weights_digest(getattr(self, network)))
        return self._digests[network]

    def measured(self, attribute: str, log: bool, *, cnn_predictions=None, oracle_predictions=None):
        """The target as measured on each frame (:func:`measured`), by this study's CNN or oracle."""
        return measured(attribute, log, getattr(self.cnn, "config", None), cnn_predictions=cnn_predictions,
                        oracle_predictions=oracle_predictions, name=self.label(attribute))

    # ------------------------------------------------------------------ the patient

    def patient_value(self, attribute: str, log: bool, *, row: int | None = None, w=None,
                      image=None) -> tuple[float, str]:
        """The patient's attribute on the fitted scale, and where it comes from: the table's value for
        a cohort ``row``; for an image without one, the CNN's reading of ``image`` or :meth:`estimate`
        from its latent ``w``."""
        if row is not None:
            value = self.values(attribute)[row]
            if np.isfinite(value):
                return float(on_scale([value], log, attribute)[0]), \
                    "the CNN" if attribute == CNN_PREDICTION else "recorded"
            w = self.latents[row]
        elif attribute == CNN_PREDICTION:
            value = self.cnn_predict(torch.from_numpy(np.asarray(image, np.float32))[None, None])
            return float(on_scale(value, log, attribute)[0]), "the CNN"
        return self.estimate(w, attribute, log)

    def estimate(self, w, attribute: str, log: bool) -> tuple[float, str]:
        """The start of a film whose patient has no recorded value (fitted scale), and what it is
        (:data:`ESTIMATED` or :data:`COHORT_MEDIAN`): the cohort's reader of the attribute on ``w``
        (:mod:`~seegaan_explore.explore.readers`) where it is trusted; else the cohort's median, since
        an image that does not tell the value must not be said to (a death date, where most have none)."""
        from .readers import readers_of

        reader = readers_of(self, [attribute])[attribute]
        if reader.trusted:
            value = float(reader.read(np.asarray(w, np.float64)[None])[0])
            if np.isfinite(value) and (value > 0 or not log):
                return float(on_scale([value], log, attribute)[0]), ESTIMATED
        return float(np.nanmedian(self.scaled(attribute, log))), COHORT_MEDIAN

    def range_of(self, attribute: str, log: bool, steps, *, units: str = "sd", row: int | None = None, w=None,
                 image=None) -> tuple[float, float]:
        """The range of the attribute (fitted scale) a traversal covers: where a spline mean shift
        takes the patient's slope. ``steps`` are SDs (``units="sd"``) or attribute units
        (``"units"``, fitted scale) from the patient's own value, or target values in the
        attribute's own units (``"value"``)."""
        if units == "value":
            low, high = on_scale([min(steps), max(steps)], log, attribute)
            return float(low), float(high)
        value, _ = self.patient_value(attribute, log, row=row, w=w, image=image)
        return traversal_range(value, steps, self.sd(attribute, log) if units == "sd" else 1.0)

    def plausible(self, attribute: str, log: bool) -> tuple[float, float]:
        """The dictionary's plausible range of the attribute (fitted scale; -inf or inf where it sets no
        end). Without a low end from the dictionary, a quantity the table never holds below 0 (a lab
        value, a count) ends at 0: a film must not promise a CRP of -174."""
        info = self.info(attribute)
        low, high = -np.inf, np.inf
        if info.low is not None and (not log or info.low > 0):
            low = float(on_scale([info.low], log, attribute)[0])
        elif not log and self._never_negative(attribute):
            low = 0.0
        if info.high is not None and (not log or info.high > 0):
            high = float(on_scale([info.high], log, attribute)[0])
        return low, high

    def bounds(self, attribute: str, log: bool) -> tuple[float, float]:
        """Where a film may go (fitted scale): the cohort's observed range, within the dictionary's
        plausible range. Beyond it the model has seen no exam, and the film would be extrapolation."""
        values = self.scaled(attribute, log)
        finite = values[np.isfinite(values)]
        floor, ceiling = self.plausible(attribute, log)
        return max(float(finite.min()), floor), min(float(finite.max()), ceiling)

    def on_scale_in_words(self, attribute: str, log: bool, value: float) -> str:
        """A value on the fitted scale as a clinician reads it ("17,200 pg/mL")."""
        return self.format(attribute, float(from_scale(value, log)))

    def estimate_in_words(self, attribute: str, log: bool, value: float) -> str:
        """An estimated value (fitted scale) in words, and where it lies beyond what the cohort shows:
        an upload's estimate of 1.21 pg/mL is not a patient's NT-proBNP."""
        low, high = self.bounds(attribute, log)
        say = lambda v: self.on_scale_in_words(attribute, log, v)  # noqa: E731
        if low <= value <= high:
            return say(value)
        return f"{say(value)}, {'below' if value < low else 'above'} what the cohort shows ({say(low)} to {say(high)})"

    def within_range(self, attribute: str, log: bool, first: float, last: float,
                     start: float | None = None) -> tuple[float, float, str | None]:
        """A film's first and last value (fitted scale) within :meth:`bounds`, and a note in words
        where either had to move (None where neither did). A range wholly beyond the bounds runs
        from the patient's own value ``start`` to the nearer bound, and says so; ``ValueError``
        where there is nothing between them to show. A requested value beyond the dictionary's
        plausible range is not quoted (a negative pg/mL is no lab value): the note names the range."""
        low, high = self.bounds(attribute, log)
        clipped = [min(max(v, low), high) for v in (first, last)]
        if clipped == [first, last] or first == last:
            return first, last, None
        say = lambda v: self.on_scale_in_words(attribute, log, v)  # noqa: E731
        floor, ceiling = self.plausible(attribute, log)
        implausible = lambda v: not floor <= v <= ceiling  # noqa: E731
        two_level = self.levels(attribute) is not None
        shows = f"what the cohort shows ({say(low)} to {say(high)})"

        def plausibly(where: str, bound: float) -> str:
            """Beyond the plausible end, where the film is cut there; else beyond what the cohort shows
            (a LDH cut at the cohort's 150 U/L is not said to be cut at 0)."""
            return self._plausible_end(attribute, log, where) if bound in (floor, ceiling) else shows
        if clipped[0] == clipped[1]:  # wholly below or above what the cohort shows
            bound, where = clipped[0], "below" if first < low else "above"
            if two_level:
                outside = f"The requested range lies beyond {say(bound)}"
            elif implausible(first) and implausible(last):
                outside = f"The requested range lies {where} {plausibly(where, bound)}"
            elif implausible(first) or implausible(last):
                outside = f"The requested range lies {where} {shows}"
            else:
                outside = f"The requested range, {say(first)} to {say(last)}, lies {where} {shows}"
            own = None if start is None or not np.isfinite(start) else min(max(start, low), high)
            if own is None or say(own) == say(bound):
                raise ValueError(f"{outside}: the model has seen no exam there, so there is no film to draw. "
                                 f"Choose values within {shows}.")
            ends = sorted((float(own), float(bound)), reverse=bool(first > last))
            return ends[0], ends[1], (f"{outside}. The film runs from the patient's {say(own)} to {say(bound)}, the "
                                      f"{'lowest' if where == 'below' else 'highest'} value it shows.")
        moved = []  # (a cut too small to show in words is not worth a note)
        for v, bound, end in zip((first, last), clipped, ("starts", "ends")):
            where = "below" if v < low else "above"
            if two_level and abs(v - bound) > 0.005 * (high - low):
                moved.append(f"nothing lies beyond {say(bound)}")
            elif not two_level and v != bound and say(v) != say(bound):
                moved.append(f"it {end} {where} {plausibly(where, bound)}" if implausible(v)
                             else f"{say(v)} lies {where} {shows}")
        note = (f"The requested range was cut: {'; '.join(moved)}. The film runs from {say(clipped[0])} to "
                f"{say(clipped[1])}.") if moved else None
        return clipped[0], clipped[1], note

    def _never_negative(self, attribute: str) -> bool:
        """Whether a numeric attribute (not one of two levels) holds no value below 0 in the table."""
        if attribute == CNN_PREDICTION or self.levels(attribute) is not None:
            return False
        values = self.values(attribute)
        finite = values[np.isfinite(values)]
        return bool(finite.size) and float(finite.min()) >= 0

    def _plausible_end(self, attribute: str, log: bool, where: str) -> str:
        """The dictionary's lower (``where`` "below") or upper plausible value, in words (0 where the
        table holds no negative value, :meth:`plausible`)."""
        floor, ceiling = self.plausible(attribute, log)
        if where == "below":
            if self.info(attribute).low is None:
                return f"{self.on_scale_in_words(attribute, log, floor)} (the table holds no negative value)"
            return f"{self.on_scale_in_words(attribute, log, floor)}, the lowest plausible value"
        return f"{self.on_scale_in_words(attribute, log, ceiling)}, the highest plausible value"

    # ------------------------------------------------------------------ directions

    def direction(self, attribute: str, estimator: str = "mean_shift", confounders: Sequence[str] = (),
                  log: bool = False, match: Sequence[str] = (), row: int | None = None,
                  at: tuple[float, float] | None = None, name: str | None = None, rows=None) -> Direction:
        """The attribute's direction in w (cached): per unit of the attribute, or of its logarithm.

        ``confounders`` are held by linear terms (a categorical column by one indicator per level but
        the most frequent); ``match`` holds attributes by fitting only on the exams that share cohort
        ``row``'s values; ``at`` is the range (fitted scale) a spline mean shift takes its slope over.
        ``rows`` fits on a subset only (:meth:`subset`: ``"split=train"``, or a mask). ``name`` is
        what the direction calls its attribute (default the attribute's, "ln(...)" on the log scale, as
        files and commands name it). The direction records its
        two ends in words (``ends``), the subset (``diagnostics["fitted_on"]``) and the rows the fit
        left out for a missing value or another level, column by column (``diagnostics["dropped"]``)."""
        attribute = self.check(attribute)
        confounders = tuple(self.holdable(c, attribute) for c in confounders)
        match = tuple(self.holdable(c, attribute) for c in match)
        if set(confounders) & set(match):
            both = ", ".join(self.label(c) for c in sorted(set(confounders) & set(match)))
            raise ValueError(f"{both} cannot be held both by matching and by a linear term")
        if match and row is None:
            raise ValueError(f"matching on {', '.join(map(self.label, match))} needs a cohort patient's values; an "
                             "image has none")
        at = None if at is None else (float(at[0]), float(at[1]))
        subset, said = self.subset(rows)
        like = {c: float(self.held(c)[row]) for c in match}
        chosen = None if subset is None else hashlib.blake2b(np.packbits(subset).tobytes(), digest_size=16).digest()
        key = (attribute, estimator, confounders, bool(log), match, tuple(like.values()), at, name, chosen, said)
        cached = self._directions.hit(key)
        if cached is not None:
            return cached
        values = self.scaled(attribute, log)
        covariates = np.column_stack([self.held(c, terms=True) for c in confounders]) if confounders else None
        direction = direction_for(estimator, self.latents, values, covariates,
                                  attribute=name or scaled_name(attribute, log),
                                  confounder_names=confounders, match={c: self.held(c) for c in match},
                                  like=like, like_labels={c: self.value_label(c, row) for c in match}, at=at,
                                  rows=subset, rows_said=said)
        considered = matched_rows({c: self.held(c) for c in match}, like)  # matching's exams, counted there
        if subset is not None:
            considered = subset if considered is None else considered & subset
        diagnostics = {**direction.diagnostics, "dropped": self.left_out(attribute, confounders, considered),
                       **({"fitted_on": said} if said else {})}
        return self._directions.put(key, dataclasses.replace(direction, ends=self.ends(attribute, log),
                                                             diagnostics=diagnostics))

    def latent_shift(self, w, attribute: str, log: bool = False, noise_seed: int = 0, key=None) -> Direction:
        """Latent Shift for one patient's latent ``w`` (cached under ``key``): the direction in which
        the CNN's prediction on the decoded image rises one unit, to first order. ``attribute`` must be
        what the CNN predicts, on the scale it predicts it: the CNN's prediction itself, or its target
        (on the log scale where the CNN learned the logarithm)."""
        if self.cnn is None:
            raise ValueError("Latent Shift follows a CNN's gradient, and no CNN was given")
        config = getattr(self.cnn, "config", None)
        if getattr(config, "task", None) == "binary":
            raise ValueError("Latent Shift here steps a regression CNN's output in its own units; this CNN is binary")
        target, logged = getattr(config, "attribute", None), bool(getattr(config, "log_transform", False))
        if not ((attribute == CNN_PREDICTION and not log) or (attribute == target and log == logged)):
            what = f"{self.label(target)}{' on the log scale' if logged else ''} or " if target in self.attributes \
                else ""
            raise ValueError(f"Latent Shift moves what the CNN predicts: pick {what}{self.label(CNN_PREDICTION)}, "
                             f"not {self.label(attribute)}{' on the log scale' if log else ''}")
        cache_key = (LATENT_SHIFT, key, attribute, noise_seed)
        cached = self._directions.hit(cache_key) if key is not None else None
        if cached is not None:
            return cached
        direction = dataclasses.replace(latent_shift(self.model, self.cnn, w, noise_seed=noise_seed,
                                                     scale=self.sd(attribute, log), attribute=attribute),
                                        ends=self.ends(attribute, log))
        return self._directions.put(cache_key, direction) if key is not None else direction

    def cohort_shares(self, attribute: str, log: bool, others: Sequence[str],
                      held: Sequence[str] = ()) -> dict[str, float]:
        """How far each of ``others`` moves, in its cohort SDs per cohort SD of ``attribute``, across
        the cohort's exams with ``held`` fixed (a linear fit): what a film that shows the cohort's
        association moves it by, and so the yardstick of its leakage. A held attribute's is 0;
        one the table cannot give is left out."""
        target = self.scaled(attribute, log)
        held_terms = [np.asarray(self.held(c, terms=True), np.float64).reshape(len(target), -1) for c in held]
        design = np.column_stack([np.ones_like(target), target, *held_terms])
        shares = {}
        for other in others:
            if other in held:
                shares[other] = 0.0
                continue
            try:
                values = self.values(other)
            except (KeyError, ValueError):
                continue
            rows = np.isfinite(design).all(axis=1) & np.isfinite(values)
            other_sd = self.sd(other, False)
            if rows.sum() > design.shape[1] and other_sd > 0:
                slope = np.linalg.lstsq(design[rows], values[rows], rcond=None)[0][1]
                shares[other] = float(slope * self.sd(attribute, log) / other_sd)
        return shares

    def cosines(self, direction: Direction) -> dict[str, float]:
        """Cosine of the direction with every other attribute's mean-shift direction: how entangled they are.

        The CNN's prediction joins once it has been computed over the cohort (a CNN pass over every
        image, seconds on a CPU), so that the first view does not wait for it."""
        others, own = {}, split_scaled_name(direction.attribute)[0]  # ("ln(lab)": lab's own direction is not another)
        for name in self.attributes:
            if name == own or (name == CNN_PREDICTION and not self.has_cohort_predictions):
                continue
            try:
                others[name] = self.direction(name)
            except ValueError:  # e.g. too few values: no direction to compare with
                continue
        if not others:
            return {}
        row = cosine_matrix([direction, *others.values()])[0, 1:]
        return dict(zip(others, map(float, row)))
