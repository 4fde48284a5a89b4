"""Reading radiographs of every supported format, rejecting unusable files, and preprocessing."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from seegaan_explore.data.formats import ImageReadError, ImportFilter, image_format
from seegaan_explore.data.images import intensity_window, load_preprocessed, preprocess
from seegaan_explore.data.readers import GREY_TOLERANCE, check_image, inspect_image, read_image, read_image_info

RNG = np.random.default_rng(1234)


def _grey(rows=40, cols=50, high=4096, dtype=np.uint16):
    return RNG.integers(0, high, (rows, cols)).astype(dtype)


# --------------------------------------------------------------------------- real CR (pydicom-data)

def test_rg1_uncompressed_and_jpeg2000_agree(rg1_dicom, rg1_j2k_dicom):
    # RG1_J2KR is JPEG 2000 *lossless* (reversible), so the codec tolerance is zero.
    plain, j2k = read_image(rg1_dicom), read_image(rg1_j2k_dicom)
    np.testing.assert_allclose(j2k, plain, rtol=0, atol=0)
    np.testing.assert_allclose(preprocess(j2k, 256), preprocess(plain, 256), rtol=0, atol=0)


def test_rg1_monochrome1_is_inverted(rg1_dicom):
    assert pydicom.dcmread(rg1_dicom, stop_before_pixels=True).PhotometricInterpretation == "MONOCHROME1"

    def lungs_minus_mediastinum(img):  # coarse regions of a PA chest radiograph
        r, c = img.shape
        lungs = np.concatenate([img[r // 4:r // 2, c * 15 // 100:c * 35 // 100].ravel(),
                                img[r // 4:r // 2, c * 65 // 100:c * 85 // 100].ravel()])
        mediastinum = img[r // 4:r * 3 // 4, c * 45 // 100:c * 55 // 100]
        return lungs.mean() - mediastinum.mean()

    image = preprocess(read_image(rg1_dicom), 256)
    assert lungs_minus_mediastinum(image) < -0.2  # air-filled lungs dark, spine/heart bright
    stored = pydicom.dcmread(rg1_dicom).pixel_array.astype(np.float32)
    assert lungs_minus_mediastinum(stored) > 0  # the stored values run the other way


# --------------------------------------------------------------------------- DICOM grey pipeline

@pytest.mark.parametrize("bits", [8, 12, 15, 16])
def test_dicom_bit_depths_read_exactly(tmp_path, write_dicom, bits):
    pixels = _grey(high=2**bits, dtype=np.uint8 if bits == 8 else np.uint16)
    path = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=bits)
    image = read_image(path)
    assert image.dtype == np.float32 and image.shape == pixels.shape
    np.testing.assert_array_equal(image, pixels)


def test_dicom_signed_pixels_and_rescale(tmp_path, write_dicom):
    pixels = RNG.integers(-1000, 3000, (400, 400)).astype(np.int16)  # large: lookup-table path
    path = write_dicom(tmp_path / "ct.dcm", pixels, RescaleSlope=2, RescaleIntercept=-1024)
    np.testing.assert_array_equal(read_image(path), pixels.astype(np.float32) * 2 - 1024)


def test_dicom_windowing_matches_pydicom(tmp_path, write_dicom):
    pixels = _grey(512, 512, high=4096)  # > 2**17 pixels: lookup-table path
    path = write_dicom(tmp_path / "w.dcm", pixels, bits_stored=12, WindowCenter=1500, WindowWidth=800)
    ds = pydicom.dcmread(path)
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    image = read_image(path)
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    assert image[pixels < 1100].max() == image.min()  # below the window: saturated dark
    assert image[pixels > 1900].min() == image.max()  # above the window: saturated bright


@pytest.mark.parametrize("elements", [{"photometric": "MONOCHROME1"},
                                      {"PresentationLUTShape": "INVERSE"},
                                      {"photometric": "MONOCHROME1", "PresentationLUTShape": "INVERSE"}])
def test_dicom_inversion(tmp_path, write_dicom, elements):
    pixels = _grey()
    path = write_dicom(tmp_path / "inv.dcm", pixels, **elements)
    np.testing.assert_array_equal(read_image(path), float(pixels.max()) + pixels.min() - pixels)


def test_dicom_without_preamble_and_misnamed_files(tmp_path, write_dicom):
    pixels = _grey()
    ds = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", pixels))
    raw = tmp_path / "IM0001"
    ds.preamble, ds.file_meta = None, FileMetaDataset()  # raw dataset: no preamble, DICM or meta
    ds.save_as(raw, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert raw.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(read_image(raw), pixels)

    dicom_named_png = tmp_path / "really_dicom.png"
    dicom_named_png.write_bytes((tmp_path / "a.dcm").read_bytes())
    np.testing.assert_array_equal(read_image(dicom_named_png), pixels)
    png_named_dcm = tmp_path / "really_png.dcm"
    Image.fromarray(pixels.astype(np.uint8)).save(png_named_dcm, format="PNG")
    np.testing.assert_array_equal(read_image(png_named_dcm), pixels.astype(np.uint8))


# --------------------------------------------------------------------------- PNG / JPEG / NPY

def test_png_16bit_keeps_full_depth(tmp_path):
    pixels = _grey(high=65536)
    pixels[0, 0], pixels[0, 1] = 0, 65535
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, pixels)


def test_grey_stored_as_rgb_is_accepted(tmp_path):
    grey = _grey(64, 64, high=256, dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), grey)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.jpg", quality=90)
    Image.fromarray(grey).save(tmp_path / "grey.jpg", quality=90)
    # lossy, but the grey content survives: close to the same image saved as greyscale JPEG
    assert np.abs(read_image(tmp_path / "rgb.jpg") - read_image(tmp_path / "grey.jpg")).mean() < 2


def test_npy_reads_2d_and_squeezes_singletons(tmp_path):
    pixels = RNG.normal(size=(30, 20)).astype(np.float64)
    np.save(tmp_path / "a.npy", pixels[None, :, :, None])
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), pixels.astype(np.float32))


# --------------------------------------------------------------------------- unusable files

def test_unusable_files_raise_with_file_and_reason(bad_image_files):
    for name, (path, words) in bad_image_files.items():
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert info.value.path == path, name
        assert str(path) in str(info.value) and words in info.value.reason.lower(), (name, str(info.value))
        assert isinstance(info.value, ValueError)
        copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
        assert (copy.path, copy.reason) == (info.value.path, info.value.reason)
        assert info.value.args == (str(info.value),)  # what a command prints: the file and the reason


def test_check_image_header_only_vs_decode(tmp_path, write_dicom, bad_image_files):
    constant = write_dicom(tmp_path / "constant.dcm", np.full((32, 32), 100, np.uint16))
    check_image(constant)  # header is fine: not decoded
    with pytest.raises(ImageReadError, match="constant"):
        check_image(constant, decode=True)
    for name, (path, words) in bad_image_files.items():
        with pytest.raises(ImageReadError) as info:
            check_image(path)
        assert words in info.value.reason.lower(), name


# --------------------------------------------------------------------------- preprocess

@pytest.mark.parametrize("shape,padded_axis", [((100, 300), 0), ((300, 100), 1)])
def test_preprocess_keeps_aspect_and_pads_symmetrically(shape, padded_axis):
    image = RNG.uniform(10, 20, shape).astype(np.float32)
    out = preprocess(image, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert out.min() == -1 and np.abs(out).max() <= 1
    content = np.flatnonzero((out != -1).any(axis=1 - padded_axis))
    expected = round(64 * min(shape) / max(shape))
    assert len(content) == expected == content[-1] - content[0] + 1
    before, after = content[0], 64 - 1 - content[-1]
    assert abs(before - after) <= 1 and before > 0
    # the long side is filled edge to edge
    assert (out != -1).any(axis=padded_axis).all()


def test_preprocess_clips_percentiles_so_outliers_do_not_set_contrast():
    image = RNG.uniform(0, 1, (256, 256)).astype(np.float32)
    image[0, :5] = 1e6  # burned-in label / dead pixels
    out = preprocess(image, 256)  # same size: no resampling
    assert abs((out == -1).mean() - 0.005) < 0.003 and abs((out == 1).mean() - 0.005) < 0.003
    assert np.percentile(out, 90) > 0.7  # without clipping everything would sit near -1


def test_a_given_window_puts_a_noise_free_image_in_its_noisy_exams_units():
    clean = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    noisy = clean + RNG.normal(0, 0.1, clean.shape).astype(np.float32)
    window = intensity_window(noisy)
    assert window == intensity_window(noisy.copy()) and window[0] < 0 < 1 < window[1]  # noise widens it
    np.testing.assert_array_equal(preprocess(noisy, 64, window), preprocess(noisy, 64))
    under_noisy = preprocess(clean, 64, window)
    expected = (clean - window[0]) * 2 / (window[1] - window[0]) - 1
    np.testing.assert_allclose(under_noisy, expected, atol=1e-5)
    assert under_noisy.max() < 0.9 and preprocess(clean, 64).max() == 1  # its own window would stretch it
    with pytest.raises(ValueError, match="window 1 to 1 is empty"):
        preprocess(clean, 64, (1.0, 1.0))


def test_preprocess_upsamples_small_images_and_is_deterministic():
    image = RNG.uniform(0, 1, (12, 20))
    out = preprocess(image, 64)
    assert out.shape == (64, 64)
    np.testing.assert_array_equal(out, preprocess(image.copy(), 64))


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3)), np.ones((8, 8)), np.full((8, 8), np.nan), np.zeros((0, 5))])
def test_preprocess_rejects_unusable_arrays(bad):
    with pytest.raises(ValueError):
        preprocess(bad, 32)


def test_preprocess_is_fast_on_a_full_size_radiograph():
    image = RNG.integers(0, 2**15, (2000, 2000)).astype(np.uint16)
    preprocess(image, 256)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        preprocess(image, 256)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.15, times  # ~25 ms on a laptop core


def test_load_preprocessed_is_read_then_preprocess(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "a.dcm", _grey(90, 60))
    np.testing.assert_array_equal(load_preprocessed(path, 32), preprocess(read_image(path), 32))


def test_jpeg_lossless_dicom_decodes_through_gdcm():
    """JPEG Lossless (process 14) is the usual CR/DX transfer syntax; pydicom decodes it with the
    python-gdcm plugin."""
    pydicom_data = pytest.importorskip("pydicom.data")
    path = pydicom_data.get_testdata_file("JPEG-LL.dcm")
    if path is None:
        pytest.skip("JPEG-LL.dcm unavailable (pip install pydicom-data)")
    image = read_image(path)
    assert image.shape == (1024, 256)
    assert image.std() > 0
    assert preprocess(image, 64).shape == (64, 64)


def test_12bit_jpeg_extended_dicom_decodes(tmp_path):
    """JPEG Extended (process 2 and 4, 1.2.840.10008.1.2.4.51) with 12-bit samples, common in older CR
    archives: GDCM and Pillow refuse 12 bits, pylibjpeg-libjpeg decodes it. pydicom's JPGExtended.dcm
    is such a file (its JPEG-lossy.dcm is the same image with a broken scan header)."""
    pydicom_data = pytest.importorskip("pydicom.data")
    source = pydicom_data.get_testdata_file("JPGExtended.dcm")
    ds = pydicom.dcmread(source)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51" and ds.BitsStored == 12
    image = read_image(source)
    assert image.shape == (1024, 256) and image.std() > 0 and image.max() > 255  # more than 8 bits survive
    ds.Modality, ds.BodyPartExamined = "CR", "CHEST"  # as a CR chest film it is imported
    ds.save_as(tmp_path / "cr.dcm")
    info = inspect_image(tmp_path / "cr.dcm", level="decode", filters=ImportFilter())
    assert info.ok and info.bits_stored == 12, info
    np.testing.assert_array_equal(read_image(tmp_path / "cr.dcm"), image)


# --------------------------------------------------------------------------- recognised by content

def test_files_are_recognised_by_content_whatever_their_name(tmp_path, write_dicom):
    pixels = _grey(60, 50)
    ima = write_dicom(tmp_path / "1.3.12.2.1107.5.IMA", pixels)  # Siemens names its DICOMs *.IMA
    bare = write_dicom(tmp_path / "I0000123", pixels)
    Image.fromarray(pixels).save(tmp_path / "film.tif")  # 16-bit TIFF
    Image.fromarray((pixels >> 4).astype(np.uint8)).save(tmp_path / "film8.tiff")
    for path in (ima, bare):
        assert image_format(path) == "dicom"
        np.testing.assert_array_equal(read_image(path), pixels)
    assert image_format(tmp_path / "film.tif") == "tiff"
    np.testing.assert_array_equal(read_image(tmp_path / "film.tif"), pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "film8.tiff"), pixels >> 4)
    info = inspect_image(tmp_path / "film.tif", level="header")
    assert (info.format, info.rows, info.columns, info.bits_stored) == ("tiff", 60, 50, 16)
    assert any("no DICOM header" in n for n in info.notes)
    (tmp_path / "notes.txt").write_text("a report, not an image\n")
    text = inspect_image(tmp_path / "notes.txt")
    assert text.not_image and "not a recognised image" in text.reason and image_format(tmp_path / "notes.txt") is None


def test_truncated_dicom_is_named_at_every_level(tmp_path, write_dicom):
    whole = write_dicom(tmp_path / "a.dcm", _grey(64, 64)).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[:-1000])
    for level in ("check", "decode"):
        info = inspect_image(tmp_path / "cut.dcm", level=level)
        assert "truncated" in info.reason and not info.not_image, (level, info.reason)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.dcm")


# --------------------------------------------------------------------------- header windows

def test_window_width_zero_falls_back_to_the_stored_values_with_a_warning(tmp_path, write_dicom):
    pixels = _grey(64, 64)
    path = write_dicom(tmp_path / "ww0.dcm", pixels, bits_stored=12, WindowCenter=2048, WindowWidth=0)
    image, info = read_image_info(path)
    np.testing.assert_array_equal(image, pixels)
    assert any("window unusable (width 0)" in w for w in info.warnings), info.warnings
    assert any("width 0" in w for w in inspect_image(path, level="header").warnings)  # known from the header


def test_a_ct_window_that_flattens_a_radiograph_falls_back_with_a_warning(tmp_path, write_dicom):
    pixels = RNG.integers(500, 3500, (64, 64)).astype(np.uint16)  # a radiograph's range
    path = write_dicom(tmp_path / "ct_window.dcm", pixels, bits_stored=12, WindowCenter=40, WindowWidth=400)
    image, info = read_image_info(path)  # the window would make it "constant"
    np.testing.assert_array_equal(image, pixels)
    assert any("window unusable (center 40" in w and "unsaturated" in w for w in info.warnings), info.warnings
    assert inspect_image(path, level="decode").ok
    good = write_dicom(tmp_path / "fine.dcm", pixels, bits_stored=12, WindowCenter=2000, WindowWidth=3000)
    assert read_image_info(good)[1].warnings == []  # a window that keeps the image is applied, silently


# --------------------------------------------------------------------------- colour

def test_near_grey_rgb_is_accepted_with_a_note_and_true_colour_refused_or_converted(tmp_path):
    grey = _grey(64, 64, high=240, dtype=np.int16)
    near = np.stack([grey, grey + 5, grey + 11], -1).astype(np.uint8)  # JPEG-like channel noise: 11 levels
    Image.fromarray(near).save(tmp_path / "near.png")
    image, info = read_image_info(tmp_path / "near.png")
    np.testing.assert_allclose(image, grey + 16 / 3, atol=1e-4)
    assert any("near-grey RGB (channels differ by up to 11 levels)" in n for n in info.notes), info.notes

    colour = np.stack([grey, 240 - grey, grey // 2], -1).astype(np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="colour image.*luminance"):
        read_image(tmp_path / "colour.png")
    image, info = read_image_info(tmp_path / "colour.png", colour="luminance")
    expected = colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    assert any("converted to luminance" in n for n in info.notes)
    assert inspect_image(tmp_path / "colour.png", colour="luminance").ok
    with pytest.raises(ValueError, match="colour must be one of"):
        read_image(tmp_path / "colour.png", colour="grey")
    assert GREY_TOLERANCE >= 12  # the JPEG noise measured on a real cohort


def test_near_grey_rgb_dicom_is_accepted(tmp_path, write_dicom):
    grey = _grey(32, 32, high=240, dtype=np.int16)
    path = write_dicom(tmp_path / "sc.dcm", np.stack([grey, grey + 3, grey + 6], -1).astype(np.uint8), "RGB")
    image, info = read_image_info(path)
    np.testing.assert_allclose(image, grey + 3, atol=1e-4)
    assert any("near-grey" in n for n in info.notes)


# --------------------------------------------------------------------------- not a chest radiograph

@pytest.mark.parametrize("elements,words", [
    ({"Modality": "CT"}, "modality CT"),
    ({"Modality": "MR"}, "modality MR"),
    ({"Modality": "NM"}, "modality NM"),
    ({"Modality": "US"}, "modality US"),
    ({"Modality": "RTDOSE"}, "modality RTDOSE"),
    ({"Modality": "SEG"}, "modality SEG"),
    ({"Modality": "CR", "BodyPartExamined": "CSPINE"}, "body part CSPINE"),
    ({"Modality": "DX", "BodyPartExamined": "HAND"}, "body part HAND"),
    ({"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "CC"}, "view position CC"),
])
def test_the_filter_skips_what_is_not_a_chest_radiograph_with_the_reason(tmp_path, write_dicom, elements, words):
    path = write_dicom(tmp_path / "x.dcm", _grey(), **elements)
    info = inspect_image(path, filters=ImportFilter())
    assert info.reason.startswith(words) and "not a chest" in info.reason, info.reason
    assert inspect_image(path, filters=ImportFilter.any()).ok  # overridable
    assert inspect_image(path).ok  # no filter, no judgement


@pytest.mark.parametrize("elements", [
    {"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "PA"},
    {"Modality": "DX", "BodyPartExamined": "THORAX", "ViewPosition": "AP"},
    {"Modality": "DX", "BodyPartExamined": "PORT CHEST", "ViewPosition": "LL"},
    {"Modality": "CR"},  # body part and view absent
    {"Modality": "DX", "BodyPartExamined": "", "ViewPosition": ""},
])
def test_the_filter_keeps_cr_and_dx_chest(tmp_path, write_dicom, elements):
    info = inspect_image(write_dicom(tmp_path / "x.dcm", _grey(80, 70), **elements), filters=ImportFilter())
    assert info.ok and info.warnings == [], info


def test_the_filter_warns_about_modality_ot_and_can_be_narrowed(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "ot.dcm", _grey())  # the fixture writes Modality OT (secondary capture)
    info = inspect_image(path, filters=ImportFilter())
    assert info.ok and any("modality OT" in w for w in info.warnings)
    narrow = ImportFilter(modalities=("DX",), warn_modalities=())
    assert "modality OT" in inspect_image(path, filters=narrow).reason
    assert "modality DX" in narrow.describe()


def test_what_passes_but_looks_wrong_is_warned(tmp_path):
    Image.fromarray(_grey(40, 40, high=256, dtype=np.uint8)).save(tmp_path / "tiny.png")
    np.save(tmp_path / "strip.npy", RNG.normal(size=(5, 512)))
    Image.fromarray(_grey(300, 240, high=256, dtype=np.uint8)).save(tmp_path / "film.png")
    tiny, strip, film = (inspect_image(tmp_path / n, filters=ImportFilter()) for n in
                         ("tiny.png", "strip.npy", "film.png"))
    assert tiny.ok and tiny.warnings == ["tiny image (40 x 40 pixels)"]
    assert strip.ok and any("tiny image (5 x 512" in w for w in strip.warnings)
    assert any("extreme aspect ratio (5 x 512 pixels, 102.4:1)" in w for w in strip.warnings)
    assert film.ok and film.warnings == []
    assert inspect_image(tmp_path / "strip.npy", level="header").warnings == strip.warnings  # no decode needed


# --------------------------------------------------------------------------- framing

@pytest.mark.parametrize("shape", [(100, 300), (300, 100)])
def test_crop_framing_fills_the_square_with_the_centre(shape):
    image = RNG.uniform(10, 20, shape).astype(np.float32)
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image[top:top + side, left:left + side] += 100  # the centre square is bright, the ends dark
    pad, crop = preprocess(image, 50), preprocess(image, 50, framing="crop")
    assert pad.shape == crop.shape == (50, 50)
    assert (pad == -1).all(axis=1 - int(shape[0] > shape[1])).sum() > 0  # pad: rows/columns of padding
    assert crop.min() > 0.5  # crop: only the bright centre, no padding, no dark ends
    np.testing.assert_array_equal(crop, preprocess(image[top:top + side, left:left + side], 50, (
        *intensity_window(image),)))
    np.testing.assert_array_equal(pad, preprocess(image, 50, framing="pad"))  # pad is the default
    with pytest.raises(ValueError, match="framing must be one of"):
        preprocess(image, 50, framing="stretch")


def test_without_the_gpl_decoder_a_12bit_jpeg_says_how_to_get_it(monkeypatch):
    """The 12-bit JPEG Extended decoder is GPL-3 licensed and opt-in: its absence is named with the fix."""
    from types import SimpleNamespace

    import seegaan_explore.data.formats as formats

    pydicom_data = pytest.importorskip("pydicom.data")
    source = pydicom_data.get_testdata_file("JPGExtended.dcm")
    # as installed without the extra: gdcm and pillow are there, and decode only 8-bit JPEG Extended
    monkeypatch.setattr(formats, "get_decoder", lambda syntax: SimpleNamespace(
        is_available=True, available_plugins=("gdcm", "pillow"), missing_dependencies=[]))
    with pytest.raises(ImageReadError, match=r"12-bit.*seegaan-explore\[jpeg-extended\]"):
        read_image(source)
    info = inspect_image(source, level="header")  # the header says so, before anything is decoded
    assert not info.ok and "jpeg-extended" in info.reason


def test_an_export_stored_sideways_is_turned_upright_by_its_exif_orientation(tmp_path):
    upright = np.zeros((120, 100), np.uint8)
    upright[:20] = 255  # a bright top edge shows which way is up
    stored = Image.fromarray(np.rot90(upright, 1))  # stored turned a quarter left, 100 tall, 120 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "x.jpg", exif=exif, quality=95)
    info = inspect_image(tmp_path / "x.jpg", level="header")
    assert (info.rows, info.columns) == (120, 100) and "EXIF orientation (6)" in info.notes[0]
    image = read_image(tmp_path / "x.jpg")
    assert image.shape == (120, 100)
    assert image[:20].mean() > 200 and image[40:].mean() < 30


@pytest.mark.parametrize("written, patched, words", [
    ("1.2.840.10008.1.2.4.91", "1.3.46.670589.33.1.4.1", "unknown transfer syntax 1.3.46.670589.33.1.4.1"),
    ("1.2.840.10008.1.2.4.100", None, "no decoder exists for transfer syntax 'MPEG2"),
])
def test_a_dicom_in_a_private_or_video_syntax_is_refused_naming_it(tmp_path, written, patched, words):
    """A vendor's private transfer syntax (here Philips'), or video, names the syntax in the reason."""
    import pydicom
    from pydicom.uid import UID

    source = pytest.importorskip("pydicom.data").get_testdata_file("RG1_J2KI.dcm")
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = UID(written)
    ds.save_as(tmp_path / "x.dcm")
    if patched:  # pydicom will not write an unknown syntax: put it in the bytes, same length
        data = (tmp_path / "x.dcm").read_bytes()
        (tmp_path / "x.dcm").write_bytes(data.replace(written.encode(), patched.encode(), 1))
    info = inspect_image(tmp_path / "x.dcm", level="header")
    assert not info.ok and words in info.reason
