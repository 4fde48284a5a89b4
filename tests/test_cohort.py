"""Cohort tables, folder scanning, censored lab values, patient splits and the preprocessed-image cache."""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import seegaan_explore.data.image_cache as image_cache
from seegaan_explore.data.cohort import Cohort, CohortDataset, CohortWarning
from seegaan_explore.data.images import load_preprocessed, load_preprocessed_info
from seegaan_explore.data.scan import ScanReport, scan_images
from seegaan_explore.data.table import parse_lab_column, parse_lab_value

RNG = np.random.default_rng(99)


def _png(path, rows=48, cols=40):
    Image.fromarray(RNG.integers(0, 256, (rows, cols)).astype(np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts files actually decoded by Cohort.images (in-process, workers=1)."""
    calls = []

    def counting(path, resolution, *args):
        calls.append(path)
        return load_preprocessed_info(path, resolution, *args)

    monkeypatch.setattr(image_cache, "load_preprocessed_info", counting)
    return calls


# --------------------------------------------------------------------------- lab values

@pytest.mark.parametrize("raw,value,censor", [
    (5, 5.0, ""), (0.25, 0.25, ""), ("12.5", 12.5, ""), (" <5 ", 5.0, "<"), (">3000", 3000.0, ">"),
    ("<=0.1", 0.1, "<"), (">= 2", 2.0, ">"), ("-inf", np.nan, "<"), ("inf", np.nan, ">"),
    (float("-inf"), np.nan, "<"), (float("inf"), np.nan, ">"), ("", np.nan, ""), (None, np.nan, ""),
    (float("nan"), np.nan, ""),
])
def test_parse_lab_value(raw, value, censor):
    parsed_value, parsed_censor = parse_lab_value(raw)
    assert parsed_censor == censor
    np.testing.assert_equal(parsed_value, value)


def test_parse_lab_column_matches_scalar_parser_and_rejects_garbage():
    raw = pd.Series(["3.0", "-inf", "<5", None, ">300", "inf", "42"], name="crp")
    parsed = parse_lab_column(raw)
    assert list(parsed.columns) == ["value", "censor"] and parsed.index.equals(raw.index)
    for (value, censor), expected in zip(map(parse_lab_value, raw), parsed.itertuples(index=False)):
        np.testing.assert_equal((value, censor), (expected.value, expected.censor))
    numeric = parse_lab_column(pd.Series([1.5, -np.inf, np.inf, np.nan]))
    assert numeric["censor"].tolist() == ["", "<", ">", ""] and numeric["value"].notna().sum() == 1
    with pytest.raises(ValueError, match="'crp'.*positive.*5 mg"):
        parse_lab_column(pd.Series(["1", "positive", "5 mg", "positive"], name="crp"))


# --------------------------------------------------------------------------- scanning

def _good_files(folder, write_dicom):
    folder.mkdir(exist_ok=True)
    (folder / "sub").mkdir()
    files = [_png(folder / "a.png"), _png(folder / "sub" / "b.png"),
             write_dicom(folder / "c.dcm", RNG.integers(0, 4096, (40, 30)).astype(np.uint16), bits_stored=12),
             write_dicom(folder / "sub" / "IM0001", RNG.integers(0, 256, (30, 30)).astype(np.uint8)),
             write_dicom(folder / "1.2.840.99.7", RNG.integers(0, 256, (30, 30)).astype(np.uint8))]
    np.save(folder / "d.npy", RNG.normal(size=(20, 20)))
    Image.fromarray(RNG.integers(0, 256, (40, 40)).astype(np.uint8)).save(folder / "e.jpg")
    return files + [folder / "d.npy", folder / "e.jpg"]


def test_scan_reports_every_bad_file_and_keeps_good_ones(tmp_path, write_dicom, bad_image_files):
    folder = tmp_path / "bad"  # the bad files live here; add good ones and non-images
    good = _good_files(folder, write_dicom)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0" * 10)
    report = scan_images(folder, progress=False)
    assert isinstance(report, ScanReport)
    assert sorted(report.ok) == sorted(good)
    reasons = {path: reason for path, reason in report.bad}
    assert set(reasons) == {path for path, _ in bad_image_files.values()}
    for name, (path, words) in bad_image_files.items():
        assert words in reasons[path].lower(), (name, reasons[path])
    ignored = dict(report.ignored)
    assert sorted(ignored) == sorted([folder / "notes.txt", folder / ".DS_Store"])
    assert "not a recognised image" in ignored[folder / "notes.txt"] and ignored[folder / ".DS_Store"] == "hidden file"

    frame = report.to_frame()
    assert len(frame) == len(good) + len(bad_image_files) + 2
    assert frame.groupby("status").size().to_dict() == {"imported": len(good), "skipped": len(bad_image_files),
                                                        "ignored": 2}
    assert (frame.loc[frame.status != "imported", "reason"] != "").all()
    summary = report.summary()
    assert f"{len(good)} usable" in summary and f"{len(bad_image_files)} unusable" in summary
    assert str(report.bad[0][0]) in summary and report.bad[0][1] in summary
    assert f"and {len(bad_image_files) - 10} more" in summary

    flat = scan_images(folder, recursive=False, progress=False)
    assert folder / "sub" / "b.png" not in flat.ok and folder / "a.png" in flat.ok


def test_scan_of_explicit_files_and_full_decode(tmp_path, write_dicom):
    constant = write_dicom(tmp_path / "constant.dcm", np.full((16, 16), 5, np.uint16))
    good = _png(tmp_path / "x.txt")  # named explicitly, so checked whatever its suffix
    report = scan_images([constant, good, tmp_path / "missing.png"], progress=False)
    assert report.ok == [constant, good]
    assert report.bad == [(tmp_path / "missing.png", "file not found")]
    decoded = scan_images([constant, good], progress=False, decode=True)
    assert decoded.ok == [good] and "constant" in decoded.bad[0][1]


def test_scan_follows_linked_folders_once_and_names_what_it_passes_over(tmp_path):
    archive, elsewhere = tmp_path / "archive", tmp_path / "elsewhere"
    (archive / ".thumbnails").mkdir(parents=True)
    elsewhere.mkdir()
    first, linked = _png(archive / "a.png"), _png(elsewhere / "b.png")
    _png(archive / ".thumbnails" / "t.png")
    (archive / "link-to-a.png").symlink_to(first)
    (archive / "series").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(archive, target_is_directory=True)  # must not be walked for ever
    report = scan_images(archive, progress=False)
    assert sorted(report.ok) == [first, archive / "series" / "b.png"] and linked.name == "b.png"
    ignored = dict(report.ignored)
    assert ignored[archive / "link-to-a.png"] == f"the same file as {first}"
    assert ignored[archive / ".thumbnails"] == "hidden folder"
    assert ignored[archive / "series" / "loop"] == "a link to a folder already read"


# --------------------------------------------------------------------------- building cohorts

def test_from_folder_leaves_out_unusable_files_with_a_warning(tmp_path, write_dicom, bad_image_files):
    folder = tmp_path / "bad"
    good = _good_files(folder, write_dicom)
    with pytest.warns(CohortWarning, match=f"left out {len(bad_image_files)} unusable file.*alpha.png: image has"):
        cohort = Cohort.from_folder(folder, progress=False)
    assert sorted(cohort.paths) == sorted(good)
    assert {"a", "sub/b", "c", "sub/IM0001", "1.2.840.99.7", "d", "e"} == set(cohort.ids)
    assert {p for _, p, _ in cohort.problems} == {str(p) for p, _ in bad_image_files.values()}


@pytest.fixture
def small_cohort_dir(tmp_path):
    """Six PNGs for three patients, with a CSV whose ids look like numbers."""
    folder = tmp_path / "cohort"
    (folder / "img").mkdir(parents=True)
    ids = ["007", "1e5", "0042", "x1", "x2", "x3"]
    for i in ids:
        _png(folder / "img" / f"{i}.png", rows=48 + len(i), cols=40)
    pd.DataFrame({"image_id": ids, "patient_id": ["p1", "p1", "p2", "p2", "p3", "p3"],
                  "sex": ["M", "m", "f", "F", "m", None], "crp": ["3", "-inf", "<5", "12", "", "inf"],
                  "site": ["a", "b", "c", "a", "b", "c"]}).to_csv(folder / "table.csv", index=False)
    return folder


def test_from_table_by_id_keeps_string_ids_and_finds_images_recursively(small_cohort_dir):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    assert cohort.ids == ["007", "1e5", "0042", "x1", "x2", "x3"]
    assert all(p.parent == small_cohort_dir / "img" and p.stem == i for p, i in zip(cohort.paths, cohort.ids))
    assert cohort.id_column == "image_id" and cohort.patient_column == "patient_id"
    assert cohort.attributes == ["sex", "crp", "site"]


def test_from_table_by_path_column(small_cohort_dir):
    table = pd.DataFrame({"file": ["img/007.png", "img/x1.png"], "age": [50, 60]})
    cohort = Cohort.from_table(table, small_cohort_dir)
    assert cohort.paths == [small_cohort_dir / "img/007.png", small_cohort_dir / "img/x1.png"]
    assert cohort.ids == ["img/007", "img/x1"] and cohort.attributes == ["age"]


def test_from_table_errors_name_the_problem(small_cohort_dir):
    table = pd.read_csv(small_cohort_dir / "table.csv", dtype=str)
    root = small_cohort_dir / "img"
    with pytest.raises(KeyError, match="'nope'"):
        Cohort.from_table(table, root, id_column="nope")
    with pytest.raises(KeyError, match="no id column"):
        Cohort.from_table(table.rename(columns={"image_id": "what"}), root)
    with pytest.raises(ValueError, match="duplicate 'image_id'.*x1"):
        Cohort.from_table(pd.concat([table, table.iloc[[3]]]), root)
    with pytest.raises(ValueError, match="empty 'image_id'"):
        Cohort.from_table(table.assign(image_id=table.image_id.where(table.index != 2)), root)
    with pytest.raises(ValueError, match="image_root"):
        Cohort.from_table(table)
    with pytest.raises(FileNotFoundError, match="none of the 6 images"):
        Cohort.from_table(table.assign(image_id="zz" + table.image_id), root)
    shutil.copy(root / "x1.png", root / "x1.npy")
    with pytest.raises(ValueError, match="several image files match.*x1"):
        Cohort.from_table(table, root)


def test_missing_images_are_dropped_with_a_warning(small_cohort_dir):
    (small_cohort_dir / "img" / "x2.png").unlink()
    with pytest.warns(CohortWarning, match="x2"):
        cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    assert "x2" not in cohort.ids and len(cohort) == 5
    assert [(i, r) for i, _, r in cohort.problems] == [("x2", "image file not found")]


def test_attributes(small_cohort_dir):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    sex = cohort.attribute("sex")
    assert cohort.encodings["sex"] == sex.attrs["encoding"] == {"f": 0, "m": 1}
    np.testing.assert_array_equal(sex.to_numpy(), [1, 1, 0, 0, 1, np.nan])
    assert list(sex.index) == cohort.ids
    crp = cohort.attribute("crp")
    np.testing.assert_array_equal(crp.to_numpy(), [3, np.nan, 5, 12, np.nan, np.nan])
    with pytest.raises(KeyError, match="'weight'.*attributes are"):
        cohort.attribute("weight")
    with pytest.raises(ValueError, match="'site' is neither numeric nor binary"):
        cohort.attribute("site")


# --------------------------------------------------------------------------- patient split

def test_patient_split_keeps_patients_together():
    n = 400
    patients = RNG.integers(0, 120, n).astype(str)
    table = pd.DataFrame({"path": [f"/nonexistent/{i}.png" for i in range(n)], "patient_id": patients})
    cohort = Cohort(table.assign(image_id=[str(i) for i in range(n)]), id_column="image_id", path_column="path",
                    patient_column="patient_id")
    splits = cohort.patient_split((0.7, 0.2, 0.1), seed=3)
    sets = [set(s.table.patient_id) for s in splits]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    assert sorted(sum((s.ids for s in splits), [])) == sorted(cohort.ids)
    for split, fraction in zip(splits, (0.7, 0.2, 0.1)):
        assert abs(len(split) / n - fraction) < 0.06
    again = cohort.subset(np.arange(n)[::-1]).patient_split((0.7, 0.2, 0.1), seed=3)
    assert [sorted(s.ids) for s in again] == [sorted(s.ids) for s in splits]  # row order does not matter
    assert [sorted(s.ids) for s in cohort.patient_split((0.7, 0.2, 0.1), seed=4)] != [sorted(s.ids) for s in splits]
    with pytest.raises(ValueError, match="sum to 1"):
        cohort.patient_split((0.5, 0.2))
    unknown = cohort.table.patient_id.isin(["5", "6"])
    partly = Cohort(cohort.table.assign(patient_id=cohort.table.patient_id.where(~unknown)), id_column="image_id",
                    path_column="path", patient_column="patient_id")
    with pytest.warns(CohortWarning, match=f"{unknown.sum()} image.*without 'patient_id'"):
        split = partly.patient_split()
    assert sum(map(len, split)) == n
    no_patients = Cohort(cohort.table.drop(columns="patient_id"), id_column="image_id", path_column="path")
    with pytest.warns(CohortWarning, match="no patient column"):
        assert sum(map(len, no_patients.patient_split())) == n


# --------------------------------------------------------------------------- preprocessed cache

def test_cache_reuses_decoded_images_and_redecodes_changed_files(small_cohort_dir, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    table = small_cohort_dir / "table.csv"
    first = Cohort.from_table(table).images(32, cache, progress=False)
    assert isinstance(first, np.memmap) and first.shape == (6, 32, 32) and first.dtype == np.float16
    assert len(count_decodes) == 6
    expected = np.stack([load_preprocessed(p, 32) for p in Cohort.from_table(table).paths])
    np.testing.assert_allclose(first, expected, atol=1e-3)  # float16 storage

    count_decodes.clear()
    np.testing.assert_array_equal(Cohort.from_table(table).images(32, cache, progress=False), first)
    assert count_decodes == []

    touched = small_cohort_dir / "img" / "0042.png"
    os.utime(touched, ns=(time.time_ns(), touched.stat().st_mtime_ns + 10**9))
    again = Cohort.from_table(table).images(32, cache, progress=False)
    assert count_decodes == [touched]
    np.testing.assert_array_equal(again, first)

    count_decodes.clear()
    changed = small_cohort_dir / "img" / "x1.png"
    _png(changed, rows=52, cols=40)
    third = Cohort.from_table(table).images(32, cache, progress=False)
    assert count_decodes == [changed]
    assert not np.array_equal(third[3], first[3])
    np.testing.assert_array_equal(np.delete(third, 3, 0), np.delete(first, 3, 0))

    count_decodes.clear()
    Cohort.from_table(table).images(64, cache, progress=False)  # another resolution: separate entry
    assert len(count_decodes) == 6


def test_an_interrupted_decode_leaves_no_cache_file(small_cohort_dir, tmp_path, monkeypatch):
    decoded = []

    def fail_on_third(path, resolution, *args):
        decoded.append(path)
        if len(decoded) == 3:
            raise KeyboardInterrupt
        return load_preprocessed_info(path, resolution, *args)

    monkeypatch.setattr(image_cache, "load_preprocessed_info", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        Cohort.from_table(small_cohort_dir / "table.csv").images(16, tmp_path / "cache", progress=False)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    monkeypatch.setattr(image_cache, "load_preprocessed_info", load_preprocessed_info)
    images = Cohort.from_table(small_cohort_dir / "table.csv").images(16, tmp_path / "cache", progress=False)
    assert images.shape == (6, 16, 16)


def test_preprocess_version_invalidates_cache(small_cohort_dir, tmp_path, count_decodes, monkeypatch):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    cohort.images(16, tmp_path, progress=False)
    monkeypatch.setattr(image_cache, "PREPROCESS_VERSION", image_cache.PREPROCESS_VERSION + 1)
    cohort.images(16, tmp_path, progress=False)
    assert len(count_decodes) == 12


def test_undecodable_files_are_dropped_and_remembered(small_cohort_dir, tmp_path, count_decodes):
    whole = (small_cohort_dir / "img" / "x2.png").read_bytes()
    (small_cohort_dir / "img" / "x2.png").write_bytes(whole[:60])  # its header is fine, its pixels cut short
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    with pytest.warns(CohortWarning, match="x2.png"):
        images = cohort.images(16, tmp_path, progress=False)
    assert len(images) == len(cohort) == 5 and "x2" not in cohort.ids
    assert [i for i, _, _ in cohort.problems] == ["x2"]
    np.testing.assert_array_equal(cohort.images(16, tmp_path, progress=False), images)  # no new warning

    count_decodes.clear()
    fresh = Cohort.from_table(small_cohort_dir / "table.csv")
    with pytest.warns(CohortWarning, match="x2.png"):
        np.testing.assert_array_equal(fresh.images(16, tmp_path, progress=False), images)
    assert count_decodes == [] and len(fresh) == 5

    in_memory = Cohort.from_table(small_cohort_dir / "table.csv")
    with pytest.warns(CohortWarning):
        uncached = in_memory.images(16, cache_dir=False, progress=False, dtype="float32")
    assert not isinstance(uncached, np.memmap) and uncached.dtype == np.float32
    np.testing.assert_allclose(uncached, images, atol=1e-3)


def test_default_cache_dir_follows_environment(small_cohort_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SEEGAAN_CACHE", str(tmp_path / "env-cache"))
    Cohort.from_table(small_cohort_dir / "table.csv").images(16, progress=False)
    assert list((tmp_path / "env-cache").rglob("*.npy"))


def test_parallel_decoding_matches_serial(small_cohort_dir):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    serial = cohort.images(24, cache_dir=False, progress=False)
    parallel = cohort.images(24, cache_dir=False, progress=False, workers=2)
    np.testing.assert_array_equal(parallel, serial)


def test_cohort_dataset(small_cohort_dir, tmp_path):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    dataset = CohortDataset(cohort, 32, tmp_path, progress=False)
    assert len(dataset) == len(cohort) == 6
    image, index = dataset[4]
    assert index == 4 and image.dtype == torch.float32 and image.shape == (1, 32, 32)
    assert -1 <= image.min() and image.max() <= 1
    np.testing.assert_allclose(image[0].numpy(), load_preprocessed(cohort.paths[4], 32), atol=1e-3)
    state = pickle.dumps(dataset)
    assert len(state) < len(dataset) * 32 * 32 * 2  # the memory map is reopened, not pickled
    torch.testing.assert_close(pickle.loads(state)[4][0], image)
    batch, indices = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch.shape == (4, 1, 32, 32) and indices.tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- Hannover COVID CXR

@pytest.fixture(scope="module")
def hannover(hannover_dir):
    return Cohort.from_table(hannover_dir / "data.csv", hannover_dir / "png"), pd.read_csv(
        hannover_dir / "data.csv", dtype=str)


def test_hannover_loads_all_images(hannover, hannover_dir):
    cohort, raw = hannover
    assert len(cohort) == len(raw) == len(list((hannover_dir / "png").glob("*.png"))) == 243
    assert cohort.ids == raw["image_id"].tolist() and cohort.patient_column == "patient_id"
    assert len(Cohort.from_table(hannover_dir / "data.csv")) == 243  # found under png/ by itself


def test_hannover_patient_split(hannover):
    cohort, raw = hannover
    splits = cohort.patient_split()
    patients = [set(s.table.patient_id) for s in splits]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert sum(map(len, splits)) == len(cohort) and set().union(*patients) == set(raw.patient_id)


def test_hannover_attributes(hannover):
    cohort, raw = hannover
    sex = cohort.attribute("sex")
    assert cohort.encodings["sex"] == {"f": 0, "m": 1}
    assert (sex == 1).sum() == (raw.sex == "m").sum() and (sex == 0).sum() == (raw.sex == "f").sum()
    assert cohort.attribute("projection").attrs["encoding"] == {"ap": 0, "pa": 1}
    for column in [c for c in raw.columns if c.endswith("_val")]:
        values = cohort.attribute(column)
        parsed = parse_lab_column(raw[column])
        below = (raw[column] == "-inf").to_numpy()
        assert values[below].isna().all() and (parsed["censor"][below] == "<").all()
        finite = raw[column].notna().to_numpy() & ~below & (raw[column] != "inf").to_numpy()
        np.testing.assert_allclose(values[finite], raw[column][finite].astype(float))
    assert (raw["crp_val"] == "-inf").any()  # the data set does use -inf


def test_hannover_cache_second_run_is_much_faster(hannover_dir, tmp_path):
    cohort = Cohort.from_table(hannover_dir / "data.csv", hannover_dir / "png")
    start = time.perf_counter()
    first = cohort.images(128, tmp_path, progress=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = Cohort.from_table(hannover_dir / "data.csv", hannover_dir / "png").images(128, tmp_path,
                                                                                       progress=False)
    warm = time.perf_counter() - start
    assert first.shape == (243, 128, 128)
    np.testing.assert_array_equal(second, first)
    assert warm < cold / 10, (cold, warm)


# --------------------------------------------------------------------------- import: content, ids, filters, framing

@pytest.fixture
def archive_dir(tmp_path, write_dicom):
    """An archive export: a Siemens .IMA, an extensionless DICOM, a .tif, x.dcm and x.png sharing a stem,
    a CT slice, a text file and a DICOMDIR."""
    folder = tmp_path / "archive"
    (folder / "series").mkdir(parents=True)
    pixels = RNG.integers(0, 4096, (96, 80)).astype(np.uint16)
    write_dicom(folder / "series" / "1.3.12.2.IMA", pixels, bits_stored=12, Modality="CR", BodyPartExamined="CHEST")
    write_dicom(folder / "series" / "I0000001", pixels, bits_stored=12, Modality="DX")
    Image.fromarray(pixels).save(folder / "scan.tif")
    write_dicom(folder / "x.dcm", pixels, bits_stored=12, Modality="DX")
    _png(folder / "x.png", 96, 80)
    write_dicom(folder / "slice.dcm", pixels, bits_stored=12, Modality="CT")
    (folder / "README.txt").write_text("export of 2024-05-01\n")
    (folder / "DICOMDIR").write_bytes(b"\0" * 200)
    return folder


def test_a_folder_imports_every_image_by_content_and_lists_what_it_leaves(archive_dir):
    with pytest.warns(CohortWarning, match="slice.dcm: modality CT"):
        cohort = Cohort.from_folder(archive_dir, progress=False)
    assert sorted(cohort.ids) == ["scan", "series/1.3.12.2", "series/I0000001", "x.dcm", "x.png"]
    frame = cohort.report.frame.set_index("path")
    assert frame.loc[str(archive_dir / "slice.dcm"), "status"] == "skipped"
    assert frame.loc[str(archive_dir / "slice.dcm"), "reason"].startswith("modality CT (not a chest radiograph")
    ignored = frame[frame.status == "ignored"]
    assert sorted(Path(p).name for p in ignored.index) == ["DICOMDIR", "README.txt"]
    assert cohort.report.counts() == {"imported": 5, "skipped": 1, "ignored": 2}
    assert frame.loc[str(archive_dir / "series" / "1.3.12.2.IMA"), "body_part"] == "CHEST"
    everything = Cohort.from_folder(archive_dir, progress=False, filters=None)
    assert len(everything) == 6


def test_by_id_a_table_finds_ima_tif_and_extensionless_files(archive_dir):
    table = pd.DataFrame({"image_id": ["1.3.12.2", "I0000001", "scan"], "age": [60, 70, 80]})
    cohort = Cohort.from_table(table, archive_dir)
    assert [p.name for p in cohort.paths] == ["1.3.12.2.IMA", "I0000001", "scan.tif"]


def test_a_path_only_table_makes_unique_ids_in_the_users_words(archive_dir):
    table = pd.DataFrame({"file": ["x.dcm", "x.png", "series/I0000001", "scan.tif"], "age": [1, 2, 3, 4]})
    cohort = Cohort.from_table(table, archive_dir)  # x.dcm and x.png share a stem: no refusal
    assert cohort.ids == ["x.dcm", "x.png", "series/I0000001", "scan"]
    assert cohort.id_label == "file" and cohort.attributes == ["age"]
    with pytest.raises(ValueError, match="same file in several rows of 'file'") as info:
        Cohort.from_table(pd.concat([table, table.iloc[[1]]]), archive_dir)
    assert "image_id" not in str(info.value)
    with pytest.raises(ValueError, match="empty 'file'") as info:
        Cohort.from_table(table.assign(file=table.file.where(table.index != 2)), archive_dir)
    assert "image_id" not in str(info.value)
    absolute = table.assign(file=[str(archive_dir / f) for f in table.file])
    assert Cohort.from_table(absolute, archive_dir).ids == cohort.ids  # relative to the image root


def test_a_table_row_that_is_not_a_chest_radiograph_is_dropped_with_its_reason(archive_dir):
    table = pd.DataFrame({"path": ["x.dcm", "slice.dcm", "README.txt", "gone.dcm"]})
    with pytest.warns(CohortWarning) as caught:
        cohort = Cohort.from_table(table, archive_dir)
    messages = " ".join(str(w.message) for w in caught)
    assert "slice (modality CT" in messages and "README" in messages and "gone" in messages
    assert cohort.ids == ["x"]
    reasons = dict(zip(cohort.report.frame.id, cohort.report.frame.reason))
    assert reasons["slice"].startswith("modality CT") and reasons["gone"] == "image file not found"
    assert reasons["README.txt"].startswith("not a recognised image format")
    line = cohort.report.line()
    assert line.startswith("imported 1, skipped 3 (") and "1 modality CT" in line
    with pytest.raises(ValueError, match="none of the 1 images can be imported.*modality CT"), \
            pytest.warns(CohortWarning):
        Cohort.from_table(table.iloc[[1]], archive_dir)


def test_framing_and_colour_have_their_own_caches_and_pad_keeps_its_place(small_cohort_dir, tmp_path):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    pad = cohort.images(32, tmp_path / "cache", progress=False)
    crop = cohort.images(32, tmp_path / "cache", progress=False, framing="crop")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["v1-r32-float16", "v1-r32-float16-crop"]
    assert pad.shape == crop.shape == (6, 32, 32)
    assert (pad == -1).all(axis=1).any() and not (crop == -1).all(axis=1).any()  # 48x40 padded vs cropped
    cropped = Cohort.from_table(small_cohort_dir / "table.csv", framing="crop")
    np.testing.assert_array_equal(cropped.images(32, tmp_path / "cache", progress=False), crop)
    assert cropped.subset([0, 1]).framing == "crop"
    with pytest.raises(ValueError, match="framing must be one of"):
        Cohort.from_table(small_cohort_dir / "table.csv", framing="letterbox")


def test_decoding_notes_and_colour_reach_the_report_through_the_cache(tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    grey = RNG.integers(0, 240, (48, 40))
    Image.fromarray(np.stack([grey, grey + 4, grey + 9], -1).astype(np.uint8)).save(folder / "near.png")
    Image.fromarray(np.stack([grey, 240 - grey, grey // 2], -1).astype(np.uint8)).save(folder / "colour.png")
    table = pd.DataFrame({"path": ["near.png", "colour.png"]})
    for attempt in range(2):  # decoded, then from the cache
        cohort = Cohort.from_table(table, folder)
        assert len(cohort) == 2  # colour is only known once decoded
        with pytest.warns(CohortWarning, match="colour.png: colour image"):
            cohort.images(16, tmp_path / "cache", progress=False)
        frame = cohort.report.frame.set_index("id")
        assert "near-grey RGB" in frame.loc["near", "notes"], attempt
        assert frame.loc["colour", "status"] == "skipped" and frame.loc["colour", "reason"].startswith("colour image")
    converted = Cohort.from_table(table, folder, colour="luminance")
    assert converted.images(16, tmp_path / "cache", progress=False).shape == (2, 16, 16)
    assert "converted to luminance" in converted.report.frame.set_index("id").loc["colour", "notes"]


def test_old_cache_entries_retry_their_unusable_files(small_cohort_dir, tmp_path, count_decodes):
    cohort = Cohort.from_table(small_cohort_dir / "table.csv")
    cohort.images(16, tmp_path, progress=False)
    store = image_cache.ImageCache(tmp_path, 16, np.dtype("float16")).store
    for name, meta in list(store.entries()):  # as an older reader wrote them: the first file refused
        first = meta["files"][0]
        store.write_index(name, {"array": meta["array"], "rows": meta["rows"] - 1, "files": meta["files"][1:],
                                 "bad": [[first, "x", "colour image (an older reader)"]]})
    count_decodes.clear()
    again = Cohort.from_table(small_cohort_dir / "table.csv")
    assert again.images(16, tmp_path, progress=False).shape == (6, 16, 16)  # nothing dropped
    assert count_decodes == [again.paths[0]]  # the refused file was tried again, the others reused
