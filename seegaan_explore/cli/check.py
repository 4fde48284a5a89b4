"""``check``: what an import would make of a folder or table of images, before anything is encoded or
trained; ``dictionary``: a data dictionary of the table to fill in; and the one line that ``encode``,
``train`` and ``direction`` print about their own import."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_import_arguments, import_options, user_errors

__all__ = ["add_check", "add_dictionary", "default_report_path", "report_import"]


def add_check(sub) -> None:
    p = sub.add_parser(
        "check", help="check a folder or table of images before encoding or training",
        description="Read a folder (every file, recognised by content) or a table of images as encode and train "
                    "would, decode every image they would keep, and print one table: files imported, skipped per "
                    "reason and ignored; per modality, body part, view position, photometric interpretation, "
                    "bit depth, size, aspect ratio and padding share. Writes the per-file report as CSV.")
    p.add_argument("--data", required=True, type=Path, help="image folder, or CSV table with image ids/paths")
    p.add_argument("--image-root", type=Path, help="folder the table's ids/paths are relative to")
    p.add_argument("--id-column", help="image id column of the table")
    p.add_argument("--path-column", help="image path column of the table")
    p.add_argument("--patient-column", help="patient id column")
    p.add_argument("--report", type=Path, default=Path("import-report.csv"),
                   help="per-file report (CSV; default ./import-report.csv)")
    p.add_argument("--attribute", nargs="+", default=[], metavar="COLUMN",
                   help="table columns (e.g. sex view) whose levels are compared in aspect ratio and padding "
                        "share: a warning where they differ")
    add_import_arguments(p)
    p.add_argument("--header-only", action="store_true",
                   help="do not decode DICOM pixels (faster; misses corrupt streams, constant images and "
                        "windows that destroy the image)")
    p.add_argument("--workers", type=int, default=1, help="processes reading the files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=user_errors(_run_check))


def add_dictionary(sub) -> None:
    p = sub.add_parser(
        "dictionary", help="write a data dictionary of a table's attributes, to fill in",
        description="Write a YAML data dictionary listing every attribute of the cohort's table (its levels as the "
                    "table spells them, a guessed log scale, what the table holds in a comment), for you to give "
                    "them a clinician's labels, units, words and plausible ranges; serve and the other commands "
                    "take it as --dictionary.")
    p.add_argument("--data", required=True, type=Path, help="the cohort's table (CSV, TSV, Parquet or Excel)")
    p.add_argument("--out", type=Path, help="the YAML file to write (default: print it); never overwritten")
    p.set_defaults(run=user_errors(_run_dictionary))


def _run_dictionary(args) -> int:
    from ..data.table import read_table
    from ..explore.attributes import bookkeeping
    from ..explore.dictionary import starter_dictionary
    from ..fileio import atomic_write

    if args.out is not None and args.out.exists():
        raise ValueError(f"{args.out} exists: write the dictionary to a new file, so that no edit is lost")
    if args.data.is_dir():
        raise ValueError(f"--data {args.data} is a folder: a dictionary describes a table's columns")
    table = read_table(args.data, lambda columns: [c for c in columns if bookkeeping(c)])
    text = starter_dictionary(table, args.data.name)
    if args.out is None:
        print(text, end="")
        return 0
    with atomic_write(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: fill in the labels, units and ranges, then give it to serve as --dictionary "
          f"{args.out}", file=sys.stderr)
    return 0


def _run_check(args) -> int:
    from ..data.check import check

    if args.data.is_dir() and args.attribute:
        raise ValueError("--attribute needs a table: a folder of images has no columns")
    report = check(args.data, args.image_root, id_column=args.id_column, path_column=args.path_column,
                   patient_column=args.patient_column, **import_options(args), attributes=args.attribute,
                   decode=not args.header_only, workers=args.workers, progress=not args.no_progress,
                   report=args.report)
    print(report.table())
    print(report.line())
    return 0 if report.counts()["imported"] else 1  # a script stops where nothing could be imported


def default_report_path(data: Path, cache_dir: Path | None) -> Path:
    """Where ``encode`` and ``direction`` keep a cohort's import report: under the cache, one per data
    source (its name and a hash of its absolute path)."""
    import hashlib

    from ..data.image_cache import default_cache_dir
    from .common import safe_name

    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    digest = hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:10]
    return root / "import-reports" / f"{safe_name(Path(data).name)}-{digest}.csv"


def report_import(cohort, path: Path, file=None) -> Path:
    """Write `cohort`'s import report to `path` and print its one line (imported, skipped by reason,
    ignored, where the report is) to `file` (default stderr)."""
    written = cohort.report.write_csv(path)
    print(cohort.report.line(), file=file or sys.stderr)
    return written
