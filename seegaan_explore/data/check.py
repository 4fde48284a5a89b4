"""Check a cohort before anything is encoded or trained: what every file is, and what is imported.

:func:`check` reads a folder or a table of images as :class:`~seegaan_explore.data.cohort.Cohort`
does (the same recognition by content, filters, colour rule and framing), decodes every file it
would import, and returns an :class:`ImportReport`: one row per file (imported, skipped with the
reason, or ignored as not an image; the header's modality, body part, view position, photometric
interpretation and bits; size, aspect ratio and the share of the square that letterbox padding takes),
a summary table, and warnings where aspect ratio or padding share differ between the levels of an
attribute (under letterbox framing a model can read such an attribute from the padding).
Every cohort carries the same report (:attr:`Cohort.report`), which ``encode``, ``train`` and
``direction`` summarise in one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..fileio import atomic_write
from .formats import ImageInfo, ImportFilter
from .readers import inspect_image
from .table import UnreadableColumn, parse_attribute, parse_lab_column, text_levels

__all__ = ["COLUMNS", "STATUSES", "ImportReport", "check", "reason_category"]

#: A file is imported (usable, kept), skipped (an image, or named as one, that is unusable or refused:
#: the reason says why) or ignored (not an image: a text file, a DICOM report, a hidden file).
STATUSES = ("imported", "skipped", "ignored")

#: The columns of the per-file report, in order.
COLUMNS = ["path", "id", "status", "reason", "notes", "warnings", "format", "modality", "body_part",
           "view_position", "photometric", "bits_stored", "rows", "columns", "aspect_ratio", "padding_share"]

# An attribute's levels differ materially in padding share (or aspect ratio) when their means differ by
# at least this much AND by at least _MIN_EFFECT pooled standard deviations. Low enough to flag a small
# difference in aspect ratio, because a model trained on such films puts much of an attribute's change
# into the padded rows (the Hannover figures: docs/results/import-check.md).
_MIN_PADDING_DIFFERENCE = 0.01
_MIN_ASPECT_DIFFERENCE = 0.02
_MIN_EFFECT = 0.2
_MIN_LEVEL_SIZE = 5  # levels with fewer imported images are not compared
_MAX_LEVELS = 10  # a numeric column with more distinct values is compared by quartiles

_SIZE_BINS = [0, 64, 256, 512, 1024, 2048, np.inf]
_SIZE_LABELS = ["< 64", "64-255", "256-511", "512-1023", "1024-2047", ">= 2048"]
_ASPECT_BINS = [0, 0.7, 0.9, 1.1, 1.4, np.inf]
_ASPECT_LABELS = ["< 0.7 (tall)", "0.7-0.9 (portrait)", "0.9-1.1 (square)", "1.1-1.4 (landscape)", ">= 1.4 (wide)"]
_PADDING_BINS = [-np.inf, 0.005, 0.1, 0.2, 0.3, np.inf]
_PADDING_LABELS = ["none", "0-10%", "10-20%", "20-30%", ">= 30%"]
_LISTED = 3  # reasons spelled out in the one-line summary


def reason_category(text: str) -> str:
    """The kind of a reason, note or warning, without its particulars: ``"colour image (RGB channels
    differ by up to 200 levels ...)"`` -> ``"colour image"``, ``"modality CT (...)"`` -> ``"modality CT"``."""
    return re.split(r" \(|; |, got |: ", str(text), maxsplit=1)[0].strip()


_SEPARATOR = " | "  # between the notes (or warnings) of one file


def _joined(items: Iterable[str]) -> str:
    return _SEPARATOR.join(dict.fromkeys(i for i in items if i))


def _split(text) -> list[str]:
    return [t for t in str(text).split(_SEPARATOR) if t] if isinstance(text, str) and text else []


