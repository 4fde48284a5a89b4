"""A cohort under study: the one home for what every front door asks of an encoded cohort.

The command line, the dashboard's renderer, ``evaluate`` and the benchmark studies ask the same
questions: which columns are attributes and in what units, what is this patient's value (or, for
an image without one, its estimate), which direction does this patient traverse (the confounders
held, the exams like it matched, a spline's slope over the range the traversal covers), and what
measures the target on a frame. :class:`Study` answers them once, and the pure functions below it
serve callers that hold plain arrays (``evaluate`` on the phantoms' factors).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.table import parse_attribute
from ..model.cnn import at_resolution_of
from .attribution import module_device
from .dictionary import AttributeInfo
from .directions import Direction, SplineMeanShift, cosine_matrix, fit_direction
from .latent_shift import latent_shift

CNN_PREDICTION = "cnn_prediction"  # what the CNN predicts, as an attribute like any other (the paper's way)
LATENT_SHIFT = "latent_shift"  # a per-patient direction (the CNN's gradient through the generator), not a cohort fit
SPLINE = SplineMeanShift.name  # fitted at the patient's own level: needs the traversal's range
MATCHABLE = ("mean_shift", SPLINE)  # the estimators that can hold an attribute by matching
RESERVED = {"index", "seed", "row", "path", "file", "filename"}  # numbers that are bookkeeping, not attributes


# --------------------------------------------------------------------------- pure functions

def on_scale(values, log: bool, name: str) -> np.ndarray:
    """Values on the scale directions are fitted in: ln where ``log`` (refused for values <= 0)."""
    values = np.asarray(values, np.float64)
    if not log:
        return values
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() <= 0:
        raise ValueError(f"{name}: a log scale needs positive values, but the smallest is {finite.min():g}")
    return np.log(values)


def from_scale(scaled, log: bool) -> np.ndarray:
    return np.exp(scaled) if log else np.asarray(scaled, np.float64)


def scaled_name(attribute: str, log: bool) -> str:
    """How a direction fitted on the log scale is named in files and on the command line."""
    return f"ln({attribute})" if log else attribute


def split_scaled_name(name: str) -> tuple[str, bool]:
    """``"ln(x)"`` -> ``("x", True)``: the inverse of :func:`scaled_name`."""
    if name.startswith("ln(") and name.endswith(")"):
        return name[3:-1], True
    return name, False


def cnn_label(config) -> str:
    """How the CNN's prediction is called on screen and in exports."""
    target = getattr(config, "attribute", "") or "its target"
    if getattr(config, "task", None) == "binary":
        return f"CNN probability of {target}"
    return f"CNN prediction of {'ln ' if getattr(config, 'log_transform', False) else ''}{target}"


def traversal_range(value: float, amounts, unit: float = 1.0) -> tuple[float, float]:
    """The range of the attribute (fitted scale) a traversal of ``amounts`` steps of ``unit`` covers
    from ``value``: where a spline mean shift takes the patient's slope."""
    amounts = np.asarray(amounts, np.float64)
    return float(value + amounts.min() * unit), float(value + amounts.max() * unit)


def matched_rows(columns: Mapping[str, np.ndarray], like: Mapping[str, float]) -> np.ndarray | None:
    """The exams that share the patient's value (``like``) of every column in ``columns``; None without any."""
    rows = None
    for name, column in columns.items():
        if not pd.notna(like[name]):
            raise ValueError(f"the patient has no value of {name!r} to match")
        same = np.asarray(column) == like[name]
        rows = same if rows is None else rows & same
    return rows


