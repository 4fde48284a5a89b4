"""What a file is, from its first bytes and its header, before any pixel is decoded.

Recognising a format by content (DICOM with or without preamble, PNG, JPEG, TIFF, NPY, whatever the
file's name), reading and validating a DICOM header, and judging by it whether the image is a chest
radiograph (:class:`ImportFilter`) are what scanning a folder of many thousand files needs, and it must
be cheap: nothing here decodes pixels. It is separate from :mod:`~seegaan_explore.data.readers`, which
decodes them, so that the rules for "is this an image, and which" have one home that both the quick
header check and the full decode use.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = [
    "IMAGE_SUFFIXES",
    "NOT_AN_IMAGE",
    "ImageInfo",
    "ImageReadError",
    "ImportFilter",
    "NotAnImage",
    "dicom_dataset",
    "image_format",
    "sniff",
    "window_width",
]

#: File name suffixes of images (matched case-insensitively). Files are recognised by their content,
#: whatever their name; a file with one of these suffixes that is not an image is reported as unusable
#: (skipped), any other file that is not an image as ignored. ``.ima`` is Siemens' DICOM suffix.
IMAGE_SUFFIXES = (".dcm", ".dicom", ".ima", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")

#: The reason given for a file whose content is no image format this package reads.
NOT_AN_IMAGE = "not a recognised image format (DICOM, PNG, JPEG, TIFF or NPY)"

_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"\x93NUMPY": "npy",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",  # BigTIFF
    b"MM\x00+": "tiff",
}
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class ImageInfo:
    """What :func:`~seegaan_explore.data.readers.inspect_image` learned about one file, usable or not.

    ``format``: ``dicom``, ``png``, ``jpeg``, ``tiff``, ``npy`` or None (not an image). The DICOM
    header's modality, body part examined, view position, photometric interpretation and bits stored
    (for other formats the image mode, e.g. ``L``, ``I;16``, ``RGB``, and its bits; no modality, body
    part or view). ``reason``: why the file is unusable (None when usable); ``not_image``: the file is
    no image at all (text, a DICOM report), as opposed to a broken or refused one. ``notes``: what was
    done to it (near-grey colour made grey, ...); ``warnings``: what looks wrong but does not stop it
    (a destroying header window replaced, a tiny or elongated image, modality OT).
    """

    path: Path
    format: str | None = None
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    photometric: str | None = None
    bits_stored: int | None = None
    rows: int | None = None
    columns: int | None = None
    reason: str | None = None
    not_image: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def aspect_ratio(self) -> float | None:
        """Width over height (columns / rows): above 1 wider than tall."""
        return self.columns / self.rows if self.rows and self.columns else None

    @property
    def padding_share(self) -> float | None:
        """Share of the square that letterbox framing pads (and centre cropping cuts): 1 - short/long side."""
        if not (self.rows and self.columns):
            return None
        return 1 - min(self.rows, self.columns) / max(self.rows, self.columns)


def _normalised(value) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(value).upper())


@dataclass(frozen=True)
class ImportFilter:
    """Which images count as chest radiographs, from their DICOM header (other formats have none and pass).

    Each field is a tuple of accepted values, or None for any. A file whose header names another
    modality, body part or view position is skipped with that reason; where the element is absent or
    empty it passes. ``modalities``: projection radiography (CR, DX, RG; DR, which some X-ray systems
    write) by default; ``warn_modalities`` pass with a warning (OT, "other": digitised films and
    exports). ``body_parts`` match when one of them is contained in the header's value, ignoring case and
    punctuation (``CHEST``, ``THORAX``, ``LUNG``: "PORTABLE CHEST" passes, ``CSPINE`` or ``HAND`` do not).
    ``view_positions`` must equal the header's value (ignoring case and punctuation): the chest views
    PA, AP, lateral (LL, RL, LAT, LATERAL) and decubitus (LLD, RLD) by default.
    """

    modalities: tuple[str, ...] | None = ("CR", "DX", "DR", "RG")
    warn_modalities: tuple[str, ...] = ("OT",)
    body_parts: tuple[str, ...] | None = ("CHEST", "THORAX", "LUNG")
    view_positions: tuple[str, ...] | None = ("PA", "AP", "LL", "RL", "LAT", "LATERAL", "LLD", "RLD")

    @classmethod
    def any(cls) -> ImportFilter:
        """No filter: every readable image is imported."""
        return cls(modalities=None, warn_modalities=(), body_parts=None, view_positions=None)

    def describe(self) -> str:
        def one(name, values):
            return f"{name} {'any' if values is None else '/'.join(values) or 'none'}"
        modalities = self.modalities if self.modalities is None else (*self.modalities, *self.warn_modalities)
        return ", ".join([one("modality", modalities), one("body part", self.body_parts),
                          one("view position", self.view_positions)])

    def apply(self, info: ImageInfo) -> str | None:
        """The reason `info`'s header says this is not a chest radiograph (None: it passes). Adds a
        warning to ``info.warnings`` for a modality of ``warn_modalities``."""
        if info.modality and self.modalities is not None:
            modality = _normalised(info.modality)
            if modality in map(_normalised, self.warn_modalities):
                info.warnings.append(f"modality {info.modality} (not known to be a radiograph; kept)")
            elif modality not in map(_normalised, self.modalities):
                kept = "/".join((*self.modalities, *self.warn_modalities))
                return f"modality {info.modality} (not a chest radiograph; kept: {kept})"
        if info.body_part and self.body_parts is not None:
            part = _normalised(info.body_part)
            if part and not any(_normalised(b) in part for b in self.body_parts):
                return f"body part {info.body_part} (not a chest radiograph; kept: {'/'.join(self.body_parts)})"
        if info.view_position and self.view_positions is not None:
            view = _normalised(info.view_position)
            if view and view not in map(_normalised, self.view_positions):
                return (f"view position {info.view_position} (not a chest view; kept: "
                        f"{'/'.join(self.view_positions)})")
        return None


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")  # args[0] is the whole message, as handlers print it
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self):
        return type(self), (str(self.path), self.reason)


class NotAnImage(ImageReadError):
    """The file is no image at all (not a broken one)."""


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble and ``DICM`` (ACR-NEMA style, some old archives):
    the first element is little-endian (0002,xxxx) or (0008,xxxx) followed by an explicit VR (two capital
    letters) or an implicit length that fits in the file. Anything else is not read as DICOM, so that a
    text or other file is never parsed by force."""
    if len(head) < 8:
        return False
    group, element = int.from_bytes(head[0:2], "little"), int.from_bytes(head[2:4], "little")
    if group not in (0x0002, 0x0008) or element > 0x1FFF:
        return False
    explicit = head[4:6].isalpha() and head[4:6].isupper()
    return explicit or int.from_bytes(head[4:8], "little") < 2**24


