"""``check``: what an import would make of a folder or table of images, before anything is encoded or
trained; and the one line that ``encode``, ``train`` and ``direction`` print about their own import."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import user_errors

__all__ = ["FILTER_DEFAULTS", "add_check", "add_filter_arguments", "default_report_path", "filters_from_args",
           "report_import"]


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
    add_filter_arguments(p)
    p.add_argument("--framing", default="pad", choices=["pad", "crop"],
                   help="pad (letterbox, the default) or crop (the centred square)")
    p.add_argument("--colour", default="refuse", choices=["refuse", "luminance"],
                   help="colour images (channels differing by more than JPEG noise): refuse (default) or "
                        "convert to luminance")
    p.add_argument("--header-only", action="store_true",
                   help="do not decode DICOM pixels (faster; misses corrupt streams, constant images and "
                        "windows that destroy the image)")
    p.add_argument("--workers", type=int, default=1, help="processes reading the files")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=user_errors(_run_check))


#: ImportFilter()'s defaults in words (not imported from data.images, so that --help stays quick;
#: tests/test_check.py holds them equal).
FILTER_DEFAULTS = {"modality": "CR DX DR RG", "warn_modality": "OT", "body_part": "CHEST THORAX LUNG",
                   "view_position": "PA AP LL RL LAT LATERAL LLD RLD"}


def add_filter_arguments(p) -> None:
    d = FILTER_DEFAULTS
    g = p.add_argument_group("what counts as a chest radiograph (from the DICOM header; other formats pass)")
    g.add_argument("--modality", nargs="+", metavar="CODE",
                   help=f"modalities kept (default {d['modality']}, and {d['warn_modality']} with a warning); "
                        "'any' keeps all")
    g.add_argument("--body-part", nargs="+", metavar="TERM",
                   help=f"body part examined containing one of these (default {d['body_part']}; absent "
                        "passes); 'any' keeps all")
    g.add_argument("--view-position", nargs="+", metavar="VIEW",
                   help=f"view positions kept (default {d['view_position']}; absent passes); 'any' keeps all")


def filters_from_args(args):
    """The :class:`~seegaan_explore.data.images.ImportFilter` of ``--modality``, ``--body-part`` and
    ``--view-position`` (each default where not given; ``any``: no filter on it)."""
    import dataclasses

    from ..data.images import ImportFilter

    def values(given):
        if given is None:
            return None
        return None if [v.lower() for v in given] == ["any"] else tuple(v.upper() for v in given)

    changes = {}
    if args.modality is not None:
        changes.update(modalities=values(args.modality), warn_modalities=())
    if args.body_part is not None:
        changes["body_parts"] = values(args.body_part)
    if args.view_position is not None:
        changes["view_positions"] = values(args.view_position)
    return dataclasses.replace(ImportFilter(), **changes)


def _run_check(args) -> int:
    from ..data.check import check

    if args.data.is_dir() and args.attribute:
        raise ValueError("--attribute needs a table: a folder of images has no columns")
    report = check(args.data, args.image_root, id_column=args.id_column, path_column=args.path_column,
                   patient_column=args.patient_column, filters=filters_from_args(args), framing=args.framing,
                   colour=args.colour, attributes=args.attribute, decode=not args.header_only,
                   workers=args.workers, progress=not args.no_progress, report=args.report)
    print(report.table())
    print(report.line())
    return 0


def default_report_path(data: Path, cache_dir: Path | None) -> Path:
    """Where ``encode`` and ``direction`` keep a cohort's import report: under the cache, one per data
    source (its name and a hash of its absolute path)."""
    import hashlib

    from ..data.cohort import default_cache_dir
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