def direction_for(estimator: str, latents, values, confounders=None, *, attribute: str,
                  confounder_names: Sequence[str] = (), match: Mapping[str, np.ndarray] | None = None,
                  like: Mapping[str, float] | None = None, like_labels: Mapping[str, str] | None = None,
                  at: tuple[float, float] | None = None) -> Direction:
    """The direction one patient traverses.

    ``match`` holds columns by fitting only on the exams that share the patient's values ``like``
    (an AP patient's direction from AP exams), where ``confounders`` are held by linear terms:
    matching lets the attribute's effect differ between the groups. ``at`` is the range a spline
    mean shift takes its slope over (:func:`traversal_range`). ``like_labels`` words the patient's
    matched values as the table writes them, for the diagnostics and errors."""
    match = dict(match or {})
    if match and estimator not in MATCHABLE:
        raise ValueError(f"matching holds an attribute for the mean shift; the {estimator} estimator cannot use it")
    if at is not None and estimator != SPLINE:
        raise ValueError(f"the range a spline_mean_shift takes its slope over; {estimator} has none")
    rows = matched_rows(match, like or {})
    try:
        direction = fit_direction(estimator, latents, values, confounders, rows=rows, attribute=attribute,
                                  confounder_names=tuple(confounder_names), **({"at": at} if at else {}))
    except ValueError as error:
        if rows is None:
            raise
        held = _held(match, like, like_labels)
        raise ValueError(f"among the {int(rows.sum())} exams with {held}: {error}") from error
    if not match:
        return direction
    words = {name: (like_labels or {}).get(name, f"{like[name]:g}") for name in match}
    return dataclasses.replace(direction, diagnostics={**direction.diagnostics, "matched": words})


def _held(match, like, labels) -> str:
    return ", ".join(f"{name} = {(labels or {}).get(name, f'{like[name]:g}')}" for name in match)


def measured(attribute: str, log: bool, cnn_config=None, *, cnn_predictions=None, oracle_predictions=None):
    """The target as measured on each frame, on the fitted scale, and by what; ``(None, reason)``
    when nothing measures it. The oracle reads its factors; the CNN (``cnn_config`` describes it)
    reads its own prediction, and its target where it regresses it."""
    if oracle_predictions is not None and attribute in oracle_predictions.columns:
        values, by = oracle_predictions[attribute].to_numpy(np.float64), "the oracle"
    elif cnn_predictions is not None and attribute == CNN_PREDICTION:
        values, by = np.asarray(cnn_predictions, np.float64), "the CNN"
    elif (cnn_predictions is not None and getattr(cnn_config, "attribute", None) == attribute
          and getattr(cnn_config, "task", "regression") == "regression"):
        predicted = np.asarray(cnn_predictions, np.float64)
        values, by = (np.exp(predicted) if cnn_config.log_transform else predicted), "the CNN"
    else:
        return None, f"nothing measures {attribute} on an image (no oracle column or CNN for it)"
    if log and np.any(values <= 0):
        return None, f"{by} measured values <= 0 on some frames, which a log scale cannot show"
    return on_scale(values, log, attribute), by


def detect_attributes(table: pd.DataFrame) -> dict[str, tuple[np.ndarray, dict | None]]:
    """Every column a direction can be fitted on: numbers, censored lab values, or two text levels
    (as 0/1, with their mapping); bookkeeping columns (ids, paths) and constant columns are left out."""
    out = {}
    for name in table.columns:
        if str(name).lower() in RESERVED or str(name).lower().endswith("_id"):
            continue
        try:
            values, mapping = parse_attribute(table[name])
        except ValueError:
            continue
        finite = values[np.isfinite(values)]
        if len(finite) >= 2 and np.ptp(finite) > 0:
            out[str(name)] = values, mapping
    return out


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


# --------------------------------------------------------------------------- the study

