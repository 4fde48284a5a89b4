"""The archives the command line writes and reads back: a direction as one safetensors file (its
vector, units, confounders, ends in words and diagnostics), and a traversal as one ``.npz`` (its
frames, latents, direction, predictions and report), so that ``traverse --direction`` and ``export``
start from what an earlier command saved. Nothing in them is executed: no pickles.

Written through :func:`~seegaan_explore.fileio.atomic_write`: an interrupted write never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write
from ..model.checkpoint import atomic_save_tensors, read_header
from .directions import Direction, direction_from_average_latents
from .export import checked_predictions
from .report import FilmReport
from .traversal import Traversal

__all__ = ["DIRECTION_FORMAT", "load_direction", "load_report", "load_traversal", "save_direction", "save_traversal"]

DIRECTION_FORMAT = "seegaan-explore-direction/1"


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _direction_fields(direction: Direction) -> dict:
    return {"attribute": direction.attribute, "estimator": direction.estimator, "kind": direction.kind,
            "scale": direction.scale, "confounders": list(direction.confounders), "ends": list(direction.ends),
            "diagnostics": _jsonable(direction.diagnostics)}


def _direction_from(fields: dict, vector: np.ndarray, path=None, knots=None, warp=None) -> Direction:
    return Direction(fields["attribute"], fields["estimator"], fields["kind"], np.asarray(vector, np.float32),
                     float(fields["scale"]), tuple(fields["confounders"]), fields["diagnostics"],
                     tuple(fields.get("ends", ())), path, knots, warp)  # files before ends were recorded have none


def save_direction(direction: Direction, path: str | Path) -> None:
    """A direction as one safetensors file: the vector (and an average-latents path with its bin
    values, or a calibration's warp), and its estimator, units (``scale``, the attribute's SD),
    confounders, its two ends in words and diagnostics as JSON metadata."""
    tensors = {"vector": np.asarray(direction.vector, np.float32)}
    if direction.path is not None:
        tensors.update(path=np.asarray(direction.path, np.float32), knots=np.asarray(direction.knots, np.float64))
    if direction.warp is not None:
        tensors["warp"] = np.asarray(direction.warp, np.float64)
    atomic_save_tensors(Path(path), {k: torch.from_numpy(v) for k, v in tensors.items()},
                        {"format": DIRECTION_FORMAT, "direction": json.dumps(_direction_fields(direction))})


def load_direction(path: str | Path, attribute: str | None = None, bin_values=None) -> Direction:
    """A direction saved by :func:`save_direction` (``.safetensors``), or the original SEE-GAAN's
    average latents (``.npy``, ``[k, w_dim]``; see
    :func:`~seegaan_explore.explore.directions.direction_from_average_latents`; ``attribute``
    defaults to the file name)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such average-latents file")
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a numeric .npy array ({exc})") from exc
        try:
            return direction_from_average_latents(array, attribute or path.stem, bin_values)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    fields = read_header(path, DIRECTION_FORMAT, "direction file")["direction"]
    tensors = {k: v.numpy() for k, v in load_file(str(path)).items()}
    return _direction_from(fields, tensors["vector"], tensors.get("path"), tensors.get("knots"), tensors.get("warp"))


_TRAVERSAL_KEYS = ("amounts", "in_sd", "latents", "reconstruction", "frames", "differences", "direction_vector",
                   "direction")


def save_traversal(traversal: Traversal, path: str | Path, predictions=None, report: FilmReport | None = None) -> None:
    """A traversal (and the per-frame predictions and its ``report``, if any) as one ``.npz`` that
    :func:`load_traversal`, :func:`load_report` and the ``export`` command read back without pickle."""
    arrays = {"amounts": traversal.amounts, "in_sd": np.array(traversal.in_sd), "latents": traversal.latents,
              "reconstruction": traversal.reconstruction, "frames": traversal.frames,
              "differences": traversal.differences, "direction_vector": traversal.direction.vector,
              "direction": np.array(json.dumps(_direction_fields(traversal.direction)))}
    predictions = checked_predictions(predictions, len(traversal.frames))
    if predictions is not None:
        arrays["predictions"] = predictions
    if report is not None:
        arrays["report"] = np.array(report.to_json())
    with atomic_write(Path(path)) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


_NOT_TRAVERSALS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                   (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"<", "an HTML or XML file"))


def load_traversal(path: str | Path) -> tuple[Traversal, np.ndarray | None]:
    """(traversal, predictions or None) from a file written by :func:`save_traversal`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such traversal file")
    with open(path, "rb") as f:
        head = f.read(132)
    if not head.startswith((b"PK", b"\x93NUMPY")):  # neither an .npz (a zip archive) nor an .npy
        kind = next((name for magic, name in _NOT_TRAVERSALS if head.startswith(magic)), None) or \
            ("a DICOM file" if head[128:132] == b"DICM" else "not an .npz archive")
        raise ValueError(f"{path}: not a saved traversal ({kind}); export reads the .npz files that "
                         f"'traverse --format npz' writes")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a saved traversal ({exc})") from exc
    if not hasattr(archive, "files"):
        raise ValueError(f"{path}: not a saved traversal (a single array, not an .npz archive)")
    with archive:
        data = {k: archive[k] for k in archive.files}
    missing = [k for k in _TRAVERSAL_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not a saved traversal (missing {', '.join(missing)})")
    direction = _direction_from(json.loads(str(data["direction"])), data["direction_vector"])
    traversal = Traversal(data["amounts"], bool(data["in_sd"]), data["latents"], data["reconstruction"],
                          data["frames"], data["differences"], direction)
    return traversal, data.get("predictions")


def load_report(path: str | Path) -> FilmReport | None:
    """The :class:`~seegaan_explore.explore.report.FilmReport` a traversal archive keeps (None
    where it was saved without one)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        return FilmReport.from_json(str(archive["report"])) if "report" in archive.files else None
