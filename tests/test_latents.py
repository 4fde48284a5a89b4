"""The latent store encodes each image once per model, re-encodes only what changed, and survives failures."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from ports import free_port

from seegaan_explore.data.cohort import Cohort, CohortWarning
from seegaan_explore.explore.latents import encode_cohort, model_digest, store_dir
from seegaan_explore.model import SeeGaan, preset_config, save_model
from seegaan_explore.phantoms import write_cohort

N = 12


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SeeGaan(preset_config("tiny"), with_training_networks=False)
    m.precision = "fp32"
    return m


@pytest.fixture
def phantom_dir(tmp_path):
    write_cohort(tmp_path / "phantoms", N, size=32, workers=1, progress=False)
    return tmp_path / "phantoms"


def _cohort(phantom_dir) -> Cohort:
    return Cohort.from_table(phantom_dir / "phantoms.csv")


class EncoderCalls:
    """Counts the images that go through the model's EMA encoder."""

    def __init__(self, model):
        self.images = 0
        self.calls = 0
        self._handle = model.encoder_ema.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.calls += 1
        self.images += inputs[0].shape[0]

    def close(self):
        self._handle.remove()


@pytest.fixture
def calls(model):
    counter = EncoderCalls(model)
    yield counter
    counter.close()


def _direct(model, cohort, cache) -> np.ndarray:
    images = torch.from_numpy(np.asarray(cohort.images(32, cache, progress=False), np.float32))[:, None]
    return model.encode(images).numpy()


def test_first_run_encodes_every_image_into_the_store(model, phantom_dir, tmp_path, calls):
    cohort = _cohort(phantom_dir)
    latents = encode_cohort(model, cohort, tmp_path / "cache", batch_size=5, progress=False)
    assert latents.ids == cohort.ids and len(latents) == N
    assert latents.encoded == N and calls.images == N and calls.calls == 3  # batches of 5, 5, 2
    assert latents.latents.shape == (N, model.config.w_dim)
    assert isinstance(latents.latents, np.memmap)
    np.testing.assert_allclose(latents.latents, _direct(model, cohort, tmp_path / "cache"), atol=1e-5)
    assert latents.path.parent == store_dir(model, tmp_path / "cache")
    assert latents.path.parent.parent == tmp_path / "cache" / "latents"


def test_second_run_reads_no_image_and_runs_no_encoder(model, phantom_dir, tmp_path, calls):
    first = encode_cohort(model, _cohort(phantom_dir), tmp_path / "cache", progress=False)
    first_values = np.array(first.latents)
    for image_cache in (tmp_path / "cache").glob("v*-r32-*"):
        shutil.rmtree(image_cache)  # decoding an image would recreate it
    calls.calls = calls.images = 0
    second = encode_cohort(model, _cohort(phantom_dir), tmp_path / "cache", progress=False)
    assert calls.calls == 0 and second.encoded == 0
    assert not list((tmp_path / "cache").glob("v*-r32-*"))
    np.testing.assert_array_equal(second.latents, first_values)


def test_a_changed_image_is_the_only_one_encoded_again(model, phantom_dir, tmp_path, calls):
    cache = tmp_path / "cache"
    before = np.array(encode_cohort(model, _cohort(phantom_dir), cache, progress=False).latents)
    cohort = _cohort(phantom_dir)
    changed = cohort.paths[4]
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    calls.calls = calls.images = 0
    after = encode_cohort(model, cohort, cache, progress=False)
    assert after.encoded == 1 and calls.images == 1
    keep = np.arange(N) != 4
    np.testing.assert_array_equal(after.latents[keep], before[keep])
    np.testing.assert_allclose(after.latents[4], _direct(model, cohort, cache)[4], atol=1e-5)
    assert np.abs(after.latents[4] - before[4]).max() > 1e-3


def test_same_pixels_under_a_new_mtime_or_name_are_not_encoded_again(model, phantom_dir, tmp_path, calls):
    cache = tmp_path / "cache"
    before = np.array(encode_cohort(model, _cohort(phantom_dir), cache, progress=False).latents)
    cohort = _cohort(phantom_dir)
    os.utime(cohort.paths[0], ns=(0, 10**18))  # touched: new file key, same content
    shutil.copy(cohort.paths[2], cohort.paths[3])  # image 3 now shows image 2
    calls.calls = calls.images = 0
    with pytest.warns(CohortWarning, match="phantom_s0_000003 = phantom_s0_000002"):
        after = encode_cohort(model, cohort, cache, progress=False)
    assert calls.images == 0 and after.encoded == 0
    np.testing.assert_array_equal(after.latents[0], before[0])
    np.testing.assert_array_equal(after.latents[3], before[2])


