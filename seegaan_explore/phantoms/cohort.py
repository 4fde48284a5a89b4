"""A phantom cohort: its clinical table, its images in memory, or both written to disk.

:func:`write_cohort` writes PNG or DICOM files and the table as CSV, which
:class:`~seegaan_explore.data.cohort.Cohort` reads like any real cohort; :func:`generate_cohort`
renders in memory; :func:`cohort_table` evaluates the factors only (fast).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import to_uint8
from ..fileio import atomic_write
from .causal import FACTOR_COLUMNS, factors, id_row, randomized_do, sample_individual
from .radiograph import render

__all__ = ["cohort_table", "generate_cohort", "to_uint16", "write_cohort"]


def cohort_table(n: int, seed: int = 0, start: int = 0, do: Mapping[str, Any] | None = None):
    """The clinical table of ``n`` individuals (no rendering; fast)."""
    import pandas as pd

    rows = [id_row(ind, factors(ind, do)) for ind in (sample_individual(seed, i) for i in range(start, start + n))]
    return pd.DataFrame(rows)


def generate_cohort(n: int, size: int = 128, seed: int = 0, start: int = 0, noise: bool = True, progress: bool = False):
    """Render ``n`` phantoms in memory: ``(images float32 [n, size, size], DataFrame)``."""
    import pandas as pd

    images = np.empty((n, size, size), dtype=np.float32)
    rows = []
    it: Iterable[int] = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="phantoms", unit="img")
    for k in it:
        ph = render(sample_individual(seed, start + k), size, noise=noise)
        images[k] = ph.image
        rows.append(ph.row)
    return images, pd.DataFrame(rows)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((image + 1.0) * 32767.5), 0, 65535).astype(np.uint16)


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _dicom_bytes(image: np.ndarray, row: Mapping[str, Any], size: int) -> bytes:
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    key = f"{row['seed']}-{row['index']}"
    sop_uid = generate_uid(entropy_srcs=["seegaan-phantom-sop", key])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["seegaan-phantom-study", key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["seegaan-phantom-series", key])
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = str(row["view"])
    ds.PatientOrientation = ["R", "F"] if row["view"] == "AP" else ["L", "F"]
    ds.PatientID = str(row["patient_id"])
    ds.PatientName = f"Phantom^{row['index']}"
    ds.PatientSex = str(row["sex"])
    ds.PatientAge = f"{int(row['age']):03d}Y"
    ds.ImageComments = "synthetic phantom (seegaan-explore); not a real patient"
    ds.StudyDescription = "Phantom chest radiograph"
    ds.SeriesDescription = f"Chest {row['view']}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    spacing = 400.0 / size
    ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
    ds.WindowCenter = 32768
    ds.WindowWidth = 65536
    ds.PixelData = to_uint16(image).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _write_one(args) -> dict:
    out_dir, seed, index, size, fmt, randomize = args
    ind = sample_individual(seed, index)
    ph = render(ind, size, do=randomized_do(seed, index, randomize))
    ext = "png" if fmt == "png" else "dcm"
    name = f"{ind.image_id}.{ext}"
    data = _png_bytes(ph.image) if fmt == "png" else _dicom_bytes(ph.image, ph.row, size)
    _atomic_write_bytes(Path(out_dir) / name, data)
    row = dict(ph.row)
    row["file"] = name
    return row


def write_cohort(
    out_dir,
    n: int,
    size: int = 128,
    seed: int = 0,
    fmt: str = "png",
    progress: bool = True,
    workers: int | None = None,
    start: int = 0,
    csv_name: str = "phantoms.csv",
    randomize: tuple[str, ...] = (),
):
    """Write ``n`` phantoms (``fmt`` 'png' or 'dicom') and the clinical table ``csv_name`` to
    ``out_dir``; returns the table as a DataFrame.  Files are written atomically.

    ``randomize``: factors assigned as in a randomized trial (:func:`randomized_do`), not by their
    causes: the cohort an unbiased oracle is trained on.

    ``workers`` processes render in parallel (default: the CPU count, at most 8).
    """
    import pandas as pd

    fmt = fmt.lower()
    if fmt in ("dcm",):
        fmt = "dicom"
    if fmt not in ("png", "dicom"):
        raise ValueError("fmt must be 'png' or 'dicom'")
    n, size = int(n), int(size)
    randomize = tuple(randomize)
    randomized_do(seed, start, randomize)  # an unknown factor fails here, before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    workers = max(1, min(int(workers), n)) if n > 0 else 1
    jobs = [(str(out), seed, i, size, fmt, randomize) for i in range(start, start + n)]
    pool = None
    if workers > 1:
        import multiprocessing as mp

        # fork (where available) before the progress bar starts its monitor thread; the workers
        # only use numpy / scipy / PIL, never torch, so forking a process that imported torch is safe
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(workers)
    bar = None
    rows = []
    ok = False
    try:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"phantoms {size}px", unit="img")
        if pool is None:
            results = map(_write_one, jobs)
        else:
            results = pool.imap(_write_one, jobs, chunksize=max(1, min(64, n // (workers * 8))))
        for row in results:
            rows.append(row)
            if bar is not None:
                bar.update(1)
        ok = True
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            if ok:
                pool.close()
            else:  # an error or Ctrl-C: do not wait for the remaining images
                pool.terminate()
            pool.join()
    cols = ["image_id", "patient_id", "file", "seed", "index", *FACTOR_COLUMNS]
    table = pd.DataFrame(rows, columns=cols)
    _atomic_write_bytes(out / csv_name, table.to_csv(index=False, float_format="%.6g").encode())
    return table
