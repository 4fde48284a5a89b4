"""Cohorts of chest radiographs: a table of images with per-image attributes, split by patient.

A :class:`Cohort` pairs a table (one row per image: id, file, patient,
attributes such as sex or lab values) with the image files.  Nothing is dropped
silently: missing or unreadable files are named in a warning and kept in
:attr:`Cohort.problems`.  :meth:`Cohort.images` decodes every file once and keeps
the result in a memory-mapped cache (:mod:`~seegaan_explore.data.image_cache`) so that later
runs start instantly. Reading the table is :mod:`~seegaan_explore.data.table`'s, finding and
checking files :mod:`~seegaan_explore.data.scan`'s; this module joins them into the rows a model
is trained on and explored with. It is a little over 400 lines because it is one class whose two
constructors must drop and report rows by the same rules.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .check import ImportReport
from .formats import IMAGE_SUFFIXES, ImageInfo, ImportFilter
from .image_cache import cached_images
from .images import FRAMINGS
from .readers import COLOUR_MODES, inspect_image
from .scan import find_by_id, relative_path, scan_images, unique_ids
from .table import (
    ID_CANDIDATES,
    PATH_CANDIDATES,
    PATIENT_CANDIDATES,
    censoring,
    listing,
    parse_attribute,
    pick_column,
    read_table,
)

__all__ = ["Cohort", "CohortDataset", "CohortWarning"]


def _as_on_disk(path: Path) -> Path:
    """`path`, or where it is not a file, the same path as another system wrote it that is one: a
    Windows export's backslashes, or a macOS archive's decomposed accents (Unicode NFD) or ours. A
    path found in no form is returned with this system's separators, as messages then name it."""
    if path.is_file():
        return path
    text = str(path).replace("\\", "/") if os.sep == "/" else str(path)
    for form in ("NFC", "NFD"):
        candidate = Path(unicodedata.normalize(form, text))
        if candidate.is_file():
            return candidate
    return Path(text)


class CohortWarning(UserWarning):
    """Rows were dropped from a cohort (missing or unreadable image files)."""


def _check_import_options(framing: str, colour: str) -> None:
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")


