"""Finding the image files of a folder and naming them: the walk, the check of every file, and ids.

:func:`scan_images` looks at every file under a folder, recognises images by content and says of each
why it is used, skipped or ignored; ids are made from relative paths (:func:`unique_ids`) and images
found by id (:func:`find_by_id`). It is separate from :mod:`~seegaan_explore.data.cohort` because
the import check (:mod:`~seegaan_explore.data.check`) walks folders and checks files in worker
processes (:func:`imap`) the same way without building a cohort, and the rules for which file is
looked at and what it is called must be the same for both.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .formats import IMAGE_SUFFIXES, ImageInfo, ImportFilter, image_format
from .readers import inspect_image
from .table import LISTED, listing

__all__ = [
    "ScanReport",
    "find_by_id",
    "imap",
    "relative_path",
    "scan_images",
    "unique_ids",
]


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


def unique_ids(paths: Sequence[Path | str]) -> list[str]:
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


def _walk(root: Path, recursive: bool, skipped: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """The files under `root`, each once: linked folders are followed (never into a loop), a file
    reached again through a link is passed over, and hidden folders are not entered; what is passed
    over goes to `skipped` with the reason."""
    skipped = [] if skipped is None else skipped
    seen: dict[Path, Path] = {}

    def first_time(path: Path) -> bool:
        target = path.resolve()
        if target in seen:
            skipped.append((path, f"the same file as {seen[target]}"))
            return False
        seen[target] = path
        return True

    if not recursive:
        yield from (p for p in sorted(root.iterdir()) if p.is_file() and first_time(p))
        return
    folders_entered = {root.resolve()}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        entered = []
        for d in sorted(dirnames):
            folder = Path(dirpath, d)
            if d.startswith("."):
                skipped.append((folder, "hidden folder"))
            elif folder.resolve() in folders_entered:
                skipped.append((folder, "a link to a folder already read"))
            else:
                folders_entered.add(folder.resolve())
                entered.append(d)
        dirnames[:] = entered
        yield from (path for path in (Path(dirpath, f) for f in sorted(filenames)) if first_time(path))


def imap(fn: Callable, args: list[tuple], *, workers: int, progress: bool, desc: str) -> Iterator:
    """``fn(*a) for a in args`` in order, in `workers` processes, with a progress bar."""
    bar = dict(total=len(args), desc=desc, unit="file", disable=not progress, dynamic_ncols=True)
    if workers <= 1 or len(args) < 2:
        yield from tqdm((fn(*a) for a in args), **bar)
        return
    # spawn: workers must not inherit torch's thread pools from the parent; `fn` lives in
    # data/images.py or data/readers.py so that they do not import torch either
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
            for path in _walk(item, recursive, report.ignored):
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
    results = imap(inspect, [(p,) for p in candidates], workers=workers, progress=progress,
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


def relative_path(path: Path, root: Path) -> str:
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


def find_by_id(ids: Sequence[str], root: Path, source: str, column: str) -> list[Path | None]:
    """The image file under `root` of each id (None where there is none), matched by relative path or
    name, with or without suffix; several files for one id raise ``ValueError`` naming them (`source`
    and `column` say where the ids come from)."""
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
