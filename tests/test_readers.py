"""Readers of a real cohort's attributes: held-out quality by patient, calibrated readings, leakage
with a known answer, and the readers of the Hannover radiographs on the bundled model's latents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seegaan_explore.explore.directions import Direction
from seegaan_explore.explore.readers import (
    HELD_OUT,
    NAME,
    TRUSTED_R2,
    film_attributes,
    fit_reader,
    fit_readers,
    patient_groups,
    read_film,
    readers_of,
)
from seegaan_explore.explore.report import report_on
from seegaan_explore.explore.study import Study
from seegaan_explore.explore.traversal import Traversal

RNG = np.random.default_rng(0)


def test_a_reader_recovers_a_linear_attribute_and_refuses_noise():
    patients = np.repeat(np.arange(60), 5)
    latents = RNG.normal(size=(300, 16))
    beta = RNG.normal(size=16)
    columns = {"linear": latents @ beta + RNG.normal(scale=0.3, size=300),
               "noise": RNG.normal(size=300),
               "two_level": (latents @ beta > 0).astype(float)}
    readers = fit_readers(latents, columns, patients, two_level=["two_level"])
    linear, noise, two = readers["linear"], readers["noise"], readers["two_level"]
    assert linear.trusted and linear.held_out_r2 > 0.95 and 0.9 < linear.gain < 1.1
    assert linear.exams == 300 and linear.patients == 60 and linear.by_patient
    np.testing.assert_allclose(linear.read(latents[:5]), (latents @ beta)[:5], atol=0.5)
    assert abs(noise.held_out_r2) < 0.15 and not noise.trusted
    assert f"R² below {TRUSTED_R2:g} {HELD_OUT}" in noise.describe() and "not used" in noise.describe()
    assert two.trusted and two.held_out_auc > 0.95 and "AUC" in two.describe()
    with pytest.raises(ValueError, match="was not fitted"):
        fit_reader(latents[:30], columns["linear"][:30], patients[:30], attribute="few").read(latents)


def test_exams_are_held_out_by_patient():
    """Each patient has its own place in w and its own value, unrelated across patients: by exam the
    reader recognises the patient, by patient it reads nothing."""
    patients = np.repeat(np.arange(40), 5)
    place, value = RNG.normal(size=(40, 64)), RNG.normal(size=40)
    latents = place[patients] + RNG.normal(scale=0.05, size=(200, 64))
    by_patient = fit_reader(latents, value[patients], patients, attribute="x")
    by_exam = fit_reader(latents, value[patients], None, attribute="x")
    assert by_exam.held_out_r2 > 0.5 and not by_exam.by_patient and "(no patient column" in by_exam.describe()
    assert by_patient.held_out_r2 < TRUSTED_R2 and not by_patient.trusted


def test_too_few_patients_and_the_patient_column():
    table = pd.DataFrame({"Patient_ID": ["a", "a", None], "x": [1.0, 2.0, 3.0]})
    assert patient_groups(table).tolist() == ["a", "a", None]
    assert patient_groups(pd.DataFrame({"x": [1]})) is None
    with pytest.raises(ValueError, match="no patient column 'pid'"):
        patient_groups(table, "pid")
    reader = fit_reader(np.zeros((3, 2)), table["x"], patient_groups(table), attribute="x")
    assert not reader.trusted and "only 3 exams of 2 patients" in reader.describe()


class LinearImages:
    """An autoencoder whose images are a linear map of w, so that re-encoding a frame gives its latent back."""

    def __init__(self, w_dim: int, size: int = 8):
        self.map = np.linalg.qr(RNG.normal(size=(size * size, w_dim)))[0]
        self.size = size

    def decode(self, w: np.ndarray) -> np.ndarray:
        return (np.asarray(w) @ self.map.T).reshape(len(w), self.size, self.size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(images.reshape(len(images), -1).numpy().astype(np.float64) @ self.map)


def test_leakage_read_on_the_frames_has_the_known_answer():
    """The cohort's w holds a, b and c on their own axes plus noise that a reader cannot see through
    (held-out R² about 0.7). The film moves a by one and b by 0.8 per unit: calibrated readers read
    that on the re-encoded frames, where a raw regression would read about 0.7 of it."""
    n, w_dim = 600, 8
    a, b, c = RNG.normal(size=(3, n))
    latents = np.zeros((n, w_dim))
    latents[:, :3] = np.column_stack([a, b, c])
    latents += RNG.normal(scale=0.6, size=(n, w_dim))
    table = pd.DataFrame({"patient_id": np.arange(n) // 3, "a": a, "b": b, "c": c})
    study = Study(latents, table)
    readers = readers_of(study)
    assert all(r.trusted and 0.5 < r.held_out_r2 < 0.85 for r in readers.values())
    model = LinearImages(w_dim)
    amounts = np.linspace(-2, 2, 9)
    vector = np.zeros(w_dim, np.float32)
    vector[:2] = [1.0, 0.8]
    direction = Direction("a", "mean_shift", "generative", vector, float(np.std(a)))
    w0 = latents[7]
    moved = w0 + amounts[:, None] * vector
    frames = model.decode(moved)
    traversal = Traversal(amounts, False, moved.astype(np.float32), model.decode(w0[None])[0], frames,
                          frames - model.decode(w0[None]), direction)

    reading = read_film(model, frames, readers)
    raw_b = np.polyfit(amounts, moved @ readers["b"].weights + readers["b"].intercept, 1)[0]
    assert raw_b == pytest.approx(0.8 * readers["b"].gain, abs=0.06) and raw_b < 0.7  # attenuated
    scores, report = report_on(traversal, study=study, model=model, readers=readers)
    assert scores["leakage"]["b"] == pytest.approx(0.8, abs=0.08)
    assert scores["leakage"]["c"] == pytest.approx(0.0, abs=0.06)
    assert scores["measured_by"] is None  # a latent reader of the target reads high: it does not measure it
    assert scores["target_read"]["achieved_over_intended"] == pytest.approx(1.0, abs=0.1)
    assert scores["target_read"]["by"] == f"the {readers['a'].describe()} on the frames encoded again"
    assert set(reading.others("a")) == {"b", "c"}
    assert NAME in scores["leakage_read_by"]["b"] and "200 patients" in scores["leakage_read_by"]["b"]
    label, share, words = report.leakage[0]
    assert label == "b" and share == pytest.approx(0.8 * np.std(a) / np.std(b), abs=0.1)
    assert f"across the film; read by the {NAME}" in words
    level, _, reasons = report.verdict
    assert level == "care" and any(r.startswith("b changes too") for r in reasons)
    assert any(r.startswith(f"only the {NAME} read a on this film")
               for r in reasons)
    assert report.ends == ("lower a", "higher a")


def test_without_an_oracle_the_renderer_reads_the_re_encoded_frames():
    """The dashboard on a cohort without an oracle: its readers measure the target and the other
    attributes on the frames as the encoder sees them again, and say which reader read what."""
    from ui_cohort import small_setup

    from seegaan_explore.ui.renderer import Renderer

    model, latents, table, _, _, images = small_setup()
    renderer = Renderer(model, latents, table, images=images)
    result = renderer.render({"attribute": "brightness", "patient": 2, "method": None})
    q, readers = result["quality"], readers_of(renderer.study)
    assert q["measured_by"] is None
    assert q["target_read"]["by"] == f"the {readers['brightness'].describe()} on the frames encoded again"
    re_encoded = model.encode(torch.from_numpy(result["traversal"].frames)[:, None]).numpy()
    intended = result["traversal"].amounts * result["direction"].scale
    trusted = [n for n, r in readers.items() if r.trusted and n != "brightness"]
    assert trusted and set(q["leakage"]) == set(trusted) == set(q["leakage_read_by"])
    for name in trusted:
        assert q["leakage"][name] == pytest.approx(np.polyfit(intended, readers[name].read(re_encoded), 1)[0],
                                                   rel=1e-3, abs=1e-6)
    assert set(q["leakage_unread"]) == {n for n, r in readers.items() if not r.trusted} - {"brightness"}
    read_by = {label: words for label, _, words, _ in result["leakage"]}
    assert all(f"read by the {readers[n].describe()}" in read_by[n] for n in trusted)


def test_hannover_readers_on_the_bundled_model(hannover_dir, tmp_path):
    """The bundled autoencoder (trained on phantoms) encodes the 243 real films of 71 patients. Held
    out by patient, a ridge reader reads AP/PA from its latents (measured: R² 0.89, AUC 1.00) but not
    sex (R² -0.01, AUC 0.62): the phantoms never taught it what sex looks like on a real film. The
    dashboard's renderer then reads the leakage of a sex film with the trusted readers, and a
    projection film as fitted barely moves projection even as its reader reads it (measured: 3%);
    calibrated by that reader (the default), it is drawn further out."""
    from seegaan_explore.data.cohort import Cohort
    from seegaan_explore.demo import FILES, WEIGHTS_DIR
    from seegaan_explore.explore.latents import encode_cohort
    from seegaan_explore.model import load_model
    from seegaan_explore.ui.renderer import Renderer

    model = load_model(WEIGHTS_DIR / FILES["autoencoder"]).eval()
    model.precision = "fp32"
    cohort = Cohort.from_table(hannover_dir / "data.csv", hannover_dir / "png")
    latents = encode_cohort(model, cohort, tmp_path, progress=False)
    study = Study(latents.latents, latents.table)
    readers = readers_of(study, ["projection", "sex"], cohort.patient_column)
    projection, sex = readers["projection"], readers["sex"]
    assert (projection.exams, projection.patients, projection.by_patient) == (243, 71, True)
    assert projection.trusted and projection.held_out_r2 > 0.6 and projection.held_out_auc > 0.95
    assert not sex.trusted and sex.held_out_r2 < TRUSTED_R2

    renderer = Renderer(model, latents.latents, latents.table)
    result = renderer.render({"attribute": "sex", "patient": 3, "method": None})
    assert result["error"] is None
    q = result["quality"]
    assert "projection" in q["leakage"] and "projection" in q["leakage_read_by"] and "sex" not in q["leakage"]
    assert q["measured_by"] is None and "target_read" not in q and "sex" not in q["leakage_unread"]
    assert any(label == "projection" and f"read by the {NAME}" in words
               for label, _, words, _ in result["leakage"])
    film = renderer.render({"attribute": "projection", "patient": 3, "method": None, "calibrate": False})
    assert film["quality"]["target_read"]["achieved_over_intended"] < 0.25
    reasons = film["verdict"].reasons
    assert any(r.startswith(f"projection barely changed even as the {NAME}") for r in reasons)
    # calibrated (the default) by the same reader on other patients' films, it is drawn further out
    calibrated = renderer.render({"attribute": "projection", "patient": 3, "method": None})
    assert calibrated["calibration"].by.startswith(f"the {NAME} ({HELD_OUT}: R²")
    assert calibrated["calibration"].stretch > 1
    assert calibrated["quality"]["target_read"]["achieved_over_intended"] > \
        film["quality"]["target_read"]["achieved_over_intended"]


def test_a_film_of_a_contrast_is_not_read_for_the_other_contrasts_of_its_own_column():
    """"died vs ward" beside "died vs the rest" is the target seen another way, not leakage."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"outcome": rng.choice(["ward", "icu", "died"], 60), "age": rng.normal(60, 10, 60),
                          "sex": rng.choice(["f", "m"], 60)})
    study = Study(rng.normal(size=(60, 8)).astype(np.float32), table)
    read = film_attributes(study, "outcome=died")
    assert read[0] == "outcome=died" and {"age", "sex"} <= set(read)
    assert not [a for a in read[1:] if a.startswith("outcome")]
    assert film_attributes(study, "age") == ["age", *(a for a in study.attributes if a != "age")]
