"""The Python snippets a user copies from the README and the docs run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_block(markdown: Path, heading: str) -> str:
    """The first ```python block under ``heading`` (a '## ' line) of a markdown file."""
    text = markdown.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"{markdown.name}: no python block under '## {heading}'"
    return found.group(1)


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory, monkeypatch_module):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch_module.setenv("SEEGAAN_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow
def test_the_readme_python_example_runs_and_writes_its_files(demo_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_block(ROOT / "README.md", "Explore from Python"), "README.md", "exec"), namespace)
    assert (tmp_path / "nt_probnp.gif").stat().st_size > 0 and (tmp_path / "nt_probnp.html").stat().st_size > 0
    assert namespace["traversal"].frames.shape[0] == 9
    assert namespace["direction"].confounders == ("age", "view")


@pytest.mark.slow
def test_the_jupyterlab_snippet_builds_the_explorer(demo_cache):
    from seegaan_explore.ui.explorer import Explorer

    snippet = python_block(ROOT / "docs" / "dashboard.md", "In JupyterLab")
    *setup, last = snippet.strip().splitlines()
    namespace: dict = {}
    exec(compile("\n".join(setup), "dashboard.md", "exec"), namespace)
    explorer = eval(compile(last, "dashboard.md", "eval"), namespace)  # the cell's displayed value
    try:
        assert isinstance(explorer, Explorer)
        result = explorer.wait()
        assert result["error"] is None and len(result["frames"]) == result["args"]["n_frames"]
    finally:
        explorer.close()


@pytest.mark.slow
def test_the_python_study_snippet_fits_a_contrast_on_the_training_rows(demo_cache, capsys):
    namespace: dict = {}
    exec(compile(python_block(ROOT / "docs" / "python.md", "A study of your cohort"), "python.md", "exec"), namespace)
    direction = namespace["direction"]
    assert (direction.attribute, direction.ends) == ("view=PA:AP", ("AP", "PA"))
    assert direction.diagnostics["fitted_on"] == "split = train" and direction.diagnostics["n"] == 320
    assert "view=PA:AP ('AP', 'PA')" in capsys.readouterr().out


@pytest.mark.slow
def test_the_quality_snippet_scores_a_film_with_the_readers(demo_cache, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_block(ROOT / "docs" / "quality.md", "From Python"), "quality.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.startswith("reader fitted on this cohort's images (on patients left out of its fit: R²")
    assert "400 exams of 400 patients" in printed
    assert "− = lower bmi, + = higher bmi" in printed  # the first line of the report
    report = namespace["report"]
    assert report.ends == ("lower bmi", "higher bmi") and report.verdict is not None
    assert namespace["scores"]["leakage_read_by"] and "Comment" in Image.open(tmp_path / "film.png").text


@pytest.mark.slow
def test_the_own_cohort_snippet_runs_on_the_hannover_radiographs(hannover_dir, tmp_path, monkeypatch):
    """python.md's own-cohort snippet, as written, in a folder laid out as it assumes (the bundled model
    stands in for runs/mine): a calibration or its absence said, a verdict, an Explorer."""
    import shutil

    from seegaan_explore.demo import FILES, WEIGHTS_DIR
    from seegaan_explore.ui.explorer import Explorer

    monkeypatch.setenv("SEEGAAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    shutil.copy(WEIGHTS_DIR / FILES["autoencoder"], tmp_path / "runs" / "mine" / "model.safetensors")
    shutil.copy(hannover_dir / "data.csv", tmp_path / "cohort.csv")
    (tmp_path / "images").symlink_to(hannover_dir / "png")
    (tmp_path / "words.yaml").write_text("crp_val: {label: CRP, unit: mg/L, log: true, low: 0.1, high: 500}\n"
                                         "projection: {label: View, levels: {ap: AP, pa: PA}}\n")
    namespace: dict = {}
    exec(compile(python_block(ROOT / "docs" / "python.md", "Your own model and cohort"), "python.md", "exec"),
         namespace)
    explorer = namespace["explorer"]
    try:
        assert isinstance(explorer, Explorer) and len(namespace["study"].latents) == 243
        assert namespace["report"].verdict is not None and namespace["film"].frames.shape[0] == 9
        assert namespace["direction"].attribute == "ln(crp_val)"
    finally:
        explorer.close()
