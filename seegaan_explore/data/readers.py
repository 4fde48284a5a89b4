"""Decoding a radiograph's pixels into one convention: float32, brighter means more attenuation.

The format-specific work lives here: DICOM's modality LUT, VOI window (replaced when it destroys the
image) and MONOCHROME1 inversion, PNG/JPEG/TIFF through PIL, NPY arrays, and turning (near-)grey RGB
into grey. :func:`inspect_image` says without raising whether a file is usable and why not;
:func:`read_image` decodes it or raises :class:`~seegaan_explore.data.formats.ImageReadError`. It is
separate from :mod:`~seegaan_explore.data.formats` (what a file is, header only) and from
:mod:`~seegaan_explore.data.images` (making the model's input of the decoded image) because each
of the three answers a different question and the cheap ones must not pay for the expensive ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from PIL import ExifTags, Image, ImageOps
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from .formats import (
    NOT_AN_IMAGE,
    ImageInfo,
    ImageReadError,
    ImportFilter,
    NotAnImage,
    dicom_dataset,
    sniff,
    window_width,
)

__all__ = [
    "COLOUR_MODES",
    "GREY_TOLERANCE",
    "check_image",
    "inspect_image",
    "read_image",
    "read_image_info",
    "read_radiograph",
]

#: What to do with a colour (RGB) image whose channels differ by more than :data:`GREY_TOLERANCE`:
#: ``"refuse"`` it (the default) or convert it to its ``"luminance"`` (ITU-R BT.601 luma).
COLOUR_MODES = ("refuse", "luminance")

#: RGB images whose channels differ by at most this many 8-bit levels anywhere are grey: lossy JPEG
#: coding of a grey image leaves a few levels of colour noise (4-12 measured on a real cohort). Up to 2
#: levels the image is taken as grey silently; above, with a note.
GREY_TOLERANCE = 16

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

# Bits per sample of PIL image modes (16-bit modes are "I;16...").
_PIL_BITS = {"1": 1, "L": 8, "P": 8, "LA": 8, "PA": 8, "RGB": 8, "RGBA": 8, "RGBX": 8, "CMYK": 8, "YCbCr": 8,
             "I": 32, "F": 32}


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
    width = window_width(ds)
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
    with Image.open(path, formats=[fmt.upper()]) as opened:
        _pil_header(opened, info, fmt)
        if getattr(opened, "n_frames", 1) > 1:
            raise ImageReadError(path, f"multi-frame {fmt.upper()} ({opened.n_frames} frames)")
        # a phone's or scanner's export is stored sideways and says so in its EXIF orientation
        # (a PNG's getexif() decodes the whole image to look behind the pixels: only ask where it is ahead)
        has_exif = fmt != "png" or "exif" in opened.info
        orientation = opened.getexif().get(ExifTags.Base.Orientation, 1) if has_exif else 1
        if orientation in range(2, 9):
            info.notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
            if orientation >= 5:  # a quarter turn
                info.columns, info.rows = info.rows, info.columns
        if not decode:
            return None
        im = ImageOps.exif_transpose(opened) if orientation in range(2, 9) else opened
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


def _load(path: Path, info: ImageInfo, *, level: str, colour: str,
          filters: ImportFilter | None = None) -> np.ndarray | None:
    """Read `path` as far as `level` says, filling `info`; raise ImageReadError if it is unusable.

    ``header``: the format and header only (DICOM read without decompressing, PNG/JPEG/TIFF/NPY not
    decoded). ``check``: also decode PNG/JPEG/TIFF/NPY and colour DICOMs, which is cheap. ``decode``:
    everything, the image :func:`read_image` returns. A DICOM that ``filters`` refuses is refused
    before its pixels are read: an ultrasound is skipped as one, not as a colour image.
    """
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    kind = sniff(path)
    if kind is None:
        raise NotAnImage(path, NOT_AN_IMAGE)
    try:
        if kind in ("dicom", "raw-dicom"):
            ds = dicom_dataset(path, info, sniffed=kind == "dicom", full=level != "header")
            refusal = filters.apply(info) if filters is not None else None
            if refusal:
                raise ImageReadError(path, refusal)
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
    """What `path` is and whether it is usable, as an :class:`~seegaan_explore.data.formats.ImageInfo`;
    never raises for a bad file.

    ``level``: ``"header"`` reads headers only (no pixel is decoded), ``"check"`` (default) also decodes
    PNG, JPEG, TIFF, NPY and colour DICOMs, ``"decode"`` decodes everything as :func:`read_image` does
    (also catching corrupt compressed streams, constant images and header windows that destroy the image).
    ``filters``: an :class:`~seegaan_explore.data.formats.ImportFilter` whose refusal becomes the reason
    (None: no filter). Size warnings (tiny, elongated) are added for usable images.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
    path = Path(path)
    info = ImageInfo(path)
    try:
        arr = _load(path, info, level=level, colour=colour, filters=filters)
        if arr is not None:
            arr = _as_image(arr, path)
            info.rows, info.columns = arr.shape
    except ImageReadError as e:
        info.reason, info.not_image = e.reason, isinstance(e, NotAnImage)
        return info
    if info.format != "dicom":
        info.notes.append(f"no DICOM header ({info.format.upper()}): modality, body part and view not checked")
    _plausibility(info)
    return info


def read_image_info(path: str | os.PathLike, *, colour: str = "refuse") -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image`, and the :class:`~seegaan_explore.data.formats.ImageInfo` of what was read and
    done (notes, warnings)."""
    path = Path(path)
    info = ImageInfo(path)
    try:
        arr = _as_image(_load(path, info, level="decode", colour=colour), path)
    except NotAnImage as e:
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
    colour, multi-frame, constant -- raises :class:`~seegaan_explore.data.formats.ImageReadError` naming the file and
    the reason.
    """
    return read_image_info(path, colour=colour)[0]


def read_radiograph(path: str | os.PathLike, *, filters: ImportFilter | None = None,
                    colour: str = "refuse") -> np.ndarray:
    """:func:`read_image` of one file a user names (a command's ``--image``, an upload), refused as a
    cohort's import refuses it: a DICOM whose header says it is no chest radiograph (``filters``,
    default :class:`~seegaan_explore.data.formats.ImportFilter`'s: a CT, an extremity) raises
    :class:`~seegaan_explore.data.formats.ImageReadError` saying so, instead of becoming a film."""
    info = inspect_image(path, level="header", filters=ImportFilter() if filters is None else filters)
    if info.reason is not None:
        raise ImageReadError(path, info.reason)
    return read_image(path, colour=colour)


def check_image(path: str | os.PathLike, *, decode: bool = False, colour: str = "refuse") -> None:
    """Raise :class:`~seegaan_explore.data.formats.ImageReadError` if `path` is not a usable image.

    With ``decode=False`` DICOM files are only read and their header checked
    (no pixel decompression, which dominates the cost of compressed DICOM);
    PNG, JPEG, TIFF and NPY are always decoded as that is cheap.  ``decode=True`` is
    exactly :func:`read_image`, so it also catches corrupt compressed streams and
    constant images.
    """
    info = inspect_image(path, level="decode" if decode else "check", colour=colour)
    if info.reason is not None:
        raise ImageReadError(path, info.reason)
