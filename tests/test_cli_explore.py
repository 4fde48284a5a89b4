"""The exploration commands (encode, direction, traverse, export, attribute) on a tiny model and phantoms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from seegaan_explore.cli import main
from seegaan_explore.data.cohort import Cohort
from seegaan_explore.data.images import load_preprocessed, to_uint8
from seegaan_explore.explore import quality
from seegaan_explore.explore.archives import load_direction, load_report, load_traversal
from seegaan_explore.explore.attribution import attribute
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.explore.export import mp4_report
from seegaan_explore.explore.latent_shift import latent_shift
from seegaan_explore.explore.latents import encode_cohort
from seegaan_explore.explore.report import FilmReport
from seegaan_explore.explore.study import Study
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.model import SeeGaan, load_model, preset_config, save_model
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN, load_cnn, save_cnn

N = 12
FP32 = ["--precision", "fp32", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["phantoms", "--n", str(N), "--size", "32", "--out", str(root / "phantoms"), "--workers", "1",
                 "--no-progress"]) == 0
    torch.manual_seed(0)
    save_model(root / "tiny.safetensors", SeeGaan(preset_config("tiny")), ema_only=True)
    torch.manual_seed(1)
    save_cnn(root / "cnn.safetensors", RadiographCNN(CnnConfig(resolution=32, widths=(8, 16), attribute="severity")))
    save_cnn(root / "cnn64.safetensors", RadiographCNN(CnnConfig(resolution=64, widths=(8, 16))))
    return root


def _cohort_args(root, cache=None):
    return ["--data", str(root / "phantoms" / "phantoms.csv"), "--cache-dir", str(cache or root / "cache")]


def _model(root):
    model = load_model(root / "tiny.safetensors")
    model.precision = "fp32"
    return model


def _latents(root):
    return encode_cohort(_model(root), Cohort.from_table(root / "phantoms" / "phantoms.csv"), root / "cache",
                         progress=False)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("command", ["encode", "direction", "traverse", "export", "attribute"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: seegaan-explore {command}" in capsys.readouterr().out


def test_encode_reports_the_store_and_reuses_it(setup, capsys):
    args = ["encode", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32]
    assert main(args) == 0
    captured = capsys.readouterr()
    first = _json_lines(captured.out)[0]
    assert (first["images"], first["encoded"], first["skipped"], first["w_dim"]) == (N, N, 0, 64)
    assert f"{N} latents ({N} encoded now, 0 from the store" in captured.err
    assert main(args) == 0
    second = _json_lines(capsys.readouterr().out)[0]
    assert second["encoded"] == 0 and second["store"] == first["store"]
    np.testing.assert_allclose(np.load(first["store"]), _latents(setup).latents)


def test_encode_names_skipped_files(setup, tmp_path, capsys):
    shutil.copytree(setup / "phantoms", tmp_path / "phantoms")
    broken = tmp_path / "phantoms" / "phantom_s0_000003.png"
    broken.write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match="phantom_s0_000003"):
        main(["encode", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(tmp_path), *FP32])
    captured = capsys.readouterr()
    assert f"skipped phantom_s0_000003 ({broken}): not a recognised image" in captured.err
    printed = _json_lines(captured.out)[0]
    assert (printed["images"], printed["skipped"]) == (N - 1, 1)


def test_direction_files_hold_what_the_python_api_fits(setup, tmp_path, capsys):
    out = tmp_path / "directions"
    assert main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32,
                 "--attribute", "severity", "age", "--confounders", "bmi", "--out", str(out)]) == 0
    printed = _json_lines(capsys.readouterr().out)
    assert [p["attribute"] for p in printed] == ["severity", "age"]
    latents = _latents(setup)
    table = latents.frame()
    for line, name in zip(printed, ("severity", "age")):
        assert line["file"] == str(out / f"{name}.mean_shift.safetensors")
        saved = load_direction(line["file"])
        expected = fit_direction("mean_shift", latents.latents, table[name].to_numpy(float),
                                 table[["bmi"]].to_numpy(float), attribute=name, confounder_names=("bmi",))
        np.testing.assert_allclose(saved.vector, expected.vector, rtol=1e-4, atol=1e-6)
        assert saved.confounders == ("bmi",) and saved.scale == pytest.approx(expected.scale)
        assert line["n"] == N and line["sd"] == pytest.approx(expected.scale)

    assert main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32,
                 "--attribute", "nt_probnp_pg_ml", "--log", "--estimator", "ridge", "--out", str(out)]) == 0
    logged = _json_lines(capsys.readouterr().out)[0]
    assert logged["attribute"] == "ln(nt_probnp_pg_ml)" and logged["kind"] == "predictive"
    assert logged["file"].endswith("nt_probnp_pg_ml.ln.ridge.safetensors")
    assert main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32,
                 "--attribute", "age", "--estimator", "spline_mean_shift", "--at", "40", "60", "--out", str(out)]) == 0
    spline = _json_lines(capsys.readouterr().out)[0]
    assert spline["at"] == [40.0, 60.0]
    expected = fit_direction("spline_mean_shift", latents.latents, table["age"].to_numpy(float), at=(40, 60))
    np.testing.assert_allclose(load_direction(spline["file"]).vector, expected.vector, rtol=1e-4, atol=1e-6)
    base = ["direction", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32,
            "--out", str(out), "--attribute"]
    with pytest.raises(SystemExit, match="--at is the range a spline_mean_shift takes its slope over; pca"):
        main([*base, "age", "--estimator", "pca", "--at", "40", "60"])
    with pytest.raises(SystemExit, match="edema_grade: a log scale needs positive values, but the smallest is 0"):
        main([*base, "edema_grade", "--log"])
    with pytest.raises(SystemExit, match="unknown attribute 'nope'; choose one of age"):
        main([*base, "nope"])


def test_traverse_writes_every_format_from_the_stored_latent(setup, tmp_path, capsys):
    direction_file = tmp_path / "severity.safetensors"
    main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *_cohort_args(setup), *FP32,
          "--attribute", "severity", "--out", str(tmp_path)])
    shutil.move(tmp_path / "severity.mean_shift.safetensors", direction_file)
    capsys.readouterr()
    patient = "phantom_s0_000007"
    out = tmp_path / "out"
    assert main(["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--id", patient,
                 "--direction", str(direction_file), "--range", "-1", "1", "--frames", "3", "--sd",
                 "--format", "gif", "mp4", "png", "html", "npz", "--cnn", str(setup / "cnn.safetensors"),
                 "--attribution", "saliency", "--out", str(out), "--no-calibrate", *_cohort_args(setup)]) == 0
    printed = _json_lines(capsys.readouterr().out)[0]
    stem = out / f"{patient}.severity"
    assert printed["files"] == [str(stem) + f".{ext}" for ext in ("gif", "mp4", "png", "html", "npz")]
    model, direction = _model(setup), load_direction(direction_file)
    expected = traverse(model, _latents(setup).latent(patient), direction, [-1.0, 0.0, 1.0], in_sd=True)
    saved, predictions = load_traversal(str(stem) + ".npz")
    np.testing.assert_allclose(saved.frames, expected.frames, atol=1e-5)
    assert saved.in_sd and saved.amounts.tolist() == [-1.0, 0.0, 1.0]
    cnn = load_cnn(setup / "cnn.safetensors")
    np.testing.assert_allclose(predictions, cnn.predict(torch.from_numpy(saved.frames)[:, None]).numpy(), rtol=1e-5)
    np.testing.assert_allclose(printed["predictions"], predictions, rtol=1e-6)
    assert iio.imread(str(stem) + ".gif", index=None).shape[0] == 3
    assert iio.imread(str(stem) + ".mp4", index=None).shape[0] == 3
    assert mp4_report(str(stem) + ".mp4") == load_report(str(stem) + ".npz") is not None  # the report goes along
    assert Image.open(str(stem) + ".png").size[1] > 3 * 128  # frames, differences and attributions
    assert "severity as the CNN reads it" in (stem.parent / f"{stem.name}.html").read_text(encoding="utf-8")
    # the CNN predicts the traversed attribute, so its predictions on the frames score the traversal
    original = load_preprocessed(setup / "phantoms" / f"{patient}.png", 32)
    scores = quality.score(saved, predictions, original=original)
    assert printed["quality"]["measured_by"] == "the CNN"
    for key in ("monotonicity", "achieved_over_intended", "proximity", "reconstruction_psnr_db"):
        assert printed["quality"][key] == pytest.approx(scores[key], rel=1e-4, abs=1e-6)


def test_traverse_calibrates_where_the_cnn_reads_the_attribute_and_says_so(setup, tmp_path, capsys):
    """By default each step is drawn where the CNN reads, on other patients' films, the change it
    promises: the frames stay on the direction's line, the steps move, and the output says so."""
    patient = "phantom_s0_000007"
    base = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--id", patient, "--attribute",
            "severity", "--range", "-2", "2", "--frames", "5", "--sd", "--format", "npz",
            "--cnn", str(setup / "cnn.safetensors"), *_cohort_args(setup)]
    assert main([*base, "--out", str(tmp_path / "calibrated")]) == 0
    out = capsys.readouterr()
    printed = _json_lines(out.out)[0]
    calibration = printed["calibration"]
    assert calibration["by"] == "the CNN" and f"{patient}: {calibration['words']}" in out.err  # named, not a row
    calibrated = "Calibrated on 8 other patients' films, where, as fitted, the CNN read"
    assert calibration["words"].startswith(calibrated if calibration["stretch"] else "Not calibrated")
    assert main([*base, "--out", str(tmp_path / "as-fitted"), "--no-calibrate"]) == 0
    assert "calibration" not in _json_lines(capsys.readouterr().out)[0]
    assert load_report(tmp_path / "calibrated" / f"{patient}.severity.npz").calibration == calibration["words"]
    assert load_report(tmp_path / "as-fitted" / f"{patient}.severity.npz").calibration == ""
    calibrated, _ = load_traversal(tmp_path / "calibrated" / f"{patient}.severity.npz")
    fitted, _ = load_traversal(tmp_path / "as-fitted" / f"{patient}.severity.npz")
    w0 = _latents(setup).latent(patient)
    line = fitted.latents[-1] - w0  # +2 SD as fitted
    drawn = (calibrated.latents - w0) @ line / (line @ line) * 2  # each frame's step along it, in SDs
    np.testing.assert_allclose(calibrated.latents - w0, (drawn / 2)[:, None] * line, atol=1e-4)  # on the line
    assert np.all(np.diff(drawn) > 0) and drawn[2] == pytest.approx(0, abs=1e-5)  # one way; the patient between
    if calibration["stretch"] is not None:
        assert not np.allclose(calibrated.latents, fitted.latents)


