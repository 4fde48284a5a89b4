"""Read chest radiographs from DICOM, PNG, JPEG, TIFF or NPY and preprocess them for the model.

Every image enters the package through :func:`read_image` (display convention:
higher value = more attenuation = brighter) and :func:`preprocess` (fixed-size
square in [-1, 1]).  Training, encoding and the dashboard all use these two
functions, so an image looks the same to the model wherever it comes from.
:func:`inspect_image` says what a file is (format, DICOM header, size) and why it
is or is not used, without raising; :class:`ImportFilter` keeps chest radiographs.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = [
    "COLOUR_MODES",
    "FRAMINGS",
    "GREY_TOLERANCE",
    "IMAGE_SUFFIXES",
    "NOT_AN_IMAGE",
    "PERCENTILES",
    "PREPROCESS_VERSION",
    "ImageInfo",
    "ImageReadError",
    "ImportFilter",
    "check_image",
    "check_image_reason",
    "image_format",
    "inspect_image",
    "load_preprocessed",
    "load_preprocessed_info",
    "load_preprocessed_or_reason",
    "preprocess",
    "read_image",
    "read_image_info",
    "to_uint8",
]

#: Bump whenever :func:`read_image` or :func:`preprocess` output changes, so that
#: cached preprocessed tensors are rebuilt instead of silently reused.
PREPROCESS_VERSION = 1

#: File name suffixes of images (matched case-insensitively). Files are recognised by their content,
#: whatever their name; a file with one of these suffixes that is not an image is reported as unusable
#: (skipped), any other file that is not an image as ignored. ``.ima`` is Siemens' DICOM suffix.
IMAGE_SUFFIXES = (".dcm", ".dicom", ".ima", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")

#: What to do with a colour (RGB) image whose channels differ by more than :data:`GREY_TOLERANCE`:
#: ``"refuse"`` it (the default) or convert it to its ``"luminance"`` (ITU-R BT.601 luma).
COLOUR_MODES = ("refuse", "luminance")

#: How :func:`preprocess` makes a square of a rectangular image: ``"pad"`` (letterbox: the whole image,
#: the short side padded with the background; the default) or ``"crop"`` (the centred square of the short
#: side, as torchxrayvision's XRayCenterCrop: no padding, the ends of the long side are lost).
FRAMINGS = ("pad", "crop")

#: RGB images whose channels differ by at most this many 8-bit levels anywhere are grey: lossy JPEG
#: coding of a grey image leaves a few levels of colour noise (4-12 measured on a real cohort). Up to 2
#: levels the image is taken as grey silently; above, with a note.
GREY_TOLERANCE = 16

#: The reason given for a file whose content is no image format this package reads.
NOT_AN_IMAGE = "not a recognised image format (DICOM, PNG, JPEG, TIFF or NPY)"

#: Intensity percentiles mapped to -1 and +1 by :func:`preprocess`.
PERCENTILES = (0.5, 99.5)

# Percentiles are estimated on a regular grid of at most about this many pixels:
# exact enough for normalisation and 10x faster than on a full 2000x2000 image.
_PERCENTILE_SAMPLE = 2**18

# Channels that differ by at most this much are grey without a note: +-1 rounding of the colour transform.
_EXACT_GREY = 2

# 8/16-bit DICOM images with more pixels than this go through a lookup table (see _grey_transform).
_LUT_MIN_PIXELS = 2**17

# A header window that leaves fewer than this share of pixels between its darkest and brightest output
# (a CT window on a radiograph, a window of width 1) destroys the image: the stored values are used.
_WINDOW_MIN_INSIDE = 0.05

# Plausibility: an image this small on its short side, or this elongated, is imported with a warning.
_TINY_SIDE = 64
_EXTREME_ASPECT = 2.0

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
_PIL_BITS = {"1": 1, "L": 8, "P": 8, "LA": 8, "PA": 8, "RGB": 8, "RGBA": 8, "RGBX": 8, "CMYK": 8, "YCbCr": 8,
             "I": 32, "F": 32}


@dataclass
class ImageInfo:
    """What :func:`inspect_image` learned about one file, usable or not.

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


