"""`seegaan-explore serve`: a user's own model and cohort reach the dashboard's kernels as plain
arguments, are checked before any server starts, and give the same Explorer as the demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seegaan_explore.cli import build_parser
from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.phantoms import write_cohort
from seegaan_explore.ui.explorer import Explorer
from seegaan_explore.ui.session import SESSION_ENV, CohortSource, dashboard_kwargs

CHECKPOINT = str(WEIGHTS_DIR / FILES["autoencoder"])


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    write_cohort(folder, n=24, size=64, seed=5)
    return folder / "phantoms.csv"


def test_serve_arguments_become_a_session_that_loads_the_users_cohort_in_its_words(cohort_csv, tmp_path):
    dictionary = tmp_path / "dictionary.csv"
    dictionary.write_text("column,label,unit,log,low,high\nnt_probnp_pg_ml,NT-proBNP,pg/mL,true,5,35000\n"
                          "age,Age,years,false,18,100\n")
    source = CohortSource(checkpoint=CHECKPOINT, data=str(cohort_csv), patient_column="patient_id",
                          cache_dir=str(tmp_path / "cache"), dictionary=str(dictionary), framing="crop")
    assert CohortSource.from_json(source.to_json()) == source
    kwargs = dashboard_kwargs({SESSION_ENV: source.to_json()})
    assert len(kwargs["table"]) == len(kwargs["latents"]) == len(kwargs["images"]) == 24
    assert kwargs["cnn"] is None and "24 radiographs of phantoms.csv" in kwargs["note"]
    e = Explorer(**kwargs, threaded=False, export_dir=tmp_path)
    try:
        assert [label for label, _ in e.attribute.options] == ["NT-proBNP", "Age"]  # the dictionary's, in order
        assert len(e.result["traversal"].frames) == e.n_frames.value
        labels = e.film.labels
        assert all(label.startswith("NT-proBNP: ") and label.split(" (")[0].endswith(" pg/mL") for label in labels)
    finally:
        e.close()


def test_settings_the_session_does_not_know_are_refused(cohort_csv):
    with pytest.raises(ValueError, match="unknown settings: checkpont"):
        CohortSource.from_json('{"checkpont": "x", "data": "y"}')


def test_a_dictionary_naming_a_column_the_table_lacks_is_refused_by_name(cohort_csv, tmp_path):
    dictionary = tmp_path / "words.yaml"
    dictionary.write_text("nt_probnp:\n  label: NT-proBNP\n")
    source = CohortSource(checkpoint=CHECKPOINT, data=str(cohort_csv), cache_dir=str(tmp_path / "cache"),
                          dictionary=str(dictionary))
    with pytest.raises(ValueError, match=r"words\.yaml: the dictionary names columns the table lacks: nt_probnp"):
        dashboard_kwargs({SESSION_ENV: source.to_json()})


def test_serve_ends_a_mistake_with_one_line_before_any_server_starts(cohort_csv, tmp_path):
    run = subprocess.run([sys.executable, "-m", "seegaan_explore", "serve", "--checkpoint",
                          str(tmp_path / "none.safetensors"), "--data", str(cohort_csv), "--no-browser",
                          "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"checkpoint not found: {tmp_path / 'none.safetensors'}" in run.stderr


def test_paths_given_relative_to_where_serve_runs_reach_kernels_that_run_elsewhere(cohort_csv, tmp_path,
                                                                                    monkeypatch):
    """Voila's kernels start in another folder: `serve --data cohort.csv` must still find cohort.csv."""
    import shutil

    from seegaan_explore.cli import main
    from seegaan_explore.cli import serve as serve_command

    served = []
    monkeypatch.setattr(serve_command, "_serve", lambda args, notebook, environ: served.append(environ))
    here = tmp_path / "here"
    shutil.copytree(cohort_csv.parent, here)
    shutil.copy(CHECKPOINT, here / "model.safetensors")
    (here / "words.yaml").write_text("age: {label: Age, unit: years}\n")
    monkeypatch.chdir(here)
    assert main(["serve", "--checkpoint", "model.safetensors", "--data", "phantoms.csv", "--image-root", ".",
                 "--dictionary", "words.yaml", "--cache-dir", "cache", "--no-browser", "--no-progress"]) == 0
    monkeypatch.chdir(tmp_path)  # where a kernel runs
    kwargs = dashboard_kwargs({SESSION_ENV: served[0][SESSION_ENV]})
    assert len(kwargs["table"]) == 24 and "age" in kwargs["dictionary"]


def test_the_data_root_must_be_a_folder_and_confines_the_server_path_box(tmp_path):
    from seegaan_explore.cli.serve import server_paths_setting

    assert server_paths_setting("127.0.0.1", None) == "1"
    assert server_paths_setting("0.0.0.0", None) == "0"
    assert server_paths_setting("0.0.0.0", tmp_path) == str(tmp_path.resolve())
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        server_paths_setting("127.0.0.1", tmp_path / "absent")
    args = build_parser().parse_args(["serve", "--checkpoint", CHECKPOINT, "--data", "x.csv", "--cnn", "c.safetensors",
                                      "--dictionary", "d.csv", "--data-root", str(tmp_path), "--framing", "crop"])
    assert args.data_root == tmp_path and args.framing == "crop" and args.ip == "127.0.0.1"


def test_without_a_dictionary_serve_says_how_to_write_one_and_the_one_written_offers_the_same(
        cohort_csv, tmp_path, monkeypatch, capsys):
    from seegaan_explore.cli import main
    from seegaan_explore.cli import serve as serve_command

    served = []
    monkeypatch.setattr(serve_command, "_serve", lambda args, notebook, environ: served.append(environ))
    base = ["serve", "--checkpoint", CHECKPOINT, "--data", str(cohort_csv), "--cache-dir", str(tmp_path / "cache"),
            "--no-browser", "--no-progress"]
    assert main(base) == 0 and len(served) == 1
    said = capsys.readouterr().err
    assert "no --dictionary: the page names the attributes by the table's columns, without units (" in said
    assert f"`seegaan-explore dictionary --data {cohort_csv} --out words.yaml` writes a dictionary" in said
    words = tmp_path / "words.yaml"
    assert main(["dictionary", "--data", str(cohort_csv), "--out", str(words)]) == 0
    with pytest.raises(SystemExit, match="exists: write the dictionary to a new file"):
        main(["dictionary", "--data", str(cohort_csv), "--out", str(words)])  # an edited one is never lost
    assert main([*base, "--dictionary", str(words)]) == 0 and "no --dictionary" not in capsys.readouterr().err
    plain = dashboard_kwargs({SESSION_ENV: CohortSource.from_json(served[0][SESSION_ENV]).to_json()})
    worded = dashboard_kwargs({SESSION_ENV: served[1][SESSION_ENV]})
    from seegaan_explore.explore.study import Study

    assert Study(plain["latents"], plain["table"]).attributes == \
        Study(worded["latents"], worded["table"], dictionary=worded["dictionary"]).attributes
    # what a kernel would warn only to its log is said where the person serving reads it
    import pandas as pd

    from seegaan_explore.data.cohort import CohortWarning

    low = float(pd.read_csv(cohort_csv)["nt_probnp_pg_ml"].quantile(0.25))
    strict = tmp_path / "strict.yaml"
    strict.write_text(f"nt_probnp_pg_ml: {{label: NT-proBNP, unit: pg/mL, log: true, low: {low}}}\n")
    with pytest.warns(CohortWarning, match="nt_probnp_pg_ml: 6 of 24 values lie below"):
        assert main([*base, "--dictionary", str(strict)]) == 0
