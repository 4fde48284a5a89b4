"""One renderer: plain arguments in, one result dict out.

The pattern of NVlabs' stylegan3 visualizer: widgets only write plain values (an attribute name, a
range, a patient index) into an arguments dict; this renderer turns that dict into everything the
screen shows, caching what is expensive. A bad request becomes a message in ``result["error"]``
instead of an exception, so it never takes a kernel down. Nothing here imports a widget: notebooks,
tests and the dashboard make the same call.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.cohort import parse_lab_column
from ..data.images import preprocess
from ..data.phantoms import to_uint8
from ..explore import quality
from ..explore.attribution import METHODS, agreement, attribute, module_device
from ..explore.directions import ESTIMATORS, Direction, SplineMeanShift, cosine_matrix, fit_direction
from ..explore.latent_shift import latent_shift
from ..explore.traversal import traverse
from ..model.cnn import at_resolution_of
from ..model.seegaan import SeeGaan

CNN_PREDICTION = "cnn_prediction"
LATENT_SHIFT = "latent_shift"  # a per-patient direction (the CNN's gradient through the generator), not a cohort fit
UNITS = ("sd", "value")  # steps in standard deviations of the attribute, or target values in its own units
MAX_FRAMES = 64
RESERVED = {"index", "seed", "row", "path", "file", "filename"}  # numbers that are bookkeeping, not attributes
SPLINE = SplineMeanShift.name  # fitted at the patient's own level: needs the traversal's range
DEFAULTS = {"attribute": None, "estimator": "mean_shift", "confounders": (), "match": (), "log": False, "units": "sd",
            "start": -2.0, "stop": 2.0, "n_frames": 9, "patient": 0, "method": "gradcam", "frame": -1,
            "noise_seed": 0}


class Cancelled(Exception):
    """A newer request superseded this one (raised between stages, never shown)."""


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value

    def hit(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None


def _column(series: pd.Series) -> tuple[np.ndarray, dict | None] | None:
    """A table column as floats (numbers, censored lab values, or two text levels as 0/1), or None."""
    try:
        return parse_lab_column(series)["value"].to_numpy(np.float64), None
    except ValueError:
        text = series.astype("string").str.strip().str.lower()
        levels = sorted(set(text.dropna()) - {""})
        if len(levels) != 2:
            return None
        mapping = {level: code for code, level in enumerate(levels)}
        return pd.to_numeric(text.map(mapping)).astype(float).to_numpy(), mapping


def _detect_attributes(table: pd.DataFrame) -> dict[str, tuple[np.ndarray, dict | None]]:
    out = {}
    for name in table.columns:
        if str(name).lower() in RESERVED or str(name).lower().endswith("_id"):
            continue
        parsed = _column(table[name])
        if parsed is None:
            continue
        finite = parsed[0][np.isfinite(parsed[0])]
        if len(finite) >= 2 and np.ptp(finite) > 0:
            out[str(name)] = parsed
    return out


def _traversal_key(a: dict) -> tuple:
    return tuple(a[k] for k in ("attribute", "estimator", "confounders", "match", "log", "patient", "units", "start",
                                "stop", "n_frames", "noise_seed"))


class Renderer:
    """Turns plain arguments into a result dict; see :data:`DEFAULTS` for the arguments.

    ``latents`` [N, w_dim] are the cohort's encodings, row ``i`` belonging to ``table`` row ``i``;
    ``images`` [N, R, R] in [-1, 1] (optional) are the originals, for thumbnails and attributions;
    ``cnn`` a module predicting one value per image (``predict`` used when it has one); ``oracle``
    an object whose ``predict(images [B, 1, R, R] tensor)`` returns a DataFrame, one column per
    factor, used to measure what the frames show. ``attributes`` restricts the table columns
    offered (default: every numeric or two-valued column that is not bookkeeping).
    """

    def __init__(self, model: SeeGaan, latents, table: pd.DataFrame, *, cnn: torch.nn.Module | None = None,
                 oracle=None, images=None, attributes: list[str] | None = None, cache_size: int = 32):
        latents = latents.detach().cpu().numpy() if torch.is_tensor(latents) else np.asarray(latents)
        if latents.ndim != 2 or latents.shape[1] != model.config.w_dim:
            raise ValueError(f"latents of shape {latents.shape} do not fit the model (w_dim {model.config.w_dim})")
        if len(table) != len(latents):
            raise ValueError(f"the table has {len(table)} rows but there are {len(latents)} latents")
        r = model.config.resolution
        if images is not None and tuple(np.shape(images)) != (len(latents), r, r):
            raise ValueError(f"images of shape {tuple(np.shape(images))} do not match {len(latents)} latents "
                             f"at the model's {r} px")
        self.model, self.cnn, self.oracle, self.images = model, cnn, oracle, images
        self.latents = latents.astype(np.float32)
        self.table = table.reset_index(drop=True)
        self.resolution = r
        columns = _detect_attributes(self.table)
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
        self._uploads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.RLock()  # the UI thread (thumbnails, uploads) and the render thread share caches
        self._directions = _Lru(64)
        self._traversals = _Lru(cache_size)
        self._attributions = _Lru(4 * cache_size)
        self._cohort_predictions: np.ndarray | None = None
        self._embedding = None

    # ------------------------------------------------------------------ cohort-level values

    @property
    def default_attribute(self) -> str:
        trained_on = getattr(getattr(self.cnn, "config", None), "attribute", None)
        return trained_on if trained_on in self.attributes else self.attributes[0]

    def label(self, name: str) -> str:
        """How an attribute is called on screen."""
        if name == CNN_PREDICTION:
            config = getattr(self.cnn, "config", None)
            target = getattr(config, "attribute", "") or "its target"
            return f"CNN prediction of {'ln ' if getattr(config, 'log_transform', False) else ''}{target}"
        if name in self.encodings:
            return f"{name} ({', '.join(f'{k}={v}' for k, v in self.encodings[name].items())})"
        return name

    def values(self, name: str) -> np.ndarray:
        """The attribute for every cohort row in its own units (NaN where unknown)."""
        if name == CNN_PREDICTION and self.cnn is not None:
            return self.cohort_predictions()
        if name not in self._columns:
            raise ValueError(f"unknown attribute {name!r}; choose one of {', '.join(self.attributes)}")
        return self._columns[name]

    def cohort_predictions(self) -> np.ndarray:
        """The CNN on every cohort image (on the reconstructions where no images were given); computed once."""
        with self._lock:
            if self._cohort_predictions is None:
                if self.cnn is None:
                    raise ValueError("no CNN was given, so there is no cnn_prediction")
                chunks = []
                for start in range(0, len(self.latents), 64):
                    if self.images is not None:
                        batch = torch.as_tensor(np.asarray(self.images[start:start + 64], np.float32))[:, None]
                    else:
                        batch = self.model.decode(torch.from_numpy(self.latents[start:start + 64])).cpu()
                    chunks.append(self._cnn_predict(batch))
                self._cohort_predictions = np.concatenate(chunks)
            return self._cohort_predictions

    def embedding(self) -> tuple[np.ndarray, np.ndarray]:
        """The latents on their first two principal axes [N, 2], and the variance share of each axis."""
        with self._lock:
            if self._embedding is None:
                centred = torch.from_numpy(self.latents) - torch.from_numpy(self.latents).mean(0)
                _, singular, axes = torch.linalg.svd(centred, full_matrices=False)
                share = (singular.square() / singular.square().sum())[:2].numpy()
                self._embedding = ((centred @ axes[:2].T).numpy(), share)
            return self._embedding

    def patient_label(self, patient) -> str:
        if isinstance(patient, str):
            return patient.removeprefix("upload:") + " (uploaded)"
        for column in ("image_id", "patient_id", "id"):
            if column in self.table.columns:
                return f"{self.table[column].iloc[patient]} (#{patient})"
        return f"#{patient}"

    def thumbnail(self, patient) -> np.ndarray:
        """The patient's image as uint8 [R, R]: the original where known, else its reconstruction."""
        patient = self._patient(patient)
        original = self._original(patient)
        if original is not None:
            return to_uint8(original)
        with self._lock:
            return to_uint8(self.model.decode(torch.from_numpy(self.latents[patient:patient + 1]))[0, 0].cpu().numpy())

    def add_image(self, image: np.ndarray, name: str) -> str:
        """Encode a user's radiograph (as :func:`~seegaan_explore.data.images.read_image` returns it);
        returns the patient key (``"upload:<name>"``) to put in ``args["patient"]``."""
        prepared = preprocess(image, self.resolution)
        with self._lock:
            w = self.model.encode(torch.from_numpy(prepared)[None, None])[0].cpu().numpy()
            key = f"upload:{name}"
            self._uploads[key] = (w, prepared)
        return key

    # ------------------------------------------------------------------ helpers

    def _patient(self, patient) -> int | str:
        if isinstance(patient, str) and patient in self._uploads:
            return patient
        is_row = isinstance(patient, (int, np.integer)) and not isinstance(patient, bool)
        if is_row and 0 <= patient < len(self.latents):
            return int(patient)
        raise ValueError(f"patient {patient!r} is neither a row of the cohort (0..{len(self.latents) - 1}) "
                         f"nor an uploaded image ({', '.join(self._uploads) or 'none uploaded'})")

    def _w(self, patient) -> np.ndarray:
        return self._uploads[patient][0] if isinstance(patient, str) else self.latents[patient]

    def _original(self, patient) -> np.ndarray | None:
        if isinstance(patient, str):
            return self._uploads[patient][1]
        return None if self.images is None else np.asarray(self.images[patient], np.float32)

    def _cnn_predict(self, images: torch.Tensor) -> np.ndarray:
        """CNN output on images [B, 1, R, R] in the CNN's own scale (e.g. ln NT-proBNP)."""
        x = at_resolution_of(self.cnn, images.float())
        if hasattr(self.cnn, "predict"):
            return self.cnn.predict(x).cpu().numpy().astype(np.float64)
        with torch.no_grad():
            self.cnn.eval()
            return self.cnn(x.to(module_device(self.cnn))).reshape(len(x)).cpu().numpy().astype(np.float64)

    @staticmethod
    def _scale(values: np.ndarray, log: bool, name: str) -> np.ndarray:
        """Values on the scale directions are fitted in: ln where ``log``."""
        values = np.asarray(values, np.float64)
        if not log:
            return values
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() <= 0:
            raise ValueError(f"{name}: a log scale needs positive values, but the smallest is {finite.min():g}")
        return np.log(values)

    def _native(self, scaled: np.ndarray, log: bool) -> np.ndarray:
        return np.exp(scaled) if log else np.asarray(scaled, np.float64)

    def _normalise(self, args: dict) -> dict:
        unknown = set(args) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown argument(s) {sorted(unknown)}; the arguments are {sorted(DEFAULTS)}")
        a = {**DEFAULTS, **args}
        a["attribute"] = a["attribute"] or self.default_attribute
        if a["attribute"] not in self.attributes:
            raise ValueError(f"unknown attribute {a['attribute']!r}; choose one of {', '.join(self.attributes)}")
        if a["estimator"] not in ESTIMATORS and a["estimator"] != LATENT_SHIFT:
            raise ValueError(f"unknown estimator {a['estimator']!r}; choose one of "
                             f"{', '.join([*ESTIMATORS, LATENT_SHIFT])}")
        a["confounders"] = tuple(a["confounders"] or ())
        for c in a["confounders"]:
            if c not in self.attributes or c == a["attribute"]:
                raise ValueError(f"confounder {c!r} must be another attribute: one of "
                                 f"{', '.join(x for x in self.attributes if x != a['attribute'])}")
        a["match"] = tuple(a["match"] or ())
        for c in a["match"]:
            if c not in self.attributes or c == a["attribute"] or c in a["confounders"]:
                raise ValueError(f"matched attribute {c!r} must be another attribute, not also held by a linear term: "
                                 f"one of {', '.join(x for x in self.attributes if x != a['attribute'])}")
        if a["match"] and a["estimator"] not in ("mean_shift", SPLINE):
            raise ValueError(f"matching holds an attribute for the mean shift; the {a['estimator']} estimator "
                             "cannot use it")
        if a["units"] not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {a['units']!r}")
        a["start"], a["stop"], a["log"] = float(a["start"]), float(a["stop"]), bool(a["log"])
        if not (math.isfinite(a["start"]) and math.isfinite(a["stop"])) or a["start"] == a["stop"]:
            raise ValueError(f"the range {a['start']:g} to {a['stop']:g} is empty or not finite")
        if not 2 <= int(a["n_frames"]) <= MAX_FRAMES:
            raise ValueError(f"n_frames must be between 2 and {MAX_FRAMES}, got {a['n_frames']!r}")
        a["n_frames"] = int(a["n_frames"])
        a["patient"] = self._patient(a["patient"])
        if a["method"] is not None and a["method"] not in METHODS:
            raise ValueError(f"unknown attribution method {a['method']!r}; choose one of {', '.join(METHODS)} or None")
        frame = int(a["frame"])
        if not -a["n_frames"] <= frame < a["n_frames"]:
            raise ValueError(f"frame {frame} is outside the {a['n_frames']} frames")
        a["frame"] = frame % a["n_frames"]
        return a

    # ------------------------------------------------------------------ cached stages

    def direction(self, attribute: str, estimator: str = "mean_shift", confounders: tuple[str, ...] = (),
                  log: bool = False, match: tuple[str, ...] = (), patient: int | None = None,
                  at: tuple[float, float] | None = None) -> Direction:
        """The attribute's direction in w (cached): per unit of the attribute, or of its logarithm.

        ``match`` holds attributes by fitting only on the exams that share ``patient``'s values (an AP
        patient's direction from AP exams), where ``confounders`` are held by linear terms. Matching
        lets the attribute's effect differ between the groups: on the phantoms, NT-proBNP given age and
        view, matched on view, follows the true counterfactual more closely (README, evaluate).
        ``at``: the range of the attribute (fitted scale) a spline mean shift takes its slope over."""
        match = tuple(match)
        at = None if at is None else (float(at[0]), float(at[1]))
        rows = None
        if match:
            if not isinstance(patient, (int, np.integer)):
                raise ValueError(f"matching on {', '.join(match)} needs a cohort patient's values; "
                                 f"patient {patient!r} has none")
            rows = np.ones(len(self.latents), dtype=bool)
            for name in match:
                column = self.values(name)
                if not np.isfinite(column[patient]):
                    raise ValueError(f"patient {patient} has no value of {name!r} to match")
                rows &= column == column[patient]
        key = (attribute, estimator, tuple(confounders), bool(log), match,
               tuple(float(self.values(name)[patient]) for name in match), at)
        with self._lock:
            cached = self._directions.hit(key)
            if cached is not None:
                return cached
            values = self._scale(self.values(attribute), log, attribute)
            covariates = np.column_stack([self.values(c) for c in confounders]) if confounders else None
            try:
                direction = fit_direction(estimator, self.latents, values, covariates, rows=rows, attribute=attribute,
                                          confounder_names=tuple(confounders), **({"at": at} if at else {}))
            except ValueError as error:
                if not match:
                    raise
                held = ", ".join(f"{name} = {self._value_label(name, patient)}" for name in match)
                raise ValueError(f"among the {int(rows.sum())} exams with {held}: {error}") from error
            if match:
                matched = {name: self._value_label(name, patient) for name in match}
                direction = dataclasses.replace(direction, diagnostics={**direction.diagnostics, "matched": matched})
            return self._directions.put(key, direction)

    def two_level(self, name: str) -> bool:
        """Whether the attribute takes two values (sex, AP/PA view): one a patient can be matched on."""
        if name not in self._columns:  # the CNN's prediction: continuous, and costly to compute
            return False
        values = self._columns[name]
        return np.unique(values[np.isfinite(values)]).size == 2

    def _value_label(self, name: str, patient: int) -> str:
        """The patient's value of ``name`` as the table writes it (a text level, or a number)."""
        if name in self.encodings:
            return str(self.table[name].iloc[patient]).strip()
        return f"{float(self.values(name)[patient]):g}"

    def latent_shift(self, patient, attribute: str, log: bool = False, noise_seed: int = 0) -> Direction:
        """Latent Shift for one patient (cached): the direction in which the CNN's prediction on the
        decoded image rises one unit, to first order. ``attribute`` must be what the CNN predicts, on
        the scale it predicts it: the CNN's prediction itself, or its target (on the log scale where
        the CNN learned the logarithm)."""
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
        patient = self._patient(patient)
        key = (LATENT_SHIFT, patient, attribute, noise_seed)
        with self._lock:
            cached = self._directions.hit(key)
            if cached is not None:
                return cached
            scale = float(np.nanstd(self._scale(self.values(attribute), log, attribute)))
            return self._directions.put(key, latent_shift(self.model, self.cnn, self._w(patient), noise_seed=noise_seed,
                                                          scale=scale, attribute=attribute))

    def cosines(self, direction: Direction) -> dict[str, float]:
        """Cosine of the direction with every other attribute's mean-shift direction: how entangled they are.

        The CNN's prediction joins once it has been computed over the cohort (a CNN pass over every
        image, seconds on a CPU), so that the first view does not wait for it."""
        others = {}
        for name in self.attributes:
            if name == direction.attribute or (name == CNN_PREDICTION and self._cohort_predictions is None):
                continue
            try:
                others[name] = self.direction(name)
            except ValueError:  # e.g. too few values: no direction to compare with
                continue
        if not others:
            return {}
        row = cosine_matrix([direction, *others.values()])[0, 1:]
        return dict(zip(others, map(float, row)))

    def _spline_range(self, a: dict) -> tuple[float, float]:
        """The attribute's range this traversal covers, on the fitted scale: where a spline mean
        shift takes its slope (from the patient's own value when the steps are in SDs)."""
        if a["units"] != "sd":
            return tuple(self._scale(np.array([a["start"], a["stop"]]), a["log"], a["attribute"]))
        value, _ = self._patient_value(a["patient"], a["attribute"], a["log"])
        sd = float(np.nanstd(self._scale(self.values(a["attribute"]), a["log"], a["attribute"])))
        return value + a["start"] * sd, value + a["stop"] * sd

    def _patient_value(self, patient, attribute: str, log: bool) -> tuple[float, str]:
        """The patient's attribute on the fitted scale, and where it comes from."""
        if isinstance(patient, int):
            value = self.values(attribute)[patient]
            if np.isfinite(value):
                return float(self._scale(np.array([value]), log, attribute)[0]), \
                    "the CNN" if attribute == CNN_PREDICTION else "the table"
        elif attribute == CNN_PREDICTION:
            value = self._cnn_predict(torch.from_numpy(self._original(patient))[None, None])
            return float(self._scale(value, log, attribute)[0]), "the CNN"
        return self._estimate(patient, attribute, log), "estimated from the latent (no recorded value)"

    def _estimate(self, patient, attribute: str, log: bool) -> float:
        """A ridge regression of the attribute on w, for patients without a recorded value."""
        from sklearn.linear_model import Ridge

        key = ("ridge", attribute, log)
        model = self._directions.hit(key)
        if model is None:
            values = self._scale(self.values(attribute), log, attribute)
            keep = np.isfinite(values)
            model = self._directions.put(key, Ridge(alpha=1.0).fit(self.latents[keep], values[keep]))
        return float(model.predict(self._w(patient)[None].astype(np.float64))[0])

    def _traversal(self, a: dict, direction: Direction, check: Callable[[str], None]) -> dict:
        key = _traversal_key(a)
        cached = self._traversals.hit(key)
        if cached is not None:
            return cached
        log = a["log"]
        patient_scaled, source = self._patient_value(a["patient"], a["attribute"], log)
        if a["units"] == "sd":
            amounts = np.linspace(a["start"], a["stop"], a["n_frames"])
            targets = patient_scaled + amounts * direction.scale
        else:
            targets = np.linspace(*self._scale(np.array([a["start"], a["stop"]]), log, a["attribute"]), a["n_frames"])
            amounts = targets - patient_scaled
        check("decoding the frames")
        t = traverse(self.model, self._w(a["patient"]), direction, amounts, in_sd=a["units"] == "sd",
                     noise_seed=a["noise_seed"])
        check("predicting on the frames")
        original = self._original(a["patient"])
        entry = {"key": key, "traversal": t, "targets_scaled": targets, "patient_scaled": patient_scaled,
                 "patient_value_source": source, "original": original,
                 "cnn_predictions": None, "cnn_original": None, "cnn_reconstruction": None, "oracle_predictions": None}
        if self.cnn is not None:
            stack = [t.reconstruction[None], t.frames] + ([original[None]] if original is not None else [])
            predicted = self._cnn_predict(torch.from_numpy(np.concatenate(stack).astype(np.float32))[:, None])
            entry["cnn_reconstruction"], entry["cnn_predictions"] = float(predicted[0]), predicted[1:1 + len(t.frames)]
            entry["cnn_original"] = float(predicted[-1]) if original is not None else None
        if self.oracle is not None:
            table = self.oracle.predict(at_resolution_of(self.oracle, torch.from_numpy(t.frames)[:, None]))
            if len(table) != len(t.frames):
                raise ValueError(f"the oracle returned {len(table)} rows for {len(t.frames)} frames")
            entry["oracle_predictions"] = table.reset_index(drop=True)
        entry["quality"] = self._quality(a, entry)
        return self._traversals.put(key, entry)

    def _measured_target(self, a: dict, entry: dict) -> tuple[np.ndarray | None, str]:
        """The target as measured on each frame, on the fitted scale, and by what; None when nothing measures it."""
        name, log = a["attribute"], a["log"]
        oracle = entry["oracle_predictions"]
        config = getattr(self.cnn, "config", None)
        if oracle is not None and name in oracle.columns:
            measured, by = oracle[name].to_numpy(np.float64), "the oracle"
        elif entry["cnn_predictions"] is not None and name == CNN_PREDICTION:
            measured, by = entry["cnn_predictions"], "the CNN"
        elif entry["cnn_predictions"] is not None and getattr(config, "attribute", None) == name:
            predicted = entry["cnn_predictions"]
            measured, by = (np.exp(predicted) if config.log_transform else predicted), "the CNN"
        else:
            return None, f"nothing measures {name} on an image (no oracle column or CNN for it)"
        if log and np.any(measured <= 0):
            return None, f"{by} measured values <= 0 on some frames, which a log scale cannot show"
        return self._scale(measured, log, name), by

    def _quality(self, a: dict, entry: dict) -> dict:
        """Scores from :func:`seegaan_explore.explore.quality.score`, with what measured the target."""
        t, oracle = entry["traversal"], entry["oracle_predictions"]
        measured, by = self._measured_target(a, entry)
        if measured is None or len(t.amounts) < 3:
            reason = by if measured is None else "3 or more frames are needed to score a traversal"
            return {**quality.score(t, original=entry["original"]), "measured_by": None, "not_measured": reason}
        others = {c: oracle[c].to_numpy(np.float64) for c in oracle.columns
                  if c != a["attribute"] and pd.api.types.is_numeric_dtype(oracle[c])} if oracle is not None else {}
        return {**quality.score(t, measured, others=others, original=entry["original"]), "measured_by": by,
                "measured": measured}

    def _attribution(self, key: Hashable, image: np.ndarray, method: str) -> np.ndarray:
        cached = self._attributions.hit((key, method))
        if cached is not None:
            return cached
        x = at_resolution_of(self.cnn, torch.from_numpy(np.asarray(image, np.float32))[None, None])
        maps = torch.from_numpy(attribute(self.cnn, x, method))[:, None]
        if maps.shape[-1] != self.resolution:
            maps = F.interpolate(maps, size=(self.resolution,) * 2, mode="area" if maps.shape[-1] > self.resolution
                                 else "bilinear")
        return self._attributions.put((key, method), maps[0, 0].numpy())

    # ------------------------------------------------------------------ the one call

    def render(self, args: dict, *, cancelled: Callable[[], bool] | None = None,
               progress: Callable[[str], None] | None = None) -> dict:
        """Everything the screen shows for ``args`` (see :data:`DEFAULTS`), or ``{"error": message}``.

        ``cancelled()`` is polled between stages: when it turns true the result is
        ``{"cancelled": True}`` (a newer request wins). ``progress(stage)`` names each stage as it starts.
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        clock = [started]
        stage = ["checking the arguments"]

        def check(next_stage: str) -> None:
            now = time.perf_counter()
            timings[stage[0]] = now - clock[0]
            clock[0], stage[0] = now, next_stage
            if cancelled is not None and cancelled():
                raise Cancelled
            if progress is not None:
                progress(next_stage)

        try:
            with self._lock:
                result = self._render(args, check)
        except Cancelled:
            return {"args": args, "cancelled": True, "error": None, "timings": timings}
        except (ValueError, KeyError) as e:
            return {"args": args, "cancelled": False, "error": f"{stage[0]}: {e}", "timings": timings}
        except Exception as e:  # noqa: BLE001 -- a bug or a resource problem: report it, keep the kernel alive
            return {"args": args, "cancelled": False, "error": f"{stage[0]}: {type(e).__name__}: {e}",
                    "traceback": traceback.format_exc(), "timings": timings}
        check("done")
        timings["total"] = time.perf_counter() - started
        return {**result, "timings": timings}

    def _render(self, args: dict, check: Callable[[str], None]) -> dict:
        a = self._normalise(args)
        check("fitting the direction")
        if a["estimator"] == LATENT_SHIFT:
            direction = self.latent_shift(a["patient"], a["attribute"], a["log"], a["noise_seed"])
        else:
            direction = self.direction(a["attribute"], a["estimator"], a["confounders"], a["log"], a["match"],
                                       a["patient"], self._spline_range(a) if a["estimator"] == SPLINE else None)
        cached_traversal = _traversal_key(a) in self._traversals
        check("comparing with the other attributes")
        cosines = self.cosines(direction)
        check("building the traversal")
        entry = self._traversal(a, direction, check)
        t, log = entry["traversal"], a["log"]
        original = entry["original"]
        limit = float(max(np.percentile(t.summary_map, 99.5), 1e-3))
        result = {
            "args": a, "error": None, "cancelled": False,
            "attribute": a["attribute"], "label": self.label(a["attribute"]), "log": log,
            "direction": direction, "diagnostics": direction.diagnostics, "cosines": cosines,
            "patient": a["patient"], "patient_label": self.patient_label(a["patient"]),
            "patient_value": float(self._native(entry["patient_scaled"], log)),
            "patient_value_source": entry["patient_value_source"],
            "traversal": t, "amounts": t.amounts, "in_sd": t.in_sd,
            "targets": self._native(entry["targets_scaled"], log),
            "frames": to_uint8(t.frames), "differences": t.differences.astype(np.float32),
            "difference_limit": limit, "summary_map": t.summary_map.astype(np.float32),
            "reconstruction": to_uint8(t.reconstruction), "original": None if original is None else to_uint8(original),
            "cnn_label": self.label(CNN_PREDICTION) if self.cnn is not None else None,
            "cnn_predictions": entry["cnn_predictions"], "cnn_original": entry["cnn_original"],
            "cnn_reconstruction": entry["cnn_reconstruction"], "oracle_predictions": entry["oracle_predictions"],
            "quality": entry["quality"], "frame": a["frame"], "method": a["method"],
            "attribution_original": None, "attribution_frame": None, "agreement": None,
            "cached": {"traversal": cached_traversal},
        }
        if self.cnn is not None and a["method"] is not None:
            check("attributing the original")
            image = original if original is not None else t.reconstruction
            result["attribution_original"] = self._attribution(("original", a["patient"]), image, a["method"])
            check("attributing the frame")
            result["attribution_frame"] = self._attribution(("frame", entry["key"], a["frame"]), t.frames[a["frame"]],
                                                            a["method"])
            result["agreement"] = agreement(t.summary_map, result["attribution_original"])
        return result


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def plain_words(result: dict) -> list[str]:
    """The direction's diagnostics and the traversal's quality, as sentences a clinician reads."""
    if result.get("error") or result.get("cancelled"):
        return []
    name, d, q = result["attribute"], result["diagnostics"], result["quality"]
    direction = result["direction"]
    lines = [(f"Patient {result['patient_label']}: {result['label']} {result['patient_value']:.3g} "
              f"(from {result['patient_value_source']}).")]
    if direction.kind == "predictive":
        lines.append(f"The {direction.estimator} direction is diagnostic: it shows what the latent code knows "
                     f"about {name}, and need not change the image the way {name} does.")
    if direction.estimator == SPLINE:
        low, high = result["targets"][0], result["targets"][-1]
        lines.append(f"The direction is the mean change of the latent code between {name} {low:.3g} and {high:.3g}, "
                     f"this traversal's range: what changes from this patient's level of {name}, where the "
                     f"straight mean shift averages the change over the whole cohort. {d['n_in_range']} of the "
                     f"{d['n']} exams lie in that range; the fewer, the noisier the direction.")
    if "matched" in d:
        held = " and ".join(f"{k} {v}" for k, v in d["matched"].items())
        lines.append(f"The direction was fitted on the {d['n']} exams with {held}, as this patient's.")
    if "unique_variance_of_attribute" in d and direction.confounders:
        among = "Among these exams, " if "matched" in d else ""
        lines.append(f"{among}{d['unique_variance_of_attribute']:.0%} of the variation in {name} is not explained by "
                     f"{', '.join(direction.confounders)}; the direction uses that part only.")
    for key, what in (("cv_r2", "R²"), ("cv_roc_auc", "AUC")):
        if key in d:
            lines.append(f"The latent code predicts {name} with a cross-validated {what} of {d[key]:.2f}.")
    if "correlation" in d:
        lines.append(f"This principal axis explains {d['explained_variance_ratio']:.0%} of the latent variance and "
                     f"correlates {d['correlation']:.2f} with {name}.")
    if direction.estimator == LATENT_SHIFT:
        lines.append(f"Latent Shift: for this patient only, the change of the image that raises the CNN's prediction "
                     f"fastest. It explains the CNN (what it responds to here), not how {name} differs across "
                     "the cohort.")
    else:
        lines.append(f"Fitted on {d.get('n', '?')} images.")
    strongest = sorted(result["cosines"].items(), key=lambda kv: -abs(kv[1]))[:3]
    if strongest:
        lines.append("Most entangled with: " + ", ".join(f"{k} (cosine {_signed(v)})" for k, v in strongest)
                     + ". Near ±1 means moving along this direction also moves that attribute.")
    if q.get("measured_by"):
        mono = q["monotonicity"]
        lines.append(f"Measured by {q['measured_by']}, {name} "
                     + ("rises steadily" if mono > 0.9 else "rises, unevenly," if mono > 0.5 else "does not rise")
                     + f" across the frames (rank correlation {mono:.2f}).")
        achieved = q["achieved_over_intended"]
        if math.isfinite(achieved):
            lines.append(f"The frames reach {achieved:.0%} of the intended change in {name}.")
        leaks = sorted(q["leakage"].items(), key=lambda kv: -abs(kv[1]))[:3]
        if leaks:
            lines.append("Other attributes change along the way (per unit of intended change): "
                         + ", ".join(f"{k} {_signed(v)}" for k, v in leaks) + ".")
    elif q.get("not_measured"):
        lines.append(f"Not scored: {q['not_measured']}.")
    if "proximity" in q:
        lines.append(f"Proximity {q['proximity']:.2f}: "
                     + ("the change is concentrated in a small region." if q["proximity"] > 0.7
                        else "the change spreads over much of the image."))
    if "reconstruction_psnr_db" in q:
        lines.append(f"The reconstruction matches the original image at {q['reconstruction_psnr_db']:.1f} dB PSNR "
                     "(higher is more faithful; frames start from the reconstruction).")
    if result["agreement"] is not None:
        g = result["agreement"]
        lines.append(f"Where the traversal changes the image and where the CNN looks ({result['method']}) "
                     f"agree with rank correlation {g['spearman']:.2f}; {g['top_overlap']:.0%} of their top 5% "
                     "pixels coincide.")
    return lines
