"""Attribute directions in latent space, one ``fit`` signature for every estimator.

A direction for *generation* is the mean change of w per unit of the attribute (the forward
model: w regressed on the attribute), not the weight vector of a model that predicts the
attribute from w (the backward model). In an anisotropic latent space the two differ, and only
the first moves the decoded image the way the attribute does (Haufe et al., NeuroImage 2014).
Predictive estimators are kept, labelled ``kind="predictive"``, to show how much w knows. The
module is a little over 400 lines because the estimators stand side by side with the one validation
and the :class:`Direction` they return: they differ only in how w is related to the attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

MIN_LABELLED = 10


@dataclass(frozen=True, eq=False)
class Direction:
    """``vector`` is the change of w per unit of the attribute (as fitted: log units where the
    values were logged); ``scale`` is the attribute's SD, so ``vector * scale`` is one SD. ``ends``
    says what - and + mean in words (``("female", "male")``; empty where unknown).

    A direction read from the original's average latents is a *path* rather than a line:
    ``path[k]`` is the offset ``h_k - h_0`` of bin ``k`` from the first, at attribute value
    ``knots[k]``, and :meth:`offsets` follows it piecewise linearly (``vector`` is then the mean
    slope from the first bin to the last).

    A calibrated straight direction carries a ``warp`` ([2, k], rising rows): the intended steps
    ``warp[0]`` are drawn at steps ``warp[1]`` along ``vector``, piecewise linearly between them and
    one for one beyond their ends (:mod:`~seegaan_explore.explore.calibration`)."""

    attribute: str
    estimator: str
    kind: str  # "generative" (moves the image) or "predictive" (diagnostic)
    vector: np.ndarray
    scale: float
    confounders: tuple[str, ...] = ()
    diagnostics: dict = field(default_factory=dict)
    ends: tuple[str, ...] = ()
    path: np.ndarray | None = None  # [k, w_dim], the first row zero
    knots: np.ndarray | None = None  # [k], strictly rising or falling
    warp: np.ndarray | None = None  # [2, k]: intended steps -> steps along vector

    @property
    def unit_vector(self) -> np.ndarray:
        return self.vector / np.linalg.norm(self.vector)

    def drawn_at(self, amounts) -> np.ndarray:
        """The steps along ``vector`` that draw the intended steps ``amounts`` (the same without a warp)."""
        amounts = np.asarray(amounts, dtype=np.float64)
        if self.warp is None:
            return amounts
        intended, applied = np.asarray(self.warp, np.float64)
        inside = np.interp(amounts, intended, applied)
        below, above = amounts < intended[0], amounts > intended[-1]
        inside[below] = applied[0] + amounts[below] - intended[0]
        inside[above] = applied[-1] + amounts[above] - intended[-1]
        return inside

    def offsets(self, amounts, in_sd: bool = False) -> np.ndarray:
        """Latent offsets [len(amounts), w_dim] for steps of ``amounts`` attribute units (or SDs).

        Along a path, step ``a`` reaches attribute value ``knots[0] + a``: steps ``knots[k] -
        knots[0]`` give ``h_k - h_0`` exactly, steps between two bins the straight line between
        their offsets; a step beyond the first or last bin is refused (the bins show nothing there)."""
        amounts = np.asarray(amounts, dtype=np.float64) * (self.scale if in_sd else 1.0)
        if self.path is None:
            return (self.drawn_at(amounts)[:, None] * self.vector[None]).astype(np.float32)
        knots = np.asarray(self.knots, np.float64)
        rising = knots if knots[-1] > knots[0] else -knots
        reach = rising - rising[0]
        steps = amounts if knots[-1] > knots[0] else -amounts
        slack = 1e-9 * reach[-1]
        outside = (steps < -slack) | (steps > reach[-1] + slack)
        if outside.any():
            raise ValueError(f"{self.attribute}: step {amounts[outside][0]:g} lies beyond the bins; steps from 0 to "
                             f"{knots[-1] - knots[0]:g} reach every bin (bin values "
                             f"{', '.join(f'{k:g}' for k in knots)})")
        path = np.asarray(self.path, np.float64)
        return np.stack([np.interp(steps, reach, path[:, d]) for d in range(path.shape[1])], axis=1).astype(np.float32)


def _validated(latents, values, confounders, attribute: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    latents = np.asarray(latents)
    values = np.asarray(values, dtype=np.float64)
    if latents.ndim != 2 or len(latents) != len(values):
        raise ValueError(f"{attribute}: latents {latents.shape} and {len(values)} values do not match")
    keep = np.isfinite(values)
    if confounders is not None:
        confounders = np.asarray(confounders, dtype=np.float64).reshape(len(values), -1)
        keep &= np.isfinite(confounders).all(axis=1)
        confounders = confounders[keep]
    if keep.sum() < MIN_LABELLED:
        raise ValueError(f"{attribute}: only {int(keep.sum())} rows have a value; at least {MIN_LABELLED} are needed")
    values = values[keep]
    if np.ptp(values) == 0:
        raise ValueError(f"{attribute}: the column is constant ({values[0]!r}); it defines no direction")
    return latents[keep] if not keep.all() else latents, values, confounders


def _regress(w, design: np.ndarray) -> np.ndarray:
    """Least-squares coefficients [k, w_dim] of w on the columns of ``design`` [N, k]."""
    # The only O(N * w_dim) step. torch's GEMM, because numpy's BLAS runs this wide-and-flat
    # shape ([k, N] @ [N, w_dim], k ~ 3) as slowly as a matrix-vector loop (7 s at N = 1M).
    design_t = torch.from_numpy(np.ascontiguousarray(design.T, dtype=np.float32))
    w = np.asarray(w, dtype=np.float32)
    cross = design_t @ torch.from_numpy(w if w.flags.writeable else w.copy())  # pandas hands out read-only arrays
    return np.linalg.lstsq(design.T @ design, cross.double().numpy(), rcond=None)[0]


class MeanShift:
    """Default. Regress w on [1, attribute, confounders]; the attribute's coefficient is the mean
    change of w per unit of it with the confounders held fixed."""

    name, kind = "mean_shift", "generative"

    def fit(self, latents, values, confounders=None, *, attribute: str = "attribute",
            confounder_names: tuple[str, ...] = ()) -> Direction:
        w, a, c = _validated(latents, values, confounders, attribute)
        covariates = np.column_stack([a] + ([c] if c is not None else []))
        mu, sd = covariates.mean(axis=0), covariates.std(axis=0)
        if np.any(sd[1:] == 0):
            raise ValueError(f"{attribute}: a confounder is constant: {confounder_names}")
        design = np.column_stack([np.ones(len(a)), (covariates - mu) / sd])  # standardised: well conditioned
        vector = _regress(w, design)[1] / sd[0]
        others = np.delete(design, 1, axis=1)
        explained = others @ np.linalg.lstsq(others, a, rcond=None)[0]
        diagnostics = {"n": len(a),
                       # share of the attribute's variance not explained by the confounders
                       "unique_variance_of_attribute": float((a - explained).var() / a.var()),
                       "step_norm_per_sd": float(np.linalg.norm(vector) * sd[0])}
        return Direction(attribute, self.name, self.kind, vector.astype(np.float32), float(a.std()),
                         tuple(confounder_names), diagnostics)


class SplineMeanShift:
    """The mean shift at the patient's own level of the attribute. E[w | attribute] is fitted as a
    cubic spline in it (confounders linear), and the direction is the spline's mean slope over
    ``at``, the range the traversal covers. What changes next depends on where a patient starts:
    edema sets in at high severity, and on the phantoms BMI rises with age below 55 and falls
    above it, which the one straight line of :class:`MeanShift` averages away. ``at`` defaults to
    the cohort's mean +/- 1 SD."""

    name, kind = "spline_mean_shift", "generative"

    def __init__(self, knots: int = 3):
        self.knots = knots

    def fit(self, latents, values, confounders=None, *, at: tuple[float, float] | None = None,
            attribute: str = "attribute", confounder_names: tuple[str, ...] = ()) -> Direction:
        from sklearn.preprocessing import SplineTransformer

        w, a, c = _validated(latents, values, confounders, attribute)
        if np.unique(a).size < self.knots + 2:
            raise ValueError(f"{attribute}: a spline needs a continuous attribute; it takes only "
                             f"{np.unique(a).size} values (use mean_shift)")
        low, high = (float(a.mean() - a.std()), float(a.mean() + a.std())) if at is None else map(float, at)
        if not (math.isfinite(low) and math.isfinite(high)) or low == high:
            raise ValueError(f"{attribute}: the range {low:g} to {high:g} is empty or not finite")
        spline = SplineTransformer(n_knots=self.knots, degree=3, knots="quantile", extrapolation="linear")
        basis = spline.fit_transform(a[:, None])[:, 1:]  # the columns sum to one: drop one for the intercept
        columns = [np.ones(len(a)), basis]
        if c is not None:
            if np.any(c.std(axis=0) == 0):
                raise ValueError(f"{attribute}: a confounder is constant: {confounder_names}")
            columns.append((c - c.mean(axis=0)) / c.std(axis=0))
        coef = _regress(w, np.column_stack(columns))[1:1 + basis.shape[1]]
        ends = spline.transform(np.array([[low], [high]]))[:, 1:] @ coef
        vector = (ends[1] - ends[0]) / (high - low)
        return Direction(attribute, self.name, self.kind, vector.astype(np.float32), float(a.std()),
                         tuple(confounder_names),
                         {"n": len(a), "knots": self.knots, "at": (low, high),
                          # the exams the slope mostly rests on: the fewer, the noisier the direction
                          "n_in_range": int(((a >= min(low, high)) & (a <= max(low, high))).sum()),
                          "step_norm_per_sd": float(np.linalg.norm(vector) * a.std())})


