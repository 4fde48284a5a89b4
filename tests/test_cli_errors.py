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
    (["evaluate", "--checkpoint", "{bad}", "--no-progress"],
     "seegaan-explore evaluate: {bad}: not a readable safetensors file"),
])
def test_a_user_error_is_one_line(command, says, tmp_path):
    names = {"missing": str(tmp_path / "nope.csv"), "bad": str(tmp_path / "notes.safetensors"),
             "out": str(tmp_path / "out")}
    (tmp_path / "notes.safetensors").write_text("not a model")
    with pytest.raises(SystemExit) as stop:
        main([part.format(**names) for part in command])
    assert str(stop.value).startswith(says.format(**names))
