import math

import numpy as np
import pytest

from seegaan_explore.explore.quality import assess, proximity, psnr_db


def test_assess_measures_shortfall_and_leakage():
    amounts = np.linspace(-2, 2, 9)
    measured = 0.5 * amounts + 3.0            # half of the intended change
    age = 10 * amounts + 60                   # 10 years per unit of the target
    view = np.zeros_like(amounts)             # untouched
    s = assess(amounts, measured, others={"age": age, "view": view})
    assert s["monotonicity"] == pytest.approx(1.0)
    assert s["achieved_over_intended"] == pytest.approx(0.5)
    assert s["calibrated_scale"] == pytest.approx(2.0)
    assert s["leakage"]["age"] == pytest.approx(10.0)
    assert s["leakage"]["view"] == pytest.approx(0.0)


def test_assess_non_monotone_path_and_intended_values():
    amounts = np.arange(5.0)
    measured = np.array([0.0, 2.0, 1.0, 3.0, 2.5])
    s = assess(amounts, measured, intended=np.log([1, 2, 4, 8, 16.0]))
    assert 0 < s["monotonicity"] < 1
    with pytest.raises(ValueError, match="3 or more"):
        assess([0, 1], [0, 1])
    with pytest.raises(ValueError, match="one of each per frame"):
        assess([0, 1, 2], [0, 1])


def test_proximity_local_versus_global_change():
    local = np.zeros((3, 20, 20))
    local[:, :4, :10] = 1.0                   # 10% of the pixels change
    spread = np.ones((3, 20, 20))
    assert proximity(local) == pytest.approx(1.0)
    assert proximity(spread) == pytest.approx(0.0)


def test_reconstruction_psnr():
    a = np.zeros((8, 8))
    assert psnr_db(a, a + 0.02) == pytest.approx(10 * math.log10(4 / 0.0004))
    s = assess(np.arange(4.0), np.arange(4.0), reconstruction=a, original=a + 0.02, differences=np.ones((4, 8, 8)))
    assert s["reconstruction_psnr_db"] == pytest.approx(40.0)


def test_one_psnr_for_arrays_and_training_tensors():
    import torch

    from seegaan_explore import metrics
    from seegaan_explore.train import loop

    assert psnr_db is metrics.psnr_db and loop.psnr_db is metrics.psnr_db
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (2, 3, 1, 16, 16)).astype(np.float32)
    assert psnr_db(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(psnr_db(a, b), abs=1e-5)
    assert psnr_db(a, a) == psnr_db(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(10 * math.log10(4e12))


@pytest.mark.parametrize("sd", [1.0, 2.5, 6.0])
def test_the_blur_a_psnr_equals_is_the_blur_that_gives_it(sd):
    """A reconstruction that is the image blurred by ``sd`` pixels is put at that blur."""
    from scipy.ndimage import gaussian_filter

    from seegaan_explore.explore.quality import equivalent_blur

    rng = np.random.default_rng(0)
    image = gaussian_filter(rng.normal(size=(96, 96)), 1.5).astype(np.float32)
    image = image / np.abs(image).max()
    blurred = gaussian_filter(image, sd, mode="nearest")
    assert equivalent_blur(image, psnr_db(blurred, image)) == pytest.approx(sd, rel=0.1)
