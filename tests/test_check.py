"""`check`: the per-file import report, its summary table and line, the attribute-level framing warning,
and the command."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from seegaan_explore.cli import main
from seegaan_explore.cli.common import FILTER_DEFAULTS
from seegaan_explore.data.check import COLUMNS, check, reason_category
from seegaan_explore.data.formats import ImportFilter

RNG = np.random.default_rng(16)


def _xray(rows=96, cols=80):
    return RNG.integers(500, 3500, (rows, cols)).astype(np.uint16)


@pytest.fixture
def mixed_dir(tmp_path, write_dicom):
    """One of every import case: kept, warned, noted, skipped and ignored."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_dicom(folder / "pa.dcm", _xray(), bits_stored=12, Modality="CR", BodyPartExamined="CHEST",
                ViewPosition="PA")
    write_dicom(folder / "1.2.3.IMA", _xray(), bits_stored=12, Modality="DX", ViewPosition="AP")
    write_dicom(folder / "IM0007", _xray(), bits_stored=12, Modality="DX")
    write_dicom(folder / "ww0.dcm", _xray(), bits_stored=12, Modality="DX", WindowCenter=2000, WindowWidth=0)
    write_dicom(folder / "ctwindow.dcm", _xray(), bits_stored=12, Modality="CR", WindowCenter=40, WindowWidth=400)
    write_dicom(folder / "ct.dcm", _xray(), bits_stored=12, Modality="CT")
    write_dicom(folder / "mr.dcm", _xray(), bits_stored=12, Modality="MR")
    write_dicom(folder / "neck.dcm", _xray(), bits_stored=12, Modality="CR", BodyPartExamined="CSPINE")
    write_dicom(folder / "constant.dcm", np.full((96, 80), 9, np.uint16), Modality="DX")
    whole = (folder / "pa.dcm").read_bytes()
    (folder / "cut.dcm").write_bytes(whole[:-2000])
    Image.fromarray(_xray()).save(folder / "film.tif")
    grey = RNG.integers(0, 240, (96, 80))
    Image.fromarray(np.stack([grey, grey + 4, grey + 10], -1).astype(np.uint8)).save(folder / "near.png")
    Image.fromarray(np.stack([grey, 240 - grey, grey // 2], -1).astype(np.uint8)).save(folder / "colour.png")
    Image.fromarray(grey[:40, :40].astype(np.uint8)).save(folder / "tiny.png")
    np.save(folder / "strip.npy", RNG.normal(size=(5, 512)))
    (folder / "protocol.txt").write_text("not an image\n")
    (folder / ".DS_Store").write_bytes(b"\0" * 16)
    return folder


def test_check_reports_every_file_with_its_status_reason_and_header(mixed_dir, tmp_path):
    report = check(mixed_dir, progress=False, report=tmp_path / "out" / "report.csv")
    frame = report.frame.set_index(report.frame.path.map(lambda p: p.rsplit("/", 1)[-1]))
    assert list(report.frame.columns) == COLUMNS
    status = frame.status.to_dict()
    assert {k for k, v in status.items() if v == "imported"} == {
        "pa.dcm", "1.2.3.IMA", "IM0007", "ww0.dcm", "ctwindow.dcm", "film.tif", "near.png", "tiny.png", "strip.npy"}
    assert {k for k, v in status.items() if v == "ignored"} == {"protocol.txt", ".DS_Store"}
    reasons = frame.reason.to_dict()
    assert reasons["ct.dcm"].startswith("modality CT") and reasons["mr.dcm"].startswith("modality MR")
    assert reasons["neck.dcm"].startswith("body part CSPINE")
    assert reasons["colour.png"].startswith("colour image")
    assert reasons["constant.dcm"].startswith("constant image")  # only decoding tells
    assert "truncated" in reasons["cut.dcm"]
    warned = frame.warnings.fillna("").to_dict()
    assert "window unusable (width 0)" in warned["ww0.dcm"]
    assert "window unusable (center 40" in warned["ctwindow.dcm"]
    assert "tiny image (40 x 40" in warned["tiny.png"] and "extreme aspect ratio" in warned["strip.npy"]
    assert "near-grey RGB" in frame.notes["near.png"]
    assert (frame.loc["pa.dcm", ["modality", "body_part", "view_position", "photometric", "bits_stored", "rows",
                                 "columns"]].tolist() == ["CR", "CHEST", "PA", "MONOCHROME2", 12, 96, 80])
    assert frame.loc["pa.dcm", "aspect_ratio"] == pytest.approx(80 / 96)
    assert frame.loc["pa.dcm", "padding_share"] == pytest.approx(1 - 80 / 96)
    assert frame.loc["film.tif", "format"] == "tiff" and frame.loc["IM0007", "id"] == "IM0007"

    written = pd.read_csv(tmp_path / "out" / "report.csv")
    assert len(written) == len(frame) == 17 and list(written.columns) == COLUMNS
    assert not list((tmp_path / "out").glob(".*"))  # written atomically: no temporary file left
    assert report.path == tmp_path / "out" / "report.csv"


def test_a_byte_identical_copy_is_warned_about_as_an_exam_counted_twice(tmp_path, write_dicom):
    folder = tmp_path / "archive"
    (folder / "series 2").mkdir(parents=True)
    write_dicom(folder / "IM0001", _xray(), bits_stored=12, Modality="CR", BodyPartExamined="CHEST")
    shutil.copy(folder / "IM0001", folder / "IM0001.dcm.bak")
    shutil.copy(folder / "IM0001", folder / "series 2" / "IM0001.DCM")
    write_dicom(folder / "IM0002", _xray() // 2, bits_stored=12, Modality="CR", BodyPartExamined="CHEST")
    report = check(folder, progress=False)
    warned = report.frame.set_index("path").warnings.fillna("")
    copies = sorted(Path(p).relative_to(folder).as_posix() for p, w in warned.items() if "byte-identical" in w)
    assert copies == ["IM0001.dcm.bak", "series 2/IM0001.DCM"]
    assert all(f"({folder / 'IM0001'})" in warned[str(folder / c)] for c in copies)
    summary = report.summary().set_index(["section", "value"])
    assert summary.loc[("warning", "a byte-identical copy of another file"), "files"] == 2


def test_the_summary_counts_status_reasons_and_header_values(mixed_dir):
    report = check(mixed_dir, progress=False)
    summary = report.summary()
    counts = {(s, v): (n, m) for s, v, n, m in summary[["section", "value", "files", "imported"]].itertuples(
        index=False)}
    assert counts[("status", "imported")] == (9, 9) and counts[("status", "skipped")] == (6, 0)
    assert counts[("status", "ignored")] == (2, 0)
    assert counts[("skipped because", "modality CT")] == (1, 0)
    assert counts[("skipped because", "body part CSPINE")] == (1, 0)
    assert counts[("ignored because", "hidden file")] == (1, 0)
    assert counts[("warning", "header window unusable")] == (2, 2)
    assert counts[("note", "near-grey RGB")] == (1, 1)
    assert counts[("modality", "DX")] == (4, 3)  # constant.dcm is DX but skipped
    assert counts[("modality", "(no DICOM header)")] == (5, 4)
    assert counts[("view position", "PA")] == (2, 1) and counts[("bits stored", "12")][1] == 5
    assert counts[("size (short side)", "< 64")] == (2, 2)
    assert counts[("aspect ratio (w/h)", "0.7-0.9 (portrait)")][1] >= 6
    table = report.table()
    assert table.splitlines()[1].split() == ["section", "value", "files", "imported"]
    assert "modality CR/DX/DR/RG/OT" in table.splitlines()[0]
    line = report.line()
    assert line.startswith("imported 9, skipped 6 (") and "ignored 2 (" in line and "report at" not in line


def test_options_change_what_is_imported(mixed_dir):
    everything = check(mixed_dir, progress=False, filters=ImportFilter.any(), colour="luminance")
    frame = everything.frame.set_index(everything.frame.path.map(lambda p: p.rsplit("/", 1)[-1]))
    assert frame.loc[["ct.dcm", "mr.dcm", "neck.dcm", "colour.png"], "status"].tolist() == ["imported"] * 4
    assert "converted to luminance" in frame.loc["colour.png", "notes"]
    header = check(mixed_dir, progress=False, decode=False)
    assert header.frame.set_index("id").loc["constant", "status"] == "imported"  # only decoding finds it


def test_check_of_a_table_warns_when_framing_differs_between_levels(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    rows = []
    for i in range(24):  # AP films wider than PA films; sex balanced across both
        view = "ap" if i % 2 else "pa"
        cols = 120 if view == "ap" else 96
        Image.fromarray(RNG.integers(0, 256, (100, cols + i % 3)).astype(np.uint8)).save(folder / f"{i}.png")
        written = view.upper() + " " * (i % 4 == 3) if i % 3 else view  # one level however it is written
        rows.append({"image_id": str(i), "view": written, "sex": "mf"[(i // 2) % 2], "age": 20 + 2 * i})
    pd.DataFrame(rows).to_csv(folder / "table.csv", index=False)
    report = check(folder / "table.csv", attributes=["view", "sex", "age"], progress=False)
    assert len(report.attribute_warnings) == 2, report.attribute_warnings  # view: padding and aspect
    padding = next(w for w in report.attribute_warnings if w.startswith("padding share") and "'view'" in w)
    assert "AP 0.1" in padding and "PA 0.0" in padding and "(n=12)" in padding and "framing crop" in padding
    assert not any("'sex'" in w or "'age'" in w for w in report.attribute_warnings)  # balanced across views
    levels = report.attribute_levels.set_index(["attribute", "level"])
    assert levels.loc[("view", "AP"), "images"] == 12  # the spelling the table uses most
    assert levels.loc[("view", "AP"), "mean_aspect_ratio"] > levels.loc[("view", "PA"), "mean_aspect_ratio"]
    assert set(levels.loc["age"].index) == {str(q) for q in pd.qcut(pd.Series([20 + 2 * i for i in range(24)]),
                                                                    4).cat.categories}
    assert "by view" in report.summary().section.tolist()
    assert "warning: padding share differs between the levels of 'view'" in report.table()
    with pytest.raises(KeyError, match="'nope'"):
        check(folder / "table.csv", attributes=["nope"], progress=False)


def test_check_of_a_table_says_which_columns_the_other_commands_would_refuse(tmp_path):
    """A lab column with cells that are no numbers ("pending", a decimal comma) or a level written two
    ways is what ``direction`` refuses; ``check``, the step meant to catch it, says so by name."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(RNG.integers(0, 256, (100, 110)).astype(np.uint8)).save(folder / f"{i}.png")
    table = pd.DataFrame({"image_id": [str(i) for i in range(12)],
                          "crp": ["pending", "1,5", *map(str, range(10, 20))],
                          "sex": ["M", "male", *"mf" * 5], "ward": ["a", "b", "c"] * 4})
    table.to_csv(folder / "table.csv", index=False)
    report = check(folder / "table.csv", attributes=["crp", "sex", "ward"], progress=False)
    crp, sex = report.attribute_warnings
    assert crp.startswith("column 'crp': cannot parse lab value(s) pending; 1,5; a decimal comma")
    assert "'m' and 'male'" in sex and "refuse this column" in sex
    assert not any("'ward'" in w for w in report.attribute_warnings)  # three levels: compared, not refused


def test_reason_category_keeps_the_kind_without_particulars():
    assert reason_category("colour image (RGB channels differ by up to 200 levels; grey is up to 16)") == \
        "colour image"
    assert reason_category("modality CT (not a chest radiograph; kept: CR/DX)") == "modality CT"
    assert reason_category("expected a 2-D array, got shape (3, 4, 5)") == "expected a 2-D array"
    assert reason_category("image file not found") == "image file not found"


# --------------------------------------------------------------------------- the command

def test_check_command_prints_the_table_and_writes_the_report(mixed_dir, tmp_path, capsys):
    report = tmp_path / "r.csv"
    assert main(["check", "--data", str(mixed_dir), "--report", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "status" in out and "skipped because" in out and "modality CT" in out
    assert out.strip().splitlines()[-1].startswith("imported 9, skipped 6") and f"report at {report}" in out
    assert len(pd.read_csv(report)) == 17
    assert main(["check", "--data", str(mixed_dir), "--report", str(report), "--no-progress", "--modality", "any",
                 "--body-part", "any", "--colour", "luminance", "--header-only"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("imported 14, skipped 1 (1 truncated")
    with pytest.raises(SystemExit, match="--attribute needs a table"):
        main(["check", "--data", str(mixed_dir), "--attribute", "sex", "--no-progress"])
    nothing = tmp_path / "exports"  # nothing to import: the table is printed, the exit status says it failed
    nothing.mkdir()
    (nothing / "protocol.txt").write_text("not an image\n")
    assert main(["check", "--data", str(nothing), "--report", str(report), "--no-progress"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("imported 0, skipped 0, ignored 1")


def test_the_commands_filter_defaults_are_the_import_filters():
    d = ImportFilter()
    assert FILTER_DEFAULTS == {"modality": " ".join(d.modalities), "warn_modality": " ".join(d.warn_modalities),
                               "body_part": " ".join(d.body_parts), "view_position": " ".join(d.view_positions)}


def test_check_of_12bit_jpeg_extended_as_a_cr_chest(tmp_path):
    source = pytest.importorskip("pydicom.data").get_testdata_file("JPGExtended.dcm")
    ds = pydicom.dcmread(source)
    ds.Modality, ds.BodyPartExamined = "CR", "CHEST"
    (tmp_path / "old").mkdir()
    ds.save_as(tmp_path / "old" / "cr")
    row = check(tmp_path / "old", progress=False).frame.iloc[0]
    assert (row.status, row.bits_stored, row.id) == ("imported", 12, "cr")


# --------------------------------------------------------------------------- real data

def test_check_on_the_hannover_cohort(hannover_dir, tmp_path):
    report = check(hannover_dir / "data.csv", hannover_dir / "png", attributes=["sex", "projection"],
                   progress=False, report=tmp_path / "hannover.csv")
    assert report.counts() == {"imported": 243, "skipped": 0, "ignored": 0}
    frame = report.frame
    assert (frame.format == "png").all() and (frame.rows >= 512).all()
    assert any(w.startswith("padding share differs between the levels of 'projection'")
               for w in report.attribute_warnings)
    levels = report.attribute_levels.set_index(["attribute", "level"])
    assert levels.loc[("projection", "ap"), "mean_padding_share"] > levels.loc[("projection", "pa"),
                                                                               "mean_padding_share"] + 0.05
    folder = check(hannover_dir / "png", progress=False)
    assert folder.counts() == {"imported": 243, "skipped": 0, "ignored": 0}


def test_a_dicom_the_filter_refuses_is_skipped_for_what_it_is_before_its_pixels_are_read():
    """A colour ultrasound is skipped as modality US, not as a colour image whose advice
    (``--colour luminance``) would only lead to the same file skipped for its modality."""
    from conftest import _testdata

    from seegaan_explore.data.readers import inspect_image

    ultrasound = _testdata("US1_UNCR.dcm")
    assert inspect_image(ultrasound, filters=ImportFilter()).reason.startswith("modality US (not a chest radiograph")
    assert inspect_image(ultrasound, filters=ImportFilter.any()).reason.startswith("colour image")
