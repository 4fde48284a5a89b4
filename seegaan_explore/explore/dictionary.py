"""A data dictionary: what a table's columns mean to a clinician.

Column names (``nt_probnp_pg_ml``) and codes (``sex`` 0/1) are a statistician's words. A dictionary
gives each attribute a label, a unit, its scale, the range a value can plausibly take, clinical
anchors (NT-proBNP 125 / 300 / 450 / 900 / 1,800 pg/mL), words for its levels, and the attributes a
direction holds fixed by default. The dashboard and the exports speak its words; a column it does
not list is not offered where a dictionary is given. A user writes one as CSV or YAML
(:func:`read_dictionary`); the demo ships its own (:data:`PHANTOM_DICTIONARY`).

CSV columns: ``column`` (required), ``label``, ``unit``, ``log`` (true/false), ``low`` and ``high``
(the plausible range), ``anchors`` (``125: rule-out; 450; 900``), ``levels`` (``f: female; m: male``),
``hold`` (``age; view``), ``decimals``. YAML: a mapping from column to the same keys, with lists and
mappings where the CSV uses ``;``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("label", "unit", "log", "low", "high", "anchors", "levels", "hold", "decimals")


@dataclass(frozen=True)
class AttributeInfo:
    """What one column means: ``levels`` maps the table's text levels (lower case) to words."""

    column: str
    label: str = ""
    unit: str = ""
    log: bool = False
    low: float | None = None
    high: float | None = None
    anchors: tuple[tuple[float, str], ...] = ()
    levels: Mapping[str, str] = field(default_factory=dict)
    hold: tuple[str, ...] = ()
    decimals: int | None = None

    @property
    def name(self) -> str:
        return self.label or self.column

    def format(self, value: float, unit: bool = True) -> str:
        """A value as a clinician reads it: ``17,200 pg/mL``, ``64 years``; NaN as "unknown"."""
        if value is None or not math.isfinite(value):
            return "unknown"
        if self.decimals is not None:
            text = f"{value:,.{self.decimals}f}"
        else:
            text = _significant(value)
        return f"{text} {self.unit}" if unit and self.unit else text

    def clip(self, low: float, high: float) -> tuple[float, float]:
        """``low``..``high`` within the plausible range (where the dictionary gives one)."""
        floor = -math.inf if self.low is None else self.low
        ceiling = math.inf if self.high is None else self.high
        return min(max(low, floor), ceiling), max(min(high, ceiling), floor)


def _significant(value: float, digits: int = 3) -> str:
    """Three significant digits with thousands separators: 17,200 rather than 1.72e+04."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    rounded = round(value, digits - 1 - magnitude)
    decimals = max(0, digits - 1 - magnitude)
    return f"{rounded:,.{decimals}f}"


def _split(text) -> list[str]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    return [part.strip() for part in str(text).split(";") if part.strip()]


def _pairs(value) -> list[tuple[str, str]]:
    """``"125: rule-out; 450"`` or a list/mapping from YAML -> [("125", "rule-out"), ("450", "")]."""
    if isinstance(value, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in value.items()]
    items = value if isinstance(value, list) else _split(value)
    out = []
    for item in items:
        key, _, words = str(item).partition(":")
        out.append((key.strip(), words.strip()))
    return out


def _number(value, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    return None if math.isnan(number) else number


def _flag(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip().lower()
    if text in ("", "false", "no", "0"):
        return False
    if text in ("true", "yes", "1"):
        return True
    raise ValueError(f"{where}: {value!r} is neither true nor false")


def info_from_entry(column: str, entry: Mapping, source: str = "dictionary") -> AttributeInfo:
    """One column's :class:`AttributeInfo` from its dictionary entry (CSV row or YAML mapping)."""
    unknown = set(entry) - set(KEYS) - {"column"}
    if unknown:
        raise ValueError(f"{source}: column {column!r} has unknown key(s) {sorted(unknown)}; the keys are {KEYS}")
    where = f"{source}: {column}"
    anchors = []
    for value, words in _pairs(entry.get("anchors")):
        number = _number(value, f"{where}: anchors")
        anchors.append((number, words))
    low, high = _number(entry.get("low"), f"{where}: low"), _number(entry.get("high"), f"{where}: high")
    if low is not None and high is not None and low >= high:
        raise ValueError(f"{where}: the plausible range {low:g} to {high:g} is empty")
    log = _flag(entry.get("log"), f"{where}: log")
    if log and low is not None and low <= 0:
        raise ValueError(f"{where}: a log-scale attribute needs a positive low end, not {low:g}")
    decimals = _number(entry.get("decimals"), f"{where}: decimals")
    hold = entry.get("hold")
    return AttributeInfo(
        column=column, label=str(entry.get("label") or "").strip(), unit=str(entry.get("unit") or "").strip(),
        log=log, low=low, high=high, anchors=tuple(sorted(anchors)),
        levels={k.lower(): v for k, v in _pairs(entry.get("levels"))},
        hold=tuple(hold) if isinstance(hold, list) else tuple(_split(hold)),
        decimals=None if decimals is None else int(decimals))