class BinnedMeans:
    """The original's "average latents": mean w in quantile bins of the attribute; the direction is
    the least-squares slope of the bin means against the bins' mean values."""

    name, kind = "binned_means", "generative"

    def __init__(self, bins: int = 5):
        self.bins = bins

    def fit(self, latents, values, confounders=None, *, attribute: str = "attribute",
            confounder_names: tuple[str, ...] = ()) -> Direction:
        if confounders is not None:
            raise ValueError("binned means cannot condition on confounders; use mean_shift")
        w, a, _ = _validated(latents, values, None, attribute)
        edges = np.quantile(a, np.linspace(0, 1, self.bins + 1))
        index = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, self.bins - 1)
        filled = [k for k in range(self.bins) if np.any(index == k)]
        centres = np.array([a[index == k].mean() for k in filled])
        means = np.stack([w[index == k].mean(axis=0) for k in filled]).astype(np.float64)
        if len(filled) < 2:
            raise ValueError(f"{attribute}: fewer than 2 distinct bins")
        x = centres - centres.mean()
        vector = (x[:, None] * (means - means.mean(axis=0))).sum(axis=0) / np.square(x).sum()
        return Direction(attribute, self.name, self.kind, vector.astype(np.float32), float(a.std()), (),
                         {"n": len(a), "bin_centres": centres.tolist(), "bin_means": means.astype(np.float32)})