class Study:
    """An encoded cohort under study.

    ``latents`` [N, w_dim] are the encodings, row ``i`` belonging to ``table`` row ``i``; ``images``
    [N, R, R] in [-1, 1] (optional; or a function that loads them when first needed) the originals
    the CNN reads; ``cnn`` a module predicting one value
    per image; ``oracle`` an object whose ``predict(images)`` returns a DataFrame, one column per
    factor it reads; ``model`` the autoencoder (for Latent Shift, and for the CNN on reconstructions
    when no images are given). ``attributes`` restricts the columns offered; a ``dictionary``
    (:mod:`~seegaan_explore.explore.dictionary`) offers the columns it describes, in its words.
    """

    def __init__(self, latents, table: pd.DataFrame, *, model=None, cnn=None, oracle=None, images=None,
                 attributes: Sequence[str] | None = None, dictionary: Mapping[str, AttributeInfo] | None = None):
        latents = latents.detach().cpu().numpy() if torch.is_tensor(latents) else np.asarray(latents)
        if latents.ndim != 2:
            raise ValueError(f"latents must be [N, w_dim], got shape {latents.shape}")
        if len(table) != len(latents):
            raise ValueError(f"the table has {len(table)} rows but there are {len(latents)} latents")
        self.latents = latents if latents.dtype == np.float32 else latents.astype(np.float32)
        self.table = table.reset_index(drop=True)
        self.model, self.cnn, self.oracle, self._images = model, cnn, oracle, images
        columns = detect_attributes(self.table)
        self.dictionary = dict(dictionary or {})
        if attributes is None and dictionary is not None:
            attributes = [c for c in self.dictionary if c in columns]
        if attributes is not None:
            unknown = [a for a in attributes if a not in columns]
            if unknown:
                raise ValueError(f"attribute(s) {unknown} are not numeric or two-valued columns of the table; "
                                 f"usable columns: {sorted(columns)}")
            columns = {a: columns[a] for a in attributes}
        self._columns = {name: values for name, (values, _) in columns.items()}
        self.encodings = {name: mapping for name, (_, mapping) in columns.items() if mapping}
        self.attributes = list(self._columns) + ([CNN_PREDICTION] if cnn is not None else [])
        if not self.attributes:
            raise ValueError(f"the table has no numeric or two-valued column to explore: {list(table.columns)}")
        self._once = threading.Lock()  # the cohort-wide computations below run once, whoever asks first
        self._cohort_predictions: np.ndarray | None = None
        self._directions = Lru(64)

    @classmethod
    def of(cls, latents, *, cnn=None, images=None) -> Study:
        """A study of an encoded cohort (:class:`~seegaan_explore.explore.latents.Latents`)."""
        return cls(latents.latents, latents.table, cnn=cnn, images=images)

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
        """What the attribute means (the dictionary's entry, or what the table itself says)."""
        if name in self.dictionary:
            return self.dictionary[name]
        if name == CNN_PREDICTION:
            return AttributeInfo(name, cnn_label(getattr(self.cnn, "config", None)))
        return AttributeInfo(name)

    def label(self, name: str) -> str:
        """How an attribute is called on screen."""
        if name == CNN_PREDICTION:
            target = getattr(getattr(self.cnn, "config", None), "attribute", None)
            if target in self.dictionary and getattr(self.cnn.config, "task", None) == "regression":
                return f"{self.dictionary[target].name} as the CNN reads it"
            return cnn_label(getattr(self.cnn, "config", None))
        return self.info(name).name

    def levels(self, name: str) -> dict[float, str] | None:
        """Words for each value of a two-level attribute (0 -> "female", 1 -> "male"); None otherwise."""
        if not self.two_level(name):
            return None
        words = self.info(name).levels
        if name in self.encodings:
            return {float(code): words.get(text, text) for text, code in self.encodings[name].items()}
        values = np.unique(self._columns[name][np.isfinite(self._columns[name])])
        spelled = {0.0: ("0", "false"), 1.0: ("1", "true")}
        return {float(v): next((words[k] for k in spelled.get(float(v), ()) if k in words), f"{v:g}") for v in values}

    def format(self, name: str, value: float) -> str:
        """A value of the attribute as a clinician reads it: "17,200 pg/mL", "male"."""
        levels = self.levels(name)
        if levels is not None and value in levels:
            return levels[value]
        return self.info(name).format(value)

    def ends(self, name: str, log: bool = False) -> tuple[str, str]:
        """The two ends of the attribute's direction in words: ("female", "male"), ("lower NT-proBNP",
        "higher NT-proBNP"); what - and + mean."""
        levels = self.levels(name)
        if levels is not None:
            low, high = sorted(levels)
            return levels[low], levels[high]
        label = self.label(name)
        return f"lower {label}", f"higher {label}"

    def check(self, name: str) -> str:
        """``name`` if it is an attribute of this study; else an error that says why not."""
        if name in self.attributes:
            return name
        if name in self.table.columns:
            raise ValueError(f"column {name!r} is not an attribute: {self._why_not(name)}")
        raise ValueError(f"unknown attribute {name!r}; choose one of {', '.join(self.attributes)}")

    def _why_not(self, name: str) -> str:
        if self.dictionary and name not in self.dictionary:
            return "the data dictionary does not describe it"
        if str(name).lower() in RESERVED or str(name).lower().endswith("_id"):
            return "it is bookkeeping (an id, a path or an index)"
        try:
            values, _ = parse_attribute(self.table[name])
        except ValueError as error:
            return str(error)
        finite = values[np.isfinite(values)]
        if len(finite) < 2:
            return f"only {len(finite)} row(s) have a value"
        return f"it is constant ({finite[0]:g}), so it defines no direction"

    def values(self, name: str) -> np.ndarray:
        """The attribute for every cohort row in its own units (NaN where unknown)."""
        if self.check(name) == CNN_PREDICTION:
            return self.cohort_predictions()
        return self._columns[name]

    def scaled(self, name: str, log: bool) -> np.ndarray:
        return on_scale(self.values(name), log, name)

    def sd(self, name: str, log: bool) -> float:
        """One SD of the attribute on the fitted scale: the unit of steps in SDs."""
        return float(np.nanstd(self.scaled(name, log)))

    def two_level(self, name: str) -> bool:
        """Whether the attribute takes two values (sex, AP/PA view): one a patient can be matched on."""
        if name not in self._columns:  # the CNN's prediction: continuous, and costly to compute
            return False
        values = self._columns[name]
        return np.unique(values[np.isfinite(values)]).size == 2

    def value_label(self, name: str, row: int) -> str:
        """A patient's value of ``name`` as the table writes it (a text level, or a number)."""
        if name in self.encodings:
            return str(self.table[name].iloc[row]).strip()
        return f"{float(self.values(name)[row]):g}"

    # ------------------------------------------------------------------ what the CNN and the oracle read

    def cnn_predict(self, images: torch.Tensor) -> np.ndarray:
        """CNN output on images [B, 1, R, R] in the CNN's own scale (e.g. ln NT-proBNP)."""
        x = at_resolution_of(self.cnn, images.float())
        if hasattr(self.cnn, "predict"):
            return self.cnn.predict(x).cpu().numpy().astype(np.float64)
        with torch.no_grad():
            self.cnn.eval()
            return self.cnn(x.to(module_device(self.cnn))).reshape(len(x)).cpu().numpy().astype(np.float64)

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

    def measured(self, attribute: str, log: bool, *, cnn_predictions=None, oracle_predictions=None):
        """The target as measured on each frame (:func:`measured`), by this study's CNN or oracle."""
        return measured(attribute, log, getattr(self.cnn, "config", None), cnn_predictions=cnn_predictions,
                        oracle_predictions=oracle_predictions)

    # ------------------------------------------------------------------ the patient

    def patient_value(self, attribute: str, log: bool, *, row: int | None = None, w=None,
                      image=None) -> tuple[float, str]:
        """The patient's attribute on the fitted scale, and where it comes from: the table's value for
        a cohort ``row``; for an image without one, the CNN's reading of ``image`` or an estimate from
        its latent ``w``."""
        if row is not None:
            value = self.values(attribute)[row]
            if np.isfinite(value):
                return float(on_scale([value], log, attribute)[0]), \
                    "the CNN" if attribute == CNN_PREDICTION else "the table"
            w = self.latents[row]
        elif attribute == CNN_PREDICTION:
            value = self.cnn_predict(torch.from_numpy(np.asarray(image, np.float32))[None, None])
            return float(on_scale(value, log, attribute)[0]), "the CNN"
        return self.estimate(w, attribute, log), "estimated from the latent (no recorded value)"

    def estimate(self, w, attribute: str, log: bool) -> float:
        """A ridge regression of the attribute on w, for patients without a recorded value."""
        from sklearn.linear_model import Ridge

        key = ("ridge", attribute, log)
        model = self._directions.hit(key)
        if model is None:
            values = self.scaled(attribute, log)
            keep = np.isfinite(values)
            model = self._directions.put(key, Ridge(alpha=1.0).fit(self.latents[keep], values[keep]))
        return float(model.predict(np.asarray(w, np.float64)[None])[0])

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

    def bounds(self, attribute: str, log: bool) -> tuple[float, float]:
        """Where a film may go (fitted scale): the cohort's observed range, within the dictionary's
        plausible range. Beyond it the model has seen no exam, and the film would be extrapolation."""
        values = self.scaled(attribute, log)
        finite = values[np.isfinite(values)]
        low, high = float(finite.min()), float(finite.max())
        info = self.info(attribute)
        if info.low is not None and (not log or info.low > 0):
            low = max(low, float(on_scale([info.low], log, attribute)[0]))
        if info.high is not None:
            high = min(high, float(on_scale([info.high], log, attribute)[0]))
        return low, high

    def within_range(self, attribute: str, log: bool, first: float, last: float) -> tuple[float, float, str | None]:
        """A film's first and last value (fitted scale) within :meth:`bounds`, and a note in words
        where either had to move (None where neither did)."""
        low, high = self.bounds(attribute, log)
        clipped = [min(max(v, low), high) for v in (first, last)]
        if clipped == [first, last] or clipped[0] == clipped[1]:
            return first, last, None
        say = lambda v: self.format(attribute, float(from_scale(v, log)))  # noqa: E731
        moved = [f"{say(v)} lies {'below' if v < low else 'above'} what the cohort shows ({say(low)} to "
                 f"{say(high)})" for v in (first, last) if not low <= v <= high and say(v) not in (say(low), say(high))]
        note = (f"The requested range was cut: {'; '.join(moved)}. The film runs from {say(clipped[0])} to "
                f"{say(clipped[1])}.") if moved else None  # a cut too small to show in words is not worth a note
        return clipped[0], clipped[1], note

    # ------------------------------------------------------------------ directions

    def direction(self, attribute: str, estimator: str = "mean_shift", confounders: Sequence[str] = (),
                  log: bool = False, match: Sequence[str] = (), row: int | None = None,
                  at: tuple[float, float] | None = None, name: str | None = None) -> Direction:
        """The attribute's direction in w (cached): per unit of the attribute, or of its logarithm.

        ``match`` holds attributes by fitting only on the exams that share cohort ``row``'s values;
        ``at`` is the range (fitted scale) a spline mean shift takes its slope over. ``name`` is
        what the direction calls its attribute (default the column's name)."""
        self.check(attribute)
        confounders, match = tuple(confounders), tuple(match)
        for c in confounders + match:
            if c == attribute or c not in self.attributes:
                others = ", ".join(x for x in self.attributes if x != attribute)
                raise ValueError(f"{c!r} cannot be held: it must be another attribute, one of {others}")
        if set(confounders) & set(match):
            raise ValueError(f"{sorted(set(confounders) & set(match))} cannot be held both by matching and by a "
                             "linear term")
        if match and row is None:
            raise ValueError(f"matching on {', '.join(match)} needs a cohort patient's values; an image has none")
        at = None if at is None else (float(at[0]), float(at[1]))
        like = {c: float(self.values(c)[row]) for c in match}
        key = (attribute, estimator, confounders, bool(log), match, tuple(like.values()), at, name)
        cached = self._directions.hit(key)
        if cached is not None:
            return cached
        values = self.scaled(attribute, log)
        covariates = np.column_stack([self.values(c) for c in confounders]) if confounders else None
        direction = direction_for(estimator, self.latents, values, covariates, attribute=name or attribute,
                                  confounder_names=confounders, match={c: self.values(c) for c in match},
                                  like=like, like_labels={c: self.value_label(c, row) for c in match}, at=at)
        return self._directions.put(key, direction)

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
            what = f"{target}{' on the log scale' if logged else ''} or " if target in self.attributes else ""
            raise ValueError(f"Latent Shift moves what the CNN predicts: pick {what}{self.label(CNN_PREDICTION)}, "
                             f"not {attribute}{' on the log scale' if log else ''}")
        cache_key = (LATENT_SHIFT, key, attribute, noise_seed)
        cached = self._directions.hit(cache_key) if key is not None else None
        if cached is not None:
            return cached
        direction = latent_shift(self.model, self.cnn, w, noise_seed=noise_seed, scale=self.sd(attribute, log),
                                 attribute=attribute)
        return self._directions.put(cache_key, direction) if key is not None else direction

    def cosines(self, direction: Direction) -> dict[str, float]:
        """Cosine of the direction with every other attribute's mean-shift direction: how entangled they are.

        The CNN's prediction joins once it has been computed over the cohort (a CNN pass over every
        image, seconds on a CPU), so that the first view does not wait for it."""
        others = {}
        for name in self.attributes:
            if name == direction.attribute or (name == CNN_PREDICTION and not self.has_cohort_predictions):
                continue
            try:
                others[name] = self.direction(name)
            except ValueError:  # e.g. too few values: no direction to compare with
                continue
        if not others:
            return {}
        row = cosine_matrix([direction, *others.values()])[0, 1:]
        return dict(zip(others, map(float, row)))