class _NotAnImage(ImageReadError):
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


def _sniff(path: Path) -> str | None:
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
        kind = _sniff(Path(path))
    except ImageReadError:
        return None
    return kind.replace("raw-", "") if kind else None


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _dicom_dataset(path: Path, info: ImageInfo, *, sniffed: bool, full: bool = True) -> pydicom.Dataset:
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
            raise _NotAnImage(path, NOT_AN_IMAGE) from e
    has_pixels = any(tag in ds for tag in _PIXEL_TAGS)
    if not sniffed and not (has_pixels or "SOPClassUID" in ds or "Rows" in ds):
        raise _NotAnImage(path, NOT_AN_IMAGE)
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
        raise _NotAnImage(path, f"DICOM file without an image ({kind}; no pixel data)")
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
    if syntax.is_compressed:
        decoder = get_decoder(syntax)
        if not decoder.is_available:
            missing = "; ".join(decoder.missing_dependencies) or "no decoding plugin installed"
            if syntax == "1.2.840.10008.1.2.4.51":  # 12-bit JPEG Extended: only a GPL-3 plugin decodes it
                missing += "; install it with pip install 'seegaan-explore[jpeg-extended]'"
            raise ImageReadError(path, f"cannot decode transfer syntax '{syntax.name}' ({missing})")
    elif full and "PixelData" in ds and len(ds.PixelData) < get_expected_length(ds):
        raise ImageReadError(path, f"truncated DICOM pixel data ({len(ds.PixelData)} of "
                                   f"{get_expected_length(ds)} bytes)")
    width = _window_width(ds)
    if width is not None and width <= 0 and "VOILUTSequence" not in ds:
        info.warnings.append(f"header window unusable (width {width:g}): the stored values are used instead")
    for w in caught:  # harmless header quirks of an otherwise usable file: pass them on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return ds


def _window_width(ds: pydicom.Dataset) -> float | None:
    width = ds.get("WindowWidth")
    if width is None or width == "":
        return None
    try:
        return float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None


def _grey_transform(stored: np.ndarray, ds: pydicom.Dataset, voi: bool = True) -> np.ndarray:
    """pydicom's modality LUT/rescale followed (``voi=True``) by its VOI LUT/window, as float32.

    Both are pointwise, so for 8/16-bit images they are evaluated once per value
    in the image's range and applied as a lookup table: same result, ~5x faster
    than pydicom's float64 masking on a full-size radiograph.
    """
    def transform(values: np.ndarray) -> np.ndarray:
        values = apply_modality_lut(values, ds)
        return (apply_voi_lut(values, ds) if voi else values).astype(np.float32)

    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2 or stored.size <= _LUT_MIN_PIXELS:
        return transform(stored)
    lo, hi = int(stored.min()), int(stored.max())
    lut = transform(np.arange(lo, hi + 1, dtype=stored.dtype))
    return lut[stored.astype(np.int32) - lo]


def _inside_share(arr: np.ndarray) -> float:
    """Share of pixels strictly between the image's darkest and brightest value."""
    lo, hi = arr.min(), arr.max()
    return float(((arr > lo) & (arr < hi)).mean()) if hi > lo else 0.0