class PrincipalAxis:
    """Unsupervised: the k-th principal axis of w, signed to increase with the attribute. One SD
    of the attribute maps to one SD along the axis; ``correlation`` says how related they are."""

    name, kind = "pca", "generative"

    def __init__(self, component: int = 0):
        self.component = component

    def fit(self, latents, values, confounders=None, *, attribute: str = "attribute",
            confounder_names: tuple[str, ...] = ()) -> Direction:
        if confounders is not None:
            raise ValueError("principal axes are unsupervised; they cannot condition on confounders")
        w, a, _ = _validated(latents, values, None, attribute)
        centred = torch.as_tensor(w, dtype=torch.float32) - torch.as_tensor(w, dtype=torch.float32).mean(0)
        _, singular, axes = torch.linalg.svd(centred, full_matrices=False)
        axis = axes[self.component].double().numpy()
        projection = centred.double().numpy() @ axis
        correlation = float(np.corrcoef(projection, a)[0, 1])
        sign = 1.0 if correlation >= 0 else -1.0
        vector = sign * axis * projection.std() / a.std()
        explained = (singular.square() / singular.square().sum())[self.component].item()
        return Direction(attribute, self.name, self.kind, vector.astype(np.float32), float(a.std()), (),
                         {"n": len(a), "component": self.component, "explained_variance_ratio": explained,
                          "correlation": abs(correlation)})


