"""The direction a command traverses, through the study of the encoded cohort
(:class:`~seegaan_explore.explore.study.Study`): the attribute's values or the CNN's predictions, the
fit, one per patient where matching or a spline asks for it, and the ``--cnn`` that scores it."""

from __future__ import annotations

from pathlib import Path

from ..explore.attributes import CNN_PREDICTION, cnn_label, scaled_name
from ..explore.study import SPLINE

__all__ = ["CNN_PREDICTION", "add_direction_fit_arguments", "attribute_cnn", "cohort_study", "explainer",
           "fit_cohort_direction", "per_patient_fitter", "said_rows"]


def cohort_study(cohort, latents, args, cnn=None, model=None):
    """The encoded cohort as a study, with ``cnn``'s predictions (from images preprocessed at its
    resolution, loaded when first needed) as the attribute ``cnn_prediction``; ``model`` decodes its
    films where the study draws some (a calibration)."""
    import numpy as np

    from ..explore.attributes import detect_attributes
    from ..explore.dictionary import read_dictionary
    from ..explore.study import Study

    def images():
        return np.asarray(cohort.images(cnn.config.resolution, args.cache_dir, progress=not args.no_progress),
                          np.float32)

    dictionary = read_dictionary(args.dictionary) if getattr(args, "dictionary", None) else None
    # its words for every column, but every column stays an attribute (the dashboard offers only its own)
    attributes = list(detect_attributes(latents.table.reset_index(drop=True))) if dictionary else None
    return Study(latents.latents, latents.table, model=model, cnn=cnn, images=images if cnn is not None else None,
                 attributes=attributes, dictionary=dictionary)


def attribute_cnn(args):
    """The ``--cnn`` whose prediction is the attribute ``cnn_prediction``, or None."""
    if not getattr(args, "cnn", None):
        return None
    from ..model.cnn import load_cnn

    return load_cnn(args.cnn, device=args.device)


def fit_cohort_direction(study, attribute: str, args):
    """Fit ``args.estimator`` for ``attribute`` (ln of it with ``--log``) on the cohort's latents, on
    the rows ``--where`` keeps."""
    if attribute == CNN_PREDICTION and study.cnn is None:
        raise ValueError(f"the attribute {CNN_PREDICTION!r} needs --cnn CHECKPOINT")
    at = getattr(args, "at", None)
    if at and args.estimator != SPLINE:
        raise ValueError(f"--at is the range a spline_mean_shift takes its slope over; {args.estimator} has none")
    attribute = study.check(attribute)  # a contrast in the table's spelling: view=pa -> view=PA
    return study.direction(attribute, args.estimator, args.confounders, args.log, at=tuple(at) if at else None,
                           name=scaled_name(attribute, args.log), rows=args.where)


def said_rows(direction) -> str | None:
    """The rows a direction was fitted on and left out, in words for the terminal; None if all were used."""
    from ..explore.rows import spoken

    fitted_on, dropped = direction.diagnostics.get("fitted_on"), direction.diagnostics.get("dropped")
    if not (fitted_on or dropped):
        return None
    return (f"{direction.attribute}: fitted on {direction.diagnostics.get('n', '?')} rows"
            + (f" where {fitted_on}" if fitted_on else "") + (f"; left out {spoken(dropped)}" if dropped else ""))


def per_patient_fitter(study, latents, attribute: str, args, amounts):
    """A function of an image id that fits ``attribute``'s direction for that patient: on the exams
    sharing its values of the ``--match`` columns, and for ``spline_mean_shift`` over the range its
    ``amounts`` cover from its own value (the study's rules, as the dashboard's)."""
    units = "sd" if args.sd else "units"
    attribute = study.check(attribute)

    def fit(image_id: str):
        row = latents.row(image_id)
        at = study.range_of(attribute, args.log, amounts, units=units, row=row) if args.estimator == SPLINE else None
        try:
            return study.direction(attribute, args.estimator, args.confounders, args.log, args.match,
                                   row=row if args.match else None, at=at, name=scaled_name(attribute, args.log),
                                   rows=args.where)
        except ValueError as error:
            raise ValueError(f"{image_id}: {error}") from error

    return fit


def explainer(args, resolution: int):
    """The ``--cnn`` model (checked against the autoencoder's resolution) and its prediction label."""
    if args.cnn is None:
        if args.attribution:
            raise ValueError("--attribution needs --cnn")
        return None, "prediction"
    from ..device import default_device
    from ..explore.attribution import METHODS
    from ..model.cnn import load_cnn

    if args.attribution and args.attribution not in METHODS:
        raise ValueError(f"unknown attribution method {args.attribution!r}; choose one of {', '.join(METHODS)}")
    cnn = load_cnn(args.cnn, default_device(args.device))
    if cnn.config.resolution != resolution:
        raise ValueError(f"{args.cnn}: the CNN takes {cnn.config.resolution} px images, the autoencoder "
                         f"makes {resolution} px frames")
    return cnn, cnn_label(cnn.config)


def add_direction_fit_arguments(p) -> None:
    """The fit's arguments that ``direction`` and ``traverse`` share."""
    from ..explore.directions import ESTIMATORS

    p.add_argument("--estimator", default="mean_shift", choices=list(ESTIMATORS),
                   help="mean_shift (default), spline_mean_shift (the slope at each patient's own value; without "
                        "one, at the cohort's mean +/- 1 SD), binned_means and pca move the image; ridge, logistic "
                        "and svm are predictive diagnostics")
    p.add_argument("--confounders", nargs="+", default=[], metavar="COLUMN",
                   help="columns held fixed (mean_shift and spline_mean_shift), e.g. age sex; a categorical column "
                        "(view: AP, PA, LATERAL) is held by one indicator per level")
    p.add_argument("--log", action="store_true", help="fit on ln(attribute), e.g. for lab values")
    p.add_argument("--where", nargs="+", metavar="CONDITION",
                   help="fit on the rows that satisfy every condition: COLUMN=VALUE (or =A,B), COLUMN!=VALUE, "
                        "COLUMN<NUMBER (<=, >, >=), e.g. split=train 'age>=18'; text matches in any case")
    p.add_argument("--dictionary", type=Path,
                   help="data dictionary (CSV or YAML; docs/dashboard.md): the ends and reports in its words and units")