def _windowed(stored: np.ndarray, ds: pydicom.Dataset, info: ImageInfo) -> np.ndarray:
    """Modality values through the header's VOI LUT or window, unless it destroys the image (width 0 or
    less, a window that saturates nearly every pixel, an unreadable VOI LUT): then the modality values
    themselves, with a warning."""
    has_voi = "VOILUTSequence" in ds or "WindowWidth" in ds
    width = _window_width(ds)
    if not has_voi or (width is not None and width <= 0 and "VOILUTSequence" not in ds):
        return _grey_transform(stored, ds, voi=False)  # (width <= 0 was warned from the header)
    try:
        arr = _grey_transform(stored, ds)
    except Exception as e:  # a broken VOI LUT or window
        info.warnings.append(f"header window unusable (VOI LUT or window: {type(e).__name__}: {e}): "
                             "the stored values are used instead")
        return _grey_transform(stored, ds, voi=False)
    inside = _inside_share(arr)
    if inside < _WINDOW_MIN_INSIDE:
        plain = _grey_transform(stored, ds, voi=False)
        if _inside_share(plain) > inside:
            center = ds.get("WindowCenter")
            window = (f"center {center[0] if isinstance(center, pydicom.multival.MultiValue) else center}, "
                      f"width {width:g}" if width is not None else "VOI LUT")
            info.warnings.append(f"header window unusable ({window} leaves {inside:.1%} of pixels "
                                 "unsaturated): the stored values are used instead")
            return plain
    return arr


def _to_grey(rgb: np.ndarray, path: Path, info: ImageInfo, colour: str) -> np.ndarray:
    """An RGB image as grey: the channel mean where channels agree within GREY_TOLERANCE (noted above 2
    levels); otherwise refused, or its luminance under ``colour="luminance"``."""
    rgb = rgb.astype(np.int32) if rgb.dtype.kind in "iu" else rgb.astype(np.float32)
    spread_map = rgb.max(axis=-1) - rgb.min(axis=-1)
    spread = float(spread_map.max())
    scale = 255.0 / max(float(rgb.max()), 255.0) if rgb.dtype.kind in "iu" else 1.0  # 8-bit levels
    levels = spread * scale
    if levels <= GREY_TOLERANCE:
        if levels > _EXACT_GREY:
            info.notes.append(f"near-grey RGB (channels differ by up to {levels:.0f} levels): made grey")
        return rgb.mean(axis=-1, dtype=np.float32)
    coloured = float((spread_map * scale > GREY_TOLERANCE).mean())
    if colour != "luminance":
        raise ImageReadError(path, f"colour image (RGB channels differ by up to {levels:.0f} levels in "
                                   f"{coloured:.1%} of pixels; grey is up to {GREY_TOLERANCE}); only greyscale "
                                   "radiographs are supported unless colour='luminance' converts them")
    info.notes.append(f"colour image (RGB channels differ by up to {levels:.0f} levels in {coloured:.1%} of "
                      "pixels): converted to luminance")
    weights = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's "L"
    return rgb.astype(np.float32) @ weights


def _decode_dicom(ds: pydicom.Dataset, path: Path, info: ImageInfo, colour: str) -> np.ndarray:
    """Stored values -> modality values (rescale/LUT) -> VOI window/LUT -> bright = dense.
    Colour (RGB, YBR) images: grey when near-grey, else refused or their luminance."""
    pixels = ds.pixel_array
    if pixels.ndim == 3:
        return _to_grey(pixels, path, info, colour)
    arr = _windowed(pixels, ds, info)
    # MONOCHROME1 stores dense tissue as low values; a Presentation LUT Shape of
    # INVERSE says the same (DX requires it with MONOCHROME1), so invert once.
    inverse = str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE"
    if ds.PhotometricInterpretation.strip().upper() == "MONOCHROME1" or inverse:
        arr = arr.max() + arr.min() - arr
    return arr


def _pil_header(im: Image.Image, info: ImageInfo, fmt: str) -> None:
    info.format = fmt
    info.columns, info.rows = im.size
    info.photometric = im.mode
    info.bits_stored = 16 if im.mode.startswith("I;16") else _PIL_BITS.get(im.mode)


def _read_pil(path: Path, fmt: str, info: ImageInfo, colour: str, decode: bool) -> np.ndarray | None:
    with Image.open(path, formats=[fmt.upper()]) as im:
        _pil_header(im, info, fmt)
        if getattr(im, "n_frames", 1) > 1:
            raise ImageReadError(path, f"multi-frame {fmt.upper()} ({im.n_frames} frames)")
        if not decode:
            return None
        im.load()
        if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;16"):
            return np.asarray(im)
        if im.mode not in ("LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"):
            raise ImageReadError(path, f"unsupported {fmt.upper()} image mode {im.mode}")
        has_alpha = im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info
        rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if has_alpha and rgba[..., 3].min() < 255:
        raise ImageReadError(path, "image has transparent pixels")
    return _to_grey(rgba[..., :3], path, info, colour)