class _Predictive:
    """A model of the attribute from w. Its vector is the smallest change of w that moves the
    model's output by one unit (coef / |coef|^2): what w *knows*, not how the image changes."""

    kind = "predictive"
    binary = False

    def _model(self):
        raise NotImplementedError

    def fit(self, latents, values, confounders=None, *, attribute: str = "attribute",
            confounder_names: tuple[str, ...] = ()) -> Direction:
        from sklearn.model_selection import cross_val_score

        if confounders is not None:
            raise ValueError(f"{self.name} is a diagnostic model of w alone; condition with mean_shift")
        w, a, _ = _validated(latents, values, None, attribute)
        if self.binary and set(np.unique(a)) != {0.0, 1.0}:
            raise ValueError(f"{attribute}: {self.name} needs a binary 0/1 column")
        w = np.asarray(w, dtype=np.float64)
        scoring = "roc_auc" if self.binary else "r2"
        score = cross_val_score(self._model(), w, a, cv=5, scoring=scoring)
        coef = np.ravel(self._model().fit(w, a).coef_)
        return Direction(attribute, self.name, self.kind, (coef / np.square(coef).sum()).astype(np.float32),
                         float(a.std()), (), {"n": len(a), f"cv_{scoring}": float(score.mean())})


class RidgeDiagnostic(_Predictive):
    name = "ridge"

    def _model(self):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)


class LogisticDiagnostic(_Predictive):
    name, binary = "logistic", True

    def _model(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000)


class SvmBoundary(_Predictive):
    """InterFaceGAN's linear SVM boundary normal."""

    name, binary = "svm", True

    def _model(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0)


ESTIMATORS = {e.name: e for e in (MeanShift(), SplineMeanShift(), BinnedMeans(), PrincipalAxis(), RidgeDiagnostic(),
                                  LogisticDiagnostic(), SvmBoundary())}


def fit_direction(estimator: str, latents, values, confounders=None, *, rows=None, **kwargs) -> Direction:
    """Look up an estimator by name and fit it: what a picker in the UI calls.

    ``rows`` (a boolean mask) fits on those rows only: the exams that match a patient (its view, its
    sex), so that the attribute's effect may differ between the groups. One SD stays the whole
    column's, so that steps in SDs mean the same with and without matching."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if rows is None:
        return ESTIMATORS[estimator].fit(latents, values, confounders, **kwargs)
    values = np.asarray(values, dtype=np.float64)
    confounders = None if confounders is None else np.asarray(confounders)[rows]
    direction = ESTIMATORS[estimator].fit(np.asarray(latents)[rows], values[rows], confounders, **kwargs)
    return replace(direction, scale=float(np.nanstd(values)))


SPLINE = SplineMeanShift.name  # fitted at the patient's own level: needs the traversal's range
MATCHABLE = ("mean_shift", SPLINE)  # the estimators that can hold an attribute by matching


def traversal_range(value: float, amounts, unit: float = 1.0) -> tuple[float, float]:
    """The range of the attribute (fitted scale) a traversal of ``amounts`` steps of ``unit`` covers
    from ``value``: where a spline mean shift takes the patient's slope."""
    amounts = np.asarray(amounts, np.float64)
    return float(value + amounts.min() * unit), float(value + amounts.max() * unit)


def matched_rows(columns: Mapping[str, np.ndarray], like: Mapping[str, float]) -> np.ndarray | None:
    """The exams that share the patient's value (``like``) of every column in ``columns``; None without any."""
    rows = None
    for name, column in columns.items():
        if like[name] is None or like[name] != like[name]:  # None or NaN; a level may be text
            raise ValueError(f"the patient has no value of {name!r} to match")
        same = np.asarray(column) == like[name]
        rows = same if rows is None else rows & same
    return rows