def test_a_changed_model_encodes_everything_again(model, phantom_dir, tmp_path):
    cache = tmp_path / "cache"
    before = encode_cohort(model, _cohort(phantom_dir), cache, progress=False)
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.encoder_ema.parameters()).add_(0.05)
    assert model_digest(other) != model_digest(model)
    counter = EncoderCalls(other)
    after = encode_cohort(other, _cohort(phantom_dir), cache, progress=False)
    counter.close()
    assert counter.images == N and after.encoded == N
    assert after.path.parent != before.path.parent
    assert np.abs(np.asarray(after.latents) - np.asarray(before.latents)).max() > 1e-4


def test_an_interrupted_run_leaves_no_partial_store(model, phantom_dir, tmp_path):
    cache = tmp_path / "cache"

    batches = []

    def fail_on_second_batch(module, inputs, output):
        batches.append(len(inputs[0]))
        if len(batches) == 2:
            raise KeyboardInterrupt

    handle = model.encoder_ema.register_forward_hook(fail_on_second_batch)
    try:
        with pytest.raises(KeyboardInterrupt):
            encode_cohort(model, _cohort(phantom_dir), cache, batch_size=4, progress=False)
    finally:
        handle.remove()
    folder = store_dir(model, cache)
    assert not folder.exists() or not any(folder.rglob("*")), sorted(folder.rglob("*"))
    latents = encode_cohort(model, _cohort(phantom_dir), cache, batch_size=4, progress=False)
    assert latents.encoded == N


def test_copies_are_named_on_every_load_and_marked_in_the_import_report(model, phantom_dir, tmp_path):
    cohort = _cohort(phantom_dir)
    shutil.copy(cohort.paths[7], cohort.paths[7].with_name("backup.png"))  # an export made twice
    table = pd.read_csv(phantom_dir / "phantoms.csv")
    copy_row = table.iloc[[7]].assign(image_id="backup", file="backup.png")
    pd.concat([table, copy_row]).to_csv(phantom_dir / "with-copy.csv", index=False)
    for attempt in ("encoded", "read back from the store"):
        with_copy = Cohort.from_table(phantom_dir / "with-copy.csv")
        with pytest.warns(CohortWarning, match=r"1 image\(s\) have the same pixels .*: backup = phantom_s0_000007"):
            latents = encode_cohort(model, with_copy, tmp_path / "cache", progress=False)
        assert len(latents) == N + 1, attempt
        warned = with_copy.report.frame.set_index("path")["warnings"].fillna("")
        assert f"the same pixels as {with_copy.paths[7]}: taken as an exam" in warned[str(with_copy.paths[-1])]
        assert "the same pixels" not in warned[str(with_copy.paths[7])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CohortWarning)  # the cohort without the copy is not warned about
        encode_cohort(model, _cohort(phantom_dir), tmp_path / "cache", progress=False)


def test_unreadable_images_are_skipped_and_named(model, phantom_dir, tmp_path, calls):
    cohort = _cohort(phantom_dir)
    broken = cohort.paths[5]
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.warns(CohortWarning, match=broken.name):
        latents = encode_cohort(model, cohort, tmp_path / "cache", progress=False)
    assert len(latents) == N - 1 and cohort.table.shape[0] == N - 1
    assert [(i, p) for i, p, _ in latents.skipped] == [("phantom_s0_000005", str(broken))]
    assert "truncated" in latents.skipped[0][2]
    assert "phantom_s0_000005" not in latents.ids
    calls.calls = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CohortWarning)
        again = encode_cohort(model, _cohort(phantom_dir), tmp_path / "cache", progress=False)
    assert calls.calls == 0 and again.ids == latents.ids


@pytest.fixture
def oblong_dir(tmp_path):
    """Radiographs taller than wide, so that padding and cropping frame them differently, one of them in
    colour (read only with ``colour="luminance"``), named in a table (so the colour is found on decoding)."""
    rng = np.random.default_rng(5)
    root = tmp_path / "oblong"
    root.mkdir()
    for k in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 24), dtype=np.uint8)).save(root / f"x{k}.png")
    Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(root / "colour.png")
    names = ["x0", "x1", "x2", "x3", "colour"]
    pd.DataFrame({"image_id": names, "path": [f"{n}.png" for n in names]}).to_csv(root / "table.csv", index=False)
    return root