def _read_npy(path: Path, info: ImageInfo, decode: bool) -> np.ndarray | None:
    arr = np.load(path, allow_pickle=False, mmap_mode=None if decode else "r")
    info.format = "npy"
    info.photometric = f"array {arr.dtype}"
    info.bits_stored = arr.dtype.itemsize * 8
    shape = tuple(n for n in arr.shape if n != 1) if arr.ndim > 2 else arr.shape
    if len(shape) == 2:
        info.rows, info.columns = (int(n) for n in shape)
    if not decode:
        if len(shape) != 2:
            raise ImageReadError(path, f"expected a 2-D array, got shape {arr.shape}")
        return None
    if arr.ndim > 2:
        arr = arr.squeeze()
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == bool):
        raise ImageReadError(path, f"unsupported array dtype {arr.dtype}")
    return arr


def _as_image(arr: np.ndarray, path: Path) -> np.ndarray:
    """Final checks shared by all formats; float32 2-D, finite, not constant."""
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D image, got shape {arr.shape}")
    if arr.size == 0:
        raise ImageReadError(path, "image has no pixels")
    arr = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ImageReadError(path, "image contains NaN or infinite values")
    if arr.min() == arr.max():
        raise ImageReadError(path, f"constant image (every pixel is {arr.flat[0]:g})")
    return arr


def _plausibility(info: ImageInfo) -> None:
    """Warnings for an image that is read but does not look like a radiograph's size."""
    if not (info.rows and info.columns):
        return
    short, long = sorted((info.rows, info.columns))
    if short < _TINY_SIDE:
        info.warnings.append(f"tiny image ({info.rows} x {info.columns} pixels)")
    if long / short > _EXTREME_ASPECT:
        info.warnings.append(f"extreme aspect ratio ({info.rows} x {info.columns} pixels, {long / short:.1f}:1)")


_LEVELS = ("header", "check", "decode")


def _load(path: Path, info: ImageInfo, *, level: str, colour: str) -> np.ndarray | None:
    """Read `path` as far as `level` says, filling `info`; raise ImageReadError if it is unusable.

    ``header``: the format and header only (DICOM read without decompressing, PNG/JPEG/TIFF/NPY not
    decoded). ``check``: also decode PNG/JPEG/TIFF/NPY and colour DICOMs, which is cheap. ``decode``:
    everything, the image :func:`read_image` returns.
    """
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    kind = _sniff(path)
    if kind is None:
        raise _NotAnImage(path, NOT_AN_IMAGE)
    try:
        if kind in ("dicom", "raw-dicom"):
            ds = _dicom_dataset(path, info, sniffed=kind == "dicom", full=level != "header")
            colour_dicom = int(ds.get("SamplesPerPixel", 1) or 1) == 3
            if level == "decode" or (level == "check" and colour_dicom):
                return _decode_dicom(ds, path, info, colour)
            return None
        if kind == "npy":
            return _read_npy(path, info, decode=level != "header")
        return _read_pil(path, kind, info, colour, decode=level != "header")
    except ImageReadError:
        raise
    except Exception as e:  # codec errors, truncated streams, decompression bombs, ...
        fmt = kind.replace("raw-", "")
        raise ImageReadError(path, f"cannot decode {fmt} image ({type(e).__name__}: {e})") from e


