"""Reading a cohort's clinical table and turning its columns into numbers.

Everything that depends on how a user writes a table lives here: opening CSV/TSV/Parquet/Excel
with id-like columns kept as text, finding the id, path and patient columns by their usual names,
and parsing attributes (numbers, censored lab values such as ``"<5"``, two-level text such as sex).
It is separate from :mod:`~seegaan_explore.data.cohort` because the study and the command line
parse attributes of tables that never become a cohort, and one rule for a column must hold for all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ID_CANDIDATES",
    "LISTED",
    "PATH_CANDIDATES",
    "PATIENT_CANDIDATES",
    "listing",
    "parse_attribute",
    "parse_lab_column",
    "parse_lab_value",
    "pick_column",
    "read_table",
    "text_levels",
]

ID_CANDIDATES = ("image_id", "imageid", "id", "image")
PATH_CANDIDATES = ("path", "image_path", "file", "filepath", "file_path", "filename")
PATIENT_CANDIDATES = ("patient_id", "patientid", "patient", "subject_id", "subject")
LISTED = 10  # how many offending items an error or warning message spells out


def listing(items: Sequence, limit: int = LISTED) -> str:
    """The first `limit` items joined with ``"; "``, and how many more there are, for messages."""
    shown = "; ".join(str(x) for x in items[:limit])
    return shown + (f"; ... and {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------- reading

def read_table(table: str | os.PathLike, string_columns: Callable[[list[str]], list[str]]) -> pd.DataFrame:
    """A CSV/TSV/Parquet/Excel file as a DataFrame, the columns `string_columns` picks from its
    header read as text."""
    path = Path(table)
    if not path.is_file():
        raise FileNotFoundError(f"cohort table not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".xlsx", ".xls"):
        return pd.read_excel(path, dtype={c: str for c in string_columns(list(pd.read_excel(path, nrows=0)))})
    sep = "\t" if suffix in (".tsv", ".tab") else ","
    header = list(pd.read_csv(path, sep=sep, nrows=0).columns)
    # ids such as "00123" or "1e5" must stay strings, not become numbers
    return pd.read_csv(path, sep=sep, dtype={c: str for c in string_columns(header)})


def pick_column(columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str,
                source: str) -> str | None:
    """`given` if it is a column (else ``KeyError``); without it the first of `candidates` that is one,
    case-insensitive, or None."""
    if given is not None:
        if given not in columns:
            raise KeyError(f"{source}: {what} column {given!r} not found; columns are {list(columns)}")
        return given
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


# --------------------------------------------------------------------------- lab values

_LAB_PATTERN = r"^(?P<op>[<>]=?)?\s*(?P<num>\S+)$"


def parse_lab_column(series: pd.Series) -> pd.DataFrame:
    """Parse a column of possibly censored lab values into ``value`` (float) and ``censor``.

    Numbers parse as themselves with censor ``""``; ``"<5"`` and ``"<=5"`` give
    ``(5.0, "<")`` and ``">3000"``/``">=3000"`` give ``(3000.0, ">")`` (a value
    at a detection limit); ``-inf``/``inf`` (string or float) mean below/above the
    detection limit with no known limit and give ``(nan, "<")``/``(nan, ">")``;
    empty cells give ``(nan, "")``.  Anything else raises ``ValueError`` naming
    the offending values, rather than being turned into NaN unnoticed.
    """
    if pd.api.types.is_numeric_dtype(series):  # includes bool
        value = series.astype(float)
        op = pd.Series("", index=series.index, dtype=object)
    else:
        text = series.astype("string").str.strip()
        parts = text.str.extract(_LAB_PATTERN)
        value = pd.to_numeric(parts["num"], errors="coerce").astype(float)
        present = text.notna() & (text != "")
        bad = present & (value.isna() & ~parts["num"].str.lower().isin(["nan", "na", "n/a"]).fillna(False))
        if bad.any():
            offenders = list(dict.fromkeys(series[bad].astype(str)))
            where = f"column {series.name!r}: " if series.name is not None else ""
            raise ValueError(f"{where}cannot parse lab value(s) {listing(offenders)}")
        op = parts["op"].fillna("").astype(object).str[:1]
    censor = op.where(op != "", np.where(value == -np.inf, "<", np.where(value == np.inf, ">", "")))
    value = value.where(np.isfinite(value))
    return pd.DataFrame({"value": value, "censor": censor.astype(object)}, index=series.index)


def parse_attribute(series: pd.Series) -> tuple[np.ndarray, dict | None]:
    """A table column as floats, and its text levels' codes: numbers and censored lab values
    (:func:`parse_lab_column`) as themselves; exactly two text levels (case-insensitive, e.g. sex
    ``f``/``m``) as 0/1 in sorted order, with the mapping. Anything else raises ``ValueError``."""
    try:
        return parse_lab_column(series)["value"].to_numpy(np.float64), None
    except ValueError as parse_error:
        text = text_levels(series)
        levels = sorted(set(text.dropna()))
        if len(levels) != 2:
            raise ValueError(f"attribute {series.name!r} is neither numeric nor binary "
                             f"({len(levels)} distinct values: {listing(levels)})") from parse_error
        mapping = {level: code for code, level in enumerate(levels)}
        return pd.to_numeric(text.map(mapping)).astype(float).to_numpy(), mapping


def text_levels(series: pd.Series) -> pd.Series:
    """A text column's level in each row as :func:`parse_attribute` compares levels: stripped and
    lower case ("PA " and "pa" are one level), missing (``<NA>``) where the cell is empty."""
    text = series.astype("string").str.strip().str.lower()
    return text.mask(text == "")


def parse_lab_value(v) -> tuple[float, str]:
    """Parse one possibly censored lab value; see :func:`parse_lab_column` for the rules."""
    row = parse_lab_column(pd.Series([v], dtype=object)).iloc[0]
    return float(row["value"]), row["censor"]
