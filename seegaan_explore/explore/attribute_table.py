"""A table's columns as attributes, in a clinician's words.

:class:`AttributeTable` is the one place that knows which columns of a cohort's table are
attributes (numbers, two text levels, the contrasts of a categorical column; see
:mod:`~seegaan_explore.explore.attributes`), what they are called and what their values mean in
words (a data dictionary's, where one is given), which columns can hold an attribute fixed, and
which rows a fit may use and which it leaves out. :class:`~seegaan_explore.explore.study.Study`
is one, with the cohort's latents and the models that read them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.cohort import CohortWarning
from ..data.table import censoring, parse_attribute, parse_lab_column
from .attributes import MAX_LEVELS, Contrast, Levels, bookkeeping, detect_attributes, on_scale, split_contrast
from .dictionary import AttributeInfo
from .rows import account, select

__all__ = ["AttributeTable"]


class AttributeTable:
    """The attributes of ``table``. ``attributes`` restricts those offered (a categorical column's
    name offers its contrasts); a ``dictionary`` (:mod:`~seegaan_explore.explore.dictionary`) offers
    the columns it describes, in its words; ``extra`` are attributes the table does not hold (the
    CNN's prediction), which a subclass answers for."""

    def __init__(self, table: pd.DataFrame, *, attributes: Sequence[str] | None = None,
                 dictionary: Mapping[str, AttributeInfo] | None = None, extra: Sequence[str] = ()):
        self.table = table.reset_index(drop=True)
        found = detect_attributes(self.table)
        self.dictionary = dict(dictionary or {})
        self._columns = {name: values for name, (values, _) in found.items()}
        self.encodings = {name: meaning for name, (_, meaning) in found.items() if isinstance(meaning, dict)}
        self._censored_by_dictionary: set[str] = set()  # every censored value taken at the dictionary's range
        self._floored = {name: self._floor(name) for name in found if name in self.dictionary}
        self.contrasts = {name: meaning for name, (_, meaning) in found.items() if isinstance(meaning, Contrast)}
        self._levels = {c.column: c.levels for c in self.contrasts.values()}
        self._said: set[str] = set()
        if attributes is None and dictionary is not None:
            attributes = [c for c in self.dictionary if c in found or c in self._levels]
        # the columns whose contrasts may be named (column=LEVEL[:REFERENCE]); None: any column's
        self._contrasted = None if attributes is None else \
            {(split_contrast(a, self.table.columns) or (a,))[0] for a in attributes}
        self.attributes = list(found) if attributes is None else [
            name for a in attributes for name in self._chosen(a, found)]
        self.attributes += list(extra)
        if not self.attributes:
            raise ValueError(f"the table has no numeric, two-valued or categorical column to explore: "
                             f"{list(self.table.columns)}")

    def _floor(self, name: str) -> str | None:
        """Bound a column by the dictionary's plausible range, and say so: a censored value without a
        limit of its own (-inf, inf: below or above what the lab measures) is taken at ``low`` or
        ``high``; on a log scale, a value below ``low`` (a CRP of 0, which no log scale shows) at ``low``."""
        info, values = self.dictionary[name], self._columns[name].copy()
        said = []
        if (info.low is not None or info.high is not None) and name in self.table.columns \
                and name not in self.encodings:  # (parsed again only where a range can take a censored value)
            censor = parse_lab_column(self.table[name])["censor"].to_numpy()
            filled = 0
            for sign, limit, words in (("<", info.low, "lowest"), (">", info.high, "highest")):
                open_ended = (censor == sign) & np.isnan(values)
                if limit is not None and open_ended.any():
                    values[open_ended] = limit
                    filled += int(open_ended.sum())
                    said.append(f"{int(open_ended.sum())} of {len(values)} values censored without a limit ({sign}) "
                                f"are taken at {info.format(limit)}, the {words} plausible value in the data "
                                "dictionary")
            if filled and filled == int((censor != "").sum()):
                self._censored_by_dictionary.add(name)  # said here; censoring()'s note would say "at its limit"
        below = values < info.low if info.log and info.low is not None else np.zeros(len(values), bool)
        if below.any():
            smallest = float(values[below].min())
            values = np.where(below, info.low, values)
            said.append(f"{int(below.sum())} of {len(values)} values lie below {info.format(info.low)}, the lowest "
                        f"plausible value in the data dictionary (the smallest {smallest:g}), and are taken at it")
        self._columns[name] = values
        return f"{name}: {'; '.join(said)}" if said else None

    def _chosen(self, name: str, found) -> list[str]:
        """The attributes one entry of ``attributes=`` offers: itself, or a categorical column's contrasts."""
        if name in self._levels:
            return [n for n, c in self.contrasts.items() if c.column == name]
        if name in found:
            return [name]
        if split_contrast(name, self.table.columns):
            return [self._contrast(name)]
        raise ValueError(f"attribute {name!r} is not a numeric, two-valued or categorical column of the table, nor "
                         f"a contrast of one; usable: {', '.join(found)}")

    # ------------------------------------------------------------------ what the columns mean

    def info(self, name: str) -> AttributeInfo:
        """What the attribute means (the dictionary's entry, or what the table itself says)."""
        if name in self.dictionary:
            return self.dictionary[name]
        if name in self.contrasts:
            return AttributeInfo(name, self.label(name))
        return AttributeInfo(name)

    def label(self, name: str) -> str:
        """How an attribute is called on screen; a contrast as "view: PA vs AP"."""
        if name in self.contrasts:
            column = self.info(self.contrasts[name].column)
            return self.contrasts[name].label(column.name, column.levels)
        return self.info(name).name

    def levels(self, name: str) -> dict[float, str] | None:
        """Words for each value of a two-level attribute (0 -> "female", 1 -> "male"); None otherwise."""
        if not self.two_level(name):
            return None
        if name in self.contrasts:
            minus, plus = self.contrasts[name].ends(self.info(self.contrasts[name].column).levels)
            return {0.0: minus, 1.0: plus}
        words = self.info(name).levels
        if name in self.encodings:  # two text levels, in the dictionary's words or as the table spells them
            spelled = self._levels_of(name).spelling
            return {float(code): words.get(text, spelled.get(text, text))
                    for text, code in self.encodings[name].items()}
        values = np.unique(self._columns[name][np.isfinite(self._columns[name])])
        spelled = {0.0: ("0", "false"), 1.0: ("1", "true")}
        return {float(v): next((words[k] for k in spelled.get(float(v), ()) if k in words), f"{v:g}") for v in values}

    def format(self, name: str, value: float) -> str:
        """A value of the attribute as a clinician reads it: "17,200 pg/mL", "male"; a two-level
        attribute between its levels as a share of the way ("40% towards male"), at or past one as it."""
        levels = self.levels(name)
        if levels is None or value is None or not np.isfinite(value):
            return self.info(name).format(value)
        low, high = sorted(levels)
        share = round(100 * (value - low) / (high - low))
        if share <= 0 or share >= 100:
            return levels[low if share <= 0 else high]
        return f"{share}% towards {levels[high]}"

    def ends(self, name: str, log: bool = False) -> tuple[str, str]:
        """The two ends of the attribute's direction in words: ("female", "male"), ("lower NT-proBNP",
        "higher NT-proBNP"); what - and + mean."""
        levels = self.levels(name)
        if levels is not None:
            low, high = sorted(levels)
            return levels[low], levels[high]
        label = self.label(name)
        return f"lower {label}", f"higher {label}"

    def check(self, name: str) -> str:
        """``name`` if it is an attribute of this study, a contrast (``view=pa:ap``) in the table's
        spelling (``view=PA:AP``); else an error that says why not."""
        if name in self.attributes:
            if name not in self._said:  # what was done with censored lab values, once, when first used
                self._said.add(name)
                numeric = name in self.table.columns and name not in self.encodings
                notes = [censoring(self.table[name], self._columns[name])
                         if numeric and name not in self._censored_by_dictionary else None,
                         self._floored.get(name)]
                for note in filter(None, notes):
                    warnings.warn(note, CohortWarning, stacklevel=2)
            return name
        if name in self.contrasts or split_contrast(name, self.table.columns):
            return self._contrast(name)
        if name in self.table.columns:
            raise ValueError(f"column {name!r} is not an attribute: {self._why_not(name)}")
        raise ValueError(f"unknown attribute {name!r}; choose one of {', '.join(self.attributes)}")

    def _contrast(self, name: str) -> str:
        """A contrast's name in the table's spelling, its values kept from the first time it is named."""
        column, text = (self.contrasts[name].column, None) if name in self.contrasts else \
            split_contrast(name, self.table.columns)
        if bookkeeping(column) or (self._contrasted is not None and column not in self._contrasted):
            raise ValueError(f"column {column!r} is not an attribute: {self._why_not(column)}")
        if text is None:
            return name
        contrast = self._levels_of(column).contrast(text)
        if contrast.name not in self.contrasts:
            self._columns[contrast.name] = contrast.values()
            self.contrasts[contrast.name] = contrast
        return contrast.name

    def _levels_of(self, column: str) -> Levels:
        if column not in self._levels:
            self._levels[column] = Levels.of(self.table[column])
        return self._levels[column]

    def _why_not(self, name: str) -> str:
        if self.dictionary and name not in self.dictionary:
            return "the data dictionary does not describe it"
        if bookkeeping(name):
            return "it is bookkeeping (an id, a path, an index or a data split)"
        if self._contrasted is not None and name not in self._contrasted:
            return "it is not among the attributes this study was given"
        try:
            values, _ = parse_attribute(self.table[name])
        except ValueError as error:
            levels = Levels.of(self.table[name])
            if not 3 <= len(levels.spelling) <= MAX_LEVELS:
                return str(error)
            level, reference = [levels.spelling[k] for k in list(levels.spelling)[1::-1]]
            return (f"it has {len(levels.spelling)} levels ({levels.listing()}); name one against the rest "
                    f"({name}={level}) or against a reference level ({name}={level}:{reference})")
        finite = values[np.isfinite(values)]
        if len(finite) < 2:
            return f"only {len(finite)} row(s) have a value"
        return f"it is constant ({finite[0]:g}), so it defines no direction"

    def values(self, name: str) -> np.ndarray:
        """The attribute for every cohort row in its own units (NaN where unknown; a contrast 1/0,
        NaN also on rows of levels it leaves out)."""
        return self._columns[self.check(name)]

    def scaled(self, name: str, log: bool) -> np.ndarray:
        return on_scale(self.values(name), log, name)

    def sd(self, name: str, log: bool) -> float:
        """One SD of the attribute on the fitted scale: the unit of steps in SDs."""
        return float(np.nanstd(self.scaled(name, log)))

    def two_level(self, name: str) -> bool:
        """Whether the attribute takes two values (sex, AP/PA view): one a patient can be matched on."""
        if name not in self._columns:  # e.g. the CNN's prediction: continuous, and costly to compute
            return False
        values = self._columns[name]
        return np.unique(values[np.isfinite(values)]).size == 2

    def value_label(self, name: str, row: int) -> str:
        """A patient's value of ``name`` in words: a level in the dictionary's words ("PA (standing)")
        or as the table writes it ("PA"), or a number."""
        if name in self.categorical():
            text = str(self.table[name].iloc[row]).strip()
            return self.info(name).levels.get(text.lower(), text)
        if self.two_level(name):
            return self.format(name, float(self.values(name)[row]))
        return f"{float(self.values(name)[row]):g}"

    # ------------------------------------------------------------------ holding columns, choosing rows

    def subset(self, rows) -> tuple[np.ndarray | None, str | None]:
        """The rows a direction is fitted on, and they in words: conditions (``"split=train"``, or a
        list that must all hold; :func:`~seegaan_explore.explore.rows.select`), a boolean mask or
        row positions; None for every row."""
        if rows is None:
            return None, None
        if isinstance(rows, str) or (isinstance(rows, Sequence) and all(isinstance(r, str) for r in rows) and rows):
            return select(self.table, rows)
        rows, mask = np.asarray(rows), np.zeros(len(self.table), bool)
        if rows.dtype == bool and rows.shape != mask.shape:
            raise ValueError(f"a mask of rows needs one entry per cohort row ({len(mask)}), not shape {rows.shape}")
        try:
            mask[rows if rows.dtype == bool else rows.astype(np.int64)] = True
        except (IndexError, ValueError) as error:
            raise ValueError(f"rows must be a mask or positions among the {len(mask)} cohort rows ({error})") from None
        if not mask.any():
            raise ValueError("no row chosen to fit on")
        return mask, f"{int(mask.sum())} of {len(mask)} rows"

    def column_of(self, name: str) -> str:
        """The table column an attribute comes from: a contrast's column, else the name itself."""
        return self.contrasts[name].column if name in self.contrasts else name

    def holdable(self, name: str, attribute: str) -> str:
        """``name`` as a column to hold for ``attribute``: another attribute, or a categorical column."""
        try:
            held = name if name in self.categorical() else self.check(name)
        except ValueError:
            held = None
        if held is not None and self.column_of(held) == self.column_of(attribute):
            raise ValueError(f"{name!r} cannot be held: " + ("it is the attribute itself" if held == attribute else
                             f"{self.column_of(attribute)!r} is the attribute's own column"))
        if held is None:
            others = ", ".join(x for x in self.attributes + list(self.categorical())
                               if self.column_of(x) != self.column_of(attribute))
            raise ValueError(f"{name!r} cannot be held: it must be another attribute or a categorical column, one "
                             f"of {others}")
        return held

    def categorical(self) -> dict[str, Levels]:
        """The columns of 3 to MAX_LEVELS levels, which can be held by name (by indicators, or by
        matching) besides :attr:`attributes`: what a confounder picker offers with them."""
        return {c: levels for c, levels in self._levels.items() if 3 <= len(levels.spelling) <= MAX_LEVELS
                and (self._contrasted is None or c in self._contrasted)}

    def held(self, name: str, terms: bool = False) -> np.ndarray:
        """What holds ``name``: its values, or for a categorical column its level codes (to match on)
        or, with ``terms``, one indicator column per level but the most frequent."""
        if name in self.categorical():
            return self._levels[name].indicators() if terms else self._levels[name].codes()
        return self.values(name)

    def left_out(self, attribute: str, confounders: Sequence[str] = (), subset=None) -> list[dict]:
        """The rows a fit of ``attribute`` holding ``confounders`` leaves out of ``subset`` (a mask;
        None: every row), column by column (:func:`~seegaan_explore.explore.rows.account`): without a
        value of the attribute, of levels a contrast leaves out, without a value of a confounder."""
        column = self.column_of(attribute)
        others, levels = self.contrasts[attribute].others() if attribute in self.contrasts else \
            (np.zeros(len(self.table), bool), [])
        missing = ~np.isfinite(self.values(attribute)) & ~others
        steps = [(column, f"without a value of {column}", missing),
                 (column, f"of other levels of {column} ({', '.join(levels)})", others)]
        for c in confounders:
            held = self.held(c, terms=True).reshape(len(self.table), -1)
            steps.append((c, f"without a value of {c}", ~np.isfinite(held).all(axis=1)))
        return account(np.ones(len(self.table), bool) if subset is None else subset, steps)