def read_dictionary(path: str | os.PathLike) -> dict[str, AttributeInfo]:
    """A data dictionary from a CSV or YAML file, in the file's order (the order attributes are offered)."""
    path = Path(path)
    if path.suffix.lower() in (".yml", ".yaml"):
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: a YAML dictionary maps each column to its entry")
        entries = [(str(column), entry or {}) for column, entry in data.items()]
    else:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "column" not in table.columns:
            raise ValueError(f"{path}: a CSV dictionary needs a 'column' column; it has {list(table.columns)}")
        entries = [(row["column"].strip(), {k: v for k, v in row.items() if k != "column"})
                   for row in table.to_dict("records")]
    out = {}
    for column, entry in entries:
        if not column:
            raise ValueError(f"{path}: a row without a column name")
        if column in out:
            raise ValueError(f"{path}: column {column!r} is described twice")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{path}: the entry of {column!r} must be a mapping")
        out[column] = info_from_entry(column, entry, str(path))
    return out


def starter_dictionary(table: pd.DataFrame, source: str = "the table") -> str:
    """A YAML data dictionary listing every attribute of ``table`` to fill in: its label (the column's
    name until you write one), an empty unit, the levels of a text column as the table spells them
    (write the words after each colon), ``log: true`` for a positive value whose largest is ten times
    its median or more (a skewed lab value), and, in a comment, what the table holds."""
    import json

    from .attributes import Contrast, Levels, bookkeeping, detect_attributes

    found = detect_attributes(table)
    text = lambda value: json.dumps(str(value), ensure_ascii=False)  # noqa: E731 -- a YAML scalar, safely quoted
    lines = [f"# A data dictionary for {source}, written by `seegaan-explore dictionary`: give each attribute",
             "# what a clinician reads, check each guessed log scale, delete what the page should not offer.",
             "# label: its name; unit: pg/mL, years; log: true for a lab value; low, high: the plausible range",
             "# (a film never goes beyond it); anchors: {125: rule-out, 450: rule-in}, buttons for clinical",
             "# cut-offs; levels: {f: female, m: male}, words for codes; hold: [age, view], what a direction",
             "# holds fixed by default; decimals: 0."]
    for column in table.columns:
        if bookkeeping(column):
            continue
        meanings = [m for name, (_, m) in found.items() if name == column or
                    (isinstance(m, Contrast) and m.column == column)]
        if not meanings:
            continue
        entry = f"{text(column)}: {{label: {text(column)}"
        if meanings[0] is None:  # numbers
            values = np.asarray(found[column][0], np.float64)
            finite = values[np.isfinite(values)]
            skewed = finite.min() > 0 and finite.max() >= 10 * np.median(finite)
            entry += ', unit: ""' + (", log: true" if skewed else "") + ", low: null, high: null}"
            entry += (f"  # {finite.size} of {len(values)} rows hold a value, {finite.min():g} to {finite.max():g} "
                      f"(median {np.median(finite):g})")
        else:
            spelling = Levels.of(table[column]).spelling
            entry += ", levels: {" + ", ".join(f"{text(k)}: {text(v)}" for k, v in spelling.items()) + "}}"
        lines.append(entry)
    return "\n".join(lines) + "\n"


# The built-in phantom cohort, in a clinician's words (docs/phantoms.md): one NT-proBNP, on its log
# scale, with the 2021 ESC heart-failure guideline's anchors (125 pg/mL rules out outside the acute
# setting; in it 300 rules out, and 450 / 900 / 1,800 rule in at age < 50 / 50-75 / > 75); scores
# say their scale in their label. The duplicates a table carries for convenience (log_nt_probnp,
# ctr_projected, edema_grade) and its bookkeeping are not offered.
PHANTOM_DICTIONARY = {info.column: info for info in (
    AttributeInfo("nt_probnp_pg_ml", "NT-proBNP", "pg/mL", log=True, low=5.0, high=35000.0,
                  anchors=((125.0, "ESC 2021: below it, heart failure is unlikely (non-acute setting)"),
                           (300.0, "ESC 2021: below it, acute heart failure is unlikely"),
                           (450.0, "ESC 2021: above it, acute heart failure is likely at age < 50"),
                           (900.0, "ESC 2021: above it, acute heart failure is likely at age 50-75"),
                           (1800.0, "ESC 2021: above it, acute heart failure is likely at age > 75")),
                  hold=("age", "view"), decimals=0),
    AttributeInfo("severity", "heart-failure severity (0–1)", "", low=0.0, high=1.0, decimals=2,
                  hold=("age",)),
    AttributeInfo("age", "age", "years", low=18.0, high=95.0, decimals=0),
    AttributeInfo("sex", "sex", levels={"f": "female", "m": "male"}),
    AttributeInfo("view", "view", levels={"ap": "AP (supine, portable)", "pa": "PA (standing)"}),
    AttributeInfo("bmi", "BMI", "kg/m²", low=15.0, high=50.0, decimals=1),
    AttributeInfo("ctr", "cardiothoracic ratio", "", low=0.3, high=0.8, decimals=2),
    AttributeInfo("edema_score", "pulmonary edema (0–3)", "", low=0.0, high=3.0, decimals=2),
    AttributeInfo("effusion_left", "left pleural effusion", "mL", low=0.0, high=1500.0, decimals=0),
    AttributeInfo("effusion_right", "right pleural effusion", "mL", low=0.0, high=1500.0, decimals=0),
    AttributeInfo("device", "pacemaker", levels={"false": "none", "true": "pacemaker"}),
    AttributeInfo("bone_density", "bone density (1 = young adult)", "", low=0.3, high=1.3, decimals=2),
)}
