"""What a table's columns are as attributes: which columns a direction can be fitted on, the scale
it is fitted on, how it is named, and how a categorical column becomes attributes with two ends.

A column of numbers (or censored lab values such as ``"<5"``) is an attribute as it is, and a text
column of two levels is coded 0/1 (:func:`~seegaan_explore.data.table.parse_attribute`). A column
of more levels (a view written AP, PA or LATERAL) is not one direction but several, each a
:class:`Contrast` named in the attribute's place:

- ``view=PA``: PA (1) against every other level (0), *one against the rest*;
- ``view=PA:AP``: PA (1) against the *reference level* AP (0); rows of other levels are left out.

Levels match without regard to case or surrounding spaces (``view=pa`` is ``view=PA``), and a
contrast is named back in the table's spelling. A column with at most :data:`MAX_LEVELS` levels
offers every level against the most frequent one, and every level against the rest.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.table import UnreadableColumn, parse_attribute, parse_lab_column, text_levels

__all__ = ["CNN_PREDICTION", "MAX_LEVELS", "RESERVED", "Contrast", "Levels", "bookkeeping", "cnn_label",
           "detect_attributes", "from_scale", "on_scale", "scaled_name", "split_contrast", "split_scaled_name"]

CNN_PREDICTION = "cnn_prediction"  # what the CNN predicts, as an attribute like any other (the paper's way)
# columns that are bookkeeping, not attributes: a direction along them means nothing
RESERVED = {"index", "seed", "row", "path", "file", "filename", "split", "fold"}
MAX_LEVELS = 12  # a text column with more distinct values is free text or an id, not a category


def bookkeeping(name) -> bool:
    """Whether a column is bookkeeping (an id, a path, an index, a data split) rather than an attribute."""
    return str(name).lower() in RESERVED or str(name).lower().endswith("_id")


def on_scale(values, log: bool, name: str) -> np.ndarray:
    """Values on the scale directions are fitted in: ln where ``log`` (refused for values <= 0)."""
    values = np.asarray(values, np.float64)
    if not log:
        return values
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() <= 0:
        raise ValueError(f"{name}: a log scale needs positive values, but the smallest is {finite.min():g}")
    return np.log(values)


def from_scale(scaled, log: bool) -> np.ndarray:
    return np.exp(scaled) if log else np.asarray(scaled, np.float64)


def scaled_name(attribute: str, log: bool) -> str:
    """How a direction fitted on the log scale is named in files and on the command line."""
    return f"ln({attribute})" if log else attribute


def split_scaled_name(name: str) -> tuple[str, bool]:
    """``"ln(x)"`` -> ``("x", True)``: the inverse of :func:`scaled_name`."""
    if name.startswith("ln(") and name.endswith(")"):
        return name[3:-1], True
    return name, False


def cnn_label(config, target: str | None = None) -> str:
    """How the CNN's prediction is called on screen and in exports; ``target``: its target in words
    (default its column's name)."""
    target = target or getattr(config, "attribute", "") or "its target"
    if getattr(config, "task", None) == "binary":
        return f"CNN probability of {target}"
    return f"CNN prediction of {'ln ' if getattr(config, 'log_transform', False) else ''}{target}"


# --------------------------------------------------------------------------- categorical columns

@dataclass(frozen=True, eq=False)
class Levels:
    """A column's levels: ``keys`` holds each row's level (lower-case text, or a number as ``%g``;
    missing as ``<NA>``), ``spelling`` each level as the table writes it most often and ``counts``
    its rows, both most frequent first."""

    column: str
    keys: pd.Series
    spelling: dict[str, str]
    counts: dict[str, int]

    @classmethod
    def of(cls, series: pd.Series) -> Levels:
        try:
            numbers = parse_lab_column(series)["value"]
            keys = numbers.map(lambda v: f"{v:g}", na_action="ignore").astype("string")
            written = keys
        except ValueError:
            keys = text_levels(series)
            written = series.astype("string").str.strip()
        keys, written = keys.reset_index(drop=True), written.reset_index(drop=True)
        counts = keys.value_counts(sort=False)
        order = sorted(counts.index, key=lambda k: (-counts[k], k))
        spelling = {k: written[(keys == k).fillna(False)].mode().iloc[0] for k in order}
        return cls(str(series.name), keys, spelling, {k: int(counts[k]) for k in order})

    def listing(self) -> str:
        """The levels and their rows, for messages: ``AP (194 rows), PA (49), LATERAL (3)``."""
        items = [f"{self.spelling[k]} ({n}{' rows' if i == 0 else ''})" for i, (k, n) in enumerate(self.counts.items())]
        return ", ".join(items[:MAX_LEVELS]) + (f", ... and {len(items) - MAX_LEVELS} more"
                                                if len(items) > MAX_LEVELS else "")

    def key(self, text: str) -> str | None:
        """The level a user's ``text`` names (``"pa"`` for ``"PA "``), or None where it names none."""
        text = str(text).strip()
        if text.lower() in self.spelling:
            return text.lower()
        try:
            number = f"{float(text):g}"
        except ValueError:
            return None
        return number if number in self.spelling else None

    def codes(self) -> np.ndarray:
        """Each row's level as a number (0 the most frequent, ...; NaN where missing), for matching
        exams on the column and for holding it by one indicator per level."""
        order = {k: float(i) for i, k in enumerate(self.spelling)}
        return self.keys.map(order).astype("Float64").to_numpy(np.float64, na_value=np.nan)

    def indicators(self) -> np.ndarray:
        """[N, levels - 1]: one 0/1 column per level but the most frequent (NaN where missing), the
        linear terms that hold a categorical confounder."""
        codes = self.codes()
        out = (codes[:, None] == np.arange(1, len(self.spelling))[None]).astype(np.float64)
        out[~np.isfinite(codes)] = np.nan
        return out

    def contrast(self, text: str) -> Contrast:
        """The contrast ``text`` names after ``column=``: ``LEVEL`` (against the rest) or
        ``LEVEL:REFERENCE``. An unknown level is named, with the valid ones listed."""
        where = f"column {self.column!r}"
        if len(self.spelling) > MAX_LEVELS:
            raise ValueError(f"{where} has {len(self.spelling)} distinct values; a contrast needs a column of "
                             f"at most {MAX_LEVELS} levels")
        if len(self.spelling) < 2:
            raise ValueError(f"{where} has {len(self.spelling)} level(s) ({self.listing()}); a contrast needs two")
        level = self.key(text)
        if level is not None:
            return Contrast(self, level)
        for at in [i for i, c in enumerate(text) if c == ":"]:
            level, reference = self.key(text[:at]), self.key(text[at + 1:])
            if level is not None and reference is not None:
                if level == reference:
                    raise ValueError(f"{where}: {text!r} sets level {self.spelling[level]} against itself")
                return Contrast(self, level, reference)
        first, colon, second = text.partition(":")
        unknown = second if colon and self.key(first) is not None else (first if colon else text)
        if not unknown.strip():
            raise ValueError(f"{where}: {text!r} names no level; its levels are {self.listing()}")
        raise ValueError(f"{where} has no level {unknown.strip()!r}; its levels are {self.listing()}")

    def offered(self) -> list[Contrast]:
        """The contrasts a column of 3 to :data:`MAX_LEVELS` levels offers: every level against the
        most frequent (the reference), then every level against the rest; none for other columns."""
        if not 3 <= len(self.spelling) <= MAX_LEVELS:
            return []
        reference, *others = self.spelling
        return [Contrast(self, k, reference) for k in others] + [Contrast(self, k) for k in self.spelling]


@dataclass(frozen=True, eq=False)
class Contrast:
    """One level of a column (1) against a reference level (0; other levels left out) or, where
    ``reference`` is None, against every other level (0)."""

    levels: Levels
    level: str
    reference: str | None = None

    @property
    def column(self) -> str:
        return self.levels.column

    @property
    def name(self) -> str:
        """``view=PA:AP`` or ``view=PA``, in the table's spelling."""
        spelled = self.levels.spelling
        return f"{self.column}={spelled[self.level]}" + (f":{spelled[self.reference]}" if self.reference else "")

    def values(self) -> np.ndarray:
        """1 where the row has the level, 0 at the reference (or any other level), NaN elsewhere."""
        keys = self.levels.keys
        plus = (keys == self.level).fillna(False).to_numpy(bool)
        minus = (keys == self.reference).fillna(False).to_numpy(bool) if self.reference else \
            (keys.notna().to_numpy(bool) & ~plus)
        values = np.full(len(keys), np.nan)
        values[minus], values[plus] = 0.0, 1.0
        return values

    def others(self) -> tuple[np.ndarray, list[str]]:
        """The rows of levels outside a level-against-reference contrast, and those levels as written."""
        if self.reference is None:
            return np.zeros(len(self.levels.keys), bool), []
        outside = [k for k in self.levels.spelling if k not in (self.level, self.reference)]
        return self.levels.keys.isin(outside).fillna(False).to_numpy(bool), \
            [self.levels.spelling[k] for k in outside]

    @property
    def against(self) -> str | None:
        """The level at the - end: the reference, or the one other level of a two-level column."""
        others = [k for k in self.levels.spelling if k != self.level]
        return self.reference or (others[0] if len(others) == 1 else None)

    def ends(self, words: Mapping[str, str] | None = None) -> tuple[str, str]:
        """What - and + mean, in ``words`` (a dictionary's, by lower-case level) or the table's
        spelling: ("AP", "PA"), or ("not PA", "PA") against the rest."""
        word = lambda key: (words or {}).get(key, self.levels.spelling[key])  # noqa: E731
        return (word(self.against) if self.against else f"not {word(self.level)}"), word(self.level)

    def label(self, column_label: str, words: Mapping[str, str] | None = None) -> str:
        """How the contrast is called on screen: "view: PA vs AP", "view: PA vs the rest"."""
        minus, plus = self.ends(words)
        return f"{column_label}: {plus} vs {minus if self.against else 'the rest'}"


def split_contrast(name: str, columns) -> tuple[str, str] | None:
    """``"view=PA:AP"`` -> ``("view", "PA:AP")`` where ``view`` is one of ``columns``; None where
    ``name`` names no contrast."""
    columns = {str(c) for c in columns}
    for at in [i for i, c in enumerate(str(name)) if c == "="]:
        if name[:at] in columns:
            return name[:at], name[at + 1:]
    return None


def detect_attributes(table: pd.DataFrame) -> dict[str, tuple[np.ndarray, dict | Contrast | None]]:
    """Every attribute a direction can be fitted on, with what its numbers mean: numbers and
    censored lab values (None), two text levels as 0/1 (their ``{level: code}``), and the contrasts
    of a column of 3 to :data:`MAX_LEVELS` levels (the :class:`Contrast`). Bookkeeping columns
    (ids, paths, splits) and constant columns are left out, and so, with a warning, is an
    :class:`~seegaan_explore.data.table.UnreadableColumn`."""
    out = {}
    for name in table.columns:
        if bookkeeping(name):
            continue
        try:
            values, mapping = parse_attribute(table[name])
        except UnreadableColumn as exc:  # a typo in a number column is no level, M and male no contrast
            warnings.warn(f"{exc}; the column is not offered as an attribute", stacklevel=2)
            continue
        except ValueError:
            out.update({c.name: (c.values(), c) for c in Levels.of(table[name]).offered()})
            continue
        finite = values[np.isfinite(values)]
        if len(finite) >= 2 and np.ptp(finite) > 0:
            out[str(name)] = values, mapping
    return out