def test_traverse_an_image_file_along_a_direction_fitted_on_the_spot(setup, tmp_path, capsys):
    image = setup / "phantoms" / "phantom_s0_000002.png"
    assert main(["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--image", str(image),
                 "--attribute", "age", "--amounts", "0", "10", "--format", "npz", "--out", str(tmp_path),
                 *_cohort_args(setup)]) == 0
    saved, predictions = load_traversal(tmp_path / "phantom_s0_000002.age.npz")
    assert predictions is None
    model = _model(setup)
    latents = _latents(setup)
    direction = fit_direction("mean_shift", latents.latents, latents.frame()["age"].to_numpy(float), attribute="age")
    w0 = model.encode(torch.from_numpy(load_preprocessed(image, 32))[None, None])[0]
    np.testing.assert_allclose(saved.latents[1] - w0.numpy(), 10 * direction.vector, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(saved.frames, traverse(model, w0, direction, [0, 10]).frames, atol=1e-5)
    # nothing measures age on the frames (12 phantoms are too few for a reader): only what the images tell
    printed = _json_lines(capsys.readouterr().out)[-1]["quality"]
    assert set(printed) == {"proximity", "reconstruction_psnr_db", "measured_by", "not_measured", "leakage_read_by",
                            "leakage_unread"} and printed["measured_by"] is None
    assert "nothing measures age" in printed["not_measured"] and not printed["leakage_read_by"]
    assert printed["reconstruction_psnr_db"] == pytest.approx(
        quality.psnr_db(saved.reconstruction, load_preprocessed(image, 32)), rel=1e-4)


def test_traverse_reads_the_original_average_latents(setup, tmp_path, capsys):
    rng = np.random.default_rng(0)
    average = rng.normal(size=(5, 64)).astype(np.float32) * 0.3  # bins on no straight line, as real bin means
    np.save(tmp_path / "HeartFailure_average_latents.npy", average)
    image = setup / "phantoms" / "phantom_s0_000001.png"
    args = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--image", str(image),
            "--direction", str(tmp_path / "HeartFailure_average_latents.npy"), "--format", "npz",
            "--out", str(tmp_path)]
    saved_as = tmp_path / "phantom_s0_000001.HeartFailure_average_latents.npz"
    assert main([*args, "--amounts", "0", "1", "2", "3", "4"]) == 0
    saved, _ = load_traversal(saved_as)
    np.testing.assert_allclose(saved.latents - saved.latents[0], average - average[0], atol=1e-5)  # G(w + h_k - h_0)
    assert main([*args, "--range", "0", "4", "--frames", "9"]) == 0  # between two bins: the line joining them
    saved, _ = load_traversal(saved_as)
    np.testing.assert_allclose(saved.latents[::2] - saved.latents[0], average - average[0], atol=1e-5)
    np.testing.assert_allclose(saved.latents[3] - saved.latents[0], (average[1] + average[2]) / 2 - average[0],
                               atol=1e-5)
    assert main([*args, "--amounts", "0", "100", "200", "--bin-values", "100", "200", "300", "350", "500"]) == 0
    saved, _ = load_traversal(saved_as)
    np.testing.assert_allclose(saved.latents[2] - saved.latents[0], average[2] - average[0], atol=1e-5)
    with pytest.raises(SystemExit, match="does not record the attribute's SD"):
        main([*args, "--amounts", "1", "--sd"])
    with pytest.raises(SystemExit, match="step 5 lies beyond the bins; steps from 0 to 4 reach every bin"):
        main([*args, "--amounts", "0", "5"])


