"""Reading a cohort's clinical table and turning its columns into numbers.

Everything that depends on how a user writes a table lives here: opening CSV/TSV/Parquet/Excel
with id-like columns kept as text, finding the id, path and patient columns by their usual names,
and parsing attributes (numbers, censored lab values such as ``"<5"``, two-level text such as sex).
It is separate from :mod:`~seegaan_explore.data.cohort` because the study and the command line
parse attributes of tables that never become a cohort, and one rule for a column must hold for all.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ID_CANDIDATES",
    "LISTED",
    "MISSING_MARKERS",
    "PATH_CANDIDATES",
    "PATIENT_CANDIDATES",
    "UnreadableColumn",
    "censoring",
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
    header read as text.

    CSV as hospital systems write it: UTF-8 or, failing that, Windows-1252 (with a warning); comma,
    tab or semicolon delimited (a semicolon table is Excel's European export, so its decimal mark is
    the comma, and points may separate thousands: ``>35.000``). Rows with more fields than the
    header raise ``ValueError`` naming the line, instead of pandas quietly taking the first column as
    the index."""
    path = Path(table)
    if not path.is_file():
        what = "cohort table" if path.suffix else "image folder or cohort table"  # --data takes either
        raise FileNotFoundError(f"{what} not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".xlsx", ".xls"):
        try:
            if suffix == ".parquet":
                return pd.read_parquet(path)
            header = list(pd.read_excel(path, nrows=0))
            return pd.read_excel(path, dtype={c: str for c in string_columns(header)})
        except ImportError as exc:
            raise ValueError(f"{path}: reading {suffix} tables needs a package that is not installed "
                             f"({exc}); install it, or save the table as CSV") from exc
    encoding = _text_encoding(path)
    sep = _delimiter(path, encoding, default="\t" if suffix in (".tsv", ".tab") else ",")
    options = dict(sep=sep, encoding=encoding, decimal="," if sep == ";" else ".")
    try:
        header = list(pd.read_csv(path, nrows=0, **options).columns)
        # ids such as "00123" or "1e5" must stay strings, not become numbers
        kept_as_text = string_columns(header)
        frame = pd.read_csv(path, dtype={c: str for c in kept_as_text}, **options)
    except pd.errors.ParserError as exc:
        raise ValueError(_ragged(path, encoding, sep)) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # every data row had one field more than the header
        raise ValueError(_ragged(path, encoding, sep))
    if options["decimal"] == ",":  # what pandas leaves as text: columns with censored values ("<1,5")
        for column in frame.columns.difference(kept_as_text):
            if not pd.api.types.is_numeric_dtype(frame[column]):
                frame[column] = _with_decimal_points(frame[column])
    return frame


_DECIMAL_COMMA = r"^(?P<op>[<>]=?\s*)?(?P<sign>[-+]?)(?P<whole>\d{1,3}(?:\.\d{3})+|\d+)(?:,(?P<fraction>\d+))?$"


def _with_decimal_points(column: pd.Series) -> pd.Series:
    """Cells written as numbers with a decimal comma (and, optionally, points between thousands:
    ``>35.000``, ``<1,5``) rewritten with a decimal point; every other cell as it was."""
    text = column.astype("string").str.strip()
    parts = text.str.extract(_DECIMAL_COMMA)
    number = parts["whole"].notna()
    rewritten = (parts["op"].fillna("") + parts["sign"].fillna("") + parts["whole"].str.replace(".", "", regex=False)
                 + parts["fraction"].map(lambda f: f".{f}", na_action="ignore").fillna(""))
    return column.where(~number, rewritten.astype(object))


def _text_encoding(path: Path) -> str:
    """``utf-8-sig`` where the file decodes as UTF-8, else ``cp1252`` (Excel's Western European
    export), with a warning; a file that is neither raises ``ValueError`` naming the byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as utf8_error:
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[utf8_error.start]:02x} at position "
                             f"{utf8_error.start}); save the table as UTF-8 CSV") from utf8_error
        warnings.warn(f"{path} is not UTF-8 (byte 0x{data[utf8_error.start]:02x} at position "
                      f"{utf8_error.start}): read as Windows-1252", stacklevel=3)
        return "cp1252"


def _delimiter(path: Path, encoding: str, default: str) -> str:
    """The header line's delimiter: `default` unless the line holds none of it and more semicolons
    or tabs than anything else."""
    with open(path, encoding=encoding, newline="") as f:
        first = f.readline()
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    if counts[default]:
        return default
    best = max(counts, key=counts.get)
    return best if counts[best] else default


def _ragged(path: Path, encoding: str, sep: str) -> str:
    """Where a CSV's rows stop matching its header, and the usual why."""
    with open(path, encoding=encoding, newline="") as f:
        rows = csv.reader(f, delimiter=sep)
        width = len(next(rows))
        line, fields = next(((rows.line_num, len(row)) for row in rows if row and len(row) != width), (0, 0))
    return (f"{path}: line {line} has {fields} fields where the header has {width}; a decimal comma in an "
            "unquoted number, or another delimiter than the header's? Quote such values, or save the table "
            "with decimal points")


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
#: how tables write "not measured" in a number column (besides an empty cell)
MISSING_MARKERS = ("nan", "na", "n/a", "n.a.", "-", "--", ".", "null")


class UnreadableColumn(ValueError):
    """A column that is not what it seems: numbers with cells that are none (``"1,5"``, ``"pending"``),
    or two text levels that look like one (``M``, ``male``). An error, never guessed into levels."""


def parse_lab_column(series: pd.Series) -> pd.DataFrame:
    """Parse a column of possibly censored lab values into ``value`` (float) and ``censor``.

    Numbers parse as themselves with censor ``""``; ``"<5"`` and ``"<=5"`` give
    ``(5.0, "<")`` and ``">3000"``/``">=3000"`` give ``(3000.0, ">")`` (a value
    at a detection limit); ``-inf``/``inf`` (string or float) mean below/above the
    detection limit with no known limit and give ``(nan, "<")``/``(nan, ">")``;
    empty cells and :data:`MISSING_MARKERS` give ``(nan, "")``.  Anything else raises
    ``ValueError`` naming the offending values, rather than being turned into NaN unnoticed
    (:class:`UnreadableColumn` where most cells are numbers).
    """
    if pd.api.types.is_numeric_dtype(series):  # includes bool
        value = series.astype(float)
        op = pd.Series("", index=series.index, dtype=object)
    else:
        text = series.astype("string").str.strip()
        parts = text.str.extract(_LAB_PATTERN)
        value = pd.to_numeric(parts["num"], errors="coerce").astype(float)
        present = text.notna() & (text != "")
        bad = present & value.isna() & ~text.str.lower().isin(MISSING_MARKERS).fillna(False)
        if bad.any():
            offenders = list(dict.fromkeys(series[bad].astype(str)))
            where = f"column {series.name!r}: " if series.name is not None else ""
            message = f"{where}cannot parse lab value(s) {listing(offenders)}"
            # numbers, or numbers written with a decimal comma or thousands separator
            number_like = value.notna() | text.str.fullmatch(r"[<>]?=?\s*[-+]?\d[\d.,]*").fillna(False)
            if 2 * number_like.sum() >= (present & value.notna() | bad).sum():
                raise UnreadableColumn(message + _number_hint(offenders))
            raise ValueError(message)
        op = parts["op"].fillna("").astype(object).str[:1]
    censor = op.where(op != "", np.where(value == -np.inf, "<", np.where(value == np.inf, ">", "")))
    value = value.where(np.isfinite(value))
    return pd.DataFrame({"value": value, "censor": censor.astype(object)}, index=series.index)


def censoring(series: pd.Series, values: np.ndarray) -> str | None:
    """What parsing the lab column ``series`` into ``values`` did with its censored cells ("<5",
    ">1000"), in words for a warning; None where it has none."""
    censored = parse_lab_column(series)["censor"] != ""
    if not censored.any():
        return None
    examples = listing(list(dict.fromkeys(series[censored].astype(str))), 3)
    unknown = int((censored & np.isnan(values)).sum())  # -inf/inf: no limit to take
    return (f"{series.name}: {int(censored.sum())} of {len(censored)} values are censored ({examples}); "
            + ("each is taken at its limit" if not unknown else
               "none has a limit, so they are missing" if unknown == censored.sum() else
               f"{unknown} without a limit are missing, the others taken at their limit"))


def _number_hint(offenders: list[str]) -> str:
    if any("," in o for o in offenders):
        return ("; a decimal comma or a thousands separator? Write numbers as 1.5 and 1500 (a "
                "semicolon-separated table is read with decimal commas)")
    return f"; mark a missing value with an empty cell or one of {', '.join(MISSING_MARKERS)}"


def _initial_and_word(short: str, word: str) -> bool:
    """``m`` beside ``male``, ``f`` beside ``female``: an initial and its word (not ``i`` beside
    ``iii``, stages in Roman numerals)."""
    return len(short) == 1 and len(word) >= 3 and not set(word) <= set("ivxlcdm")


def parse_attribute(series: pd.Series) -> tuple[np.ndarray, dict | None]:
    """A table column as floats, and its text levels' codes: numbers and censored lab values
    (:func:`parse_lab_column`) as themselves; exactly two text levels (case-insensitive, e.g. sex
    ``f``/``m``) as 0/1 in sorted order, with the mapping. Anything else raises ``ValueError``:
    :class:`UnreadableColumn` for a column of numbers with some cells that are none, and for levels
    that look like one written two ways (two levels, one the other's start; or an initial beside
    its word: ``M`` and ``male`` among ``f``, ``m`` and ``male``)."""
    try:
        return parse_lab_column(series)["value"].to_numpy(np.float64), None
    except UnreadableColumn:
        raise
    except ValueError as parse_error:
        text = text_levels(series)
        levels = sorted(set(text.dropna()))
        twice = [(short, word) for short in levels for word in levels if word != short and word.startswith(short)
                 and (len(levels) == 2 or _initial_and_word(short, word))]
        if twice:
            pairs = ", ".join(f"{short!r} and {word!r}" for short, word in twice)
            raise UnreadableColumn(f"attribute {series.name!r} has the levels {pairs}, which look like one level "
                                   "written two ways; write each level one way")
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