def direction_for(estimator: str, latents, values, confounders=None, *, attribute: str,
                  confounder_names: Sequence[str] = (), match: Mapping[str, np.ndarray] | None = None,
                  like: Mapping[str, float] | None = None, like_labels: Mapping[str, str] | None = None,
                  at: tuple[float, float] | None = None, rows: np.ndarray | None = None,
                  rows_said: str | None = None) -> Direction:
    """The direction one patient traverses.

    ``match`` holds columns by fitting only on the exams that share the patient's values ``like``
    (an AP patient's direction from AP exams), where ``confounders`` are held by linear terms:
    matching lets the attribute's effect differ between the groups. ``at`` is the range a spline
    mean shift takes its slope over (:func:`traversal_range`). ``like_labels`` words the patient's
    matched values as the table writes them, for the diagnostics and errors. ``rows`` (a boolean
    mask, ``rows_said`` in words) fits on a subset only: the training patients."""
    match = dict(match or {})
    if match and estimator not in MATCHABLE:
        raise ValueError(f"matching holds an attribute for the mean shift; the {estimator} estimator cannot use it")
    if at is not None and estimator != SPLINE:
        raise ValueError(f"the range a spline_mean_shift takes its slope over; {estimator} has none")
    matched = matched_rows(match, like or {})
    subset = matched if rows is None else (rows if matched is None else rows & matched)
    try:
        direction = fit_direction(estimator, latents, values, confounders, rows=subset, attribute=attribute,
                                  confounder_names=tuple(confounder_names), **({"at": at} if at else {}))
    except ValueError as error:
        if subset is None:
            raise
        held = " and ".join(([rows_said or f"{int(rows.sum())} chosen rows"] if rows is not None else []) +
                            ([_held(match, like, like_labels)] if match else []))
        raise ValueError(f"among the {int(subset.sum())} exams with {held}: {error}") from error
    if not match:
        return direction
    words = {name: (like_labels or {}).get(name, f"{like[name]:g}") for name in match}
    return replace(direction, diagnostics={**direction.diagnostics, "matched": words})


def _held(match, like, labels) -> str:
    return ", ".join(f"{name} = {(labels or {}).get(name, f'{like[name]:g}')}" for name in match)


def cosine_matrix(directions: list[Direction]) -> np.ndarray:
    """Cosine similarity between directions: entanglement between attributes, at a glance."""
    units = np.stack([d.unit_vector for d in directions]).astype(np.float64)
    return units @ units.T


def direction_from_average_latents(array, attribute: str, bin_values=None, *,
                                   scale: float = float("nan")) -> Direction:
    """A direction from the original SEE-GAAN code's "average latents" file: ``k`` mean latents
    ``[k, w_dim]`` of ascending attribute bins. As the original, it steps a patient ``w`` to
    ``w + h_k - h_0`` for every bin ``k`` (:attr:`Direction.path`), and between two bins along the
    straight line joining them; ``vector`` is the last bin minus the first per unit of the range.

    ``bin_values``: the attribute value of each bin, rising or falling; default ``0..k-1``, so
    amounts ``0..k-1`` give the original's frames ``G(w + h_k - h_0)``. ``scale``: the attribute's
    SD, which the file does not record (NaN: steps in SDs are undefined).
    """
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{attribute}: average latents must be [bins >= 2, w_dim], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{attribute}: average latents contain NaN or infinite values")
    values = np.arange(len(array), dtype=np.float64) if bin_values is None else np.asarray(bin_values, np.float64)
    if values.shape != (len(array),):
        raise ValueError(f"{attribute}: {len(array)} average latents but {values.size} bin values")
    span = values[-1] - values[0]
    if not np.isfinite(span) or span == 0:
        raise ValueError(f"{attribute}: the first and last bin values ({values[0]:g}, {values[-1]:g}) "
                         "define no range")
    if not np.all(np.diff(values) * np.sign(span) > 0):
        raise ValueError(f"{attribute}: bin values must rise (or fall) from bin to bin, got "
                         f"{', '.join(f'{v:g}' for v in values)}")
    vector = (array[-1] - array[0]) / span
    steps = np.diff(array, axis=0)
    norms = np.linalg.norm(steps, axis=1)
    # how far the bins lie on one line: 1 where they do, lower where the path bends
    cosines = steps @ vector * np.sign(span) / np.maximum(norms * np.linalg.norm(vector), 1e-12)
    return Direction(attribute, "average_latents", "generative", vector.astype(np.float32), float(scale), (),
                     {"n_bins": len(array), "bin_values": values.tolist(), "step_norms": norms.tolist(),
                      "min_step_cosine": float(cosines.min())},
                     path=(array - array[0]).astype(np.float32), knots=values)