def test_traverse_matches_each_patient_to_the_exams_that_share_its_value(setup, tmp_path, capsys):
    table = pd.read_csv(setup / "phantoms" / "phantoms.csv")
    table["scanner"] = ["B" if i == 3 else "A" for i in range(len(table))]  # one exam from another scanner
    table.to_csv(tmp_path / "cohort.csv", index=False)
    data = ["--data", str(tmp_path / "cohort.csv"), "--image-root", str(setup / "phantoms"),
            "--cache-dir", str(setup / "cache")]
    common = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--attribute", "age",
              "--confounders", "bmi", "--match", "scanner", "--format", "npz"]
    base = [*common, "--amounts", "0", "10", "--out", str(tmp_path)]
    patient = "phantom_s0_000007"
    assert main([*base, "--id", patient, *data]) == 0
    saved, _ = load_traversal(tmp_path / f"{patient}.age.npz")
    latents = _latents(setup)
    same = (table["scanner"] == "A").to_numpy()
    ids = table["image_id"].to_numpy()
    rows = [latents.row(i) for i in ids[same]]
    expected = fit_direction("mean_shift", latents.latents[rows], table["age"].to_numpy(float)[same],
                             table[["bmi"]].to_numpy(float)[same])
    np.testing.assert_allclose(saved.latents[1] - saved.latents[0], 10 * expected.vector, rtol=1e-4, atol=1e-5)
    unmatched = fit_direction("mean_shift", latents.latents, latents.frame()["age"].to_numpy(float),
                              latents.frame()[["bmi"]].to_numpy(float))
    assert not np.allclose(expected.vector, unmatched.vector, rtol=0.01)
    assert main([*common, "--amounts", "0", "1", "--sd", "--out", str(tmp_path / "sd"), "--id", patient,
                 *data]) == 0  # one SD is still the whole cohort's
    saved, _ = load_traversal(tmp_path / "sd" / f"{patient}.age.npz")
    np.testing.assert_allclose(saved.latents[1] - saved.latents[0], table["age"].std(ddof=0) * expected.vector,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(SystemExit, match="phantom_s0_000003: among the 1 exams with scanner = B: age: only 1 rows"):
        main([*base, "--id", "phantom_s0_000003", *data])
    with pytest.raises(SystemExit, match="--match fits each cohort patient's mean shift"):
        main([*base, "--image", str(setup / "phantoms" / "phantom_s0_000003.png"), *data])


def test_traverse_with_a_spline_takes_each_patients_slope_from_its_own_value(setup, tmp_path):
    base = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--attribute", "age",
            "--estimator", "spline_mean_shift", "--amounts", "-5", "0", "10", "--format", "npz",
            "--out", str(tmp_path), *_cohort_args(setup)]
    latents = _latents(setup)
    age = latents.frame()["age"].to_numpy(float)
    steps = {}
    for patient in ("phantom_s0_000007", "phantom_s0_000002"):
        assert main([*base, "--id", patient]) == 0
        saved, _ = load_traversal(tmp_path / f"{patient}.age.npz")
        own = age[latents.row(patient)]
        expected = fit_direction("spline_mean_shift", latents.latents, age, at=(own - 5, own + 10))
        np.testing.assert_allclose(saved.latents[2] - saved.latents[1], 10 * expected.vector, rtol=1e-4, atol=1e-5)
        steps[patient] = expected.vector
    assert not np.allclose(*steps.values(), rtol=0.01)
    with pytest.raises(SystemExit, match="it needs cohort patients \\(--id\\), not --image"):
        main([*base, "--image", str(setup / "phantoms" / "phantom_s0_000003.png")])


