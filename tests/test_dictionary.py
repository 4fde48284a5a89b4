"""A data dictionary puts the table's columns in a clinician's words, units and ranges."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from seegaan_explore.explore.dictionary import PHANTOM_DICTIONARY, AttributeInfo, read_dictionary
from seegaan_explore.explore.study import Study


def test_values_read_as_a_clinician_writes_them():
    nt = PHANTOM_DICTIONARY["nt_probnp_pg_ml"]
    assert nt.format(17234.0) == "17,234 pg/mL" and nt.format(5.57) == "6 pg/mL"  # a lab value: no decimals
    assert AttributeInfo("x", unit="pg/mL").format(1.2134) == "1.21 pg/mL"  # three significant digits
    assert nt.format(float("nan")) == "unknown"
    assert PHANTOM_DICTIONARY["age"].format(63.6) == "64 years"
    assert AttributeInfo("x").format(-0.000123456) == "-0.000123"
    assert nt.clip(1.0, 405_000.0) == (5.0, 35_000.0)


def test_the_phantom_dictionary_follows_the_esc_guideline_and_the_phantoms_scales():
    """ESC 2021: 125 pg/mL rules out outside the acute setting; in it 300 rules out and 450 / 900 /
    1,800 rule in by age. The phantom's edema score runs 0-3 (docs/phantoms.md)."""
    nt = PHANTOM_DICTIONARY["nt_probnp_pg_ml"]
    words = dict(nt.anchors)
    assert list(words) == [125.0, 300.0, 450.0, 900.0, 1800.0]
    assert "unlikely" in words[125.0] and "non-acute" in words[125.0]
    assert "unlikely" in words[300.0] and "acute heart failure" in words[300.0]
    assert [words[v].endswith(age) for v, age in ((450.0, "age < 50"), (900.0, "age 50-75"), (1800.0, "age > 75"))] \
        == [True] * 3
    edema = PHANTOM_DICTIONARY["edema_score"]
    assert (edema.low, edema.high) == (0.0, 3.0) and "(0–3)" in edema.label
    assert "(0–1)" in PHANTOM_DICTIONARY["severity"].label
    assert "1 = young adult" in PHANTOM_DICTIONARY["bone_density"].label


def test_a_csv_dictionary(tmp_path):
    path = tmp_path / "dictionary.csv"
    path.write_text("column,label,unit,log,low,high,anchors,levels,hold\n"
                    "nt,NT-proBNP,pg/mL,true,5,35000,125: rule-out; 450,,age; sex\n"
                    "sex,sex,,,,,,f: female; M: male,\n"
                    "age,age,years,false,18,100,,,\n", encoding="utf-8")
    d = read_dictionary(path)
    assert list(d) == ["nt", "sex", "age"]
    assert d["nt"].log and d["nt"].anchors == ((125.0, "rule-out"), (450.0, ""))
    assert d["nt"].hold == ("age", "sex") and d["sex"].levels == {"f": "female", "m": "male"}


def test_a_yaml_dictionary(tmp_path):
    path = tmp_path / "dictionary.yaml"
    path.write_text("nt:\n  label: NT-proBNP\n  unit: pg/mL\n  log: true\n  anchors: {125: rule-out, 900: null}\n"
                    "  hold: [age]\nview:\n  levels: {ap: supine, pa: standing}\n", encoding="utf-8")
    d = read_dictionary(path)
    assert d["nt"].anchors == ((125.0, "rule-out"), (900.0, "")) and d["nt"].hold == ("age",)
    assert d["view"].levels == {"ap": "supine", "pa": "standing"}


