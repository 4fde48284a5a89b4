"""The direction a command traverses: an attribute's values (or the CNN's predictions) for the cohort,
its fit, one per patient where matching or a spline asks for it, and the ``--cnn`` that scores it."""

from __future__ import annotations

__all__ = ["CNN_PREDICTION", "cnn_measures", "cnn_predictions", "direction_inputs", "explainer",
           "fit_cohort_direction", "per_patient_fitter"]

CNN_PREDICTION = "cnn_prediction"


def cnn_predictions(cohort, args):
    """The CNN's prediction for every image of the cohort, by image id: the paper's way of making
    what a CNN has learned an attribute like any other."""
    import numpy as np
    import pandas as pd
    import torch

    from ..model.cnn import load_cnn

    if not getattr(args, "cnn", None):
        raise ValueError(f"the attribute {CNN_PREDICTION!r} needs --cnn CHECKPOINT")
    cnn = load_cnn(args.cnn, device=args.device)
    images = cohort.images(cnn.config.resolution, args.cache_dir, progress=not args.no_progress)
    predicted = cnn.predict(torch.from_numpy(np.asarray(images, dtype=np.float32))[:, None]).cpu().numpy()
    return pd.Series(predicted.astype(np.float64), index=cohort.ids)


def direction_inputs(cohort, latents, attribute: str, args):
    """``attribute``'s values (ln of them with ``--log``), its name, and the ``--confounders`` columns,
    in the order of the cohort's latents."""
    import numpy as np

    if attribute == CNN_PREDICTION:
        values = cnn_predictions(cohort, args).reindex(latents.ids).to_numpy(dtype=np.float64)
    else:
        values = cohort.attribute(attribute).reindex(latents.ids).to_numpy(dtype=np.float64)
    name = attribute
    if args.log:
        if np.any(values[~np.isnan(values)] <= 0):
            raise ValueError(f"--log: column {attribute!r} has values <= 0")
        values, name = np.log(values), f"ln({attribute})"
    confounders = None
    if args.confounders:
        if attribute in args.confounders:
            raise ValueError(f"{attribute!r} is both the attribute and a confounder")
        confounders = np.column_stack([cohort.attribute(c).reindex(latents.ids).to_numpy(dtype=np.float64)
                                       for c in args.confounders])
    return values, name, confounders


def fit_cohort_direction(cohort, latents, attribute: str, args):
    """Fit ``args.estimator`` for ``attribute`` (ln of it with ``--log``) on the cohort's latents."""
    from ..explore.directions import fit_direction

    values, name, confounders = direction_inputs(cohort, latents, attribute, args)
    at = getattr(args, "at", None)
    if at and args.estimator != "spline_mean_shift":
        raise ValueError(f"--at is the range a spline_mean_shift takes its slope over; {args.estimator} has none")
    return fit_direction(args.estimator, latents.latents, values, confounders, attribute=name,
                         confounder_names=tuple(args.confounders), **({"at": tuple(at)} if at else {}))


def per_patient_fitter(cohort, latents, attribute: str, args, amounts):
    """A function of an image id that fits ``attribute``'s direction for that patient: on the exams
    sharing its values of the ``--match`` columns, and for ``spline_mean_shift`` over the range its
    ``amounts`` cover from its own value (the columns are read once, for every patient)."""
    import numpy as np

    from ..explore.directions import fit_direction

    values, name, confounders = direction_inputs(cohort, latents, attribute, args)
    for column in args.match:
        if column in (attribute, *args.confounders):
            raise ValueError(f"--match {column!r}: it is already the attribute or a --confounders column")
    matched = {column: cohort.attribute(column).reindex(latents.ids) for column in args.match}
    written = cohort.table.set_index(cohort.id_column)
    own = dict(zip(latents.ids, values))
    unit = float(np.nanstd(values)) if args.sd else 1.0

    def fit(like: str):
        rows, at = None, {}
        if matched:
            rows = np.ones(len(values), dtype=bool)
            for column, column_values in matched.items():
                if not np.isfinite(column_values[like]):
                    raise ValueError(f"--match {column!r}: image {like!r} has no value to match")
                rows &= (column_values == column_values[like]).to_numpy()
        if args.estimator == "spline_mean_shift":
            if not np.isfinite(own[like]):
                raise ValueError(f"spline_mean_shift: image {like!r} has no value of {attribute!r} to start from")
            at = {"at": (own[like] + amounts.min() * unit, own[like] + amounts.max() * unit)}
        try:
            return fit_direction(args.estimator, latents.latents, values, confounders, rows=rows, attribute=name,
                                 confounder_names=tuple(args.confounders), **at)
        except ValueError as error:
            if not matched:
                raise
            held = ", ".join(f"{column} = {written[column][like]}" for column in matched)
            raise ValueError(f"{like}: among the {int(rows.sum())} exams with {held}: {error}") from error

    return fit


def cnn_measures(cnn, direction) -> bool:
    """Whether the CNN's output is the direction's attribute in the direction's units, so that its
    predictions on the frames score the traversal."""
    c = cnn.config
    if c.task != "regression":
        return False
    return (direction.estimator == "latent_shift" or direction.attribute == CNN_PREDICTION
            or direction.attribute == (f"ln({c.attribute})" if c.log_transform else c.attribute))


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
    c = cnn.config
    if c.task == "binary":
        return cnn, f"CNN: P({c.attribute})"
    return cnn, f"CNN: {'ln ' if c.log_transform else ''}{c.attribute}"
