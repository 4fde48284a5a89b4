"""Shared fixtures: real test data that may be absent (skip cleanly) and a small DICOM writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

#: Where the Hannover COVID-19 CXR data set lies: ``$SEEGAAN_HANNOVER_DIR`` if set, else
#: ``shared/data/hannover-covid-cxr`` of the ``shared/`` checkout beside the repository (as in CI).
HANNOVER_ENV = "SEEGAAN_HANNOVER_DIR"
HANNOVER_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hannover-covid-cxr"


@pytest.fixture(scope="session")
def hannover_dir() -> Path:
    """The Hannover COVID-19 CXR data set (data.csv + png/), skipped when not present."""
    given = os.environ.get(HANNOVER_ENV)
    folder = Path(given).expanduser() if given else HANNOVER_DEFAULT
    if not (folder / "data.csv").is_file() or not (folder / "png").is_dir():
        where = f"{HANNOVER_ENV}={given}" if given else f"{folder} (set {HANNOVER_ENV} to point elsewhere)"
        pytest.skip(f"Hannover COVID CXR data (data.csv and png/) not found at {where}")
    return folder


def _testdata(name: str) -> Path:
    pydicom_data = pytest.importorskip("pydicom.data")
    try:
        path = pydicom_data.get_testdata_file(name)
    except Exception as e:  # pydicom-data missing or its download failing
        pytest.skip(f"pydicom test file {name} unavailable: {e}")
    if path is None:
        pytest.skip(f"pydicom test file {name} unavailable (pip install pydicom-data)")
    return Path(path)


@pytest.fixture(scope="session")
def rg1_dicom() -> Path:
    """pydicom-data RG1_UNCR.dcm: a real CR chest PA, MONOCHROME1, 15 bits stored, uncompressed."""
    return _testdata("RG1_UNCR.dcm")


@pytest.fixture(scope="session")
def rg1_j2k_dicom() -> Path:
    """pydicom-data RG1_J2KR.dcm: the same image as RG1_UNCR.dcm, JPEG 2000 lossless."""
    return _testdata("RG1_J2KR.dcm")


@pytest.fixture
def write_dicom():
    """``write_dicom(path, pixels, photometric="MONOCHROME2", bits_stored=None, **elements)`` -> path.

    Writes a minimal Secondary Capture DICOM file; `pixels` of shape
    (frames, rows, cols) gives a multi-frame file.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    def write(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
              bits_stored: int | None = None, **elements) -> Path:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.Modality = "OT"
        ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
        for keyword, value in elements.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
        return Path(path)

    return write


@pytest.fixture
def bad_image_files(tmp_path, write_dicom) -> dict[str, tuple[Path, str]]:
    """Every kind of unusable file, alone in ``tmp_path/"bad"``: {name: (path, words expected in the reason)}."""
    from PIL import Image
    from pydicom import dcmread

    rng = np.random.default_rng(7)
    folder = tmp_path / "bad"
    folder.mkdir()
    grey = rng.integers(0, 4096, (64, 64)).astype(np.uint16)
    rgb = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    template = write_dicom(tmp_path / "template.dcm", grey)
    files = {name: (folder / file, words) for name, file, words in [
        ("truncated dicom", "truncated.dcm", "truncated"),
        ("random bytes", "random.dcm", "not a recognised image"),
        ("no pixel data", "nopixels.dcm", "no pixel data"),
        ("multi-frame", "multi.dcm", "multi-frame"),
        ("rgb dicom", "rgb.dcm", "colour"),
        ("rgb png", "rgb.png", "colour"),
        ("empty", "empty.png", "empty"),
        ("text", "notes.png", "not a recognised image"),
        ("truncated png", "cut.png", "truncated"),
        ("constant png", "constant.png", "constant"),
        ("transparent", "alpha.png", "transparent"),
        ("pickled npy", "obj.npy", "allow_pickle"),
        ("colour npy", "colour.npy", "2-d"),
        ("nan npy", "nan.npy", "nan"),
    ]}
    path = {name: p for name, (p, _) in files.items()}
    path["truncated dicom"].write_bytes(template.read_bytes()[:-1000])
    path["random bytes"].write_bytes(rng.bytes(5000))
    stripped = dcmread(template)
    del stripped.PixelData
    stripped.save_as(path["no pixel data"])
    write_dicom(path["multi-frame"], grey[None].repeat(3, 0))
    write_dicom(path["rgb dicom"], rgb, "RGB")
    Image.fromarray(rgb).save(path["rgb png"])
    path["empty"].touch()
    path["text"].write_text("patient notes, not an image\n" * 20)
    Image.fromarray((grey[:, :] >> 4).astype(np.uint8)).save(tmp_path / "full.png")
    path["truncated png"].write_bytes((tmp_path / "full.png").read_bytes()[:1000])
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(path["constant png"])
    Image.fromarray(np.dstack([rgb[..., :1]] * 3 + [np.full((32, 32, 1), 128, np.uint8)]), "RGBA").save(
        path["transparent"])
    np.save(path["pickled npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(path["colour npy"], rgb)
    np.save(path["nan npy"], np.where(np.eye(8) > 0, np.nan, 1.0))
    return files
