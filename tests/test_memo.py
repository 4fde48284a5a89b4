"""What a dashboard kernel computes from weights and pixels is computed once per content: a second
start reads it from disk, a changed network or image computes it again, and a damaged or unwritable
cache costs time, never the result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seegaan_explore.explore import memo
from seegaan_explore.explore.memo import array_digest, remembered, weights_digest
from seegaan_explore.explore.quality import cohort_psnr
from seegaan_explore.explore.study import Study
from seegaan_explore.model.config import preset_config
from seegaan_explore.model.seegaan import SeeGaan
from seegaan_explore.store import content_key


class Counting:
    """``compute`` for :func:`remembered` that counts its calls."""

    def __init__(self, value: float):
        self.value, self.calls = value, 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"a": [self.value, 2.0], "b": np.float32([3.0, 4.0])})


def test_a_table_is_computed_once_per_content_and_read_back_as_computed(tmp_path):
    compute = Counting(1.0)
    first = remembered(tmp_path, ["readings", "weights-1", "images-1"], compute)
    again = remembered(tmp_path, ["readings", "weights-1", "images-1"], compute)
    assert compute.calls == 1
    pd.testing.assert_frame_equal(first, again)
    assert list(again.columns) == ["a", "b"] and (again.dtypes == np.float64).all()
    other = remembered(tmp_path, ["readings", "weights-2", "images-1"], Counting(5.0))
    assert other["a"].iloc[0] == 5.0  # another network: its own entry


def test_what_cannot_be_hashed_is_computed_every_time_and_never_kept(tmp_path):
    compute = Counting(1.0)
    for _ in range(2):
        remembered(tmp_path, ["readings", None, "images-1"], compute)
    assert compute.calls == 2 and not (tmp_path / "memo").exists()


def test_a_damaged_entry_is_computed_again(tmp_path):
    compute = Counting(1.0)
    remembered(tmp_path, ["readings", "w"], compute)
    (array,) = (tmp_path / "memo").glob("*.npy")
    array.write_bytes(array.read_bytes()[:20])  # truncated, as by a full disk
    assert remembered(tmp_path, ["readings", "w"], compute)["a"].tolist() == [1.0, 2.0]
    assert compute.calls == 2


def test_an_unwritable_cache_warns_and_returns_the_result(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not keep a computed table"):
        frame = remembered(blocked, ["readings", "w"], Counting(1.0))
    assert frame["a"].tolist() == [1.0, 2.0]


def test_the_memo_keeps_its_limit_by_dropping_the_tables_read_least_recently(tmp_path, monkeypatch):
    def folder_bytes() -> int:
        return sum(f.stat().st_size for f in (tmp_path / "memo").iterdir())

    computes = {name: Counting(float(k)) for k, name in enumerate("abcdef")}
    remembered(tmp_path, ["t", "a"], computes["a"])
    monkeypatch.setattr(memo, "_TRIM_EVERY", 1)
    monkeypatch.setattr(memo, "MEMO_LIMIT_BYTES", int(4.5 * folder_bytes()))  # room for four tables
    for name in "bcd":
        remembered(tmp_path, ["t", name], computes[name])
    remembered(tmp_path, ["t", "a"], computes["a"])  # read: now the most recently used
    for name in "ef":
        remembered(tmp_path, ["t", name], computes[name])  # the fifth is over the limit
    assert folder_bytes() <= memo.MEMO_LIMIT_BYTES
    kept = {name for name in "abcdef"
            if (tmp_path / "memo" / f"{content_key([memo.MEMO_VERSION, 't', name])}.json").exists()}
    assert kept == {"a", "d", "e", "f"}
    assert remembered(tmp_path, ["t", "b"], computes["b"])["a"].iloc[0] == 1.0 and computes["b"].calls == 2
    assert computes["a"].calls == 1


def test_a_digest_changes_with_any_weight_or_pixel_and_only_then():
    net = torch.nn.Linear(3, 2)
    same = torch.nn.Linear(3, 2)
    same.load_state_dict(net.state_dict())
    assert weights_digest(net) == weights_digest(same)
    with torch.no_grad():
        same.bias[0] += 1e-6
    assert weights_digest(net) != weights_digest(same)
    assert weights_digest(lambda images: images) is None  # not a network: never remembered
    image = np.zeros((4, 4), np.float32)
    changed = image.copy()
    changed[3, 3] = 1e-6
    assert array_digest(image) == array_digest(image.copy()) != array_digest(changed)
    assert array_digest(image) != array_digest(image.astype(np.float64))


class BrightnessReader(torch.nn.Module):
    """An oracle that reads each image's mean brightness at ``gain`` of its size, and counts its calls."""

    def __init__(self, gain: float):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(gain))
        self.calls = 0

    def predict(self, images: torch.Tensor) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"brightness": (self.gain * images.mean(dim=(1, 2, 3))).detach().numpy()})


