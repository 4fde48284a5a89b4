"""``train`` on the command line: fine-tuning with a reconstruction warm-up by default, a named
held-out set, and an explicit message wherever an option is not what the run will use."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from seegaan_explore.cli import main
from seegaan_explore.model import SeeGaan, preset_config, read_metadata, save_model

IMAGES, PATIENTS = 24, 12


@pytest.fixture
def cohort(tmp_path):
    """24 smooth 40 px PNGs of 12 patients (two each), a table naming them, and a tiny model's
    inference file (the EMA networks only, no discriminator: as the bundled weights)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cohort"
    folder.mkdir()
    yy, xx = np.mgrid[0:40, 0:40] / 40
    rows = []
    for i in range(IMAGES):
        img = np.tanh(np.sin(rng.uniform(2, 8) * xx + rng.uniform(0, 6)) + np.cos(rng.uniform(2, 8) * yy))
        Image.fromarray(((img + 1) * 127.5).astype(np.uint8)).save(folder / f"img{i:02d}.png")
        rows.append({"image_id": f"img{i:02d}", "patient_id": f"p{i // 2:02d}"})
    with open(folder / "data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_id", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    torch.manual_seed(0)
    save_model(tmp_path / "tiny.safetensors", SeeGaan(preset_config("tiny")), ema_only=True)
    return tmp_path


def _train(tmp_path, *options: str, out: str = "run") -> list[str]:
    main(["train", "--data", str(tmp_path / "cohort" / "data.csv"), "--image-root", str(tmp_path / "cohort"),
          "--patient-column", "patient_id", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
          "--batch-size", "4", "--precision", "fp32", "--device", "cpu", "--no-progress", "--val-fraction", "0.25",
          "--sample-every", "1", "--checkpoint-every", "1", *options])


def _log(run) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def _state(run) -> dict:
    return read_metadata(run / "checkpoint-last.safetensors")["training_state"]


def test_init_warms_up_on_reconstruction_for_half_the_steps_and_says_so(cohort, capsys):
    _train(cohort, "--init", str(cohort / "tiny.safetensors"), "--steps", "4")
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith(f"fine-tuning {cohort / 'tiny.safetensors'} (tiny preset, 32 px; an inference file")
    assert "discriminator starts untrained" in said[0]
    assert said[1].startswith("reconstruction-only warm-up for steps 0-2, then the GAN losses to step 4 "
                              "(--adversarial-start 2; the default under --init is half of --steps)")
    assert said[2] == ("the warm-up trains with Adam betas 0.9 0.99 and augmentation probability 0 "
                       "(--warmup-adam-betas, --warmup-augment-probability); the GAN stage with 0 0.99 and 0.2")
    saved = _state(cohort / "run")["train_config"]
    assert saved["adversarial_start"] == 2
    assert (saved["warmup_betas"], saved["warmup_augment_probability"]) == ([0.9, 0.99], 0.0)
    log = _log(cohort / "run")
    # the discriminator trains only once the warm-up is over (steps 2 and 3, logged as 3 and 4)
    assert [s for s in sorted(log) if "loss_d" in log[s]] == [3, 4]
    assert all("loss_g" not in log[s] for s in (1, 2))
    # the held-out PSNR is measured before the first step: what the checkpoint gives as it is
    assert log[0]["val_psnr_db"] > 0 and log[0]["val_images"] == log[4]["val_images"]


def test_help_text_names_the_default_under_init(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with --init, half of --steps" in text
    assert "listed in <out>/held-out.csv" in text


def test_an_explicit_adversarial_start_wins_under_init(cohort, capsys):
    _train(cohort, "--init", str(cohort / "tiny.safetensors"), "--steps", "2", "--adversarial-start", "2")
    assert "reconstruction only for all 2 steps (--adversarial-start 2)" in capsys.readouterr().err
    assert all("loss_d" not in r for r in _log(cohort / "run").values())


def test_held_out_set_is_whole_patients_listed_and_recorded(cohort, capsys):
    _train(cohort, "--preset", "tiny", "--steps", "1")
    said = capsys.readouterr().err
    with open(cohort / "run" / "held-out.csv") as f:
        held = list(csv.DictReader(f))
    ids = [r["image_id"] for r in held]
    patients = {r["patient"] for r in held}
    assert 0 < len(ids) < IMAGES
    # whole patients: both images of each held-out patient (img2k and img2k+1 are patient k)
    assert all(int(r["image_id"][3:]) // 2 == int(r["patient"][1:]) for r in held)
    assert len(ids) == 2 * len(patients)
    assert f"held out for validation: {len(ids)} images of {len(patients)} patients (--val-fraction 0.25 of " \
           f"the images in whole patients, --val-seed 0), listed in {cohort / 'run' / 'held-out.csv'}: {ids[0]}" in said
    assert f"training on {IMAGES - len(ids)} images ({len(ids)} held out)" in said
    assert len(patients) < 5 and f"only {len(patients)} held-out patient(s): the validation PSNR depends" in said
    record = _state(cohort / "run")["held_out"]
    assert record["ids"] == ids and record["patients"] == len(patients)
    assert (record["fraction"], record["seed"]) == (0.25, 0)
    assert _log(cohort / "run")[1]["val_images"] == len(ids)
    # another training seed keeps the same held-out patients; another --val-seed draws others
    _train(cohort, "--preset", "tiny", "--steps", "1", "--seed", "5", out="seed5")
    assert _state(cohort / "seed5")["held_out"]["ids"] == ids
    _train(cohort, "--preset", "tiny", "--steps", "1", "--val-seed", "3", out="valseed3")
    assert _state(cohort / "valseed3")["held_out"]["ids"] != ids


def test_a_held_out_image_with_a_training_image_s_pixels_is_named(cohort, capsys):
    _train(cohort, "--preset", "tiny", "--steps", "1")
    assert "same pixels" not in capsys.readouterr().err
    with open(cohort / "run" / "held-out.csv") as f:
        held = next(csv.DictReader(f))["image_id"]
    trained = next(f"img{i:02d}" for i in range(IMAGES) if f"img{i:02d}" != held and
                   f"img{i:02d}" not in (cohort / "run" / "held-out.csv").read_text())
    images = cohort / "cohort"
    (images / f"{trained}.png").write_bytes((images / f"{held}.png").read_bytes())  # filed under another patient
    _train(cohort, "--preset", "tiny", "--steps", "1", out="copied")
    assert (f"1 held-out image(s) have the same pixels as a training image, so the validation PSNR counts them "
            f"as unseen; remove the copies from the cohort: {held} = {trained}") in capsys.readouterr().err


def test_the_default_held_out_share_grows_until_several_patients_are_held_out(tmp_path, capsys):
    """A cohort of many images per patient holds out one patient at 5% of its images: the default
    grows the share (an explicit --val-fraction is kept as given)."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "cohort"
    folder.mkdir()
    rows = []
    for i in range(60):  # 20 patients of 3 images
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
        rows.append({"image_id": f"img{i:02d}", "patient_id": f"p{i // 3:02d}"})
    with open(folder / "data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_id", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    base = ["train", "--data", str(folder / "data.csv"), "--image-root", str(folder), "--patient-column",
            "patient_id", "--cache-dir", str(tmp_path / "cache"), "--preset", "tiny", "--steps", "1",
            "--batch-size", "4", "--precision", "fp32", "--device", "cpu", "--no-progress"]
    main([*base, "--out", str(tmp_path / "grown")])
    said = capsys.readouterr().err
    record = _state(tmp_path / "grown")["held_out"]
    assert record["patients"] >= 5 and 0.05 < record["fraction"] <= 0.25
    assert f"the default --val-fraction 0.05 would hold out 1 patient(s); {record['fraction']:g} holds out " \
           f"{record['patients']}" in said
    assert f"(--val-fraction {record['fraction']:g} of the images in whole patients" in said
    main([*base, "--out", str(tmp_path / "as-given"), "--val-fraction", "0.05"])
    said = capsys.readouterr().err
    assert _state(tmp_path / "as-given")["held_out"]["patients"] == 1 and "would hold out" not in said
    assert "only 1 held-out patient(s)" in said


def test_resuming_with_other_steps_or_held_out_set_says_so(cohort, capsys):
    init = ["--init", str(cohort / "tiny.safetensors")]
    _train(cohort, *init, "--steps", "2")
    capsys.readouterr()
    _train(cohort, *init, "--steps", "4", "--val-fraction", "0.4")
    said = capsys.readouterr().err
    assert f"{cohort / 'run'} holds a checkpoint: resuming it; --init {cohort / 'tiny.safetensors'} gives only " \
           f"the architecture, not the weights" in said
    assert f"resuming {cohort / 'run'}: --steps changed from 2 to 4: the run now ends at step 4" in said
    assert "the held-out set differs from the one the run started with" in said
    state = _state(cohort / "run")
    # the default warm-up is the one the run started with (half of 2), not half of the new --steps
    assert state["step"] == 4 and state["train_config"]["adversarial_start"] == 1
    _train(cohort, *init, "--steps", "3", "--val-fraction", "0.4")
    said = capsys.readouterr().err
    assert "the checkpoint is at step 4 and --steps is 3: nothing is left to train" in said
    assert _state(cohort / "run")["step"] == 4


def test_resuming_with_another_lr_names_the_option(cohort, capsys):
    _train(cohort, "--preset", "tiny", "--steps", "1")
    capsys.readouterr()
    _train(cohort, "--preset", "tiny", "--steps", "2", "--lr", "0.0005")
    assert f"resuming {cohort / 'run'}: --lr changed from 0.001 to 0.0005 from step 1 on" in capsys.readouterr().err


@pytest.mark.parametrize("options, says", [
    (["--init", "{tiny}", "--resolution", "64"],
     "seegaan-explore train: --resolution 64 with --init {tiny}: the checkpoint is a 32 px model and "
     "fine-tuning keeps its resolution"),
    (["--init", "{tiny}", "--preset", "demo"],
     "seegaan-explore train: --preset demo with --init {tiny} (a tiny model): "),
    (["--init", "{missing}"], "seegaan-explore train: --init {missing}: no such checkpoint file"),
])
def test_init_refuses_what_it_would_otherwise_ignore(cohort, options, says):
    names = {"tiny": str(cohort / "tiny.safetensors"), "missing": str(cohort / "nope.safetensors")}
    with pytest.raises(SystemExit) as stop:
        _train(cohort, "--steps", "1", *[o.format(**names) for o in options])
    assert str(stop.value).startswith(says.format(**names))
    assert "\n" not in str(stop.value)
    assert not (cohort / "run" / "checkpoint-last.safetensors").exists()


def test_resuming_at_another_resolution_names_both(cohort):
    _train(cohort, "--preset", "tiny", "--steps", "1")
    with pytest.raises(SystemExit) as stop:
        _train(cohort, "--preset", "tiny", "--resolution", "64", "--steps", "2")
    assert str(stop.value) == (
        f"seegaan-explore train: {cohort / 'run' / 'checkpoint-last.safetensors'}: this run was trained as another "
        f"architecture (resolution 32 there, 64 here); resume it with its own --preset and --resolution, or give a "
        f"new --out")


def test_pack_carries_every_network_in_half_precision_to_the_next_run(cohort, capsys):
    from safetensors import safe_open

    from seegaan_explore.model import load_model

    _train(cohort, "--steps", "3", "--adversarial-start", "1")
    checkpoint, packed = cohort / "run" / "checkpoint-last.safetensors", cohort / "packed.safetensors"
    main(["pack", str(checkpoint), "--out", str(packed)])
    assert "every network, the discriminator included, in half precision" in capsys.readouterr().out
    with safe_open(str(packed), framework="pt") as f:
        keys = list(f.keys())
        assert {f.get_tensor(k).dtype for k in keys if f.get_tensor(k).is_floating_point()} == {torch.float16}
    assert any(k.startswith("discriminator.") for k in keys) and not any(k.startswith("optimizer.") for k in keys)
    assert packed.stat().st_size < 0.3 * checkpoint.stat().st_size  # no Adam moments, half the bytes per weight

    trained = load_model(checkpoint).discriminator.state_dict()
    carried = load_model(packed).discriminator.state_dict()
    for name, weight in trained.items():
        assert carried[name].dtype == torch.float32
        torch.testing.assert_close(carried[name], weight, rtol=1e-3, atol=1e-4)

    _train(cohort, "--init", str(packed), "--steps", "2", out="next")
    said = capsys.readouterr().err
    assert "networks packed at step 3, discriminator included)" in said
    # the GAN goes on against the discriminator it carries: no second warm-up by default
    assert "no warm-up: the GAN losses go on from step 0 against the discriminator the file carries" in said
    assert _state(cohort / "next")["train_config"]["adversarial_start"] == 0


def test_discriminator_warmup_trains_the_discriminator_alone_first(cohort, capsys):
    _train(cohort, "--init", str(cohort / "tiny.safetensors"), "--steps", "4", "--adversarial-start", "1",
           "--discriminator-warmup", "2")
    assert ("the discriminator trains alone on steps 1-3 (--discriminator-warmup 2); the generator and encoder "
            "feel it from step 3") in capsys.readouterr().err
    log = _log(cohort / "run")
    # steps 1 and 2 train the discriminator only; from step 3 the generator and encoder play too (logged one later)
    assert [s for s in sorted(log) if "loss_d" in log[s]] == [2, 3, 4]
    assert [s for s in sorted(log) if "loss_g" in log[s]] == [4]
    assert _state(cohort / "run")["train_config"]["discriminator_warmup"] == 2
