"""Direction estimators on latents whose generative structure is known."""

from __future__ import annotations

import numpy as np
import pytest

from seegaan_explore.explore.directions import ESTIMATORS, cosine_matrix, fit_direction

D = 64


def _latents(n=4000, seed=0):
    """w = a * A + age * B + anisotropic noise, with a confounded by age (corr about 0.6).

    A lies half along the loudest latent dimension and half along the quietest, so a predictive
    model of a leans on the quiet half while the generative effect is the whole of A."""
    rng = np.random.default_rng(seed)
    age = rng.normal(size=n)
    a = 0.6 * age + 0.8 * rng.normal(size=n)
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0]
    effect_a, effect_age = (basis[:, 0] + basis[:, -1]) * 0.5 / np.sqrt(2), basis[:, 1] * 0.4
    noise_sd = np.geomspace(3.0, 0.05, D)  # a few loud latent dimensions, many quiet ones
    noise = (rng.normal(size=(n, D)) * noise_sd) @ basis.T
    w = (a[:, None] * effect_a + age[:, None] * effect_age + noise).astype(np.float32)
    return w, a, age, effect_a, effect_age


def _cos(u, v):
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def test_mean_shift_recovers_the_generative_effect_when_conditioned():
    w, a, age, effect_a, effect_age = _latents()
    conditioned = fit_direction("mean_shift", w, a, age[:, None], attribute="a", confounder_names=("age",))
    assert _cos(conditioned.vector, effect_a) > 0.95
    np.testing.assert_allclose(np.linalg.norm(conditioned.vector), np.linalg.norm(effect_a), rtol=0.15)
    # Unconditioned, the direction also carries the confounder's effect (leakage into age).
    marginal = fit_direction("mean_shift", w, a, attribute="a")
    assert abs(_cos(marginal.vector, effect_age)) > 3 * abs(_cos(conditioned.vector, effect_age))
    assert 0.5 < conditioned.diagnostics["unique_variance_of_attribute"] < 0.8


def test_a_spline_mean_shift_follows_the_effect_at_the_patients_own_level():
    """BMI-like: the latent rises with the attribute below 55 and falls above it. The straight
    mean shift averages the two away; the spline's slope at a young or an old patient has each
    sign, and it holds a confounder as the mean shift does."""
    rng = np.random.default_rng(0)
    n = 4000
    age = rng.uniform(20, 90, n)
    site = 0.02 * age + rng.normal(size=n)  # confounded with age, and moves its own latent
    bump, shared = -((age - 55) / 20) ** 2, np.column_stack([np.zeros(n), np.ones(n)]) * site[:, None]
    w = np.column_stack([bump, np.zeros(n)]) + shared + rng.normal(0, 0.05, (n, 2))
    straight = fit_direction("mean_shift", w, age, site[:, None], attribute="age", confounder_names=("site",))
    young = fit_direction("spline_mean_shift", w, age, site[:, None], at=(30, 40), attribute="age",
                          confounder_names=("site",))
    old = fit_direction("spline_mean_shift", w, age, site[:, None], at=(70, 80), attribute="age",
                        confounder_names=("site",))
    def slope(low, high):
        return (((low - 55) / 20) ** 2 - ((high - 55) / 20) ** 2) / (high - low)

    assert abs(straight.vector[0]) < 0.1 * slope(30, 40)
    assert young.vector[0] == pytest.approx(slope(30, 40), rel=0.1)
    assert old.vector[0] == pytest.approx(slope(70, 80), rel=0.1)
    assert abs(young.vector[1]) < 0.01 and abs(old.vector[1]) < 0.01  # the confounder's latent is held
    assert young.diagnostics["at"] == (30.0, 40.0) and young.scale == pytest.approx(age.std())
    assert young.diagnostics["n_in_range"] == ((age >= 30) & (age <= 40)).sum()
    # without a range: the cohort's mean +/- 1 SD, where this bump's slope is near zero
    assert fit_direction("spline_mean_shift", w, age).diagnostics["at"] == pytest.approx((age.mean() - age.std(),
                                                                                          age.mean() + age.std()))
    with pytest.raises(ValueError, match="sex: a spline needs a continuous attribute; it takes only 2 values"):
        fit_direction("spline_mean_shift", w, (age > 50).astype(float), attribute="sex")
    with pytest.raises(ValueError, match="age: the range 40 to 40 is empty"):
        fit_direction("spline_mean_shift", w, age, at=(40, 40), attribute="age")


