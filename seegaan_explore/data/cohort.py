"""Cohorts of chest radiographs with per-image attributes, and a cache of preprocessed tensors.

A :class:`Cohort` pairs a table (one row per image: id, file, patient,
attributes such as sex or lab values) with the image files.  Nothing is dropped
silently: missing or unreadable files are named in a warning and kept in
:attr:`Cohort.problems`.  :meth:`Cohort.images` decodes every file once and keeps
the result in a memory-mapped cache so that later runs start instantly.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..store import ArrayStore, content_key
from .check import ImportReport
from .images import (
    COLOUR_MODES,
    FRAMINGS,
    IMAGE_SUFFIXES,
    PREPROCESS_VERSION,
    ImageInfo,
    ImportFilter,
    image_format,
    inspect_image,
    load_preprocessed_info,
)
from .table import (
    ID_CANDIDATES,
    LISTED,
    PATH_CANDIDATES,
    PATIENT_CANDIDATES,
    listing,
    parse_attribute,
    pick_column,
    read_table,
)

__all__ = [
    "Cohort",
    "CohortDataset",
    "CohortWarning",
    "ImportFilter",
    "ImportReport",
    "ScanReport",
    "default_cache_dir",
    "file_key",
    "scan_images",
]


class CohortWarning(UserWarning):
    """Rows were dropped from a cohort (missing or unreadable image files)."""


# --------------------------------------------------------------------------- scanning

@dataclass
class ScanReport:
    """Outcome of :func:`scan_images`: usable files, unusable files with reasons, ignored files (not
    images) with reasons, and what was learned about each inspected file."""

    ok: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    infos: dict[Path, ImageInfo] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per file: path, status (imported/skipped/ignored) and reason."""
        rows = ([(str(p), "imported", "") for p in self.ok]
                + [(str(p), "skipped", r) for p, r in self.bad]
                + [(str(p), "ignored", r) for p, r in self.ignored])
        return pd.DataFrame(rows, columns=["path", "status", "reason"])

    def summary(self) -> str:
        """Human-readable counts plus the first unusable files and why."""
        lines = [f"{len(self.ok) + len(self.bad)} image files checked: {len(self.ok)} usable, "
                 f"{len(self.bad)} unusable; {len(self.ignored)} other files ignored"]
        lines += [f"  {p}: {r}" for p, r in self.bad[:LISTED]]
        if len(self.bad) > LISTED:
            lines.append(f"  ... and {len(self.bad) - LISTED} more (see ScanReport.to_frame())")
        return "\n".join(lines)


def _ignored_by_name(path: Path) -> str | None:
    """Why a file in a folder is not even looked at: hidden files and DICOMDIR indexes."""
    if path.name.startswith("."):
        return "hidden file"
    if path.name.upper() == "DICOMDIR":
        return "DICOMDIR (the index of a DICOM folder, no image)"
    return None


def _named_as_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _image_id(path: Path | str) -> str:
    """Path as an id: POSIX form without an image suffix (UID-style names keep their dots)."""
    path = Path(path)
    return (path.with_suffix("") if path.suffix.lower() in IMAGE_SUFFIXES else path).as_posix()


def _unique_ids(paths: Sequence[Path | str]) -> list[str]:
    """Ids of (relative) paths: without the image suffix where that is unique, else the whole path, so
    that ``x.dcm`` and ``x.png`` become ``x.dcm`` and ``x.png`` while a lone ``y.png`` becomes ``y``.
    The same path given twice keeps one id twice (the caller says that is a duplicate)."""
    full = [Path(p).as_posix() for p in paths]
    ids = [_image_id(p) for p in full]
    while True:
        counts = Counter(ids)
        clashing = [k for k, (i, f) in enumerate(zip(ids, full)) if counts[i] > 1 and i != f]
        if not clashing:
            return ids
        for k in clashing:
            ids[k] = full[k]


def _walk(root: Path, recursive: bool) -> Iterator[Path]:
    if not recursive:
        yield from sorted(p for p in root.iterdir() if p.is_file())
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath, f) for f in sorted(filenames))