def test_latents_of_one_framing_are_never_returned_for_another(model, oblong_dir, tmp_path):
    cache = tmp_path / "cache"
    pad = Cohort.from_table(oblong_dir / "table.csv", framing="pad", colour="luminance")
    padded = np.array(encode_cohort(model, pad, cache, progress=False).latents)
    crop = Cohort.from_table(oblong_dir / "table.csv", framing="crop", colour="luminance")
    cropped = encode_cohort(model, crop, cache, progress=False)
    np.testing.assert_allclose(cropped.latents, _direct(model, crop, cache), atol=1e-5)
    assert np.abs(cropped.latents - padded).max() > 1e-3
    again = encode_cohort(model, Cohort.from_table(oblong_dir / "table.csv", colour="luminance"), cache,
                          progress=False)
    assert again.encoded == 0
    np.testing.assert_array_equal(again.latents, padded)  # each keeps its own


def test_latents_read_with_one_colour_rule_are_never_returned_for_another(model, oblong_dir, tmp_path):
    cache = tmp_path / "cache"
    converted = encode_cohort(model, Cohort.from_table(oblong_dir / "table.csv", colour="luminance"), cache,
                              progress=False)
    assert "colour" in converted.ids
    with pytest.warns(CohortWarning, match="colour.png: colour image"):
        refused = encode_cohort(model, Cohort.from_table(oblong_dir / "table.csv"), cache, progress=False)
    assert refused.ids == ["x0", "x1", "x2", "x3"] and [s[0] for s in refused.skipped] == ["colour"]


def test_join_and_frame_align_the_clinical_table_by_id(model, phantom_dir, tmp_path):
    cohort = _cohort(phantom_dir)
    latents = encode_cohort(model, cohort, tmp_path / "cache", progress=False)
    table = pd.read_csv(phantom_dir / "phantoms.csv").sample(frac=1, random_state=0).iloc[1:]  # one id missing
    missing = min(set(latents.ids) - set(table["image_id"]))
    joined = latents.join(table)
    assert joined.index.tolist() == latents.ids
    assert np.isnan(joined.loc[missing, "age"])
    expected = pd.read_csv(phantom_dir / "phantoms.csv").set_index("image_id")["age"]
    kept = joined.index != missing
    np.testing.assert_allclose(joined["age"][kept], expected.loc[joined.index[kept]])
    frame = latents.frame()
    np.testing.assert_array_equal(frame[[f"w{k}" for k in range(64)]].to_numpy(), latents.latents)
    np.testing.assert_allclose(frame["severity"], cohort.table["severity"].astype(float))
    np.testing.assert_array_equal(latents.latent(latents.ids[3]), latents.latents[3])

    with pytest.raises(KeyError, match="no latent for image id 'nobody'"):
        latents.latent("nobody")
    with pytest.raises(KeyError, match="no id column 'image_id'"):
        latents.join(table.rename(columns={"image_id": "key"}))
    with pytest.raises(ValueError, match="duplicate ids"):
        latents.join(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(ValueError, match="none of the table's 'key' values match"):
        latents.join(pd.DataFrame({"key": ["x", "y"], "a": [1, 2]}), on="key")


@pytest.mark.slow
def test_two_processes_encode_their_shares_and_rank_0_assembles(model, phantom_dir, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_model(checkpoint, model, ema_only=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={free_port()}",
           "--master-addr=127.0.0.1", "-m", "seegaan_explore", "encode", "--data", str(phantom_dir / "phantoms.csv"),
           "--checkpoint", str(checkpoint), "--cache-dir", str(tmp_path / "two"), "--device", "cpu",
           "--batch-size", "2", "--precision", "fp32", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["images"] == N and printed[0]["encoded"] == N  # rank 0 reports
    two = np.load(printed[0]["store"])
    one = encode_cohort(model, _cohort(phantom_dir), tmp_path / "one", batch_size=5, progress=False)
    np.testing.assert_allclose(two, one.latents, atol=1e-5)


def test_a_damaged_encoder_is_named_and_stores_nothing(model, phantom_dir, tmp_path):
    damaged = copy.deepcopy(model)
    with torch.no_grad():
        next(damaged.encoder_ema.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"NaN or infinite latents for 12 image\(s\): phantom_s0_000000 \("):
        encode_cohort(damaged, _cohort(phantom_dir), tmp_path / "cache", progress=False)
    folder = store_dir(damaged, tmp_path / "cache")
    assert not folder.exists() or not any(folder.rglob("*")), sorted(folder.rglob("*"))