def inspect_image(path: str | os.PathLike, *, level: str = "check", colour: str = "refuse",
                  filters: ImportFilter | None = None) -> ImageInfo:
    """What `path` is and whether it is usable, as an :class:`ImageInfo`; never raises for a bad file.

    ``level``: ``"header"`` reads headers only (no pixel is decoded), ``"check"`` (default) also decodes
    PNG, JPEG, TIFF, NPY and colour DICOMs, ``"decode"`` decodes everything as :func:`read_image` does
    (also catching corrupt compressed streams, constant images and header windows that destroy the image).
    ``filters``: an :class:`ImportFilter` whose refusal becomes the reason (None: no filter). Size
    warnings (tiny, elongated) are added for usable images.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
    path = Path(path)
    info = ImageInfo(path)
    try:
        arr = _load(path, info, level=level, colour=colour)
        if arr is not None:
            arr = _as_image(arr, path)
            info.rows, info.columns = arr.shape
    except ImageReadError as e:
        info.reason, info.not_image = e.reason, isinstance(e, _NotAnImage)
        return info
    if info.format != "dicom":
        info.notes.append(f"no DICOM header ({info.format.upper()}): modality, body part and view not checked")
    elif filters is not None:
        info.reason = filters.apply(info)
        if info.reason:
            return info
    _plausibility(info)
    return info


def read_image_info(path: str | os.PathLike, *, colour: str = "refuse") -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image`, and the :class:`ImageInfo` of what was read and done (notes, warnings)."""
    path = Path(path)
    info = ImageInfo(path)
    try:
        arr = _as_image(_load(path, info, level="decode", colour=colour), path)
    except _NotAnImage as e:
        raise ImageReadError(path, e.reason) from None
    info.rows, info.columns = arr.shape
    _plausibility(info)
    return arr, info


def read_image(path: str | os.PathLike, *, colour: str = "refuse") -> np.ndarray:
    """Decode one radiograph to a float32 2-D array where brighter means more attenuation.

    The format (DICOM, PNG, JPEG, TIFF, NPY) is detected from the file's content, not
    its name.  DICOM goes through the modality LUT/rescale and the VOI LUT/window
    (unless the window destroys the image: then the stored values) and MONOCHROME1
    is inverted; 16-bit PNGs and TIFFs keep their full depth; RGB files are accepted
    when their channels agree within :data:`GREY_TOLERANCE` levels, colour ones only
    with ``colour="luminance"``.  Anything unusable -- empty, truncated, not an image,
    colour, multi-frame, constant -- raises :class:`ImageReadError` naming the file and
    the reason.
    """
    return read_image_info(path, colour=colour)[0]


def check_image(path: str | os.PathLike, *, decode: bool = False, colour: str = "refuse") -> None:
    """Raise :class:`ImageReadError` if `path` is not a usable image.

    With ``decode=False`` DICOM files are only read and their header checked
    (no pixel decompression, which dominates the cost of compressed DICOM);
    PNG, JPEG, TIFF and NPY are always decoded as that is cheap.  ``decode=True`` is
    exactly :func:`read_image`, so it also catches corrupt compressed streams and
    constant images.
    """
    info = inspect_image(path, level="decode" if decode else "check", colour=colour)
    if info.reason is not None:
        raise ImageReadError(path, info.reason)


def _resample_filter(scale: float) -> Image.Resampling:
    # Area averaging when shrinking (antialiased, no overshoot); bilinear when enlarging.
    return Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR


def intensity_window(image: np.ndarray) -> tuple[float, float]:
    """The intensities :func:`preprocess` maps to -1 and +1: the 0.5th and 99.5th percentiles
    (estimated on a regular grid of at most 2**18 pixels; min/max if those coincide)."""
    image = np.asarray(image, dtype=np.float32)
    stride = max(1, math.isqrt(image.size // _PERCENTILE_SAMPLE))
    lo, hi = (float(v) for v in np.percentile(image[::stride, ::stride], PERCENTILES))
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        raise ValueError(f"preprocess: constant image (every pixel is {lo:g})")
    return lo, hi


def preprocess(image: np.ndarray, resolution: int, window: tuple[float, float] | None = None, *,
               framing: str = "pad") -> np.ndarray:
    """Normalise and fit a 2-D image into a float32 [resolution, resolution] square in [-1, 1].

    1. Intensities are clipped to their :func:`intensity_window` and mapped linearly to [-1, 1],
       so burned-in labels and dead pixels do not set the contrast. A given ``window`` replaces the
       image's own: a noise-free render under its noisy exam's window is in the units the model
       saw that exam in.
    2. ``framing="pad"`` (default): the image is resized, keeping its aspect ratio, so the long side
       equals `resolution` (area averaging when shrinking, bilinear when enlarging), and the short side
       is padded symmetrically with the background value -1 (letterbox). ``framing="crop"``: the
       centred square of the short side is cut out and resized to `resolution` (no padding; the ends
       of the long side are lost).

    Deterministic; a 2000x2000 image takes roughly 20 ms.
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preprocess expects a non-empty 2-D image, got shape {image.shape}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if not np.isfinite(image).all():
        raise ValueError("preprocess: image contains NaN or infinite values")
    lo, hi = intensity_window(image) if window is None else window
    if hi <= lo:
        raise ValueError(f"preprocess: the window {lo:g} to {hi:g} is empty")
    clipped = np.clip(image, lo, hi)

    rows, cols = image.shape
    if framing == "crop":
        side = min(rows, cols)
        top, left = (rows - side) // 2, (cols - side) // 2
        clipped = clipped[top:top + side, left:left + side]
        rows = cols = side
    scale = resolution / max(rows, cols)
    height = max(1, round(rows * scale))
    width = max(1, round(cols * scale))
    resized = Image.fromarray(np.ascontiguousarray(clipped)).resize((width, height), _resample_filter(scale))
    scaled = (np.asarray(resized, dtype=np.float32) - np.float32(lo)) * np.float32(2 / (hi - lo)) - 1
    out = np.full((resolution, resolution), -1.0, dtype=np.float32)
    top, left = (resolution - height) // 2, (resolution - width) // 2
    out[top:top + height, left:left + width] = np.clip(scaled, -1, 1)
    return out


def load_preprocessed(path: str | os.PathLike, resolution: int, *, colour: str = "refuse",
                      framing: str = "pad") -> np.ndarray:
    """:func:`read_image` followed by :func:`preprocess`."""
    return preprocess(read_image(path, colour=colour), resolution, framing=framing)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] (any shape) -> 0..255 grey uint8, the inverse of :func:`preprocess`'s scale:
    clipped to [-1, 1], then rounded to the nearest grey level (ties to even). Computed in float32,
    the models' precision, so that every image, frame and file of the package shows the same grey."""
    return np.rint((np.clip(np.asarray(images, np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)


def check_image_reason(path: str | os.PathLike, decode: bool = False) -> str | None:
    """:func:`check_image` that returns the reason a file is unusable (None when it is usable)
    instead of raising. It lives here, not in ``cohort.py``, so that spawned workers import this
    module only and not torch."""
    try:
        check_image(path, decode=decode)
    except ImageReadError as e:
        return e.reason
    return None


def load_preprocessed_info(path: str | os.PathLike, resolution: int, colour: str = "refuse",
                           framing: str = "pad") -> tuple[np.ndarray | None, ImageInfo]:
    """:func:`load_preprocessed` as ``(image, info)``, or ``(None, info)`` with ``info.reason`` for an
    unusable file: what :meth:`~seegaan_explore.data.cohort.Cohort.images` runs in its worker
    processes (here for the same reason as :func:`check_image_reason`); ``info`` carries the notes
    and warnings of the decode (near-grey colour, a header window replaced)."""
    try:
        image, info = read_image_info(path, colour=colour)
    except ImageReadError as e:
        return None, ImageInfo(Path(path), reason=e.reason)
    try:
        return preprocess(image, resolution, framing=framing), info
    except ValueError as e:
        info.reason = str(e)
        return None, info


def load_preprocessed_or_reason(path: str | os.PathLike,
                                resolution: int) -> tuple[np.ndarray | None, str | None]:
    """:func:`load_preprocessed` as ``(image, None)``, or ``(None, reason)`` for an unusable file."""
    image, info = load_preprocessed_info(path, resolution)
    return image, info.reason
