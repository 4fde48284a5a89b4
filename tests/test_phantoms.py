"""Tests of the phantom chest-radiograph generator (seegaan_explore.phantoms)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from seegaan_explore import phantoms as ph
from seegaan_explore.data.images import to_uint8
from seegaan_explore.phantoms import (
    FACTOR_COLUMNS,
    MASK_NAMES,
    NT_PROBNP_MAX,
    NT_PROBNP_MIN,
    Phantom,
    cohort_table,
    factors,
    generate_cohort,
    randomized_do,
    render,
    render_noise_free,
    sample_individual,
    write_cohort,
)


@pytest.fixture(scope="module")
def table():
    return cohort_table(3000, seed=11)


# ------------------------------------------------------------------------------------------
# determinism and identity
# ------------------------------------------------------------------------------------------
def test_deterministic_from_seed_and_index():
    a, b = sample_individual(3, 17), sample_individual(3, 17)
    assert a == b
    pa, pb = render(a, 96), render(b, 96)
    assert pa.image.dtype == np.float32 and pa.image.shape == (96, 96)
    assert np.array_equal(pa.image, pb.image)
    assert pa.row == pb.row
    for k in MASK_NAMES:
        assert np.array_equal(pa.masks[k], pb.masks[k])


def test_different_ids_and_seeds_differ():
    p1 = render(sample_individual(0, 1), 96)
    p2 = render(sample_individual(0, 2), 96)
    p3 = render(sample_individual(1, 1), 96)
    assert np.abs(p1.image - p2.image).mean() > 0.01
    assert np.abs(p1.image - p3.image).mean() > 0.01
    assert p1.row["image_id"] != p2.row["image_id"] != p3.row["image_id"]
    assert p1.row["age"] != p2.row["age"]


def test_phantom_contents():
    p = render(sample_individual(0, 5), 128)
    assert isinstance(p, Phantom)
    assert p.image.min() >= -1.0 and p.image.max() <= 1.0
    assert set(MASK_NAMES) <= set(p.masks)
    for m in p.masks.values():
        assert m.dtype == bool and m.shape == (128, 128)
    assert p.masks["heart"].sum() > 100 and p.masks["lungs"].sum() > 1000
    assert not (p.masks["heart"] & p.masks["lungs"]).any()
    assert set(FACTOR_COLUMNS) <= set(p.row)
    # lungs are dark, the heart and mediastinum bright, outside the body darkest
    assert p.image[p.masks["lungs"]].mean() < p.image[p.masks["heart"]].mean() - 0.3
    assert p.image[:, :3].mean() < p.image[p.masks["lungs"]].mean()


def test_noise_free_render():
    ind = sample_individual(0, 9)
    clean = render_noise_free(ind, 128)
    noisy = render(ind, 128)
    assert np.array_equal(clean.image, render(ind, 128, noise=False).image)
    d = noisy.image - clean.image
    assert 0.005 < np.abs(d).mean() < 0.1  # quantum noise, but the same radiograph
    assert abs(float(d.mean())) < 0.02


def test_ctr_of_the_mask_matches_the_row():
    for i in range(4):
        for view in ("PA", "AP"):
            p = render(sample_individual(2, i), 256, do={"view": view}, noise=False)
            cols_h = np.nonzero(p.masks["heart"].any(axis=0))[0]
            cols_l = np.nonzero((p.masks["lungs"] | p.masks["heart"]).any(axis=0))[0]
            ctr_img = (cols_h.max() - cols_h.min() + 1) / (cols_l.max() - cols_l.min() + 1)
            assert ctr_img == pytest.approx(p.row["ctr_projected"], abs=0.05)


# ------------------------------------------------------------------------------------------
# interventions
# ------------------------------------------------------------------------------------------
def test_do_fixes_the_factor_and_recomputes_only_descendants():
    ind = sample_individual(4, 2)
    base = factors(ind)
    hi = factors(ind, {"severity": 0.95})
    assert hi["severity"] == 0.95
    for k in ("age", "sex", "bmi", "bone_density"):  # not descendants of severity
        assert hi[k] == base[k]
    assert hi["nt_probnp_pg_ml"] > base["nt_probnp_pg_ml"] or hi["nt_probnp_pg_ml"] == NT_PROBNP_MAX
    assert hi["ctr"] > base["ctr"] and hi["edema_score"] > base["edema_score"]
    old = factors(ind, {"age": 90.0})
    assert old["age"] == 90.0 and old["severity"] != base["severity"]  # severity depends on age
    assert old["bone_density"] < base["bone_density"] or base["age"] > 90
    fixed = factors(ind, {"age": 90.0, "severity": base["severity"]})
    assert fixed["severity"] == base["severity"] and fixed["ctr"] == base["ctr"]
    assert factors(ind, {"view": "ap"})["view"] == "AP"
    with pytest.raises(KeyError):
        factors(ind, {"shoe_size": 3})
    with pytest.raises(ValueError):
        factors(ind, {"view": "lateral"})


@pytest.mark.parametrize("index", [0, 7, 21])
def test_do_severity_grows_the_heart_monotonically(index):
    ind = sample_individual(5, index)
    areas = [
        render(ind, 96, do={"severity": float(s)}, noise=False).masks["heart"].sum() for s in np.linspace(0.0, 1.0, 6)
    ]
    assert all(b > a for a, b in zip(areas, areas[1:])), areas


def test_do_severity_changes_the_image_only_in_cardiopulmonary_regions():
    size = 128
    for index in (1, 4):
        ind = sample_individual(6, index)
        fixed = {"view": "PA", "device": False}
        lo = render(ind, size, do={"severity": 0.05, **fixed})
        hi = render(ind, size, do={"severity": 0.95, **fixed})
        region = np.zeros((size, size), dtype=bool)
        for p in (lo, hi):
            for k in ("heart", "lungs", "effusion", "edema"):
                region |= p.masks[k]
        region = ndimage.binary_dilation(region, iterations=4)  # blur and soft edges: ~3% of the width
        diff = np.abs(hi.image - lo.image)
        assert diff[region].max() > 0.3  # the intervention does something ...
        assert diff[~region].max() < 0.02  # ... and nothing elsewhere (noise included)
        assert hi.masks["edema"].sum() > lo.masks["edema"].sum()
        assert hi.masks["effusion"].sum() > lo.masks["effusion"].sum()


def test_small_severity_change_gives_small_image_change():
    ind = sample_individual(7, 3)
    fixed = {"view": "PA", "device": False}
    base = render(ind, 128, do={"severity": 0.5, **fixed}, noise=False).image
    near = render(ind, 128, do={"severity": 0.51, **fixed}, noise=False).image
    far = render(ind, 128, do={"severity": 0.7, **fixed}, noise=False).image
    d_near = np.abs(near - base).mean()
    d_far = np.abs(far - base).mean()
    assert 0 < d_near < 0.15 * d_far


def test_view_ap_adds_text_label_and_magnifies_heart():
    for index in range(6):
        ind = sample_individual(8, index)
        pa = render(ind, 128, do={"view": "PA"})
        ap = render(ind, 128, do={"view": "AP"})
        assert pa.masks["text_label"].sum() == 0
        assert ap.masks["text_label"].sum() > 10
        assert np.all(ap.image[ap.masks["text_label"]] > 0.9)  # burned-in white text
        assert ap.masks["heart"].sum() > 1.15 * pa.masks["heart"].sum()
        assert pa.masks["marker"].sum() > 0 and ap.masks["marker"].sum() > 0


def test_device_intervention_draws_a_device():
    ind = sample_individual(9, 0)
    on = render(ind, 128, do={"device": True})
    off = render(ind, 128, do={"device": False})
    assert on.masks["device"].sum() > 30 and off.masks["device"].sum() == 0
    assert on.image[on.masks["device"]].mean() > 0.8


def test_bone_density_intervention_fades_bones():
    ind = sample_individual(9, 4)
    dense = render(ind, 128, do={"bone_density": 1.2, "view": "PA"}, noise=False).image
    thin = render(ind, 128, do={"bone_density": 0.4, "view": "PA"}, noise=False).image
    lungs = render(ind, 128, do={"view": "PA"}).masks["lungs"]
    # ribs over the lungs lose contrast: less high-frequency structure
    def hp(im):
        return im - ndimage.gaussian_filter(im, 3)
    assert np.abs(hp(thin))[lungs].mean() < 0.8 * np.abs(hp(dense))[lungs].mean()


# ------------------------------------------------------------------------------------------
# the structural causal model on a cohort
# ------------------------------------------------------------------------------------------
def test_scm_statistics(table):
    df = table
    assert len(df) == 3000 and df["image_id"].is_unique
    assert df["nt_probnp_pg_ml"].between(NT_PROBNP_MIN * 0.999, NT_PROBNP_MAX * 1.001).all()
    assert df["nt_probnp_pg_ml"].median() < 400 and df["nt_probnp_pg_ml"].quantile(0.95) > 1000
    assert np.allclose(np.exp(df["log_nt_probnp"]), df["nt_probnp_pg_ml"])
    corr = df[["log_nt_probnp", "severity", "age", "bone_density"]].corr()
    assert corr.loc["log_nt_probnp", "severity"] > 0.5
    assert corr.loc["log_nt_probnp", "age"] > 0.2
    assert corr.loc["bone_density", "age"] < -0.4
    # age acts on NT-proBNP beyond severity (direct edge): positive partial coefficient
    X = np.column_stack([np.ones(len(df)), df["severity"], df["age"]])
    coef = np.linalg.lstsq(X, df["log_nt_probnp"].to_numpy(), rcond=None)[0]
    assert coef[1] > 0 and coef[2] > 0
    sev_q = pd.qcut(df["severity"], 4, labels=False)
    ap = (df["view"] == "AP").groupby(sev_q).mean()
    assert ap[3] > ap[0] + 0.25
    age_q = pd.qcut(df["age"], 4, labels=False)
    dev = df["device"].groupby(age_q).mean()
    assert dev[3] > dev[0] + 0.05
    assert df.groupby(sev_q)["ctr"].mean().is_monotonic_increasing
    assert df.groupby(sev_q)["edema_score"].mean().is_monotonic_increasing
    assert df.groupby(sev_q)["effusion_right"].mean().is_monotonic_increasing
    assert set(df["sex"]) == {"M", "F"} and set(df["view"]) == {"AP", "PA"}
    assert df["edema_grade"].isin([0, 1, 2, 3]).all() and df["edema_grade"].nunique() == 4
    assert df["bmi"].between(15, 60).all() and df["age"].between(18, 95).all()


def test_randomized_factors_keep_their_distribution_and_lose_their_causes(table):
    names = ("severity", "view", "device")
    trial = pd.DataFrame([factors(sample_individual(11, i), randomized_do(11, i, names)) for i in range(3000)])
    observed, randomized = table.corr(numeric_only=True), trial.corr(numeric_only=True)
    assert observed.loc["severity", "age"] > 0.3 and abs(randomized.loc["severity", "age"]) < 0.06
    table, trial = (frame.assign(ap=frame["view"] == "AP") for frame in (table, trial))
    ap_by_severity = [np.ptp(f.groupby(pd.qcut(f["severity"], 4, labels=False))["ap"].mean()) for f in (table, trial)]
    assert ap_by_severity[0] > 0.25 and ap_by_severity[1] < 0.08
    for name in ("severity", "ap", "device"):  # the population distribution stays
        assert abs(trial[name].mean() - table[name].mean()) < 0.04
    # descendants still follow the assigned value; the individual's own draws stay its own
    assert trial[["severity", "ctr"]].corr().iloc[0, 1] > 0.9
    assert np.array_equal(trial["age"], table["age"])
    assert randomized_do(11, 5, names) == randomized_do(11, 5, names)
    with pytest.raises(KeyError, match="ctr_projected"):
        randomized_do(0, 0, ["ctr_projected"])


# ------------------------------------------------------------------------------------------
# cohorts on disk
# ------------------------------------------------------------------------------------------
def test_generate_cohort_in_memory():
    images, df = generate_cohort(5, size=64, seed=3)
    assert images.shape == (5, 64, 64) and images.dtype == np.float32
    assert list(df["index"]) == list(range(5))
    assert np.array_equal(images[2], render(sample_individual(3, 2), 64).image)


def test_write_cohort_png(tmp_path):
    from PIL import Image

    df = write_cohort(tmp_path, n=6, size=64, seed=2, fmt="png", progress=False, workers=2)
    csv = pd.read_csv(tmp_path / "phantoms.csv")
    assert len(csv) == 6 and list(csv["image_id"]) == list(df["image_id"])
    assert {"image_id", "patient_id", "file", *FACTOR_COLUMNS} <= set(csv.columns)
    files = sorted(p.name for p in tmp_path.glob("*.png"))
    assert files == sorted(f"{i}.png" for i in csv["image_id"])
    assert not list(tmp_path.glob("*.tmp"))
    for _, r in csv.iterrows():
        im = np.asarray(Image.open(tmp_path / r["file"]))
        assert im.shape == (64, 64) and im.dtype == np.uint8
        expect = render(sample_individual(2, int(r["index"])), 64).image
        assert np.abs(im.astype(np.float32) / 127.5 - 1.0 - expect).max() < 0.01
        assert r["view"] in ("AP", "PA")


def test_write_cohort_dicom(tmp_path):
    import pydicom

    write_cohort(tmp_path, n=4, size=64, seed=4, fmt="dicom", progress=False, workers=1)
    csv = pd.read_csv(tmp_path / "phantoms.csv")
    assert len(csv) == 4
    for _, r in csv.iterrows():
        assert r["file"] == f"{r['image_id']}.dcm"
        ds = pydicom.dcmread(tmp_path / r["file"])
        assert ds.ViewPosition == r["view"]
        assert ds.PatientSex == r["sex"]
        assert ds.PatientAge == f"{int(r['age']):03d}Y"
        assert ds.PatientID == r["patient_id"]
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        arr = ds.pixel_array
        assert arr.shape == (64, 64) and arr.dtype == np.uint16 and ds.BitsStored == 16
        expect = render(sample_individual(4, int(r["index"])), 64).image
        assert np.abs(arr.astype(np.float64) / 32767.5 - 1.0 - expect).max() < 1e-3


def test_cli_parser_writes_a_cohort(tmp_path, capsys):
    from seegaan_explore.cli import main

    assert main(["phantoms", "--n", "3", "--size", "48", "--out", str(tmp_path / "c"), "--no-progress",
                 "--workers", "1"]) == 0
    assert len(list((tmp_path / "c").glob("*.png"))) == 3
    assert len(pd.read_csv(tmp_path / "c" / "phantoms.csv")) == 3
    assert "wrote 3 phantoms" in capsys.readouterr().out


def test_a_randomized_cohort_on_disk_is_rendered_under_its_assignment(tmp_path):
    from PIL import Image

    from seegaan_explore.cli import main

    assert main(["phantoms", "--n", "4", "--size", "48", "--out", str(tmp_path), "--no-progress",
                 "--workers", "1", "--randomize", "severity, view"]) == 0
    csv = pd.read_csv(tmp_path / "phantoms.csv")
    for _, r in csv.iterrows():
        do = randomized_do(0, int(r["index"]), ("severity", "view"))
        assert r["view"] == do["view"] and r["severity"] == pytest.approx(do["severity"], rel=1e-5)
        written = np.asarray(Image.open(tmp_path / r["file"]))
        assert np.array_equal(written, to_uint8(render(sample_individual(0, int(r["index"])), 48, do=do).image))
    with pytest.raises(KeyError, match="'heart'"):
        write_cohort(tmp_path / "never", n=1, randomize=("heart",))
    assert not (tmp_path / "never").exists()


def test_invalid_arguments():
    with pytest.raises(ValueError):
        sample_individual(-1, 0)
    with pytest.raises(ValueError):
        render(sample_individual(0, 0), 8)
    with pytest.raises(ValueError):
        write_cohort("/tmp/never-written", n=1, fmt="jpeg")
    assert ph.image_id(0, 12) == "phantom_s0_000012"
