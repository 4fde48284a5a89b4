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

from seegaan_explore.data.images import (
    ImageReadError,
    check_image,
    intensity_window,
    load_preprocessed,
    preprocess,
    read_image,
)

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
    BSD-licensed python-gdcm plugin (pylibjpeg-libjpeg would be GPL)."""
    pydicom_data = pytest.importorskip("pydicom.data")
    path = pydicom_data.get_testdata_file("JPEG-LL.dcm")
    if path is None:
        pytest.skip("JPEG-LL.dcm unavailable (pip install pydicom-data)")
    image = read_image(path)
    assert image.shape == (1024, 256)
    assert image.std() > 0
    assert preprocess(image, 64).shape == (64, 64)