def test_traverse_errors_name_the_problem(setup, tmp_path):
    base = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--attribute", "age",
            "--amounts", "1", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="no usable image for 'nobody', no such id"):
        main([*base, "--id", "nobody", *_cohort_args(setup)])
    table = pd.read_csv(setup / "phantoms" / "phantoms.csv")  # a row whose file is gone: said so, not "no such id"
    ghost = table.iloc[[0]].assign(image_id="ghost", file="ghost.png")
    pd.concat([table, ghost]).to_csv(setup / "phantoms" / "with-ghost.csv", index=False)
    with pytest.raises(SystemExit, match=r"no usable image for 'ghost', image file not found \("):
        main([*base, "--id", "ghost", "--data", str(setup / "phantoms" / "with-ghost.csv"),
              "--cache-dir", str(setup / "cache")])
    with pytest.raises(SystemExit, match="--data is needed"):
        main([*base, "--id", "phantom_s0_000001"])
    with pytest.raises(SystemExit, match="cnn64.safetensors: the CNN takes 64 px images, the autoencoder makes 32"):
        main([*base, "--id", "phantom_s0_000001", "--cnn", str(setup / "cnn64.safetensors"), *_cohort_args(setup)])
    with pytest.raises(SystemExit, match="missing.png"):
        main([*base, "--image", str(tmp_path / "missing.png"), *_cohort_args(setup)])