def test_binned_means_points_along_the_marginal_mean_shift():
    w, a, *_ = _latents()
    binned = fit_direction("binned_means", w, a, attribute="a")
    marginal = fit_direction("mean_shift", w, a, attribute="a")
    assert _cos(binned.vector, marginal.vector) > 0.95
    assert binned.diagnostics["bin_means"].shape == (5, D)


def test_offsets_in_native_units_and_in_sd():
    w, a, *_ = _latents()
    d = fit_direction("mean_shift", w, a, attribute="a")
    offsets = d.offsets([0, 1, 2])
    np.testing.assert_allclose(offsets[2], 2 * d.vector, rtol=1e-6)
    np.testing.assert_allclose(d.offsets([1], in_sd=True)[0], d.vector * a.std(), rtol=1e-5)


def test_cosine_matrix_shows_entanglement():
    w, a, age, *_ = _latents()
    da = fit_direction("mean_shift", w, a, attribute="a")
    dage = fit_direction("mean_shift", w, age, attribute="age")
    m = cosine_matrix([da, dage])
    np.testing.assert_allclose(np.diag(m), 1.0, rtol=1e-6)
    assert m[0, 1] == pytest.approx(m[1, 0]) and m[0, 1] > 0.2  # confounded: the two directions overlap


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_clear_errors_for_unusable_columns(estimator):
    w, a, *_ = _latents(n=100)
    values = np.full(100, np.nan)
    values[:5] = 1.0
    with pytest.raises(ValueError, match="nt_probnp: only 5 rows have a value"):
        fit_direction(estimator, w, values, attribute="nt_probnp")
    with pytest.raises(ValueError, match="sex: the column is constant"):
        fit_direction(estimator, w, np.ones(100), attribute="sex")
    with pytest.raises(ValueError, match="do not match"):
        fit_direction(estimator, w[:50], a, attribute="a")


def test_unknown_estimator_names_the_choices():
    w, a, *_ = _latents(n=50)
    with pytest.raises(ValueError, match="choose one of .*mean_shift"):
        fit_direction("svm_boundary", w, a)


def test_rows_without_a_value_are_left_out():
    w, a, *_ = _latents()
    holes = a.copy()
    holes[::3] = np.nan
    d = fit_direction("mean_shift", w, holes, attribute="a")
    assert d.diagnostics["n"] == len(a) - len(a[::3])


def test_predictive_weights_know_the_attribute_but_point_elsewhere():
    """Ridge of a on w predicts it well, yet its weights chase the quiet latent dimensions: the
    backward model is not the direction along which the attribute changes w."""
    w, a, age, effect_a, _ = _latents()
    ridge = fit_direction("ridge", w, a, attribute="a")
    generative = fit_direction("mean_shift", w, a, age[:, None], attribute="a", confounder_names=("age",))
    assert ridge.kind == "predictive" and generative.kind == "generative"
    assert ridge.diagnostics["cv_r2"] > 0.5
    assert _cos(ridge.vector, effect_a) < _cos(generative.vector, effect_a) - 0.2
    # Its vector moves the ridge model's prediction by one unit per step.
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=1.0).fit(w.astype(np.float64), a)
    step = model.predict((w[:1] + ridge.vector).astype(np.float64)) - model.predict(w[:1].astype(np.float64))
    assert step[0] == pytest.approx(1.0, rel=1e-3)


def test_binary_diagnostics_report_cross_validated_auc():
    w, a, *_ = _latents(n=1500)
    high = (a > 0).astype(float)
    for name in ("logistic", "svm"):
        d = fit_direction(name, w, high, attribute="high_a")
        assert d.diagnostics["cv_roc_auc"] > 0.8
    with pytest.raises(ValueError, match="needs a binary 0/1 column"):
        fit_direction("svm", w, a, attribute="a")


def test_principal_axis_is_signed_to_increase_with_the_attribute():
    w, a, *_ = _latents()
    d = fit_direction("pca", w, a, attribute="a")
    projection = (w - w.mean(0)) @ d.unit_vector
    assert np.corrcoef(projection, a)[0, 1] >= 0
    noise_var = np.geomspace(3.0, 0.05, D) ** 2
    assert d.diagnostics["explained_variance_ratio"] == pytest.approx(noise_var[0] / noise_var.sum(), rel=0.15)
