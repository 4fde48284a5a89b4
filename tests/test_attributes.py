"""A table's columns as attributes: the levels of a categorical column, its contrasts (a level
against a reference level, or against the rest), and the rows a fit is chosen on and leaves out."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from seegaan_explore.explore.attributes import MAX_LEVELS, Levels, split_contrast
from seegaan_explore.explore.rows import account, select, spoken

VIEWS = pd.Series(["AP", "pa", "PA ", "LATERAL", None, "ap", "AP", "", "PA"], name="view_raw")


def test_levels_ignore_case_and_spaces_and_keep_the_tables_spelling():
    levels = Levels.of(VIEWS)
    assert levels.spelling == {"ap": "AP", "pa": "PA", "lateral": "LATERAL"}  # most frequent first
    assert levels.counts == {"ap": 3, "pa": 3, "lateral": 1}
    assert levels.listing() == "AP (3 rows), PA (3), LATERAL (1)"
    np.testing.assert_array_equal(levels.codes(), [0, 1, 1, 2, np.nan, 0, 0, np.nan, 1])
    indicators = levels.indicators()  # PA and LATERAL against AP, the most frequent
    np.testing.assert_array_equal(indicators[[0, 1, 3]], [[0, 0], [1, 0], [0, 1]])
    assert np.isnan(indicators[[4, 7]]).all()


def test_a_level_against_a_reference_leaves_the_other_levels_out():
    contrast = Levels.of(VIEWS).contrast("pa:Ap")
    assert contrast.name == "view_raw=PA:AP"
    np.testing.assert_array_equal(contrast.values(), [0, 1, 1, np.nan, np.nan, 0, 0, np.nan, 1])
    outside, names = contrast.others()
    assert outside.tolist() == [False, False, False, True, False, False, False, False, False] and names == ["LATERAL"]
    assert contrast.ends() == ("AP", "PA")
    assert contrast.label("view", {"pa": "PA (standing)"}) == "view: PA (standing) vs AP"


def test_one_level_against_the_rest():
    contrast = Levels.of(VIEWS).contrast(" lateral ")
    assert contrast.name == "view_raw=LATERAL"
    np.testing.assert_array_equal(contrast.values(), [0, 0, 0, 1, np.nan, 0, 0, np.nan, 0])
    assert not contrast.others()[0].any()
    assert contrast.ends() == ("not LATERAL", "LATERAL")
    assert contrast.label("view") == "view: LATERAL vs the rest"


def test_on_a_two_level_column_the_rest_is_the_other_level():
    contrast = Levels.of(pd.Series(["F", "m", "M", None], name="sex")).contrast("f")
    assert contrast.name == "sex=F" and contrast.ends() == ("M", "F") and contrast.label("sex") == "sex: F vs M"
    np.testing.assert_array_equal(contrast.values(), [1, 0, 0, np.nan])


def test_a_column_of_numbers_coding_levels():
    levels = Levels.of(pd.Series([1, 2, 3, 1, np.nan, 2.0], name="view_code"))
    assert levels.contrast("2.0:1").name == "view_code=2:1"
    np.testing.assert_array_equal(levels.contrast("3").values(), [0, 0, 1, 0, np.nan, 0])


@pytest.mark.parametrize("text, message", [
    ("LAT", "column 'view_raw' has no level 'LAT'; its levels are AP (3 rows), PA (3), LATERAL (1)"),
    ("PA:LAT", "column 'view_raw' has no level 'LAT'; its levels are AP"),
    ("LAT:PA", "column 'view_raw' has no level 'LAT'; its levels are AP"),
    ("", "column 'view_raw': '' names no level; its levels are AP"),
    ("pa:PA", "column 'view_raw': 'pa:PA' sets level PA against itself"),
])
def test_an_unknown_level_is_named_with_the_valid_ones(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Levels.of(VIEWS).contrast(text)


def test_a_column_of_free_text_has_no_contrasts():
    notes = pd.Series([f"note {i}" for i in range(MAX_LEVELS + 1)], name="notes")
    assert Levels.of(notes).offered() == []
    with pytest.raises(ValueError, match=f"column 'notes' has {MAX_LEVELS + 1} distinct values; a contrast needs"):
        Levels.of(notes).contrast("note 1")
    assert Levels.of(VIEWS).offered()[0].name == "view_raw=PA:AP"  # ties go by name: ap before pa


def test_a_contrast_name_is_split_at_a_column_of_the_table():
    columns = ["view", "a=b"]
    assert split_contrast("view=PA:AP", columns) == ("view", "PA:AP")
    assert split_contrast("a=b=c", columns) == ("a=b", "c")
    assert split_contrast("age=50", columns) is None and split_contrast("view", columns) is None


TABLE = pd.DataFrame({"split": ["train", "Train", "test", "val", None, "train"],
                      "age": [30, 55, np.nan, 70, 41, 18], "crp": ["<5", "12", "8", None, ">300", "3"]})


@pytest.mark.parametrize("conditions, rows, said", [
    ("split=train", [0, 1, 5], "split = train"),
    (["split == TRAIN ", "age>=30"], [0, 1], "split = TRAIN and age ≥ 30"),
    ("split=test,val", [2, 3], "split = test,val"),
    ("split!=train", [2, 3], "split ≠ train"),  # a row without a value is never chosen
    ("age<41", [0, 5], "age < 41"),
    ("age=55,70", [1, 3], "age = 55,70"),
    ("crp>10", [1, 4], "crp > 10"),  # censored lab values compare at their limit
])
def test_conditions_choose_rows(conditions, rows, said):
    mask, words = select(TABLE, conditions)
    assert np.flatnonzero(mask).tolist() == rows and words == said


@pytest.mark.parametrize("condition, message", [
    ("split=trian", "column 'split' has no value 'trian'; its values are train (3 rows), test (1), val (1)"),
    ("spilt=train", "'spilt=train': the table has no column 'spilt'; its columns are split, age, crp"),
    ("split<train", "column 'split' holds text; < compares numbers"),
    ("age>old", "column 'age' holds numbers; 'old' is not a number"),
    ("split=", "'split=': no value after ="),
    ("age>90", "no row has age > 90"),
    ("train", "'train' is not a condition: write COLUMN=VALUE"),
])
def test_a_bad_condition_says_what_is_wrong(condition, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        select(TABLE, condition)


def test_conditions_are_never_run_as_code(tmp_path):
    """DataFrame.query evaluates attribute access and method calls; a condition here is only text."""
    marker = tmp_path / "ran"
    table = TABLE.assign(x=[f"{i}" for i in range(len(TABLE))])
    attack = f"x=@__import__('pathlib').Path('{marker}').touch()"
    with pytest.raises(ValueError, match="column 'x' holds numbers|column 'x' has no value"):
        select(table, attack)
    with pytest.raises(ValueError, match="is not a condition|has no column"):
        select(table, f"__import__('pathlib').Path('{marker}').touch()")
    assert not marker.exists()


def test_the_rows_left_out_are_counted_once_by_the_column_responsible():
    rows = np.array([True, True, True, True, True, False])
    steps = [("age", "without a value of age", np.array([0, 0, 1, 0, 0, 1], bool)),
             ("view", "of other levels of view (LATERAL)", np.array([0, 1, 1, 0, 0, 0], bool)),
             ("crp", "without a value of crp", np.array([0, 1, 0, 1, 0, 0], bool)),
             ("sex", "without a value of sex", np.zeros(6, bool))]
    dropped = account(rows, steps)
    assert dropped == [{"column": "age", "rows": 1, "reason": "without a value of age"},
                       {"column": "view", "rows": 1, "reason": "of other levels of view (LATERAL)"},
                       {"column": "crp", "rows": 1, "reason": "without a value of crp"}]
    assert spoken(dropped[:2]) == "1 row without a value of age; 1 row of other levels of view (LATERAL)"