def test_an_image_named_on_the_command_line_is_refused_as_a_cohorts_import_refuses_it(setup, tmp_path):
    """A CT named by ``--image`` is no chest radiograph: ``traverse`` and ``attribute`` refuse it with
    the reason the cohort's import gives, unless the modality filter is lifted."""
    from pydicom.data import get_testdata_file

    ct = get_testdata_file("CT_small.dcm")
    traverse = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--attribute", "age",
                "--amounts", "1", "--out", str(tmp_path), "--image", ct, *_cohort_args(setup)]
    with pytest.raises(SystemExit, match=r"CT_small.dcm: modality CT \(not a chest radiograph"):
        main(traverse)
    attribute_ = ["attribute", "--cnn", str(setup / "cnn.safetensors"), "--image", ct, "--out", str(tmp_path),
                  "--device", "cpu", "--no-progress"]
    with pytest.raises(SystemExit, match=r"CT_small.dcm: modality CT \(not a chest radiograph"):
        main(attribute_)
    assert main([*attribute_, "--modality", "any"]) == 0


def test_export_writes_a_saved_traversal_in_other_formats(setup, tmp_path, capsys):
    image = setup / "phantoms" / "phantom_s0_000004.png"
    main(["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--image", str(image),
          "--attribute", "severity", "--range", "-1", "1", "--frames", "4", "--sd", "--format", "npz",
          "--out", str(tmp_path), *_cohort_args(setup)])
    capsys.readouterr()
    saved = tmp_path / "phantom_s0_000004.severity.npz"
    assert main(["export", str(saved), "--format", "gif", "png", "html", "--out", str(tmp_path / "x")]) == 0
    printed = _json_lines(capsys.readouterr().out)[0]
    assert printed["files"] == [str(tmp_path / "x" / f"phantom_s0_000004.severity.{e}") for e in ("gif", "png", "html")]
    traversal, _ = load_traversal(saved)
    gif = iio.imread(printed["files"][0], index=None)[..., 0]
    np.testing.assert_array_equal(gif, to_uint8(traversal.frames))
    with pytest.raises(SystemExit, match="nothing.npz: no such traversal file"):
        main(["export", str(tmp_path / "nothing.npz")])