class Cohort:
    """A table of images (one row each) with an id, a file path, optionally a patient, and attributes.

    Build with :meth:`from_table` or :meth:`from_folder`.  ``table`` keeps the
    original columns plus the resolved file paths; rows whose image is missing,
    unreadable or not a chest radiograph (see :class:`~seegaan_explore.data.images.ImportFilter`)
    are removed with a :class:`CohortWarning` and recorded in ``problems`` (a list of
    ``(id, path, reason)``) and in ``report`` (an :class:`~seegaan_explore.data.check.ImportReport`
    of every file: imported, skipped or ignored, shared with the cohort's subsets).
    ``framing`` and ``colour`` are how :meth:`images` frames and reads the images by default.
    ``id_label``: the column the user wrote that the ids come from (the path column where the
    ids are made from paths), for messages.
    """

    def __init__(self, table: pd.DataFrame, *, id_column: str, path_column: str,
                 patient_column: str | None = None, problems: list[tuple[str, str, str]] | None = None,
                 framing: str = "pad", colour: str = "refuse", report: ImportReport | None = None,
                 id_label: str | None = None):
        _check_import_options(framing, colour)
        self.table = table.reset_index(drop=True)
        self.id_column = id_column
        self.path_column = path_column
        self.patient_column = patient_column
        self.problems = list(problems or [])
        self.encodings: dict[str, dict[str, int]] = {}
        self.framing = framing
        self.colour = colour
        self.id_label = id_label or id_column
        if report is None:
            report = ImportReport("<table>", framing=framing, colour=colour)
            for image_id, path in zip(self.table[id_column], self.table[path_column]):
                report.add(None, "imported", path=path, image_id=image_id)
        self.report = report

    # ---- construction

    @classmethod
    def from_table(cls, table: str | os.PathLike | pd.DataFrame, image_root: str | os.PathLike | None = None,
                   *, id_column: str | None = None, path_column: str | None = None,
                   patient_column: str | None = None, filters: ImportFilter | None = ImportFilter(),
                   colour: str = "refuse", framing: str = "pad", allow_empty: bool = False) -> Cohort:
        """Cohort from a CSV/TSV/Parquet/Excel file or a DataFrame.

        Each row names its image either by a path column (relative paths are
        resolved against `image_root`, else the table's folder) or by an id
        column, in which case the image is the file under `image_root` (default:
        the table's folder, searched recursively) whose name without suffix, or
        relative path without suffix, equals the id (files are found by content:
        ``.IMA``, ``.tif`` and extensionless DICOMs too).  Columns are found by
        common names (``image_id``/``id``, ``path``/``file``, ``patient_id``)
        unless given.  With only a path column the ids are the paths relative to
        `image_root` without their suffix (with it where two files differ only by
        suffix).  Duplicate or empty ids, ambiguous matches and unknown columns
        raise; rows whose file does not exist, is no usable image by its header, or
        whose DICOM header is not a chest radiograph's (`filters`, default
        :class:`~seegaan_explore.data.images.ImportFilter`; None keeps all) are
        dropped with a warning and reported in :attr:`report`. Pixels are decoded
        later, by :meth:`images`, with `colour` and `framing`. ``allow_empty``
        returns a cohort without rows instead of raising when nothing is usable.
        """
        _check_import_options(framing, colour)
        if isinstance(table, pd.DataFrame):
            source, base = "<DataFrame>", Path.cwd()
            frame = table.copy()
        else:
            source, base = str(table), Path(table).parent

            def string_columns(columns: list[str]) -> list[str]:
                picks = [pick_column(columns, id_column, ID_CANDIDATES, "id", source),
                         pick_column(columns, path_column, PATH_CANDIDATES, "path", source),
                         pick_column(columns, patient_column, PATIENT_CANDIDATES, "patient", source)]
                return [c for c in picks if c is not None]
            frame = read_table(table, string_columns)
        if frame.empty:
            raise ValueError(f"{source}: the table has no rows")
        columns = list(frame.columns)
        id_col = pick_column(columns, id_column, ID_CANDIDATES, "id", source)
        path_col = pick_column(columns, path_column, PATH_CANDIDATES, "path", source)
        patient_col = pick_column(columns, patient_column, PATIENT_CANDIDATES, "patient", source)
        if id_col is None and path_col is None:
            raise KeyError(f"{source}: no id column ({'/'.join(ID_CANDIDATES)}) or path column "
                           f"({'/'.join(PATH_CANDIDATES)}) found in {columns}; pass id_column= or path_column=")
        if image_root is None and path_col is None and isinstance(table, pd.DataFrame):
            raise ValueError("images are named by id: pass image_root= to say where to find them")
        root = Path(image_root) if image_root is not None else base
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")

        resolved: list[Path | None]
        id_label = id_col
        if path_col is not None:
            paths = frame[path_col]
            if paths.isna().any():
                rows = list(np.flatnonzero(paths.isna()))
                raise ValueError(f"{source}: empty {path_col!r} in row(s) {listing(rows)} (0-based)")
            written = map(Path, paths.astype(str).str.strip())
            resolved = [_as_on_disk(p if p.is_absolute() else root / p) for p in written]
            if id_col is None:  # ids from the paths: the user's words are the path column's
                id_col, id_label = ("image_id" if "image_id" not in columns else "_image_id"), path_col
                relative = [relative_path(p, root) for p in resolved]
                twice = [p for p, n in Counter(relative).items() if n > 1]
                if twice:
                    raise ValueError(f"{source}: the same file in several rows of {path_col!r}: {listing(twice)}")
                frame[id_col] = unique_ids(relative)
        frame[id_col] = cls._check_ids(frame[id_col], source, id_label)
        if path_col is None:
            path_col = "path" if "path" not in columns else "_path"
            resolved = find_by_id(frame[id_col], root, source, id_label)
        if patient_col is not None:
            frame[patient_col] = frame[patient_col].astype("string").astype(object)
        frame[path_col] = [str(p) if p is not None else "" for p in resolved]

        report = ImportReport(source, framing=framing, colour=colour, filters=filters)
        exists = np.array([p is not None and p.is_file() for p in resolved])
        missing = [(i, p, "image file not found")
                   for i, p, ok in zip(frame[id_col], frame[path_col], exists) if not ok]
        if not exists.any() and not allow_empty:
            example = missing[0][1] or f"{root}/{missing[0][0]}.<{'|'.join(s[1:] for s in IMAGE_SUFFIXES)}>"
            raise FileNotFoundError(f"{source}: none of the {len(frame)} images were found (e.g. {example}); "
                                    f"check image_root")
        usable = exists.copy()
        unusable = []
        for k, (image_id, path) in enumerate(zip(frame[id_col], frame[path_col])):
            if not exists[k]:
                report.add(None, "skipped", path=path, image_id=image_id, reason="image file not found")
                continue
            info = inspect_image(path, level="header", colour=colour, filters=filters)
            report.add(info, "imported" if info.ok else "skipped", image_id=image_id)
            if not info.ok:
                usable[k] = False
                unusable.append((image_id, path, info.reason))
        if missing:
            warnings.warn(f"{source}: dropped {len(missing)} row(s) whose image file is missing: "
                          f"{listing([f'{i} ({p})' if p else i for i, p, _ in missing])}",
                          CohortWarning, stacklevel=2)
        if unusable:
            warnings.warn(f"{source}: dropped {len(unusable)} row(s) whose image is unusable or not a chest "
                          f"radiograph: {listing([f'{i} ({r})' for i, _, r in unusable])}",
                          CohortWarning, stacklevel=2)
        if exists.any() and not usable.any() and not allow_empty:
            raise ValueError(f"{source}: none of the {len(frame)} images can be imported ({report.line()}); "
                             f"e.g. {unusable[0][1]}: {unusable[0][2]}")
        return cls(frame[usable], id_column=id_col, path_column=path_col, patient_column=patient_col,
                   problems=missing + unusable, framing=framing, colour=colour, report=report, id_label=id_label)

    @staticmethod
    def _check_ids(ids: pd.Series, source: str, column: str) -> pd.Series:
        if ids.isna().any():
            rows = list(np.flatnonzero(ids.isna()))
            raise ValueError(f"{source}: empty {column!r} in row(s) {listing(rows)} (0-based)")
        ids = ids.astype(str).str.strip()
        duplicated = ids[ids.duplicated(keep=False)]
        if not duplicated.empty:
            raise ValueError(f"{source}: duplicate {column!r} value(s): {listing(list(dict.fromkeys(duplicated)))}")
        return ids

    @classmethod
    def from_folder(cls, root: str | os.PathLike, *, recursive: bool = True, progress: bool = True,
                    workers: int = 1, filters: ImportFilter | None = ImportFilter(), colour: str = "refuse",
                    framing: str = "pad", allow_empty: bool = False) -> Cohort:
        """Cohort of all usable images under `root` (no attributes).

        Every file is looked at and recognised by content (DICOM with any or no
        suffix, PNG, JPEG, TIFF, NPY); ids are the paths relative to `root`
        without suffix (the file stem for a flat folder; with the suffix where two
        files differ only by it).  Files are checked with :func:`~seegaan_explore.data.scan.scan_images`
        (with `filters` and `colour`); unusable ones are left out with a warning
        and listed in ``problems``; every file, ignored ones too, is in
        :attr:`report`. ``allow_empty`` returns a cohort without rows instead of
        raising when nothing is usable.
        """
        _check_import_options(framing, colour)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        scan = scan_images(root, recursive=recursive, progress=progress, workers=workers, filters=filters,
                           colour=colour)
        if not scan.ok and not allow_empty:
            raise FileNotFoundError(f"no usable images under {root}:\n{scan.summary()}")
        ids = unique_ids([p.relative_to(root) for p in scan.ok])
        bad_ids = unique_ids([p.relative_to(root) for p, _ in scan.bad])
        problems = [(i, str(p), r) for i, (p, r) in zip(bad_ids, scan.bad)]
        report = ImportReport(str(root), framing=framing, colour=colour, filters=filters)
        for path, image_id in zip(scan.ok, ids):
            report.add(scan.infos[path], "imported", image_id=image_id)
        for image_id, path, reason in problems:
            report.add(scan.infos.get(Path(path)), "skipped", path=path, image_id=image_id, reason=reason)
        for path, reason in scan.ignored:
            report.add(scan.infos.get(path), "ignored", path=path, reason=reason)
        if problems:
            listed = [f"{p.relative_to(root).as_posix()}: {r}" for p, r in scan.bad]
            warnings.warn(f"{root}: left out {len(problems)} unusable file(s): {listing(listed)}",
                          CohortWarning, stacklevel=2)
        table = pd.DataFrame({"image_id": ids, "path": [str(p) for p in scan.ok]}, dtype=object)
        return cls(table, id_column="image_id", path_column="path", problems=problems, framing=framing,
                   colour=colour, report=report)

    # ---- access

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        patients = self.table[self.patient_column].nunique() if self.patient_column else "?"
        return f"Cohort({len(self)} images, {patients} patients, attributes={self.attributes})"

    @property
    def ids(self) -> list[str]:
        return self.table[self.id_column].tolist()

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.table[self.path_column]]

    @property
    def attributes(self) -> list[str]:
        """Columns other than the id, path and patient columns."""
        reserved = {self.id_column, self.path_column, self.patient_column}
        return [c for c in self.table.columns if c not in reserved]

    def attribute(self, name: str) -> pd.Series:
        """Attribute `name` as floats indexed by image id.

        Numbers and censored lab values (``"<5"``, ``"-inf"``; see
        :func:`~seegaan_explore.data.table.parse_lab_column`) become their value (NaN when only "below/above
        the detection limit" is known).  Columns with exactly two distinct text
        values (case-insensitive; e.g. sex ``f``/``m``) become 0/1 in sorted order;
        the mapping is stored in ``self.encodings[name]`` and ``series.attrs``.
        Other text columns raise ``ValueError``.
        """
        if name not in self.attributes:
            raise KeyError(f"no attribute {name!r}; attributes are {self.attributes}")
        values, mapping = parse_attribute(self.table[name])
        note = censoring(self.table[name], values) if mapping is None else None
        if note:
            warnings.warn(note, CohortWarning, stacklevel=2)
        values = pd.Series(values, name=name)
        if mapping:
            self.encodings[name] = mapping
            values.attrs["encoding"] = mapping
        values.index = pd.Index(self.ids, name=self.id_column)
        values.name = name
        return values

    def subset(self, rows: Sequence[int] | np.ndarray) -> Cohort:
        """Cohort of the given row positions (or boolean mask)."""
        table = self.table.iloc[np.asarray(rows)] if len(rows) else self.table.iloc[[]]
        kept = set(table[self.id_column])
        return Cohort(table, id_column=self.id_column, path_column=self.path_column,
                      patient_column=self.patient_column, problems=[p for p in self.problems if p[0] in kept],
                      framing=self.framing, colour=self.colour, report=self.report, id_label=self.id_label)

    def patient_split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[Cohort, ...]:
        """Split into cohorts of about `fractions` of the images each, with every patient in exactly one.

        Patients are shuffled with `seed` (independently of row order) and
        assigned in turn to the split in which the middle of their images falls.
        Without a patient column, or where it is empty, an image counts as its own
        patient (warned: images of one patient may then leak across splits).
        """
        fractions = np.asarray(fractions, dtype=float)
        if fractions.ndim != 1 or len(fractions) == 0 or (fractions < 0).any() or not np.isclose(fractions.sum(), 1):
            raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
        ids = pd.Series(self.ids, dtype=object)
        if self.patient_column is None:
            warnings.warn("cohort has no patient column: splitting by image, so one patient's images "
                          "may land in several splits", CohortWarning, stacklevel=2)
            patients = ids
        else:
            patients = self.table[self.patient_column].astype(object)
            unknown = patients.isna()
            if unknown.any():
                warnings.warn(f"{unknown.sum()} image(s) without {self.patient_column!r} are split as if "
                              f"each were its own patient: {listing(ids[unknown].tolist())}",
                              CohortWarning, stacklevel=2)
                patients = patients.where(~unknown, "\0image:" + ids)
        counts = patients.value_counts().sort_index()
        order = np.random.default_rng(seed).permutation(len(counts))
        sizes = counts.to_numpy()[order]
        middles = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        split_of = np.searchsorted(np.cumsum(fractions), middles, side="right").clip(max=len(fractions) - 1)
        assignment = dict(zip(counts.index[order], split_of))
        labels = patients.map(assignment).to_numpy()
        return tuple(self.subset(np.flatnonzero(labels == k)) for k in range(len(fractions)))

    # ---- preprocessed images

    def images(self, resolution: int, cache_dir: str | os.PathLike | None | bool = None, *,
               dtype: str | np.dtype = "float16", progress: bool = True, workers: int = 1,
               framing: str | None = None, colour: str | None = None) -> np.ndarray:
        """All images preprocessed (:func:`~seegaan_explore.data.images.preprocess`) as ``[N, R, R]`` in [-1, 1].

        Each file is decoded once: results live in `cache_dir` (default
        :func:`~seegaan_explore.data.image_cache.default_cache_dir`; ``False`` disables caching) as a read-only
        memory-mapped ``.npy`` keyed by each file's path, size and mtime, the
        resolution, dtype, framing, colour rule and ``PREPROCESS_VERSION``.  A later call decodes only
        new or changed files.  Files that fail to decode are removed from this
        cohort with a :class:`CohortWarning` and added to ``problems`` and :attr:`report` (with the
        notes of those that decode: near-grey colour, a header window replaced), so row
        ``i`` of the result is always row ``i`` of ``self.table``.  `framing` and `colour` default to
        the cohort's.  ``workers > 1``
        decodes in that many spawned processes (scripts must then call this under
        ``if __name__ == "__main__":``).
        """
        framing = self.framing if framing is None else framing
        colour = self.colour if colour is None else colour
        _check_import_options(framing, colour)
        dtype = np.dtype(dtype)
        paths = self.paths
        if not paths:
            return np.empty((0, resolution, resolution), dtype)
        array, bad, notes = cached_images(paths, resolution, cache_dir, dtype=dtype, progress=progress,
                                          workers=workers, framing=framing, colour=colour)
        for i, (noted, warned) in notes.items():
            self.report.update(paths[i], info=ImageInfo(paths[i], notes=noted, warnings=warned))
        if bad:
            self._drop(bad)
        return array

    def _drop(self, bad: dict[int, str]) -> None:
        rows = sorted(bad)
        ids = self.table[self.id_column].iloc[rows].tolist()
        paths = self.table[self.path_column].iloc[rows].tolist()
        new = [(i, p, bad[r]) for i, p, r in zip(ids, paths, rows)]
        warnings.warn(f"dropped {len(new)} unusable image(s) from the cohort: "
                      f"{listing([f'{p}: {r}' for _, p, r in new])}", CohortWarning, stacklevel=3)
        self.problems.extend(new)
        for _, path, reason in new:
            self.report.update(path, reason=reason)
        self.table = self.table.drop(index=self.table.index[rows]).reset_index(drop=True)

    def flag_copies(self, digests: Sequence[bytes]) -> dict[int, int]:
        """Rows whose preprocessed pixels (``digests[i]``, :func:`~seegaan_explore.data.images.pixel_digest`
        of row ``i``) an earlier row has, as ``{row: earlier row}``, each warned about and marked in
        :attr:`report`: a copy (a ``.dcm.bak`` beside its ``.dcm``, an export made twice) is an exam of
        its own to every fit, so it weighs twice in a direction and may sit on both sides of a split."""
        first: dict[bytes, int] = {}
        copies = {}
        for row, digest in enumerate(digests):
            earlier = first.setdefault(digest, row)
            if earlier != row:
                copies[row] = earlier
        if copies:
            ids, paths = self.ids, self.paths
            for row, earlier in copies.items():
                self.report.update(paths[row], info=ImageInfo(paths[row], warnings=[
                    f"the same pixels as {paths[earlier]}: taken as an exam of its own"]))
            warnings.warn(f"{len(copies)} image(s) have the same pixels as another image of the cohort, and each "
                          "is taken as an exam of its own (weighing twice in a direction's fit): "
                          f"{listing([f'{ids[r]} = {ids[e]}' for r, e in copies.items()])}",
                          CohortWarning, stacklevel=2)
        return copies


class CohortDataset(torch.utils.data.Dataset):
    """Training view of a cohort: item ``i`` is ``(float32 tensor [1, R, R] in [-1, 1], i)``.

    Images come from :meth:`Cohort.images` (so the cohort may lose unusable rows
    when this is created).  With a cache the array is memory-mapped and reopened
    by file name in DataLoader workers instead of being pickled.
    """

    def __init__(self, cohort: Cohort, resolution: int, cache_dir: str | os.PathLike | None | bool = None, *,
                 progress: bool = True, workers: int = 1):
        self.cohort = cohort
        self.resolution = resolution
        array = cohort.images(resolution, cache_dir, progress=progress, workers=workers)
        self._array: np.ndarray | None = array
        self._file = getattr(array, "filename", None)
        self._rows = len(array)

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._array is None:
            self._array = np.load(self._file, mmap_mode="r")[: self._rows]
        image = torch.from_numpy(np.array(self._array[index], dtype=np.float32))
        return image[None], index

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._file is not None:
            state["_array"] = None
        return state
