"""Which rows of a cohort a direction is fitted on, and what became of the others.

A direction can be fitted on a subset of the cohort, the training patients, and traversals shown on
held-out ones. :func:`select` turns conditions such as ``split=train`` into the rows they keep. The
conditions are a small language of their own, never evaluated as Python or as a pandas query
(``DataFrame.query`` reaches the attributes and methods of the objects it sees, so a query string
can run code):

- ``COLUMN=VALUE`` (or ``==``): the rows whose value is VALUE; ``COLUMN=A,B``: either of them;
- ``COLUMN!=VALUE`` (or ``!=A,B``): the rows with another value;
- ``COLUMN<NUMBER``, ``<=``, ``>``, ``>=``: a numeric column against a number.

Several conditions must all hold. Text matches without regard to case or surrounding spaces, as
attribute levels do; a row without a value in the column is never selected. A value a text column
never takes is an error that lists the ones it does (a typo must not select nothing).

:func:`account` says, column by column, how many rows a fit left out and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.table import parse_lab_column
from .attributes import Levels

__all__ = ["account", "select", "spoken"]

_OPERATOR = re.compile(r"\s*(==|!=|<=|>=|=|<|>)\s*(.*?)\s*$")
_SAID = {"==": "=", "=": "=", "!=": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def _parse(condition: str, columns: Sequence[str]) -> tuple[str, str, str]:
    text = str(condition).strip()
    for column in sorted(map(str, columns), key=len, reverse=True):  # the longest column name that fits
        found = _OPERATOR.match(text, len(column)) if text.startswith(column) else None
        if found:
            return column, found.group(1), found.group(2)
    operator = re.search(r"==|!=|<=|>=|=|<|>", text)
    if operator is None:
        raise ValueError(f"{text!r} is not a condition: write COLUMN=VALUE, COLUMN!=VALUE or COLUMN<NUMBER")
    raise ValueError(f"{text!r}: the table has no column {text[:operator.start()].strip()!r}; its columns are "
                     f"{', '.join(map(str, columns))}")


def _rows(series: pd.Series, column: str, operator: str, value: str) -> np.ndarray:
    try:
        numbers = parse_lab_column(series)["value"].to_numpy(np.float64)
    except ValueError:
        numbers = None
    if operator in ("<", "<=", ">", ">=") or numbers is not None:
        if numbers is None:
            raise ValueError(f"column {column!r} holds text; {operator} compares numbers (use = or !=)")
        try:
            targets = [float(v) for v in value.split(",")] if operator in ("=", "==", "!=") else [float(value)]
        except ValueError:
            raise ValueError(f"column {column!r} holds numbers; {value!r} is not a number") from None
        with np.errstate(invalid="ignore"):
            if operator in ("=", "==", "!="):
                hit = np.isin(numbers, targets)
                return hit if operator != "!=" else np.isfinite(numbers) & ~hit
            return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[operator](
                numbers, targets[0])
    levels = Levels.of(series)
    keys = []
    for text in value.split(","):
        key = levels.key(text)
        if key is None:
            raise ValueError(f"column {column!r} has no value {text.strip()!r}; its values are {levels.listing()}")
        keys.append(key)
    hit = levels.keys.isin(keys).fillna(False).to_numpy(bool)
    return hit if operator != "!=" else levels.keys.notna().to_numpy(bool) & ~hit


def select(table: pd.DataFrame, conditions: str | Sequence[str]) -> tuple[np.ndarray, str]:
    """The rows of ``table`` that satisfy every condition (a boolean mask), and the conditions in
    words (``split = train``). No row left is an error."""
    conditions = [conditions] if isinstance(conditions, str) else list(conditions)
    if not conditions:
        raise ValueError("no condition given")
    rows, said = np.ones(len(table), bool), []
    for condition in conditions:
        column, operator, value = _parse(condition, list(table.columns))
        if not value:
            raise ValueError(f"{condition!r}: no value after {operator}")
        rows &= _rows(table[column], column, operator, value)
        said.append(f"{column} {_SAID[operator]} {value}")
    description = " and ".join(said)
    if not rows.any():
        raise ValueError(f"no row has {description}")
    return rows, description


def account(rows: np.ndarray, steps: Sequence[tuple[str, str, np.ndarray]]) -> list[dict]:
    """The rows a fit leaves out, column by column: ``steps`` are (column, reason, rows it would
    leave out) in the order they apply, each counted among what the earlier ones left of ``rows``,
    so that the counts add up. Steps that leave nothing out are not listed."""
    left, out = np.asarray(rows, bool).copy(), []
    for column, reason, removes in steps:
        n = int((left & removes).sum())
        left &= ~removes
        if n:
            out.append({"column": column, "rows": n, "reason": reason})
    return out


def spoken(dropped: Sequence[dict]) -> str:
    """:func:`account`'s list in words: "3 rows without age; 20 rows of view_raw: LATERAL"."""
    return "; ".join(f"{d['rows']} row{'s' if d['rows'] != 1 else ''} {d['reason']}" for d in dropped)
