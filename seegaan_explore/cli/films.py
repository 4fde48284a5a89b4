"""``traverse`` and ``export``: patients moved along a direction, and the film files written from
them (GIF, MP4, PNG panel, HTML report, the .npz that ``export`` reads back)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import (
    add_autoencoder_arguments,
    add_optional_cohort_arguments,
    add_threads_argument,
    autoencoder,
    check_ids,
    encoded_cohort,
    load_named_image,
    output_names,
    safe_name,
    user_errors,
)
from .directions import (
    CNN_PREDICTION,
    add_direction_fit_arguments,
    cohort_study,
    explainer,
    fit_cohort_direction,
    per_patient_fitter,
    said_rows,
)

__all__ = ["FORMATS", "add_export", "add_traverse", "write_traversal"]

FORMATS = ("gif", "mp4", "png", "html", "npz")


def add_traverse(sub) -> None:
    p = sub.add_parser("traverse", help="move patients along a direction and write the frames",
                       description="Decode each patient's latent stepped along a direction (noise shared by "
                                   "every frame) and write <out>/<patient>.<attribute>.<format>. Steps are in "
                                   "attribute units (ln units with --log), or SDs with --sd.")
    add_autoencoder_arguments(p)
    add_threads_argument(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", nargs="+", help="image id(s) of the cohort (needs --data)")
    who.add_argument("--image", nargs="+", type=Path, help="image file(s) (DICOM/PNG/JPEG/NPY)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--direction", type=Path,
                     help="a direction file (.safetensors), or the original's average latents (.npy, k x w_dim; "
                          "steps follow the bins, see --bin-values)")
    how.add_argument("--attribute", help="fit the direction of this column now (needs --data); view=PA or view=PA:AP "
                                         "for a level of a categorical column")
    how.add_argument("--latent-shift", action="store_true",
                     help="per patient, the gradient of --cnn's prediction through the generator (Latent Shift); "
                          "steps in units of the prediction")
    add_direction_fit_arguments(p)
    p.add_argument("--match", nargs="+", default=[], metavar="COLUMN",
                   help="with --id and --attribute (mean_shift, spline_mean_shift): fit each patient's direction on "
                        "the exams that share its value of these columns (e.g. view), instead of holding them by a "
                        "linear term")
    p.add_argument("--bin-values", nargs="+", type=float,
                   help="attribute value of each average-latents bin (default 0..k-1: one unit per bin, so "
                        "--amounts 0 1 .. k-1 give the original's frames G(w + h_k - h_0); steps between bins "
                        "follow the straight line between them, steps beyond the bins are refused)")
    steps = p.add_mutually_exclusive_group(required=True)
    steps.add_argument("--amounts", nargs="+", type=float, help="steps, e.g. -2 -1 0 1 2")
    steps.add_argument("--range", nargs=2, type=float, metavar=("FROM", "TO"), help="evenly spaced steps")
    p.add_argument("--frames", type=int, default=9, help="number of steps with --range (default 9)")
    p.add_argument("--sd", action="store_true", help="steps in SDs of the attribute")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the generator's per-pixel noise")
    p.add_argument("--cnn", type=Path, help="attribute CNN checkpoint: its prediction for every frame")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="draw the steps as fitted; by default, with a cohort, where --cnn or the cohort's trusted "
                        "latent reader reads the attribute, each step is drawn where it reads, on the films of the 8 "
                        "cohort patients nearest in the attribute, the change it promises (as the dashboard does)")
    p.add_argument("--attribution", help="with --cnn: add this attribution method's maps to the PNG panel")
    p.add_argument("--format", nargs="+", default=["gif", "png", "npz"], choices=FORMATS,
                   help="output formats (default gif png npz; npz can be re-exported with `export`)")
    p.add_argument("--fps", type=float, default=8, help="frames per second of a GIF or MP4")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_optional_cohort_arguments(p, "--id and --attribute")
    p.set_defaults(run=user_errors(_run_traverse))


def _run_traverse(args) -> int:
    import math

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from ..explore.archives import load_direction
    from ..explore.attributes import split_scaled_name
    from ..explore.readers import film_attributes, readers_of
    from ..explore.report import Readings, report_on
    from ..explore.study import measured
    from ..explore.traversal import traverse

    progress = not args.no_progress
    if args.range is not None and args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    amounts = np.array(args.amounts) if args.amounts else np.linspace(*args.range, args.frames)
    model = autoencoder(args)
    cnn, label = explainer(args, model.config.resolution)
    if args.latent_shift and (cnn is None or args.sd):
        raise ValueError("--latent-shift needs --cnn, and steps in units of its prediction (no --sd)")
    direction = load_direction(args.direction, bin_values=args.bin_values) if args.direction else None
    if direction is not None and args.sd and not math.isfinite(direction.scale):
        raise ValueError(f"{args.direction}: the direction does not record the attribute's SD; give steps in "
                         "attribute units (without --sd)")
    if args.match and not (args.id and args.attribute and args.estimator in ("mean_shift", "spline_mean_shift")):
        raise ValueError("--match fits each cohort patient's mean shift among the exams like it: it needs --id, "
                         "--attribute and the mean_shift or spline_mean_shift estimator")
    per_patient = bool(args.attribute and (args.match or args.estimator == "spline_mean_shift"))
    if per_patient and not args.id:
        raise ValueError("spline_mean_shift takes each patient's slope from its own value of the attribute: "
                         "it needs cohort patients (--id), not --image")
    if args.where and not args.attribute:
        raise ValueError("--where chooses the rows a direction is fitted on: it needs --attribute")
    study = readers = cohort_psnr = None
    if args.id or args.attribute or args.data is not None:
        cohort, latents = encoded_cohort(args, model, progress)
        study = cohort_study(cohort, latents, args, cnn=cnn, model=model)
        fitted_on = study.subset(args.where)[0] if args.attribute else None
        if per_patient:
            fit_for = per_patient_fitter(study, latents, args.attribute, args, amounts)
        elif direction is None:
            direction = fit_cohort_direction(study, args.attribute, args)
            if said_rows(direction):
                print(said_rows(direction), file=sys.stderr)
    if study is not None:  # the other attributes are read on the frames, as the dashboard reads them
        readers = readers_of(study, film_attributes(study, study.check(args.attribute) if args.attribute else None),
                             cohort.patient_column)
        cohort_psnr = _cohort_psnr(model, cohort, latents, args)
    subjects = args.id or args.image
    paths = dict(zip(cohort.ids, cohort.paths)) if args.id else {}
    if args.id:
        check_ids(args.id, latents.ids, cohort, args.data)
    names = {} if args.id else dict(zip(args.image, output_names(args.image)))
    for subject in tqdm(subjects, desc="Traversals", unit="patient", disable=not progress or len(subjects) < 2):
        if args.id:
            w0, name = latents.latent(subject), subject
            if per_patient:
                direction = fit_for(subject)
            original = load_named_image(paths[subject], model.config.resolution, args)
        else:
            original = load_named_image(subject, model.config.resolution, args)
            w0, name = model.encode(torch.from_numpy(original)[None, None])[0].cpu().numpy(), names[subject]
        if args.latent_shift:
            from ..explore.latent_shift import latent_shift

            direction = latent_shift(model, cnn, w0, noise_seed=args.noise_seed, attribute=f"{label} (latent shift)")
        calibration = None
        if args.calibrate and not args.latent_shift:
            patient = latents.row(subject) if args.id else name
            direction, calibration = _calibrated(study, direction, patient, name, args)
        t = traverse(model, w0, direction, amounts, in_sd=args.sd, noise_seed=args.noise_seed)
        predictions = attributions = None
        if cnn is not None:
            frames = torch.from_numpy(t.frames)[:, None]
            predictions = cnn.predict(frames).cpu().numpy()
            if args.attribution:
                from ..explore.attribution import attribute

                attributions = attribute(cnn, frames, args.attribution)
        target, log = (CNN_PREDICTION, False) if args.latent_shift else split_scaled_name(direction.attribute)
        measured_target, by = measured(target, log, getattr(cnn, "config", None), cnn_predictions=predictions)
        scores, report = report_on(t, study=study, model=model, readers=readers, measured=measured_target,
                                   measured_by=by, not_measured=by, original=original, cohort_psnr=cohort_psnr,
                                   target=CNN_PREDICTION if args.latent_shift else None,
                                   calibration=calibration.words if calibration is not None else "")
        stem = args.out / f"{safe_name(name)}.{safe_name(direction.attribute)}"
        readings = None if predictions is None else study.cnn_readings(predictions) if study is not None \
            else Readings.of(predictions, label)
        written = write_traversal(t, stem, args.format, args.fps, predictions, attributions, readings, report)
        print(json.dumps({"subject": str(subject), "attribute": direction.attribute, "amounts": amounts.tolist(),
                          "in_sd": args.sd, **({"predictions": predictions.tolist()} if cnn is not None else {}),
                          "ends": list(report.ends), "quality": scores,
                          **({"calibration": {"by": calibration.by, "stretch": calibration.stretch,
                                              "reach": calibration.reach, "gain": calibration.gain,
                                              "words": calibration.words}}
                             if calibration is not None else {}),
                          "verdict": {"level": report.verdict[0], "headline": report.verdict[1],
                                      "reasons": list(report.verdict[2])},
                          "leakage": [{"attribute": a, "sd_per_sd": share, "change": words}
                                      for a, share, words in report.leakage],
                          **(_in_fit(study, fitted_on, latents.row(subject), cohort.patient_column, subject)
                             if args.id and args.where else {}),
                          "files": [str(p) for p in written]}))
    return 0


def _calibrated(study, direction, patient, name: str, args):
    """``direction`` calibrated for ``patient`` (a cohort row, or a name for an image of one's own) on
    other cohort patients' films where the study's CNN, or its trusted latent reader, reads its target
    (:mod:`~seegaan_explore.explore.calibration`); what was done, in words, on stderr after the
    subject's ``name``."""
    from ..explore.attributes import split_scaled_name
    from ..explore.calibration import calibrate_for

    if study is None or direction.kind != "generative" or direction.path is not None:
        return direction, None
    target, log = split_scaled_name(direction.attribute)
    try:
        target = study.check(target)
    except ValueError:  # the direction's attribute is not a column of this cohort: nothing to read it on
        return direction, None
    direction, calibration = calibrate_for(study, direction, target, log, patient, args.match,
                                           noise_seed=args.noise_seed)
    if calibration is not None:
        print(f"{name}: {calibration.words}", file=sys.stderr)
    return direction, calibration


def _cohort_psnr(model, cohort, latents, args):
    """The cohort's reconstruction PSNR, as the dashboard judges a film's start against it; only the
    images it reads are loaded."""
    from ..explore.quality import cohort_psnr

    row_of = {image_id: k for k, image_id in enumerate(cohort.ids)}

    def images_of(rows):
        return cohort.subset([row_of[latents.ids[k]] for k in rows]).images(model.config.resolution, args.cache_dir,
                                                                             progress=False)

    return cohort_psnr(model, latents.latents, images_of, args.cache_dir)


def _in_fit(study, fitted_on, row: int, patient_column: str | None, subject) -> dict:
    """Whether this exam, and any exam of its patient, was among the rows the direction was fitted
    on: an exam left out whose patient was fitted on is not held out (said on stderr)."""
    out = {"in_fit": bool(fitted_on[row])}
    if patient_column is not None and patient_column in study.table.columns:
        patients = study.table[patient_column].to_numpy()
        out["patient_in_fit"] = bool(fitted_on[patients == patients[row]].any())
        if out["patient_in_fit"] and not out["in_fit"]:
            print(f"{subject}: not fitted on, but other exams of its patient {patients[row]} were: it is not "
                  f"held out", file=sys.stderr)
    return out


def add_export(sub) -> None:
    p = sub.add_parser("export", help="write saved traversals (.npz from `traverse`) as GIF/MP4/PNG/HTML")
    p.add_argument("traversal", nargs="+", type=Path, help="traversal file(s) (.npz)")
    p.add_argument("--format", nargs="+", default=["gif", "png", "html"], choices=FORMATS[:-1],
                   help="output formats (default gif png html)")
    p.add_argument("--fps", type=float, default=8, help="frames per second of a GIF or MP4")
    p.add_argument("--out", type=Path, help="output folder (default: beside each input)")
    p.set_defaults(run=user_errors(_run_export))


def _run_export(args) -> int:
    from ..explore.archives import load_report, load_traversal

    for source in args.traversal:
        traversal, predictions = load_traversal(source)
        stem = (args.out or source.parent) / source.stem
        written = write_traversal(traversal, stem, args.format, args.fps, predictions, report=load_report(source))
        print(json.dumps({"traversal": str(source), "files": [str(p) for p in written]}))
    return 0


def write_traversal(traversal, stem: Path, formats, fps: float, predictions=None, attributions=None,
                    readings=None, report=None) -> list[Path]:
    """``traversal`` as each of ``formats``: the archive keeps the CNN's ``predictions`` as it gave
    them; the PNG panel and the HTML report show its ``readings`` (in the attribute's units, where
    the study knows them; default the plain predictions)."""
    from ..explore import export
    from ..explore.archives import save_traversal

    shown = readings if readings is not None else predictions
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "gif":
            export.save_gif(traversal, path, fps=fps, report=report)
        elif fmt == "mp4":
            export.save_mp4(traversal, path, fps=fps, report=report)
        elif fmt == "png":
            export.save_panel(traversal, path, attributions=attributions, predictions=shown, report=report)
        elif fmt == "html":
            export.save_html_report(traversal, path, shown, report=report)
        else:
            save_traversal(traversal, path, predictions, report=report)
        written.append(path)
    return written
