"""What the commands share: the cohort and autoencoder arguments, loading them, and bad input as a message."""

from __future__ import annotations

from pathlib import Path

from ..fileio import safe_name

__all__ = ["FILTER_DEFAULTS", "add_autoencoder_arguments", "add_cohort_arguments", "add_import_arguments",
           "add_optional_cohort_arguments", "add_threads_argument", "autoencoder", "check_ids", "encoded_cohort",
           "import_options", "load_cohort", "load_named_image", "output_names", "safe_name", "user_errors"]


def user_errors(run):
    """Bad input (an unknown id, column or file) ends the command with its message, not a traceback."""
    import functools

    @functools.wraps(run)
    def wrapped(args) -> int:
        from ..model import CheckpointError

        try:
            return run(args)
        except (ValueError, KeyError, FileNotFoundError, CheckpointError) as exc:
            # a KeyError's str() is its repr; an OSError's args[0] its errno
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise SystemExit(f"seegaan-explore {args.command}: {message}") from exc
    return wrapped


def add_cohort_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="image folder, or CSV table with image ids/paths")
    p.add_argument("--image-root", type=Path, help="folder the table's ids/paths are relative to")
    p.add_argument("--id-column", help="image id column of the table")
    p.add_argument("--path-column", help="image path column of the table")
    p.add_argument("--patient-column", help="patient id column (held-out split by patient)")
    p.add_argument("--cache-dir", type=Path, help="preprocessed-image cache (default ~/.cache/seegaan-explore)")
    add_import_arguments(p)


#: ImportFilter()'s defaults in words (not imported from data, so that --help stays quick;
#: tests/test_check.py holds them equal).
FILTER_DEFAULTS = {"modality": "CR DX DR RG", "warn_modality": "OT", "body_part": "CHEST THORAX LUNG",
                   "view_position": "PA AP LL RL LAT LATERAL LLD RLD"}


def add_import_arguments(p) -> None:
    """What counts as a chest radiograph, and how its pixels become the model's square: the same
    options for ``check`` and every command that imports a cohort, so that they import alike."""
    d = FILTER_DEFAULTS
    g = p.add_argument_group("import (what counts as a chest radiograph: from the DICOM header; other formats pass)")
    g.add_argument("--modality", nargs="+", metavar="CODE",
                   help=f"modalities kept (default {d['modality']}, and {d['warn_modality']} with a warning); "
                        "'any' keeps all")
    g.add_argument("--body-part", nargs="+", metavar="TERM",
                   help=f"body part examined containing one of these (default {d['body_part']}; absent "
                        "passes); 'any' keeps all")
    g.add_argument("--view-position", nargs="+", metavar="VIEW",
                   help=f"view positions kept (default {d['view_position']}; absent passes); 'any' keeps all")
    g.add_argument("--framing", default="pad", choices=["pad", "crop"],
                   help="pad (letterbox, the default) or crop (the centred square)")
    g.add_argument("--colour", default="refuse", choices=["refuse", "luminance"],
                   help="colour images (channels differing by more than JPEG noise): refuse (default) or "
                        "convert to luminance")


def import_options(args) -> dict:
    """``filters``, ``framing`` and ``colour`` for :class:`~seegaan_explore.data.cohort.Cohort` from the
    arguments of :func:`add_import_arguments` (each filter its default where not given; ``any``: none)."""
    import dataclasses

    from ..data.formats import ImportFilter

    def values(given):
        return None if [v.lower() for v in given] == ["any"] else tuple(v.upper() for v in given)

    changes = {}
    if args.modality is not None:
        changes.update(modalities=values(args.modality), warn_modalities=())
    if args.body_part is not None:
        changes["body_parts"] = values(args.body_part)
    if args.view_position is not None:
        changes["view_positions"] = values(args.view_position)
    return {"filters": dataclasses.replace(ImportFilter(), **changes), "framing": args.framing,
            "colour": args.colour}


def load_named_image(path, resolution: int, args):
    """An image a command names (``--image``, or a cohort's ``--id``), read and fitted into the
    model's square as the cohort's import does it: refused by the same filter (a CT or an
    extremity is no chest radiograph), with the same colour and framing options."""
    from ..data.images import preprocess
    from ..data.readers import read_radiograph

    options = import_options(args)
    image = read_radiograph(path, filters=options["filters"], colour=options["colour"])
    return preprocess(image, resolution, framing=options["framing"])


def add_optional_cohort_arguments(p, needed_for: str) -> None:
    g = p.add_argument_group("cohort", f"needed for {needed_for}")
    g.add_argument("--data", type=Path, help="image folder, or CSV table with image ids/paths")
    g.add_argument("--image-root", type=Path, help="folder the table's ids/paths are relative to")
    g.add_argument("--id-column", help="image id column of the table")
    g.add_argument("--path-column", help="image path column of the table")
    g.add_argument("--patient-column", help="patient id column")
    g.add_argument("--cache-dir", type=Path, help="preprocessed images and latent store "
                                                  "(default ~/.cache/seegaan-explore)")
    add_import_arguments(p)


def load_cohort(args, progress: bool):
    from ..data.cohort import Cohort

    if args.data.is_dir():
        return Cohort.from_folder(args.data, progress=progress, **import_options(args))
    return Cohort.from_table(args.data, args.image_root, id_column=args.id_column, path_column=args.path_column,
                             patient_column=args.patient_column, **import_options(args))


def add_threads_argument(p) -> None:
    """``--threads``, applied by :func:`~seegaan_explore.cli.main` before the command runs: two torch jobs
    sharing a few cores each with all of them slow each other far more than twice over."""
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: all cores; give a job that shares the machine fewer)")


def add_autoencoder_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="autoencoder checkpoint (.safetensors)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=64, help="images encoded at once")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 where the device runs it fast, else fp32")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def autoencoder(args):
    from ..device import default_device
    from ..model import load_model

    model = load_model(args.checkpoint, default_device(args.device), with_training_networks=False)
    model.precision = args.precision
    return model


def encoded_cohort(args, model, progress: bool):
    from ..explore.latents import encode_cohort

    if args.data is None:
        raise ValueError("--data is needed: the cohort to take ids and attributes from")
    cohort = load_cohort(args, progress)
    return cohort, encode_cohort(model, cohort, args.cache_dir, batch_size=args.batch_size, progress=progress)


def check_ids(ids, known, cohort, source) -> None:
    """Raise, for the ``ids`` not among ``known`` (the images a command has), why each is not: the
    reason the cohort's import skipped its file (missing, a colour image, a CT), or that no row has it."""
    known = set(known)
    unknown = [i for i in ids if i not in known]
    if not unknown:
        return
    frame = cohort.report.frame if cohort.report is not None else None
    skipped = {} if frame is None else {str(i): f"{r} ({p})" for i, r, p in zip(frame["id"], frame["reason"],
                                                                                 frame["path"]) if isinstance(r, str)}
    said = "; ".join(f"{i!r}, {skipped[i]}" if i in skipped else f"{i!r}, no such id" for i in unknown)
    raise KeyError(f"{source}: no usable image for {said}")


def output_names(paths) -> list[str]:
    """A name for each file's outputs: its stem, or where files in different folders share a stem
    (``A/IM0001``, ``B/IM0001.png``), its path from the folder they share, so that none overwrites another."""
    import os

    stems = [Path(p).stem for p in paths]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    if not shared:
        return stems
    resolved = [Path(p).resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return [str(p.relative_to(root).with_suffix("")) if stem in shared else stem for p, stem in zip(resolved, stems)]