def _study(reader, tmp_path, n: int = 40) -> Study:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (n, 8, 8)).astype(np.float32)
    table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "brightness": images.mean(axis=(1, 2))})
    return Study(rng.normal(size=(n, 4)).astype(np.float32), table, oracle=reader, images=images,
                 cache_dir=tmp_path)


def test_a_second_study_of_the_same_exams_reads_its_readers_gain_from_disk(tmp_path):
    reader = BrightnessReader(0.5)
    assert _study(reader, tmp_path).reader_gain("brightness", False) == pytest.approx(0.5)
    calls = reader.calls
    assert _study(reader, tmp_path).reader_gain("brightness", False) == pytest.approx(0.5)
    assert reader.calls == calls  # not read again
    with torch.no_grad():
        reader.gain.fill_(0.8)  # another reader: read again
    assert _study(reader, tmp_path).reader_gain("brightness", False) == pytest.approx(0.8)
    assert reader.calls > calls


def test_the_cohorts_psnr_is_decoded_once_per_model_and_cohort(tmp_path, monkeypatch):
    model = SeeGaan(preset_config("tiny"), with_training_networks=False).eval()
    r = model.config.resolution
    latents = np.random.default_rng(1).normal(size=(10, model.config.w_dim)).astype(np.float32)
    images = np.random.default_rng(2).uniform(-1, 1, (10, r, r)).astype(np.float32)
    first = cohort_psnr(model, latents, lambda rows: images[rows], tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(model, "decode", no_decoding)
    assert cohort_psnr(model, latents, lambda rows: images[rows], tmp_path) == first
    with pytest.raises(AssertionError, match="decoded again"):
        cohort_psnr(model, latents, lambda rows: images[rows] * 0.5, tmp_path)  # other images: decoded


def test_a_later_kernel_calibrates_a_direction_from_the_films_read_before(tmp_path, monkeypatch):
    """Calibrating reads 8 other patients' films of 9 frames; a second study of the same model and
    cohort (the next dashboard kernel) reads them from disk, decoding only the first frame that tells
    it what reads the target; another noise seed draws other films, which are decoded again."""
    from seegaan_explore.explore.calibration import PATIENTS, STEPS_SD, calibrate_for
    from seegaan_explore.explore.directions import fit_direction

    model = SeeGaan(preset_config("tiny"), with_training_networks=False).eval()
    decoded, decode = [], model.decode
    monkeypatch.setattr(model, "decode", lambda w, **kw: decoded.append(len(w)) or decode(w, **kw))
    latents = np.random.default_rng(3).normal(size=(30, model.config.w_dim)).astype(np.float32)
    frames = decode(torch.from_numpy(latents))[:, 0].numpy()
    table = pd.DataFrame({"image_id": [f"im{i}" for i in range(30)], "brightness": frames.mean(axis=(1, 2))})
    direction = fit_direction("mean_shift", latents, table["brightness"].to_numpy(), attribute="brightness")

    def calibrated(noise_seed: int = 0):
        study = Study(latents, table, model=model, oracle=BrightnessReader(1.0), cache_dir=tmp_path)
        return calibrate_for(study, direction, "brightness", False, 5, noise_seed=noise_seed)[1]

    first = calibrated()
    assert decoded == [1] + [len(STEPS_SD)] * PATIENTS
    decoded.clear()
    again = calibrated()
    assert decoded == [1] and again == first
    decoded.clear()
    calibrated(noise_seed=1)
    assert decoded == [1] + [len(STEPS_SD)] * PATIENTS


def test_on_a_real_cohort_a_later_kernel_reads_the_re_encoded_films_from_disk(tmp_path, monkeypatch):
    """Without an oracle or a CNN of the target, a film is read by the cohort's latent reader on its
    frames encoded again; a later kernel's calibration of the same direction encodes none of the
    other patients' films, only the film it shows."""
    from ui_cohort import small_setup

    from seegaan_explore.ui.renderer import Renderer

    model, latents, table, _, _, images = small_setup()
    encoded, encode = [], model.encode
    monkeypatch.setattr(model, "encode", lambda x, **kw: encoded.append(len(x)) or encode(x, **kw))

    def calibration():
        renderer = Renderer(model, latents, table, images=images, cache_dir=tmp_path)  # no oracle, no CNN
        encoded.clear()
        return renderer.render({"attribute": "brightness", "patient": 3})["calibration"], list(encoded)

    (first, first_encoded), (again, again_encoded) = calibration(), calibration()
    assert first.by.startswith("the reader fitted on this cohort's images") and again == first
    assert sorted(first_encoded) == sorted(again_encoded + [1] + [9] * 8)