class ImportReport:
    """What an import did to every file: rows of :data:`COLUMNS`, plus the settings it ran under.

    Rows are added as files are inspected (:meth:`add`) and updated when a later decode skips a file or
    notes something (:meth:`update`). :attr:`frame` is the per-file table, :meth:`summary` the counts
    per status, reason, modality, body part, view, photometric interpretation, bits, size, aspect ratio
    and padding, :meth:`line` the one-line summary, :meth:`write_csv` the file.
    """

    def __init__(self, source: str = "", *, framing: str = "pad", colour: str = "refuse",
                 filters: ImportFilter | None = None):
        self.source = source
        self.framing = framing
        self.colour = colour
        self.filters = filters
        self.attribute_warnings: list[str] = []
        self.attribute_notes: list[str] = []
        self.attribute_levels = pd.DataFrame()
        self.path: Path | None = None  # where the CSV was last written
        self._rows: list[dict] = []
        self._by_path: dict[str, int] = {}

    # ---- building

    def add(self, info: ImageInfo | None, status: str, *, path: str | os.PathLike | None = None,
            image_id: str | None = None, reason: str | None = None) -> None:
        """A row for one file: its :class:`ImageInfo` (None when nothing was read, e.g. a missing file)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        path = str(path if path is not None else info.path if info is not None else "")
        row = dict.fromkeys(COLUMNS)
        row.update(path=path, id=image_id, status=status,
                   reason=reason if reason is not None else (info.reason if info is not None else None))
        if info is not None:
            row.update(notes=_joined(info.notes), warnings=_joined(info.warnings), format=info.format,
                       modality=info.modality, body_part=info.body_part, view_position=info.view_position,
                       photometric=info.photometric, bits_stored=info.bits_stored, rows=info.rows,
                       columns=info.columns, aspect_ratio=info.aspect_ratio, padding_share=info.padding_share)
        if path:
            self._by_path[path] = len(self._rows)
        self._rows.append(row)

    def update(self, path: str | os.PathLike, *, reason: str | None = None, info: ImageInfo | None = None) -> None:
        """A decode's outcome for a file already in the report: skipped with `reason`, and/or the notes,
        warnings and size of `info` (added to those already there)."""
        index = self._by_path.get(str(path))
        if index is None:
            return
        row = self._rows[index]
        if info is not None:
            row["notes"] = _joined([*_split(row["notes"]), *info.notes])
            row["warnings"] = _joined([*_split(row["warnings"]), *info.warnings])
            if info.rows and info.columns:
                row.update(rows=info.rows, columns=info.columns, aspect_ratio=info.aspect_ratio,
                           padding_share=info.padding_share)
        if reason is not None:
            row.update(status="skipped", reason=reason)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def frame(self) -> pd.DataFrame:
        """One row per file (:data:`COLUMNS`)."""
        frame = pd.DataFrame(self._rows, columns=COLUMNS)
        for column in ("bits_stored", "rows", "columns"):
            frame[column] = frame[column].astype("Int64")
        for column in ("aspect_ratio", "padding_share"):
            frame[column] = frame[column].astype(float)
        return frame

    def counts(self) -> dict[str, int]:
        """Files per status."""
        frame = self.frame
        return {status: int((frame.status == status).sum()) for status in STATUSES}

    # ---- attributes

    def compare_levels(self, table: pd.DataFrame, id_column: str, columns: Sequence[str]) -> list[str]:
        """Mean aspect ratio and padding share of the imported images per level of each of `columns` of
        `table` (joined by `id_column` to the report's ids); a warning for each column whose levels differ
        materially (means apart by at least 0.01 in padding share or 0.02 in aspect ratio and by 0.2
        pooled SDs). Numeric columns with more than 10 values are compared by quartiles; levels with
        fewer than 5 images are left out. The per-level numbers are kept in :attr:`attribute_levels`,
        the warnings in :attr:`attribute_warnings` (also a column the other commands would refuse:
        numbers with cells that are none, one level written two ways), columns that could not be
        compared in :attr:`attribute_notes`."""
        frame = self.frame
        imported = frame[frame.status == "imported"].set_index("id")
        found: list[str] = []
        levels_rows = []
        self.attribute_notes = []
        for column in columns:
            if column not in table.columns:
                raise KeyError(f"no column {column!r} to compare; columns are {list(table.columns)}")
            try:  # what every later command would refuse, said here, where the table is checked
                parse_attribute(table[column])
            except UnreadableColumn as error:
                found.append(f"{error}: the other commands refuse this column until it is corrected")
                continue
            except ValueError:
                pass  # text of three or more levels: compared level by level
            values = table.set_index(id_column)[column].reindex(imported.index)
            levels = _levels(values)
            groups = {level: imported.loc[levels == level] for level in levels.dropna().unique()}
            groups = {k: g for k, g in groups.items() if len(g) >= _MIN_LEVEL_SIZE}
            for level, group in sorted(groups.items(), key=lambda kv: str(kv[0])):
                levels_rows.append({"attribute": column, "level": str(level), "images": len(group),
                                    "mean_aspect_ratio": group.aspect_ratio.mean(),
                                    "mean_padding_share": group.padding_share.mean()})
            if len(groups) < 2:
                self.attribute_notes.append(f"{column!r} not compared: fewer than two levels with at least "
                                            f"{_MIN_LEVEL_SIZE} imported images")
                continue
            for measure, label, minimum in (("padding_share", "padding share", _MIN_PADDING_DIFFERENCE),
                                            ("aspect_ratio", "aspect ratio", _MIN_ASPECT_DIFFERENCE)):
                message = _difference(column, groups, measure, label, minimum, self.framing)
                if message:
                    found.append(message)
        self.attribute_levels = pd.DataFrame(levels_rows)
        self.attribute_warnings = found
        return found

    # ---- output

    def summary(self) -> pd.DataFrame:
        """The one table: rows ``(section, value, files, imported)``: files per status, per reason of the
        skipped and ignored, per note and warning, and, over the image files (imported or skipped), per
        modality, body part, view position, photometric interpretation, bits stored, size (short side in
        pixels), aspect ratio (width / height) and padding share."""
        frame = self.frame
        rows: list[tuple[str, str, int, int]] = []
        for status in STATUSES:
            n = int((frame.status == status).sum())
            rows.append(("status", status, n, n if status == "imported" else 0))
        for status in ("skipped", "ignored"):
            part = frame[frame.status == status]
            for category, n in part.reason.map(reason_category).value_counts().items():
                rows.append((f"{status} because", category, int(n), 0))
        images = frame[frame.status != "ignored"]
        imported = images.status == "imported"
        for column, section in (("notes", "note"), ("warnings", "warning")):
            counts: dict[str, list[int]] = {}
            for text, is_imported in zip(images[column], imported):
                for category in dict.fromkeys(map(reason_category, _split(text))):
                    counts.setdefault(category, [0, 0])
                    counts[category][0] += 1
                    counts[category][1] += int(is_imported)
            rows += [(section, k, n, m) for k, (n, m) in sorted(counts.items(), key=lambda kv: -kv[1][0])]
        short = images[["rows", "columns"]].min(axis=1).astype(float)
        binned = {
            "modality": images.modality, "body part": images.body_part, "view position": images.view_position,
            "photometric": images.photometric, "bits stored": images.bits_stored.astype("string"),
            "size (short side)": pd.cut(short, _SIZE_BINS, right=False, labels=_SIZE_LABELS),
            "aspect ratio (w/h)": pd.cut(images.aspect_ratio, _ASPECT_BINS, right=False, labels=_ASPECT_LABELS),
            "padding share": pd.cut(images.padding_share, _PADDING_BINS, right=False, labels=_PADDING_LABELS),
        }
        header_only = {"modality", "body part", "view position"}
        for section, values in binned.items():
            values = values.astype(object).where(values.notna(), "(none)").astype(str)
            if section in header_only:
                values = values.where(images.format == "dicom", "(no DICOM header)")
            values = values.where(images.format.notna() | images.rows.notna(), "(not read)")
            table = pd.DataFrame({"value": values, "imported": imported})
            order = list(values.value_counts().index)
            if isinstance(binned[section].dtype, pd.CategoricalDtype):
                order = [c for c in [*binned[section].cat.categories, "(none)", "(not read)"] if c in set(values)]
            for value in order:
                chosen = table[table.value == value]
                rows.append((section, value, len(chosen), int(chosen.imported.sum())))
        out = pd.DataFrame(rows, columns=["section", "value", "files", "imported"])
        if not self.attribute_levels.empty:
            levels = self.attribute_levels
            extra = pd.DataFrame({
                "section": "by " + levels.attribute, "value": levels.level, "files": levels.images,
                "imported": levels.images, "mean_aspect_ratio": levels.mean_aspect_ratio.round(3),
                "mean_padding_share": levels.mean_padding_share.round(3)})
            out = pd.concat([out, extra], ignore_index=True)
        return out

    def table(self) -> str:
        """:meth:`summary` as aligned text, then the warnings about attributes."""
        summary = self.summary()
        summary["section"] = summary.section.where(summary.section != summary.section.shift(), "")
        columns = ["section", "value", "files", "imported"]
        for column in ("mean_aspect_ratio", "mean_padding_share"):
            if column in summary:
                summary[column] = summary[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
                columns.append(column)
        cells = [[str(c).replace("_", " ") for c in columns]] + summary[columns].astype(str).values.tolist()
        widths = [max(len(row[k]) for row in cells) for k in range(len(columns))]
        text = "\n".join("  ".join(cell.ljust(w) if k < 2 else cell.rjust(w)
                                   for k, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in cells)
        lines = [f"{self.source}: framing {self.framing}, colour {self.colour}"
                 + (f", {self.filters.describe()}" if self.filters else ", no header filter"), text]
        lines += [f"note: {n}" for n in self.attribute_notes]
        lines += [f"warning: {w}" for w in self.attribute_warnings]
        return "\n".join(lines)

    def line(self) -> str:
        """``imported N, skipped M (k reason, ...), ignored K[; report at PATH]``."""
        frame = self.frame
        counts = self.counts()
        parts = [f"imported {counts['imported']}"]
        for status in ("skipped", "ignored"):
            reasons = frame.loc[frame.status == status, "reason"].map(reason_category).value_counts()
            listed = ", ".join(f"{n} {r}" for r, n in reasons.iloc[:_LISTED].items())
            if len(reasons) > _LISTED:
                listed += f", {int(reasons.iloc[_LISTED:].sum())} other"
            parts.append(f"{status} {counts[status]}" + (f" ({listed})" if listed else ""))
        warned = int((frame.warnings.fillna("") != "").sum())
        if warned:
            parts.append(f"{warned} with warnings")
        text = ", ".join(parts)
        return text + (f"; report at {self.path}" if self.path else "")

    def write_csv(self, path: str | os.PathLike) -> Path:
        """The per-file report as CSV, written atomically (a reader never sees half a file)."""
        path = Path(path)
        frame = self.frame
        frame["aspect_ratio"] = frame.aspect_ratio.round(4)
        frame["padding_share"] = frame.padding_share.round(4)
        with atomic_write(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        self.path = path
        return path


def _levels(values: pd.Series) -> pd.Series:
    """A column's levels by the rules attributes are parsed with (numbers and censored values as
    numbers, text stripped and case-insensitive, each level as the table writes it most often), or
    its quartiles when numeric with more than 10 distinct values."""
    try:
        numeric = parse_lab_column(values)["value"]
    except ValueError:
        keys = text_levels(values)
        written = values.astype("string").str.strip()
        spelling = {k: written[keys == k].mode().iloc[0] for k in keys.dropna().unique()}
        return keys.map(spelling).astype(object)
    if numeric.nunique() > _MAX_LEVELS:
        quartiles = pd.qcut(numeric, 4, duplicates="drop")
        return quartiles.astype(str).where(quartiles.notna())
    return numeric.map(lambda v: f"{v:g}", na_action="ignore").astype(object)


def _difference(column: str, groups: dict, measure: str, label: str, minimum: float, framing: str) -> str | None:
    means = {level: float(g[measure].mean()) for level, g in groups.items()}
    low, high = min(means, key=means.get), max(means, key=means.get)
    difference = means[high] - means[low]
    pooled = np.sqrt(np.mean([float(g[measure].var(ddof=0)) for g in groups.values()]))
    effect = difference / pooled if pooled > 0 else np.inf
    if difference < minimum or effect < _MIN_EFFECT:
        return None
    listed = ", ".join(f"{level} {means[level]:.3f} (n={len(groups[level])})"
                       for level in sorted(groups, key=lambda k: str(k)))
    consequence = (f"under framing pad a model can read {column!r} from the padding (framing crop has none, "
                   "and cuts more of the wider images' sides)" if framing == "pad" else
                   "under framing crop the wider images lose more of their sides")
    return (f"{label} differs between the levels of {column!r}: {listed}; difference {difference:.3f} "
            f"({effect:.1f} SD): {consequence}")


def check(data: str | os.PathLike | pd.DataFrame, image_root: str | os.PathLike | None = None, *,
          id_column: str | None = None, path_column: str | None = None, patient_column: str | None = None,
          filters: ImportFilter | None = None, framing: str = "pad", colour: str = "refuse",
          attributes: Sequence[str] = (), decode: bool = True, recursive: bool = True, workers: int = 1,
          progress: bool = True, report: str | os.PathLike | None = None) -> ImportReport:
    """Check a folder or a table of images as an import would take them, and report on every file.

    `data`: an image folder (every file under it, recognised by content) or a table (CSV/TSV/Parquet/
    Excel path or DataFrame) read as :meth:`~seegaan_explore.data.cohort.Cohort.from_table` does, with
    `image_root`, `id_column`, `path_column` and `patient_column`. `filters` (default
    :class:`~seegaan_explore.data.formats.ImportFilter`: CR/DX chest) skips what is not a chest
    radiograph; `colour` and `framing` as for the cohort. ``decode=True`` (default) decodes every file the
    import keeps, so that what only the pixels tell (corrupt streams, constant images, near-grey colour,
    a header window that destroys the image) is in the report too, and byte-identical copies of a file
    are warned about. `attributes`: table columns whose levels are compared in aspect ratio and
    padding share. `report`: a CSV path to write the per-file report to. Never raises for a bad
    file; raises for a table it cannot use (no such column, duplicate ids), as the import would.
    """
    from .cohort import Cohort, CohortWarning
    from .scan import imap

    filters = ImportFilter() if filters is None else filters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CohortWarning)  # the report says it all
        if not isinstance(data, pd.DataFrame) and Path(data).is_dir():
            if attributes:
                raise ValueError("attributes need a table (a folder of images has no columns)")
            cohort = Cohort.from_folder(data, recursive=recursive, progress=progress, workers=workers,
                                        filters=filters, colour=colour, framing=framing, allow_empty=True)
        else:
            cohort = Cohort.from_table(data, image_root, id_column=id_column, path_column=path_column,
                                       patient_column=patient_column, filters=filters, colour=colour,
                                       framing=framing, allow_empty=True)
    result = cohort.report
    if decode and len(cohort):
        infos = imap(_decode_info, [(p, colour, filters) for p in cohort.paths], workers=workers,
                     progress=progress, desc="Decoding images")
        usable = []
        for path, info in zip(cohort.paths, infos):
            result.update(path, reason=info.reason, info=info)
            if info.reason is None:
                usable.append(path)
        _mark_copies(result, usable)
    if attributes:
        table = cohort.table
        result.compare_levels(table, cohort.id_column, attributes)
    if report is not None:
        result.write_csv(report)
    return result


def _mark_copies(result: ImportReport, paths: Sequence[Path]) -> None:
    """A warning on each of ``paths`` whose bytes are those of an earlier one (a ``.dcm.bak`` beside its
    ``.dcm``, an export made twice): the import takes each as an exam of its own."""
    first: dict[bytes, Path] = {}
    for path in paths:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        original = first.setdefault(digest.digest(), path)
        if original != path:
            result.update(path, info=ImageInfo(path, warnings=[
                f"a byte-identical copy of another file ({original}): imported as an exam of its own, so the "
                "same film can sit on both sides of a train/validation split"]))


def _decode_info(path: Path, colour: str, filters: ImportFilter) -> ImageInfo:
    """What :func:`check`'s worker processes run (this module imports no torch)."""
    return inspect_image(path, level="decode", colour=colour, filters=filters)