def sniff(path: Path) -> str | None:
    """Format from the file's first bytes: 'dicom', 'png', 'jpeg', 'tiff', 'npy', 'raw-dicom' or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        raise ImageReadError(path, f"cannot open file ({e.strerror or e})") from e
    if not head:
        raise ImageReadError(path, "empty file")
    if head[128:132] == b"DICM":
        return "dicom"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if _looks_like_raw_dicom(head):
        return "raw-dicom"
    return None


def image_format(path: str | os.PathLike) -> str | None:
    """The image format of a file's content (``dicom``, ``png``, ``jpeg``, ``tiff``, ``npy``), or None
    for anything else (also an unreadable or empty file); reads 132 bytes."""
    try:
        kind = sniff(Path(path))
    except ImageReadError:
        return None
    return kind.replace("raw-", "") if kind else None


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def dicom_dataset(path: Path, info: ImageInfo, *, sniffed: bool, full: bool = True) -> pydicom.Dataset:
    """Read and validate a DICOM file without decoding its pixels; fill `info` from its header.

    Catches everything that can be known from the header: not DICOM, truncated,
    no pixel data, multi-frame, missing codec, too few pixel bytes.
    ``sniffed=False`` means there was no DICM preamble: the file starts like a raw
    data set; its result is accepted only if it contains image elements. ``full=False`` leaves
    large values (the pixel data) unread: the header only, without the checks that need the
    pixel bytes.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=not sniffed, defer_size=None if full else "64 KB")
        except InvalidDicomError as e:
            raise ImageReadError(path, f"not a valid DICOM file ({e})") from e
        except Exception as e:  # random bytes make pydicom fail in many ways
            if sniffed:
                raise ImageReadError(path, f"corrupt DICOM file ({type(e).__name__}: {e})") from e
            raise NotAnImage(path, NOT_AN_IMAGE) from e
    has_pixels = any(tag in ds for tag in _PIXEL_TAGS)
    if not sniffed and not (has_pixels or "SOPClassUID" in ds or "Rows" in ds):
        raise NotAnImage(path, NOT_AN_IMAGE)
    info.format = "dicom"
    info.modality = _text(ds, "Modality")
    info.body_part = _text(ds, "BodyPartExamined")
    info.view_position = _text(ds, "ViewPosition")
    info.photometric = _text(ds, "PhotometricInterpretation")
    info.bits_stored = int(ds.BitsStored) if ds.get("BitsStored") not in (None, "") else None
    info.rows = int(ds.Rows) if ds.get("Rows") not in (None, "") else None
    info.columns = int(ds.Columns) if ds.get("Columns") not in (None, "") else None
    if any("End of file reached" in str(w.message) for w in caught):
        raise ImageReadError(path, "truncated DICOM file (pixel data incomplete)")
    if not has_pixels:
        if "Rows" in ds:
            raise ImageReadError(path, "DICOM file has no pixel data although it describes an image "
                                       "(truncated or stripped file?)")
        sop = ds.get("SOPClassUID")
        kind = getattr(sop, "name", None) or str(sop or "unknown SOP class")
        raise NotAnImage(path, f"DICOM file without an image ({kind}; no pixel data)")
    photometric = (info.photometric or "").upper()
    if not photometric:
        raise ImageReadError(path, "DICOM image has no Photometric Interpretation")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric == "PALETTE COLOR" or samples not in (1, 3) or (
            samples == 1 and photometric not in ("MONOCHROME1", "MONOCHROME2")):
        raise ImageReadError(path, f"colour DICOM (Photometric Interpretation {info.photometric}); "
                                   "only greyscale radiographs are supported")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(path, f"multi-frame DICOM ({frames} frames); only single images are supported")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None:  # no file meta (raw dataset): necessarily uncompressed, encoding as read
        implicit, little = ds.original_encoding
        syntax = ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if not syntax.is_transfer_syntax:  # a vendor's private encoding, or one newer than pydicom
        raise ImageReadError(path, f"unknown transfer syntax {syntax} (a private or newer encoding); "
                                   "export the image uncompressed or in a standard syntax")
    if syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            raise ImageReadError(path, f"no decoder exists for transfer syntax '{syntax.name}' (video and "
                                       "references to remote images cannot be imported)") from None
        # 12-bit JPEG Extended: gdcm and pillow decode only its 8-bit form; pylibjpeg (GPL-3) the rest
        twelve_bit = syntax == "1.2.840.10008.1.2.4.51" and int(ds.get("BitsStored", 8) or 8) > 8
        if not decoder.is_available or (twelve_bit and "pylibjpeg" not in decoder.available_plugins):
            missing = "; ".join(decoder.missing_dependencies) or "no decoding plugin installed"
            if twelve_bit:
                missing = "12-bit; install its decoder with pip install 'seegaan-explore[jpeg-extended]'"
            raise ImageReadError(path, f"cannot decode transfer syntax '{syntax.name}' ({missing})")
    elif full and "PixelData" in ds and len(ds.PixelData) < get_expected_length(ds):
        raise ImageReadError(path, f"truncated DICOM pixel data ({len(ds.PixelData)} of "
                                   f"{get_expected_length(ds)} bytes)")
    width = window_width(ds)
    if width is not None and width <= 0 and "VOILUTSequence" not in ds:
        info.warnings.append(f"header window unusable (width {width:g}): the stored values are used instead")
    for w in caught:  # harmless header quirks of an otherwise usable file: pass them on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return ds


def window_width(ds: pydicom.Dataset) -> float | None:
    width = ds.get("WindowWidth")
    if width is None or width == "":
        return None
    try:
        return float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None

