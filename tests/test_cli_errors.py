"""Every subcommand turns a user's mistake into one line that names the file, not a traceback."""

from __future__ import annotations

import pytest

from seegaan_explore.cli import main


@pytest.mark.parametrize("command, says", [
    (["info", "--checkpoint", "{missing}"], "seegaan-explore info: {missing}: no such checkpoint file"),
    (["info", "--checkpoint", "{bad}"], "seegaan-explore info: {bad}: not a readable safetensors file"),
    (["train", "--data", "{missing}", "--out", "{out}"], "seegaan-explore train: cohort table not found: {missing}"),
    (["train-cnn", "--data", "{missing}", "--attribute", "age", "--out", "{out}"],
     "seegaan-explore train-cnn: cohort table not found: {missing}"),
    (["check", "--data", "{folder}"], "seegaan-explore check: image folder or cohort table not found: {folder}"),
    (["evaluate", "--checkpoint", "{bad}", "--no-progress"],
     "seegaan-explore evaluate: {bad}: not a readable safetensors file"),
])
def test_a_user_error_is_one_line(command, says, tmp_path):
    names = {"missing": str(tmp_path / "nope.csv"), "bad": str(tmp_path / "notes.safetensors"),
             "out": str(tmp_path / "out"), "folder": str(tmp_path / "exports")}
    (tmp_path / "notes.safetensors").write_text("not a model")
    with pytest.raises(SystemExit) as stop:
        main([part.format(**names) for part in command])
    assert str(stop.value).startswith(says.format(**names))


def test_export_of_an_image_names_what_it_is_not_pickle(tmp_path):
    """A PNG (or JPEG) given to ``export`` in place of a traversal .npz: one line that says what the
    file is and what export reads, not numpy's advice to load pickles."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "frame.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "frame.jpg")
    for name, kind in (("frame.png", "a PNG image"), ("frame.jpg", "a JPEG image")):
        with pytest.raises(SystemExit) as stop:
            main(["export", str(tmp_path / name)])
        assert str(stop.value) == (f"seegaan-explore export: {tmp_path / name}: not a saved traversal ({kind}); "
                                   f"export reads the .npz files that 'traverse --format npz' writes")
        assert "pickle" not in str(stop.value)


def _constant_cohort(tmp_path, column: dict[int, str]) -> list[str]:
    """30 noise PNGs of 15 patients and a table with ``value`` from ``column`` (image index -> text)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["image_id,patient_id,value"]
    for i in range(30):
        Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / f"im{i:02d}.png")
        rows.append(f"im{i:02d},p{i // 2:02d},{column[i]}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    return ["train-cnn", "--data", str(tmp_path / "data.csv"), "--image-root", str(tmp_path), "--patient-column",
            "patient_id", "--attribute", "value", "--resolution", "32", "--epochs", "1", "--no-progress",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "cnn.safetensors")]


@pytest.mark.parametrize("value, shown", [("7", "'7'"), ("0", "'0'"), (" 12.5 ", "'12.5'")])
def test_train_cnn_refuses_a_constant_attribute_before_training(value, shown, tmp_path):
    """It used to train an epoch and die of ZeroDivisionError in the held-out R^2 (or AUC)."""
    command = _constant_cohort(tmp_path, {i: value for i in range(30)})
    with pytest.raises(SystemExit) as stop:
        main(command)
    assert str(stop.value) == (f"seegaan-explore train-cnn: --attribute value: column 'value' has one value, {shown}, "
                               f"in all 30 rows that have one; a CNN has nothing to learn from it (pick a column "
                               f"whose values differ)")
    assert not (tmp_path / "cnn.safetensors").exists()


def test_train_cnn_refuses_an_attribute_constant_among_the_held_out_patients(tmp_path):
    from seegaan_explore.data.cohort import Cohort

    command = _constant_cohort(tmp_path, {i: str(i) for i in range(30)})
    cohort = Cohort.from_table(tmp_path / "data.csv", tmp_path, patient_column="patient_id")
    held_out = set(cohort.patient_split((0.85, 0.15), seed=0)[1].ids)  # train-cnn's default split
    _constant_cohort(tmp_path, {i: "3" if f"im{i:02d}" in held_out else str(i) for i in range(30)})
    with pytest.raises(SystemExit) as stop:
        main(command)
    assert str(stop.value).startswith("seegaan-explore train-cnn: --attribute value: column 'value' has one value, "
                                      f"'3', in all {len(held_out)} rows that have one among the held-out patients "
                                      "(--val-fraction 0.15, --seed 0)")
    assert not (tmp_path / "cnn.safetensors").exists()


@pytest.mark.parametrize("command", [
    ["evaluate", "--checkpoint", "{bad}", "--no-progress"],
    ["train", "--data", "{missing}", "--out", "{out}"],
    ["train-oracle", "--data", "{missing}", "--out", "{out}"],
    ["encode", "--data", "{missing}", "--checkpoint", "{bad}"],
    ["traverse", "--checkpoint", "{bad}", "--image", "{missing}", "--direction", "{bad}", "--range", "-1", "1",
     "--out", "{out}"],
])
def test_threads_bound_torch_before_the_command_reads_anything(command, tmp_path):
    """``--threads N`` (a job sharing the machine) is applied before the command's work: here, before its
    first file fails to read."""
    import torch

    names = {"missing": str(tmp_path / "nope.csv"), "bad": str(tmp_path / "notes.safetensors"),
             "out": str(tmp_path / "out"), "folder": str(tmp_path / "exports")}
    (tmp_path / "notes.safetensors").write_text("not a model")
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit):
            main([part.format(**names) for part in command] + ["--threads", "1"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_warning_reads_as_one_line_without_the_packages_code(tmp_path):
    """What a command warns about (here a table in Windows-1252) is printed as ``warning: ...``, not as
    Python prints it, with the file and line of the package that raised it."""
    import subprocess
    import sys

    (tmp_path / "t.csv").write_bytes("image_id,ward\nimg0,Müller\n".encode("cp1252"))
    done = subprocess.run([sys.executable, "-m", "seegaan_explore", "check", "--data", str(tmp_path / "t.csv")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = done.stderr.splitlines()
    assert any(line.startswith("warning: ") and "read as Windows-1252" in line for line in lines), done.stderr
    assert "UserWarning" not in done.stderr and ".py:" not in done.stderr


def test_every_option_with_a_default_shows_it_in_help():
    """cli.md promises that each command's --help lists every option with its default."""
    import argparse

    from seegaan_explore.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        text = " ".join(command.format_help().split())
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.default is None \
                    or action.default is argparse.SUPPRESS or action.default in ([], ()):
                continue
            assert action.help, f"{name} {action.option_strings[-1]} has no help"
            shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) \
                else str(action.default)
            assert "default" in action.help or f"(default: {shown})" in text, f"{name} {action.option_strings[-1]}"
    assert "--steps STEPS training steps in all (a resumed run counts on) (default: 1000)" in \
        " ".join(sub.choices["train"].format_help().split())


def test_train_cnn_says_once_what_it_did_with_censored_values(tmp_path, capsys):
    """'value: 2 of 30 values are censored' once, of the whole cohort, not again for each split."""
    import warnings

    command = _constant_cohort(tmp_path, {i: "<5" if i in (3, 8) else str(i + 5) for i in range(30)})
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert main(command) == 0
    censored = [str(w.message) for w in said if "censored" in str(w.message)]
    assert len(censored) == 1 and censored[0].startswith("value: 2 of 30 values are censored")