@pytest.mark.parametrize("row, message", [
    ("nt,,,maybe,,,,,", "nt: log: 'maybe' is neither true nor false"),
    ("nt,,,,ten,,,,", "nt: low: 'ten' is not a number"),
    ("nt,,,,50,5,,,", "the plausible range 50 to 5 is empty"),
    ("nt,,,true,0,10,,,", "needs a positive low end"),
])
def test_a_bad_entry_names_the_file_the_column_and_the_value(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text("column,label,unit,log,low,high,anchors,levels,hold\n" + row + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv") as error:
        read_dictionary(path)
    assert message in str(error.value)


def test_unknown_keys_and_repeated_columns_are_refused(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("nt:\n  units: pg/mL\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['units'\]"):
        read_dictionary(path)
    path = tmp_path / "d.csv"
    path.write_text("column,label\nnt,a\nnt,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'nt' is described twice"):
        read_dictionary(path)


def test_the_study_speaks_the_dictionarys_words():
    rng = np.random.default_rng(0)
    n = 60
    table = pd.DataFrame({"image_id": range(n), "nt_probnp_pg_ml": np.exp(rng.normal(6, 1, n)),
                          "log_nt_probnp": rng.normal(6, 1, n), "sex": rng.choice(["F", "M"], n),
                          "device": rng.random(n) < 0.3, "age": rng.uniform(20, 90, n)})
    study = Study(rng.normal(size=(n, 4)), table, dictionary=PHANTOM_DICTIONARY)
    assert study.attributes == ["nt_probnp_pg_ml", "age", "sex", "device"]  # the dictionary's order; no duplicate
    assert study.label("nt_probnp_pg_ml") == "NT-proBNP"
    assert study.ends("sex") == ("female", "male") and study.ends("device") == ("none", "pacemaker")
    assert study.ends("nt_probnp_pg_ml") == ("lower NT-proBNP", "higher NT-proBNP")
    assert study.format("sex", 1.0) == "male" and study.format("age", 71.2) == "71 years"
    plain = Study(rng.normal(size=(n, 4)), table)
    assert "log_nt_probnp" in plain.attributes and plain.label("sex") == "sex"
    assert plain.ends("sex") == ("F", "M")  # as the table spells them


def test_a_log_scale_value_below_the_plausible_range_is_taken_at_its_low_end_and_said():
    """A CRP of 0 (a lab's "below what it measures") cannot be shown on a log scale: where the
    dictionary gives the lowest plausible value, it is taken at that, with a warning, once."""
    from seegaan_explore.data.cohort import CohortWarning

    rng = np.random.default_rng(1)
    n = 40
    crp = np.round(np.exp(rng.normal(2, 1.5, n)), 1)
    crp[[3, 7]] = 0.0
    table = pd.DataFrame({"image_id": range(n), "crp_val": crp})
    words = {"crp_val": AttributeInfo("crp_val", "CRP", "mg/L", log=True, low=0.1, high=500)}
    study = Study(rng.normal(size=(n, 4)), table, dictionary=words)
    with pytest.warns(CohortWarning, match=r"crp_val: 2 of 40 values lie below 0\.100 mg/L, the lowest plausible value "
                                           r"in the data dictionary \(the smallest 0\), and are taken at it"):
        values = study.values("crp_val")
    assert values[3] == values[7] == 0.1 and (values[crp > 0] == crp[crp > 0]).all()
    assert np.isfinite(study.scaled("crp_val", log=True)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CohortWarning)  # said once
        study.values("crp_val")
    without = Study(rng.normal(size=(n, 4)), table)  # no dictionary: no floor to take them at
    with pytest.raises(ValueError, match="a log scale needs positive values, but the smallest is 0"):
        without.scaled("crp_val", log=True)


def test_a_value_censored_without_a_limit_is_taken_at_the_plausible_end_the_dictionary_gives():
    """The Hannover table writes a D-dimer above what the assay measures as inf, a CRP below it as -inf:
    without a limit of their own they are missing, unless the dictionary gives the plausible range."""
    from seegaan_explore.data.cohort import CohortWarning

    rng = np.random.default_rng(2)
    n = 30
    ddimer = np.round(np.exp(rng.normal(0, 1, n)), 2)
    ddimer[[1, 2]], ddimer[5] = np.inf, -np.inf
    table = pd.DataFrame({"image_id": range(n), "ddimer": ddimer})
    words = {"ddimer": AttributeInfo("ddimer", "D-dimer", "mg/L", log=True, low=0.1, high=35)}
    study = Study(rng.normal(size=(n, 4)), table, dictionary=words)
    with pytest.warns(CohortWarning, match=r"ddimer: 1 of 30 values censored without a limit \(<\) are taken at "
                                           r"0\.100 mg/L, the lowest .*; 2 of 30 values censored without a limit "
                                           r"\(>\) are taken at 35\.0 mg/L, the highest") as said:
        values = study.values("ddimer")
    assert not [w for w in said if "each is taken at its limit" in str(w.message)]  # one note, not two at odds
    assert values[5] == 0.1 and values[1] == values[2] == 35 and np.isfinite(values).all()
    assert np.isnan(Study(rng.normal(size=(n, 4)), table).values("ddimer")[[1, 2, 5]]).all()  # no dictionary


def test_a_starter_dictionary_lists_every_attribute_to_fill_in_and_reads_back(tmp_path):
    from seegaan_explore.explore.dictionary import starter_dictionary

    rng = np.random.default_rng(2)
    n = 30
    table = pd.DataFrame({"patient_id": [f"p{k}" for k in range(n)], "sex": rng.choice(["F", "M"], n),
                          "view": rng.choice(["AP", "PA", "LAT"], n), "d-dimer_val": np.exp(rng.normal(1, 1.2, n)),
                          "age": rng.uniform(20, 90, n), "note: free": ["x"] * n})
    text = starter_dictionary(table, "t.csv")
    (tmp_path / "words.yaml").write_text(text)
    words = read_dictionary(tmp_path / "words.yaml")
    assert list(words) == ["sex", "view", "d-dimer_val", "age"]  # no id, no free text; the table's order
    assert words["sex"].levels == {"f": "F", "m": "M"}  # as the table spells them, for the words to be written
    assert set(words["view"].levels) == {"ap", "pa", "lat"}
    assert words["d-dimer_val"].log and not words["age"].log  # a skewed positive lab value: a log scale to check
    assert f"# {n} of {n} rows hold a value, " in text.splitlines()[-1]  # what the table holds, beside the entry
    assert Study(rng.normal(size=(n, 4)), table, dictionary=words).attributes == Study(rng.normal(size=(n, 4)),
                                                                                       table).attributes