def _imap(fn: Callable, args: list[tuple], *, workers: int, progress: bool, desc: str) -> Iterator:
    """``fn(*a) for a in args`` in order, in `workers` processes, with a progress bar."""
    bar = dict(total=len(args), desc=desc, unit="file", disable=not progress, dynamic_ncols=True)
    if workers <= 1 or len(args) < 2:
        yield from tqdm((fn(*a) for a in args), **bar)
        return
    # spawn: workers must not inherit torch's thread pools from the parent; `fn` lives in
    # images.py so that they do not import torch either
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from tqdm(pool.map(fn, *zip(*args), chunksize=max(1, min(64, len(args) // (4 * workers)))),
                        **bar)


def scan_images(paths_or_root: str | os.PathLike | Iterable[str | os.PathLike], *,
                recursive: bool = True, progress: bool = True, decode: bool = False,
                workers: int = 1, filters: ImportFilter | None = None, colour: str = "refuse") -> ScanReport:
    """Check every file under a folder (or in a list of files/folders) and report the unusable ones.

    Files are recognised by content (DICOM with or without preamble, PNG, JPEG, TIFF, NPY), whatever
    their name. In folders, files that are no image are ignored with the reason (a file named as an
    image, e.g. ``notes.png`` holding text, is reported unusable instead), as are hidden files and
    DICOMDIR indexes; files named explicitly are always checked. Each image is checked with
    :func:`~seegaan_explore.data.images.inspect_image`: header-level for DICOM unless ``decode=True``
    (then fully decoded, which also finds corrupt compressed streams and constant images). `filters`
    (an :class:`~seegaan_explore.data.images.ImportFilter`) makes a header that is no chest radiograph's
    a reason; `colour` as for :func:`~seegaan_explore.data.images.read_image`. Never raises for a bad
    file. ``workers > 1`` checks in that many spawned processes (scripts must then call this under
    ``if __name__ == "__main__":``).
    """
    if isinstance(paths_or_root, (str, os.PathLike)):
        paths_or_root = [paths_or_root]
    report = ScanReport()
    candidates, named = [], set()
    for item in map(Path, paths_or_root):
        if item.is_dir():
            for path in _walk(item, recursive):
                reason = _ignored_by_name(path)
                if reason:
                    report.ignored.append((path, reason))
                else:
                    candidates.append(path)
        elif item.exists():
            candidates.append(item)
            named.add(item)
        else:
            report.bad.append((item, "file not found"))
    inspect = functools.partial(inspect_image, level="decode" if decode else "check", colour=colour,
                                filters=filters)
    results = _imap(inspect, [(p,) for p in candidates], workers=workers, progress=progress,
                    desc="Checking images")
    for path, info in zip(candidates, results):
        report.infos[path] = info
        if info.ok:
            report.ok.append(path)
        elif info.not_image and path not in named and (info.format is not None or not _named_as_image(path)):
            report.ignored.append((path, info.reason))
        else:
            report.bad.append((path, info.reason))
    return report


# --------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    """``$SEEGAAN_CACHE`` if set, else ``~/.cache/seegaan-explore``."""
    return Path(os.environ.get("SEEGAAN_CACHE") or Path.home() / ".cache" / "seegaan-explore")


def file_key(path: Path) -> str | None:
    """Identity of a file's current content: path, size and modification time (None if missing).

    What both caches key a file by (the preprocessed images here, the latent store in
    :mod:`~seegaan_explore.explore.latents`), so that a changed file is the only one redone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


#: Version of what the image cache records about unusable files and notes: entries written by an
#: older reader keep their images, but their unusable files are tried again (the reader now accepts
#: near-grey colour and replaces header windows that destroy the image).
_READER_VERSION = 2


class _ImageCache:
    """Preprocessed images of lists of files, in an :class:`~seegaan_explore.store.ArrayStore` at
    ``<root>/v<PREPROCESS_VERSION>-r<resolution>-<dtype>[-<framing>][-<colour>]/`` (framing and colour
    only where they are not the defaults pad and refuse, so the caches of those stay where they were).

    Entry ``<key>`` (the :func:`~seegaan_explore.store.content_key` of the list's file keys) holds
    the usable images in order; its index adds the file keys of its rows (``files``), the files
    that failed and why (``bad``: ``[file key, path, reason]``) and what decoding them noted
    (``notes``: ``[file key, notes, warnings]``).  Rows of earlier entries are reused by file key,
    so a changed or added file is the only one decoded again.
    """

    def __init__(self, root: Path, resolution: int, dtype: np.dtype, framing: str = "pad",
                 colour: str = "refuse"):
        name = f"v{PREPROCESS_VERSION}-r{resolution}-{dtype.name}"
        name += "" if framing == "pad" else f"-{framing}"
        name += "" if colour == "refuse" else f"-{colour}"
        self.store = ArrayStore(Path(root) / name)

    @staticmethod
    def _notes(meta: dict) -> dict[str, tuple[list[str], list[str]]]:
        return {k: (list(n), list(w)) for k, n, w in meta.get("notes", [])}

    def get(self, key: str) -> tuple[np.ndarray, dict[str, str], dict] | None:
        found = self.store.open(key)
        if found is None:
            return None
        meta, array = found
        try:
            if meta["bad"] and meta.get("reader", 1) < _READER_VERSION:
                return None  # its unusable files are tried again by the current reader
            return array[: meta["rows"]], {k: reason for k, _, reason in meta["bad"]}, self._notes(meta)
        except (KeyError, TypeError, ValueError):  # an index this class did not write
            return None

    def known(self) -> tuple[dict[str, tuple[str, int]], dict[str, str], dict]:
        """Rows of all complete entries (file key -> (array name, row)), known bad file keys and notes."""
        rows, bad, notes = {}, {}, {}
        for _, meta in self.store.entries():
            try:
                entry_rows = [(k, (meta["array"], i)) for i, k in enumerate(meta["files"][: meta["rows"]])]
                entry_bad = [(k, reason) for k, _, reason in meta["bad"]]
                entry_notes = self._notes(meta)
            except (KeyError, TypeError, ValueError):
                continue
            rows.update(entry_rows)
            if meta.get("reader", 1) >= _READER_VERSION:
                bad.update(entry_bad)
            notes.update(entry_notes)
        return rows, bad, notes

    def row_source(self, array_name: str) -> np.ndarray:
        """A known entry's array, to copy rows from."""
        array = self.store.load(array_name, mmap_mode="r")
        if array is None:
            raise FileNotFoundError(f"{self.store.dir / array_name}: cache file disappeared while in use")
        return array

    def alias(self, key: str, array_key: str, files: list[str], bad: list[tuple[str, str, str]],
              notes: dict | None = None) -> None:
        """Write the index that makes entry `key` (rows `files` of array `array_key`) visible."""
        noted = [[k, *notes[k]] for k in files if k in notes] if notes else []
        self.store.write_index(key, {"array": f"{array_key}.npy", "rows": len(files), "files": files, "bad": bad,
                                     "notes": noted, "reader": _READER_VERSION})


# --------------------------------------------------------------------------- cohort

def _relative(path: Path, root: Path) -> str:
    """`path` relative to `root` where it lies under it (POSIX form), else as it is."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            return path.as_posix()


def _index_images(root: Path) -> dict[str, list[Path]]:
    """Image files under `root` by relative path and by name, each with and without suffix. Files named
    as images count as such; any other file (no suffix, ``.IMA``'s cousins, a number) does when its
    content is an image's."""
    index: dict[str, list[Path]] = {}
    for path in _walk(root, recursive=True):
        if _ignored_by_name(path) or not (_named_as_image(path) or image_format(path)):
            continue
        rel = path.relative_to(root)
        for key in {rel.as_posix(), _image_id(rel), path.name, _image_id(path.name)}:
            index.setdefault(key, []).append(path)
    return index


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
            written = [Path(p.strip()) for p in paths.astype(str)]
            resolved = [p if p.is_absolute() else root / p for p in written]
            if id_col is None:  # ids from the paths: the user's words are the path column's
                id_col, id_label = ("image_id" if "image_id" not in columns else "_image_id"), path_col
                relative = [_relative(p, root) for p in resolved]
                twice = [p for p, n in Counter(relative).items() if n > 1]
                if twice:
                    raise ValueError(f"{source}: the same file in several rows of {path_col!r}: {listing(twice)}")
                frame[id_col] = _unique_ids(relative)
        frame[id_col] = cls._check_ids(frame[id_col], source, id_label)
        if path_col is None:
            path_col = "path" if "path" not in columns else "_path"
            resolved = cls._find_by_id(frame[id_col], root, source, id_label)
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

    @staticmethod
    def _find_by_id(ids: pd.Series, root: Path, source: str, column: str) -> list[Path | None]:
        index = _index_images(root)
        found: list[Path | None] = []
        ambiguous = []
        for image_id in ids:
            matches = index.get(image_id, [])
            if len(matches) > 1:
                ambiguous.append(f"{image_id} -> {', '.join(map(str, matches))}")
            found.append(matches[0] if matches else None)
        if ambiguous:
            raise ValueError(f"{source}: several image files match {column!r} value(s): {listing(ambiguous)}; "
                             "use a path column instead")
        return found

    @classmethod
    def from_folder(cls, root: str | os.PathLike, *, recursive: bool = True, progress: bool = True,
                    workers: int = 1, filters: ImportFilter | None = ImportFilter(), colour: str = "refuse",
                    framing: str = "pad", allow_empty: bool = False) -> Cohort:
        """Cohort of all usable images under `root` (no attributes).

        Every file is looked at and recognised by content (DICOM with any or no
        suffix, PNG, JPEG, TIFF, NPY); ids are the paths relative to `root`
        without suffix (the file stem for a flat folder; with the suffix where two
        files differ only by it).  Files are checked with :func:`scan_images`
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
        ids = _unique_ids([p.relative_to(root) for p in scan.ok])
        bad_ids = _unique_ids([p.relative_to(root) for p, _ in scan.bad])
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
        :func:`parse_lab_column`) become their value (NaN when only "below/above
        the detection limit" is known).  Columns with exactly two distinct text
        values (case-insensitive; e.g. sex ``f``/``m``) become 0/1 in sorted order;
        the mapping is stored in ``self.encodings[name]`` and ``series.attrs``.
        Other text columns raise ``ValueError``.
        """
        if name not in self.attributes:
            raise KeyError(f"no attribute {name!r}; attributes are {self.attributes}")
        values, mapping = parse_attribute(self.table[name])
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
        :func:`default_cache_dir`; ``False`` disables caching) as a read-only
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
        keys = [file_key(p) or f"missing:{p}" for p in paths]
        cache = None if cache_dir is False else _ImageCache(
            default_cache_dir() if cache_dir in (None, True) else Path(cache_dir), resolution, dtype, framing, colour)
        entry = content_key(keys) if cache else None
        hit = cache.get(entry) if cache else None
        if hit is not None:
            array, bad_keys, notes = hit
            bad = {i: bad_keys[k] for i, k in enumerate(keys) if k in bad_keys}
        else:
            array, bad, notes = self._build(paths, keys, resolution, dtype, cache, entry, progress, workers,
                                            framing, colour)
        for path, key in zip(paths, keys):
            if key in notes:
                info = ImageInfo(path, notes=notes[key][0], warnings=notes[key][1])
                self.report.update(path, info=info)
        if bad:
            self._drop(bad)
            if cache:  # the reduced cohort maps to the same array
                good = [k for i, k in enumerate(keys) if i not in bad]
                cache.alias(content_key(good), entry, good, [], notes)
        return array

    def _build(self, paths: list[Path], keys: list[str], resolution: int, dtype: np.dtype,
               cache: _ImageCache | None, entry: str | None, progress: bool, workers: int,
               framing: str, colour: str) -> tuple[np.ndarray, dict[int, str], dict]:
        known_rows, known_bad, known_notes = cache.known() if cache else ({}, {}, {})
        notes: dict[str, tuple[list[str], list[str]]] = {}

        def fill(out: np.ndarray) -> tuple[dict[int, str], int]:
            """Write the usable images into ``out``'s leading rows: (unusable rows and why, rows written)."""
            todo = [i for i, k in enumerate(keys) if k not in known_rows and k not in known_bad]
            decoded = _imap(load_preprocessed_info, [(paths[i], resolution, colour, framing) for i in todo],
                            workers=workers, progress=progress, desc=f"Decoding images ({resolution}px)")
            sources: dict[str, np.ndarray] = {}
            bad: dict[int, str] = {}
            row = 0
            for i, k in enumerate(keys):
                if k.startswith("missing:"):
                    bad[i] = "image file not found"
                    continue
                if k in known_bad:
                    bad[i] = known_bad[k]
                    continue
                if k in known_rows:
                    name, src_row = known_rows[k]
                    if name not in sources:
                        sources[name] = cache.row_source(name)
                    out[row] = sources[name][src_row]
                    if k in known_notes:
                        notes[k] = known_notes[k]
                else:
                    image, info = next(decoded)
                    if info.reason is not None:
                        bad[i] = info.reason
                        continue
                    out[row] = image
                    if info.notes or info.warnings:
                        notes[k] = (list(info.notes), list(info.warnings))
                row += 1
            return bad, row

        shape = (len(paths), resolution, resolution)
        if cache is None:
            out = np.empty(shape, dtype)
            bad, rows = fill(out)
            return out[:rows], bad, notes
        bad, _ = cache.store.write_array(f"{entry}.npy", shape, dtype, fill)
        good = [k for i, k in enumerate(keys) if i not in bad]
        cache.alias(entry, entry, good, [(keys[i], str(paths[i]), r) for i, r in bad.items()], notes)
        return cache.get(entry)[0], bad, notes

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
