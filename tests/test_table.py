"""A clinical table as hospital systems export it: encodings, delimiters, decimal commas, missing
markers, censored values, and a sex column written several ways. Each is read right or refused with
the file, column or value named; none is guessed into something else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seegaan_explore.data.cohort import Cohort, CohortWarning
from seegaan_explore.data.table import UnreadableColumn, parse_attribute
from seegaan_explore.explore.attributes import detect_attributes


@pytest.fixture
def images(tmp_path):
    """Four grey PNGs, img0 to img3, in tmp_path/img."""
    folder = tmp_path / "img"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 36), 60 * i + 10, np.uint8)).save(folder / f"img{i}.png")
    return folder


def _write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_a_semicolon_table_is_read_with_decimal_commas(tmp_path, images):
    table = _write(tmp_path / "t.csv", "image_id;bnp;crp;sex\nimg0;1,5;<0,5;m\nimg1;2,5;3,25;f\n"
                                       "img2;1200;>35.000;m\nimg3;;7;f\n")
    cohort = Cohort.from_table(table, images)
    np.testing.assert_array_equal(cohort.attribute("bnp").to_numpy(), [1.5, 2.5, 1200, np.nan])
    with pytest.warns(CohortWarning, match="censored"):  # censored cells leave the column text to pandas
        np.testing.assert_array_equal(cohort.attribute("crp").to_numpy(), [0.5, 3.25, 35000, 7])


def test_a_windows_1252_table_is_read_with_a_warning_naming_it(tmp_path, images):
    table = _write(tmp_path / "t.csv", "image_id,ward\nimg0,Müller\nimg1,Schäfer\n", encoding="cp1252")
    with pytest.warns(UserWarning, match=r"t\.csv is not UTF-8.*Windows-1252"):
        cohort = Cohort.from_table(table, images)
    assert list(cohort.table["ward"]) == ["Müller", "Schäfer"]


def test_a_row_with_one_field_too_many_is_named_not_shifted(tmp_path, images):
    table = _write(tmp_path / "t.csv", "image_id,bnp,age\nimg0,150,60\nimg1,1,5,70\n")
    with pytest.raises(ValueError, match=r"t\.csv: line 3 has 4 fields where the header has 3; a decimal comma"):
        Cohort.from_table(table, images)
    every_row = _write(tmp_path / "u.csv", "image_id,bnp,age\nimg0,1,5,60\nimg1,2,0,70\n")
    with pytest.raises(ValueError, match=r"u\.csv: line 2 has 4 fields"):
        Cohort.from_table(every_row, images)


def test_a_number_column_with_a_typo_is_an_error_naming_the_values_not_text_levels():
    bnp = pd.Series(["1,5", "2,5", "1,5", "2,5", "300"], name="bnp")
    with pytest.raises(UnreadableColumn, match=r"column 'bnp': cannot parse lab value\(s\) 1,5; 2,5.*decimal comma"):
        parse_attribute(bnp)
    pending = pd.Series(["120", "pending", "90"], name="bnp")
    with pytest.raises(UnreadableColumn, match="pending; mark a missing value"):
        parse_attribute(pending)
    # a text column stays one: two levels, coded, and anything more is named
    assert parse_attribute(pd.Series(["AP", "pa ", "PA"], name="view"))[1] == {"ap": 0, "pa": 1}


def test_usual_missing_markers_are_missing():
    values, mapping = parse_attribute(pd.Series(["NA", "n/a", "-", "120", ".", "n.a.", "", "80"], name="bnp"))
    assert mapping is None
    np.testing.assert_array_equal(values, [np.nan] * 3 + [120] + [np.nan] * 3 + [80])


def test_levels_that_are_one_written_two_ways_are_refused():
    with pytest.raises(UnreadableColumn, match=r"'sex' has the levels 'm' and 'male', which look like one"):
        parse_attribute(pd.Series(["Male", "male ", "M", "M"], name="sex"))
    four_ways = pd.Series(["M", "male", "f", "F ", "Female", "m"], name="sex")  # as the exports of two wards write it
    with pytest.raises(UnreadableColumn, match=r"'sex' has the levels 'f' and 'female', 'm' and 'male'"):
        parse_attribute(four_ways)
    with pytest.raises(ValueError, match="neither numeric nor binary") as stages:  # categories, not one level twice
        parse_attribute(pd.Series(["I", "II", "III", "II"], name="stage"))
    assert not isinstance(stages.value, UnreadableColumn)


def test_detect_attributes_warns_and_leaves_out_an_unreadable_column():
    table = pd.DataFrame({"bnp": ["1,5", "2,5", "3,0", "12,5"], "age": ["50", "-", "60", "70"],
                          "sex": ["f", "m", "m", "f"]})
    with pytest.warns(UserWarning, match="'bnp'.*not offered"):
        found = detect_attributes(table)
    assert sorted(found) == ["age", "sex"]  # no contrasts such as bnp=12,5:1,5
    np.testing.assert_array_equal(found["age"][0], [50, np.nan, 60, 70])


def test_censored_values_are_counted_in_a_warning(tmp_path, images):
    table = pd.DataFrame({"image_id": ["img0", "img1", "img2", "img3"], "bnp": ["<5", "120", ">35000", "80"]})
    cohort = Cohort.from_table(table, images)
    with pytest.warns(CohortWarning, match=r"bnp: 2 of 4 values are censored \(<5; >35000\)"):
        values = cohort.attribute("bnp")
    np.testing.assert_array_equal(values.to_numpy(), [5, 120, 35000, 80])
    unbounded = Cohort.from_table(table.assign(bnp=["-inf", "120", ">35000", "80"]), images)
    with pytest.warns(CohortWarning, match="2 of 4 values are censored .*1 without a limit are missing"):
        unbounded.attribute("bnp")



def test_a_study_says_what_it_did_with_censored_values_once_when_the_attribute_is_used():
    """``direction``, ``traverse`` and the dashboard take a table's columns through an attribute table,
    not a cohort: they say the same, once per attribute, and nothing for a column without censoring."""
    import warnings

    from seegaan_explore.explore.attribute_table import AttributeTable

    table = AttributeTable(pd.DataFrame({"bnp": ["<5", "120", ">35000", "80"], "age": [50, 60, 70, 80],
                                         "sex": ["f", "m", "m", "f"]}))
    with pytest.warns(CohortWarning, match=r"bnp: 2 of 4 values are censored \(<5; >35000\); each is taken at"):
        np.testing.assert_array_equal(table.values("bnp"), [5, 120, 35000, 80])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table.values("bnp"), table.values("age"), table.values("sex")


def test_paths_written_on_windows_or_in_another_unicode_form_are_found(tmp_path, images):
    (images / "img3.png").rename(images / "Mu\u0308ller.png")  # decomposed, as macOS archives write it
    table = pd.DataFrame({"path": ["img\\img0.png", "img/M\u00fcller.png"]})
    cohort = Cohort.from_table(table, tmp_path)
    assert cohort.paths == [images / "img0.png", images / "Mu\u0308ller.png"]
    # one that is missing is named with this system's separators, not half of each
    with pytest.warns(CohortWarning, match=r"dropped 1 row\(s\) whose image file is missing: .*img/gone\.png\)"):
        Cohort.from_table(pd.DataFrame({"path": ["img\\img0.png", "img\\gone.png"]}), tmp_path)


def test_an_excel_table_without_its_reader_says_what_to_install(tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Missing optional dependency 'openpyxl'")

    monkeypatch.setattr(pd, "read_excel", no_engine)
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"t\.xlsx: reading \.xlsx tables needs.*openpyxl.*save the table as CSV"):
        Cohort.from_table(tmp_path / "t.xlsx", tmp_path)