def test_images_of_one_name_in_two_folders_write_their_own_outputs(setup, tmp_path, capsys):
    """An archive names its files IM0001 in every series: each image's outputs keep the folder apart."""
    for folder, k in (("A", 1), ("B", 2)):
        (tmp_path / folder).mkdir()
        shutil.copy(setup / "phantoms" / f"phantom_s0_00000{k}.png", tmp_path / folder / "IM0001.png")
    assert main(["attribute", "--cnn", str(setup / "cnn.safetensors"), "--method", "saliency", "--image",
                 str(tmp_path / "A" / "IM0001.png"), str(tmp_path / "B" / "IM0001.png"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"]) == 0
    written = [Path(line["npy"]).name for line in _json_lines(capsys.readouterr().out)]
    assert written == ["A_IM0001.saliency.npy", "B_IM0001.saliency.npy"]
    assert not np.array_equal(*(np.load(tmp_path / "out" / name) for name in written))


def test_attribute_writes_overlay_and_map_per_image(setup, tmp_path, capsys):
    ids = ["phantom_s0_000000", "phantom_s0_000005"]
    assert main(["attribute", "--cnn", str(setup / "cnn.safetensors"), "--method", "saliency", "--id", *ids,
                 "--out", str(tmp_path), "--device", "cpu", "--no-progress", *_cohort_args(setup)]) == 0
    printed = _json_lines(capsys.readouterr().out)
    cnn = load_cnn(setup / "cnn.safetensors")
    cohort = Cohort.from_table(setup / "phantoms" / "phantoms.csv")
    images = np.asarray(cohort.images(32, setup / "cache", progress=False), np.float32)
    for line, image_id in zip(printed, ids):
        x = torch.from_numpy(images[cohort.ids.index(image_id)])[None, None]
        np.testing.assert_allclose(np.load(line["npy"]), attribute(cnn, x, "saliency")[0], rtol=1e-5, atol=1e-7)
        assert line["prediction"] == pytest.approx(float(cnn.predict(x)[0]), rel=1e-5)
        assert Image.open(line["png"]).size == (2 * 128 + 3 * 4, 128 + 2 * 4)
    with pytest.raises(SystemExit, match="no usable image for 'nobody', no such id"):
        main(["attribute", "--cnn", str(setup / "cnn.safetensors"), "--id", "nobody", "--out", str(tmp_path),
              "--no-progress", *_cohort_args(setup)])


def test_direction_of_the_cnn_prediction(setup, tmp_path, capsys):
    root = setup
    args = ["direction", *_cohort_args(root), "--checkpoint", str(root / "tiny.safetensors"), *FP32,
            "--attribute", "cnn_prediction", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="needs --cnn"):
        main(args)
    assert main([*args, "--cnn", str(root / "cnn.safetensors")]) == 0
    saved = load_direction(tmp_path / "cnn_prediction.mean_shift.safetensors")
    # the same as regressing the latents on the CNN's own predictions over the cohort
    cohort = Cohort.from_table(root / "phantoms" / "phantoms.csv")
    latents = encode_cohort(_model(root), cohort, root / "cache", progress=False)
    images = torch.from_numpy(np.asarray(cohort.images(32, root / "cache", progress=False), dtype=np.float32))[:, None]
    predicted = load_cnn(root / "cnn.safetensors").predict(images).numpy()
    expected = fit_direction("mean_shift", latents.latents, predicted.astype(np.float64))
    np.testing.assert_allclose(saved.vector, expected.vector, rtol=1e-4, atol=1e-6)


def test_traverse_along_latent_shift_per_patient(setup, tmp_path, capsys):
    image = setup / "phantoms" / "phantom_s0_000002.png"
    common = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--image", str(image),
              "--latent-shift", "--amounts", "0", "1e-4", "--format", "npz", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="needs --cnn"):
        main(common)
    assert main([*common, "--cnn", str(setup / "cnn.safetensors")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved, predictions = load_traversal(next(tmp_path.glob("*.npz")))
    model = _model(setup)
    w0 = model.encode(torch.from_numpy(load_preprocessed(image, 32))[None, None])[0]
    expected = latent_shift(model, load_cnn(setup / "cnn.safetensors"), w0)
    np.testing.assert_allclose(saved.latents[1] - w0.numpy(), 1e-4 * expected.vector, rtol=1e-3, atol=1e-7)
    assert "latent shift" in out["attribute"] and len(predictions) == 2


def test_directions_of_a_categorical_column_fitted_on_a_split(setup, tmp_path, capsys):
    table = pd.read_csv(setup / "phantoms" / "phantoms.csv")
    table["scanner"] = ["A", "B", "A", "C", "B", "A", "A", "B", "C", "A", "B", "A"]  # A 6, B 4, C 2
    table["split"] = ["train"] * 10 + ["test"] * 2
    table.loc[11, "patient_id"] = table.loc[0, "patient_id"]  # a test exam of a training patient
    table.loc[4, "bmi"] = np.nan
    table.to_csv(tmp_path / "cohort.csv", index=False)
    data = ["--data", str(tmp_path / "cohort.csv"), "--image-root", str(setup / "phantoms"),
            "--cache-dir", str(setup / "cache")]
    base = ["direction", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, *data, "--out", str(tmp_path)]
    latents = _latents(setup)
    w = latents.latents[[latents.row(i) for i in table["image_id"]]]
    scanner = table["scanner"].to_numpy()

    assert main([*base, "--attribute", "scanner=b", "--confounders", "bmi"]) == 0  # B against the rest
    captured = capsys.readouterr()
    line = _json_lines(captured.out)[0]
    assert (line["attribute"], line["ends"], line["n"]) == ("scanner=B", ["not B", "B"], 11)
    assert line["dropped"] == [{"column": "bmi", "rows": 1, "reason": "without a value of bmi"}]
    assert "scanner=B: fitted on 11 rows; left out 1 row without a value of bmi" in captured.err
    assert line["file"] == str(tmp_path / "scanner_B.mean_shift.safetensors")
    saved = load_direction(line["file"])
    assert saved.ends == ("not B", "B") and saved.diagnostics["dropped"] == line["dropped"]
    keep = table["bmi"].notna().to_numpy()
    expected = fit_direction("mean_shift", w[keep], (scanner[keep] == "B").astype(float),
                             table[["bmi"]].to_numpy(float)[keep])
    np.testing.assert_allclose(saved.vector, expected.vector, rtol=1e-4, atol=1e-6)

    assert main([*base, "--attribute", "scanner=B:A"]) == 0  # B against A: the C exams are left out
    line = _json_lines(capsys.readouterr().out)[0]
    assert (line["ends"], line["n"]) == (["A", "B"], 10)
    assert line["dropped"] == [{"column": "scanner", "rows": 2, "reason": "of other levels of scanner (C)"}]
    two = scanner != "C"
    expected = fit_direction("mean_shift", w[two], (scanner[two] == "B").astype(float))
    np.testing.assert_allclose(load_direction(line["file"]).vector, expected.vector, rtol=1e-4, atol=1e-6)

    assert main([*base, "--attribute", "sex=M:F", "--where", "split=train"]) == 0
    captured = capsys.readouterr()
    line = _json_lines(captured.out)[0]
    assert (line["ends"], line["n"], line["fitted_on"]) == (["F", "M"], 10, "split = train")
    assert "sex=M:F: fitted on 10 rows where split = train" in captured.err
    train = (table["split"] == "train").to_numpy()
    expected = fit_direction("mean_shift", w[train], (table["sex"][train] == "M").to_numpy(float))
    np.testing.assert_allclose(load_direction(line["file"]).vector, expected.vector, rtol=1e-4, atol=1e-6)

    with pytest.raises(SystemExit, match=r"column 'scanner' has no level 'D'; its levels are A \(6 rows\), B \(4\), "
                                         r"C \(2\)"):
        main([*base, "--attribute", "scanner=D"])
    with pytest.raises(SystemExit, match=r"column 'split' has no value 'trian'; its values are train \(10 rows\), "
                                         r"test \(2\)"):
        main([*base, "--attribute", "age", "--where", "split=trian"])
    with pytest.raises(SystemExit, match=r"'scanner' is not an attribute: it has 3 levels .*\(scanner=B:A\)"):
        main([*base, "--attribute", "scanner"])

    traverse = ["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, *data, "--attribute", "sex=M:F",
                "--where", "split=train", "--amounts", "0", "1", "--format", "npz", "--out", str(tmp_path)]
    assert main([*traverse, "--id", "phantom_s0_000011", "phantom_s0_000003"]) == 0
    captured = capsys.readouterr()
    held_out, trained_on = _json_lines(captured.out)
    assert (held_out["in_fit"], trained_on["in_fit"]) == (False, True)
    assert (held_out["patient_in_fit"], trained_on["patient_in_fit"]) == (True, True)  # 000011 is patient 0's
    assert "phantom_s0_000011: not fitted on, but other exams of its patient" in captured.err
    assert "sex=M:F: fitted on 10 rows where split = train" in captured.err
    saved, _ = load_traversal(tmp_path / "phantom_s0_000011.sex_M_F.npz")
    np.testing.assert_allclose(saved.latents[1] - saved.latents[0], expected.vector, rtol=1e-4, atol=1e-5)
    assert saved.direction.ends == ("F", "M")
    with pytest.raises(SystemExit, match="--where chooses the rows a direction is fitted on: it needs --attribute"):
        main([*traverse[:traverse.index("--attribute")], "--direction", line["file"], "--where", "split=train",
              "--amounts", "1", "--out", str(tmp_path), "--id", "phantom_s0_000011"])


def test_traverse_and_export_carry_the_ends_the_verdict_and_what_read_the_film(setup, tmp_path, capsys):
    patient = "phantom_s0_000003"
    assert main(["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, "--id", patient,
                 "--attribute", "severity", "--range", "-1", "1", "--frames", "3", "--sd",
                 "--format", "gif", "png", "html", "npz", "--out", str(tmp_path), *_cohort_args(setup)]) == 0
    printed = _json_lines(capsys.readouterr().out)[0]
    assert printed["ends"] == ["lower severity", "higher severity"]
    assert printed["verdict"]["level"] == "care" and printed["verdict"]["headline"] == "Read this film with care."
    assert any("nothing measured severity" in reason for reason in printed["verdict"]["reasons"])
    others = set(Study(_latents(setup).latents, _latents(setup).table).attributes) - {"severity"}
    unread = printed["quality"]["leakage_unread"]
    assert set(unread) == others and all("only 12 exams of 12 patients" in why for why in unread.values())
    stem = tmp_path / f"{patient}.severity"
    report = FilmReport.from_json(Image.open(f"{stem}.png").text["Comment"])
    assert report.ends == ("lower severity", "higher severity") and report.verdict[0] == "care"
    assert report.scores["reconstruction_psnr_db"] == pytest.approx(printed["quality"]["reconstruction_psnr_db"])
    assert FilmReport.from_json(Image.open(f"{stem}.gif").info["comment"].decode("utf-8")) == report
    assert "− = lower severity, + = higher severity" in Path(f"{stem}.html").read_text(encoding="utf-8")
    assert main(["export", f"{stem}.npz", "--format", "html", "png", "--out", str(tmp_path / "again")]) == 0
    again = tmp_path / "again" / f"{patient}.severity"
    assert FilmReport.from_json(Image.open(f"{again}.png").text["Comment"]) == report
    assert "Read this film with care." in Path(f"{again}.html").read_text(encoding="utf-8")


def test_directions_on_the_hannover_radiographs_fitted_on_training_patients(hannover_dir, setup, tmp_path, capsys):
    """The real cohort: a categorical column (how the film was taken: CR ap, DX pa, CR pa), a
    two-level one and a lab value with gaps, fitted on the training patients and shown on a held-out one."""
    table = pd.read_csv(hannover_dir / "data.csv", dtype={"patient_id": str, "image_id": str})
    table["acquisition"] = table["modality"] + " " + table["projection"]
    patients = sorted(table["patient_id"].unique())
    table["split"] = np.where(table["patient_id"].isin(patients[:int(0.8 * len(patients))]), "train", "test")
    table.to_csv(tmp_path / "cohort.csv", index=False)
    data = ["--data", str(tmp_path / "cohort.csv"), "--image-root", str(hannover_dir / "png"),
            "--patient-column", "patient_id", "--cache-dir", str(tmp_path / "cache")]
    assert main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, *data, "--out", str(tmp_path),
                 "--attribute", "acquisition=dx PA:cr AP", "projection=pa", "--confounders", "crp_val",
                 "--where", "split=train"]) == 0
    captured = capsys.readouterr()
    acquisition, projection = _json_lines(captured.out)
    train = (table["split"] == "train").to_numpy()
    unknown = ~np.isfinite(table["crp_val"].to_numpy())  # empty, or -inf: below a limit the table does not give
    no_crp = int((train & unknown).sum())
    cr_pa = (table["acquisition"] == "CR pa").to_numpy()
    assert acquisition["attribute"] == "acquisition=DX pa:CR ap" and acquisition["ends"] == ["CR ap", "DX pa"]
    assert acquisition["fitted_on"] == "split = train"
    assert acquisition["dropped"] == [
        {"column": "acquisition", "rows": int((train & cr_pa).sum()),
         "reason": "of other levels of acquisition (CR pa)"},
        {"column": "crp_val", "rows": int((train & ~cr_pa & unknown).sum()), "reason": "without a value of crp_val"}]
    assert acquisition["n"] == int(train.sum()) - sum(d["rows"] for d in acquisition["dropped"])
    assert projection["ends"] == ["ap", "pa"] and projection["n"] == int(train.sum()) - no_crp
    assert f"left out {no_crp} rows without a value of crp_val" in captured.err

    model = _model(setup)
    from seegaan_explore.explore.study import Study

    latents = encode_cohort(model, Cohort.from_table(tmp_path / "cohort.csv", hannover_dir / "png",
                                                     patient_column="patient_id"), tmp_path / "cache", progress=False)
    expected = Study.of(latents).direction("acquisition=DX pa:CR ap", confounders=["crp_val"], rows="split=train")
    np.testing.assert_allclose(load_direction(acquisition["file"]).vector, expected.vector, rtol=1e-4, atol=1e-6)

    held_out = table["image_id"][~train].iloc[0]
    assert main(["traverse", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, *data, "--id", held_out,
                 "--attribute", "projection=pa", "--where", "split=train", "--amounts", "0", "1", "--format", "npz",
                 "--out", str(tmp_path)]) == 0
    line = _json_lines(capsys.readouterr().out)[0]
    assert line["in_fit"] is False and line["attribute"] == "projection=pa"


def test_a_data_dictionary_gives_the_ends_its_words_and_leaves_every_column_an_attribute(setup, tmp_path, capsys):
    (tmp_path / "words.yaml").write_text("sex: {label: Sex, levels: {f: female, m: male}}\n"
                                         "nt_probnp_pg_ml: {label: NT-proBNP, unit: pg/mL, log: true}\n")
    assert main(["direction", "--checkpoint", str(setup / "tiny.safetensors"), *FP32, *_cohort_args(setup),
                 "--attribute", "sex", "nt_probnp_pg_ml", "age", "--dictionary", str(tmp_path / "words.yaml"),
                 "--out", str(tmp_path)]) == 0
    ends = {line["attribute"]: line["ends"] for line in _json_lines(capsys.readouterr().out)}
    assert ends["sex"] == ["female", "male"]  # not the table's f and m
    assert ends["nt_probnp_pg_ml"] == ["lower NT-proBNP", "higher NT-proBNP"]
    assert ends["age"] == ["lower age", "higher age"]  # a column the dictionary does not describe stays usable
