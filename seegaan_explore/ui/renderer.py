"""One renderer: plain arguments in, one result dict out.

The pattern of NVlabs' stylegan3 visualizer: widgets only write plain values (an attribute name, a
range, a patient index) into an arguments dict; this renderer turns that dict into everything the
screen shows, caching what is expensive. What the arguments mean for the cohort (attributes, the
patient's value, the direction it traverses) is the :class:`~seegaan_explore.explore.study.Study`'s
to answer; the renderer normalises arguments, calls the study, traverses and attributes. A bad
request becomes a message in ``result["error"]`` instead of an exception, so it never takes a kernel
down. Nothing here imports a widget: notebooks, tests and the dashboard make the same call. It is
about 450 lines because each stage of a render (direction, calibration, traversal, scores,
verdict, attribution) keeps its cache, lock and cancellation point here, in order; what each stage
computes lives in :mod:`seegaan_explore.explore`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.images import preprocess, to_uint8
from ..explore import quality
from ..explore.attribution import METHODS, agreement, attribute
from ..explore.calibration import (
    Calibration,
    FilmReader,
    calibrate_for,
    other_patients,
    response_steps,
)
from ..explore.directions import ESTIMATORS, Direction
from ..explore.readers import NAME as READER
from ..explore.readers import film_attributes, readers_of
from ..explore.report import score_film
from ..explore.study import (
    CNN_PREDICTION,
    COHORT_MEDIAN,
    ESTIMATED,
    LATENT_SHIFT,
    MATCHABLE,
    SPLINE,
    Lru,
    Study,
    from_scale,
    latent_array,
    on_scale,
)
from ..explore.traversal import traverse
from ..explore.verdict import Verdict
from ..model.cnn import at_resolution_of
from ..model.seegaan import SeeGaan

__all__ = ["CNN_PREDICTION", "DEFAULTS", "LATENT_SHIFT", "MATCHABLE", "MAX_FRAMES", "SPLINE", "UNITS", "Renderer",
           "plainly"]

logger = logging.getLogger(__name__)

UNITS = ("sd", "value")  # steps in standard deviations of the attribute, or target values in its own units
MAX_FRAMES = 64
DEFAULTS = {"attribute": None, "estimator": "mean_shift", "confounders": (), "match": (), "log": False, "units": "sd",
            "start": -2.0, "stop": 2.0, "n_frames": 9, "patient": 0, "method": "gradcam", "frame": -1,
            "noise_seed": 0, "clip": True, "calibrate": True}


class Cancelled(Exception):
    """A newer request superseded this one (raised between stages, never shown)."""


def plainly(error: Exception) -> str:
    """An unexpected error as a sentence for the screen; its type and traceback go to the log."""
    what = f"{error.args[0]} is missing" if isinstance(error, KeyError) and error.args else str(error)
    return f"it failed unexpectedly ({what or 'no details'}); the server's log has the details"


def _traversal_key(a: dict) -> tuple:
    return tuple(a[k] for k in ("attribute", "estimator", "confounders", "match", "log", "patient", "units", "start",
                                "stop", "n_frames", "noise_seed", "clip", "calibrate"))


class Renderer:
    """Turns plain arguments into a result dict; see :data:`DEFAULTS` for the arguments.

    The cohort is a :class:`~seegaan_explore.explore.study.Study` of ``latents`` and ``table`` (see
    it for ``cnn``, ``oracle``, ``images``, ``attributes`` and ``cache_dir``), available as ``self.study``. Uploaded
    images join as patients ``"upload:<name>"``. Each cache has its own lock and the model one of its
    own, held per call, so that an upload or a thumbnail never waits for a whole render.
    """

    def __init__(self, model: SeeGaan, latents, table: pd.DataFrame, *, cnn: torch.nn.Module | None = None,
                 oracle=None, images=None, attributes: list[str] | None = None, dictionary=None,
                 cache_size: int = 32, cache_dir=None, framing: str = "pad"):
        latents = latent_array(latents)
        n = len(latents)
        if np.shape(latents)[1] != model.config.w_dim:
            raise ValueError(f"latents of shape {tuple(np.shape(latents))} do not fit the model "
                             f"(w_dim {model.config.w_dim})")
        r = model.config.resolution
        if images is not None and tuple(np.shape(images)) != (n, r, r):
            raise ValueError(f"images of shape {tuple(np.shape(images))} do not match {n} latents "
                             f"at the model's {r} px")
        if images is not None and n:
            brightest = float(np.abs(np.asarray(images[:64], np.float32)).max())  # a sample: a cohort may be huge
            if brightest > 1.5:
                raise ValueError(f"images reach {brightest:g}, where the model's are in [-1, 1]: pass them as "
                                 "cohort.images(resolution) gives them (8-bit pixels p as p / 127.5 - 1)")
        self.study = Study(latents, table, model=model, cnn=cnn, oracle=oracle, images=images, attributes=attributes,
                           dictionary=dictionary, cache_dir=cache_dir)
        self.model, self.cnn, self.oracle, self.images = model, cnn, oracle, images
        self.resolution = r
        self.framing = framing  # how the cohort's images were fitted into the square; an upload is fitted alike
        self._model_lock = threading.Lock()  # one forward pass at a time; held per call, never for a whole render
        self._once = threading.Lock()
        self._uploads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._traversals = Lru(cache_size)
        self._attributions = Lru(4 * cache_size)
        self._calibrations = Lru(cache_size)
        self._film_readers = Lru(cache_size)  # per direction: the other patients' films it has read
        self._cohort_psnr: quality.CohortPsnr | None = None

    @property
    def latents(self) -> np.ndarray:
        return self.study.latents

    # ------------------------------------------------------------------ what the screen shows besides a render

    def patient_label(self, patient) -> str:
        if isinstance(patient, str):
            return f"your image ({patient.removeprefix('upload:')})"
        table = self.study.table
        for column in ("image_id", "patient_id", "id"):
            if column in table.columns:
                return f"{table[column].iloc[patient]} (#{patient})"
        return f"#{patient}"

    def thumbnail(self, patient) -> np.ndarray:
        """The patient's image as uint8 [R, R]: the original where known, else its reconstruction."""
        patient = self._patient(patient)
        original = self._original(patient)
        if original is not None:
            return to_uint8(original)
        with self._model_lock:
            return to_uint8(self.model.decode(torch.from_numpy(self.latents[patient:patient + 1]))[0, 0].cpu().numpy())

    def add_image(self, image: np.ndarray, name: str) -> str:
        """Encode a user's radiograph (as :func:`~seegaan_explore.data.readers.read_image` returns it);
        returns the patient key (``"upload:<name>"``) to put in ``args["patient"]``."""
        prepared = preprocess(image, self.resolution, framing=self.framing)
        with self._model_lock:
            w = self.model.encode(torch.from_numpy(prepared)[None, None])[0].cpu().numpy()
        key = f"upload:{name}"
        self._uploads[key] = (w, prepared)
        return key

    # ------------------------------------------------------------------ patients: cohort rows or uploads

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

    def _who(self, patient) -> dict:
        """How the study knows a patient: a cohort row, or an upload's latent and image."""
        if isinstance(patient, str):
            return {"w": self._w(patient), "image": self._original(patient)}
        return {"row": patient}

    def _patient_value(self, a: dict) -> tuple[float, str]:
        """The patient's attribute on the fitted scale, and where it comes from."""
        return self.study.patient_value(a["attribute"], a["log"], **self._who(a["patient"]))

    # ------------------------------------------------------------------ arguments

    def _normalise(self, args: dict) -> dict:
        unknown = set(args) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown argument(s) {sorted(unknown)}; the arguments are {sorted(DEFAULTS)}")
        a = {**DEFAULTS, **args}
        a["attribute"] = self.study.check(a["attribute"] or self.study.default_attribute)
        if a["estimator"] not in ESTIMATORS and a["estimator"] != LATENT_SHIFT:
            raise ValueError(f"unknown estimator {a['estimator']!r}; choose one of "
                             f"{', '.join([*ESTIMATORS, LATENT_SHIFT])}")
        a["confounders"], a["match"] = tuple(a["confounders"] or ()), tuple(a["match"] or ())
        if a["match"] and a["estimator"] not in MATCHABLE:
            held = " and ".join(map(self.study.label, a["match"]))
            raise ValueError(f"only a mean shift can be fitted on the exams that share this patient's {held}; the "
                             f"{a['estimator'].replace('_', ' ')} direction cannot use it")
        if a["units"] not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {a['units']!r}")
        a["start"], a["stop"] = float(a["start"]), float(a["stop"])
        a["log"], a["clip"], a["calibrate"] = bool(a["log"]), bool(a["clip"]), bool(a["calibrate"])
        if not (math.isfinite(a["start"]) and math.isfinite(a["stop"])):
            raise ValueError(f"the range {a['start']:g} to {a['stop']:g} is not finite")
        if a["start"] == a["stop"]:  # (a level's button pressed for a patient who has that level)
            at = (self.study.format(a["attribute"], a["start"]) if a["units"] == "value" else
                  f"{a['start']:+g} cohort SD")
            raise ValueError(f"the film would start and end at {at}: choose another end")
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

    def direction(self, a: dict) -> Direction:
        """The direction normalised arguments ``a`` traverse (the study caches it)."""
        patient = a["patient"]
        if a["estimator"] == LATENT_SHIFT:
            with self._model_lock:
                return self.study.latent_shift(self._w(patient), a["attribute"], a["log"], a["noise_seed"],
                                               key=patient)
        at = None
        if a["estimator"] == SPLINE:
            at = self.study.range_of(a["attribute"], a["log"], (a["start"], a["stop"]), units=a["units"],
                                     **self._who(patient))
            if a["clip"]:  # the slope over the range the film will cover
                at = self.study.within_range(a["attribute"], a["log"], *at, start=self._patient_value(a)[0])[:2]
        return self.study.direction(a["attribute"], a["estimator"], a["confounders"], a["log"], a["match"],
                                    row=None if isinstance(patient, str) else patient, at=at)

    def _calibrated(self, a: dict, direction: Direction,
                    cancelled: Callable[[], bool] | None = None) -> tuple[Direction, Calibration] | None:
        """``direction`` calibrated on other cohort patients where the oracle, the CNN or (on a real
        cohort) a trusted latent reader reads the target (:mod:`~seegaan_explore.explore.calibration`);
        as it is, saying why, where it cannot be. With ``cancelled``, the other patients' films are
        read one at a time first, and None is returned once it is true."""
        label = self.study.label(a["attribute"])
        if a["estimator"] == LATENT_SHIFT:
            return direction, Calibration.not_done("latent shift follows this patient's own CNN gradient.")
        if direction.kind != "generative":
            return direction, Calibration.not_done(f"the {a['estimator']} direction predicts the attribute; it is "
                                                   "not fitted to draw it.")
        key = (*self._along(a, direction), a["patient"], a["match"])
        cached = self._calibrations.hit(key)
        if cached is None:
            reader = self._film_reader(a, direction)
            if cancelled is not None and reader.by is not None and direction.path is None:
                for row in other_patients(self.study, a["attribute"], a["patient"], a["match"]):
                    if cancelled():
                        return None
                    reader(row, response_steps(direction))
            cached = calibrate_for(self.study, direction, a["attribute"], a["log"], a["patient"], a["match"],
                                   reader=reader)
            if cached[1] is None:
                cached = direction, Calibration.not_done(f"nothing reads {label} on an image (no oracle, no CNN of "
                                                         f"it, and the {READER} cannot read it well enough), so the "
                                                         "steps are drawn as fitted.")
            self._calibrations.put(key, cached)
        return cached

    @staticmethod
    def _along(a: dict, direction: Direction) -> tuple:
        return direction.vector.tobytes(), direction.scale, a["attribute"], a["log"], a["noise_seed"]

    def _film_reader(self, a: dict, direction: Direction) -> FilmReader:
        """The reader of other patients' films along ``direction``: one per direction, each film read once."""
        along = self._along(a, direction)
        return self._film_readers.hit(along) or self._film_readers.put(along, FilmReader(
            self.study, direction, a["attribute"], a["log"], a["noise_seed"], self._model_lock))

    def prepare(self, args: dict, cancelled: Callable[[], bool]) -> bool:
        """Do ahead the slow part of the film ``args`` ask for, its calibration (the other patients' films
        read along the direction), so that :meth:`render` finds it cached; one patient's film at a time,
        stopping once ``cancelled()``. False if cancelled or ``args`` are not valid."""
        try:
            a = self._normalise(args)
            if not a["calibrate"] or a["estimator"] == LATENT_SHIFT:  # (latent shift: one patient's gradient)
                return True
            direction = self.direction(a)
        except (ValueError, KeyError):
            return False
        return self._calibrated(a, direction, cancelled) is not None

    def _traversal(self, a: dict, direction: Direction, check: Callable[[str], None]) -> dict:
        key = _traversal_key(a)
        cached = self._traversals.hit(key)
        if cached is not None:
            return cached
        log = a["log"]
        patient_scaled, source = self._patient_value(a)
        sd = a["units"] == "sd"
        ends = ([patient_scaled + a[k] * direction.scale for k in ("start", "stop")] if sd
                else list(on_scale([a["start"], a["stop"]], log, a["attribute"])))
        note = None
        if a["clip"]:  # a Latent Shift's steps too: they promise what the CNN reads, and it reads no -131 mg/L
            *ends, note = self.study.within_range(a["attribute"], log, *ends, start=patient_scaled)
        targets = np.linspace(*ends, a["n_frames"])
        amounts = (targets - patient_scaled) / direction.scale if sd else targets - patient_scaled
        check("decoding the frames")
        with self._model_lock:
            t = traverse(self.model, self._w(a["patient"]), direction, amounts, in_sd=a["units"] == "sd",
                         noise_seed=a["noise_seed"])
        check("predicting on the frames")
        original = self._original(a["patient"])
        entry = {"key": key, "traversal": t, "targets_scaled": targets, "patient_scaled": patient_scaled,
                 "range_note": note,
                 "patient_value_source": source, "original": original,
                 "cnn_predictions": None, "cnn_original": None, "cnn_reconstruction": None, "oracle_predictions": None}
        if self.cnn is not None:
            stack = [t.reconstruction[None], t.frames] + ([original[None]] if original is not None else [])
            predicted = self.study.cnn_predict(torch.from_numpy(np.concatenate(stack).astype(np.float32))[:, None])
            entry["cnn_reconstruction"], entry["cnn_predictions"] = float(predicted[0]), predicted[1:1 + len(t.frames)]
            entry["cnn_original"] = float(predicted[-1]) if original is not None else None
        if self.oracle is not None:
            entry["oracle_predictions"] = self.study.oracle_predict(torch.from_numpy(t.frames)[:, None])
        entry["quality"], entry["verdict"], entry["leakage"] = self._score(a, entry)
        return self._traversals.put(key, entry)

    def _score(self, a: dict, entry: dict) -> tuple[dict, Verdict, list]:
        """The film's scores, verdict and the other attributes' change in words, by the rule
        ``traverse`` follows (:func:`~seegaan_explore.explore.report.score_film`). On the phantoms the
        oracle reads every other attribute; on a real cohort, readers fitted on the cohort's latents
        read them on the re-encoded frames (:mod:`~seegaan_explore.explore.readers`)."""
        oracle = entry["oracle_predictions"]
        measured, by = self.study.measured(a["attribute"], a["log"], cnn_predictions=entry["cnn_predictions"],
                                           oracle_predictions=oracle)
        others = readers = None
        if oracle is not None:
            others = {c: oracle[c].to_numpy(np.float64) for c in oracle.columns if c != a["attribute"]
                      and c in self.study.attributes and pd.api.types.is_numeric_dtype(oracle[c])}
        else:
            readers = readers_of(self.study, film_attributes(self.study, a["attribute"]))
        cohort_psnr = self.cohort_psnr()
        with self._model_lock if readers is not None else contextlib.nullcontext():  # re-encoding the frames
            scores, verdict, leakage = score_film(
                entry["traversal"], study=self.study, model=self.model, readers=readers, measured=measured,
                measured_by=by, not_measured=by, others=others, original=entry["original"], cohort_psnr=cohort_psnr,
                target=a["attribute"], log=a["log"], held=set(a["confounders"]) | set(a["match"]),
                estimated=self._start_in_words(a, entry))
        if scores["measured_by"] is not None:
            scores["measured"] = measured
        return scores, verdict, leakage

    def _start_in_words(self, a: dict, entry: dict) -> str | None:
        """What stands in for a patient's value that is not recorded, for the verdict (None: recorded)."""
        source = entry["patient_value_source"]
        if source not in (ESTIMATED, COHORT_MEDIAN):
            return None
        value = self.study.estimate_in_words(a["attribute"], a["log"], entry["patient_scaled"])
        return (f"an estimate read off the image ({value}) stands in for it" if source == ESTIMATED else
                f"the cohort's median ({value}) stands in for it, as nothing reads it reliably from an image")

    def cohort_psnr(self) -> quality.CohortPsnr | None:
        """The cohort's reconstruction PSNR (:func:`~seegaan_explore.explore.quality.cohort_psnr`),
        computed once; None without images."""
        with self._once:
            if self._cohort_psnr is None and self.images is not None:
                with self._model_lock:
                    self._cohort_psnr = quality.cohort_psnr(self.model, self.latents,
                                                            lambda rows: [self.images[k] for k in rows],
                                                            self.study.cache_dir)
            return self._cohort_psnr

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
               progress: Callable[[str], None] | None = None, attribution: bool = True) -> dict:
        """Everything the screen shows for ``args`` (see :data:`DEFAULTS`), or ``{"error": message}``.

        ``cancelled()`` is polled between stages: when it turns true the result is
        ``{"cancelled": True}`` (a newer request wins). ``progress(stage)`` names each stage as it starts.
        ``attribution=False`` leaves the attribution maps out, for :meth:`attribute` to add: the film
        need not wait for them.
        """
        return self._staged(lambda check: self._render(args, check, attribution), args, cancelled, progress)

    def attribute(self, result: dict, *, cancelled: Callable[[], bool] | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
        """``result`` (rendered with ``attribution=False``) with its attribution maps added."""
        return self._staged(lambda check: {**result, **self._attribution_stage(result, check)}, result["args"],
                            cancelled, progress)

    @staticmethod
    def _staged(run: Callable, args: dict, cancelled, progress) -> dict:
        """Run ``run(check)``: time each stage, stop when ``cancelled()``, turn errors into messages."""
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
            result = run(check)
        except Cancelled:
            return {"args": args, "cancelled": True, "error": None, "timings": timings}
        except ValueError as e:
            return {"args": args, "cancelled": False, "error": f"{stage[0]}: {e}", "timings": timings}
        except Exception as e:  # noqa: BLE001 -- a bug or a resource problem: report it, keep the kernel alive
            logger.exception("%s failed", stage[0])  # the exception's type and traceback, for whoever debugs it
            return {"args": args, "cancelled": False, "error": f"{stage[0]}: {plainly(e)}",
                    "traceback": traceback.format_exc(), "timings": timings}
        check("done")
        timings["total"] = time.perf_counter() - started
        return {**result, "timings": timings}

    def _render(self, args: dict, check: Callable[[str], None], attribution: bool) -> dict:
        a = self._normalise(args)
        check("fitting the direction")
        direction, calibration = self.direction(a), None
        if a["calibrate"]:
            check("calibrating on other patients")
            direction, calibration = self._calibrated(a, direction)
        cached_traversal = _traversal_key(a) in self._traversals
        check("comparing with the other attributes")
        cosines = self.study.cosines(direction)
        check("building the traversal")
        entry = self._traversal(a, direction, check)
        t, log = entry["traversal"], a["log"]
        original = entry["original"]
        limit = float(max(np.percentile(t.summary_map, 99.5), 1e-3))
        result = {
            "args": a, "error": None, "cancelled": False,
            "attribute": a["attribute"], "label": self.study.label(a["attribute"]), "log": log,
            "direction": direction, "diagnostics": direction.diagnostics, "cosines": cosines,
            "patient": a["patient"], "patient_label": self.patient_label(a["patient"]),
            "patient_value": float(from_scale(entry["patient_scaled"], log)),
            "patient_value_source": entry["patient_value_source"],
            "traversal": t, "amounts": t.amounts, "in_sd": t.in_sd,
            "targets": from_scale(entry["targets_scaled"], log),
            "frames": to_uint8(t.frames), "differences": t.differences.astype(np.float32),
            "difference_limit": limit, "summary_map": t.summary_map.astype(np.float32),
            "reconstruction": to_uint8(t.reconstruction), "original": None if original is None else to_uint8(original),
            "cnn_label": self.study.label(CNN_PREDICTION) if self.cnn is not None else None,
            "cnn_predictions": entry["cnn_predictions"], "cnn_original": entry["cnn_original"],
            "cnn_reconstruction": entry["cnn_reconstruction"], "oracle_predictions": entry["oracle_predictions"],
            "range_note": entry["range_note"], "quality": entry["quality"], "calibration": calibration,
            "verdict": entry["verdict"], "leakage": entry["leakage"], "cohort_psnr": self.cohort_psnr(),
            "frame": a["frame"], "method": a["method"],
            "attribution_original": None, "attribution_frame": None, "agreement": None,
            "cached": {"traversal": cached_traversal},
        }
        return {**result, **self._attribution_stage(result, check)} if attribution else result

    def _attribution_stage(self, result: dict, check: Callable[[str], None]) -> dict:
        """The attribution maps on the original (or its reconstruction) and on the chosen frame, and
        their agreement with where the traversal changes the image; empty without a CNN or a method."""
        a, t = result["args"], result["traversal"]
        if self.cnn is None or a["method"] is None:
            return {}
        check("attributing the original")
        original = self._original(a["patient"])
        image = original if original is not None else t.reconstruction
        on_original = self._attribution(("original", a["patient"]), image, a["method"])
        check("attributing the frame")
        on_frame = self._attribution(("frame", _traversal_key(a), a["frame"]), t.frames[a["frame"]], a["method"])
        return {"attribution_original": on_original, "attribution_frame": on_frame,
                "agreement": agreement(t.summary_map, on_original)}
